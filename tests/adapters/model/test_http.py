"""The litellm adapter over real HTTP: a local server speaking OpenAI and Anthropic, with
the faults real servers have (hangs, 429s, 500s, cut or empty answers, no usage)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.model.client import LiteLLMClient
from bot.adapters.model.doctor import check_groups
from bot.adapters.model.prices import listed_price
from bot.adapters.model.turn import (
    CallLimits,
    ModelBudgetError,
    ModelCostUnknown,
    ModelResponseError,
    ModelTimedOut,
    ModelUnavailable,
    ending_problem,
    script_from_transcript,
)
from bot.core.routing import SENSITIVITIES, Routing
from tests.support.model_server import (
    EMPTY_CHOICES,
    KEY,
    ModelServer,
    Turn,
    client,
    deployment,
    hang,
    one,
    status,
)

USER = [{"role": "user", "content": "fix the failing test"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "fs_read",
            "description": "read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def anthropic(server: ModelServer, **params: Any) -> LiteLLMClient:
    entry = deployment("local", server.anthropic_base, "anthropic/claude-sonnet-4-5", **params)
    return client({"model_list": [entry], "router_settings": {"timeout": 2, "num_retries": 0}})


# -- 1. timeouts that hold, retries, load balancing --------------------------------------------


def test_a_hung_call_is_cancelled_when_the_runs_minutes_run_out(server: ModelServer) -> None:
    server.inject(hang(30))
    started = time.monotonic()
    with pytest.raises(ModelTimedOut) as err:
        one(server, router_settings={"timeout": 20}).complete_within(
            USER, [], CallLimits(seconds_left=1.0)
        )
    assert time.monotonic() - started < 3
    assert err.value.budget
    assert "minutes budget ran out while it was in flight" in str(err.value)


def test_a_retry_after_longer_than_the_budget_is_cancelled_not_slept(server: ModelServer) -> None:
    server.inject(status(429, retry_after=30))
    started = time.monotonic()
    with pytest.raises(ModelTimedOut):
        one(server, router_settings={"num_retries": 2}).complete_within(
            USER, [], CallLimits(seconds_left=1.5)
        )
    assert time.monotonic() - started < 3.5
    time.sleep(0.3)
    assert len(server.requests) == 1  # the retry died with the call


def test_each_attempt_times_out_by_policy_and_is_retried(server: ModelServer) -> None:
    server.inject(hang(30))
    turn = one(server, router_settings={"timeout": 0.5, "num_retries": 1}).complete(USER, [])
    assert (turn.content, turn.retries, len(server.requests)) == ("done", 1, 2)


def test_a_deployments_own_timeout_is_its_attempts_timeout(server: ModelServer) -> None:
    server.inject(hang(30))
    started = time.monotonic()
    c = one(server, params={"timeout": 0.5}, router_settings={"timeout": 20, "num_retries": 1})
    assert c.complete(USER, []).retries == 1
    assert time.monotonic() - started < 3


def test_429_and_500_are_retried_and_the_turn_counts_them(server: ModelServer) -> None:
    server.inject(status(429, retry_after=0.1), status(500))
    turn = one(server, router_settings={"num_retries": 2}).complete(USER, [])
    assert (turn.content, turn.retries) == ("done", 2)


def test_a_load_balanced_group_with_a_dead_replica_uses_the_healthy_one() -> None:
    with ModelServer(always=hang(30)) as dead, ModelServer() as healthy:
        c = client(
            {
                "model_list": [
                    deployment("local", dead.openai_base),
                    deployment("local", healthy.openai_base),
                ],
                # As pasted from a litellm proxy config.
                "router_settings": {
                    "routing_strategy": "simple-shuffle",
                    "timeout": 0.5,
                    "num_retries": 2,
                    "allowed_fails": 0,
                    "cooldown_time": 60,
                },
            }
        )
        turns = [c.complete(USER, []) for _ in range(4)]
    assert {t.deployment for t in turns} == {"local#1"}
    assert {t.api_base for t in turns} == {healthy.openai_base}
    assert len(dead.requests) <= 1  # tried at most once, then cooled down


# -- 2. costs and tokens -----------------------------------------------------------------------


def test_a_model_missing_from_the_price_map_has_unknown_cost_not_zero(server: ModelServer) -> None:
    turn = one(server).complete(USER, [])
    assert (turn.cost, turn.cost_source) == (None, "unknown")


def test_a_self_hosted_model_named_like_a_hosted_one_is_not_billed_the_hosted_price(
    server: ModelServer,
) -> None:
    server.turns = [Turn(usage=(1000, 100))]
    assert one(server, model="openai/gpt-4o-mini").complete(USER, []).cost is None
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    priced = one(server, model="openai/gpt-4o-mini", params=prices).complete(USER, [])
    assert (priced.cost, priced.cost_source) == (pytest.approx(1000e-6 + 100 * 2e-6), "policy")
    # Only when policy says so is it billed as the listed model.
    entry = {
        **deployment("local", server.openai_base, "openai/gpt-4o-mini"),
        "model_info": {"base_model": "gpt-4o-mini"},
    }
    named = client({"model_list": [entry]}).complete(USER, [])
    listed = listed_price("gpt-4o-mini")
    assert listed is not None
    assert (named.cost, named.cost_source) == (
        pytest.approx(1000 * listed[0] + 100 * listed[1]),
        "litellm",
    )


def test_max_tokens_is_what_the_budget_has_left(server: ModelServer) -> None:
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-5}
    c = one(server, params=prices, max_tokens=4000)
    c.complete_within(USER, [], CallLimits(usd_left=0.01))
    assert 990 <= server.requests[-1].body["max_tokens"] <= 1000  # $0.01 / $1e-5, less the prompt
    c.complete_within(USER, [], CallLimits(tokens_left=300))
    assert 250 < server.requests[-1].body["max_tokens"] < 300
    turn = c.complete(USER, [])
    assert server.requests[-1].body["max_tokens"] == turn.max_tokens == 4000  # policy's


def test_anthropic_gets_the_budgets_cap_not_litellms_default(server: ModelServer) -> None:
    prices = {"input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5}
    anthropic(server, **prices).complete_within(USER, [], CallLimits(usd_left=0.05))
    assert server.requests[-1].path == "/v1/messages"
    assert 3000 < server.requests[-1].body["max_tokens"] <= 3333  # not 64000


def test_a_server_named_like_a_hosted_model_gets_no_hosted_output_limit(
    server: ModelServer,
) -> None:
    one(server, model="openai/gpt-4o-mini").complete(USER, [])
    assert "max_tokens" not in server.requests[-1].body  # its own context, not gpt-4o-mini's
    one(server, model="openai/gpt-4o-mini", params={"max_tokens": 512}).complete(USER, [])
    assert server.requests[-1].body["max_tokens"] == 512


def test_a_budget_that_cannot_pay_for_the_prompt_stops_before_the_call(
    server: ModelServer,
) -> None:
    with pytest.raises(ModelBudgetError, match="over the budget of 10 tokens left"):
        one(server).complete_within(USER, [], CallLimits(tokens_left=10))
    assert server.requests == []


def test_a_response_without_usage_is_counted_by_the_tokenizer(server: ModelServer) -> None:
    server.turns = [Turn(content="a long enough answer " * 10, usage=None)]
    turn = one(server).complete(USER, [])
    assert turn.tokens_estimated
    assert turn.prompt_tokens > 0 and turn.completion_tokens > 20


def test_unknown_cost_can_be_refused_for_usd_budgets(server: ModelServer) -> None:
    c = one(server, unknown_cost="refuse")
    with pytest.raises(ModelCostUnknown, match=r"models.unknown_cost: refuse"):
        c.complete_within(USER, [], CallLimits(usd_left=1.0))
    assert server.requests == []
    assert c.complete_within(USER, [], CallLimits()).content == "done"  # no usd budget


# -- 3. honest endings, typed errors -----------------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_cut_answer_is_not_a_normal_ending(server: ModelServer, wire: str) -> None:
    server.turns = [Turn(content="Here is half a sen", finish="length")]
    c = one(server) if wire == "openai" else anthropic(server)
    turn = c.complete(USER, [])
    assert turn.finish == "length"  # Anthropic's stop_reason max_tokens, as litellm maps it
    assert "cut off at its max_tokens" in (ending_problem(turn) or "")


@pytest.mark.parametrize("content", [None, "", "  "])
def test_no_content_and_no_tool_call_is_not_an_answer(server: ModelServer, content: Any) -> None:
    server.turns = [Turn(content=content)]
    turn = one(server).complete(USER, [])
    assert "no tool call" in (ending_problem(turn) or "")


def test_empty_choices_is_a_typed_model_error(server: ModelServer) -> None:
    server.inject(EMPTY_CHOICES)
    with pytest.raises(ModelResponseError, match="answered with no choices"):
        one(server).complete(USER, [])


def test_anthropic_empty_content_is_not_an_answer(server: ModelServer) -> None:
    server.inject(EMPTY_CHOICES)
    turn = anthropic(server).complete(USER, [])
    assert "no content and no tool call" in (ending_problem(turn) or "")


def test_an_anthropic_answer_without_usage_is_a_typed_error(server: ModelServer) -> None:
    server.turns = [Turn(usage=None)]
    with pytest.raises(ModelResponseError, match="answered without `usage`"):
        anthropic(server).complete(USER, [])


def test_a_401_that_echoes_the_key_never_shows_it(server: ModelServer) -> None:
    server.inject(status(401, echo_key=True))
    with pytest.raises(ModelUnavailable) as err:
        one(server).complete(USER, [])
    assert server.requests[0].key == KEY  # the key went out, and the server echoed it
    text = str(err.value)
    assert KEY not in text and "[REDACTED]" in text
    assert "AuthenticationError" in text and "check the deployment's api_key" in text
    assert "Traceback" not in text and "\n" not in text


def test_a_cut_tool_call_is_passed_as_sent_and_replays(server: ModelServer, tmp_path: Path) -> None:
    cut = '{"path": "src/ca'
    server.turns = [Turn(content=None, tool_calls=(("fs_read", cut),), finish="length")]
    turn = one(server).complete(USER, TOOLS)
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [("fs_read", cut)]
    call = {"id": "1", "type": "function", "function": {"name": "fs_read", "arguments": cut}}
    transcript = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call], "finish": "length"},
    ]
    script = script_from_transcript(transcript)
    assert script == {
        "turns": [
            {
                "content": None,
                "tool_calls": [{"name": "fs_read", "raw_arguments": cut}],
                "finish": "length",
            }
        ]
    }
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(script))
    again = LiteLLMClient({"model": "scripted/replay", "api_base": str(tmp_path)}).complete(
        USER, TOOLS
    )
    assert (again.tool_calls[0].arguments, again.finish) == (cut, "length")


# -- 4. fallbacks that respect policy, and who answered ----------------------------------------


def test_the_turn_names_the_deployment_that_answered(server: ModelServer) -> None:
    turn = one(server).complete(USER, [])
    assert (turn.group, turn.deployment, turn.api_base) == ("local", "local#0", server.openai_base)
    assert (turn.model, turn.retries, turn.fallbacks) == ("openai/qwen2.5-coder", 0, 0)


def test_a_fallback_not_cleared_for_the_job_is_never_called() -> None:
    with ModelServer(always=status(500)) as local, ModelServer() as cloud:
        models = {
            "model_list": [
                deployment("self-hosted", local.openai_base),
                deployment("frontier", cloud.openai_base, "openai/gpt-4o"),
            ],
            "fallbacks": [{"self-hosted": ["frontier"]}],
            "cleared_for": {"self-hosted": list(SENSITIVITIES)},
            "router_settings": {"num_retries": 0, "timeout": 2},
        }
        with pytest.raises(ModelUnavailable) as err:
            client(models, "self-hosted", sensitivity="customer").complete(USER, [])
        assert "fallback frontier not used: frontier is not cleared for customer data" in str(
            err.value
        )
        assert cloud.requests == []
        # Internal data may take it, and the turn says the answer came from the fallback.
        turn = client(models, "self-hosted", sensitivity="internal").complete(USER, [])
        assert (turn.group, turn.fallbacks, turn.deployment) == ("frontier", 1, "frontier#0")
        assert turn.retries == 1 and len(cloud.requests) == 1


# -- 6. litellm's own log lines; doctor --------------------------------------------------------


def test_litellm_log_lines_go_through_logging_not_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        logging.getLogger("LiteLLM").warning("LiteLLM: something odd")
        logging.getLogger("LiteLLM Router").error("LiteLLM Router: worse")
    assert "something odd" not in capfd.readouterr().err
    seen = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("LiteLLM", "LiteLLM: something odd") in seen
    assert ("LiteLLM Router", "LiteLLM Router: worse") in seen


def test_doctor_calls_each_group_once_with_its_latency() -> None:
    with ModelServer() as ok, ModelServer(always=status(401)) as bad:
        routing = Routing.model_validate(
            {"model_list": [deployment("local", ok.openai_base), deployment("cloud", bad.url)]}
        )
        report = check_groups(routing, timeout_s=2)
    assert [(h.group, h.ok) for h in report] == [("local", True), ("cloud", False)]
    assert report[0].latency_ms and report[0].deployment == "local#0"
    assert "answered in" in report[0].describe()
    assert "AuthenticationError" in report[1].error
    assert len(ok.requests) == 1 and ok.requests[0].body["max_tokens"] == 8
