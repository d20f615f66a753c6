from datetime import UTC, datetime

import pytest

from bot.doors.github.timing import github_time, timing_problem

EVIDENCE = "2024-05-01T10:00:00Z"


def test_a_review_after_the_evidence_counts() -> None:
    assert timing_problem("2024-05-01T10:00:01Z", EVIDENCE) is None
    assert timing_problem("2024-05-01T10:00:01Z", datetime(2024, 5, 1, 10, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("submitted", "evidence", "why"),
    [
        ("2024-05-01T09:59:59Z", EVIDENCE, "before the evidence"),
        (EVIDENCE, EVIDENCE, "the same second"),
        ("2024-05-01T12:00:00+02:00", EVIDENCE, "the same second"),  # one instant, two zones
        (None, EVIDENCE, "no submission time"),
        ("yesterday", EVIDENCE, "no submission time"),
        ("2024-05-01T10:00:01", EVIDENCE, "no submission time"),  # no zone: whose clock?
        ("2024-05-01T10:00:01Z", None, "no evidence"),
    ],
)
def test_anything_else_fails_closed(submitted: object, evidence: object, why: str) -> None:
    problem = timing_problem(submitted, evidence)
    assert problem is not None and why in problem


def test_github_time_is_bounded_and_typed() -> None:
    assert github_time("9" * 1000) is None and github_time(12) is None
    assert github_time(EVIDENCE) == datetime(2024, 5, 1, 10, tzinfo=UTC)
