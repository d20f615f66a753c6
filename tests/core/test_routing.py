import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.core.errors import ValidationFailed
from bot.core.policy import merge_policy
from bot.core.routing import NotCleared, Routing, price_basis, route, why_no_route

LOCAL = "http://llm:8000/v1"
MODELS: dict[str, Any] = {
    "model_list": [
        {"model_name": "frontier", "litellm_params": {"model": "anthropic/claude"}},
        {"model_name": "small", "litellm_params": {"model": "openai/mini"}},
        {"model_name": "small", "litellm_params": {"model": "openai/mini-eu"}},
        {
            "model_name": "self-hosted",
            "litellm_params": {"model": "openai/qwen", "api_base": LOCAL},
        },
    ],
    "routes": [
        {
            "id": "customer-data",
            "when": {"sensitivity": ["customer", "restricted"]},
            "use": "self-hosted",
        },
        {"id": "risky", "when": {"mutating": True, "job_types": ["code"]}, "use": "frontier"},
        {"id": "interactive", "when": {"latency": ["interactive"]}, "use": "small"},
        {"id": "cheap", "when": {"mutating": False, "max_budget_usd": 0.1}, "use": "small"},
    ],
    "default": "frontier",
    "fallbacks": [{"frontier": ["small"]}, {"self-hosted": ["frontier"]}],
    "cleared_for": {"self-hosted": ["public", "internal", "customer", "restricted"]},
}
ROUTING = Routing.model_validate(MODELS)


def go(
    job_type: str = "code",
    sensitivity: str = "internal",
    mutating: bool = False,
    latency: str = "batch",
    usd: float | None = 1.0,
    routing: Routing = ROUTING,
) -> tuple[str, str, str] | None:
    return route(routing, job_type, sensitivity, mutating, latency, usd)


def test_customer_data_stays_self_hosted_whatever_else() -> None:
    group, rule, reason = go(sensitivity="customer", mutating=True)  # type: ignore[misc]
    assert (group, rule) == ("self-hosted", "models.routes.customer-data")
    assert "sensitivity customer" in reason


def test_mutating_code_goes_frontier() -> None:
    assert go(mutating=True)[:2] == ("frontier", "models.routes.risky")  # type: ignore[index]
    assert go(job_type="doc", mutating=True)[:2] == ("frontier", "models.default")  # type: ignore[index]


def test_latency_class() -> None:
    assert go(latency="interactive")[:2] == ("small", "models.routes.interactive")  # type: ignore[index]


def test_budget_rule() -> None:
    assert go(usd=0.05)[:2] == ("small", "models.routes.cheap")  # type: ignore[index]
    assert go(usd=0.5)[:2] == ("frontier", "models.default")  # type: ignore[index]
    assert go(usd=None)[:2] == ("frontier", "models.default")  # type: ignore[index]


def test_no_default_and_no_match_is_none() -> None:
    bare = Routing.model_validate(
        {
            "classes": {"a": {"model": "x/y"}},
            "routes": [{"id": "r", "when": {"job_types": ["sql"]}, "use": "a"}],
        }
    )
    assert route(bare, "code", "internal", False, "batch", None) is None


def test_groups_and_deployments_have_ids() -> None:
    assert len(ROUTING.groups()["small"]) == 2  # a load-balanced group
    config = ROUTING.router_config("frontier", sensitivity="internal")
    assert config["fallbacks"] == [{"frontier": ["small"]}]
    ids = [e["model_info"]["id"] for e in config["model_list"]]
    assert ids == ["frontier#0", "small#0", "small#1"]


# -- routes choose, they do not grant: clearance --------------------------------------------


def test_a_fallback_not_cleared_for_the_job_is_not_used() -> None:
    chain = ROUTING.fallback_chain("self-hosted", "customer")
    assert [(link.group, link.used, link.rule) for link in chain] == [
        ("frontier", False, "models.cleared_for")
    ]
    assert "frontier is not cleared for customer data" in chain[0].reason
    config = ROUTING.router_config("self-hosted", sensitivity="customer")
    assert config["fallbacks"] == []
    assert {e["model_name"] for e in config["model_list"]} == {"self-hosted"}
    assert config["refused_fallbacks"] == [["frontier", chain[0].reason]]
    # The same link for internal data is used, and says by which rule.
    internal = ROUTING.fallback_chain("self-hosted", "internal")
    assert [(link.used, link.rule) for link in internal] == [(True, "models.fallbacks")]


def test_without_the_sensitivity_only_fully_cleared_fallbacks_are_used() -> None:
    assert ROUTING.router_config("frontier")["fallbacks"] == []


def test_a_route_to_a_group_not_cleared_is_skipped_and_said() -> None:
    routing = Routing.model_validate(
        {**MODELS, "routes": MODELS["routes"][1:], "default": "self-hosted"}
    )
    group, _, reason = go(sensitivity="restricted", mutating=True, routing=routing)  # type: ignore[misc]
    assert group == "self-hosted"
    assert "route risky skipped: frontier is not cleared for restricted data" in reason
    nowhere = Routing.model_validate({**MODELS, "routes": MODELS["routes"][1:], "cleared_for": {}})
    assert go(sensitivity="customer", routing=nowhere) is None
    why = why_no_route(nowhere, "code", "customer", False, "batch", 1.0)
    assert "default frontier: frontier is not cleared for customer data" in why


def test_router_config_refuses_a_primary_not_cleared() -> None:
    with pytest.raises(NotCleared, match=r"frontier may not serve this job \(models.cleared_for\)"):
        ROUTING.router_config("frontier", sensitivity="restricted")


def test_a_route_naming_a_sensitivity_its_group_is_not_cleared_for_is_a_located_error() -> None:
    text = (
        "models:\n"
        "  classes: {local: {model: openai/qwen, api_base: 'http://llm:8000/v1'}}\n"
        "  routes:\n"
        "    - {id: customer-data, when: {sensitivity: [customer]}, use: local}\n"
    )
    with pytest.raises(ValidationFailed) as err:
        merge_policy([("policies/routing.yaml", text)])
    assert str(err.value).startswith(
        "policies/routing.yaml:4:60: models.routes[0].use: route customer-data sends customer data"
    )
    assert "declare it in models.cleared_for.local" in str(err.value)


# -- router_settings: a pasted litellm proxy config --------------------------------------------


def test_router_settings_from_a_litellm_proxy_config() -> None:
    routing = Routing.model_validate(
        {
            **MODELS,
            "router_settings": {
                "timeout": 30,
                "num_retries": 3,
                "routing_strategy": "least-busy",
                "allowed_fails": 1,
                "cooldown_time": 60,
            },
        }
    )
    config = routing.router_config("frontier", sensitivity="internal")
    assert (config["timeout"], config["num_retries"]) == (30, 3)
    assert config["router_settings"] == {
        "routing_strategy": "least-busy",
        "allowed_fails": 1,
        "cooldown_time": 60,
    }
    # Without any: litellm's 6000 s is never the timeout.
    assert ROUTING.router_config("frontier", sensitivity="internal")["timeout"] == 300


@pytest.mark.parametrize(
    ("settings", "where", "message"),
    [
        ({"timeout": "soon"}, "models.router_settings.timeout", "valid number"),
        ({"routing_strategy": "fastest"}, "models.router_settings.routing_strategy", "input"),
        ({"redis_host": "x"}, "models.router_settings.redis_host", "unknown field"),
        (
            {"context_window_fallbacks": [{"a": ["b"]}]},
            "models.router_settings.context_window_fallbacks",
            "not supported",
        ),
    ],
)
def test_bad_router_settings_are_located(
    settings: dict[str, Any], where: str, message: str
) -> None:
    import yaml

    text = yaml.safe_dump({"models": {**MODELS, "router_settings": settings}})
    with pytest.raises(ValidationFailed) as err:
        merge_policy([("policies/routing.yaml", text)])
    shown = str(err.value)
    assert shown.startswith("policies/routing.yaml:") and f": {where}: " in shown
    assert message in shown


def test_num_retries_set_twice_differently_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"num_retries\n  set it once"):
        Routing.model_validate({**MODELS, "num_retries": 2, "router_settings": {"num_retries": 3}})


# -- prices -----------------------------------------------------------------------------------


def test_price_comes_from_litellm_only_for_the_providers_own_api() -> None:
    assert price_basis({"model": "openai/gpt-4o"}).kind == "provider"
    assert price_basis(
        {"model": "openai/gpt-4o", "api_base": "https://api.openai.com/v1"}
    ).kind == ("provider")
    # vLLM serving a model under a hosted name is not billed at the hosted price...
    local = price_basis({"model": "openai/gpt-4o", "api_base": "http://10.0.0.5:8000/v1"})
    assert local.kind == "unknown" and "input_cost_per_token" in local.reason
    # ...unless policy says what to bill it as, or gives its price.
    named = price_basis({"model": "openai/gpt-4o", "api_base": LOCAL}, {"base_model": "gpt-4o"})
    assert (named.kind, named.model) == ("provider", "gpt-4o")
    priced = {"model": "openai/q", "api_base": LOCAL, "input_cost_per_token": 0}
    assert price_basis({**priced, "output_cost_per_token": 0}).kind == "policy"


def test_unknown_cost_is_noted_and_can_be_refused_for_usd_budgets() -> None:
    notes = ROUTING.cost_notes()
    assert [where for where, _ in notes] == [("routes", 0, "use")]
    fallback = Routing.model_validate({**MODELS, "fallbacks": [{"frontier": ["self-hosted"]}]})
    assert ("fallbacks", 0) in [where for where, _ in fallback.cost_notes()]
    assert "cost cannot be known: group self-hosted" in notes[0][1]
    strict = Routing.model_validate({**MODELS, "unknown_cost": "refuse"})
    assert go(sensitivity="customer", routing=strict) is None  # usd-budgeted: refused
    assert go(sensitivity="customer", usd=None, routing=strict)[0] == "self-hosted"  # type: ignore[index]
    assert "unknown_cost: refuse" in why_no_route(strict, "code", "customer", False, "batch", 1.0)


def test_half_a_price_is_an_error() -> None:
    bad = {
        "model_list": [
            {
                "model_name": "a",
                "litellm_params": {"model": "openai/q", "input_cost_per_token": 1e-6},
            }
        ]
    }
    with pytest.raises(ValidationError, match="give both input_cost_per_token"):
        Routing.model_validate(bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"routes": [{"id": "r", "use": "nope"}]},
        {"default": "nope"},
        {"fallbacks": [{"nope": []}]},
        {"cleared_for": {"nope": ["public"]}},
        {"router_settings": {"fallbacks": [{"nope": []}]}},
        {"model_list": [{"model_name": "a", "litellm_params": {"api_base": "x"}}]},
    ],
)
def test_unknown_groups_and_bad_entries_are_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Routing.model_validate(bad)


def test_the_documented_models_section_is_valid_policy() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Models: routing by risk") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    policy = merge_policy([("policies/routing.yaml", block.group(1))])
    models = policy.models
    assert models.router_config("self-hosted", sensitivity="customer")["timeout"] == 60
    assert [link.used for link in models.fallback_chain("self-hosted", "customer")] == [False]
    assert models.cost_notes() == []  # every route's cost can be known
