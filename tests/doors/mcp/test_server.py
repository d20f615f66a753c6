"""The MCP door, driven by the SDK's own client as the chat panel (in-process)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import Implementation, TextContent

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.record import RunRecord
from bot.doors.mcp.server import build, local_user
from bot.run.engine import Engine

JOB = "fix-failing-test"
PANEL = Implementation(name="chat-panel", version="1.0")
VOLATILE = {
    "at",
    "run_id",
    "duration_ms",
    "latency_ms",
    "owner",
    "door",
    "door_ref",
    "sha256",
    "timings",
}
SECONDS = re.compile(r"\d+\.\d+s\b")


def _text(result: Any) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def _panel(engine: Engine, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    server = build(engine, local_user(engine))

    async def go() -> list[Any]:
        async with Client(server, client_info=PANEL) as client:
            out: list[Any] = [[t.name for t in (await client.list_tools()).tools]]
            for name, args in calls:
                out.append(await client.call_tool(name, args))
            return out

    return anyio.run(go)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return SECONDS.sub("Ns", value) if isinstance(value, str) else value  # "Ran 2 tests in 0.01s"


def test_a_chat_panel_starts_a_run_reads_its_evidence_and_cannot_approve_it(
    demo_repo: Path,
) -> None:
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    names, jobs, started = _panel(e, [("list_jobs", {}), ("start_run", {"job": JOB})])
    assert set(names) == {
        "list_jobs",
        "show_plan",
        "start_run",
        "run_status",
        "run_evidence",
        "answer",
    }
    assert not any("approv" in n for n in names)
    assert JOB in _text(jobs)
    status = started.structured_content
    assert status["state"] == "awaiting_approval", status
    run_id = status["run_id"]
    rec = e.load(run_id)
    assert rec.door == "mcp" and rec.door_ref is not None
    assert rec.door_ref.client == "chat-panel/1.0"
    assert rec.requester == "dana@example.com"  # the local git identity, from the transport
    _, evidence, approve, state = _panel(
        e,
        [
            ("run_evidence", {"run_id": run_id}),
            ("approve", {"run_id": run_id}),
            ("run_status", {"run_id": run_id}),
        ],
    )
    shown = _text(evidence)
    assert "Tool calls (6)" in shown and "return a + b" in shown
    assert approve.is_error  # there is no such tool
    assert state.structured_content["state"] == "awaiting_approval"
    assert e.load(run_id).approvals == []


def test_the_same_job_from_the_terminal_and_from_mcp_differs_only_in_the_door(
    demo_repo: Path,
) -> None:
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    terminal = e.start(e.request(JOB))
    (_, started) = _panel(e, [("start_run", {"job": JOB})])
    via_mcp = e.load(started.structured_content["run_id"])
    assert (terminal.door, via_mcp.door) == ("cli", "mcp")
    assert _strip(_dump(terminal)) == _strip(_dump(via_mcp))


def _dump(rec: RunRecord) -> dict[str, Any]:
    data = rec.model_dump(mode="json")
    # The plan names the door it was made for, and the transitions their reasons' times.
    data["plan"].pop("door", None)
    return data


def test_a_bad_run_id_or_job_is_an_error_the_panel_reads(demo_repo: Path) -> None:
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    _, status, plan = _panel(
        e, [("run_status", {"run_id": "nope"}), ("show_plan", {"job": "nope"})]
    )
    assert "ERROR" in status.structured_content["error"]
    assert _text(plan).startswith("ERROR") and "commit the job file" in _text(plan)
