"""The shipped example policy: it grants nothing to everyone, and every gate it ships can pass."""

from __future__ import annotations

from itertools import combinations

from bot.core.policy import Policy, merge_policy
from tests.conftest import PROJECT

SHIPPED = "policies/default.yaml"


def shipped() -> Policy:
    return merge_policy([(SHIPPED, (PROJECT / SHIPPED).read_text())])


def people(policy: Policy) -> set[str]:
    """Everyone the policy names directly (not through a group or role)."""
    members = {m for table in (policy.groups, policy.roles) for ms in table.values() for m in ms}
    return {m for m in members if not m.startswith(("group:", "role:"))}


def test_a_stranger_may_run_nothing_and_approve_nothing() -> None:
    policy = shipped()
    assert "*" not in people(policy)
    stranger = "mallory@example.net"
    for name, jt in policy.job_types.items():
        assert not any(policy.matches(p, stranger) for p in jt.run_by), name
    assert not policy.roles_of(stranger)


def test_every_shipped_gate_can_be_met_whoever_of_the_runners_asks() -> None:
    policy = shipped()
    everyone = sorted(people(policy))
    runners = {
        who
        for jt in policy.job_types.values()
        for who in everyone
        if any(policy.matches(p, who) for p in jt.run_by)
    }
    assert runners, "somebody may run jobs"
    for gate in policy.gates:
        for requester in sorted(runners):
            others = [p for p in everyone if p != requester]
            met = any(
                gate.approvers.evaluate(list(group), requester, policy.matches).ok
                for n in range(1, len(others) + 1)
                for group in combinations(others, n)
            )
            assert met, f"gate {gate.id} cannot be met for a run by {requester}"
