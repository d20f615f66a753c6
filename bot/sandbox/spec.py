"""The sandbox contract every backend enforces.

A backend turns a SandboxSpec into an isolated place to run commands: the
workspace is mounted at /workspace, writable only where the write scope says,
everything else read-only or absent, no network, no host environment.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30
    pids: int = 128
    wall_seconds: float = 120.0
    file_size_bytes: int = 256 << 20


@dataclass(frozen=True)
class SandboxSpec:
    workspace: Path
    """Host directory mounted at /workspace (a throwaway copy of the repo)."""
    write_globs: tuple[str, ...] = ()
    """Globs, relative to the workspace, the job may write. Empty: read-only."""
    network: str = "none"
    """`none` only in this slice; `allowlist` arrives with the egress proxy."""
    limits: Limits = field(default_factory=Limits)
    env: tuple[tuple[str, str], ...] = ()
    """The only environment the command sees (the host's is never passed)."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class Sandbox(abc.ABC):
    """One started sandbox: reused for every command of a run."""

    @abc.abstractmethod
    def exec(self, argv: list[str], *, timeout: float | None = None) -> ExecResult:
        """Run argv inside the sandbox, cwd /workspace; never raises for a non-zero exit."""

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
