"""`validate` warns, at file:line:col, of a route whose cost cannot be known; `doctor
--models` makes one small call to each model group (opt-in) and says how it went."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.doors.cli.test_main import agentplane
from tests.run.test_agent import routed
from tests.support.model_server import KEY, ModelServer, deployment, status

pytestmark = pytest.mark.usefixtures("model_key")


def test_validate_warns_where_a_route_cannot_be_priced_and_still_passes(demo_repo: Path) -> None:
    path = demo_repo / "policies/routing.yaml"
    assert agentplane(demo_repo, "validate").stderr == ""  # the shipped recordings are priced
    doc = yaml.safe_load(path.read_text())
    doc["models"]["model_list"].append(deployment("local", "http://llm.internal:8000/v1"))
    doc["models"]["default"] = "local"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = agentplane(demo_repo, "validate")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    # The edit is not on the default branch yet: validate says runs will not see it.
    assert "warning: policies/routing.yaml: differs from main" in warnings[-1]
    (warning,) = warnings[:-1]
    assert "policies/routing.yaml:" in warning and "models.default: cost cannot be known" in warning
    assert "input_cost_per_token" in warning


def test_doctor_models_calls_each_group_once_and_fails_when_one_does_not_answer(
    demo_repo: Path,
) -> None:
    with ModelServer() as up, ModelServer(always=status(401, echo_key=True)) as down:
        routed(
            demo_repo,
            {
                "model_list": [
                    deployment("up", up.openai_base),
                    deployment("down", down.openai_base),
                ],
                "default": "up",
            },
        )
        only_up = agentplane(demo_repo, "doctor", "--model", "up")
        both = agentplane(demo_repo, "doctor", "--models")
        unknown = agentplane(demo_repo, "doctor", "--model", "nope")
    assert only_up.returncode == 0, only_up.stderr
    assert "model   up: answered in" in only_up.stdout
    assert len(up.requests) == 2 and len(down.requests) == 1
    assert both.returncode == 1 and "model   down: " in both.stdout
    assert KEY not in both.stdout + both.stderr
    assert unknown.returncode == 2 and "no model group nope" in unknown.stderr


def test_doctor_says_whether_documents_can_be_pictured(demo_repo: Path) -> None:
    out = agentplane(demo_repo, "doctor")
    assert "pictures ok" in out.stdout or "pictures unavailable: " in out.stdout
