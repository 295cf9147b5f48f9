"""Schedule arithmetic of the CronJob controller."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from pinnace.controllers import cron_util as cr

UTC = dt.UTC


def t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC) if "+" not in s else dt.datetime.fromisoformat(s)


@pytest.mark.parametrize(("spec", "after", "want"), [
    ("* * * * *", "2024-01-01T12:00:00", "2024-01-01T12:01:00"),
    ("* * * * *", "2024-01-01T12:00:30", "2024-01-01T12:01:00"),
    ("*/15 * * * *", "2024-01-01T12:01:00", "2024-01-01T12:15:00"),
    ("0 9 * * 1-5", "2024-01-05T10:00:00", "2024-01-08T09:00:00"),  # Friday → Monday
    ("0 0 1 * MON", "2024-03-05T00:00:00", "2024-03-11T00:00:00"),  # day-of-month OR day-of-week
    ("@hourly", "2024-01-01T12:30:00", "2024-01-01T13:00:00"),
    ("@daily", "2024-01-01T12:30:00", "2024-01-02T00:00:00"),
    ("@midnight", "2024-01-01T12:30:00", "2024-01-02T00:00:00"),
    ("@weekly", "2024-01-01T12:30:00", "2024-01-07T00:00:00"),  # Sunday
    ("@monthly", "2024-01-15T00:00:00", "2024-02-01T00:00:00"),
    ("@yearly", "2024-01-15T00:00:00", "2025-01-01T00:00:00"),
    ("@annually", "2024-01-15T00:00:00", "2025-01-01T00:00:00"),
    ("@every 90s", "2024-01-01T12:00:00.5", "2024-01-01T12:01:30"),
])
def test_next(spec, after, want):
    assert cr.Schedule(spec, UTC).next(t(after)) == t(want)


def test_time_zone():
    sched = cr.parse_schedule("30 9 * * *", "Asia/Kolkata", UTC)
    nxt = sched.next(t("2024-01-01T00:00:00"))
    assert nxt.astimezone(UTC) == t("2024-01-01T04:00:00")
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
        cr.parse_schedule("* * * * *", "Mars/Olympus_Mons", UTC)
    # A legacy TZ= prefix is honoured.
    assert cr.parse_schedule("TZ=Asia/Tokyo 0 0 * * *", None, UTC).next(t("2024-01-01T00:00:00")) == t(
        "2024-01-01T15:00:00")


@pytest.mark.parametrize("spec", ["", "* * * *", "@often", "61 * * * *", "@every x"])
def test_bad_schedules(spec):
    with pytest.raises(cr.ScheduleError):
        cr.Schedule(spec, UTC)


def cj(created: str, last: str | None = None, deadline: int | None = None) -> dict:
    spec = {} if deadline is None else {"startingDeadlineSeconds": deadline}
    status = {} if last is None else {"lastScheduleTime": last}
    return {"metadata": {"creationTimestamp": created}, "spec": spec, "status": status}


def test_most_recent_schedule_time():
    sched = cr.Schedule("* * * * *", UTC)
    # Nothing due yet.
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z"), t("2024-01-01T12:00:50"), sched)
    assert mr.time is None and mr.missed is cr.Missed.NONE
    # One due.
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z"), t("2024-01-01T12:01:05"), sched)
    assert mr.time == t("2024-01-01T12:01:00") and mr.missed is cr.Missed.NONE
    # Ten missed: only the most recent is returned.
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z", "2024-01-01T12:00:00Z"),
                                      t("2024-01-01T12:10:30"), sched)
    assert mr.time == t("2024-01-01T12:10:00") and mr.missed is cr.Missed.FEW
    # More than 100 missed.
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z"), t("2024-01-01T14:00:30"), sched)
    assert mr.time == t("2024-01-01T14:00:00") and mr.missed is cr.Missed.MANY
    # The starting deadline hides older misses.
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z", deadline=10), t("2024-01-01T12:10:30"), sched)
    assert mr.time is None
    mr = cr.most_recent_schedule_time(cj("2024-01-01T12:00:10Z", deadline=60), t("2024-01-01T12:10:30"), sched)
    assert mr.time == t("2024-01-01T12:10:00")
    with pytest.raises(cr.ScheduleError):
        cr.most_recent_schedule_time(cj("2024-01-01T00:00:00Z"), t("2030-01-01T00:00:00"),
                                     cr.Schedule("0 0 31 2 *", UTC))


def test_next_schedule_delay_and_names():
    sched = cr.Schedule("*/5 * * * *", UTC)
    delay = cr.next_schedule_delay(cj("2024-01-01T12:00:10Z"), t("2024-01-01T12:03:00"), sched)
    assert delay == pytest.approx(120.1)
    # After missed times the next one counts from now.
    delay = cr.next_schedule_delay(cj("2024-01-01T12:00:10Z"), t("2024-01-01T12:33:00"), sched)
    assert delay == pytest.approx(120.1)
    assert cr.job_name("hello", t("2024-01-01T00:01:00")) == f"hello-{1704067260 // 60}"
    assert cr.rfc3339(t("2024-01-01T00:01:00")) == "2024-01-01T00:01:00Z"
    assert cr.rfc3339(t("2024-01-01T00:01:00").astimezone(zoneinfo.ZoneInfo("Asia/Kolkata"))) == (
        "2024-01-01T05:31:00+05:30")
