"""The bounded stdio transport on real processes: lines split across writes, a line that
is not JSON-RPC, a line at the bound and one byte over it, and policy's new fields."""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from bot.core.policy import McpServerPolicy
from bot.families.mcp.stdio import Transcript, bounded_stdio

MESSAGE = '{"jsonrpc": "2.0", "method": "notifications/progress", "params": %s}'


def _read(script: str, max_line: int) -> tuple[list[Any], Transcript]:
    """What the session would read from a process running script, and the transcript."""
    transcript = Transcript()

    async def go() -> list[Any]:
        got: list[Any] = []
        with tempfile.TemporaryFile("w+") as errlog:
            argv = [sys.executable, "-c", script]
            async with bounded_stdio(
                argv, errlog=errlog, max_line=max_line, transcript=transcript
            ) as (read, _):
                with anyio.fail_after(30):
                    async for item in read:
                        got.append(item)
        return got

    return anyio.run(go), transcript


def _params(size: int) -> str:
    return '{"progressToken": "t", "progress": 1, "message": "%s"}' % ("m" * size)


def test_lines_split_across_writes_arrive_whole_and_a_bad_line_is_an_error_value() -> None:
    first = MESSAGE % _params(10)
    script = (
        "import os, time\n"
        f"data = {first!r}.encode() + b'\\n' + b'not json\\n' + {first!r}.encode() + b'\\n'\n"
        "for i in range(0, len(data), 7):\n"
        "    os.write(1, data[i:i + 7]); time.sleep(0.001)\n"
    )
    got, transcript = _read(script, 1 << 16)
    assert len(got) == 3
    assert got[0].message.method == "notifications/progress"
    assert isinstance(got[1], ValueError) and "not a JSON-RPC message" in str(got[1])
    assert got[2].message.method == "notifications/progress"
    assert transcript.failure is None and len(transcript.bad_lines) == 1


def test_a_line_at_the_bound_passes_and_one_byte_more_stops_the_server() -> None:
    at = MESSAGE % _params(100)
    bound = len(at)
    over = MESSAGE % _params(101)
    got, transcript = _read(f"import os; os.write(1, {at!r}.encode() + b'\\n')", bound)
    assert transcript.failure is None and len(got) == 1
    # Over the bound, even with its newline: the server is stopped (it would sleep a
    # minute) and the session's stream ends at once.
    script = f"import os, time; os.write(1, {over!r}.encode() + b'\\n'); time.sleep(60)"
    got, transcript = _read(script, bound)
    assert got == [] and transcript.failure is not None
    assert f"a line over {bound} bytes" in transcript.failure


def test_policy_checks_a_server_s_private_networks_and_message_bound() -> None:
    base: dict[str, Any] = {"command": ["true"]}
    with pytest.raises(ValidationError, match="not a network in CIDR form"):
        McpServerPolicy.model_validate({**base, "private_networks": ["loopback"]})
    with pytest.raises(ValidationError, match="greater than or equal"):
        McpServerPolicy.model_validate({**base, "max_message_bytes": 10})
    ok = McpServerPolicy.model_validate({**base, "private_networks": ["127.0.0.0/8"]})
    assert ok.max_message_bytes == 16 << 20
