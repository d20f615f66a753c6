"""Approval timing: a review counts only if GitHub says it was submitted after the evidence.

A review can reach the bot long after it was given (a queued, retried or reconciled
delivery), so "the bot had posted the evidence when it handled the review" proves nothing.
Both times are GitHub's own, to the second: the review's `submitted_at` and the time
GitHub gave the evidence comment when it first showed this proposal awaiting approval.
This module reads GitHub's timestamps; the rule (a tie fails closed) is in bot.core.gates.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core import gates
from bot.core.gates import ReviewTiming, stamp


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


def timing_problem(submitted_at: object, evidence_at: object) -> str | None:
    """Why a review submitted at submitted_at cannot count for evidence posted at
    evidence_at, or None when it was submitted strictly after (decided in bot.core.gates)."""
    return gates.timing_problem(ReviewTiming(github_time(submitted_at), github_time(evidence_at)))


__all__ = ["github_time", "stamp", "timing_problem"]
