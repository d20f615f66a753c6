"""The pure scheduler: time zones, DST changes, missed windows, unfinished runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.doors.schedule.due import (
    MAX_COUNTED,
    PastRun,
    ScheduledJob,
    ScheduleError,
    decide,
    fires,
    parse_time,
)

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def job(cron: str = "0 6 * * *", zone: str = "UTC", **kw: object) -> ScheduledJob:
    fields: dict[str, object] = {
        "name": "nightly",
        "path": ".agentplane/jobs/nightly.yaml",
        "cron": cron,
        "zone": zone,
        "mode": "propose",
        "changed_at": LONG_AGO,
    }
    fields.update(kw)
    return ScheduledJob(**fields)  # type: ignore[arg-type]


def ran(at: datetime, state: str = "awaiting_approval", door: str = "schedule") -> PastRun:
    return PastRun(f"nightly-{at:%H%M}", "nightly", door, at, state)


def test_cron_is_read_in_the_jobs_zone() -> None:
    # 06:00 in Berlin is 05:00 UTC in winter, in New York 11:00 UTC.
    assert fires("0 6 * * *", "Europe/Berlin", utc(2025, 1, 9, 12), utc(2025, 1, 10, 12)) == [
        utc(2025, 1, 10, 5)
    ]
    assert fires("0 6 * * *", "America/New_York", utc(2025, 1, 9, 12), utc(2025, 1, 10, 12)) == [
        utc(2025, 1, 10, 11)
    ]
    (v,) = decide([job(zone="Europe/Berlin")], [], utc(2025, 1, 10, 4, 59))
    assert v.window == utc(2025, 1, 9, 5)  # not yet today's: yesterday's window (never run)
    (v,) = decide([job(zone="UTC")], [ran(utc(2025, 1, 9, 6, 0, 5))], utc(2025, 1, 10, 5, 30))
    assert not v.due  # UTC 06:00 has not come yet today


def test_across_spring_and_autumn_dst_the_wall_clock_holds() -> None:
    # Europe/Berlin springs forward on 2025-03-30 and falls back on 2025-10-26.
    spring = fires("0 6 * * *", "Europe/Berlin", utc(2025, 3, 28, 12), utc(2025, 4, 1, 12))
    assert spring == [
        utc(2025, 4, 1, 4),
        utc(2025, 3, 31, 4),
        utc(2025, 3, 30, 4),
        utc(2025, 3, 29, 5),
    ]
    autumn = fires("0 6 * * *", "Europe/Berlin", utc(2025, 10, 25, 12), utc(2025, 10, 27, 12))
    assert autumn == [utc(2025, 10, 27, 5), utc(2025, 10, 26, 5)]
    # 02:30 does not exist on 2025-03-30: it fires once, an hour on (03:30 CEST).
    skipped = fires("30 2 * * *", "Europe/Berlin", utc(2025, 3, 29, 12), utc(2025, 3, 30, 12))
    assert skipped == [utc(2025, 3, 30, 1, 30)]
    # 02:30 happens twice on 2025-10-26: it fires once, the first time (CEST).
    twice = fires("30 2 * * *", "Europe/Berlin", utc(2025, 10, 25, 12), utc(2025, 10, 26, 12))
    assert twice == [utc(2025, 10, 26, 0, 30)]


def test_a_scheduler_checking_every_15_minutes_over_the_spring_change_runs_once_a_day() -> None:
    runs: list[PastRun] = []
    at = utc(2025, 3, 29, 0)
    while at < utc(2025, 4, 1, 0):
        (v,) = decide(
            [job("30 2 * * *", "Europe/Berlin", changed_at=utc(2025, 3, 28, 12))], runs, at
        )
        if v.due:
            runs.append(ran(at, "completed"))
        at = datetime.fromtimestamp(at.timestamp() + 900, UTC)
    assert [r.started_at for r in runs] == [
        utc(2025, 3, 29, 1, 30),  # 02:30 CET
        utc(2025, 3, 30, 1, 30),  # 03:30 CEST: 02:30 was skipped
        utc(2025, 3, 31, 0, 30),  # 02:30 CEST
    ]


def test_a_missed_window_runs_once_not_n_times() -> None:
    last = ran(utc(2025, 3, 1, 6, 0, 3), "completed")
    (v,) = decide([job("0 * * * *")], [last], utc(2025, 3, 3, 9, 30))
    assert v.due and v.missed == 51 and v.window == utc(2025, 3, 3, 9)
    assert "51 windows missed since its last scheduled run nightly-0600, run once" in v.reason
    # Once started, the next check finds nothing due until the next window.
    again = [last, ran(utc(2025, 3, 3, 9, 30, 2), "completed")]
    assert not decide([job("0 * * * *")], again, utc(2025, 3, 3, 9, 59))[0].due
    assert decide([job("0 * * * *")], again, utc(2025, 3, 3, 10, 0))[0].due


def test_missed_windows_are_counted_only_so_far() -> None:
    (v,) = decide([job("* * * * *")], [], utc(2025, 6, 1))
    assert v.due and v.missed == MAX_COUNTED + 1 and f"{MAX_COUNTED}+ windows" in v.reason


def test_an_unfinished_run_blocks_the_next_whatever_door_started_it() -> None:
    for state in ("running", "awaiting_approval", "needs_clarification", "planned"):
        (v,) = decide([job()], [ran(utc(2025, 3, 1, 6), state)], utc(2025, 3, 2, 7))
        assert not v.due and v.blocked_by is not None, state
        assert f"is still {state}" in v.reason
    # A terminal run of the same job blocks too, but does not count as the schedule's run.
    (v,) = decide([job()], [ran(utc(2025, 3, 2, 6, 30), "running", door="cli")], utc(2025, 3, 2, 7))
    assert not v.due and v.blocked_by is not None
    (v,) = decide([job()], [ran(utc(2025, 3, 2, 6, 30), "applied", door="cli")], utc(2025, 3, 2, 7))
    assert v.due  # the terminal's run is not the schedule's
    (v,) = decide([job()], [ran(utc(2025, 3, 1, 6), "rejected")], utc(2025, 3, 2, 7))
    assert v.due


def test_a_never_run_job_waits_for_a_window_after_it_changed() -> None:
    added = job("0 6 1 * *", changed_at=utc(2025, 3, 10))
    (v,) = decide([added], [], utc(2025, 3, 20))
    assert not v.due and "since it changed" in v.reason
    assert decide([added], [], utc(2025, 4, 1, 6))[0].due


def test_times_must_name_their_zone_and_zones_must_exist() -> None:
    assert parse_time("2025-03-30T06:00:00+02:00") == utc(2025, 3, 30, 4)
    assert parse_time("2025-03-30T04:00:00Z") == utc(2025, 3, 30, 4)
    with pytest.raises(ScheduleError, match="no time zone"):
        parse_time("2025-03-30T06:00:00")
    with pytest.raises(ScheduleError, match="not an ISO 8601 time"):
        parse_time("tomorrow")
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        fires("0 6 * * *", "Mars/Olympus", LONG_AGO, utc(2025, 3, 1))
