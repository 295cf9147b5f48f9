"""The skeleton the work-queue controllers share (ReplicaSet, Deployment,
StatefulSet, DaemonSet, disruption): informers feed a rate-limited queue of
``ns/name`` keys and workers call :meth:`QueueController.sync` on each.

Kept in one place so the rules that make it safe hold for every controller alike:
no sync before every informer has filled its cache (a half-filled cache makes a
controller create what already exists, or allow evictions that are not safe),
and a recorder is stopped only by the controller that started it.

The second half serves controllers whose keys are the *controllers* of other
objects (a ReplicaSet's pods, a Deployment's ReplicaSets): the event handlers of
those objects only ever need to enqueue the owner their controllerRef names or,
for an orphan, every owner whose selector could adopt it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable

from ..client.cache import Lister
from ..client.events import EventRecorder
from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import RestClient
from ..client.workqueue import RateLimitingQueue, run_workers
from . import controller_utils as cu

log = logging.getLogger(__name__)


class QueueController(abc.ABC):
    """Make informers with :meth:`informer` (they are waited for), have their handlers
    call :meth:`enqueue`, implement :meth:`sync`.  ``recorder=None`` makes the
    controller own (start and stop) an :class:`EventRecorder` recording as ``component``."""

    #: For the owner helpers: the kind this controller's keys name, and where to find them.
    owner_kind = owner_group = ""
    owner_lister: Lister

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None, *,
                 component: str, queue: str, workers: int):
        self.client = client
        self._factory = factory
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(client, component)
        self.workers = workers
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(queue)
        self._informers: list[Informer] = []
        self._tasks: list[asyncio.Task[None]] = []

    def informer(self, api_version: str, plural: str) -> Informer:
        """The factory's shared informer, which the workers wait for before the first sync."""
        informer = self._factory.informer(api_version, plural)
        self._informers.append(informer)
        return informer

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._own_recorder:
            self.recorder.start()
        self._tasks = [asyncio.create_task(self._run(), name=self.queue.name)]

    async def _run(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in self._informers))
        await self._run_workers()

    async def _run_workers(self) -> None:
        """Runs until the queue shuts down; override to run a second queue's workers too."""
        await run_workers(self.queue, self.workers, self._sync_key, self.queue.name)

    async def _sync_key(self, key: str) -> None:
        try:
            await self.sync(key)
        except Exception as e:
            if not self._retry_quietly(e):
                raise
            # Our cache is behind (usually our own last write): retry once it catches up,
            # without the warning a failed sync earns.
            log.debug("%s %s: conflict, retrying: %s", self.queue.name, key, e)
            self.queue.add_rate_limited(key)

    def _retry_quietly(self, e: Exception) -> bool:
        """Whether ``e`` raised by :meth:`sync` only means a stale cache (e.g. a 409)."""
        return False

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_recorder:
            await self.recorder.stop()

    # -- the queue ------------------------------------------------------------------------

    @staticmethod
    def key(obj: dict) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def enqueue(self, obj: dict, after: float = 0.0) -> None:
        self.queue.add_after(self.key(obj), after)  # at once unless after > 0

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Reconcile one object ("ns/name").  Raises to have the key retried with backoff."""

    # -- owners of other objects ----------------------------------------------------------

    def owner_of(self, obj: dict) -> dict | None:
        """The cached owner ``obj``'s controllerRef names, if it is still that one (same uid)."""
        return cu.resolve_controller_ref(cu.controller_ref(obj), (obj.get("metadata") or {}).get("namespace", ""),
                                         self.owner_kind, self.owner_group, self.owner_lister.get)

    def owners_selecting(self, obj: dict) -> list[dict]:
        """The owners that may adopt ``obj`` were it an orphan."""
        return cu.objects_selecting(self.owner_lister, obj)

    def enqueue_owner(self, obj: dict) -> dict | None:
        owner = self.owner_of(obj)
        if owner is not None:
            self.enqueue(owner)
        return owner

    def enqueue_owners_of_added(self, obj: dict) -> dict | None:
        """Its controller, or every owner that may adopt an orphan; returns the controller."""
        if cu.controller_ref(obj) is not None:
            return self.enqueue_owner(obj)
        for owner in self.owners_selecting(obj):
            self.enqueue(owner)
        return None

    def enqueue_owners_of_updated(self, old: dict, cur: dict,
                                  min_ready_seconds: Callable[[dict], int] | None = None) -> dict | None:
        """Its previous controller (when that changed) and its current one, or, for an orphan
        whose labels or controller changed, every owner that may now adopt it.  With
        ``min_ready_seconds`` (for pods) a pod that just turned ready brings its controller
        back once it is available, for no event will say so.  Returns the controller."""
        old_ref, cur_ref = cu.controller_ref(old), cu.controller_ref(cur)
        if old_ref != cur_ref and old_ref is not None:
            self.enqueue_owner(old)
        if cur_ref is not None:
            owner = self.enqueue_owner(cur)
            if owner is not None and min_ready_seconds is not None:
                min_ready = min_ready_seconds(owner)
                if min_ready > 0 and not cu.is_pod_ready(old) and cu.is_pod_ready(cur):
                    self.enqueue(owner, after=min_ready + 1.0)
            return owner
        labels_changed = (old.get("metadata") or {}).get("labels") != (cur.get("metadata") or {}).get("labels")
        if old_ref is not None or labels_changed:
            for owner in self.owners_selecting(cur):
                self.enqueue(owner)
        return None


__all__ = ["QueueController"]
