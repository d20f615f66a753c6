"""Approval timing: a review counts only if GitHub says it was submitted after the evidence.

A review can reach the bot long after it was given (a queued, retried or reconciled
delivery), so "the bot had posted the evidence when it handled the review" proves nothing.
Both times are GitHub's own, to the second: the review's `submitted_at` and the time
GitHub gave the evidence comment when it first showed this proposal awaiting approval.
A tie cannot tell which came first, so it fails closed. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def github_time(value: object) -> datetime | None:
    """GitHub's ISO 8601 timestamp (`2024-01-02T03:04:05Z`) as an aware datetime; None
    for anything else (missing, malformed, or without a zone)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timing_problem(submitted_at: object, evidence_at: object) -> str | None:
    """Why a review submitted at submitted_at cannot count for evidence posted at
    evidence_at, or None when it was submitted strictly after."""
    submitted, posted = github_time(submitted_at), github_time(evidence_at)
    if posted is None:
        return "no evidence for this proposal is known to have been posted yet"
    if submitted is None:
        return "GitHub gave the review no submission time"
    if submitted < posted:
        return (
            f"the review was submitted at {stamp(submitted)}, before the evidence for this "
            f"proposal was posted at {stamp(posted)}: review the evidence, then approve again"
        )
    if submitted == posted:
        return (
            f"the review was submitted at {stamp(submitted)}, the same second the evidence "
            "was posted, so it cannot be shown to come after it: approve again"
        )
    return None
