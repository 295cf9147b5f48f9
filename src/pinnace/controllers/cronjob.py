"""CronJob controller (Kubernetes' ``pkg/controller/cronjob``, the v2 controller):
creates a Job for each schedule time of a CronJob.

Informers on batch/v1 cronjobs and jobs; one sync per CronJob:

1. reconciles ``status.active`` with the Jobs it controls (finished ones leave,
   ``lastSuccessfulTime`` advances, vanished ones are dropped);
2. prunes finished Jobs beyond ``successfulJobsHistoryLimit`` /
   ``failedJobsHistoryLimit``, oldest first;
3. unless suspended or its time zone is unknown, finds the most recent unmet
   schedule time (only that one, however many were missed while the controller
   was down — with a TooManyMissedTimes warning past 100), honours
   ``startingDeadlineSeconds`` and ``concurrencyPolicy`` (Forbid skips, Replace
   deletes the running Jobs), and creates ``<cronjob>-<minutes since epoch>``:
   the deterministic name makes a crash between creating and recording harmless;
4. writes status, and requeues itself for the next schedule time.

``clock`` is injectable so tests can move time.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable

from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import cron_util as cr
from . import job_util as ju
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION, GROUP, KIND = "batch/v1", "batch", "CronJob"
WORKERS = 5


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _local_zone() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


class CronJobController(QueueController):
    """``CronJobController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  ``recorder=None``: it owns an EventRecorder
    ("cronjob-controller").  ``clock`` gives the current time (aware); ``default_tz``
    is the zone of schedules without ``spec.timeZone`` (default: the local zone)."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, clock: Callable[[], dt.datetime] = _now,
                 default_tz: dt.tzinfo | None = None):
        super().__init__(client, factory, recorder, component="cronjob-controller", queue="cronjob",
                         workers=workers)
        self.clock = clock
        self.default_tz = default_tz or _local_zone()
        self.cj_informer = self.informer(API_VERSION, "cronjobs")
        self.job_informer = self.informer(API_VERSION, "jobs")
        self.cj_lister, self.job_lister = self.cj_informer.lister, self.job_informer.lister
        self.owner_lister = self.cj_lister
        self.cj_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, cur: self.enqueue(cur),
                                           on_delete=self.enqueue)
        self.job_informer.add_event_handler(on_add=self.enqueue_owner, on_update=self._job_updated,
                                            on_delete=self.enqueue_owner)

    # -- event handlers -----------------------------------------------------------------------

    def _job_updated(self, old: dict, cur: dict) -> None:
        if cu.controller_ref(old) != cu.controller_ref(cur):
            self.enqueue_owner(old)
        self.enqueue_owner(cur)

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        shared = self.cj_lister.get(name, namespace)
        if shared is None:
            return
        cj = copy.deepcopy(shared)
        cj["kind"], cj["apiVersion"] = KIND, API_VERSION
        uid = cj["metadata"].get("uid")
        jobs = [j for j in self.job_lister.list(namespace) if (cu.controller_ref(j) or {}).get("uid") == uid]
        changed = await self._cleanup_finished_jobs(cj, jobs)
        requeue: float | None = None
        error: Exception | None = None
        try:
            requeue, sync_changed = await self._sync_cron_job(cj, jobs)
            changed = changed or sync_changed
        except ApiException as e:
            error, changed = e, True
        if changed:
            await self._update_status(cj)
        if requeue is not None:
            self.enqueue(cj, max(requeue, 0.0))
        elif error is not None:
            raise error

    async def _sync_cron_job(self, cj: dict, jobs: list[dict]) -> tuple[float | None, bool]:
        """Returns (seconds until the next sync is due or None, whether status changed)."""
        status = cj.setdefault("status", {})
        spec = cj.get("spec") or {}
        changed = False
        now = self.clock()
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active_uids = {ref.get("uid") for ref in status.get("active") or ()}
        for j in jobs:
            juid = j["metadata"]["uid"]
            found = juid in active_uids
            if not found and not ju.is_job_finished(j):
                # Ours but unknown: made by hand (kubectl create job --from) or our status lags.
                fresh = await self._get_fresh(cj)
                if fresh is not None and any(r.get("uid") == juid for r in
                                             (fresh.get("status") or {}).get("active") or ()):
                    continue
                self.recorder.event(cj, "Warning", "UnexpectedJob",
                                    f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}")
            elif found and ju.is_job_finished(j):
                cond = ju.finished_condition(j) or {}
                _remove_active(status, juid)
                self.recorder.event(cj, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {j['metadata']['name']}, condition: {cond.get('type')}")
                changed = True
            if ju.is_job_succeeded(j):
                done = cu.parse_time((j.get("status") or {}).get("completionTime"))
                last = cu.parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = ju.format_time(done)
                    changed = True
        for ref in list(status.get("active") or ()):
            if ref.get("uid") in by_uid:
                continue
            # Not in the cache: ask the server before believing it gone.
            try:
                await self.client.get(API_VERSION, "jobs", ref.get("name", ""), ref.get("namespace", ""))
            except ApiException as e:
                if e.status != 404:
                    raise
                self.recorder.event(cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                _remove_active(status, ref.get("uid"))
                changed = True
        if cu.is_being_deleted(cj):
            return None, changed
        time_zone = spec.get("timeZone")
        if time_zone is not None:
            try:
                cr.load_zone(time_zone)
            except zoneinfo.ZoneInfoNotFoundError as e:
                self.recorder.event(cj, "Warning", "UnknownTimeZone", f"invalid timeZone: {time_zone!r}: {e}")
                return None, changed
        if spec.get("suspend"):
            return None, changed
        try:
            sched = cr.parse_schedule(spec.get("schedule") or "", time_zone, self.default_tz)
        except (cr.ScheduleError, zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {spec.get('schedule')!r} : {e}")
            return None, changed
        try:
            recent = cr.most_recent_schedule_time(cj, now, sched)
        except cr.ScheduleError as e:
            self.recorder.event(cj, "Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {e}")
            return None, changed
        scheduled = recent.time
        if scheduled is None or scheduled > now:
            return cr.next_schedule_delay(cj, now, sched), changed
        if recent.missed is cr.Missed.MANY:
            self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
                                "check clock skew")
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < now:
            self.recorder.event(cj, "Warning", "MissSchedule", "Missed scheduled time to start a job: "
                                f"{scheduled.astimezone(dt.UTC).strftime('%a, %d %b %Y %H:%M:%S +0000')}")
            return cr.next_schedule_delay(cj, now, sched), changed
        name = cr.job_name(cj["metadata"]["name"], scheduled)
        last = cu.parse_time(status.get("lastScheduleTime"))
        if any(r.get("name") == name for r in status.get("active") or ()) or last == scheduled:
            return cr.next_schedule_delay(cj, now, sched), changed  # this time was already handled
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency policy is "
                                "Forbid")
            return cr.next_schedule_delay(cj, now, sched), changed
        if policy == "Replace":
            for ref in list(status.get("active") or ()):
                await self._delete_job(cj, ref.get("name", ""), ref.get("uid"))
                changed = True
        job = self._job_from_template(cj, scheduled, sched.tz)
        try:
            created = await self.client.create(API_VERSION, "jobs", job, cj["metadata"]["namespace"])
            self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        except ApiException as e:
            if e.status == 403 and "being terminated" in (e.message or ""):
                raise
            if e.status != 409:
                self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {e.message or e}")
                raise
            # Already made (we crashed before recording it, or someone else did).
            created = await self.client.get(API_VERSION, "jobs", name, cj["metadata"]["namespace"])
            if not cu.is_controlled_by(created, cj):
                return None, changed
            if any(r.get("uid") == created["metadata"]["uid"] for r in status.get("active") or ()):
                return None, changed
        cmeta = created["metadata"]
        status.setdefault("active", []).append({
            "kind": "Job", "namespace": cmeta["namespace"], "name": cmeta["name"], "uid": cmeta["uid"],
            "apiVersion": API_VERSION, "resourceVersion": cmeta.get("resourceVersion", "")})
        status["lastScheduleTime"] = ju.format_time(scheduled)
        return cr.next_schedule_delay(cj, now, sched), True

    def _job_from_template(self, cj: dict, scheduled: dt.datetime, tz: dt.tzinfo) -> dict:
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[cr.SCHEDULED_TIMESTAMP] = cr.rfc3339(scheduled.astimezone(tz))
        meta = {"name": cr.job_name(cj["metadata"]["name"], scheduled), "annotations": annotations,
                "ownerReferences": [cu.new_controller_ref(cj, API_VERSION, KIND)]}
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        return {"apiVersion": API_VERSION, "kind": "Job", "metadata": meta,
                "spec": copy.deepcopy(template.get("spec") or {})}

    async def _get_fresh(self, cj: dict) -> dict | None:
        try:
            return await self.client.get(API_VERSION, "cronjobs", cj["metadata"]["name"],
                                         cj["metadata"]["namespace"])
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def _delete_job(self, cj: dict, name: str, uid: str | None) -> bool:
        status = cj.setdefault("status", {})
        try:
            await self.client.delete(API_VERSION, "jobs", name, cj["metadata"]["namespace"],
                                     propagationPolicy="Background",
                                     **({"preconditions": {"uid": uid}} if uid else {}))
        except ApiException as e:
            if e.status not in (404, 409):
                self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {e.message or e}")
                raise
        _remove_active(status, uid)
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {name}")
        return True

    async def _cleanup_finished_jobs(self, cj: dict, jobs: list[dict]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        changed = False
        for cond_type, limit_key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(limit_key)
            if limit is None:
                continue
            done = [j for j in jobs if (ju.finished_condition(j) or {}).get("type") == cond_type
                    and not cu.is_being_deleted(j)]
            if len(done) <= int(limit):
                continue
            # Oldest first by start time; Jobs never started sort last.
            done.sort(key=lambda j: (cu.parse_time((j.get("status") or {}).get("startTime")) is None,
                                     cu.parse_time((j.get("status") or {}).get("startTime"))
                                     or dt.datetime.max.replace(tzinfo=dt.UTC), j["metadata"]["name"]))
            for j in done[:len(done) - int(limit)]:
                try:
                    await self._delete_job(cj, j["metadata"]["name"], j["metadata"]["uid"])
                    changed = True
                except ApiException as e:
                    log.warning("cronjob %s: could not delete old job %s: %s", cj["metadata"]["name"],
                                j["metadata"]["name"], e)
        return changed

    async def _update_status(self, cj: dict) -> None:
        body = copy.deepcopy(cj)
        status = body.setdefault("status", {})
        if not status.get("active"):
            status.pop("active", None)
        try:
            await self.client.update(API_VERSION, "cronjobs", body, cj["metadata"]["namespace"], sub="status")
        except ApiException as e:
            if e.status != 404:
                raise


def _remove_active(status: dict, uid: str | None) -> None:
    status["active"] = [r for r in status.get("active") or () if r.get("uid") != uid]


__all__ = ["CronJobController"]
