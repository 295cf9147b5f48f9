"""The Job controller's status bookkeeping (Kubernetes' ``pkg/controller/job``
``trackJobStatusAndRemoveFinalizers`` and the verdicts before it): what a sync of
:class:`~pinnace.controllers.job.JobController` decides about its pods once it
has claimed them.

* :func:`new_finished` and :func:`judge` count finished pods and decide whether
  the Job has finished: SuccessCriteriaMet / FailureTarget already recorded, a
  FailJob pod-failure-policy rule, the backoff limit (global or per index),
  ``activeDeadlineSeconds``, ``maxFailedIndexes``;
* :class:`JobTracker` moves finished pods into the counters in two phases so
  that none is ever lost or counted twice — their uids go to
  ``status.uncountedTerminatedPods`` first, then the
  ``batch.kubernetes.io/job-tracking`` finalizer is removed from them, then they
  move into ``succeeded``/``failed`` — and sets the final condition
  (``Complete``/``Failed``) once nothing is uncounted or terminating.  It keeps,
  per Job key, the finalizer removals not yet seen by the pod informer and the
  pod-failure back-off record.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client.events import EventRecorder
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import job_util as ju

API_VERSION, KIND = "batch/v1", "Job"
MAX_UNCOUNTED_PODS = 500


@dataclass
class SyncContext:
    """One sync of one Job: its claimed pods and what has been decided about them."""

    job: dict
    key: str
    pods: list[dict]
    active_pods: list[dict]
    ready: int
    terminating: int
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    expected_rm_finalizers: set[str]
    succeeded: int = 0
    failed: int = 0
    finished: dict | None = None
    prev_succeeded_indexes: ju.Intervals = field(default_factory=list)
    succeeded_indexes: ju.Intervals = field(default_factory=list)
    failed_indexes: ju.Intervals | None = None
    delayed_deletion: dict[int, dict] = field(default_factory=dict)
    backoff: ju.BackoffRecord = field(default_factory=ju.BackoffRecord)


# -- verdicts -----------------------------------------------------------------------------------


def new_finished(ctx: SyncContext, uncounted: set[str], pred: Callable[[dict], bool]) -> list[dict]:
    """Pods still carrying the tracking finalizer, not yet counted, for which ``pred`` holds."""
    out = []
    completions = int((ctx.job.get("spec") or {}).get("completions") or 0)
    for p in ctx.pods:
        uid = (p.get("metadata") or {}).get("uid", "")
        if not ju.has_finalizer(p) or uid in uncounted or uid in ctx.expected_rm_finalizers:
            continue
        if ju.is_indexed(ctx.job) and not 0 <= ju.completion_index(p) < completions:
            continue
        if pred(p):
            out.append(p)
    return out


def past_active_deadline(job: dict, now: dt.datetime) -> bool:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    ads, start = spec.get("activeDeadlineSeconds"), cu.parse_time(status.get("startTime"))
    if ads is None or start is None or spec.get("suspend"):
        return False
    return (now - start).total_seconds() >= int(ads)


def failed_indexes(job: dict, pods: list[dict], completions: int) -> ju.Intervals:
    prev = ju.parse_indexes((job.get("status") or {}).get("failedIndexes"), completions)
    return ju.merge_indexes(prev, (ix for p in pods if ju.has_finalizer(p)
                                   and 0 <= (ix := ju.completion_index(p)) < completions
                                   and ju.is_index_failed(job, p)))


def pods_with_delayed_deletion(ctx: SyncContext, completions: int) -> dict[int, dict]:
    """Per index, the last failed pod, kept (finalizer and all) until its replacement
    exists, so the replacement can inherit its failure count."""
    active_ix = {ju.completion_index(p) for p in ctx.active_pods}
    out: dict[int, dict] = {}
    for p in new_finished(ctx, set(), lambda p: ju.is_pod_failed(p, ctx.job)):
        ix = ju.completion_index(p)
        if (ju.has_index(ctx.succeeded_indexes, ix) or ju.has_index(ctx.failed_indexes or [], ix)
                or ix in active_ix):
            continue
        prev = out.get(ix)
        if prev is None or (ju.index_absolute_failure_count(prev) <= ju.index_absolute_failure_count(p)
                            and ju.finished_time(p) >= ju.finished_time(prev)):
            out[ix] = p
    return out


def judge(ctx: SyncContext, now: dt.datetime) -> float | None:
    """Set ``ctx.finished`` when the Job has failed or already met its success criteria,
    and (Indexed Jobs) the succeeded and failed indexes.  Returns the seconds until
    ``activeDeadlineSeconds`` runs out, when the Job should be looked at again then."""
    job, pods = ctx.job, ctx.pods
    spec, status = job["spec"], job["status"]
    suspended = bool(spec.get("suspend"))
    deadline_in: float | None = None
    ctx.finished = ju.job_condition(job, "SuccessCriteriaMet")
    if ctx.finished is not None and ctx.finished.get("status") != "True":
        ctx.finished = None
    if ctx.finished is None:
        target = ju.job_condition(job, "FailureTarget")
        if target is not None and target.get("status") == "True":
            ctx.finished = ju.new_condition("Failed", "True", target.get("reason", ""),
                                            target.get("message", ""), now)
        elif (msg := ju.fail_job_message(job, pods)) is not None:
            ctx.finished = ju.new_condition("FailureTarget", "True", "PodFailurePolicy", msg, now)
    if ctx.finished is None:
        backoff_limit = spec.get("backoffLimit")
        backoff_limit = 6 if backoff_limit is None else int(backoff_limit)
        if ctx.failed > backoff_limit or ju.past_backoff_limit_on_failure(job, pods, backoff_limit):
            ctx.finished = ju.new_condition("FailureTarget", "True", "BackoffLimitExceeded",
                                            "Job has reached the specified backoff limit", now)
        elif past_active_deadline(job, now):
            ctx.finished = ju.new_condition("FailureTarget", "True", "DeadlineExceeded",
                                            "Job was active longer than specified deadline", now)
        elif spec.get("activeDeadlineSeconds") is not None and not suspended:
            start = cu.parse_time(status.get("startTime")) or now
            left = int(spec["activeDeadlineSeconds"]) - (now - start).total_seconds()
            deadline_in = max(left, 0.0) + 0.05

    if ju.is_indexed(job):
        completions = int(spec.get("completions") or 0)
        ctx.prev_succeeded_indexes = ju.parse_indexes(status.get("completedIndexes"), completions)
        ctx.succeeded_indexes = ju.merge_indexes(ctx.prev_succeeded_indexes, (
            ix for p in pods if ju.phase(p) == "Succeeded" and ju.has_finalizer(p)
            and 0 <= (ix := ju.completion_index(p)) < completions))
        ctx.succeeded = ju.total_indexes(ctx.succeeded_indexes)
        if ju.has_backoff_limit_per_index(job):
            ctx.failed_indexes = failed_indexes(job, pods, completions)
            if ctx.finished is None:
                nfailed = ju.total_indexes(ctx.failed_indexes)
                max_failed = spec.get("maxFailedIndexes")
                if max_failed is not None and nfailed > int(max_failed):
                    ctx.finished = ju.new_condition(
                        "FailureTarget", "True", "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes", now)
                elif nfailed > 0 and nfailed + ctx.succeeded >= completions:
                    ctx.finished = ju.new_condition("FailureTarget", "True", "FailedIndexes",
                                                    "Job has failed indexes", now)
            ctx.delayed_deletion = pods_with_delayed_deletion(ctx, completions)
    return deadline_in


def can_remove_finalizer(ctx: SyncContext, pod: dict, failed: bool) -> bool:
    if cu.is_being_deleted(ctx.job) or ctx.finished is not None or ju.phase(pod) == "Succeeded":
        return True
    if not failed:
        return False
    if ju.has_backoff_limit_per_index(ctx.job):
        kept = ctx.delayed_deletion.get(ju.completion_index(pod))
        if kept is not None and kept["metadata"]["uid"] == pod["metadata"]["uid"]:
            return False  # until its replacement carries the failure count on
    return True


# -- counting -----------------------------------------------------------------------------------


class JobTracker:
    """Per Job key: the pods whose finalizer removal the informer has yet to show
    (``pending_removals``) and the pod-failure back-off record (``backoff``); and the
    status writes that count finished pods (:meth:`track_status`)."""

    def __init__(self, client: RestClient, recorder: EventRecorder, clock: Callable[[], dt.datetime]):
        self.client, self.recorder, self.clock = client, recorder, clock
        self.pending_removals: dict[str, set[str]] = {}  # job key → pod uids whose finalizer removal is pending
        self.backoff: dict[str, ju.BackoffRecord] = {}

    def forget(self, key: str) -> None:
        """The Job is gone."""
        self.pending_removals.pop(key, None)
        self.backoff.pop(key, None)

    def expected_removals(self, key: str) -> set[str]:
        return set(self.pending_removals.get(key, ()))

    def removal_observed(self, key: str, uid: str) -> None:
        pending = self.pending_removals.get(key)
        if pending is not None:
            pending.discard(uid)

    async def remove_finalizer(self, pod: dict) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [ju.TRACKING_FINALIZER]}}
        try:
            await self.client.patch("v1", "pods", meta["name"], patch, namespace=meta["namespace"],
                                    patch_type="strategic")
        except ApiException as e:
            if e.status != 404:
                raise

    async def track_status(self, ctx: SyncContext, needs_flush: bool) -> None:
        """Move finished pods through uncountedTerminatedPods into the counters, and set
        the final condition once nothing is uncounted or terminating."""
        job = ctx.job
        spec, status = job["spec"], job["status"]
        indexed = ju.is_indexed(job)
        completions = int(spec.get("completions") or 0)
        pods = sorted(ctx.pods, key=ju.completion_index) if indexed else ctx.pods
        with_finalizer = {p["metadata"]["uid"] for p in pods
                          if ju.has_finalizer(p) and p["metadata"]["uid"] not in ctx.expected_rm_finalizers}
        if ju.clean_uncounted(status, with_finalizer):
            needs_flush = True
        uncounted = status["uncountedTerminatedPods"]
        policy = spec.get("podFailurePolicy")
        to_remove: list[dict] = []
        new_indexes: list[int] = []
        reached_max = False
        failing = ctx.finished is not None and ctx.finished.get("type") != "SuccessCriteriaMet"
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not ju.has_finalizer(pod) or uid in ctx.expected_rm_finalizers:
                continue  # counted in an earlier sync
            failed = ju.is_pod_failed(pod, job)
            if not can_remove_finalizer(ctx, pod, failed):
                continue
            to_remove.append(pod)
            ix = ju.completion_index(pod)
            if ju.phase(pod) == "Succeeded" and uid not in ctx.uncounted_failed:
                if indexed:
                    if 0 <= ix < completions and not ju.has_index(ctx.prev_succeeded_indexes, ix):
                        new_indexes.append(ix)
                        needs_flush = True
                elif uid not in ctx.uncounted_succeeded:
                    uncounted.setdefault("succeeded", []).append(uid)
                    needs_flush = True
            elif failed or failing:
                # A finishing Job's unfinished pods count as failed.
                if uid not in ctx.uncounted_failed and (not indexed or 0 <= ix < completions):
                    if ju.match_pod_failure_policy(policy, pod)[1]:
                        uncounted.setdefault("failed", []).append(uid)
                        needs_flush = True
            if (len(new_indexes) + len(uncounted.get("succeeded") or ())
                    + len(uncounted.get("failed") or ()) >= MAX_UNCOUNTED_PODS):
                reached_max = True  # the rest waits for the next sync, keeping status small
                break
        if indexed:
            ctx.succeeded_indexes = ju.merge_indexes(ctx.succeeded_indexes, new_indexes)
            text = ju.format_indexes(ctx.succeeded_indexes)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = ju.total_indexes(ctx.succeeded_indexes)
            status["completedIndexes"] = text
            if ctx.failed_indexes is not None:
                failed_text = ju.format_indexes(ctx.failed_indexes)
                if status.get("failedIndexes") != failed_text:
                    status["failedIndexes"] = failed_text
                    needs_flush = True
        now = self.clock()
        conds = status.setdefault("conditions", [])
        if ctx.finished is not None and ctx.finished["type"] == "FailureTarget":
            # Recorded before any finalizer goes, so the verdict survives a crash.
            conds.append(ctx.finished)
            needs_flush = True
            ctx.finished = ju.new_condition("Failed", "True", ctx.finished["reason"], ctx.finished["message"], now)
        if ctx.finished is not None and ctx.finished["type"] == "SuccessCriteriaMet":
            if ju.job_condition(job, "SuccessCriteriaMet") is None:
                conds.append(ctx.finished)
                needs_flush = True
            ctx.finished = ju.new_condition("Complete", "True", ctx.finished["reason"], ctx.finished["message"],
                                            now)
        if needs_flush:
            ctx.job = job = await self.update_status(job)
            self.backoff[ctx.key] = ctx.backoff
            needs_flush = False
            status = job["status"]
            status.setdefault("uncountedTerminatedPods", {})
        rm_error: Exception | None = None
        if to_remove:
            removed, rm_error = await self._remove_tracking_finalizers(ctx.key, to_remove)
            with_finalizer -= removed
        if ju.clean_uncounted(status, with_finalizer):
            needs_flush = True
        if rm_error is not None:
            if needs_flush:
                await self.update_status(job)
            raise rm_error
        finished = not reached_max and self._enact_finished(ctx, job)
        if finished or needs_flush:
            ctx.job = job = await self.update_status(job)
            if finished:
                self._record_finished(job, ctx.finished or {})

    async def _remove_tracking_finalizers(self, key: str, pods: list[dict]) -> tuple[set[str], Exception | None]:
        uids = [p["metadata"]["uid"] for p in pods]
        self.pending_removals.setdefault(key, set()).update(uids)
        results = await asyncio.gather(*(self.remove_finalizer(p) for p in pods), return_exceptions=True)
        removed: set[str] = set()
        err: Exception | None = None
        for uid, r in zip(uids, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, Exception):
                self.removal_observed(key, uid)  # no update will come for it
                err = err or r
            else:
                removed.add(uid)
        return removed, err

    def _enact_finished(self, ctx: SyncContext, job: dict) -> bool:
        if ctx.finished is None:
            return False
        status = job["status"]
        uncounted = status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed"):
            return False
        if ctx.terminating > 0:
            return False  # the final condition waits until every pod is gone
        cond = ctx.finished
        conds = status.setdefault("conditions", [])
        ju.ensure_condition(conds, cond["type"], "True", cond.get("reason", ""), cond.get("message", ""),
                            self.clock())
        if cond["type"] == "Complete":
            status["completionTime"] = ju.job_condition(job, "Complete")["lastTransitionTime"]
        return True

    def _record_finished(self, job: dict, cond: dict) -> None:
        if cond.get("type") == "Complete":
            completions = (job.get("spec") or {}).get("completions")
            if completions is not None and int((job.get("status") or {}).get("succeeded") or 0) > int(completions):
                self.recorder.event(job, "Warning", "TooManySucceededPods",
                                    "Too many succeeded pods running after completion count reached")
            self.recorder.event(job, "Normal", "Completed", "Job completed")
        else:
            self.recorder.event(job, "Warning", cond.get("reason", ""), cond.get("message", ""))

    async def update_status(self, job: dict) -> dict:
        """PUT ``status`` (optimistic concurrency: a stale copy gets 409 and the sync is
        retried, never overwriting counts someone else wrote)."""
        body = copy.deepcopy(job)
        status = body.setdefault("status", {})
        for k in ("active", "succeeded", "failed"):
            if not status.get(k):
                status.pop(k, None)  # omitempty, as Kubernetes writes them
        if not status.get("conditions"):
            status.pop("conditions", None)
        status["uncountedTerminatedPods"] = {k: v for k, v in (status.get("uncountedTerminatedPods") or {}).items()
                                             if v}
        updated = await self.client.update(API_VERSION, "jobs", body, job["metadata"]["namespace"], sub="status")
        updated["kind"], updated["apiVersion"] = KIND, API_VERSION
        updated.setdefault("status", {}).setdefault("uncountedTerminatedPods", {})
        return updated


__all__ = ["MAX_UNCOUNTED_PODS", "JobTracker", "SyncContext", "judge", "new_finished"]
