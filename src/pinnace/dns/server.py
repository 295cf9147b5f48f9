"""An asyncio DNS server (UDP and TCP) for the cluster domain, forwarding every
other name to upstream resolvers.

Speed comes from a cache of *encoded* answers keyed by the question's bytes
(name lower-cased, type, class) and whether the query carried EDNS.  The cached
message is built with the lower-cased question and owner names compressed to
point at it, so a hit is served by splicing the query's ID, RD bit and exact
question bytes (its letter case) around the cached tail: no parsing with
dnslib, no encoding.  The cache is cleared whenever the cluster view changes
(every watch event that alters a DNS answer), so it never serves stale records.
Forwarded answers are not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from .records import Answer, Resolver

log = logging.getLogger(__name__)

EDNS_UDP_SIZE = 1232  # what we advertise (the DNS flag day 2020 value)
MIN_UDP_SIZE = 512
MAX_MESSAGE = 65535
CACHE_LIMIT = 50_000  # entries; cleared when full so a flood of random names cannot grow it without bound
FORWARD_TIMEOUT = 2.0  # per upstream attempt
MAX_IN_FLIGHT = 1000  # forwarded queries pending at once; more are dropped (the client retries)
TCP_IDLE_TIMEOUT = 10.0
CLASS_IN, CLASS_ANY = 1, 255
RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")

# An OPT record with our UDP size, version 0, no flags, no options (RFC 6891).
_OPT = b"\x00\x00\x29" + EDNS_UDP_SIZE.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"

Reply = bytes | Coroutine[Any, Any, bytes | None] | None


def parse_query(data: bytes) -> tuple[int, int] | None:
    """For a plain query (QUERY opcode, one question, no other records but an
    optional EDNS0 OPT), return (end of the question, UDP size limit); None for
    anything else, which takes the slow path."""
    n = len(data)
    # flags byte: QR=0 and opcode QUERY; counts: 1 question, 0 answers, 0 authority
    if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    i = 12
    try:
        length = data[i]
        while length:
            if length > 63:  # a compression pointer or a reserved label type
                return None
            i += length + 1
            length = data[i]
    except IndexError:
        return None
    if i > 267:  # the name is longer than 255 bytes
        return None
    qend = i + 5
    if qend > n:
        return None
    arcount = data[10:12]
    if arcount == b"\x00\x00":
        return (qend, MIN_UDP_SIZE) if qend == n else None
    if (arcount != b"\x00\x01" or n < qend + 11 or data[qend] != 0 or data[qend + 1:qend + 3] != b"\x00\x29"
            or data[qend + 6] != 0):  # OPT at the root, EDNS version 0
        return None
    if qend + 11 + int.from_bytes(data[qend + 9:qend + 11], "big") != n:
        return None
    return qend, max(MIN_UDP_SIZE, int.from_bytes(data[qend + 3:qend + 5], "big"))


class _Entry:
    """One cached answer: header bytes after the ID (for RD clear and set), the
    bytes after the question, and the same for the truncated (TC) form."""

    __slots__ = ("head", "tail", "tc_head", "tc_tail")

    def __init__(self, wire: bytes, qlen: int, edns: bool):
        flags = wire[2]
        rest = wire[3:12]
        self.head = (bytes((flags & 0xFE,)) + rest, bytes((flags | 0x01,)) + rest)
        self.tail = wire[12 + qlen:]
        tc_rest = bytes((wire[3],)) + b"\x00\x01\x00\x00\x00\x00" + (b"\x00\x01" if edns else b"\x00\x00")
        self.tc_head = (bytes(((flags | 0x02) & 0xFE,)) + tc_rest, bytes((flags | 0x03,)) + tc_rest)
        self.tc_tail = _OPT if edns else b""


class Forwarder:
    """Sends a query to the first upstream that answers, over UDP or TCP, each
    attempt from a fresh socket and with a fresh random ID."""

    def __init__(self, upstreams: list[tuple[str, int]], timeout: float = FORWARD_TIMEOUT):
        self.upstreams = upstreams
        self.timeout = timeout

    async def query(self, data: bytes, tcp: bool) -> bytes | None:
        qid = os.urandom(2)
        wire = qid + data[2:]
        for host, port in self.upstreams:
            try:
                async with asyncio.timeout(self.timeout):
                    resp = await (_tcp_exchange(host, port, wire) if tcp else _udp_exchange(host, port, wire))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s:%d failed: %s", host, port, e)
                continue
            if len(resp) >= 12 and resp[:2] == qid:
                return bytes(data[:2]) + resp[2:]
        return None


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future[bytes], qid: bytes):
        self.fut, self.qid = fut, qid

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[:2] == self.qid and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


async def _udp_exchange(host: str, port: int, wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _OneShot(fut, wire[:2]), remote_addr=(host, port))
    try:
        transport.sendto(wire)
        return await fut
    finally:
        transport.close()


async def _tcp_exchange(host: str, port: int, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(size)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- upstreams --------------------------------------------------------------------------


def parse_upstream(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address -> (ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return str(ipaddress.ip_address(host)), int(port.removeprefix(":") or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return str(ipaddress.ip_address(host)), int(port)
    return str(ipaddress.ip_address(text)), 53


def read_resolv_conf(path: Path = RESOLV_CONF) -> list[str]:
    """The nameserver addresses of a resolv.conf (zone indexes dropped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            with contextlib.suppress(ValueError):
                out.append(str(ipaddress.ip_address(fields[1].split("%")[0])))
    return out


def _is_local_address(ip: str) -> bool:
    """Whether ``ip`` is an address of this network namespace (it can be bound)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
    except OSError:
        return False
    return True


def host_upstreams(bind_host: str, bind_port: int, resolv_conf: Path = RESOLV_CONF) -> list[tuple[str, int]]:
    """The host's resolvers, minus this server itself (which would loop).  When
    resolv.conf names only a loopback stub (systemd-resolved's 127.0.0.53), the
    real upstreams behind it are used if known, as the kubelet does."""
    servers = read_resolv_conf(resolv_conf)
    if (servers and all(ipaddress.ip_address(s).is_loopback for s in servers) and resolv_conf == RESOLV_CONF
            and SYSTEMD_RESOLV_CONF.exists()):
        servers = read_resolv_conf(SYSTEMD_RESOLV_CONF) or servers
    wildcard = bind_host in ("", "0.0.0.0", "::")
    out = []
    for ip in servers:
        if bind_port == 53 and (ip == bind_host or (wildcard and _is_local_address(ip))):
            log.info("not forwarding to %s: that is this DNS server", ip)
            continue
        out.append((ip, 53))
    return out


# -- the server -------------------------------------------------------------------------


class DnsServer:
    """Serves ``resolver``'s zone on ``host:port`` (UDP and TCP; port 0 picks a
    free one, the same for both) and forwards other names to ``upstreams``
    (default: the host's resolv.conf).  Call :meth:`invalidate` when the view
    the resolver reads changes."""

    def __init__(self, resolver: Resolver, host: str = "0.0.0.0", port: int = 53,
                 upstreams: list[tuple[str, int]] | None = None, forward_timeout: float = FORWARD_TIMEOUT):
        self.resolver = resolver
        self.host = host
        self.port = port
        self._upstreams_arg = upstreams
        self.forwarder = Forwarder(list(upstreams or ()), forward_timeout)
        self._cache: dict[bytes, _Entry] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {"queries": 0, "cache_hits": 0, "forwarded": 0}

    @property
    def upstreams(self) -> list[tuple[str, int]]:
        return self.forwarder.upstreams

    def invalidate(self) -> None:
        self._cache.clear()

    # -- lifecycle --

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp_sock, tcp_sock = _bind_pair(self.host, self.port)
        self.port = udp_sock.getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp_sock)
        self._tcp = await asyncio.start_server(self._tcp_client, sock=tcp_sock)
        if self._upstreams_arg is None:
            self.forwarder.upstreams = host_upstreams(self.host, self.port)
        log.info("DNS for %s on %s:%d (UDP, TCP); forwarding to %s", self.resolver.zone, self.host, self.port,
                 ", ".join(f"{h}:{p}" for h, p in self.upstreams) or "nothing")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for w in list(self._tcp_writers):
                w.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- answering --

    def handle(self, data: bytes, tcp: bool) -> Reply:
        """The reply to one message: bytes, None (drop it), or a coroutine giving
        the reply (forwarding).  Cache hits never leave this function's first lines."""
        self.stats["queries"] += 1
        parsed = parse_query(data)
        if parsed is not None:
            qend, limit = parsed
            edns = len(data) > qend
            key = data[12:qend - 4].lower() + data[qend - 4:qend] + (b"E" if edns else b"")
            entry = self._cache.get(key)
            if entry is not None:
                self.stats["cache_hits"] += 1
                rd = data[2] & 0x01
                resp = b"".join((data[:2], entry.head[rd], data[12:qend], entry.tail))
                if len(resp) > (MAX_MESSAGE if tcp else limit):
                    return b"".join((data[:2], entry.tc_head[rd], data[12:qend], entry.tc_tail))
                return resp
            return self._slow(data, tcp, key, qend, limit)
        return self._slow(data, tcp, None, 0, MIN_UDP_SIZE)

    def _slow(self, data: bytes, tcp: bool, key: bytes | None, qend: int, limit: int) -> Reply:
        try:
            req = DNSRecord.parse(data)
        except Exception:  # dnslib raises several kinds on garbage
            return _header_error(data, RCODE.FORMERR)
        if req.header.qr:
            return None
        opt = next((rr for rr in req.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None:
            limit = max(MIN_UDP_SIZE, opt.rclass)
        if tcp:
            limit = MAX_MESSAGE
        if req.header.opcode != 0:
            return _error(req, RCODE.NOTIMP, opt is not None)
        if len(req.questions) != 1:
            return _error(req, RCODE.FORMERR, opt is not None)
        if opt is not None and (opt.ttl >> 16) & 0xFF != 0:
            return _error(req, RCODE.BADVERS, True)  # we speak EDNS version 0 only
        q = req.questions[0]
        labels = tuple(label.lower() for label in q.qname.label)
        try:
            qname = ".".join(label.decode("ascii") for label in labels)
        except UnicodeDecodeError:
            qname = ""
        if qname and (q.qclass not in (CLASS_IN, CLASS_ANY) or q.qtype in (QTYPE.AXFR, QTYPE.IXFR)) \
                and self.resolver.is_authoritative(qname):
            return _error(req, RCODE.REFUSED, opt is not None)  # no zone transfers, like CoreDNS
        # The cluster zone, and reverse names of cluster addresses; None for the rest.
        ans = self.resolver.resolve(qname, q.qtype) if qname else None
        if ans is None:
            if not self.upstreams:
                return _error(req, RCODE.SERVFAIL, opt is not None)
            self.stats["forwarded"] += 1
            return self._forward(req, data, tcp, limit, opt is not None)
        if ans.chase is not None:
            return self._chase(req, ans, tcp, limit, opt is not None)
        if key is not None:
            # Built around the lower-cased question so it serves every spelling of it.
            wire = _pack(0, 0, DNSLabel(labels), q.qtype, q.qclass, ans, opt is not None)
            if wire[12:qend] == key[:qend - 12]:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                entry = self._cache[key] = _Entry(wire, qend - 12, opt is not None)
                rd = data[2] & 0x01
                resp = b"".join((data[:2], entry.head[rd], data[12:qend], entry.tail))
                if len(resp) > limit:
                    return b"".join((data[:2], entry.tc_head[rd], data[12:qend], entry.tc_tail))
                return resp
        return _fit(_pack(req.header.id, req.header.rd, q.qname, q.qtype, q.qclass, ans, opt is not None), limit)

    async def _forward(self, req: DNSRecord, data: bytes, tcp: bool, limit: int, edns: bool) -> bytes | None:
        resp = await self.forwarder.query(data, tcp)
        if resp is None:
            return _error(req, RCODE.SERVFAIL, edns)
        return _fit(resp, limit)

    async def _chase(self, req: DNSRecord, ans: Answer, tcp: bool, limit: int, edns: bool) -> bytes | None:
        """An ExternalName's CNAME answer completed with the target's records from upstream."""
        assert ans.chase is not None
        target, qtype = ans.chase
        if self.upstreams:
            query = DNSRecord(DNSHeader(id=0, rd=1), q=DNSQuestion(target, qtype))
            wire = await self.forwarder.query(query.pack(), False)
            if wire is not None and DNSRecord.parse(wire).header.tc:
                wire = await self.forwarder.query(query.pack(), True)
            if wire is not None:
                with contextlib.suppress(Exception):
                    up = DNSRecord.parse(wire)
                    ans.answer.extend(up.rr)
                    if up.header.rcode == RCODE.NXDOMAIN:
                        ans.rcode = RCODE.NXDOMAIN  # RFC 6604: the rcode is the chain's last name's
        q = req.questions[0]
        return _fit(_pack(req.header.id, req.header.rd, q.qname, q.qtype, q.qclass, ans, edns), limit)

    # -- TCP --

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                resp = self.handle(data, True)
                if resp is not None and not isinstance(resp, bytes):
                    resp = await resp
                if resp is None:
                    continue
                writer.write(len(resp).to_bytes(2, "big") + resp)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception:
            log.exception("DNS over TCP: connection failed")
        finally:
            self._tcp_writers.discard(writer)
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            resp = self.server.handle(data, False)
        except Exception:
            log.exception("DNS: failed to answer a query from %s", addr)
            return
        if resp is None:
            return
        if isinstance(resp, bytes):
            self.transport.sendto(resp, addr)  # type: ignore[union-attr]
        else:
            self.server._spawn(self._reply_later(resp, addr))

    async def _reply_later(self, pending: Coroutine[Any, Any, bytes | None], addr: Any) -> None:
        try:
            resp = await pending
        except Exception:
            log.exception("DNS: failed to answer a query from %s", addr)
            return
        if resp is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(resp, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error about an earlier reply (client gone): nothing to do


# -- encoding helpers -------------------------------------------------------------------


def _pack(qid: int, rd: int, qname: DNSLabel, qtype: int, qclass: int, ans: Answer, edns: bool) -> bytes:
    rec = DNSRecord(DNSHeader(id=qid, qr=1, aa=1, rd=rd, ra=1, rcode=ans.rcode & 0xF),
                    q=DNSQuestion(qname, qtype, qclass), rr=list(ans.answer), auth=list(ans.authority),
                    ar=list(ans.additional))
    if edns:
        rec.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE, ext_rcode=ans.rcode >> 4))
    return bytes(rec.pack())


def _error(req: DNSRecord, rcode: int, edns: bool) -> bytes:
    rec = DNSRecord(DNSHeader(id=req.header.id, qr=1, opcode=req.header.opcode, rd=req.header.rd, ra=1,
                              rcode=rcode & 0xF), questions=list(req.questions[:1]))
    if edns:
        rec.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE, ext_rcode=rcode >> 4))
    return bytes(rec.pack())


def _header_error(data: bytes, rcode: int) -> bytes | None:
    """An error reply to a message too broken to parse: its header only."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    return data[:2] + bytes((0x80 | (data[2] & 0x79), 0x80 | rcode)) + b"\x00" * 8


def _fit(wire: bytes, limit: int) -> bytes:
    """``wire`` as is if it fits, else its truncated form: TC set, question and OPT only."""
    if len(wire) <= limit:
        return wire
    try:
        rec = DNSRecord.parse(wire)
    except Exception:  # an upstream's reply we cannot read: keep its header, say truncated
        return wire[:2] + bytes((wire[2] | 0x02,)) + wire[3:4] + b"\x00" * 8
    rec.header.tc = 1
    rec.rr, rec.auth = [], []
    rec.ar = [rr for rr in rec.ar if rr.rtype == QTYPE.OPT]
    return bytes(rec.pack())


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same address and port (port 0: a free
    port both can have)."""
    info = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)[0]
    family, addr = info[0], info[4]
    last: OSError | None = None
    for _ in range(20 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # absorb bursts of queries
            udp.bind(addr)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((addr[0], udp.getsockname()[1], *addr[2:]))
            tcp.listen(128)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as e:
            udp.close()
            tcp.close()
            last = e
    assert last is not None
    raise last


__all__ = ["DnsServer", "Forwarder", "host_upstreams", "parse_query", "parse_upstream", "read_resolv_conf"]
