"""Slots for the kubelet's heavy runtime work, granted oldest pod first.

Creating a sandbox and creating and starting a container is mostly CPU (runc, runc's
init, the container's first instructions).  Fifty pods bound at once, each at its own pace,
would share the node's cores evenly and all become Running near the end; with a few slots
handed out by pod age, the first pods run while the last ones are still queued, and the
total time is no longer (less switching between them).  An image pull, a postStart hook or a
probe never holds a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
from collections.abc import AsyncIterator


def default_slots() -> int:
    return max(2, os.cpu_count() or 1)


class OrderedSlots:
    """At most ``limit`` holders at once; waiters are served lowest ``order`` first (FIFO
    among equals)."""

    def __init__(self, limit: int | None = None):
        self.limit = limit or default_slots()
        self.free = self.limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, order: int) -> AsyncIterator[None]:
        if self.free > 0 and not self._waiters:
            self.free -= 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (order, next(self._tie), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # granted just as we were cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():  # (a cancelled waiter's future is done)
                granted.set_result(None)
                return
        self.free += 1


__all__ = ["OrderedSlots", "default_slots"]
