"""The agent loop over litellm's real HTTP path (tests/support/model_server), and whole
runs on it: budgets that hold during a call, honest endings, keys that never show."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.git import GitRepo
from bot.adapters.model.turn import ModelTurn, script_from_transcript
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.job import Budget
from bot.core.record import ToolCall
from bot.core.routing import SENSITIVITIES
from bot.families.filesystem.tools import filesystem_tools
from bot.run.agent import AgentFailed, Outcome, opening, run_agent
from bot.run.broker import Broker
from bot.run.engine import Engine
from tests.conftest import git
from tests.core.test_plan import CODE_JOB, POLICY_OBJ, req
from tests.support.model_server import (
    EMPTY_CHOICES,
    HUGE,
    KEY,
    ModelServer,
    Turn,
    client,
    deployment,
    hang,
    one,
    reply,
    status,
    turns_from_script,
)
from tests.support.planning import plan

BUDGET = Budget(usd=1.0, minutes=2, tool_calls=20)


pytestmark = pytest.mark.usefixtures("model_key")


class Loop:
    """A broker over a small workspace, and what each run_agent call recorded."""

    def __init__(self, tmp_path: Path) -> None:
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        self.calls: list[ToolCall] = []
        self.turns: list[ModelTurn] = []
        self.broker = Broker(
            plan(req(CODE_JOB), POLICY_OBJ),
            filesystem_tools(tmp_path, lambda _: True),
            self.calls.append,
        )

    def run(self, model: Any, budget: Budget = BUDGET) -> Outcome:
        return run_agent(
            opening("fix add()", self.broker), self.broker, model, budget, self.turns.append
        )


@pytest.fixture
def loop(tmp_path: Path) -> Loop:
    return Loop(tmp_path)


READ = ("fs_read", json.dumps({"path": "src/calc.py"}))


def test_the_system_prompt_says_the_scope_as_text(server: ModelServer, loop: Loop) -> None:
    assert loop.run(one(server)).status == "done"
    system = server.requests[0].body["messages"][0]["content"]
    assert "Scope: read **; write src/**." in system and "[" not in system


# -- honest endings ------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_cut_answer_fails_the_run_with_the_reason(
    server: ModelServer, loop: Loop, wire: str
) -> None:
    server.turns = [Turn(content="I changed add() so that it", finish="length")]
    base = server.openai_base if wire == "openai" else server.anthropic_base
    model = "openai/qwen2.5-coder" if wire == "openai" else "anthropic/claude-sonnet-4-5"
    with pytest.raises(AgentFailed, match="the answer was cut off at its max_tokens") as err:
        loop.run(client({"model_list": [deployment("local", base, model)]}))
    assert len(loop.turns) == 1  # paid for, so recorded
    assert err.value.messages[-1]["finish"] == "length"  # the transcript keeps it


@pytest.mark.parametrize("content", [None, ""])
def test_an_empty_answer_fails_the_run(server: ModelServer, loop: Loop, content: Any) -> None:
    server.turns = [Turn(content=content)]
    with pytest.raises(AgentFailed, match="no tool call"):
        loop.run(one(server))


def test_policy_may_ask_once_more_after_a_cut_answer(server: ModelServer, loop: Loop) -> None:
    server.inject(reply(Turn(content="I changed", finish="length")))
    outcome = loop.run(one(server, incomplete_answers="retry_once"))
    assert (outcome.status, outcome.message, len(loop.turns)) == ("done", "done", 2)


def test_empty_choices_fail_the_run_with_a_typed_error_not_a_traceback(
    server: ModelServer, loop: Loop
) -> None:
    server.inject(EMPTY_CHOICES)
    with pytest.raises(AgentFailed, match="answered with no choices"):
        loop.run(one(server))


def test_a_cut_tool_call_is_denied_by_the_broker_and_the_transcript_replays(
    server: ModelServer, loop: Loop
) -> None:
    server.turns = [Turn(content=None, tool_calls=(("fs_read", '{"path": "src/ca'),)), Turn()]
    outcome = loop.run(one(server))
    assert outcome.status == "done"
    assert loop.calls[0].decision == "deny" and loop.calls[0].rule == "broker#arguments"
    turns = script_from_transcript(outcome.messages)["turns"]
    assert turns[0]["tool_calls"] == [{"name": "fs_read", "raw_arguments": '{"path": "src/ca'}]


# -- budgets that hold -------------------------------------------------------------------------


def test_a_hung_server_ends_the_run_at_its_minutes_budget(server: ModelServer, loop: Loop) -> None:
    server.inject(hang(30))
    started = time.monotonic()
    outcome = loop.run(one(server, router_settings={"timeout": 20}), Budget(minutes=0.02))
    assert time.monotonic() - started < 4
    assert outcome.status == "budget_exceeded"
    assert "minute budget ran out" in outcome.message and "cancelled after" in outcome.message


def test_a_response_without_usage_still_counts_against_the_token_budget(
    server: ModelServer, loop: Loop
) -> None:
    server.turns = [Turn(content="word " * 3000, tool_calls=(READ,), usage=None)]
    outcome = loop.run(one(server), Budget(tokens=2000))
    assert outcome.status == "budget_exceeded" and "over the budget of 2000" in outcome.message
    assert loop.turns[0].tokens_estimated and loop.calls == []  # stopped before the tool ran


def test_huge_usage_stops_the_run_and_the_budget_is_not_what_the_model_said(
    server: ModelServer, loop: Loop
) -> None:
    server.turns = [Turn(content="Let me look.", tool_calls=(READ,), usage=(HUGE, HUGE))]
    outcome = loop.run(one(server), Budget(tokens=50_000))
    assert outcome.status == "budget_exceeded" and loop.calls == []
    assert server.requests[0].body["max_tokens"] < 50_000  # the cap the budget left
    assert outcome.said == "Let me look."  # the model's words; the message is agentplane's
    assert outcome.message.startswith(f"{2 * HUGE} tokens is over the budget")


def test_a_model_error_fails_the_run_with_the_conversation_and_no_key(
    server: ModelServer, loop: Loop
) -> None:
    server.inject(status(401, echo_key=True))
    with pytest.raises(AgentFailed) as err:
        loop.run(one(server))
    assert KEY not in str(err.value) and "AuthenticationError" in str(err.value)
    assert [m["role"] for m in err.value.messages] == ["system", "user"]


# -- whole runs on the one run path --------------------------------------------------------------


def routed(demo_repo: Path, models: dict[str, Any], **job: Any) -> str:
    """Policy's models section replaced by models, and job `served` committed to use it."""
    path = demo_repo / "policies/routing.yaml"
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "models": models}))
    spec = {
        "job_type": "code",
        "prompt": "fix the failing test; done when the tests pass",
        "tools": ["filesystem", "shell"],
        "scope": {"filesystem": {"write": ["src/**"]}},
        **job,
    }
    (demo_repo / ".agentplane/jobs/served.yaml").write_text(yaml.safe_dump(spec))
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "served job")
    return "served"


def start(demo_repo: Path) -> tuple[Engine, Any]:
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    return e, e.start(e.request("served"))


def test_the_demo_runs_through_litellms_http_path(demo_repo: Path) -> None:
    script = demo_repo / ".agentplane/scripts/fix-failing-test.yaml"
    with ModelServer(turns=turns_from_script(script)) as server:
        routed(
            demo_repo, {"model_list": [deployment("local", server.openai_base)], "default": "local"}
        )
        _, rec = start(demo_repo)
    assert rec.state == "awaiting_approval" and rec.proposal.paths == ["src/calc.py"]
    assert {c.model for c in rec.model_calls} == {"openai/qwen2.5-coder"}


def test_a_401_echoing_the_key_never_reaches_the_record_or_the_terminal(demo_repo: Path) -> None:
    with ModelServer(always=status(401, echo_key=True)) as server:
        routed(
            demo_repo, {"model_list": [deployment("local", server.openai_base)], "default": "local"}
        )
        e, rec = start(demo_repo)
    assert server.requests and server.requests[0].key == KEY
    assert rec.state == "failed" and "AuthenticationError" in rec.transitions[-1].reason
    shown = json.dumps(rec.model_dump(mode="json"))  # what a door prints
    stored = json.dumps([e.audit.latest(rec.run_id).record])  # what the audit branch holds
    assert KEY not in shown and KEY not in stored


def test_a_cut_answer_fails_the_run(demo_repo: Path) -> None:
    with ModelServer(turns=[Turn(content="I fixed add() by", finish="length")]) as server:
        routed(
            demo_repo, {"model_list": [deployment("local", server.openai_base)], "default": "local"}
        )
        _, rec = start(demo_repo)
    assert rec.state == "failed" and "cut off at its max_tokens" in rec.transitions[-1].reason


def test_customer_data_never_falls_back_to_a_group_not_cleared_for_it(demo_repo: Path) -> None:
    with ModelServer(always=status(500)) as local, ModelServer() as cloud:
        models = {
            "model_list": [
                deployment("self-hosted", local.openai_base),
                deployment("frontier", cloud.openai_base, "openai/gpt-4o"),
            ],
            "routes": [
                {"id": "customer", "when": {"sensitivity": ["customer"]}, "use": "self-hosted"}
            ],
            "default": "frontier",
            "fallbacks": [{"self-hosted": ["frontier"]}],
            "cleared_for": {"self-hosted": list(SENSITIVITIES)},
            "router_settings": {"num_retries": 0, "timeout": 5},
        }
        routed(demo_repo, models, data_sensitivity="customer")
        _, rec = start(demo_repo)
    assert rec.state == "failed" and cloud.requests == []
    assert "fallback frontier not used: frontier is not cleared" in rec.transitions[-1].reason
