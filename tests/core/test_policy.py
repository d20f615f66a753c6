import pytest

from bot.core.errors import ValidationFailed
from bot.core.policy import merge_policy, parse_config

BASE = """
groups:
  platform: [maya@example.com, omar]
roles:
  maintainer: [group:platform]
  developer: ["*"]
job_types:
  code:
    run_by: [role:developer]
    tools: [filesystem]
gates:
  - id: w
    actions: [write]
    approvers: {any_of: [role:maintainer]}
"""


def test_merge_records_where_each_rule_came_from() -> None:
    p = merge_policy([("policies/base.yaml", BASE)])
    assert p.rule("job_types.code.tools") == "policies/base.yaml#job_types.code.tools"
    assert p.rule("gates.w") == "policies/base.yaml#gates.w"


def test_roles_resolve_through_groups_case_insensitively() -> None:
    p = merge_policy([("policies/base.yaml", BASE)])
    assert p.matches("role:maintainer", "Maya@Example.com")
    omar = p.directory({"omar": 7}.get)  # policy names GitHub people by login: resolved to ids
    assert p.matches("role:maintainer", "github:7", omar)
    assert not p.matches("role:maintainer", "omar", omar)  # a bare login is no identity
    assert not p.matches("role:maintainer", "dana@example.com")
    assert p.matches("role:developer", "anyone")
    assert p.roles_of("github:7", omar) == ["developer", "maintainer"]


def test_group_cycles_grant_nothing() -> None:
    p = merge_policy([("policies/a.yaml", "groups:\n  a: [group:b]\n  b: [group:a]\n")])
    assert not p.matches("group:a", "x")


def test_name_defined_in_two_files_is_an_error_at_the_second() -> None:
    with pytest.raises(ValidationFailed) as info:
        merge_policy(
            [("policies/a.yaml", BASE), ("policies/b.yaml", "roles:\n  maintainer: [x]\n")]
        )
    assert [e.render() for e in info.value.errors] == [
        "policies/b.yaml:2:3: roles.maintainer: already defined in policies/a.yaml"
    ]


def test_duplicate_gate_id_is_an_error() -> None:
    extra = "gates:\n  - id: w\n    actions: [merge]\n    approvers: {any_of: [x]}\n"
    with pytest.raises(ValidationFailed) as info:
        merge_policy([("policies/a.yaml", BASE), ("policies/b.yaml", extra)])
    assert info.value.errors[0].render().startswith("policies/b.yaml:2:5: gates[0].id:")


def test_requirement_needs_exactly_one_form() -> None:
    bad = "gates:\n  - id: w\n    actions: [write]\n    approvers: {any_of: [a], count: 2}\n"
    with pytest.raises(ValidationFailed) as info:
        merge_policy([("policies/a.yaml", bad)])
    err = info.value.errors[0].render()
    assert err.startswith("policies/a.yaml:4:5: gates[0].approvers:")
    assert "exactly one of" in err


def test_unknown_model_class_in_route() -> None:
    bad = "models:\n  classes: {a: {model: x/y}}\n  routes: [{id: r, use: b}]\n"
    with pytest.raises(ValidationFailed) as info:
        merge_policy([("policies/a.yaml", bad)])
    # Located at the route's `use`, not at `models:`.
    assert str(info.value) == "policies/a.yaml:3:20: models.routes[0].use: unknown model group 'b'"


def test_no_policy_files_fails_closed() -> None:
    with pytest.raises(ValidationFailed) as info:
        merge_policy([])
    assert "no policy files" in str(info.value)


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_config(".agentplane/config.yaml", "tools: [filesystem]\nwiden: true\n")
    assert info.value.errors[0].render().startswith(".agentplane/config.yaml:2:1: widen:")


def test_private_networks_must_be_cidrs() -> None:
    bad = (
        "job_types:\n  browser:\n    run_by: ['*']\n"
        "    private_networks: [10.0.0.0/8, 10.0.0.300/32]\n"
    )
    with pytest.raises(ValidationFailed) as info:
        merge_policy([("policies/a.yaml", bad)])
    err = info.value.errors[0].render()
    assert err.startswith("policies/a.yaml:4:5: job_types.browser.private_networks:"), err
    assert "'10.0.0.300/32' is not a network in CIDR form" in err
