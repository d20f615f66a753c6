"""The stdio transport to a policy's MCP server, with a bound on every line it writes.

The SDK's own stdio client (mcp.client.stdio) joins the server's output into one string
until a newline arrives, however long that takes: a server that writes 100 MB without a
newline holds 100 MB (and more, in copies) in the controller. This transport speaks the
same protocol (one JSON-RPC message per line, mcp_types parses each) over the same
process pipes, but reads bytes in bounded chunks and keeps at most `max_line` bytes of a
line. A server that goes past that is killed, the session's stream is closed (so a
waiting request fails at once, not at its timeout), and `failure` says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import anyio
import mcp_types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectSendStream
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

CHUNK = 64 << 10
EXIT_GRACE_SECONDS = 2.0
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
"""The launcher's own environment; the sandbox sets the server's (bwrap --clearenv)."""


@dataclass
class Transcript:
    """What the transport saw go wrong, for the error the caller reports."""

    failure: str | None = None
    bad_lines: list[str] = field(default_factory=list)


def parse_line(line: bytes) -> SessionMessage | Exception:
    """One line of the server's output: a message, or the error the session is handed."""
    try:
        message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except (ValidationError, ValueError) as exc:
        return ValueError(f"the server wrote a line that is not a JSON-RPC message: {exc}"[:500])
    return SessionMessage(message)


def _kill(process: Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def bounded_stdio(
    argv: Sequence[str], *, errlog: TextIO, max_line: int, transcript: Transcript
) -> AsyncIterator[TransportStreams]:
    """Start argv and yield the session's (read, write) streams; every line bounded."""
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=_ENV,
        start_new_session=True,  # one signal ends the launcher and everything under it
    )
    to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](0)

    async def reader() -> None:
        assert process.stdout is not None
        # The session or the pipe gone: the stream closes either way.
        quiet = contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)
        async with to_session:
            with quiet:
                await _read_lines(process, to_session, max_line, transcript)

    async def writer() -> None:
        assert process.stdin is not None
        try:
            async with from_session:
                async for message in from_session:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await to_session.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)
                for stream in (read_stream, write_stream, to_session, from_session):
                    await stream.aclose()
            tg.cancel_scope.cancel()


async def _read_lines(
    process: Process,
    to_session: MemoryObjectSendStream[SessionMessage | Exception],
    max_line: int,
    transcript: Transcript,
) -> None:
    assert process.stdout is not None
    line = bytearray()
    while True:
        try:
            chunk = await process.stdout.receive(CHUNK)
        except anyio.EndOfStream:
            return
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if len(line) + end - start > max_line:
                break
            line += chunk[start:end]
            start = end + 1
            message = parse_line(bytes(line))
            line.clear()
            if isinstance(message, Exception):
                transcript.bad_lines.append(str(message))
            await to_session.send(message)
        else:
            line += chunk[start:]
            if len(line) <= max_line:
                continue
        transcript.failure = (
            f"the server wrote a line over {max_line} bytes without ending it "
            "(policy's max_message_bytes); it was stopped"
        )
        _kill(process)
        return


async def _stop(process: Process) -> None:
    """Close the server's stdin, give it a moment to exit, then kill its group."""
    if process.stdin is not None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    with anyio.move_on_after(EXIT_GRACE_SECONDS):
        while process.returncode is None:
            await anyio.sleep(0.02)
    if process.returncode is None:
        _kill(process)
        with anyio.move_on_after(EXIT_GRACE_SECONDS):
            while process.returncode is None:
                await anyio.sleep(0.02)
    # Closes the pipes' transports too, while the loop that owns them still runs.
    with anyio.move_on_after(EXIT_GRACE_SECONDS), contextlib.suppress(OSError):
        await process.aclose()
