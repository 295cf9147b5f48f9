"""The watch cache: one store watch over ``/registry/`` feeding every list and watch.

It holds the decoded current state of every object plus a window of recent
events, so lists (``resourceVersion=""`` after catching up with the store, or
``"0"``) and watches (from any revision still in the window) never touch
storage.  A watch from a revision older than the window gets 410 Gone, which
clients answer by relisting, exactly as with the Kubernetes watch cache.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from ..storage.base import Compacted, KeyValue, Store

log = logging.getLogger(__name__)

REGISTRY_ROOT = "/registry/"


class CachedObject:
    """A decoded object with ``metadata.resourceVersion`` set; never mutated once built.

    The JSON encoding is computed once and shared by every response and watcher.
    """

    __slots__ = ("_raw", "key", "obj", "revision")

    def __init__(self, key: str, obj: dict, revision: int, raw: bytes | None = None):
        self.key, self.obj, self.revision, self._raw = key, obj, revision, raw

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self.obj)
        return self._raw


def decode(kv: KeyValue, revision: int | None = None) -> CachedObject:
    obj = orjson.loads(kv.value)
    rev = kv.mod_revision if revision is None else revision
    obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
    return CachedObject(kv.key, obj, rev)


def _by_key(o: CachedObject) -> str:
    return o.key


def resource_prefix(key: str) -> str:
    """``/registry/apps/deployments/ns/name`` → ``/registry/apps/deployments/``."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) + "/"


@dataclass(slots=True)
class CacheEvent:
    revision: int
    type: str  # ADDED, MODIFIED, DELETED (before per-watcher filtering)
    obj: CachedObject
    prev: CachedObject | None


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


class Watcher:
    """One client watch: a filtered, bounded queue of events."""

    MAX_PENDING = 10_000

    def __init__(self, prefix: str, predicate: Callable[[dict], bool]):
        self.prefix = prefix
        self.predicate = predicate
        self.queue: asyncio.Queue[tuple[str, CachedObject] | None] = asyncio.Queue()
        self.closed = False

    def offer(self, event: CacheEvent) -> None:
        if self.closed:
            return
        pred = self.predicate
        was = event.prev is not None and pred(event.prev.obj)
        if event.type == "DELETED":
            if was:
                self._put("DELETED", event.obj)
            return
        now = pred(event.obj.obj)
        if now:
            self._put("MODIFIED" if was else "ADDED", event.obj)
        elif was:
            # It stopped matching the selector: to this watcher it is gone.
            self._put("DELETED", event.obj)

    def _put(self, kind: str, obj: CachedObject) -> None:
        if self.queue.qsize() >= self.MAX_PENDING:
            # A client this far behind is closed; it re-watches or relists.
            self.close()
            return
        self.queue.put_nowait((kind, obj))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


class WatchCache:
    def __init__(self, store: Store, window: int = 20_000):
        self.store = store
        self.revision = 0
        self._by_resource: dict[str, dict[str, CachedObject]] = collections.defaultdict(dict)
        self._events: collections.deque[CacheEvent] = collections.deque(maxlen=window)
        self._window_start = 0  # every event after this revision is in _events
        self._watchers: dict[str, set[Watcher]] = collections.defaultdict(set)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    # -- feeding -------------------------------------------------------------

    async def start(self) -> None:
        await self._relist()
        self._task = asyncio.create_task(self._run(), name="watch-cache")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.close_watchers()

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for w in list(watchers):
                w.close()

    async def _relist(self) -> None:
        result = await self.store.range(REGISTRY_ROOT)
        self._by_resource.clear()
        for kv in result.kvs:
            obj = decode(kv)
            self._by_resource[resource_prefix(kv.key)][kv.key] = obj
        self.revision = self._window_start = result.revision
        self._events.clear()
        self._notify_waiters()
        self.ready.set()

    async def _run(self) -> None:
        while True:
            try:
                async for ev in self.store.watch(REGISTRY_ROOT, self.revision):
                    self._apply(ev.type, ev.kv)
            except asyncio.CancelledError:
                raise
            except Compacted:
                log.warning("watch cache fell behind compaction; relisting")
                await self._reset()
            except Exception:
                log.exception("store watch failed; retrying")
                await asyncio.sleep(1)
                try:
                    await self._reset()
                except Exception:
                    log.exception("relist failed")

    async def _reset(self) -> None:
        # Watchers may have missed events: close them so their clients re-watch.
        self.close_watchers()
        await self._relist()

    def _apply(self, store_type: str, kv: KeyValue) -> None:
        prefix = resource_prefix(kv.key)
        objects = self._by_resource[prefix]
        prev = objects.get(kv.key)
        if store_type == "DELETE":
            obj = decode(kv, kv.mod_revision)
            objects.pop(kv.key, None)
            event = CacheEvent(kv.mod_revision, "DELETED", obj, prev)
        else:
            obj = decode(kv)
            objects[kv.key] = obj
            event = CacheEvent(kv.mod_revision, "MODIFIED" if prev else "ADDED", obj, prev)
        if len(self._events) == self._events.maxlen:
            self._window_start = self._events[0].revision
        self._events.append(event)
        self.revision = kv.mod_revision
        for w in self._watchers.get(prefix, ()):
            w.offer(event)
        self._notify_waiters()

    def _notify_waiters(self) -> None:
        if not self._waiters:
            return
        keep = []
        for rev, fut in self._waiters:
            if rev <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((rev, fut))
        self._waiters = keep

    async def wait_until(self, revision: int, timeout: float = 3.0) -> bool:
        """Wait until the cache has seen ``revision``; False on timeout."""
        if revision <= self.revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
            return True
        except TimeoutError:
            return False

    async def wait_fresh(self) -> None:
        """Make the next read consistent: catch up with the store's current revision."""
        target = await self.store.current_revision()
        if not await self.wait_until(target):
            log.warning("watch cache is behind the store (at %d, store at %d)", self.revision, target)

    # -- reading -------------------------------------------------------------

    def get(self, key: str) -> CachedObject | None:
        return self._by_resource.get(resource_prefix(key), {}).get(key)

    def list(self, prefix: str, sub_prefix: str = "", match: Callable[[dict], bool] | None = None
             ) -> list[CachedObject]:
        """Objects of one resource (``prefix``), optionally only under ``sub_prefix``
        (a namespace) and matching ``match``, in key order."""
        objects = self._by_resource.get(prefix, {}).values()
        if sub_prefix and sub_prefix != prefix:
            objects = [o for o in objects if o.key.startswith(sub_prefix)]
        items = [o for o in objects if match(o.obj)] if match else list(objects)
        items.sort(key=_by_key)  # only what matched gets sorted
        return items

    def count(self, prefix: str) -> int:
        return len(self._by_resource.get(prefix, {}))

    def watch(self, prefix: str, from_revision: int, predicate: Callable[[dict], bool]) -> Watcher:
        """Start a watch on one resource; events after ``from_revision`` are
        replayed first.  Raises :class:`TooOld` outside the window."""
        if from_revision < self._window_start:
            raise TooOld(from_revision, self._window_start + 1)
        watcher = Watcher(prefix, predicate)
        for event in self._events:
            if event.revision > from_revision and event.obj.key.startswith(prefix):
                watcher.offer(event)
        self._watchers[prefix].add(watcher)
        return watcher

    def forget_before(self, revision: int) -> None:
        """Drop history at and before ``revision`` (after storage compaction):
        watches from there on get 410 Gone, as they would from storage."""
        while self._events and self._events[0].revision <= revision:
            self._events.popleft()
        self._window_start = max(self._window_start, min(revision, self.revision))

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.prefix].discard(watcher)
        watcher.closed = True
