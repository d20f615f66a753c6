"""The sandbox contract every backend enforces.

A backend turns a SandboxSpec into an isolated place to run commands: the
workspace is mounted at /workspace, writable only where the write scope says,
everything else read-only or absent, no network, no host environment.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bot.core.errors import SandboxError

if TYPE_CHECKING:
    from bot.adapters.sandbox.tls import RunCA


@dataclass(frozen=True)
class HttpRequest:
    """One request the egress proxy parsed, as it would go upstream (what a RequestGate judges).

    Plain-HTTP requests and, when the proxy intercepts TLS (SandboxSpec.tls), every request
    inside a CONNECT tunnel. A CONNECT that is not intercepted reaches the gate too, as
    method `CONNECT` and url `host:port`: its bytes will not be seen, so the gate decides
    whether the tunnel opens at all.
    """

    method: str
    """`GET`, `POST`, ... as sent (upper case, as HTTP spells methods)."""
    url: str
    """Absolute, as sent upstream: `scheme://host[:port]/path?query` (default ports omitted)."""
    host: str
    """The name that was checked against the allowlist, normalised (lower case, no dot)."""
    port: int
    body_sha256: str | None
    """sha256 hex of the request body; None when the request has no body."""


RequestGate = Callable[[HttpRequest], tuple[bool, str]]
"""(allowed, reason) for one request; a refusal is answered 403 with the reason."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30
    """Docker caps memory itself (a cgroup); bwrap can only cap address space (RLIMIT_AS)."""
    pids: int = 128
    wall_seconds: float = 120.0
    file_size_bytes: int = 256 << 20
    address_space_bytes: int | None = None
    """RLIMIT_AS where it differs from memory_bytes: V8 reserves tens of GiB it never uses."""


@dataclass(frozen=True)
class SandboxSpec:
    workspace: Path
    """Host directory mounted at /workspace (a throwaway copy of the repo)."""
    write_globs: tuple[str, ...] = ()
    """Globs, relative to the workspace, the job may write. Empty: read-only."""
    network: str = "none"
    """`none`: no network at all. `allowlist`: only the egress proxy, which lets
    through the names in allow_domains (HTTP_PROXY/HTTPS_PROXY point at it)."""
    limits: Limits = field(default_factory=Limits)
    env: tuple[tuple[str, str], ...] = ()
    """The only environment the command sees (the host's is never passed)."""
    allow_domains: tuple[str, ...] = ()
    """`name`, `*.name` or an address, optionally `:port` or `:*` (default 80 and 443);
    network=allowlist only (see egress.py)."""
    ro_paths: tuple[Path, ...] = ()
    """Host directories bound read-only at the same path: a program installed outside
    what the sandbox shows (Playwright's own Chromium under ~/.cache)."""
    egress_private_ok: tuple[str, ...] = ()
    """Networks (CIDR) the proxy may reach although not public: policy's private_networks
    for the job type; a job's allowlist never opens the controller's own network by itself."""
    request_gate: RequestGate | None = field(default=None, compare=False)
    """Called for every request the egress proxy parses (each one on a keep-alive
    connection, and inside intercepted TLS); a refusal answers 403 and is logged with its
    reason. None: every request the allowlist lets through goes."""
    tls: RunCA | None = field(default=None, compare=False)
    """When set, the proxy terminates CONNECT with certificates issued by this per-run CA,
    so request_gate sees HTTPS requests too. None: CONNECT is a byte tunnel, judged once."""
    env_dir: Path | None = None
    """A project environment (bot.adapters.sandbox.envcache), mounted at ENV_MOUNT: what the
    setup phase installed. The same path in every phase, since installers write absolute
    paths (a venv's scripts name their interpreter)."""
    env_writable: bool = False
    """Only the setup phase writes the environment; the agent and verify read it."""
    scratch: tuple[str, ...] = ()
    """Workspace-relative directories (`.pytest_cache`) the sandbox may write although the
    workspace is read-only there: each is a throwaway directory outside the workspace,
    mounted over it, so what is written there is never part of the proposal."""

    def __post_init__(self) -> None:
        if self.network not in ("none", "allowlist"):
            raise SandboxError(f"network must be 'none' or 'allowlist', not {self.network!r}")
        if self.allow_domains and self.network != "allowlist":
            raise SandboxError("allow_domains needs network='allowlist'")
        if self.env_writable and self.env_dir is None:
            raise SandboxError("env_writable needs an env_dir")


ENV_MOUNT = "/env"
"""Where the project environment is mounted in every phase."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


UNREACHABLE = "unreachable"
"""An EgressEvent decision: policy allowed the destination, but the connection failed."""


@dataclass(frozen=True)
class EgressEvent:
    """One request the egress proxy judged, allowed or denied (goes into the run record).

    Each HTTP request (plain, or inside an intercepted tunnel) is one event, with the
    address it went to and its bytes; a CONNECT the proxy does not intercept is one
    event for the whole tunnel. An intercepted CONNECT that carried no request (the
    client refused the run's certificate) is an event of its own, with the reason.
    """

    host: str
    port: int
    decision: str
    """`allow`, `deny`, or `unreachable` (allowed, but the connection failed)."""
    rule: str
    """The allow_domains entry that matched, or why it was denied (e.g. `default-deny`)."""
    address: str = ""
    """The IP the proxy resolved and connected to (empty when denied before resolving)."""
    bytes_up: int = 0
    bytes_down: int = 0
    duration_ms: float = 0.0
    method: str = ""
    """The request's method (`CONNECT` for a tunnel); empty only from older records."""
    url: str = ""
    """The judged request's absolute URL (`host:port` for CONNECT)."""
    reason: str = ""
    """Why the request was refused or let through: the request gate's reason, or the
    proxy's own (`Host header ... does not match ...`, a size or time limit)."""


def exec_wall_time(
    spec: SandboxSpec, closed: bool, argv: list[str], timeout: float | None
) -> float:
    """The checks every backend makes before a command, and the wall time it gets."""
    if closed:
        raise SandboxError("sandbox is closed")
    if not argv:
        raise SandboxError("empty command")
    wall = spec.limits.wall_seconds
    return min(wall, timeout) if timeout is not None else wall


class Sandbox(abc.ABC):
    """One started sandbox: reused for every command of a run."""

    backend_name: ClassVar[str] = ""
    """The backend that started it, so a helper the run starts (an MCP server) can run
    under the same one; empty for a sandbox no backend in BACKENDS made (a test's)."""

    @abc.abstractmethod
    def exec(self, argv: list[str], *, timeout: float | None = None) -> ExecResult:
        """Run argv inside the sandbox, cwd /workspace; never raises for a non-zero exit."""

    def egress_log(self) -> list[EgressEvent]:
        """Every connection through the egress proxy so far (empty for network none)."""
        return []

    @abc.abstractmethod
    def launch_command(self, argv: list[str]) -> list[str]:
        """A host command line that runs argv in this sandbox, for a long-lived program
        the caller starts and talks to itself (Chromium under Playwright). Besides the
        caller's stderr, it carries fds 3 (read by argv) and 4 (written by argv), which is
        Chromium's --remote-debugging-pipe; argv's stdout joins stderr. The program lives
        no longer than the sandbox."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release whatever the backend holds (containers, temp dirs)."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SandboxBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether this host can run the backend, and why not."""

    @abc.abstractmethod
    def start(self, spec: SandboxSpec) -> Sandbox:
        """Start a sandbox for spec; raises SandboxError when it cannot."""

    def base_identity(self) -> str:
        """What every sandbox of this backend starts from (its image): an environment built
        on one base is never reused on another (bot.adapters.sandbox.envcache)."""
        return self.name
