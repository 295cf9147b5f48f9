"""Job controller (Kubernetes' ``pkg/controller/job``): runs pods until a Job's
completions succeed, or fails it.

Level-triggered, from informers on batch/v1 jobs and v1 pods.  Each sync:

1. claims the Job's pods (adopting orphans with the tracking finalizer);
2. decides whether the Job has finished: FailJob pod-failure-policy rules, the
   backoff limit (global or per index), ``activeDeadlineSeconds``, success;
3. otherwise, if expectations allow, creates or deletes pods toward
   ``min(parallelism, completions - succeeded)`` — with exponential back-off
   after failures — or deletes them all while suspended;
4. counts finished pods in two phases so that none is ever lost or counted
   twice: their uids go to ``status.uncountedTerminatedPods`` first, then the
   ``batch.kubernetes.io/job-tracking`` finalizer is removed from them, then
   they move into ``succeeded``/``failed``.  Finishing takes the same route:
   ``SuccessCriteriaMet``/``FailureTarget`` first, ``Complete``/``Failed`` once
   nothing is uncounted or terminating.

Pods deleted by the controller for scale-down or suspension lose their finalizer
first (they count as neither success nor failure).  A pod seen being deleted
before it finished counts as failed even if it later reports success, as a
kubelet marks a killed pod Failed.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..api.selectors import LabelSelector, SelectorError, from_label_selector_object, matches_labels
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers
from . import controller_utils as cu
from . import job_util as ju

log = logging.getLogger(__name__)

API_VERSION, GROUP, KIND = "batch/v1", "batch", "Job"
WORKERS = 5
# Pod events are batched per Job (Kubernetes waits 1 s; shorter here to stay responsive).
SYNC_BATCH_PERIOD = 0.1
POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0
MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Ctx:
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


class JobController:
    """``JobController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  ``recorder=None``: it owns an EventRecorder
    ("job-controller").  ``backoff_base``/``backoff_max`` (seconds) set the delay
    before recreating pods after failures; ``clock`` gives the current UTC time."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, backoff_base: float = POD_FAILURE_BACKOFF,
                 backoff_max: float = MAX_POD_FAILURE_BACKOFF, sync_batch_period: float = SYNC_BATCH_PERIOD,
                 clock: Callable[[], dt.datetime] = _now):
        self.client = client
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(client, "job-controller")
        self.workers = workers
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.batch_period = sync_batch_period
        self.clock = clock
        self.job_informer = factory.informer(API_VERSION, "jobs")
        self.pod_informer = factory.informer("v1", "pods")
        self.job_lister, self.pod_lister = self.job_informer.lister, self.pod_informer.lister
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("job", base_delay=0.05, max_delay=60.0)
        self.orphan_queue: RateLimitingQueue[str] = RateLimitingQueue("job-orphan-pod", base_delay=0.05,
                                                                      max_delay=60.0)
        self.expectations = cu.UIDTrackingControllerExpectations()
        self._rm_finalizers: dict[str, set[str]] = {}  # job key → pod uids whose finalizer removal is pending
        self._backoff: dict[str, ju.BackoffRecord] = {}
        # Pods seen being deleted while still running: they count as failed whatever they report later.
        self._killed: set[str] = set()
        self.job_informer.add_event_handler(on_add=self._job_added, on_update=self._job_updated,
                                            on_delete=self._job_deleted)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=lambda p: self._pod_deleted(p, final=True))
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._own_recorder:
            self.recorder.start()
        self._task = asyncio.create_task(self._run(), name="job")

    async def _run(self) -> None:
        await asyncio.gather(self.job_informer.wait_for_sync(), self.pod_informer.wait_for_sync())
        await asyncio.gather(run_workers(self.queue, self.workers, self.sync, "job"),
                             run_workers(self.orphan_queue, 1, self.sync_orphan_pod, "job-orphan-pod"))

    async def stop(self) -> None:
        self.queue.shutdown()
        self.orphan_queue.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._own_recorder:
            await self.recorder.stop()

    # -- event handlers -------------------------------------------------------------------

    @staticmethod
    def _key(obj: dict) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def enqueue(self, job: dict, after: float = 0.0) -> None:
        self.queue.add_after(self._key(job), after) if after > 0 else self.queue.add(self._key(job))

    def _enqueue_batched(self, job: dict) -> None:
        self.enqueue(job, self.batch_period)

    def _job_added(self, job: dict) -> None:
        self.enqueue(job)

    def _job_updated(self, old: dict, cur: dict) -> None:
        ometa, cmeta = old.get("metadata") or {}, cur.get("metadata") or {}
        if ometa.get("uid") != cmeta.get("uid"):
            self._job_deleted(old)
        if ometa.get("generation") == cmeta.get("generation"):
            self._enqueue_batched(cur)  # a status write, typically ours: no hurry
        else:
            self.enqueue(cur)
        if ju.is_job_finished(cur):
            self._cleanup_pod_finalizers(cur)
        start = cu.parse_time((cur.get("status") or {}).get("startTime"))
        ads, old_ads = ((cur.get("spec") or {}).get("activeDeadlineSeconds"),
                        (old.get("spec") or {}).get("activeDeadlineSeconds"))
        if start is not None and ads is not None and ads != old_ads:
            self.enqueue(cur, max(0.0, ads - (self.clock() - start).total_seconds()))

    def _job_deleted(self, job: dict) -> None:
        self.enqueue(job)
        self._cleanup_pod_finalizers(job)

    def _cleanup_pod_finalizers(self, job: dict) -> None:
        """Finished or deleted: nothing will count its pods any more; free them."""
        ns = (job.get("metadata") or {}).get("namespace", "")
        for pod in self.pod_lister.list(ns):
            if ju.has_finalizer(pod) and cu.is_controlled_by(pod, job):
                self.orphan_queue.add(cu.pod_key(pod))

    def _resolve(self, pod: dict, ref: dict | None) -> dict | None:
        return cu.resolve_controller_ref(ref, (pod.get("metadata") or {}).get("namespace", ""), KIND, GROUP,
                                         self.job_lister.get)

    def _matching_jobs(self, pod: dict) -> list[dict]:
        meta = pod.get("metadata") or {}
        out = []
        for job in self.job_lister.list(meta.get("namespace", "")):
            try:
                sel = from_label_selector_object((job.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if sel and matches_labels(sel, meta.get("labels")):
                out.append(job)
        return out

    def _pod_added(self, pod: dict) -> None:
        if cu.is_being_deleted(pod):
            self._note_killed(None, pod)
            self._pod_deleted(pod, final=False)
            return
        ref = cu.controller_ref(pod)
        if ref is not None:
            job = self._resolve(pod, ref)
            if job is not None:
                self.expectations.creation_observed(self._key(job))
                self._enqueue_batched(job)
            return
        if ju.has_finalizer(pod):
            self.orphan_queue.add(cu.pod_key(pod))
        for job in self._matching_jobs(pod):
            self._enqueue_batched(job)

    def _note_killed(self, old: dict | None, cur: dict) -> None:
        was = ju.phase(old) if old is not None else ju.phase(cur)
        if cu.is_being_deleted(cur) and was not in ("Succeeded", "Failed"):
            self._killed.add((cur.get("metadata") or {}).get("uid", ""))

    def _pod_updated(self, old: dict, cur: dict) -> None:
        ometa, cmeta = old.get("metadata") or {}, cur.get("metadata") or {}
        if ometa.get("resourceVersion") == cmeta.get("resourceVersion"):
            return
        if cu.is_being_deleted(cur):
            if not cu.is_being_deleted(old):
                self._note_killed(old, cur)
            self._pod_deleted(cur, final=False)
            return
        finalizer_removed = not ju.has_finalizer(cur)
        cur_ref, old_ref = cu.controller_ref(cur), cu.controller_ref(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            job = self._resolve(old, old_ref)
            if job is not None:
                if finalizer_removed:
                    self._finalizer_removal_observed(self._key(job), cmeta.get("uid", ""))
                self._enqueue_batched(job)
        if cur_ref is not None:
            job = self._resolve(cur, cur_ref)
            if job is None:
                return
            if finalizer_removed:
                self._finalizer_removal_observed(self._key(job), cmeta.get("uid", ""))
            self._enqueue_batched(job)
            return
        if ju.has_finalizer(cur):
            self.orphan_queue.add(cu.pod_key(cur))
        if ometa.get("labels") != cmeta.get("labels") or ref_changed:
            for job in self._matching_jobs(cur):
                self._enqueue_batched(job)

    def _pod_deleted(self, pod: dict, final: bool) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if final:
            self._killed.discard(uid)
        ref = cu.controller_ref(pod)
        has_fin = ju.has_finalizer(pod)
        if ref is None:
            if has_fin and not final:
                self.orphan_queue.add(cu.pod_key(pod))
            return
        job = self._resolve(pod, ref)
        if job is None or ju.is_job_finished(job):
            if has_fin and not final:
                self.orphan_queue.add(cu.pod_key(pod))
            return
        key = self._key(job)
        self.expectations.deletion_observed(key, cu.pod_key(pod))
        if final or not has_fin:
            self._finalizer_removal_observed(key, uid)
        self._enqueue_batched(job)

    def _finalizer_removal_observed(self, key: str, uid: str) -> None:
        pending = self._rm_finalizers.get(key)
        if pending is not None:
            pending.discard(uid)

    # -- orphan pods ------------------------------------------------------------------------

    async def sync_orphan_pod(self, key: str) -> None:
        """Remove the tracking finalizer from a pod no unfinished Job of ours controls."""
        namespace, name = split_key(key)
        cached = self.pod_lister.get(name, namespace)
        if cached is None or not ju.has_finalizer(cached) or not self._orphaned(cached):
            return
        # The cache may lag an adoption: decide on a fresh copy, and make the removal
        # conditional on that copy's resourceVersion.
        try:
            pod = await self.client.get("v1", "pods", name, namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        if not ju.has_finalizer(pod) or not self._orphaned(pod):
            return
        meta = pod["metadata"]
        fins = [f for f in meta.get("finalizers") or () if f != ju.TRACKING_FINALIZER]
        try:
            await self.client.patch("v1", "pods", name, {"metadata": {
                "finalizers": fins or None, "resourceVersion": meta.get("resourceVersion")}}, namespace=namespace)
        except ApiException as e:
            if e.status == 409:
                self.orphan_queue.add(key)  # changed meanwhile: look again
            elif e.status != 404:
                raise

    def _orphaned(self, pod: dict) -> bool:
        """No unfinished Job counts this pod (finalizers of non-Job pods are not ours)."""
        ref = cu.controller_ref(pod)
        if ref is None:
            return True
        if ref.get("kind") != KIND or ref.get("apiVersion") != API_VERSION:
            return False
        job = self._resolve(pod, ref)
        return job is None or ju.is_job_finished(job)

    async def _remove_finalizer(self, pod: dict) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [ju.TRACKING_FINALIZER]}}
        try:
            await self.client.patch("v1", "pods", meta["name"], patch, namespace=meta["namespace"],
                                    patch_type="strategic")
        except ApiException as e:
            if e.status != 404:
                raise

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one Job ("ns/name").  Raises on API errors (the worker retries)."""
        namespace, name = split_key(key)
        shared = self.job_lister.get(name, namespace)
        if shared is None:
            self.expectations.delete_expectations(key)
            self._rm_finalizers.pop(key, None)
            self._backoff.pop(key, None)
            return
        job = copy.deepcopy(shared)
        job["kind"], job["apiVersion"] = KIND, API_VERSION
        if ju.is_job_finished(job):
            self._backoff.pop(key, None)
            return
        spec = job.setdefault("spec", {})
        status = job.setdefault("status", {})
        if spec.get("completionMode") not in (None, "NonIndexed", "Indexed"):
            self.recorder.event(job, "Warning", "UnknownCompletionMode",
                                "Skipped Job sync because completion mode is unknown")
            return
        try:
            selector = from_label_selector_object(spec.get("selector"))
        except SelectorError as e:
            log.error("job %s has an invalid selector: %s", key, e)
            return
        if not selector:
            log.error("job %s has no selector; ignoring it", key)
            return
        uncounted = status.get("uncountedTerminatedPods") or {}
        status["uncountedTerminatedPods"] = {k: list(v) for k, v in uncounted.items() if v}
        satisfied = self.expectations.satisfied_expectations(key)
        pods = [self._effective(p) for p in await self._pods_for_job(job, selector)]
        active_pods = cu.filter_active_pods(pods)
        ctx = _Ctx(job=job, key=key, pods=pods, active_pods=active_pods,
                   ready=sum(1 for p in active_pods if cu.is_pod_ready(p)),
                   terminating=sum(1 for p in pods if ju.is_terminating(p)),
                   uncounted_succeeded=set(uncounted.get("succeeded") or ()),
                   uncounted_failed=set(uncounted.get("failed") or ()),
                   expected_rm_finalizers=set(self._rm_finalizers.get(key, ())))
        now = self.clock()
        active = len(active_pods)
        new_succeeded = self._new_finished(ctx, ctx.uncounted_succeeded, lambda p: ju.phase(p) == "Succeeded")
        new_failed = self._new_finished(ctx, ctx.uncounted_failed, lambda p: ju.is_pod_failed(p, job))
        ignored = sum(1 for p in new_failed
                      if not ju.match_pod_failure_policy(spec.get("podFailurePolicy"), p)[1])
        ctx.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(ctx.uncounted_succeeded)
        ctx.failed = int(status.get("failed") or 0) + len(new_failed) - ignored + len(ctx.uncounted_failed)
        suspended = bool(spec.get("suspend"))
        if status.get("startTime") is None and not suspended:
            status["startTime"] = ju.format_time(now)
        ctx.backoff = ju.next_backoff_record(self._backoff.get(key, ju.BackoffRecord()), new_succeeded, new_failed)

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
            elif self._past_active_deadline(job, now):
                ctx.finished = ju.new_condition("FailureTarget", "True", "DeadlineExceeded",
                                                "Job was active longer than specified deadline", now)
            elif spec.get("activeDeadlineSeconds") is not None and not suspended:
                start = cu.parse_time(status.get("startTime")) or now
                left = int(spec["activeDeadlineSeconds"]) - (now - start).total_seconds()
                self.queue.add_after(key, max(left, 0.0) + 0.05)

        if ju.is_indexed(job):
            completions = int(spec.get("completions") or 0)
            ctx.prev_succeeded_indexes = ju.parse_indexes(status.get("completedIndexes"), completions)
            ctx.succeeded_indexes = ju.merge_indexes(ctx.prev_succeeded_indexes, (
                ix for p in pods if ju.phase(p) == "Succeeded" and ju.has_finalizer(p)
                and 0 <= (ix := ju.completion_index(p)) < completions))
            ctx.succeeded = ju.total_indexes(ctx.succeeded_indexes)
            if ju.has_backoff_limit_per_index(job):
                ctx.failed_indexes = self._failed_indexes(job, pods, completions)
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
                ctx.delayed_deletion = self._pods_with_delayed_deletion(ctx, completions)

        manage_error: Exception | None = None
        suspend_changed = False
        if ctx.finished is not None:
            deleted_ready, deleted, manage_error = await self._delete_active_pods(job, active_pods)
            if deleted != active or not satisfied:
                ctx.finished = None  # pods not yet seen by the cache may remain: decide later
            active -= deleted
            ctx.terminating += deleted
            ctx.ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not cu.is_being_deleted(job):
                active, manage_error = await self._manage_job(ctx)
                manage_called = True
            completions = spec.get("completions")
            if completions is None:
                # Work-queue Jobs finish once any pod succeeded and the rest are done.
                complete = ctx.succeeded > 0 and active == 0
            else:
                complete = ctx.succeeded >= int(completions) and active == 0
            if complete:
                ctx.finished = ju.new_condition("SuccessCriteriaMet", "True", "CompletionsReached",
                                                "Reached expected number of succeeded pods", now)
            elif manage_called:
                conds = status.setdefault("conditions", [])
                if suspended:
                    if ju.ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", now):
                        suspend_changed = True
                        self.recorder.event(job, "Normal", "Suspended", "Job suspended")
                elif ju.ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", now):
                    suspend_changed = True
                    self.recorder.event(job, "Normal", "Resumed", "Job resumed")
                    # activeDeadlineSeconds counts continuous activity: restart the clock.
                    status["startTime"] = ju.format_time(now)
                if not conds:
                    status.pop("conditions", None)

        needs_update = (suspend_changed or active != int(status.get("active") or 0)
                        or ctx.ready != status.get("ready") or ctx.terminating != status.get("terminating"))
        status["active"], status["ready"], status["terminating"] = active, ctx.ready, ctx.terminating
        await self._track_status(ctx, needs_update)
        if manage_error is not None:
            raise manage_error

    def _effective(self, pod: dict) -> dict:
        # A pod killed mid-run that then reports success did not do its work.
        if (pod.get("metadata") or {}).get("uid") in self._killed and ju.phase(pod) == "Succeeded":
            return {**pod, "status": {**pod["status"], "phase": "Failed"}}
        return pod

    async def _pods_for_job(self, job: dict, selector: LabelSelector) -> list[dict]:
        pods = self.pod_lister.list(job["metadata"]["namespace"])
        owned_before = {(p.get("metadata") or {}).get("uid") for p in pods if cu.is_controlled_by(p, job)}
        claimed = await cu.claim_pods(self.client, job, selector, pods, lambda: self._can_adopt(job),
                                      cu.new_controller_ref(job, API_VERSION, KIND))
        out = []
        for p in claimed:
            pmeta = p.get("metadata") or {}
            if pmeta.get("uid") not in owned_before and not ju.has_finalizer(p):
                # Adopted: track it like our own (finalizers merge: no precondition needed).
                try:
                    p = await self.client.patch("v1", "pods", pmeta["name"], {"metadata": {
                        "finalizers": [ju.TRACKING_FINALIZER]}}, namespace=pmeta["namespace"],
                        patch_type="strategic")
                except ApiException as e:
                    if e.status not in (404, 409):
                        raise
                    continue
            out.append(p)
        return out

    async def _can_adopt(self, job: dict) -> bool:
        meta = job["metadata"]
        try:
            fresh = await self.client.get(API_VERSION, "jobs", meta["name"], meta["namespace"])
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return fresh["metadata"].get("uid") == meta.get("uid") and not cu.is_being_deleted(fresh)

    @staticmethod
    def _new_finished(ctx: _Ctx, uncounted: set[str], pred: Callable[[dict], bool]) -> list[dict]:
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

    def _past_active_deadline(self, job: dict, now: dt.datetime) -> bool:
        spec, status = job.get("spec") or {}, job.get("status") or {}
        ads, start = spec.get("activeDeadlineSeconds"), cu.parse_time(status.get("startTime"))
        if ads is None or start is None or spec.get("suspend"):
            return False
        return (now - start).total_seconds() >= int(ads)

    def _failed_indexes(self, job: dict, pods: list[dict], completions: int) -> ju.Intervals:
        prev = ju.parse_indexes((job.get("status") or {}).get("failedIndexes"), completions)
        return ju.merge_indexes(prev, (ix for p in pods if ju.has_finalizer(p)
                                       and 0 <= (ix := ju.completion_index(p)) < completions
                                       and ju.is_index_failed(job, p)))

    def _pods_with_delayed_deletion(self, ctx: _Ctx, completions: int) -> dict[int, dict]:
        """Per index, the last failed pod, kept (finalizer and all) until its replacement
        exists, so the replacement can inherit its failure count."""
        active_ix = {ju.completion_index(p) for p in ctx.active_pods}
        out: dict[int, dict] = {}
        for p in self._new_finished(ctx, set(), lambda p: ju.is_pod_failed(p, ctx.job)):
            ix = ju.completion_index(p)
            if (ju.has_index(ctx.succeeded_indexes, ix) or ju.has_index(ctx.failed_indexes or [], ix)
                    or ix in active_ix):
                continue
            prev = out.get(ix)
            if prev is None or (ju.index_absolute_failure_count(prev) <= ju.index_absolute_failure_count(p)
                                and ju.finished_time(p) >= ju.finished_time(prev)):
                out[ix] = p
        return out

    # -- pod management ---------------------------------------------------------------------

    async def _manage_job(self, ctx: _Ctx) -> tuple[int, Exception | None]:
        job, key = ctx.job, ctx.key
        spec = job["spec"]
        active = len(ctx.active_pods)
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        if spec.get("suspend"):
            victims = ju.active_pods_for_removal(job, ctx.active_pods, active)
            ready, removed, err = await self._delete_job_pods(job, key, victims)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed, err
        completions = spec.get("completions")
        if completions is None:
            # Work-queue style: once one pod succeeded, start no more.
            want = active if ctx.succeeded > 0 else parallelism
        else:
            want = max(0, min(int(completions) - ctx.succeeded, parallelism))
        victims = ju.active_pods_for_removal(job, ctx.active_pods, max(0, active - want))
        victims = victims[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if victims:
            # Deleting and creating in one sync could fight itself; deleting goes first.
            ready, removed, err = await self._delete_job_pods(job, key, victims)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed, err
        terminating = ctx.terminating if ju.only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active, None
        now = self.clock()
        if not ju.has_backoff_limit_per_index(job):
            left = ju.remaining_backoff(ctx.backoff.failures_after_last_success, ctx.backoff.last_failure_time,
                                        now, self.backoff_base, self.backoff_max)
            if left > 0:
                self.enqueue(job, max(left, self.batch_period))
                return active, None
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if ju.is_indexed(job):
            completions_n = int(spec.get("completions") or 0)
            taken = ju.merge_indexes(ctx.succeeded_indexes, (ju.completion_index(p) for p in ctx.active_pods
                                                             if ju.completion_index(p) >= 0))
            if ju.only_replace_failed_pods(job):
                taken = ju.merge_indexes(taken, (ju.completion_index(p) for p in ctx.pods
                                                 if ju.is_terminating(p) and ju.completion_index(p) >= 0))
            for lo, hi in ctx.failed_indexes or ():
                taken = ju.merge_indexes(taken, range(lo, hi + 1))
            indexes = ju.first_pending_indexes(diff, completions_n, taken)
            if ju.has_backoff_limit_per_index(job):
                indexes, left = self._indexes_ready_now(indexes, ctx.delayed_deletion, now)
                if left > 0:
                    self.enqueue(job, max(left, self.batch_period))
                    return active, None
            diff = len(indexes)
        if diff <= 0:
            return active, None
        template = copy.deepcopy(spec.get("template") or {})
        if ju.is_indexed(job):
            ju.add_completion_index_env(template.setdefault("spec", {}))
        tmeta = template.setdefault("metadata", {})
        tmeta["finalizers"] = [*[f for f in tmeta.get("finalizers") or () if f != ju.TRACKING_FINALIZER],
                               ju.TRACKING_FINALIZER]
        # Expect before creating: the informer may report the pods before POST returns.
        self.expectations.expect_creations(key, diff)
        pending = list(indexes)

        async def create_one() -> None:
            ix = pending.pop(0) if pending else None
            await self._create_pod(job, template, ix, ctx.delayed_deletion.get(ix) if ix is not None else None)

        successes, err = await cu.slow_start_batch(diff, cu.SLOW_START_INITIAL_BATCH_SIZE, create_one)
        if successes < diff:
            self.expectations.lower_expectations(key, add=diff - successes)
        return active + successes, err

    def _indexes_ready_now(self, indexes: list[int], delayed: dict[int, dict], now: dt.datetime
                           ) -> tuple[list[int], float]:
        ready, min_left = [], None
        for ix in indexes:
            last = delayed.get(ix)
            left = 0.0 if last is None else ju.remaining_backoff(
                ju.index_absolute_failure_count(last) + 1, ju.finished_time(last), now, self.backoff_base,
                self.backoff_max)
            if left <= 0:
                ready.append(ix)
            elif min_left is None or left < min_left:
                min_left = left
        return (ready, 0.0) if ready else ([], min_left or 0.0)

    async def _create_pod(self, job: dict, template: dict, index: int | None, replaced: dict | None) -> None:
        meta = job["metadata"]
        generate_name = None
        if index is not None:
            template = copy.deepcopy(template)
            tmeta = template.setdefault("metadata", {})
            tmeta.setdefault("annotations", {})[ju.COMPLETION_INDEX] = str(index)
            tmeta.setdefault("labels", {})[ju.COMPLETION_INDEX] = str(index)
            template.setdefault("spec", {})["hostname"] = f"{meta['name']}-{index}"
            generate_name = ju.generate_name_with_index(meta["name"], index)
            if ju.has_backoff_limit_per_index(job):
                failures = ignored = 0
                if replaced is not None:
                    failures = ju.index_failure_count(replaced)
                    ignored = ju.index_absolute_failure_count(replaced) - failures
                    counts = ju.match_pod_failure_policy(job["spec"].get("podFailurePolicy"), replaced)[1]
                    failures, ignored = (failures + 1, ignored) if counts else (failures, ignored + 1)
                tmeta["annotations"][ju.INDEX_FAILURE_COUNT] = str(failures)
                if ignored:
                    tmeta["annotations"][ju.INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
        pod = cu.pod_from_template(template, job, cu.new_controller_ref(job, API_VERSION, KIND), generate_name)
        try:
            created = await self.client.create("v1", "pods", pod, meta["namespace"])
        except ApiException as e:
            if e.status == 403 and "being terminated" in (e.message or ""):
                return
            self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e.message or e}")
            raise
        self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_job_pods(self, job: dict, key: str, pods: list[dict]) -> tuple[int, int, Exception | None]:
        """Delete pods the Job no longer wants; their finalizer goes first, so they count
        as neither success nor failure."""
        if not pods:
            return 0, 0, None
        self.expectations.expect_pod_deletions(key, (cu.pod_key(p) for p in pods))

        async def one(pod: dict) -> None:
            try:
                if ju.has_finalizer(pod):
                    await self._remove_finalizer(pod)
                await self._delete_pod(job, pod)
            except BaseException:
                self.expectations.deletion_observed(key, cu.pod_key(pod))
                raise

        return await self._gather_deletes(pods, one)

    async def _delete_active_pods(self, job: dict, pods: list[dict]) -> tuple[int, int, Exception | None]:
        """Delete the pods of a finishing Job, finalizers kept: they are counted as failed."""
        return await self._gather_deletes(pods, lambda p: self._delete_pod(job, p))

    @staticmethod
    async def _gather_deletes(pods: list[dict], fn: Callable) -> tuple[int, int, Exception | None]:
        results = await asyncio.gather(*(fn(p) for p in pods), return_exceptions=True)
        ready = removed = 0
        err: Exception | None = None
        for pod, r in zip(pods, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, Exception):
                err = err or r
                continue
            removed += 1
            ready += 1 if cu.is_pod_ready(pod) else 0
        return ready, removed, err

    async def _delete_pod(self, job: dict, pod: dict) -> None:
        pmeta = pod["metadata"]
        try:
            await self.client.delete("v1", "pods", pmeta["name"], pmeta["namespace"],
                                     preconditions={"uid": pmeta.get("uid")})
        except ApiException as e:
            if e.status in (404, 409):
                return
            self.recorder.event(job, "Warning", "FailedDelete", f"Error deleting: {e.message or e}")
            raise
        self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pmeta['name']}")

    # -- status tracking ----------------------------------------------------------------------

    async def _track_status(self, ctx: _Ctx, needs_flush: bool) -> None:
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
            if not self._can_remove_finalizer(ctx, pod, failed):
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
            ctx.job = job = await self._update_status(job)
            self._backoff[ctx.key] = ctx.backoff
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
                await self._update_status(job)
            raise rm_error
        finished = not reached_max and self._enact_finished(ctx, job)
        if finished or needs_flush:
            ctx.job = job = await self._update_status(job)
            if finished:
                self._record_finished(job, ctx.finished or {})

    @staticmethod
    def _can_remove_finalizer(ctx: _Ctx, pod: dict, failed: bool) -> bool:
        if cu.is_being_deleted(ctx.job) or ctx.finished is not None or ju.phase(pod) == "Succeeded":
            return True
        if not failed:
            return False
        if ju.has_backoff_limit_per_index(ctx.job):
            kept = ctx.delayed_deletion.get(ju.completion_index(pod))
            if kept is not None and kept["metadata"]["uid"] == pod["metadata"]["uid"]:
                return False  # until its replacement carries the failure count on
        return True

    async def _remove_tracking_finalizers(self, key: str, pods: list[dict]) -> tuple[set[str], Exception | None]:
        uids = [p["metadata"]["uid"] for p in pods]
        self._rm_finalizers.setdefault(key, set()).update(uids)
        results = await asyncio.gather(*(self._remove_finalizer(p) for p in pods), return_exceptions=True)
        removed: set[str] = set()
        err: Exception | None = None
        for uid, r in zip(uids, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, Exception):
                self._finalizer_removal_observed(key, uid)  # no update will come for it
                err = err or r
            else:
                removed.add(uid)
        return removed, err

    def _enact_finished(self, ctx: _Ctx, job: dict) -> bool:
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

    async def _update_status(self, job: dict) -> dict:
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


__all__ = ["JobController"]
