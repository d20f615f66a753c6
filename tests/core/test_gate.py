"""Which gates a proposal opens: by action, and by path for path-scoped gates."""

from bot.core.gate import open_gates
from bot.core.policy import merge_policy
from bot.core.record import Proposal, RunRecord
from tests.core.test_plan import CODE_JOB, POLICY, req
from tests.support.planning import plan

SCOPED = POLICY.replace(
    "  - {id: writes, actions: [write], approvers: {any_of: [role:maintainer]}}\n",
    "  - {id: src-owners, actions: [write], paths: ['src/**'], "
    "approvers: {all_of: [role:maintainer, role:analyst]}}\n",
)


def record(changed: list[str]) -> RunRecord:
    p = plan(req(CODE_JOB), merge_policy([("policies/p.yaml", SCOPED)]))
    proposal = Proposal(digest="d", patch_sha256="x", changed=changed)
    return RunRecord(
        run_id="r",
        job_name="j",
        job_path="j.yaml",
        job_digest="d",
        repo="r",
        commit="c" * 40,
        door="cli",
        requester="dana@example.com",
        prompt="p",
        plan=p.model_dump(mode="json"),
        tools_granted=[],
        model=None,
        proposal=proposal,
    )


def test_path_scoped_gate_opens_only_for_its_paths_and_the_default_covers_the_rest() -> None:
    rules = [g.rule for g in open_gates(record(["docs/a.md"]))]
    assert rules == ["policies/p.yaml#default_approvers"]
    rules = [g.rule for g in open_gates(record(["src/a.py", "docs/a.md"]))]
    assert rules == ["policies/p.yaml#gates.src-owners", "policies/p.yaml#default_approvers"]


def test_no_proposal_opens_no_gate() -> None:
    rec = record(["src/a.py"])
    rec.proposal = None
    assert open_gates(rec) == []


def test_an_approval_binds_to_the_proposal_its_evidence_showed() -> None:
    from bot.core.gate import approval_facts
    from bot.core.gates import approval

    rec = record(["src/a.py"])
    policy = merge_policy([("policies/p.yaml", SCOPED)])
    gates = open_gates(rec)

    def problem(digest: str) -> str | None:
        facts = approval_facts(
            rec, "maya@example.com", rec.commit, gates, policy, reviewed_digest=digest
        )
        check = approval(facts)
        return None if check.ok else check.reason

    why = problem("sha256:other")
    assert why is not None and "the evidence reviewed showed proposal sha256:other" in why
    same = problem("d")
    assert same is None or "evidence reviewed" not in same
