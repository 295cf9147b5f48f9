"""The controller manager: runs every built-in controller against an API server."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from pathlib import Path

from ..client.informer import SharedInformerFactory
from ..client.leaderelection import LeaderElector
from ..client.rest import RestClient
from .garbagecollector import GarbageCollector
from .namespace import NamespaceController
from .replicaset import ReplicaSetController

log = logging.getLogger(__name__)


class RunningControllers:
    def __init__(self, client: RestClient, factory: SharedInformerFactory, controllers: list):
        self.client, self.factory, self.controllers = client, factory, controllers

    async def stop(self) -> None:
        for c in self.controllers:
            await c.stop()
        await self.factory.stop()
        await self.client.close()


async def run_builtin_controllers(kubeconfig: Path) -> RunningControllers:
    """Start every controller on one shared set of informers (one connection pool)."""
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-controller-manager")
    factory = SharedInformerFactory(client)
    controllers = [
        NamespaceController(client, factory),
        ReplicaSetController(client, factory, None),  # records its own events as replicaset-controller
        GarbageCollector(client, factory),
    ]
    factory.start()
    for c in controllers:
        c.start()
    return RunningControllers(client, factory, controllers)


async def run_leader_elected(kubeconfig: Path, identity: str | None = None, lease_duration: float = 15.0,
                             renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
    """Run the controllers only while holding the kube-system/kube-controller-manager Lease;
    stand again after losing it.  Runs until cancelled."""
    identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-controller-manager-election")

    async def lead() -> None:
        controllers = await run_builtin_controllers(kubeconfig)
        try:
            await asyncio.Event().wait()  # until leadership ends (this task is cancelled)
        finally:
            await controllers.stop()

    try:
        while True:
            elector = LeaderElector(client, "kube-system", "kube-controller-manager", identity,
                                    lease_duration=lease_duration, renew_deadline=renew_deadline,
                                    retry_period=retry_period, on_started_leading=lead)
            await elector.run()
            log.warning("controller manager %s lost leadership; standing again", identity)
    finally:
        await client.close()
