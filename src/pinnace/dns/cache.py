"""The cluster view kept current by informers, and ``start_dns``: the whole DNS
component (informers + server) as one object to start and stop.

Only Services and EndpointSlices are watched: pod records
(``a-b-c-d.<ns>.pod.<zone>``) come from the address in the name, as CoreDNS's
``pods insecure`` mode answers them, so no pod informer is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ..client.informer import SharedInformerFactory
from ..client.rest import RestClient
from .records import ClusterView, Resolver
from .server import DnsServer, parse_upstream

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 5.0  # like CoreDNS: serve after this even if the API is not listed yet (name errors -> SERVFAIL)


class InformerFeed:
    """Feeds a :class:`ClusterView` from Service and EndpointSlice informers."""

    def __init__(self, factory: SharedInformerFactory, view: ClusterView):
        self.factory = factory
        self.view = view
        self._sync_task: asyncio.Task[None] | None = None
        services = factory.informer("v1", "services")
        services.add_event_handler(on_add=view.set_service, on_update=lambda _old, new: view.set_service(new),
                                   on_delete=view.delete_service)
        slices = factory.informer("discovery.k8s.io/v1", "endpointslices")
        slices.add_event_handler(on_add=view.set_endpoint_slice,
                                 on_update=lambda _old, new: view.set_endpoint_slice(new),
                                 on_delete=view.delete_endpoint_slice)
        self._informers = (services, slices)

    async def start(self, timeout: float = SYNC_TIMEOUT) -> bool:
        """Start the informers; wait up to ``timeout`` for their first lists.
        The view turns synced whenever they complete."""
        self.view.synced = False
        for inf in self._informers:
            inf.start()
        self._sync_task = asyncio.create_task(self._mark_synced(), name="dns-informer-sync")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._sync_task)
        except TimeoutError:
            log.warning("DNS: serving before the Services and EndpointSlices were listed")
            return False
        return True

    async def _mark_synced(self) -> None:
        await asyncio.gather(*(inf.wait_for_sync() for inf in self._informers))
        self.view.synced = True
        self.view.changed()  # cached SERVFAILs for unknown names become NXDOMAIN

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await asyncio.gather(*(inf.stop() for inf in self._informers))


@dataclass
class RunningDns:
    """A running cluster DNS: ``port`` is the bound port (UDP and TCP)."""

    server: DnsServer
    feed: InformerFeed
    client: RestClient
    view: ClusterView
    resolver: Resolver

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop()
        await self.feed.stop()
        await self.client.close()


async def start_dns(kubeconfig: Path, host: str, port: int, domain: str = "cluster.local",
                    upstreams: list[str] | None = None, sync_timeout: float = SYNC_TIMEOUT) -> RunningDns:
    """Start cluster DNS for ``domain`` on ``host:port`` (0: any free port) from the
    API server in ``kubeconfig``.  ``upstreams`` ("IP[:PORT]") receive every other
    name; None means the host's /etc/resolv.conf, less this server itself."""
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-dns")
    view = ClusterView(synced=False)
    resolver = Resolver(view, domain)
    server = DnsServer(resolver, host, port,
                       upstreams=None if upstreams is None else [parse_upstream(u) for u in upstreams])
    view.add_listener(server.invalidate)
    feed = InformerFeed(SharedInformerFactory(client), view)
    try:
        await feed.start(sync_timeout)
        await server.start()
    except BaseException:
        await server.stop()
        await feed.stop()
        await client.close()
        raise
    return RunningDns(server, feed, client, view, resolver)


__all__ = ["InformerFeed", "RunningDns", "start_dns"]
