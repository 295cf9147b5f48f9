"""Schedule arithmetic of the CronJob controller (Kubernetes' ``pkg/controller/cronjob``
``utils.go``), on top of ``croniter`` for the standard 5-field syntax and the
``@yearly``/``@annually``/``@monthly``/``@weekly``/``@daily``/``@midnight``/``@hourly``
macros.  ``@every <duration>`` (which robfig/cron and so Kubernetes also accept)
is handled here.  Times are aware datetimes; a schedule is evaluated in its time
zone (``spec.timeZone``, else the controller's local zone).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import zoneinfo
from dataclasses import dataclass

from croniter import croniter
from croniter.croniter import CroniterBadDateError

from . import controller_utils as cu

# Requeue this long after the next schedule time, to be sure it has come (Kubernetes: 100 ms).
NEXT_SCHEDULE_DELTA = 0.1
TOO_MANY_MISSED = 100
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    pass


class Schedule:
    """A parsed schedule; :meth:`next` is the first activation strictly after a time."""

    def __init__(self, spec: str, tz: dt.tzinfo):
        self.spec, self.tz = spec.strip(), tz
        self.every: float | None = None
        if self.spec.startswith("@every "):
            text = self.spec[len("@every "):].strip()
            if not re.fullmatch(f"(?:{_DURATION.pattern})+", text):
                raise ScheduleError(f"failed to parse duration {self.spec}")
            self.every = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
            if self.every < 1:
                self.every = 1.0  # robfig/cron's minimum
            return
        expr = _MACROS.get(self.spec, self.spec)
        if expr.startswith("@"):
            raise ScheduleError(f"unrecognized descriptor: {self.spec}")
        fields = expr.split()
        if len(fields) != 5:
            raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {expr}")
        self.expr = " ".join(f.replace("?", "*") for f in fields)  # "?" means "*" in robfig/cron
        if not croniter.is_valid(self.expr):
            raise ScheduleError(f"invalid schedule: {self.spec}")

    def next(self, t: dt.datetime) -> dt.datetime:
        if self.every is not None:
            return t.replace(microsecond=0) + dt.timedelta(seconds=self.every)
        try:
            return croniter(self.expr, t.astimezone(self.tz)).get_next(dt.datetime)
        except CroniterBadDateError as e:  # e.g. "0 0 31 2 *": never
            raise ScheduleError(f"schedule {self.spec!r} never fires") from e


def parse_schedule(schedule: str, time_zone: str | None, default_tz: dt.tzinfo) -> Schedule:
    """The Schedule for a CronJob's ``spec.schedule``/``spec.timeZone``; a legacy
    ``TZ=``/``CRON_TZ=`` prefix in the schedule is honoured.  Raises ScheduleError or
    (for a bad zone) zoneinfo.ZoneInfoNotFoundError."""
    tz: dt.tzinfo = default_tz
    spec = schedule.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, spec = spec.partition(" ")
        tz = zoneinfo.ZoneInfo(prefix.split("=", 1)[1])
    if time_zone is not None:
        tz = load_zone(time_zone)
    return Schedule(spec, tz)


def load_zone(name: str) -> dt.tzinfo:
    if name in ("", "UTC"):
        return dt.UTC
    if name.lower() == "local":
        raise zoneinfo.ZoneInfoNotFoundError("unknown time zone Local")
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as e:
        raise zoneinfo.ZoneInfoNotFoundError(f"unknown time zone {name}") from e


class Missed(enum.Enum):
    NONE = 0
    FEW = 1
    MANY = 2


@dataclass(frozen=True)
class MostRecent:
    earliest: dt.datetime  # where the search started (last schedule or creation)
    time: dt.datetime | None  # the most recent schedule time not after now, if any was missed
    missed: Missed


def most_recent_schedule_time(cj: dict, now: dt.datetime, sched: Schedule,
                              include_starting_deadline: bool = True) -> MostRecent:
    """The latest unmet schedule time of ``cj`` at ``now`` (``mostRecentScheduleTime``):
    only the most recent missed time is ever started, however many were missed."""
    meta, spec, status = cj.get("metadata") or {}, cj.get("spec") or {}, cj.get("status") or {}
    earliest = (cu.parse_time(status.get("lastScheduleTime")) or cu.parse_time(meta.get("creationTimestamp"))
                or now)
    deadline = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        # Nothing older than the deadline will be started anyway.
        earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
    t1 = sched.next(earliest)
    if now < t1:
        return MostRecent(earliest, None, Missed.NONE)
    t2 = sched.next(t1)
    if now < t2:
        return MostRecent(earliest, t1, Missed.NONE)
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    missed = int((now - t1).total_seconds()) // between + 1
    # Jump close to now (rough, as schedules need not be evenly spaced), then walk.
    t = sched.next(t1 + dt.timedelta(seconds=(missed - 2) * between))
    recent: dt.datetime | None = None
    while t <= now:
        recent = t
        t = sched.next(t)
    return MostRecent(earliest, recent, Missed.MANY if missed > TOO_MANY_MISSED else Missed.FEW)


def next_schedule_delay(cj: dict, now: dt.datetime, sched: Schedule) -> float:
    """Seconds from ``now`` until the sync after the next schedule time."""
    try:
        mr = most_recent_schedule_time(cj, now, sched, include_starting_deadline=False)
        base = mr.time or (mr.earliest if mr.missed is Missed.NONE else now)
    except ScheduleError:
        base = now
    return (sched.next(base) - now).total_seconds() + NEXT_SCHEDULE_DELTA


def job_name(cj_name: str, scheduled: dt.datetime) -> str:
    """``<cronjob>-<scheduled time in minutes since the epoch>``: deterministic, so a
    schedule time is never run twice."""
    return f"{cj_name}-{int(scheduled.timestamp()) // 60}"


def rfc3339(t: dt.datetime) -> str:
    s = t.replace(microsecond=0).isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


__all__ = ["SCHEDULED_TIMESTAMP", "Missed", "MostRecent", "Schedule", "ScheduleError", "job_name", "load_zone",
           "most_recent_schedule_time", "next_schedule_delay", "parse_schedule", "rfc3339"]
