"""The scheduling queue: active, backoff and unschedulable sub-queues.

- active: pods ready to be tried, highest priority first, then oldest.
- backoff: pods that failed recently, waiting out 1 s doubling to 10 s.
- unschedulable: pods that failed and wait for a cluster event that might
  help (a node added or changed, a pod deleted) rather than being polled; they
  are also flushed back after five minutes, as Kubernetes does.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_AGE = 300.0


def pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass
class QueuedPod:
    pod: dict
    attempts: int = 0
    added_at: float = field(default_factory=time.monotonic)
    # When it last failed (for backoff and the unschedulable flush).
    failed_at: float = 0.0

    @property
    def key(self) -> str:
        return pod_key(self.pod)

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)

    def backoff(self) -> float:
        return min(MAX_BACKOFF, INITIAL_BACKOFF * 2 ** max(0, self.attempts - 1))


class SchedulingQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, added_at, seq, key)
        self._backoff: list[tuple[float, int, str]] = []  # (ready_at, seq, key)
        self._unschedulable: dict[str, QueuedPod] = {}
        self._pods: dict[str, QueuedPod] = {}  # every pod in any sub-queue, or in flight
        self._where: dict[str, str] = {}  # key -> "active" | "backoff" | "unschedulable" | "inflight"
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._pods)

    def stats(self) -> dict[str, int]:
        counts = {"active": 0, "backoff": 0, "unschedulable": 0, "inflight": 0}
        for where in self._where.values():
            counts[where] += 1
        return counts

    # -- adding ---------------------------------------------------------------------

    def add(self, pod: dict) -> None:
        """A new pending pod, or a changed one (its spec may now fit)."""
        key = pod_key(pod)
        qp = self._pods.get(key)
        if qp is None:
            qp = self._pods[key] = QueuedPod(pod, added_at=self._clock())
            self._push_active(qp)
            return
        qp.pod = pod
        if self._where.get(key) == "unschedulable":
            # An update to an unschedulable pod may make it schedulable: retry it.
            del self._unschedulable[key]
            self._push_backoff_or_active(qp)

    def delete(self, pod_or_key: dict | str) -> None:
        key = pod_or_key if isinstance(pod_or_key, str) else pod_key(pod_or_key)
        self._pods.pop(key, None)
        self._unschedulable.pop(key, None)
        self._where.pop(key, None)  # heap entries for it are skipped lazily

    def _push_active(self, qp: QueuedPod) -> None:
        self._where[qp.key] = "active"
        heapq.heappush(self._active, (-qp.priority, qp.added_at, next(self._seq), qp.key))
        self._wakeup.set()

    def _push_backoff_or_active(self, qp: QueuedPod) -> None:
        ready_at = qp.failed_at + qp.backoff()
        if qp.attempts and ready_at > self._clock():
            self._where[qp.key] = "backoff"
            heapq.heappush(self._backoff, (ready_at, next(self._seq), qp.key))
            self._wakeup.set()
        else:
            self._push_active(qp)

    # -- results of a scheduling attempt -------------------------------------------------

    def done(self, key: str) -> None:
        """The pod was bound (or gone): forget it."""
        self._pods.pop(key, None)
        self._where.pop(key, None)

    def unschedulable(self, key: str) -> None:
        """It fits nowhere now: park it until a cluster event might change that."""
        qp = self._pods.get(key)
        if qp is None:
            return
        qp.attempts += 1
        qp.failed_at = self._clock()
        self._where[key] = "unschedulable"
        self._unschedulable[key] = qp

    def retry(self, key: str) -> None:
        """A transient error (e.g. the binding failed): back off and retry."""
        qp = self._pods.get(key)
        if qp is None:
            return
        qp.attempts += 1
        qp.failed_at = self._clock()
        self._push_backoff_or_active(qp)

    def move_all_to_active(self, reason: str = "") -> int:
        """A cluster event happened that may make parked pods fit."""
        moved = 0
        for key, qp in list(self._unschedulable.items()):
            del self._unschedulable[key]
            self._push_backoff_or_active(qp)
            moved += 1
        return moved

    # -- taking -----------------------------------------------------------------------

    def _promote(self) -> float | None:
        """Move due backoff pods and stale unschedulable ones to active.
        Returns seconds until the next backoff pod is due."""
        now = self._clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is not None and self._where.get(key) == "backoff":
                self._push_active(qp)
        for key, qp in list(self._unschedulable.items()):
            if now - qp.failed_at >= MAX_UNSCHEDULABLE_AGE:
                del self._unschedulable[key]
                self._push_active(qp)
        return (self._backoff[0][0] - now) if self._backoff else None

    def pop_nowait(self) -> QueuedPod | None:
        self._promote()
        while self._active:
            _, _, _, key = heapq.heappop(self._active)
            qp = self._pods.get(key)
            if qp is not None and self._where.get(key) == "active":
                self._where[key] = "inflight"
                return qp
        return None

    async def pop(self) -> QueuedPod:
        while True:
            if self._closed:
                raise asyncio.CancelledError
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            self._wakeup.clear()
            due = self._promote()
            timeout = min(due, 1.0) if due is not None else 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow cancellation on 3.11
                    await self._wakeup.wait()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
