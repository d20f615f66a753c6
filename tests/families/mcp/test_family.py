"""The MCP family end to end, with the real mcp-server-git on a test repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.adapters.audit.verify import verify
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.gate import open_gates
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.mcp.conftest import INJECTION, commits, git_server, grant_mcp, staged

WS = {"repo_path": "/workspace"}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": f"mcp__git__{name}", "arguments": arguments}]}


def _job(scripted_job: Scripted, name: str, turns: list[dict[str, Any]]) -> str:
    return scripted_job(
        name,
        turns,
        tools=["mcp"],
        scope={},
        prompt="record the staged note in git; done when it is committed",
    )


def test_a_commit_is_held_approved_and_made_exactly_once(
    demo_repo: Path, target: Path, scripted_job: Scripted
) -> None:
    grant_mcp(demo_repo, {"git": git_server(target)})
    job = _job(
        scripted_job,
        "mcp-commit",
        [
            call("git_status", **WS),
            call("git_commit", message="add the note", **WS),
            call("git_diff_staged", **WS),
            call("git_show", revision="HEAD", **WS),
            call("git_branch", branch_type="local", **WS),
            {"content": "the commit is held for approval"},
        ],
    )
    before = commits(target)
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions[-1]
    calls = {c.tool.removeprefix("mcp__git__"): c for c in rec.tool_calls}
    assert calls["git_status"].decision == "allow" and "note.txt" in calls["git_status"].result
    # An allowed call carries the per-tool grant that allowed it, not the capability's.
    assert calls["git_status"].rule.endswith("#mcp_servers.git.tools.git_status")
    assert calls["git_commit"].decision == "needs_approval"
    assert calls["git_commit"].rule.endswith("#gates.code-changes")
    # Read-only by the server's own annotations, and still denied or held by policy.
    assert calls["git_diff_staged"].decision == "deny"
    assert calls["git_diff_staged"].rule.endswith("#mcp_servers.git.tools.git_diff_staged")
    assert calls["git_show"].decision == "needs_approval"
    # Listed by the server, not by policy: unknown, denied.
    assert calls["git_branch"].decision == "deny"
    assert calls["git_branch"].rule == "broker#known-tools"
    # Nothing happened to the target while the job ran.
    assert commits(target) == before and staged(target) == ["note.txt"]
    assert rec.proposal is not None
    held = [p for p in rec.proposal.parts if p.family == "mcp"]
    assert [p.detail["tool"] for p in held] == ["git_commit", "git_show"]
    assert {g.action for g in open_gates(rec)} == {"commit", "submit"}
    (section,) = [s for s in e.evidence(rec) if s.title.startswith("MCP")]
    assert '"message": "add the note"' in section.body_text
    assert "git_show" in section.body_text and held[0].digest in section.body_text
    # The requester cannot approve; a maintainer can, and apply makes the call once.
    mine = e.decide(rec.run_id, "dana@example.com", "approve")
    assert mine.kind == "not_counted" and commits(target) == before
    done = e.decide(rec.run_id, MAINTAINER[1], "approve")
    assert done.kind == "applied", done.reason
    assert commits(target) == ["add the note", *before]
    assert staged(target) == []
    assert [a.summary.split(":")[0] for a in done.record.applied or []] == [
        "called git.git_commit once",
        "called git.git_show once",
    ]
    assert e.load(rec.run_id).state == "applied"
    assert verify(e.audit).ok


def test_an_injected_instruction_gets_no_further_than_the_gate(
    demo_repo: Path, target: Path, scripted_job: Scripted
) -> None:
    grant_mcp(demo_repo, {"git": git_server(target)})
    job = _job(
        scripted_job,
        "mcp-injected",
        [
            call("git_log", max_count=1, **WS),
            # The model obeys the commit message it just read.
            call("git_reset", **WS),
            {"content": "reset as instructed"},
        ],
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    log, reset = rec.tool_calls[-2:]
    assert INJECTION in log.result and log.decision == "allow"
    # Policy allows git_reset, but the server marks it destructive: held, not made.
    assert reset.decision == "needs_approval", reset
    assert rec.state == "awaiting_approval"
    assert rec.proposal is not None
    (part,) = rec.proposal.parts
    assert part.detail["rule"] == "mcp#annotations" and part.actions == ["delete"]
    assert staged(target) == ["note.txt"]
    out = e.decide(rec.run_id, MAINTAINER[1], "deny")
    assert out.kind == "rejected" and staged(target) == ["note.txt"]


def test_a_server_policy_names_but_does_not_define_fails_the_run_with_how_to_fix_it(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    grant_mcp(demo_repo, {})
    path = demo_repo / "policies/default.yaml"
    path.write_text(path.read_text().replace("mcp_servers: []", "mcp_servers: [ghost]"))
    from tests.conftest import git

    git(demo_repo, "commit", "-qam", "grant a server nobody defined")
    job = _job(scripted_job, "mcp-ghost", [call("git_status", **WS), {"content": "done"}])
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    assert "defines no mcp_servers.ghost" in rec.transitions[-1].reason


@pytest.mark.parametrize("broken", [["python3", "-c", "import sys; sys.exit(3)"]])
def test_a_server_that_does_not_start_fails_the_run_with_its_stderr(
    demo_repo: Path, target: Path, scripted_job: Scripted, broken: list[str]
) -> None:
    server = {**git_server(target), "command": broken, "timeout_seconds": 5}
    grant_mcp(demo_repo, {"git": server})
    job = _job(scripted_job, "mcp-broken", [call("git_status", **WS), {"content": "done"}])
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    assert "MCP server 'git' did not start" in rec.transitions[-1].reason
