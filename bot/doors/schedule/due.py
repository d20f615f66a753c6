"""When a scheduled job is due: pure functions of its cron, its time zone, its past runs
and the time now. No I/O: the runner hands in what it read from git and the audit branch.

Cron is read in the job's time zone, on the wall clock: `0 6 * * *` in Europe/Berlin is
06:00 local on both sides of a DST change (05:00 UTC in winter, 04:00 UTC in summer). A
wall time that does not exist (the hour skipped in spring) fires once, at the same offset
as before the change (02:30 becomes 03:30 local); a wall time that happens twice (the hour
repeated in autumn) fires once, the first time.

A job is due when a fire time falls after its last scheduled run (or, never run, after
the commit that last changed the job file) and at or before now. However many windows
were missed, that is one run. A job whose previous run has not ended (running, waiting
for approval or for an answer) is not started again: it is reported as blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from bot.core.errors import AgentplaneError
from bot.core.record import FINAL

SCHEDULE_DOOR: Final = "schedule"
MAX_COUNTED = 1000
"""Missed windows are counted up to this many (a minutely cron missed for a year is
"1000+"); the count is only reported, it never multiplies runs."""


class ScheduleError(AgentplaneError):
    """A schedule that cannot be evaluated (unknown zone, a time without a zone)."""


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    path: str
    cron: str
    zone: str
    """The IANA zone the cron is read in: the job's, else the default's (UTC)."""
    mode: Literal["propose", "drift"]
    changed_at: datetime
    """When the job file last changed (its commit's time): the start of a never-run job's
    first window, so adding a monthly job does not run it for a month long past."""


@dataclass(frozen=True)
class PastRun:
    run_id: str
    job_name: str
    door: str
    started_at: datetime
    state: str
    window: datetime | None = None
    """The schedule window it served (scheduled runs): later windows are still due."""

    @property
    def mark(self) -> datetime:
        return max(self.started_at, self.window) if self.window else self.started_at


@dataclass(frozen=True)
class Verdict:
    job: ScheduledJob
    due: bool
    window: datetime | None
    """The fire time a due run serves (the latest one up to now), in UTC."""
    missed: int
    """Fire times since the last run, folded into this one run (1 when on time)."""
    blocked_by: PastRun | None
    last: PastRun | None
    reason: str


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its zone (`2025-03-30T06:00:00+02:00`, `...Z`), as UTC."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(
            f"{text!r} is not an ISO 8601 time: write it like 2025-03-30T06:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise ScheduleError(
            f"{text!r} has no time zone: add one (Z, +02:00) so it names one instant"
        )
    return at.astimezone(UTC)


def _aware(wall: datetime, tz: ZoneInfo) -> datetime:
    # fold=0: a repeated wall time is its first occurrence; a skipped one keeps the offset
    # from before the change. Either way exactly one instant per wall-clock fire.
    # Converted to UTC at once: Python never finds a gap or fold time equal to another
    # zone's, so instants are compared in UTC only.
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def fires(cron: str, zone_name: str, after: datetime, at: datetime) -> list[datetime]:
    """Fire times in (after, at], newest first, at most MAX_COUNTED + 1 of them."""
    tz = zone(zone_name)
    # Walk back on the wall clock. Around a skipped hour, instants are out of wall order by
    # up to that hour, so the walk starts an hour past `at` and stops two hours before
    # `after`; the interval test keeps exactly the instants in (after, at].
    slack = timedelta(hours=2)
    it = croniter(cron, at.astimezone(tz).replace(tzinfo=None) + slack)
    found: list[datetime] = []
    while len(found) <= MAX_COUNTED:
        instant = _aware(it.get_prev(datetime), tz)
        if instant < after - slack:
            break
        if after < instant <= at and instant not in found:
            found.append(instant)
    return sorted(found, reverse=True)


def decide(jobs: Iterable[ScheduledJob], runs: Sequence[PastRun], at: datetime) -> list[Verdict]:
    """For each scheduled job: due now, blocked by its unfinished run, or not due."""
    verdicts = []
    for job in jobs:
        mine = [r for r in runs if r.job_name == job.name]
        unfinished = next((r for r in reversed(mine) if r.state not in FINAL), None)
        scheduled = [r for r in mine if r.door == SCHEDULE_DOOR]
        last = max(scheduled, key=lambda r: r.mark) if scheduled else None
        after = last.mark if last else job.changed_at
        windows = fires(job.cron, job.zone, after, at)
        window = windows[0] if windows else None
        since = f"since its last scheduled run {last.run_id}" if last else "since it changed"
        if window is None:
            reason = f"no window of {job.cron!r} ({job.zone}) {since}"
            verdicts.append(Verdict(job, False, None, 0, None, last, reason))
            continue
        count = len(windows)
        shown = f"{MAX_COUNTED}+" if count > MAX_COUNTED else str(count)
        if unfinished is not None:
            reason = (
                f"window {window.isoformat()} is due, but run {unfinished.run_id} of this job "
                f"is still {unfinished.state}: it starts after that run ends"
            )
            verdicts.append(Verdict(job, False, window, count, unfinished, last, reason))
            continue
        folded = f"; {shown} windows missed {since}, run once" if count > 1 else ""
        reason = f"due for window {window.isoformat()}{folded}"
        verdicts.append(Verdict(job, True, window, count, None, last, reason))
    return verdicts
