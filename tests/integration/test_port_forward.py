"""``kubectl port-forward`` end to end: the real kubectl talks to the in-process API
server (``pods/portforward``, a WebSocket tunnelling SPDY/3.1, KEP-4006), which relays
to a real KubeletServer (HTTPS, client certificates both ways) that forwards each
connection to a TCP server on 127.0.0.1 standing in for the pod's port."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pinnace.kubelet import portforward, spdy
from pinnace.kubelet.server import KubeletServer
from pinnace.pki import CertificateAuthority, kubelet_serving_cert
from tests.support.cluster import KubectlProcess, start_kubectl
from tests.support.waiting import eventually

NODE = "pf-node"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


@dataclass
class Kubelet:
    server: KubeletServer
    targets: list[tuple[str, str, int]] = field(default_factory=list)


@pytest.fixture
async def kubelet(api, pki_dir, tmp_path) -> AsyncIterator[Kubelet]:
    ca = CertificateAuthority.load_or_create(pki_dir)
    serving = kubelet_serving_cert(ca, tmp_path, NODE, ("127.0.0.1",))
    k: Kubelet

    def target(ns: str, pod: str, port: int) -> tuple[str, int, None]:
        k.targets.append((ns, pod, port))
        return "127.0.0.1", port, None

    server = KubeletServer(lambda *a: None, host="127.0.0.1", port=0, cert=serving.cert, key=serving.key,
                           client_ca=ca.cert_path, port_forward_target=target)
    k = Kubelet(server)
    await server.start()
    status, node = await api.call("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                            "metadata": {"name": NODE}})
    assert status == 201, node
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}}}
    status, node = await api.call("PUT", f"/api/v1/nodes/{NODE}/status", node)
    assert status == 200, node
    try:
        yield k
    finally:
        await server.stop()


async def make_pod(api, name: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]}}
    status, body = await api.call("POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 201, body
    body["status"] = {"phase": "Running", "podIP": "127.0.0.1"}  # kubectl forwards only to running pods
    status, body = await api.call("PUT", f"/api/v1/namespaces/default/pods/{name}/status", body)
    assert status == 200, body


async def echo_server() -> tuple[asyncio.Server, int]:
    """Echoes everything; on the client's EOF, ends its side too."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(64 * 1024):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def forward(api, *args: str) -> tuple[KubectlProcess, int]:
    """Starts ``kubectl port-forward args`` and returns it with the local port it listens on."""
    k = await start_kubectl(api, "port-forward", *args)
    try:
        await k.wait_for_line("Forwarding from 127.0.0.1:", 20)
    except BaseException:
        await k.kill()
        raise
    m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) ->", k.output)
    assert m, k.output
    return k, int(m[1])


async def round_trip(port: int, payload: bytes) -> bytes:
    """Sends ``payload`` while reading the echo, then half-closes; returns all that came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        for i in range(0, len(payload), 100_000):
            writer.write(payload[i:i + 100_000])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        got = await reader.read(-1)  # to EOF: the pod's side ended after our EOF reached it
        await sender
    finally:
        writer.close()
    return got


@needs_kubectl
async def test_kubectl_port_forward_round_trips(api, kubelet):
    server, remote = await echo_server()
    await make_pod(api, "web")
    k, local = await forward(api, "pod/web", f":{remote}")
    try:
        async with asyncio.timeout(60):
            assert await round_trip(local, b"hello\n") == b"hello\n"
            # Two connections at once, each a large payload both ways (SPDY frames of up to 32 KiB).
            big1, big2 = os.urandom(1024 * 1024), os.urandom(1024 * 1024 + 7)
            got1, got2 = await asyncio.gather(round_trip(local, big1), round_trip(local, big2))
            assert got1 == big1 and got2 == big2
            # The pod speaking first, and answering after a pause.
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            await asyncio.sleep(0.2)
            writer.write(b"pong")
            assert await reader.readexactly(4) == b"pong"
            writer.close()
        assert k.proc.returncode is None, k.output
        assert kubelet.targets and all(t == ("default", "web", remote) for t in kubelet.targets)
        assert len(kubelet.targets) == 4
    finally:
        await k.kill()
        server.close()


@needs_kubectl
async def test_kubectl_port_forward_with_local_port_and_closed_port(api, kubelet):
    server, remote = await echo_server()
    server.close()
    await server.wait_closed()  # nothing listens on ``remote`` any more
    await make_pod(api, "shut")
    k, local = await forward(api, "shut", f":{remote}")
    try:
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            assert await reader.read(-1) == b""  # the connection is closed at once
            writer.close()
            await eventually(lambda: "error forwarding port" in k.output or "connection refused" in k.output,
                             what="kubectl reporting the refused connection")
    finally:
        await k.kill()


async def test_portforward_requires_websocket(api, kubelet):
    await make_pod(api, "plain")
    status, body = await api.call("POST", "/api/v1/namespaces/default/pods/plain/portforward")
    assert status == 400 and "Upgrade request required" in body["message"]


async def test_discovery_lists_portforward(api):
    status, body = await api.call("GET", "/api/v1")
    assert status == 200
    entry = next(r for r in body["resources"] if r["name"] == "pods/portforward")
    assert sorted(entry["verbs"]) == ["create", "get"]


def test_framer_round_trip():
    client, server = spdy.Framer(), spdy.Framer()
    wire = client.syn_stream(1, {"streamType": "error", "port": "80", "requestID": "0"}, fin=True)
    wire += client.syn_stream(3, {"streamType": "data", "port": "80", "requestID": "0"})
    wire += b"".join(client.data(3, b"x" * 100, fin=True)) + client.ping(1)
    frames = []
    for i in range(0, len(wire), 7):  # in pieces, as WebSocket messages may cut them
        frames += server.feed(wire[i:i + 7])
    assert [(f.type, f.stream_id, f.fin) for f in frames] == [
        (spdy.SYN_STREAM, 1, True), (spdy.SYN_STREAM, 3, False), (0, 3, True), (spdy.PING, 0, False)]
    assert frames[1].headers == {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}
    assert frames[2].data == b"x" * 100 and frames[3].ping_id == 1


async def test_session_pings_errors_and_resets():
    """The kubelet's side without kubectl: PING echoed, a refused port reported on the error
    stream, a reset stream's pod connection closed."""
    sent: list[spdy.Frame] = []
    reader = spdy.Framer()  # parses what the session sends
    client = spdy.Framer()
    closed = asyncio.Event()

    async def send(data: bytes) -> None:
        sent.extend(reader.feed(data))

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()
        w.close()
        closed.set()

    pod = await asyncio.start_server(handle, "127.0.0.1", 0)
    open_port = pod.sockets[0].getsockname()[1]
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    refused_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()

    async def connect(port: int):
        return await portforward.open_tcp("127.0.0.1", port)

    session = portforward.PortForwardSession(send, connect, "pod x_default")
    try:
        async with asyncio.timeout(10):
            assert await session.feed(client.ping(7))
            assert [(f.type, f.ping_id) for f in sent] == [(spdy.PING, 7)]
            sent.clear()
            # A refused port: both streams replied, then the data stream ended and the error told.
            await session.feed(client.syn_stream(1, {"streamType": "error", "port": str(refused_port),
                                                     "requestID": "0"}, fin=True))
            await session.feed(client.syn_stream(3, {"streamType": "data", "port": str(refused_port),
                                                     "requestID": "0"}))
            await eventually(lambda: any(f.type == 0 and f.stream_id == 1 for f in sent), what="the error")
            assert [(f.type, f.stream_id) for f in sent[:2]] == [(spdy.SYN_REPLY, 1), (spdy.SYN_REPLY, 3)]
            error = next(f for f in sent if f.type == 0 and f.stream_id == 1)
            assert error.fin and b"failed to connect" in error.data and str(refused_port).encode() in error.data
            assert any(f.type == 0 and f.stream_id == 3 and f.fin for f in sent)
            # A reset data stream: the pod's connection is closed.
            await session.feed(client.syn_stream(5, {"streamType": "error", "port": str(open_port),
                                                     "requestID": "1"}, fin=True))
            await session.feed(client.syn_stream(7, {"streamType": "data", "port": str(open_port),
                                                     "requestID": "1"}))
            await asyncio.sleep(0.2)
            await session.feed(client.rst_stream(7))
            await closed.wait()
    finally:
        await session.close()
        pod.close()
