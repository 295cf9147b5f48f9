"""ServiceAccounts controller (kube-controller-manager's ``serviceaccount``):
every active namespace has a ``default`` ServiceAccount, recreated if deleted.

Keys are namespace names; a namespace is synced when it appears or changes,
and when one of the managed service accounts in it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

DEFAULT_SERVICE_ACCOUNTS = ("default",)


class ServiceAccountController:
    WORKERS = 2

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder,
                 names: Iterable[str] = DEFAULT_SERVICE_ACCOUNTS):
        self.client = client
        self.recorder = recorder  # Kubernetes' controller records no events either; kept for uniformity
        self.names = tuple(names)
        self.namespaces = factory.informer("v1", "namespaces")
        self.accounts = factory.informer("v1", "serviceaccounts")
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("serviceaccount")
        self.namespaces.add_event_handler(on_add=self._namespace_changed,
                                          on_update=lambda _old, new: self._namespace_changed(new))
        self.accounts.add_event_handler(on_delete=self._account_deleted)
        self._task: asyncio.Task[None] | None = None

    def _namespace_changed(self, ns: dict) -> None:
        if _active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, sa: dict) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.names and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="serviceaccount")

    async def stop(self) -> None:
        self.queue.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # With an unsynced account cache every namespace would look empty: a storm of 409s.
        for inf in (self.namespaces, self.accounts):
            while not await inf.wait_for_sync(60.0):
                log.info("serviceaccount: waiting for %r to sync", inf)
        await run_workers(self.queue, self.WORKERS, self.sync, "serviceaccount")

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.lister.get(namespace)
        if ns is None or not _active(ns):
            return
        for name in self.names:
            if self.accounts.lister.get(name, namespace) is not None:
                continue
            try:
                await self.client.create("v1", "serviceaccounts",
                                         {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": name, "namespace": namespace}},
                                         namespace=namespace)
                log.info("created service account %s/%s", namespace, name)
            except ApiException as e:
                if e.status == 409:
                    continue  # exists (our cache lags): fine
                if e.status in (403, 404) and await self._namespace_gone_or_terminating(namespace):
                    return  # NamespaceLifecycle refuses content in a terminating namespace: nothing to do
                raise

    async def _namespace_gone_or_terminating(self, namespace: str) -> bool:
        try:
            ns = await self.client.get("v1", "namespaces", namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return not _active(ns)


def _active(ns: dict) -> bool:
    return not ns["metadata"].get("deletionTimestamp") and (ns.get("status") or {}).get("phase") != "Terminating"


__all__ = ["DEFAULT_SERVICE_ACCOUNTS", "ServiceAccountController"]
