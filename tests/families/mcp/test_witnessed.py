"""What reaches an MCP server, counted on the server's side: tests/families/mcp/servers/
witnessed.py reports every request it receives to a real HTTP/1.1 witness outside the
sandbox. A hostile server that writes 100 MB without a newline is cut off, bounded."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.policy import McpServerPolicy
from bot.demo.code import MAINTAINER
from bot.families.mcp.connection import Connection
from bot.families.mcp.errors import McpError
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.mcp.conftest import grant_mcp, witnessed_server
from tests.support.witness import Witness

TOOLS = {
    "read_note": "allow",
    "erase": "deny",
    "publish": {"decision": "needs_approval", "action": "submit"},
    "flood": "allow",
}


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": f"mcp__notes__{tool}", "arguments": arguments}]}


def calls(witness: Witness, phase: str) -> list[tuple[str, dict[str, Any]]]:
    """The tools/call requests the server received in a phase: (tool, arguments)."""
    out = []
    for hit in witness.hits:
        if hit.phase == phase and hit.path.startswith("/mcp/tools/call/"):
            params = json.loads(hit.body)["params"]
            out.append((params["name"], params.get("arguments") or {}))
    return out


def test_denied_unknown_and_held_calls_never_reach_the_server_and_apply_reaches_it_once(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    with Witness() as witness:
        grant_mcp(demo_repo, {"notes": witnessed_server(witness.url, witness.port, TOOLS)})
        job = scripted_job(
            "mcp-witnessed",
            [
                call("read_note", name="a"),
                call("erase", name="a"),
                call("unlisted"),
                call("publish", text="hello"),
                {"content": "published, pending approval"},
            ],
            tools=["mcp"],
            scope={},
            prompt="publish the note; done when it is published",
        )
        e = Engine(GitRepo(demo_repo), BwrapBackend())
        rec = e.start(e.request(job))
        assert rec.state == "awaiting_approval", rec.transitions[-1]
        decided = {c.tool.removeprefix("mcp__notes__"): c.decision for c in rec.tool_calls}
        assert decided == {
            "read_note": "allow",
            "erase": "deny",
            "unlisted": "deny",
            "publish": "needs_approval",
        }
        # The server heard the handshake (server/discover in the 2026 protocol), the
        # listing and the one allowed call; nothing else.
        methods = [json.loads(h.body)["method"] for h in witness.hits if h.phase == "propose"]
        assert methods.count("tools/call") == 1 and "tools/list" in methods, methods
        assert calls(witness, "propose") == [("read_note", {"name": "a"})]
        # Its reports went out through the egress proxy and are in the record.
        reports = [g for g in rec.egress if g.by == "mcp:notes"]
        assert reports and {(g.host, g.port, g.decision) for g in reports} == {
            ("127.0.0.1", witness.port, "allow")
        }
        witness.phase = "apply"
        done = e.decide(rec.run_id, MAINTAINER[1], "approve")
        assert done.kind == "applied", done.reason
        assert calls(witness, "apply") == [("publish", {"text": "hello"})]
        assert calls(witness, "propose") == [("read_note", {"name": "a"})]
        # Applied once: deciding again makes no call.
        with pytest.raises(Exception, match=r"not awaiting|already"):
            e.decide(rec.run_id, MAINTAINER[1], "approve")
        assert calls(witness, "apply") == [("publish", {"text": "hello"})]


def test_a_server_writing_100_mb_without_a_newline_is_cut_off_bounded_in_memory() -> None:
    with Witness() as witness:
        policy = McpServerPolicy.model_validate(
            witnessed_server(
                witness.url, witness.port, TOOLS, timeout_seconds=60, max_message_bytes=1 << 20
            )
        )
        conn = Connection("notes", policy, {}, BwrapBackend())
        try:
            assert {t.name for t in conn.list_tools()} >= {"flood", "read_note"}
            tracemalloc.start()
            began = time.monotonic()
            try:
                with pytest.raises(McpError) as err:
                    conn.call("flood", {})
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            took = time.monotonic() - began
            assert f"a line over {policy.max_message_bytes} bytes" in str(err.value)
            assert "max_message_bytes" in str(err.value)
            # Held at most one line's bound (1 MiB here), not the 100 MB written (the SDK's
            # own reader holds 30 MB after 20 s and is still reading), and cut off at once
            # rather than at the call's 60 s timeout.
            assert peak < 4 * policy.max_message_bytes, peak
            assert took < 30, took
            # The server was stopped: the next call fails at once with the same reason.
            with pytest.raises(McpError, match="a line over"):
                conn.call("read_note", {"name": "a"})
        finally:
            conn.close()
        assert calls(witness, "propose")[0] == ("flood", {})
