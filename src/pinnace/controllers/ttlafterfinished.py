"""TTL-after-finished controller (Kubernetes' ``pkg/controller/ttlafterfinished``):
deletes a finished Job ``spec.ttlSecondsAfterFinished`` seconds after it finished
(its Complete/Failed condition's lastTransitionTime), with Foreground propagation
so its pods go first.  A Job not yet due is requeued for exactly when it is; the
TTL is re-read from the server before deleting, as it may have been changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import job_util as ju
from .base import QueueController

log = logging.getLogger(__name__)

WORKERS = 2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def needs_cleanup(job: dict) -> bool:
    return ((job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and ju.is_job_finished(job)
            and not cu.is_being_deleted(job))


def expires_at(job: dict) -> dt.datetime | None:
    """When a finished Job with a TTL is due for deletion; None if it has no TTL, is
    unfinished or its finish time is unknown."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    cond = ju.finished_condition(job)
    if ttl is None or cond is None:
        return None
    finished = cu.parse_time(cond.get("lastTransitionTime"))
    if finished is None:
        return None
    return finished + dt.timedelta(seconds=int(ttl))


class TTLAfterFinishedController(QueueController):
    """``TTLAfterFinishedController(client, factory, recorder)``; ``start()``, ``await stop()``.
    ``recorder`` is accepted for symmetry with the other controllers (Kubernetes records
    no events here, and none is started); ``clock`` gives the current UTC time."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, clock: Callable[[], dt.datetime] = _now):
        super().__init__(client, factory, recorder, component="ttl-after-finished-controller",
                         queue="ttl-after-finished", workers=workers)
        self._own_recorder = False  # it records nothing: no recorder to start or stop
        self.clock = clock
        self.job_informer = self.informer("batch/v1", "jobs")
        self.lister = self.job_informer.lister
        self.job_informer.add_event_handler(on_add=self._enqueue, on_update=lambda _o, cur: self._enqueue(cur))

    def _enqueue(self, job: dict) -> None:
        if needs_cleanup(job):
            self.enqueue(job)

    def _due_in(self, job: dict, key: str) -> float | None:
        """Seconds until ``job`` expires (0 when it has), requeueing it for then; None if
        it needs no cleanup."""
        if not needs_cleanup(job):
            return None
        at = expires_at(job)
        if at is None:
            return None
        left = (at - self.clock()).total_seconds()
        if left > 0:
            self.queue.add_after(key, left)
        return max(left, 0.0)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        job = self.lister.get(name, namespace)
        if job is None or self._due_in(job, key) != 0.0:
            return
        # The cache may be stale (the TTL changed): check the latest version before deleting.
        try:
            fresh = await self.client.get("batch/v1", "jobs", name, namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        if self._due_in(fresh, key) != 0.0:
            return
        log.info("deleting job %s: finished longer than its ttlSecondsAfterFinished ago", key)
        try:
            await self.client.delete("batch/v1", "jobs", name, namespace, propagationPolicy="Foreground",
                                     preconditions={"uid": fresh["metadata"]["uid"]})
        except ApiException as e:
            if e.status not in (404, 409):
                raise


__all__ = ["TTLAfterFinishedController", "expires_at", "needs_cleanup"]
