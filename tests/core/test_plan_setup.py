"""The setup phase in the plan: the repo config declares it, policy narrows it."""

from __future__ import annotations

import pytest

from bot.core.errors import ValidationFailed
from bot.core.policy import merge_policy, parse_config
from tests.core.test_plan import CODE_JOB, POLICY, req
from tests.support.planning import plan

SETUP_POLICY = merge_policy(
    [
        ("policies/p.yaml", POLICY),
        (
            "policies/setup.yaml",
            "setup:\n  registries: [pypi.org, '*.pythonhosted.org']\n  max_commands: 2\n",
        ),
    ]
)
CONFIG = """
setup:
  commands: [python3 -m venv /env, /env/bin/pip install -r requirements.txt]
  inputs: [requirements.txt]
"""


def test_setup_gets_policys_registries_each_with_its_rule() -> None:
    p = plan(req(CODE_JOB), SETUP_POLICY, parse_config(".agentplane/config.yaml", CONFIG))
    assert p.setup is not None and p.setup.commands[0] == "python3 -m venv /env"
    assert p.setup.registries == ["pypi.org", "*.pythonhosted.org"]
    assert p.setup.inputs == ["requirements.txt"] and p.setup.rule == "policies/setup.yaml#setup"
    registry = next(d for d in p.decisions if d.kind == "registry")
    assert registry.granted and registry.rule == "policies/setup.yaml#setup.registries"
    assert p.granted("network") == []  # setup's registries are never the agent's network


def test_repo_config_can_only_narrow_the_registries() -> None:
    config = CONFIG + "  registries: [files.pythonhosted.org, evil.example.com]\n"
    p = plan(req(CODE_JOB), SETUP_POLICY, parse_config(".agentplane/config.yaml", config))
    assert p.setup is not None and p.setup.registries == ["files.pythonhosted.org"]
    (denied,) = [d for d in p.denied if d.kind == "registry"]
    assert denied.subject == "evil.example.com" and "policy does not allow" in denied.reason


@pytest.mark.parametrize(
    ("policy_text", "why"),
    [
        ("setup:\n  registries: [pypi.org]\n  job_types: [sql]\n", "does not include 'code'"),
        ("setup:\n  registries: [pypi.org]\n  max_commands: 1\n", "2 setup commands, policy"),
    ],
)
def test_setup_policy_does_not_allow_is_denied_in_the_plan(policy_text: str, why: str) -> None:
    policy = merge_policy([("policies/p.yaml", POLICY), ("policies/s.yaml", policy_text)])
    p = plan(req(CODE_JOB), policy, parse_config(".agentplane/config.yaml", CONFIG))
    assert p.setup is None
    (denied,) = [d for d in p.denied if d.kind == "setup"]
    assert why in denied.reason and denied.rule == "policies/s.yaml#setup"


def test_no_config_no_setup_and_the_default_scratch() -> None:
    p = plan(req(CODE_JOB), SETUP_POLICY)
    assert p.setup is None and ".pytest_cache" in p.scratch
    assert not [d for d in p.decisions if d.kind in ("setup", "registry")]


@pytest.mark.parametrize(
    "bad",
    [
        "setup: {commands: []}\n",
        "setup: {commands: [x], inputs: [/etc/passwd]}\n",
        "setup: {commands: [x], inputs: ['../up']}\n",
        "scratch: ['../outside']\n",
        "scratch: ['*.cache']\n",
    ],
)
def test_bad_setup_config_is_a_located_error(bad: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_config(".agentplane/config.yaml", bad)
    assert err.value.errors[0].path == ".agentplane/config.yaml"
