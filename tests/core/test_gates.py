"""Every gate decision over plain data: each requirement's reason and rule, and properties
(hypothesis) that narrowing can never widen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.approvers import Requirement
from bot.core.gates import (
    ApprovalFacts,
    CommandFacts,
    PolicyReviewFacts,
    ReviewTiming,
    RunParty,
    approval,
    command,
    may_answer,
    pending,
    policy_owner_approval,
)
from bot.core.globs import covers, match
from bot.core.job import Budget
from bot.core.plan import GatePlan
from bot.core.policy import RepoConfig, Scope, merge_policy
from tests.core.test_plan import POLICY, req
from tests.support.planning import plan

POLICY_OBJ = merge_policy([("policies/p.yaml", POLICY + "owners: [role:maintainer]\n")])
DIRECTORY = POLICY_OBJ.directory()
MAYA, DANA, ANA, MALLORY = "maya@example.com", "dana@example.com", "ana@example.com", "m@x.org"
WRITE = GatePlan(
    action="write",
    approvers=Requirement(any_of=["role:maintainer"]),
    rule="policies/p.yaml#gates.writes",
)
C, D = "c" * 40, "sha256:" + "d" * 64


def facts(**kw: object) -> ApprovalFacts:
    base = ApprovalFacts(
        policy=POLICY_OBJ,
        directory=DIRECTORY,
        approver=MAYA,
        requester=DANA,
        door="cli",
        gates=(WRITE,),
        commit=C,
        reviewed_commit=C,
        proposal_digest=D,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def at(second: int) -> datetime:
    return datetime(2024, 5, 1, 10, 0, second, tzinfo=UTC)


# -- approvals ----------------------------------------------------------------------------


def test_an_allowed_approver_on_the_evidence_counts() -> None:
    check = approval(facts())
    assert check.ok and check.reason == "counted"


def test_each_approval_requirement_says_why_and_names_its_rule() -> None:
    cases = [
        (facts(approver=DANA), "authors cannot approve their own run", "gate#not-the-author"),
        (
            facts(policy=merge_policy([("policies/p.yaml", POLICY + "approvals: {doors: [web]}")])),
            "approvals from the cli door do not count here (policies/p.yaml#approvals.doors: web)",
            "policies/p.yaml#approvals.doors",
        ),
        (
            facts(reviewed_digest="sha256:" + "e" * 64),
            "the evidence reviewed showed proposal sha256:eeeeeeeeeeee, "
            "the run's proposal is sha256:dddddddddddd",
            "gate#reviewed-proposal",
        ),
        (
            facts(reviewed_commit="f" * 40),
            "stale: the review is on ffffffffffff, the evidence on cccccccccccc",
            "gate#reviewed-commit",
        ),
        (facts(approver=MALLORY), f"{MALLORY} is not an approver for this gate", "gate#approvers"),
        (facts(unsigned="not signed"), "not signed", "policy#approvals.signed"),
        (
            facts(timing=ReviewTiming(at(1), at(1))),
            "the review was submitted at 2024-05-01T10:00:01Z, the same second the evidence "
            "was posted, so it cannot be shown to come after it: approve again",
            "gate#after-evidence",
        ),
    ]
    for f, reason, rule in cases:
        check = approval(f)
        assert (check.ok, check.reason, check.rule) == (False, reason, rule)


def test_the_first_unmet_requirement_is_the_reason() -> None:
    # The author reviewing a stale commit hears that authors cannot approve.
    assert approval(facts(approver=DANA, reviewed_commit="f" * 40)).rule == "gate#not-the-author"


def test_timing_fails_closed() -> None:
    assert approval(facts(timing=ReviewTiming(at(2), at(1)))).ok
    for timing, why in (
        (ReviewTiming(at(0), at(1)), "before the evidence"),
        (ReviewTiming(None, at(1)), "no submission time"),
        (ReviewTiming(at(2), None), "no evidence for this proposal"),
    ):
        check = approval(facts(timing=timing))
        assert not check.ok and why in check.reason


def test_pending_lists_each_open_gate_with_its_rule() -> None:
    two = GatePlan(
        action="write",
        approvers=Requirement(count=2, of=["role:maintainer"]),
        rule="policies/p.yaml#default_approvers",
    )
    (still,) = pending([WRITE, two], [MAYA], DANA, POLICY_OBJ, DIRECTORY)
    assert (still.ok, still.rule) == (False, "policies/p.yaml#default_approvers")
    assert still.reason == "needs 2 approval(s) from role:maintainer; have 1"
    assert pending([WRITE], [MAYA], DANA, POLICY_OBJ, DIRECTORY) == ()


# -- policy-owner review ------------------------------------------------------------------


def review(**kw: object) -> PolicyReviewFacts:
    base = PolicyReviewFacts(
        policy=POLICY_OBJ,
        directory=DIRECTORY,
        reviewer=MAYA,
        reviewer_name="maya",
        author=DANA,
        reviewed_commit=C,
        head=C,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_policy_owner_on_the_head_approves_a_policy_change() -> None:
    assert policy_owner_approval(review()).ok
    cases = [
        (
            review(reviewer=DANA, reviewer_name="dana"),
            "authors cannot approve their own policy change",
            "gate#not-the-author",
        ),
        (
            review(reviewed_commit=None),
            "stale: the review is not on the head",
            "gate#reviewed-commit",
        ),
        (
            review(reviewer=MALLORY, reviewer_name="mallory"),
            "mallory is not a policy owner (role:maintainer)",
            "policies/p.yaml#owners",
        ),
    ]
    for f, reason, rule in cases:
        check = policy_owner_approval(f)
        assert (check.ok, check.reason, check.rule) == (False, reason, rule)


# -- comment commands ---------------------------------------------------------------------


def cmd(verb: str, who: str, runs: tuple[RunParty, ...] = ()) -> CommandFacts:
    return CommandFacts(POLICY_OBJ, DIRECTORY, verb, who, runs)


RUN_BY = "policies/p.yaml#job_types.code.run_by, policies/p.yaml#job_types.sql.run_by"


def test_plan_and_rerun_need_a_role_that_may_run_jobs() -> None:
    nobody = merge_policy(
        [("policies/p.yaml", POLICY.replace('developer: ["*"]', "developer: [dana@example.com]"))]
    )
    for verb in ("plan", "rerun"):
        assert command(cmd(verb, MALLORY)).ok  # POLICY lets anyone run code jobs
        check = command(CommandFacts(nobody, nobody.directory(), verb, MALLORY))
        assert (check.ok, check.rule) == (False, RUN_BY)
        assert check.reason == f"`{verb}` needs a role that may run jobs; you have none"


def test_apply_cancel_and_answer_are_for_the_requester_or_an_approver() -> None:
    runs = (RunParty(DANA, (WRITE,)),)
    for verb in ("apply", "cancel", "answer"):
        assert command(cmd(verb, DANA, runs)).ok
        assert command(cmd(verb, MAYA, runs)).ok
        check = command(cmd(verb, MALLORY, runs))
        assert (check.ok, check.rule) == (False, "gate#requester-or-approver")
        assert check.reason == f"`{verb}` is for the run's requester or its approvers"
    assert not command(cmd("cancel", DANA)).ok  # no runs: nobody's requester
    assert may_answer(POLICY_OBJ, DIRECTORY, MAYA, runs[0])
    assert not may_answer(POLICY_OBJ, DIRECTORY, ANA, runs[0])


# -- narrowing never widens (hypothesis) --------------------------------------------------

SEGMENTS = ["a", "b", "ab", ".a", "*", "**", "?", "a*", "[ab]", "[!a]", "a[", "]"]
GLOBS = st.one_of(
    st.text(alphabet="ab/*?[]!.", min_size=1, max_size=7),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map("/".join),
)
FILL = st.text(alphabet="ab./", max_size=4)


@st.composite
def near(draw: st.DrawFn, glob: str) -> str:
    """A path shaped like glob (wildcards filled in), so that it often matches it."""
    out = []
    for ch in glob:
        keep = ch not in "*?[]!" and draw(st.integers(0, 5)) > 0
        out.append(ch if keep else draw(FILL))
    return "".join(out)


def repo_path(path: str) -> bool:
    """What the broker hands over: relative, normalised, no empty or dot segments."""
    return all(seg not in ("", ".", "..") for seg in path.split("/"))


@settings(max_examples=200, deadline=None)
@given(GLOBS, GLOBS, st.data())
def test_covers_never_widens(allowed: str, requested: str, data: st.DataObject) -> None:
    """If covers(a, b), every path b matches, a matches too."""
    if not covers(allowed, requested):
        return
    for _ in range(8):
        path = data.draw(st.one_of(near(requested), near(allowed)))
        if repo_path(path) and match(path, requested):
            assert match(path, allowed), (allowed, requested, path)


TOOLS = ["filesystem", "shell", "sql", "browser"]
WRITE_GLOBS = ["src/**", "tests/**", "src/*.py", "docs/**", "**", "src/a.py"]
BUDGETS = st.one_of(st.none(), st.floats(0.01, 5), st.integers(1, 200))
ACTIONS = ["write", "commit", "merge", "delete", "deploy"]


@st.composite
def configs(draw: st.DrawFn) -> RepoConfig:
    tools = draw(st.one_of(st.none(), st.lists(st.sampled_from(TOOLS), unique=True)))
    writes = draw(st.one_of(st.none(), st.lists(st.sampled_from(WRITE_GLOBS), unique=True)))
    scope = None if writes is None else Scope.model_validate({"filesystem": {"write": writes}})
    usd = draw(st.one_of(st.none(), st.floats(0.01, 5)))
    calls = draw(st.one_of(st.none(), st.integers(1, 200)))
    return RepoConfig(
        tools=tools,
        scope=scope,
        budget=Budget(usd=usd, tool_calls=calls),
        approval_required_for=draw(st.lists(st.sampled_from(ACTIONS), unique=True)),
    )


JOB = """
job_type: code
prompt: fix the bug; done when the tests pass
tools: {tools}
scope: {{filesystem: {{write: {writes}}}}}
"""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(TOOLS), min_size=1, unique=True),
    st.lists(st.sampled_from(WRITE_GLOBS), min_size=1, unique=True),
    configs(),
)
def test_a_repo_config_only_narrows(tools: list[str], writes: list[str], cfg: RepoConfig) -> None:
    """Whatever it says, a repo config removes tools, shrinks scopes and budgets and adds
    gates; it never grants what policy alone would not."""
    request = req(JOB.format(tools=tools, writes=writes))
    alone, narrowed = plan(request, POLICY_OBJ), plan(request, POLICY_OBJ, cfg)
    for kind in ("tool", "read", "write", "network", "credential", "sql_connection"):
        assert set(narrowed.granted(kind)) <= set(alone.granted(kind)), kind
    for field in ("usd", "minutes", "tool_calls", "tokens"):
        was, now = getattr(alone.budget, field), getattr(narrowed.budget, field)
        # A limit may appear where there was none; one that was there is never lifted.
        assert was is None or (now is not None and now <= was), field
    # Every gate policy alone holds for a tool the narrowed plan still grants (or an action
    # the job names) is still there.
    kept = set(narrowed.granted("tool"))
    held = {(g.action, g.rule) for g in narrowed.gates}
    for g in alone.gates:
        implied = g.action == "write" and kept & {"filesystem", "shell"}
        if implied or g.action in request.job.approval_required_for:
            assert (g.action, g.rule) in held, g
    for action in cfg.approval_required_for:
        assert any(g.action == action for g in narrowed.gates), action
