"""One MCP server, started in a sandbox of its own, and a synchronous client for it.

The server runs under the job's sandbox backend (bubblewrap or Docker, the family picks
it), in a sandbox of its own rather than the job's: a server given a broker credential in
its environment would otherwise share it with every process the job's tools start (same
uid, same /proc). Its install is bound read-only
(policy's `mounts`), its workdir at /workspace (read-only unless apply makes an approved
call), its network the egress proxy open to policy's `network` only, its environment only
what policy gives it. The SDK's own client speaks to it over our stdio transport
(bot.families.mcp.stdio: every line bounded) through the two descriptors a sandbox's
launch command carries; an event loop in a thread of its own keeps the session open
between the broker's synchronous calls. Every request is bounded in time, every message
and every result in size.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from anyio.from_thread import start_blocking_portal
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.types import CallToolResult, Implementation, TextContent

from bot.adapters.sandbox.spec import EgressEvent, Limits, Sandbox, SandboxBackend, SandboxSpec
from bot.core.errors import AgentplaneError
from bot.core.policy import McpServerPolicy
from bot.families.mcp.decide import Hints
from bot.families.mcp.errors import McpError
from bot.families.mcp.remote import credential_env, endpoint, remote_headers, remote_transport
from bot.families.mcp.stdio import Transcript, bounded_stdio

MAX_TOOLS = 256
MAX_PAGES = 16
MAX_DESCRIPTION = 2000
MAX_STDERR = 2000
# Host side: the launch command reads the server's input on fd 3 and its output on fd 4;
# inside: the server's stdin and stdout are those two descriptors.
_HOST = 'exec "$@" 3<&0 4>&1 1>&2'
_INSIDE = 'exec "$@" <&3 >&4 3<&- 4>&-'


def server_env(
    name: str, policy: McpServerPolicy, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(environment, secret values) for the server: literals, and credentials from the host."""
    env = dict(policy.env)
    secrets: list[str] = []
    for var, credential in policy.credentials.items():
        host_var = credential_env(credential)
        value = environ.get(host_var)
        if not value:
            raise McpError(
                f"MCP server {name!r} needs credential {credential!r}: set ${host_var} on "
                "the host that runs agentplane (it never enters the job's sandbox)"
            )
        env[var] = value
        secrets.append(value)
    return env, secrets


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    hints: Hints


@dataclass(frozen=True)
class CallResult:
    text: str
    is_error: bool


def result_text(result: CallToolResult, limit: int) -> str:
    """What the model and the record see of a result: its text, bounded to limit bytes."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content not shown]")
    if result.structured_content is not None and not parts:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    data = text.encode()
    if len(data) > limit:
        text = data[:limit].decode(errors="ignore") + f"\n[... cut at {limit} bytes by policy]"
    return text


class Connection:
    """A started server and its session; close() ends both, whatever happened."""

    def __init__(
        self,
        name: str,
        policy: McpServerPolicy,
        environ: Mapping[str, str],
        backend: SandboxBackend | None,
        *,
        writable: bool = False,
    ) -> None:
        """backend: where a local server runs; unused for a remote one (policy's `url`)."""
        self.name = name
        self.policy = policy
        self._stack = ExitStack()
        self._transcript = Transcript()
        self._log: list[EgressEvent] = []
        self.box: Sandbox | None = None
        try:
            self._stderr: TextIO = self._stack.enter_context(_stderr_file())
            if policy.remote:
                headers, self.secrets = remote_headers(name, policy, environ)
                transport = remote_transport(name, policy, headers, self._log, self._transcript)
                self._connect(transport, f"at {endpoint(policy)}")
            else:
                assert backend is not None, "a local MCP server needs a sandbox backend"
                env, self.secrets = server_env(name, policy, environ)
                self._start(env, backend, writable)
        except BaseException:
            self._stack.close()
            raise

    def _start(self, env: dict[str, str], backend: SandboxBackend, writable: bool) -> None:
        policy = self.policy
        if policy.workdir is None:
            workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            workdir = Path(policy.workdir)
        try:
            spec = SandboxSpec(
                workspace=workdir,
                write_globs=("**",) if writable else (),
                network="allowlist" if policy.network else "none",
                allow_domains=tuple(policy.network),
                egress_private_ok=tuple(policy.private_networks) if policy.network else (),
                env=tuple(sorted(env.items())),
                ro_paths=tuple(Path(m) for m in policy.mounts),
                limits=Limits(cpu_seconds=600, wall_seconds=policy.timeout_seconds),
            )
            self.box = backend.start(spec)
        except AgentplaneError as exc:
            raise McpError(f"cannot start MCP server {self.name!r}'s sandbox: {exc}") from None
        self._stack.callback(self.box.close)
        inside = ["sh", "-c", _INSIDE, "sh", *policy.command]
        transport = bounded_stdio(
            ["sh", "-c", _HOST, "sh", *self.box.launch_command(inside)],
            errlog=self._stderr,
            max_line=policy.max_message_bytes,
            transcript=self._transcript,
        )
        self._connect(transport, f"({policy.command[0]} ...)")

    def _connect(self, transport: AbstractAsyncContextManager[TransportStreams], at: str) -> None:
        self._portal = self._stack.enter_context(start_blocking_portal())
        client = Client(
            transport,
            read_timeout_seconds=self.policy.timeout_seconds,
            client_info=Implementation(name="agentplane", version="1"),
        )
        try:
            entered = self._portal.wrap_async_context_manager(client)
            self._client = self._stack.enter_context(entered)
        except Exception as exc:
            stderr = "" if self.policy.remote else f"; its stderr: {self.stderr() or '(empty)'}"
            raise McpError(
                f"MCP server {self.name!r} did not start {at}: {self._why(exc)}{stderr}"
            ) from None

    def _why(self, exc: BaseException) -> str:
        """What went wrong: the transport's own finding (a line over the bound) before the
        session's echo of it (a closed connection)."""
        if self._transcript.failure is not None:
            return self._transcript.failure
        return _first(exc)

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-MAX_STDERR:].strip()

    def list_tools(self) -> list[ListedTool]:
        tools: list[ListedTool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            try:
                page = self._portal.call(functools.partial(self._client.list_tools, cursor=cursor))
            except Exception as exc:
                why = self._why(exc)
                raise McpError(f"MCP server {self.name!r} did not list its tools: {why}") from None
            for t in page.tools:
                a = t.annotations
                hints = Hints(a.read_only_hint, a.destructive_hint) if a else Hints()
                description = (t.description or "")[:MAX_DESCRIPTION]
                tools.append(ListedTool(t.name, description, dict(t.input_schema), hints))
            if len(tools) > MAX_TOOLS:
                raise McpError(f"MCP server {self.name!r} lists more than {MAX_TOOLS} tools")
            cursor = page.next_cursor
            if cursor is None:
                return tools
        raise McpError(f"MCP server {self.name!r} lists its tools in more than {MAX_PAGES} pages")

    def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        call = functools.partial(
            self._client.call_tool,
            tool,
            arguments,
            read_timeout_seconds=self.policy.timeout_seconds,
        )
        try:
            result = self._portal.call(call)
        except Exception as exc:
            raise McpError(
                f"{self.name}.{tool} failed (timeout {self.policy.timeout_seconds:g}s): "
                f"{self._why(exc)}"
            ) from None
        return CallResult(result_text(result, self.policy.max_result_bytes), result.is_error)

    def egress(self) -> list[EgressEvent]:
        """Requests the server made through its sandbox's proxy, or (remote) the broker
        made to the server."""
        return self.box.egress_log() if self.box is not None else list(self._log)

    def close(self) -> None:
        self._stack.close()


def _stderr_file() -> TextIO:
    """Where the server's stderr goes: kept for error messages, never in the record."""
    return cast(TextIO, tempfile.TemporaryFile("w+", prefix="agentplane-mcp-"))


def _first(exc: BaseException) -> str:
    """The innermost message of an exception group (anyio wraps task errors in them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]


def open_all(
    names: Sequence[str],
    servers: Mapping[str, McpServerPolicy],
    environ: Mapping[str, str],
    backend_of: Callable[[McpServerPolicy], SandboxBackend],
) -> list[Connection]:
    """Start each named server under backend_of(its policy); if one fails, those started
    are closed."""
    started: list[Connection] = []
    try:
        for name in names:
            if name not in servers:
                raise McpError(
                    f"policy grants MCP server {name!r} but defines no mcp_servers.{name}: "
                    "add it to policies/ on the default branch"
                )
            policy = servers[name]
            backend = None if policy.remote else backend_of(policy)
            started.append(Connection(name, policy, environ, backend))
    except BaseException:
        for c in started:
            c.close()
        raise
    return started
