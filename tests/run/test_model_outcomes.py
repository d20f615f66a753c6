"""What the run path does with what the model adapter reports, over litellm's real HTTP
path (tests/support/model_server): a failed model keeps its transcript and is marked as
such, fallbacks follow the job's data sensitivity and show in the plan and evidence,
unknown costs are said to be unknown, and agentplane's reasons are never the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core.render import render_evidence, render_plan
from bot.core.routing import SENSITIVITIES
from tests.run.test_agent import routed, start
from tests.support.model_server import ModelServer, Turn, deployment, status

pytestmark = pytest.mark.usefixtures("model_key")


def test_a_run_the_model_failed_keeps_its_transcript_and_says_the_model_failed_it(
    demo_repo: Path,
) -> None:
    with ModelServer(turns=[Turn(content="I fixed add() by", finish="length")]) as server:
        routed(
            demo_repo, {"model_list": [deployment("local", server.openai_base)], "default": "local"}
        )
        e, rec = start(demo_repo)
    assert (rec.state, rec.failure) == ("failed", "model")
    stored = e.load(rec.run_id)
    assert stored.failure == "model"
    ref = stored.artifact("transcript.json")
    assert ref is not None, "a failed run keeps its transcript"
    messages = json.loads(e.audit.artifact(ref.sha256))
    assert messages[-1]["content"] == "I fixed add() by"


def test_a_fallback_cleared_for_the_job_answers_and_the_evidence_says_so(
    demo_repo: Path,
) -> None:
    with (
        ModelServer(always=status(500)) as local,
        ModelServer(turns=[Turn(content="nothing to change")]) as cloud,
    ):
        models = {
            "model_list": [
                deployment("self-hosted", local.openai_base),
                deployment("frontier", cloud.openai_base, "openai/gpt-4o"),
            ],
            "default": "self-hosted",
            "fallbacks": [{"self-hosted": ["frontier"]}],
            "cleared_for": {"self-hosted": list(SENSITIVITIES), "frontier": ["public", "internal"]},
            "router_settings": {"num_retries": 0, "timeout": 5},
        }
        routed(demo_repo, models, data_sensitivity="internal")
        e, rec = start(demo_repo)
        p = e.plan(e.request("served"))
    assert rec.state == "completed", rec.transitions
    assert cloud.requests, "the cleared fallback was used"
    (call,) = rec.model_calls
    assert call.group == "frontier" and call.model_class == "self-hosted"
    assert "answered by fallback frontier" in render_evidence(rec, "")
    shown = render_plan(p)
    assert "+ fallback   self-hosted -> frontier: used" in shown
    assert p.model is not None and p.model.fallbacks == ["frontier"]


def test_a_self_hosted_model_without_a_price_is_shown_as_unknown_cost(demo_repo: Path) -> None:
    with ModelServer(turns=[Turn(content="nothing to change")]) as server:
        routed(
            demo_repo, {"model_list": [deployment("local", server.openai_base)], "default": "local"}
        )
        e, rec = start(demo_repo)
        p = e.plan(e.request("served"))
    (call,) = rec.model_calls
    assert call.cost_usd is None and call.cost_source == "unknown"
    assert "(cost unknown for 1 call)" in render_evidence(rec, "")
    assert p.model is not None and p.model.cost_note
    assert "! cost" in render_plan(p)


def test_agentplanes_budget_reason_is_never_shown_as_what_the_agent_said(demo_repo: Path) -> None:
    read = ("fs_read", json.dumps({"path": "src/calc.py"}))
    turns = [Turn(content=None, tool_calls=(read,)) for _ in range(5)]
    with ModelServer(turns=turns) as server:
        routed(
            demo_repo,
            {"model_list": [deployment("local", server.openai_base)], "default": "local"},
            budget={"tool_calls": 2},
        )
        _, rec = start(demo_repo)
    assert rec.state == "budget_exceeded", rec.transitions
    assert rec.final_message is None
    assert "Agent says" not in render_evidence(rec, "")
