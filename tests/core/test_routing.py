import pytest
from pydantic import ValidationError

from bot.core.routing import Routing, route

ROUTING = Routing.model_validate(
    {
        "model_list": [
            {"model_name": "frontier", "litellm_params": {"model": "anthropic/claude"}},
            {"model_name": "small", "litellm_params": {"model": "openai/mini"}},
            {"model_name": "small", "litellm_params": {"model": "openai/mini-eu"}},
            {
                "model_name": "self-hosted",
                "litellm_params": {"model": "openai/qwen", "api_base": "http://llm:8000/v1"},
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
        "fallbacks": [{"frontier": ["small"]}],
    }
)


def go(
    job_type: str = "code",
    sensitivity: str = "internal",
    mutating: bool = False,
    latency: str = "batch",
    usd: float | None = 1.0,
) -> tuple[str, str, str] | None:
    return route(ROUTING, job_type, sensitivity, mutating, latency, usd)


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


def test_groups_fallbacks_and_router_config() -> None:
    assert len(ROUTING.groups()["small"]) == 2  # a load-balanced group
    config = ROUTING.router_config("frontier")
    assert config["fallbacks"] == [{"frontier": ["small"]}]
    assert {e["model_name"] for e in config["model_list"]} == {"frontier", "small"}


@pytest.mark.parametrize(
    "bad",
    [
        {"routes": [{"id": "r", "use": "nope"}]},
        {"default": "nope"},
        {"fallbacks": [{"nope": []}]},
        {"model_list": [{"model_name": "a", "litellm_params": {"api_base": "x"}}]},
    ],
)
def test_unknown_groups_and_bad_entries_are_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Routing.model_validate(bad)
