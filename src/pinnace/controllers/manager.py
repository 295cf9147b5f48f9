"""The controller manager: runs every built-in controller against an API server."""

from __future__ import annotations

from pathlib import Path

from ..client.rest import RestClient
from .namespace import NamespaceController


class RunningControllers:
    def __init__(self, client: RestClient, controllers: list):
        self.client, self.controllers = client, controllers

    async def stop(self) -> None:
        for c in self.controllers:
            await c.stop()
        await self.client.close()


async def run_builtin_controllers(kubeconfig: Path) -> RunningControllers:
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-controller-manager")
    controllers = [NamespaceController(client)]
    for c in controllers:
        c.start()
    return RunningControllers(client, controllers)
