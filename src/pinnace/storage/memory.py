"""In-memory backend for unit tests: the whole history kept in a list."""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator

from .base import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    Store,
)
from .hub import EventHub


class MemoryStore(Store):
    def __init__(self) -> None:
        self._current: dict[str, KeyValue] = {}
        self._history: list[Event] = []  # every event after the compaction point, in order
        self._revision = 0
        self._compacted = 0
        self._hub = EventHub()

    def _commit(self, event: Event) -> int:
        self._history.append(event)
        if event.type == "PUT":
            self._current[event.kv.key] = event.kv
        else:
            del self._current[event.kv.key]
        self._hub.publish(event)
        return event.revision

    async def get(self, key: str) -> KeyValue | None:
        return self._current.get(key)

    def _snapshot(self, revision: int) -> dict[str, KeyValue]:
        """The live keys as of ``revision``: undo the events after it."""
        state = dict(self._current)
        for event in reversed(self._history):
            if event.revision <= revision:
                break
            if event.prev is None:
                state.pop(event.kv.key, None)
            else:
                state[event.kv.key] = event.prev
        return state

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        if revision and revision < self._compacted:
            raise Compacted(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        at = revision or self._revision
        state = self._current if at == self._revision else self._snapshot(at)
        keys = sorted(k for k in state if k.startswith(prefix) and k > start_after)
        more = bool(limit) and len(keys) > limit
        if more:
            keys = keys[:limit]
        return RangeResult([state[k] for k in keys], at, more)

    async def create(self, key: str, value: bytes) -> int:
        if key in self._current:
            raise KeyExists(key)
        self._revision += 1
        kv = KeyValue(key, value, self._revision, self._revision)
        return self._commit(Event("PUT", kv, None, created=True))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        prev = self._current.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if prev.mod_revision != expected_revision:
            raise RevisionMismatch(key, expected_revision, prev.mod_revision)
        self._revision += 1
        kv = KeyValue(key, value, prev.create_revision, self._revision)
        return self._commit(Event("PUT", kv, prev))

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        prev = self._current.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_revision and prev.mod_revision != expected_revision:
            raise RevisionMismatch(key, expected_revision, prev.mod_revision)
        self._revision += 1
        kv = KeyValue(key, prev.value, prev.create_revision, self._revision)
        return self._commit(Event("DELETE", kv, prev)), prev

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        if from_revision < self._compacted:
            raise Compacted(from_revision, self._compacted)

        def history() -> list[Event]:
            start = bisect.bisect_right(self._history, from_revision, key=lambda e: e.revision)
            return [e for e in self._history[start:] if e.kv.key.startswith(prefix)]

        async for event in self._hub.watch(prefix, from_revision, history):
            yield event

    async def current_revision(self) -> int:
        return self._revision

    async def compact(self, revision: int) -> None:
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return
        self._history = [e for e in self._history if e.revision > revision]
        self._compacted = revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def close(self) -> None:
        self._hub.close()
