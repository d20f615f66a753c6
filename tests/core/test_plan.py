from pathlib import Path

import pytest

from bot.core.job import parse_job
from bot.core.policy import merge_policy, parse_config
from bot.core.render import render_plan
from bot.core.request import RunRequest
from tests.support.planning import plan

POLICY = """
groups: {platform: [maya@example.com]}
roles: {maintainer: [group:platform], developer: ["*"], analyst: [ana@example.com]}
job_types:
  code:
    run_by: [role:developer]
    tools: [filesystem, shell]
    scope: {filesystem: {read: ["**"], write: ["src/**", "tests/**"]}}
  sql:
    run_by: [role:analyst]
    tools: [sql]
gates:
  - {id: writes, actions: [write], approvers: {any_of: [role:maintainer]}}
default_approvers: {count: 2, of: [role:maintainer]}
budgets:
  default: {usd: 1.0, minutes: 10, tool_calls: 40}
  max: {usd: 2.0, minutes: 30, tool_calls: 100}
models:
  classes:
    small: {model: ollama/qwen}
    frontier: {model: anthropic/claude}
  routes:
    - {id: sql-frontier, when: {job_types: [sql]}, use: frontier}
  default: small
"""
POLICY_OBJ = merge_policy([("policies/p.yaml", POLICY)])


def req(
    job_yaml: str, requester: str = "dana@example.com", prompt: str | None = None
) -> RunRequest:
    return RunRequest(
        job=parse_job(".agentplane/jobs/j.yaml", job_yaml),
        job_path="j.yaml",
        requester=requester,
        prompt=prompt,
        repo="r",
        commit="c" * 40,
    )


CODE_JOB = """
job_type: code
prompt: fix the bug; done when the tests pass
tools: [filesystem, shell]
scope: {filesystem: {write: ["src/**"]}}
"""


def test_grants_carry_the_rule_that_produced_them() -> None:
    p = plan(req(CODE_JOB), POLICY_OBJ)
    assert p.runnable
    assert p.granted("tool") == ["filesystem", "shell"]
    tool = next(d for d in p.decisions if d.subject == "shell")
    assert tool.rule == "policies/p.yaml#job_types.code.tools"
    assert p.granted("write") == ["src/**"]


def test_tool_not_in_policy_is_denied_with_rule() -> None:
    p = plan(req(CODE_JOB.replace("[filesystem, shell]", "[filesystem, browser]")), POLICY_OBJ)
    (denied,) = p.denied
    assert (denied.subject, denied.rule) == ("browser", "policies/p.yaml#job_types.code.tools")


def test_write_outside_policy_scope_is_denied() -> None:
    p = plan(req(CODE_JOB.replace('["src/**"]', '["src/**", "deploy/**"]')), POLICY_OBJ)
    assert p.granted("write") == ["src/**"]
    assert [d.subject for d in p.denied] == ["deploy/**"]
    assert p.denied[0].rule.endswith("job_types.code.scope.filesystem.write")


def test_repo_config_narrows() -> None:
    config = parse_config(".agentplane/config.yaml", "tools: [filesystem]\n")
    p = plan(req(CODE_JOB), POLICY_OBJ, config)
    assert p.granted("tool") == ["filesystem"]
    shell = next(d for d in p.decisions if d.subject == "shell")
    assert not shell.granted and shell.rule == ".agentplane/config.yaml"


def test_repo_config_cannot_widen() -> None:
    config = parse_config(
        ".agentplane/config.yaml",
        """
tools: [filesystem, shell, browser]
scope: {filesystem: {write: ["**"]}}
budget: {usd: 100, tool_calls: 1000}
""",
    )
    job = CODE_JOB.replace("[filesystem, shell]", "[filesystem, shell, browser]").replace(
        '["src/**"]', '["src/**", "deploy/**"]'
    )
    p = plan(req(job), POLICY_OBJ, config)
    assert p.granted("tool") == ["filesystem", "shell"]  # browser: policy still says no
    assert p.granted("write") == ["src/**"]  # deploy/**: policy still says no
    assert p.budget.usd == 1.0 and p.budget.tool_calls == 40  # config cannot raise budgets


def test_budget_is_capped_by_policy_max_and_config() -> None:
    job = CODE_JOB + "budget: {usd: 50, minutes: 5}\n"
    config = parse_config(".agentplane/config.yaml", "budget: {minutes: 2}\n")
    p = plan(req(job), POLICY_OBJ, config)
    assert (p.budget.usd, p.budget.minutes, p.budget.tool_calls) == (2.0, 2, 40)
    # A cap is never silent: the plan names each lowered limit and the rule that lowered it.
    assert p.budget_capped == (
        "usd 50.0 capped to 2.0 [policies/p.yaml#budgets.max]",
        "minutes 5.0 capped to 2.0 [.agentplane/config.yaml#budget]",
    )
    text = render_plan(p)
    assert "  ! budget     the job's usd 50.0 capped to 2.0 [policies/p.yaml#budgets.max]" in text
    assert "minutes 5.0 capped" in text and "tool_calls" not in text  # asked for none


def test_requester_not_allowed_to_run_job_type() -> None:
    p = plan(req("job_type: sql\nprompt: slow queries\ntools: [sql]\n"), POLICY_OBJ)
    assert not p.allowed.granted and not p.runnable
    assert p.allowed.rule == "policies/p.yaml#job_types.sql.run_by"


def test_job_type_missing_from_policy() -> None:
    p = plan(req("job_type: doc\nprompt: write docs\n"), POLICY_OBJ)
    assert not p.allowed.granted and "no job type 'doc'" in p.allowed.reason


def test_gates_from_policy_then_default_then_fail_closed() -> None:
    job = CODE_JOB + "approval_required_for: [write, delete]\n"
    gates = {g.action: g for g in plan(req(job), POLICY_OBJ).gates}
    assert gates["write"].rule == "policies/p.yaml#gates.writes"
    assert gates["delete"].rule == "policies/p.yaml#default_approvers"
    no_default = POLICY.replace("default_approvers: {count: 2, of: [role:maintainer]}\n", "")
    gates = {g.action: g for g in plan(req(job), merge_policy([("p.yaml", no_default)])).gates}
    assert gates["delete"].approvers.any_of == [] and gates["delete"].rule == "policy#gates"


def test_write_gate_is_implied_even_if_the_job_omits_it() -> None:
    assert [g.action for g in plan(req(CODE_JOB), POLICY_OBJ).gates] == ["write"]


def test_model_routes_by_job_type_with_rule() -> None:
    p = plan(req(CODE_JOB), POLICY_OBJ)
    assert p.model is not None and p.model.model_class == "small"
    assert p.model.rule == "policies/p.yaml#models.default"
    sql = plan(
        req("job_type: sql\nprompt: q\ntools: [sql]\n", requester="ana@example.com"), POLICY_OBJ
    )
    assert sql.model is not None and sql.model.rule == "policies/p.yaml#models.routes.sql-frontier"


def test_unknown_model_class_needs_clarification() -> None:
    p = plan(req(CODE_JOB + "model: gigantic\n"), POLICY_OBJ)
    assert not p.runnable and "gigantic" in (p.clarification or "")


def test_no_prompt_anywhere_stops_for_clarification() -> None:
    p = plan(
        req(CODE_JOB.replace("prompt: fix the bug; done when the tests pass\n", "")), POLICY_OBJ
    )
    assert not p.runnable and "no prompt" in (p.clarification or "")
    p = plan(
        req(
            CODE_JOB.replace("prompt: fix the bug; done when the tests pass\n", ""),
            prompt="from the PR; done when green",
        ),
        POLICY_OBJ,
    )
    assert p.runnable and p.prompt == "from the PR; done when green"


def test_job_type_is_classified_when_omitted_with_reason() -> None:
    p = plan(req("prompt: fix the failing test in the code\ntools: [filesystem]\n"), POLICY_OBJ)
    assert p.job_type == "code" and "classified" in p.job_type_reason
    vague = plan(req("prompt: hello there\n"), POLICY_OBJ)
    assert not vague.runnable and "unclear" in (vague.clarification or "")


def test_plan_is_pure_and_its_digest_stable() -> None:
    assert plan(req(CODE_JOB), POLICY_OBJ).digest() == plan(req(CODE_JOB), POLICY_OBJ).digest()


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / ".agentplane/jobs").glob("*.yaml")), ids=str
)
def test_every_shipped_job_is_allowed_by_the_shipped_policy(path: Path) -> None:
    """The examples run as shipped (their credentials and DSNs come from the host)."""
    root = Path(__file__).parents[2]
    policy = merge_policy(
        [(f"policies/{f.name}", f.read_text()) for f in sorted((root / "policies").glob("*.yaml"))]
    )
    rel = str(path.relative_to(root))
    job = parse_job(rel, path.read_text())
    p = plan(RunRequest(job=job, job_path=rel, requester="dana@example.com", repo="demo",
                        commit="0" * 40), policy)  # fmt: skip
    assert p.allowed.granted, p.allowed.reason
    assert not p.denied, [(d.kind, d.subject, d.reason) for d in p.denied]
    assert p.runnable, p.clarification
    # The embedded default plays each shipped job's own recorded turns.
    assert p.model is not None and p.model.params["model"] == f"scripted/{path.stem}"
    assert (root / ".agentplane/scripts" / f"{path.stem}.yaml").is_file()


def test_a_gate_that_can_never_be_met_is_said_in_the_plan() -> None:
    # default_approvers wants 2 maintainers; the role has one person (maya).
    p = plan(req(CODE_JOB + "approval_required_for: [delete]\n"), POLICY_OBJ)
    gates = {g.action: g for g in p.gates}
    assert gates["write"].never_met == ""
    assert gates["delete"].never_met == (
        "needs 2 of role:maintainer, which has 1 person other than the requester"
    )
    assert "! gate       delete can never be met: needs 2 of role:maintainer" in render_plan(p)
    # maya's own run: the one maintainer is its author, who never counts.
    mine = plan(req(CODE_JOB, requester="maya@example.com"), POLICY_OBJ)
    (write,) = mine.gates
    assert write.never_met == "nobody other than the requester is in role:maintainer"
