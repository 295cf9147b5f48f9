"""Event recorder shared by every component (client-go's ``record.EventRecorder``).

Writes core/v1 Events about an object.  Repeats of the same event (same
object, type, reason and message) within ten minutes are aggregated into one
Event whose ``count`` and ``lastTimestamp`` grow, as ``kubectl describe``
expects.  Recording never blocks the caller: events go through a bounded
queue and are dropped (with a log line) if the API server cannot keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from ..api.times import now_time as _now
from .rest import ApiException, RestClient

log = logging.getLogger(__name__)

AGGREGATE_WINDOW = 600.0
QUEUE_SIZE = 1000


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    at: float


class EventRecorder:
    def __init__(self, client: RestClient, component: str, host: str = "", instance: str = ""):
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance or component
        self._queue: asyncio.Queue[tuple[dict, str, str, str, str, str]] = asyncio.Queue(QUEUE_SIZE)
        self._seen: dict[tuple, _Seen] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"events-{self.component}")

    async def stop(self) -> None:
        """Write what is queued (briefly), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), 2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _drain(self) -> None:
        await self._queue.join()

    def event(self, obj: dict, type_: str, reason: str, message: str, action: str = "",
              field_path: str = "") -> None:
        """Record ``type_`` ("Normal" or "Warning") ``reason`` about ``obj`` (``field_path``: a
        part of it, e.g. ``spec.containers{web}`` as the kubelet reports)."""
        try:
            self._queue.put_nowait((obj, type_, reason, message, action, field_path))
        except asyncio.QueueFull:
            log.warning("dropping event %s %s: recorder queue is full", reason, message)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("could not write event %s: %s", item[2], e)
            finally:
                self._queue.task_done()

    async def _write(self, obj: dict, type_: str, reason: str, message: str, action: str,
                     field_path: str = "") -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        involved = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
                    "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            involved["namespace"] = namespace
        if field_path:
            involved["fieldPath"] = field_path
        key = (involved["uid"] or involved["name"], involved["kind"], field_path, type_, reason, message)
        now = time.monotonic()
        self._seen = {k: v for k, v in self._seen.items() if now - v.at < AGGREGATE_WINDOW} \
            if len(self._seen) > 4096 else self._seen
        seen = self._seen.get(key)
        stamp = _now()
        if seen is not None and now - seen.at < AGGREGATE_WINDOW:
            seen.count += 1
            seen.at = now
            try:
                await self.client.patch("v1", "events", seen.name, {"count": seen.count, "lastTimestamp": stamp},
                                        namespace=seen.namespace)
                return
            except ApiException as e:
                if e.status != 404:
                    raise
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        if action:
            event["action"] = action
        created = await self.client.create("v1", "events", event, namespace=namespace)
        self._seen[key] = _Seen(created["metadata"]["name"], namespace, 1, now)
