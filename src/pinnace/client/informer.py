"""Informers: a local, watch-fed cache of one resource with event handlers
(client-go's ``SharedIndexInformer`` and ``SharedInformerFactory``).

The loop is *list, then watch from the list's resourceVersion*.  A watch that
ends normally (the server's ``timeoutSeconds``, a restart) is resumed from the
last resourceVersion seen, bookmarks included, so nothing is missed or
repeated.  A watch answered with 410 Gone (that version has left the server's
history) forces a relist, and the relist is *diffed against the cache*:
handlers get add/update/delete for exactly what changed while we were blind,
so they always see a consistent stream.  Other errors back off exponentially.

Handlers are plain synchronous callables run on the event loop, in event
order.  They should be quick (typically: put a key on a work queue).  The
objects they get are the cached instances: never mutate them (deepcopy first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from .cache import Indexer, IndexFunc, Lister, object_key
from .rest import ApiException, RestClient

log = logging.getLogger(__name__)

AddHandler = Callable[[dict], object]
UpdateHandler = Callable[[dict, dict], object]
DeleteHandler = Callable[[dict], object]

LIST_PAGE_SIZE = 500
MIN_WATCH_TIMEOUT = 300.0  # seconds; each watch asks for a random 5-10 min so clients don't reconnect in lockstep
INITIAL_BACKOFF = 0.8
MAX_BACKOFF = 30.0


@dataclass(eq=False)
class EventHandler:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


class Informer:
    """One list+watch loop feeding an :class:`Indexer` and event handlers."""

    def __init__(self, client: RestClient, api_version: str, plural: str, namespace: str = "",
                 label_selector: str = "", field_selector: str = "", resync_period: float = 0.0):
        self.client = client
        self.api_version, self.plural = api_version, plural
        self.namespace, self.label_selector, self.field_selector = namespace, label_selector, field_selector
        self.resync_period = resync_period
        self.indexer = Indexer()
        self.lister = Lister(self.indexer)
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()
        self._last_rv = ""
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.watch_timeout_range = (MIN_WATCH_TIMEOUT, 2 * MIN_WATCH_TIMEOUT)
        self.initial_backoff, self.max_backoff = INITIAL_BACKOFF, MAX_BACKOFF
        self._events_since_list = 0
        self.relists = 0  # how many full lists were made (first one included); for tests and metrics

    def __repr__(self) -> str:
        scope = f" ns={self.namespace}" if self.namespace else ""
        return f"<Informer {self.api_version}/{self.plural}{scope}>"

    # -- handlers ----------------------------------------------------------------------

    def add_event_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                          on_delete: DeleteHandler | None = None) -> EventHandler:
        """Register handlers.  Registered after the first sync, the handler at once
        gets ``on_add`` for every cached object, so it misses nothing."""
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self.has_synced and on_add is not None:
            for obj in list(self.indexer.list()):
                self._call(on_add, obj)
        return handler

    def remove_event_handler(self, handler: EventHandler) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self.indexer.add_index(name, fn)

    def _call(self, fn: Callable[..., object], *args: dict) -> None:
        # One faulty handler must not kill the informer or starve the others.
        try:
            fn(*args)
        except Exception:
            log.exception("%r: event handler %r failed", self, fn)

    def _dispatch_add(self, obj: dict) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _dispatch_update(self, old: dict, new: dict) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _dispatch_delete(self, obj: dict) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def last_sync_resource_version(self) -> str:
        return self._last_rv

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Start the list+watch loop (idempotent); returns its task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.api_version}-{self.plural}")
            if self.resync_period > 0:
                self._resync_task = asyncio.create_task(self._resync_loop(), name=f"resync-{self.plural}")
        return self._task

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait for the first full list to be in the cache; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in (self._task, self._resync_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._resync_task = None

    # -- list and watch --------------------------------------------------------------

    def _selectors(self) -> dict[str, str]:
        return {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.initial_backoff
        need_list = True
        while True:
            delay = 0.0
            try:
                if need_list:
                    await self._list()
                    need_list = False
                started = loop.time()
                events = await self._watch()
                if events == 0 and loop.time() - started < 1.0:
                    delay = backoff  # the server ends fresh watches at once: don't hammer it
                else:
                    backoff = self.initial_backoff  # a watch ran and ended normally: resume at once
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 410:
                    log.info("%r: resourceVersion %s expired; relisting", self, self._last_rv)
                    need_list = True
                    # Expired straight after a list means something is off: slow down.
                    delay = backoff if self._events_since_list == 0 else 0.0
                else:
                    log.warning("%r: %s; retrying in about %.1fs", self, e, backoff)
                    delay = backoff
            except Exception as e:
                log.warning("%r: list/watch failed (%s: %s); retrying in about %.1fs", self, type(e).__name__, e,
                            backoff)
                delay = backoff
            if delay:
                await asyncio.sleep(delay * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)

    async def _list(self) -> None:
        items: list[dict] = []
        cont = ""
        rv = ""
        while True:
            page = await self.client.list(self.api_version, self.plural, self.namespace, limit=LIST_PAGE_SIZE,
                                          **{"continue": cont}, **self._selectors())
            kind = (page.get("kind") or "").removesuffix("List")
            for item in page.get("items") or ():
                # List items omit kind/apiVersion on some servers; make them self-describing.
                if kind:
                    item.setdefault("kind", kind)
                item.setdefault("apiVersion", self.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            cont = meta.get("continue") or ""
            if not cont:
                break
        # From here to the end: no awaits, so the cache swap and the resulting
        # events are atomic with respect to every other task.
        self._replace(items)
        self._last_rv = rv
        self._events_since_list = 0
        self.relists += 1
        self._synced.set()

    def _replace(self, items: list[dict]) -> None:
        old = {object_key(o): o for o in self.indexer.list()}
        self.indexer.replace(items)
        for obj in items:
            prev = old.pop(object_key(obj), None)
            if prev is None:
                self._dispatch_add(obj)
            elif _rv(prev) != _rv(obj):
                self._dispatch_update(prev, obj)
        # Gone while we were not watching: delete with the last state we knew.
        for prev in old.values():
            self._dispatch_delete(prev)

    async def _watch(self) -> int:
        """Follow one watch to its end; returns how many events it brought."""
        lo, hi = self.watch_timeout_range
        timeout = int(random.uniform(lo, hi))
        count = 0
        async for event in self.client.watch(self.api_version, self.plural, self.namespace,
                                             resourceVersion=self._last_rv, allowWatchBookmarks=True,
                                             timeoutSeconds=timeout, **self._selectors()):
            etype, obj = event.get("type"), event.get("object") or {}
            count += 1
            self._events_since_list += 1
            if etype == "ERROR":
                # 410 was raised by the client; anything else ends this watch with an error.
                raise ApiException(obj.get("code") or 500, obj.get("reason", ""), obj.get("message", ""), obj)
            rv = _rv(obj)
            if etype == "BOOKMARK":
                if rv:
                    self._last_rv = rv
                continue
            if etype in ("ADDED", "MODIFIED"):
                old = self.indexer.add(obj)
                if old is None:
                    self._dispatch_add(obj)
                else:
                    self._dispatch_update(old, obj)
            elif etype == "DELETED":
                self.indexer.delete(obj)
                self._dispatch_delete(obj)  # the object's final state, as the server sent it
            else:
                log.warning("%r: unknown watch event type %r", self, etype)
                continue
            if rv:
                self._last_rv = rv
        return count

    async def _resync_loop(self) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(self.resync_period)
            # Level-triggered safety net: handlers get every object again as an update.
            for obj in self.indexer.list():
                self._dispatch_update(obj, obj)


InformerKey = tuple[str, str, str, str, str]


class SharedInformerFactory:
    """One :class:`Informer` per distinct (apiVersion, plural, namespace,
    labelSelector, fieldSelector), shared by every controller asking for it, so
    each resource is listed and watched once per process.  All of them use the
    one client and so its one connection pool."""

    def __init__(self, client: RestClient, resync_period: float = 0.0):
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[InformerKey, Informer] = {}
        self._started = False

    def informer(self, api_version: str, plural: str, namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer:
        key = (api_version, plural, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, api_version, plural, namespace, label_selector, field_selector,
                           self.resync_period)
            self._informers[key] = inf
            if self._started:
                inf.start()  # requested after start(): don't leave it idle
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer not yet running; may be called again after more
        informers were requested."""
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(inf.wait_for_sync(timeout) for inf in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))


__all__ = ["EventHandler", "Informer", "SharedInformerFactory"]
