"""Namespace controller: deleting a namespace deletes everything in it, then
removes the ``kubernetes`` finalizer so the namespace itself goes away.

It works only through the API: discovery tells it which namespaced resources
exist (custom ones included), ``deletecollection`` empties each, and the
``namespaces/{name}/finalize`` subresource releases the namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from ..client.rest import ApiException, RestClient

log = logging.getLogger(__name__)
FINALIZER = "kubernetes"
RETRY_SECONDS = 1.0


class NamespaceController:
    def __init__(self, client: RestClient):
        self.client = client
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch_loop(), name="namespace-watch"),
                       asyncio.create_task(self._worker(), name="namespace-worker")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self._queue.put_nowait(name)

    async def _watch_loop(self) -> None:
        while True:
            try:
                listed = await self.client.list("v1", "namespaces")
                for ns in listed["items"]:
                    if ns["metadata"].get("deletionTimestamp"):
                        self._enqueue(ns["metadata"]["name"])
                rv = listed["metadata"]["resourceVersion"]
                async for event in self.client.watch("v1", "namespaces", resourceVersion=rv,
                                                     allowWatchBookmarks="true", timeoutSeconds=300):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED") and obj["metadata"].get("deletionTimestamp"):
                        self._enqueue(obj["metadata"]["name"])
                    elif event["type"] == "ERROR":
                        break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("namespace watch failed (%s); retrying", e)
                await asyncio.sleep(RETRY_SECONDS)

    async def _worker(self) -> None:
        while True:
            name = await self._queue.get()
            self._queued.discard(name)
            try:
                done = await self.sync(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("namespace %s: %s", name, e)
                done = False
            if not done:
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._enqueue, name)

    async def _namespaced_resources(self) -> list[tuple[str, str]]:
        out = []
        groups = [("v1", await self.client.request("GET", "/api/v1"))]
        for g in (await self.client.request("GET", "/apis"))["groups"]:
            gv = g["preferredVersion"]["groupVersion"]
            groups.append((gv, await self.client.request("GET", f"/apis/{gv}")))
        for gv, doc in groups:
            for r in doc["resources"]:
                if r["namespaced"] and "/" not in r["name"] and {"deletecollection", "list"} <= set(r["verbs"]):
                    out.append((gv, r["name"]))
        return out

    async def sync(self, name: str) -> bool:
        """Returns True when there is nothing more to do for this namespace."""
        try:
            ns = await self.client.get("v1", "namespaces", name)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return True
        remaining: dict[str, int] = {}
        for gv, plural in await self._namespaced_resources():
            try:
                await self.client.delete_collection(gv, plural, name)
                left = await self.client.list(gv, plural, name, limit=1)
            except ApiException as e:
                if e.status in (404, 405):
                    continue
                raise
            if left["items"]:
                remaining[plural] = len(left["items"])
        if remaining:
            await self._set_condition(ns, remaining)
            return False
        finalizers = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        ns["spec"] = {**(ns.get("spec") or {}), "finalizers": finalizers}
        await self.client.update("v1", "namespaces", ns, sub="finalize")
        log.info("namespace %s: content removed, finalized", name)
        return True

    async def _set_condition(self, ns: dict, remaining: dict[str, int]) -> None:
        what = ", ".join(f"{k} has {v} resource instances" for k, v in sorted(remaining.items()))
        cond = {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                "message": f"Some resources are remaining: {what}",
                "lastTransitionTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        conds = [c for c in (ns.get("status") or {}).get("conditions") or [] if c["type"] != cond["type"]]
        if any(c.get("message") == cond["message"] for c in (ns.get("status") or {}).get("conditions") or []):
            return
        ns.setdefault("status", {})["conditions"] = [*conds, cond]
        try:
            await self.client.update("v1", "namespaces", ns, sub="status")
        except ApiException as e:
            if e.status != 409:
                raise
