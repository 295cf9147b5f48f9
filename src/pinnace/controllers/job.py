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

The verdicts and the counting (step 2 and 4) are in :mod:`.job_tracking`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Callable

from ..api.selectors import LabelSelector, SelectorError, from_label_selector_object
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers
from . import controller_utils as cu
from . import job_tracking as jt
from . import job_util as ju
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION, GROUP, KIND = "batch/v1", "batch", "Job"
WORKERS = 5
# Pod events are batched per Job (Kubernetes waits 1 s; shorter here to stay responsive).
SYNC_BATCH_PERIOD = 0.1
POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0
MAX_UNCOUNTED_PODS = jt.MAX_UNCOUNTED_PODS
MAX_POD_CREATE_DELETE_PER_SYNC = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobController(QueueController):
    """``JobController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  ``recorder=None``: it owns an EventRecorder
    ("job-controller").  ``backoff_base``/``backoff_max`` (seconds) set the delay
    before recreating pods after failures; ``clock`` gives the current UTC time."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, backoff_base: float = POD_FAILURE_BACKOFF,
                 backoff_max: float = MAX_POD_FAILURE_BACKOFF, sync_batch_period: float = SYNC_BATCH_PERIOD,
                 clock: Callable[[], dt.datetime] = _now):
        super().__init__(client, factory, recorder, component="job-controller", queue="job", workers=workers)
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.batch_period = sync_batch_period
        self.clock = clock
        self.job_informer = self.informer(API_VERSION, "jobs")
        self.pod_informer = self.informer("v1", "pods")
        self.job_lister, self.pod_lister = self.job_informer.lister, self.pod_informer.lister
        self.owner_lister = self.job_lister
        # Faster retries than the default queue's (a Job's sync is mostly waiting on its own writes).
        self.queue = RateLimitingQueue("job", base_delay=0.05, max_delay=60.0)
        self.orphan_queue: RateLimitingQueue[str] = RateLimitingQueue("job-orphan-pod", base_delay=0.05,
                                                                      max_delay=60.0)
        self.expectations = cu.UIDTrackingControllerExpectations()
        self.tracker = jt.JobTracker(client, self.recorder, lambda: self.clock())
        # Pods seen being deleted while still running: they count as failed whatever they report later.
        self._killed: set[str] = set()
        self.job_informer.add_event_handler(on_add=self.enqueue, on_update=self._job_updated,
                                            on_delete=self._job_deleted)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=lambda p: self._pod_deleted(p, final=True))

    # -- lifecycle ----------------------------------------------------------------------

    async def _run_workers(self) -> None:
        await asyncio.gather(super()._run_workers(),
                             run_workers(self.orphan_queue, 1, self.sync_orphan_pod, "job-orphan-pod"))

    async def stop(self) -> None:
        self.orphan_queue.shutdown()
        await super().stop()

    # -- event handlers -------------------------------------------------------------------

    def _enqueue_batched(self, job: dict) -> None:
        self.enqueue(job, self.batch_period)

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

    def _pod_added(self, pod: dict) -> None:
        if cu.is_being_deleted(pod):
            self._note_killed(None, pod)
            self._pod_deleted(pod, final=False)
            return
        ref = cu.controller_ref(pod)
        if ref is not None:
            job = self.owner_of(pod)
            if job is not None:
                self.expectations.creation_observed(self.key(job))
                self._enqueue_batched(job)
            return
        if ju.has_finalizer(pod):
            self.orphan_queue.add(cu.pod_key(pod))
        for job in self.owners_selecting(pod):
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
            job = self.owner_of(old)
            if job is not None:
                if finalizer_removed:
                    self.tracker.removal_observed(self.key(job), cmeta.get("uid", ""))
                self._enqueue_batched(job)
        if cur_ref is not None:
            job = self.owner_of(cur)
            if job is None:
                return
            if finalizer_removed:
                self.tracker.removal_observed(self.key(job), cmeta.get("uid", ""))
            self._enqueue_batched(job)
            return
        if ju.has_finalizer(cur):
            self.orphan_queue.add(cu.pod_key(cur))
        if ometa.get("labels") != cmeta.get("labels") or ref_changed:
            for job in self.owners_selecting(cur):
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
        job = self.owner_of(pod)
        if job is None or ju.is_job_finished(job):
            if has_fin and not final:
                self.orphan_queue.add(cu.pod_key(pod))
            return
        key = self.key(job)
        self.expectations.deletion_observed(key, cu.pod_key(pod))
        if final or not has_fin:
            self.tracker.removal_observed(key, uid)
        self._enqueue_batched(job)

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
        job = self.owner_of(pod)
        return job is None or ju.is_job_finished(job)

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one Job ("ns/name").  Raises on API errors (the worker retries)."""
        namespace, name = split_key(key)
        shared = self.job_lister.get(name, namespace)
        if shared is None:
            self.expectations.delete_expectations(key)
            self.tracker.forget(key)
            return
        job = copy.deepcopy(shared)
        job["kind"], job["apiVersion"] = KIND, API_VERSION
        if ju.is_job_finished(job):
            self.tracker.backoff.pop(key, None)
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
        ctx = jt.SyncContext(job=job, key=key, pods=pods, active_pods=active_pods,
                             ready=sum(1 for p in active_pods if cu.is_pod_ready(p)),
                             terminating=sum(1 for p in pods if ju.is_terminating(p)),
                             uncounted_succeeded=set(uncounted.get("succeeded") or ()),
                             uncounted_failed=set(uncounted.get("failed") or ()),
                             expected_rm_finalizers=self.tracker.expected_removals(key))
        now = self.clock()
        active = len(active_pods)
        new_succeeded = jt.new_finished(ctx, ctx.uncounted_succeeded, lambda p: ju.phase(p) == "Succeeded")
        new_failed = jt.new_finished(ctx, ctx.uncounted_failed, lambda p: ju.is_pod_failed(p, job))
        ignored = sum(1 for p in new_failed
                      if not ju.match_pod_failure_policy(spec.get("podFailurePolicy"), p)[1])
        ctx.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(ctx.uncounted_succeeded)
        ctx.failed = int(status.get("failed") or 0) + len(new_failed) - ignored + len(ctx.uncounted_failed)
        suspended = bool(spec.get("suspend"))
        if status.get("startTime") is None and not suspended:
            status["startTime"] = ju.format_time(now)
        ctx.backoff = ju.next_backoff_record(self.tracker.backoff.get(key, ju.BackoffRecord()), new_succeeded,
                                             new_failed)

        deadline_in = jt.judge(ctx, now)
        if deadline_in is not None:
            self.queue.add_after(key, deadline_in)

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
        await self.tracker.track_status(ctx, needs_update)
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
        claimed = await cu.claim_pods(self.client, job, selector, pods,
                                      lambda: cu.can_adopt(self.client, job, API_VERSION, "jobs"),
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

    # -- pod management ---------------------------------------------------------------------

    async def _manage_job(self, ctx: jt.SyncContext) -> tuple[int, Exception | None]:
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
        await cu.create_pod(self.client, self.recorder, job, pod)

    async def _delete_job_pods(self, job: dict, key: str, pods: list[dict]) -> tuple[int, int, Exception | None]:
        """Delete pods the Job no longer wants; their finalizer goes first, so they count
        as neither success nor failure."""
        if not pods:
            return 0, 0, None
        self.expectations.expect_pod_deletions(key, (cu.pod_key(p) for p in pods))

        async def one(pod: dict) -> None:
            try:
                if ju.has_finalizer(pod):
                    await self.tracker.remove_finalizer(pod)
                await cu.delete_pod(self.client, self.recorder, job, pod)
            except BaseException:
                self.expectations.deletion_observed(key, cu.pod_key(pod))
                raise

        return await self._gather_deletes(pods, one)

    async def _delete_active_pods(self, job: dict, pods: list[dict]) -> tuple[int, int, Exception | None]:
        """Delete the pods of a finishing Job, finalizers kept: they are counted as failed."""
        return await self._gather_deletes(pods, lambda p: cu.delete_pod(self.client, self.recorder, job, p))

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

