"""A rate-limited, deduplicating work queue of object keys (client-go's
``workqueue.RateLimitingInterface``) and :func:`run_workers`.

Controllers enqueue *keys*, not objects: many events for one object collapse
into one reconcile, which then reads the latest state from the informer cache.
Guarantees:

* a key is queued at most once (adding a queued key is a no-op);
* a key is never handed to two workers at once: if it is added while a worker
  holds it, it is queued again when that worker calls :meth:`done`;
* failures back off per key exponentially (``base * 2**failures``, capped),
  combined with a global token bucket (``qps``, ``burst``) by taking the
  larger delay, as client-go's ``DefaultControllerRateLimiter`` does.

Time comes from an injectable ``clock`` so tests can check the computed
delays without sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class ShutDown(Exception):
    """Raised by :meth:`RateLimitingQueue.get` once the queue is shut down and drained."""


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float: ...
    def forget(self, item: Hashable) -> None: ...
    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """``base * 2**failures`` seconds for the n-th consecutive failure of an item,
    capped at ``max_delay``; :meth:`forget` (on success) resets it."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0):
        self.base_delay, self.max_delay = base_delay, max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp > 64:  # 2**exp would only overflow the cap anyway
            return self.max_delay
        return min(self.base_delay * 2**exp, self.max_delay)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """A token bucket over all items: ``burst`` requeues at once, then ``qps`` per
    second.  Like Go's ``rate.Limiter.Reserve``, each call reserves a token even
    if that drives the bucket negative, and answers how long to wait for it, so
    a storm of failures is spread out rather than refused.  ``qps <= 0`` disables it."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock = time.monotonic):
        self.qps, self.burst, self.clock = qps, burst, clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, item: Hashable) -> float:
        if self.qps <= 0:
            return 0.0
        now = self.clock()
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
        self._tokens -= 1.0
        return -self._tokens / self.qps if self._tokens < 0 else 0.0

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of its limiters asks for."""

    def __init__(self, *limiters: RateLimiter):
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        # Every limiter must see every call (each keeps its own accounting).
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(base_delay: float = 0.005, max_delay: float = 1000.0, qps: float = 10.0,
                                    burst: int = 100, clock: Clock = time.monotonic) -> MaxOfRateLimiter:
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(base_delay, max_delay),
                            BucketRateLimiter(qps, burst, clock))


class RateLimitingQueue(Generic[K]):
    """See the module docstring.  All methods but :meth:`get` are synchronous, so
    informer event handlers (plain callables) can enqueue directly."""

    def __init__(self, name: str = "", base_delay: float = 0.005, max_delay: float = 1000.0, qps: float = 10.0,
                 burst: int = 100, *, clock: Clock = time.monotonic, rate_limiter: RateLimiter | None = None):
        self.name = name
        self.clock = clock
        self.rate_limiter: RateLimiter = rate_limiter or default_controller_rate_limiter(
            base_delay, max_delay, qps, burst, clock)
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()  # queued, or to be queued again when done
        self._processing: set[K] = set()  # handed to a worker, not yet done
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._shutting_down = False
        # Delayed adds: a heap of (ready_at, seq, key); _waiting holds each key's
        # earliest ready time, so heap entries that no longer match are stale.
        self._heap: list[tuple[float, int, K]] = []
        self._waiting: dict[K, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    # -- the basic queue -------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it again; never two workers on one key
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> K:
        """The next key; the caller must call :meth:`done` with it.  Raises
        :class:`ShutDown` after :meth:`shutdown` once nothing is left."""
        while True:
            self._flush_waiting()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # we were woken for an item: pass the wakeup on
                else:
                    fut.cancel()
                raise

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def len(self) -> int:
        self._flush_waiting()
        return len(self._queue)

    __len__ = len

    def shutdown(self) -> None:
        """Refuse new keys; workers drain what is queued, then get :class:`ShutDown`.
        Delayed keys are dropped."""
        self._shutting_down = True
        self._heap.clear()
        self._waiting.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- delays ----------------------------------------------------------------------

    def add_after(self, key: K, seconds: float) -> None:
        """Add ``key`` once ``seconds`` have passed (at once if ``<= 0``).  A key
        already waiting keeps the earlier of its two times."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        ready_at = self.clock() + seconds
        current = self._waiting.get(key)
        if current is not None and current <= ready_at:
            return
        self._waiting[key] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._seq), key))
        self._arm_timer()

    def _flush_waiting(self) -> None:
        if not self._heap:
            return
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == ready_at:
                del self._waiting[key]
                self.add(key)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): get()/len() flush instead
        # With an injected fake clock this real-time timer merely re-checks; the
        # test's advancing the clock and calling get()/len() does the flushing.
        delay = max(0.0, self._heap[0][0] - self.clock())
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flush_waiting()

    # -- rate limiting ---------------------------------------------------------------

    def when(self, key: K) -> float:
        """The delay the rate limiter assigns to the next failure of ``key``
        (counting it as one)."""
        return self.rate_limiter.when(key)

    def add_rate_limited(self, key: K) -> float:
        """Requeue after the rate limiter's delay for ``key``; returns that delay."""
        delay = self.rate_limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Stop tracking failures of ``key`` (call after a successful sync)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)


async def run_workers(queue: RateLimitingQueue[K], n: int, sync: Callable[[K], Awaitable[object]],
                      name: str = "") -> None:
    """Run ``n`` workers calling ``sync(key)`` until the queue shuts down (returns
    then) or this coroutine is cancelled (the workers are cancelled with it).

    A failed sync is logged and the key requeued with rate-limited backoff; a
    successful one resets the key's backoff.  ``done`` is always called.
    """
    label = name or queue.name or "workqueue"

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                delay = queue.add_rate_limited(key)
                log.warning("%s: syncing %r failed (attempt %d, retry in %.3gs): %s", label, key,
                            queue.num_requeues(key), delay, e, exc_info=log.isEnabledFor(logging.DEBUG))
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"{label}-worker-{i}") for i in range(n)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["BucketRateLimiter", "ItemExponentialFailureRateLimiter", "MaxOfRateLimiter", "RateLimiter",
           "RateLimitingQueue", "ShutDown", "default_controller_rate_limiter", "run_workers"]
