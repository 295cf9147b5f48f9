"""The controller manager: runs every built-in controller against an API server."""

from __future__ import annotations

from pathlib import Path

from ..client.informer import SharedInformerFactory
from ..client.rest import RestClient
from .namespace import NamespaceController


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
    controllers = [NamespaceController(client, factory)]
    factory.start()
    for c in controllers:
        c.start()
    return RunningControllers(client, factory, controllers)
