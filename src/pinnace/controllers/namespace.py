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

from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)
FINALIZER = "kubernetes"
RETRY_SECONDS = 1.0


class NamespaceController:
    """Informer → work queue → ``sync(name)``, level-triggered and idempotent."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory):
        self.client = client
        self.informer = factory.informer("v1", "namespaces")
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("namespace")
        self.informer.add_event_handler(on_add=self._changed, on_update=lambda _old, new: self._changed(new))
        self._task: asyncio.Task[None] | None = None

    def _changed(self, ns: dict) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    def start(self) -> None:
        self._task = asyncio.create_task(run_workers(self.queue, 2, self._sync, "namespace"), name="namespace")

    async def stop(self) -> None:
        self.queue.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sync(self, name: str) -> None:
        if not await self.sync(name):
            # Content is still going away (graceful deletions, finalizers): look again soon.
            self.queue.add_after(name, RETRY_SECONDS)

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
