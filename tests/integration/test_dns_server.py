"""Cluster DNS end to end: a real in-process API server, ``start_dns`` on a
loopback port fed by informers, queries over UDP and TCP, updates reaching the
answers, forwarding to a fake upstream DNS server on another loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dnslib import CNAME, EDNS0, QTYPE, RCODE, RR, A, DNSHeader, DNSQuestion, DNSRecord

from pinnace.dns import RunningDns, start_dns
from pinnace.dns.server import host_upstreams, parse_query, parse_upstream
from tests.support.processes import free_port

ZONE = "cluster.local"


# -- clients --------------------------------------------------------------------------


async def query(port: int, name: str, qtype: str = "A", *, tcp: bool = False, edns: int | None = None,
                host: str = "127.0.0.1") -> DNSRecord:
    """One query with dnslib's client (blocking sockets, so in a thread)."""
    q = DNSRecord.question(name, qtype)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    raw = await asyncio.to_thread(q.send, host, port, tcp, 3)
    reply = DNSRecord.parse(raw)
    assert reply.header.id == q.header.id
    return reply


def addresses(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA))


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Await ``check()`` (a coroutine function) until it stops raising AssertionError."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await check()  # type: ignore[misc]
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.1)


# -- a fake upstream resolver ------------------------------------------------------------


class FakeUpstream:
    """A tiny authoritative server for ``example.test`` on UDP and TCP: www -> 192.0.2.7,
    big -> 60 addresses (too big for plain UDP), alias -> CNAME www, else NXDOMAIN."""

    def __init__(self, host: str):
        self.host = host
        self.port = 0
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def answer(self, data: bytes, transport: str) -> bytes:
        req = DNSRecord.parse(data)
        q = req.questions[0]
        name = str(q.qname).lower().rstrip(".")
        self.queries.append((transport, name, QTYPE[q.qtype]))
        reply = req.reply()
        if name == "www.example.test" and q.qtype == QTYPE.A:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=60))
        elif name == "big.example.test":
            for i in range(60):
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(f"198.51.100.{i + 1}"), ttl=60))
            if transport == "udp" and len(reply.pack()) > 512:
                reply = req.reply()
                reply.header.tc = 1
        elif name == "alias.example.test":
            reply.add_answer(RR(q.qname, QTYPE.CNAME, rdata=CNAME("www.example.test"), ttl=60))
        elif name not in ("www.example.test",):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(upstream.answer(data, "udp"), addr)

        async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    resp = self.answer(await reader.readexactly(size), "tcp")
                    writer.write(len(resp).to_bytes(2, "big") + resp)
                    await writer.drain()
            writer.close()

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, 0))
        self.port = self._udp.get_extra_info("sockname")[1]
        self._tcp = await asyncio.start_server(tcp_client, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream("127.0.0.2")
    await up.start()
    try:
        yield up
    finally:
        await up.stop()


@pytest.fixture
async def dns(api, upstream) -> AsyncIterator[RunningDns]:
    running = await start_dns(api.kubeconfig, "127.0.0.1", 0, ZONE, upstreams=[f"127.0.0.2:{upstream.port}"])
    try:
        yield running
    finally:
        await running.stop()


async def create(api, path: str, body: dict) -> dict:
    status, obj = await api.call("POST", path, body)
    assert status == 201, obj
    return obj


async def create_service(api, name: str, ns: str = "default", **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}
    return await create(api, f"/api/v1/namespaces/{ns}/services", body)


async def create_slice(api, name: str, service: str, endpoints: list[dict], ns: str = "default") -> dict:
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints}
    return await create(api, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", body)


# -- tests --------------------------------------------------------------------------------


async def test_services_over_udp_and_tcp(api, dns):
    """[sig-network] DNS should provide DNS for services [Conformance]: A for a
    ClusterIP Service and for a headless one (its ready endpoints), SRV for named
    ports, PTR for the cluster IP, over UDP and TCP."""
    svc = await create_service(api, "test-service-2")
    cluster_ip = svc["spec"]["clusterIP"]
    await create_service(api, "dns-test-service", clusterIP="None")
    await create_slice(api, "dns-test-service-1", "dns-test-service", [
        {"addresses": ["10.42.0.5"], "hostname": "web-0", "conditions": {"ready": True}},
        {"addresses": ["10.42.0.6"], "conditions": {"ready": True}},
        {"addresses": ["10.42.0.7"], "conditions": {"ready": False}}])

    async def ready() -> None:
        r = await query(dns.port, "dns-test-service.default.svc.cluster.local")
        assert addresses(r) == ["10.42.0.5", "10.42.0.6"]

    await eventually(ready)
    for tcp in (False, True):
        r = await query(dns.port, "test-service-2.default.svc.cluster.local", tcp=tcp)
        assert r.header.rcode == RCODE.NOERROR and r.header.aa
        assert addresses(r) == [cluster_ip]
        assert r.rr[0].ttl == 5
        r = await query(dns.port, "dns-test-service.default.svc.cluster.local", tcp=tcp)
        assert addresses(r) == ["10.42.0.5", "10.42.0.6"]
        r = await query(dns.port, "web-0.dns-test-service.default.svc.cluster.local", tcp=tcp)
        assert addresses(r) == ["10.42.0.5"]
        r = await query(dns.port, "_http._tcp.dns-test-service.default.svc.cluster.local", "SRV", tcp=tcp)
        assert sorted(str(rr.rdata.target) for rr in r.rr) == [
            "10-42-0-6.dns-test-service.default.svc.cluster.local.",
            "web-0.dns-test-service.default.svc.cluster.local."]
        assert sorted(str(rr.rdata) for rr in r.ar) == ["10.42.0.5", "10.42.0.6"]
        r = await query(dns.port, "_http._tcp.test-service-2.default.svc.cluster.local", "SRV", tcp=tcp)
        assert [(rr.rdata.port, str(rr.rdata.target)) for rr in r.rr] == [
            (80, "test-service-2.default.svc.cluster.local.")]
        reverse = ".".join(reversed(cluster_ip.split("."))) + ".in-addr.arpa"
        r = await query(dns.port, reverse, "PTR", tcp=tcp)
        assert [str(rr.rdata) for rr in r.rr] == ["test-service-2.default.svc.cluster.local."]


async def test_nxdomain_nodata_and_case(api, dns):
    await create_service(api, "web")
    r = await query(dns.port, "WeB.DEFAULT.svc.Cluster.Local")
    # The question comes back as asked, and so does the owner name of the answer.
    assert str(r.q.qname) == "WeB.DEFAULT.svc.Cluster.Local."
    assert str(r.rr[0].rname) == "WeB.DEFAULT.svc.Cluster.Local."
    # The same question in lower case now comes from the cache, in its own case.
    r = await query(dns.port, "web.default.svc.cluster.local")
    assert str(r.rr[0].rname) == "web.default.svc.cluster.local."
    assert dns.server.stats["cache_hits"] >= 1

    r = await query(dns.port, "web.default.svc.cluster.local", "AAAA")  # NODATA
    assert r.header.rcode == RCODE.NOERROR and not r.rr
    assert [rr.rtype for rr in r.auth] == [QTYPE.SOA]
    r = await query(dns.port, "nothing.default.svc.cluster.local")  # NXDOMAIN
    assert r.header.rcode == RCODE.NXDOMAIN and not r.rr
    assert [rr.rtype for rr in r.auth] == [QTYPE.SOA]
    r = await query(dns.port, "10-42-1-2.default.pod.cluster.local")
    assert addresses(r) == ["10.42.1.2"]
    r = await query(dns.port, "dns-version.cluster.local", "TXT")
    assert [str(rr.rdata) for rr in r.rr] == ['"1.1.0"']


async def test_updates_reach_the_answers(api, dns):
    """A deleted Service turns NXDOMAIN; EndpointSlice changes change a headless
    Service's addresses; a changed externalName changes the CNAME (even for cached
    answers)."""
    await create_service(api, "gone")
    await create_service(api, "hl", clusterIP="None")
    await create_slice(api, "hl-1", "hl", [{"addresses": ["10.42.0.1"], "conditions": {"ready": True}}])

    async def both_there() -> None:
        assert (await query(dns.port, "gone.default.svc.cluster.local")).header.rcode == RCODE.NOERROR
        assert addresses(await query(dns.port, "hl.default.svc.cluster.local")) == ["10.42.0.1"]

    await eventually(both_there)
    status, _ = await api.call("DELETE", "/api/v1/namespaces/default/services/gone")
    assert status == 200

    async def gone() -> None:
        assert (await query(dns.port, "gone.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN

    await eventually(gone)

    patch = {"endpoints": [{"addresses": ["10.42.0.1"], "conditions": {"ready": False}},
                           {"addresses": ["10.42.0.2"], "conditions": {"ready": True}}]}
    status, obj = await api.call("PATCH", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/hl-1",
                                 patch, content_type="application/merge-patch+json")
    assert status == 200, obj

    async def moved() -> None:
        assert addresses(await query(dns.port, "hl.default.svc.cluster.local")) == ["10.42.0.2"]

    await eventually(moved)


async def test_externalname_over_the_wire(api, dns, upstream):
    """[sig-network] DNS should provide DNS for ExternalName services [Conformance]:
    CNAME to the external name, completed from upstream when asked for A; a new
    externalName shows at once; turned ClusterIP it answers its A record."""
    await create_service(api, "ext", type="ExternalName", externalName="www.example.test", ports=[])

    async def cname() -> None:
        r = await query(dns.port, "ext.default.svc.cluster.local", "CNAME")
        assert [str(rr.rdata) for rr in r.rr] == ["www.example.test."]

    await eventually(cname)
    r = await query(dns.port, "ext.default.svc.cluster.local", "A")
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in r.rr] == [("CNAME", "www.example.test."),
                                                                 ("A", "192.0.2.7")]
    assert ("udp", "www.example.test", "A") in upstream.queries

    status, obj = await api.call("PATCH", "/api/v1/namespaces/default/services/ext",
                                 {"spec": {"externalName": "other.example.test"}},
                                 content_type="application/merge-patch+json")
    assert status == 200, obj

    async def changed() -> None:
        r = await query(dns.port, "ext.default.svc.cluster.local", "CNAME")
        assert [str(rr.rdata) for rr in r.rr] == ["other.example.test."]

    await eventually(changed)
    # The target does not exist upstream: the chain ends in NXDOMAIN (RFC 6604).
    r = await query(dns.port, "ext.default.svc.cluster.local", "A")
    assert r.header.rcode == RCODE.NXDOMAIN
    assert [QTYPE[rr.rtype] for rr in r.rr] == ["CNAME"]


async def test_forwards_other_names(dns, upstream):
    r = await query(dns.port, "www.example.test")
    assert addresses(r) == ["192.0.2.7"]
    assert upstream.queries[-1] == ("udp", "www.example.test", "A")
    r = await query(dns.port, "missing.example.test")
    assert r.header.rcode == RCODE.NXDOMAIN
    # Too big for plain UDP: the truncated answer comes through; over TCP, the whole.
    r = await query(dns.port, "big.example.test")
    assert r.header.tc and not r.rr
    r = await query(dns.port, "big.example.test", tcp=True)
    assert len(r.rr) == 60
    assert ("tcp", "big.example.test", "A") in upstream.queries
    # A PTR for an address the cluster does not own is the upstream's to answer.
    r = await query(dns.port, "9.2.0.192.in-addr.arpa", "PTR")
    assert r.header.rcode == RCODE.NXDOMAIN
    assert ("udp", "9.2.0.192.in-addr.arpa", "PTR") in upstream.queries
    assert dns.server.stats["forwarded"] >= 4


async def test_upstream_down_is_servfail(api):
    dead = free_port()  # nothing listens there: the upstream refuses at once
    running = await start_dns(api.kubeconfig, "127.0.0.1", 0, ZONE, upstreams=[f"127.0.0.1:{dead}"])
    try:
        r = await query(running.port, "www.example.test")
        assert r.header.rcode == RCODE.SERVFAIL
    finally:
        await running.stop()


async def test_truncation_and_edns(api, dns):
    """A UDP answer over 512 bytes is truncated (TC) unless EDNS allows more; TCP
    carries it whole."""
    await create_service(api, "many", clusterIP="None")
    await create_slice(api, "many-1", "many", [{"addresses": [f"10.42.9.{i}"], "conditions": {"ready": True}}
                                               for i in range(1, 51)])

    async def all_there() -> None:
        r = await query(dns.port, "many.default.svc.cluster.local", tcp=True)
        assert len(r.rr) == 50

    await eventually(all_there)
    for _ in range(2):  # built, then from the cache
        r = await query(dns.port, "many.default.svc.cluster.local")
        assert r.header.tc and not r.rr
        r = await query(dns.port, "many.default.svc.cluster.local", edns=1232)
        assert not r.header.tc and len(r.rr) == 50
        assert [rr.rtype for rr in r.ar] == [QTYPE.OPT]


async def test_malformed_and_unusual_messages(dns):
    loop = asyncio.get_running_loop()

    def exchange(payload: bytes) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.sendto(payload, ("127.0.0.1", dns.port))
            try:
                return s.recv(4096)
            except TimeoutError:
                return None

    garbage = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab"  # a name cut short
    reply = await loop.run_in_executor(None, exchange, garbage)
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR
    notify = DNSRecord(DNSHeader(id=7, opcode=4), q=DNSQuestion("cluster.local", QTYPE.SOA)).pack()
    reply = await loop.run_in_executor(None, exchange, notify)
    assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.NOTIMP
    axfr = DNSRecord(DNSHeader(id=9), q=DNSQuestion("cluster.local", QTYPE.AXFR)).pack()
    reply = await loop.run_in_executor(None, exchange, axfr)
    assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.REFUSED
    response = DNSRecord(DNSHeader(id=8, qr=1), q=DNSQuestion("cluster.local")).pack()
    assert await loop.run_in_executor(None, exchange, response) is None  # replies are never answered
    assert parse_query(DNSRecord.question("a.b").pack()) is not None


async def test_pinnace_dns_command(api, upstream, tmp_path: Path):
    """``pinnace dns`` serves from the API server in its kubeconfig."""
    await create_service(api, "cli-web")
    port = free_port()
    log = tmp_path / "dns.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pinnace.cli", "dns", "--kubeconfig", str(api.kubeconfig),
            "--bind-address", "127.0.0.1", "--port", str(port), "--cluster-domain", ZONE,
            "--upstream", f"127.0.0.2:{upstream.port}", stdout=out, stderr=subprocess.STDOUT)
    try:
        async def answers() -> None:
            try:
                r = await query(port, "cli-web.default.svc.cluster.local")
            except OSError as e:
                raise AssertionError(str(e)) from e
            assert r.header.rcode == RCODE.NOERROR and len(r.rr) == 1, r
        await eventually(answers, timeout=30)
        assert addresses(await query(port, "www.example.test", tcp=True)) == ["192.0.2.7"]
    finally:
        if proc.returncode is None:
            proc.terminate()  # SIGTERM: a clean stop
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, log.read_text()


def test_upstreams_from_resolv_conf_skip_this_server(tmp_path: Path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 127.0.0.1\nnameserver 192.0.2.53\n"
                    "nameserver fe80::1%eth0\noptions ndots:5\n")
    # Serving on every address at port 53: the loopback nameserver is this server.
    assert host_upstreams("0.0.0.0", 53, conf) == [("192.0.2.53", 53), ("fe80::1", 53)]
    assert host_upstreams("127.0.0.1", 53, conf) == [("192.0.2.53", 53), ("fe80::1", 53)]
    # On another port it is not.
    assert host_upstreams("0.0.0.0", 1053, conf) == [("127.0.0.1", 53), ("192.0.2.53", 53), ("fe80::1", 53)]
    assert parse_upstream("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_upstream("10.0.0.1:5353") == ("10.0.0.1", 5353)
    assert parse_upstream("[fd00::1]:5353") == ("fd00::1", 5353)
    assert parse_upstream("fd00::1") == ("fd00::1", 53)
    with pytest.raises(ValueError):
        parse_upstream("not-an-ip")
