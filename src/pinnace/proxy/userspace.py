"""The userspace backend: Services served by this process, for the process runtime
(pods are host processes: no pod network, no NAT needed, no root for rules).

Each cluster IP is added as a /32 to ``lo`` (label ``lo:pinnace``, so leftovers
of an earlier run are recognised and removed), and each service port with usable
endpoints gets a listener there -- TCP: accept and splice to an endpoint; UDP: a
relay keeping one upstream socket per client address -- plus one on its NodePort
(on the node's addresses, else on all).  Endpoints are taken round robin
(``sessionAffinity: ClientIP`` pins a client IP to its endpoint for the timeout);
an endpoint that refuses a TCP connection is skipped for the next.  A service
port without endpoints has its address but no listener, so clients get a reset
(TCP) or port unreachable (UDP): the same as the kernel modes' reject.  Traffic
policies: the cluster IP uses the internal endpoints, NodePorts the external ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Endpoint, ServicePort, ServicePortKey
from .netns import CommandRunner, SocketFactory

log = logging.getLogger(__name__)

LO_LABEL = "lo:pinnace"
BUFFER = 65536


class Balancer:
    """Round robin over endpoints, with optional ClientIP affinity."""

    def __init__(self) -> None:
        self.endpoints: tuple[Endpoint, ...] = ()
        self.affinity_timeout = 0
        self._next = 0
        self._sticky: dict[str, tuple[Endpoint, float]] = {}

    def update(self, endpoints: tuple[Endpoint, ...], affinity_timeout: int) -> None:
        if affinity_timeout != self.affinity_timeout:
            self._sticky.clear()
        self.endpoints, self.affinity_timeout = endpoints, affinity_timeout
        live = set(endpoints)
        self._sticky = {c: v for c, v in self._sticky.items() if v[0] in live}

    def candidates(self, client_ip: str) -> list[Endpoint]:
        """Endpoints in the order to try them for a new connection from ``client_ip``."""
        eps = list(self.endpoints)
        if not eps:
            return []
        if self.affinity_timeout:
            sticky = self._sticky.get(client_ip)
            if sticky is not None and sticky[1] > time.monotonic() and sticky[0] in eps:
                first = eps.index(sticky[0])
                return eps[first:] + eps[:first]
        first = self._next % len(eps)
        self._next = first + 1
        return eps[first:] + eps[:first]

    def chosen(self, client_ip: str, ep: Endpoint) -> None:
        if self.affinity_timeout:
            self._sticky[client_ip] = (ep, time.monotonic() + self.affinity_timeout)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be talking
    except (OSError, RuntimeError):
        writer.close()


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, relay: _UdpRelay, client: tuple[str, int]):
        self.relay, self.client = relay, client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = time.monotonic()
        if self.relay.transport is not None:
            self.relay.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp upstream for %s: %s", self.client, exc)


class _UdpRelay(asyncio.DatagramProtocol):
    """One UDP listener: a session (an upstream socket to one endpoint) per client."""

    def __init__(self, backend: UserspaceProxy, balancer: Balancer):
        self.backend, self.balancer = backend, balancer
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UdpUpstream] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is not None and session.transport is not None:
            session.last = time.monotonic()
            session.transport.sendto(data)
        elif addr in self._pending:
            self._pending[addr].append(data)
        else:
            self._pending[addr] = [data]
            self.backend.spawn(self._open(addr))

    async def _open(self, client: tuple[str, int]) -> None:
        try:
            for ep in self.balancer.candidates(client[0])[:1]:
                sock = await self.backend.sockets.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.connect((ep.ip, ep.port))
                    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(
                        lambda: _UdpUpstream(self, client), sock=sock)
                except OSError:
                    sock.close()
                    raise
                self.balancer.chosen(client[0], ep)
                self.sessions[client] = proto
                for data in self._pending.pop(client, ()):
                    proto.transport.sendto(data)  # type: ignore[union-attr]
        except OSError as e:
            log.debug("udp relay: no upstream for %s: %s", client, e)
        finally:
            self._pending.pop(client, None)

    def expire(self, idle: float) -> None:
        now = time.monotonic()
        for client, s in list(self.sessions.items()):
            if now - s.last > idle:
                if s.transport is not None:
                    s.transport.close()
                del self.sessions[client]

    def close(self) -> None:
        for s in self.sessions.values():
            if s.transport is not None:
                s.transport.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()


#: (address, port, protocol, "internal" | "external")
ListenerKey = tuple[str, int, str, str]


@dataclass
class _Port:
    internal: Balancer = field(default_factory=Balancer)
    external: Balancer = field(default_factory=Balancer)
    listeners: dict[ListenerKey, asyncio.AbstractServer | _UdpRelay] = field(default_factory=dict)


class UserspaceProxy:
    """The backend object: ``sync(old, new)`` and ``cleanup()``, like the others."""

    name = "userspace"

    def __init__(self, runner: CommandRunner | None = None, sockets: SocketFactory | None = None,
                 node_ips: Sequence[str] = (), *, udp_idle_timeout: float = 60.0, connect_timeout: float = 5.0):
        self.runner = runner or CommandRunner()
        self.sockets = sockets or SocketFactory(self.runner.netns)
        self.node_ips = list(node_ips)
        self.udp_idle_timeout, self.connect_timeout = udp_idle_timeout, connect_timeout
        self._ports: dict[ServicePortKey, _Port] = {}
        self._addresses: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- addresses on lo ----------------------------------------------------------------

    async def _lo_addresses(self) -> set[str]:
        res = await self.runner.run("ip", "-4", "-o", "addr", "show", "dev", "lo", "label", LO_LABEL)
        out = set()
        for line in res.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                out.add(parts[parts.index("inet") + 1].split("/")[0])
        return out

    async def _ip_batch(self, verb: str, addrs: set[str]) -> None:
        if not addrs:
            return
        extra = f" label {LO_LABEL}" if verb == "add" else ""
        script = "".join(f"address {verb} {a}/32 dev lo{extra}\n" for a in sorted(addrs))
        res = await self.runner.run("ip", "-force", "-batch", "-", input=script)
        if not res.ok:
            log.warning("ip address %s on lo: %s", verb, res.stderr.strip())

    # -- listeners ---------------------------------------------------------------------

    def _wanted(self, sp: ServicePort) -> dict[ListenerKey, tuple[Endpoint, ...]]:
        want: dict[ListenerKey, tuple[Endpoint, ...]] = {}
        if sp.internal_endpoints:
            want[(sp.cluster_ip, sp.port, sp.protocol, "internal")] = sp.internal_endpoints
        if sp.node_port and sp.external_endpoints:
            for ip in self.node_ips or ["0.0.0.0"]:
                want[(ip, sp.node_port, sp.protocol, "external")] = sp.external_endpoints
        return want

    async def _listen(self, key: ListenerKey, balancer: Balancer) -> asyncio.AbstractServer | _UdpRelay | None:
        ip, port, proto, _ = key
        if proto not in ("TCP", "UDP"):
            return None  # SCTP: not in userspace
        loop = asyncio.get_running_loop()
        kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
        sock = await self.sockets.socket(socket.AF_INET, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
            if proto == "TCP":
                sock.listen(1024)
                return await asyncio.start_server(lambda r, w: self._serve_tcp(balancer, r, w), sock=sock)
            _, relay = await loop.create_datagram_endpoint(lambda: _UdpRelay(self, balancer), sock=sock)
            return relay
        except OSError as e:
            sock.close()
            log.warning("userspace proxy cannot listen on %s:%d/%s: %s", ip, port, proto, e)
            return None

    async def _serve_tcp(self, balancer: Balancer, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        loop = asyncio.get_running_loop()
        client_ip = (writer.get_extra_info("peername") or ("",))[0]
        try:
            for ep in balancer.candidates(client_ip):
                sock = await self.sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        await loop.sock_connect(sock, (ep.ip, ep.port))
                except (OSError, TimeoutError) as e:
                    sock.close()
                    log.debug("endpoint %s: %s; trying the next", ep.address, e)
                    continue
                balancer.chosen(client_ip, ep)
                up_reader, up_writer = await asyncio.open_connection(sock=sock)
                try:
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                finally:
                    up_writer.close()
                return
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _close(self, listener: asyncio.AbstractServer | _UdpRelay) -> None:
        if isinstance(listener, _UdpRelay):
            listener.close()
        else:
            listener.close()
            with contextlib.suppress(Exception):
                await listener.wait_closed()

    # -- the backend interface -----------------------------------------------------------

    async def sync(self, old: Mapping[ServicePortKey, ServicePort] | None,
                   new: Mapping[ServicePortKey, ServicePort]) -> None:
        if old is None:
            # Full sync: start from what is really there (an earlier run may have left addresses).
            self._addresses |= await self._lo_addresses()
        wanted_addrs = {sp.cluster_ip for sp in new.values()}
        await self._ip_batch("add", wanted_addrs - self._addresses)
        self._addresses |= wanted_addrs

        for key in [k for k in self._ports if k not in new]:
            port = self._ports.pop(key)
            for listener in port.listeners.values():
                await self._close(listener)
        for key, sp in new.items():
            if old is not None and old.get(key) == sp and key in self._ports:
                continue
            port = self._ports.setdefault(key, _Port())
            port.internal.update(sp.internal_endpoints, sp.affinity_timeout)
            port.external.update(sp.external_endpoints, sp.affinity_timeout)
            want = self._wanted(sp)
            for lkey in [k for k in port.listeners if k not in want]:
                await self._close(port.listeners.pop(lkey))
            for lkey in want:
                if lkey not in port.listeners:
                    listener = await self._listen(lkey, port.internal if lkey[3] == "internal" else port.external)
                    if listener is not None:
                        port.listeners[lkey] = listener

        await self._ip_batch("delete", self._addresses - wanted_addrs)
        self._addresses &= wanted_addrs
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="userspace-proxy-udp-sweeper")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.udp_idle_timeout / 4))
            for port in self._ports.values():
                for listener in port.listeners.values():
                    if isinstance(listener, _UdpRelay):
                        listener.expire(self.udp_idle_timeout)

    def next_housekeeping(self) -> float | None:
        return None

    async def cleanup(self) -> None:
        """Close every listener and connection, remove the addresses from lo."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for port in self._ports.values():
            for listener in port.listeners.values():
                await self._close(listener)
        self._ports.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._addresses |= await self._lo_addresses()
        await self._ip_batch("delete", self._addresses)
        self._addresses.clear()
        self.sockets.close()

    @property
    def listening(self) -> list[ListenerKey]:
        """Every listener (for tests and logs)."""
        return sorted(k for p in self._ports.values() for k in p.listeners)


__all__ = ["LO_LABEL", "Balancer", "UserspaceProxy"]
