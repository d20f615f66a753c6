"""What the run list shows of one run: a row, computed purely from its newest record.

The index (index.py) stores these; the pages and the JSON API return them. Nothing here
reads git or a database, so every field's rule is tested on plain records.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from bot.core.record import RunRecord


class RunRow(BaseModel):
    run_id: str
    repo: str
    job: str
    job_type: str
    state: str
    door: str
    requester: str
    requester_name: str = ""
    models: list[str] = Field(default_factory=list)
    """The routed group and every deployment that answered, each once."""
    approvers: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    """Every tool the run called (granted or not)."""
    started: str
    """The first transition's time (ISO 8601, UTC): what the list sorts and filters by."""
    updated: str
    cost_usd: float | None
    """None: a model call's cost cannot be known."""
    duration_s: float | None
    seq: int
    """The audit seq of the record this row was made from."""
    digest: str
    """That entry's digest."""


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(rec: RunRecord) -> float | None:
    """Seconds from the first transition to the last; None if they cannot be read."""
    if not rec.transitions:
        return None
    first, last = _time(rec.transitions[0].at), _time(rec.transitions[-1].at)
    if first is None or last is None:
        return None
    return max(0.0, (last - first).total_seconds())


def cost(rec: RunRecord) -> float | None:
    if any(m.cost_usd is None for m in rec.model_calls):
        return None
    return rec.cost_usd


def row_of(rec: RunRecord, seq: int, digest: str) -> RunRow:
    models = [rec.model.model_class] if rec.model is not None else []
    models += [m.model for m in rec.model_calls]
    started = rec.transitions[0].at if rec.transitions else ""
    return RunRow(
        run_id=rec.run_id,
        repo=rec.repo,
        job=rec.job_name,
        job_type=rec.plan.job_type,
        state=rec.state,
        door=rec.door,
        requester=rec.requester,
        requester_name=rec.requester_name,
        models=list(dict.fromkeys(models)),
        approvers=list(dict.fromkeys(a.approver for a in rec.approvals)),
        tools=list(dict.fromkeys(c.tool for c in rec.tool_calls)),
        started=started,
        updated=rec.transitions[-1].at if rec.transitions else started,
        cost_usd=cost(rec),
        duration_s=duration(rec),
        seq=seq,
        digest=digest,
    )
