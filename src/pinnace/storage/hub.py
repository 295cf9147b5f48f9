"""In-process fan-out of store events, shared by the memory and SQLite backends.

Those backends are written to by exactly one process (the API server), so every
event is known at the moment it is committed and can be handed to watchers
directly, with no polling.  A watcher subscribes *before* it reads history, then
drops live events it already saw in the history; in a single event loop that
ordering leaves no gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from .base import Event


class EventHub:
    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[str, asyncio.Queue[Event | None]]] = {}
        self._next_id = 0

    def publish(self, event: Event) -> None:
        key = event.kv.key
        for prefix, queue in self._subscribers.values():
            if key.startswith(prefix):
                queue.put_nowait(event)

    def close(self) -> None:
        for _, queue in self._subscribers.values():
            queue.put_nowait(None)

    async def watch(
        self, prefix: str, from_revision: int, history: Callable[[], Iterable[Event]]
    ) -> AsyncIterator[Event]:
        """Yield ``history()`` (events after ``from_revision``), then live events."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        sub_id = self._next_id
        self._next_id += 1
        self._subscribers[sub_id] = (prefix, queue)
        try:
            last = from_revision
            for event in history():
                yield event
                last = event.revision
            while True:
                event = await queue.get()
                if event is None:
                    return
                if event.revision > last:
                    last = event.revision
                    yield event
        finally:
            del self._subscribers[sub_id]
