"""Policy can pin a job type to a backend; anything but bwrap or docker is refused."""

from __future__ import annotations

import pydantic
import pytest

from bot.core.plan import Plan
from bot.core.policy import JobTypePolicy


def test_job_type_can_require_a_backend() -> None:
    assert JobTypePolicy(run_by=["*"], backend="docker").backend == "docker"
    assert JobTypePolicy(run_by=["*"]).backend is None
    with pytest.raises(pydantic.ValidationError):
        JobTypePolicy(run_by=["*"], backend="lxc")  # type: ignore[arg-type]


def test_plan_carries_the_backend() -> None:
    assert "backend" in Plan.model_fields
    assert Plan.model_fields["backend"].default is None
