"""The ToolFamily seam: a family defined here, in the tests only, runs the whole path.

"counter" has one tool that adds to a total, stages the total as its proposal part, applies
it by writing a file, and renders its own evidence section. Nothing in bot/ knows it: the
engine gets it through `families=`, and policy and the job name it like any other tool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.audit.verify import verify
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.canonical import canonical_json, digest_of
from bot.core.errors import ValidationFailed
from bot.core.gate import open_gates
from bot.core.plan import Plan
from bot.core.record import AppliedPart, ProposalPart
from bot.core.render import render_applied, render_evidence, render_pr_comment
from bot.demo.code import MAINTAINER
from bot.families.base import ToolFailure, ToolOutcome, ToolSpec, obj
from bot.families.interface import (
    ApplyContext,
    Artifact,
    EvidenceContext,
    FamilySession,
    RunContext,
    Section,
    Staged,
    ToolFamily,
    UnknownFamily,
)
from bot.families.registry import default_families
from bot.run.engine import Engine
from tests.conftest import Scripted, git

RECORD = "counter.json"


class CounterSession(FamilySession):
    def __init__(self) -> None:
        self.total = 0

    def count(self, args: dict[str, Any]) -> ToolOutcome:
        by = args.get("by")
        if not isinstance(by, int) or by < 1:
            raise ToolFailure("by must be a positive integer")
        self.total += by
        return ToolOutcome(f"total {self.total}", mutates=True)

    def tools(self) -> Sequence[ToolSpec]:
        by = {"type": "integer", "description": "how much to add"}
        return [ToolSpec("count", "counter", "Add to the counter.", obj(by=by), self.count)]

    def finish(self) -> Staged:
        if not self.total:
            return Staged()
        part = ProposalPart(
            family="counter",
            kind="total",
            digest=digest_of({"total": self.total}),
            actions=["write"],
            paths=["counter.txt"],
            summary=f"count to {self.total}",
            detail={"total": self.total},
        )
        kept = Artifact(RECORD, canonical_json({"total": self.total}), "application/json")
        return Staged(artifacts=(kept,), parts=(part,))


class CounterFamily(ToolFamily):
    name = "counter"
    capabilities = ("counter",)
    gate_actions = ("write",)

    def __init__(self, out: Path) -> None:
        self.out = out

    def open(self, ctx: RunContext) -> FamilySession:
        return CounterSession()

    def apply(self, part: ProposalPart, ctx: ApplyContext) -> AppliedPart:
        total = part.detail["total"]
        assert part.digest == digest_of({"total": total})  # what was approved, nothing else
        (self.out / "counter.txt").write_text(f"{total}\n")
        return AppliedPart(
            family=self.name, summary=f"wrote {total} to counter.txt", details={"total": str(total)}
        )

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        data = ctx.artifact_named(RECORD)
        if data is None:
            return []
        total = json.loads(data)["total"]
        return [Section("Counter", f"Counter: counted to {total}", f"**Counted to {total}**")]


TURNS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "count", "arguments": {"by": 2}}]},
    {"tool_calls": [{"name": "count", "arguments": {"by": 3}}]},
    {"content": "counted to five"},
]


@pytest.fixture
def counting(demo_repo: Path, scripted_job: Scripted) -> str:
    policy = demo_repo / "policies/default.yaml"
    policy.write_text(
        policy.read_text().replace(
            "tools: [filesystem, shell]", "tools: [filesystem, shell, counter]", 1
        )
    )
    git(demo_repo, "commit", "-qam", "code jobs may count")
    return scripted_job(
        "count-up",
        TURNS,
        tools=["counter"],
        prompt="count to five; done when the counter says 5",
        approval_required_for=["write"],
    )


def test_a_family_from_the_tests_runs_the_whole_path(
    demo_repo: Path, counting: str, tmp_path: Path
) -> None:
    out = tmp_path / "applied"
    out.mkdir()
    e = Engine(
        GitRepo(demo_repo), BwrapBackend(), families=[*default_families(), CounterFamily(out)]
    )
    req = e.request(counting)
    # plan: granted by policy's job type, with the write gate its part will raise
    p: Plan = e.plan(req)
    assert "counter" in p.granted("tool") and [g.action for g in p.gates] == ["write"]
    # propose: the broker ran its tool, the family staged its part
    rec = e.start(req)
    assert rec.state == "awaiting_approval", rec.transitions
    assert [(c.tool, c.decision) for c in rec.tool_calls] == [("count", "allow")] * 2
    assert rec.proposal is not None
    (part,) = rec.proposal.parts
    assert (part.family, part.detail, part.actions) == ("counter", {"total": 5}, ["write"])
    assert rec.proposal.digest == rec.proposal.expected_digest()
    # gate: opened by the part's action, on its paths
    assert [g.action for g in open_gates(rec)] == ["write"]
    # evidence: its own section, and the proposal as its part says it
    (section,) = e.evidence(rec)
    assert section.title == "Counter" and section.body_text == "Counter: counted to 5"
    shown = render_evidence(rec, e.patch(rec), e.evidence_sections(rec))
    assert "Counter: counted to 5" in shown and "count to 5, no files." in shown
    assert "count to 5." in render_pr_comment(rec, "plan", e.patch(rec), None)
    # apply: deterministic, by the family, after an allowed approval; recorded
    assert not (out / "counter.txt").exists()
    done = e.decide(rec.run_id, MAINTAINER[1], "approve")
    done = getattr(done, "record", done)  # decide returns an outcome once gates are typed
    assert done.state == "applied", done.transitions[-1]
    assert (out / "counter.txt").read_text() == "5\n"
    assert render_applied(done.applied) == ["wrote 5 to counter.txt"]
    assert done.applied_commit() is None  # nothing for a door to push
    stored = e.load(rec.run_id)
    assert stored.applied == done.applied and stored.proposal == rec.proposal
    assert verify(e.audit).ok


def test_a_part_of_a_family_the_engine_lacks_is_refused_with_how_to_fix_it(
    demo_repo: Path, counting: str, tmp_path: Path
) -> None:
    e = Engine(
        GitRepo(demo_repo), BwrapBackend(), families=[*default_families(), CounterFamily(tmp_path)]
    )
    rec = e.start(e.request(counting))
    # Policy stops naming counter (an engine refuses a policy naming a tool it cannot serve).
    policy = demo_repo / "policies/default.yaml"
    policy.write_text(policy.read_text().replace(", counter]", "]", 1))
    git(demo_repo, "commit", "-qam", "no more counting")
    without = Engine(GitRepo(demo_repo), BwrapBackend())
    with pytest.raises(UnknownFamily, match=r"'counter' part.*apply it with an agentplane"):
        without.decide(rec.run_id, MAINTAINER[1], "approve")
    assert not (tmp_path / "counter.txt").exists()


def test_a_tool_no_family_serves_is_reported_at_its_line(demo_repo: Path, counting: str) -> None:
    # The same job, read by an engine without the counter family: located, as before.
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    with pytest.raises(ValidationFailed) as err:
        e.request(counting)
    (error,) = err.value.errors
    assert error.field == "tools[0]" and error.message.startswith("input should be 'filesystem'")
    assert error.path == f".agentplane/jobs/{counting}.yaml"
