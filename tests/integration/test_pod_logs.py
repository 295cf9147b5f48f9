"""``pods/log`` and ``pods/exec`` end to end: the API server finds the pod's node and
proxies to a real KubeletServer (HTTPS, client certificates both ways) reading a CRI
log file, or running an exec as a host process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from pinnace.kubelet import crilog
from pinnace.kubelet.server import ExecProcess, ExecRequest, KubeletServer
from pinnace.pki import CertificateAuthority, kubelet_serving_cert
from tests.support.cluster import kubectl, start_kubectl
from tests.support.waiting import eventually

NODE = "log-node"


@dataclass
class Kubelet:
    server: KubeletServer
    logs: dict[tuple[str, str, str, bool], Path]
    running: set[tuple[str, str, str]]

    def write(self, pod: str, container: str, *lines: str, stream: str = "stdout") -> None:
        path = self.logs[("default", pod, container, False)]
        with open(path, "ab") as f:
            f.write(crilog.encode(stream, "".join(f"{ln}\n" for ln in lines).encode()))


@pytest.fixture
async def kubelet(api, pki_dir, tmp_path) -> AsyncIterator[Kubelet]:
    ca = CertificateAuthority.load_or_create(pki_dir)
    serving = kubelet_serving_cert(ca, tmp_path, NODE, ("127.0.0.1",))
    logs: dict[tuple[str, str, str, bool], Path] = {}
    running: set[tuple[str, str, str]] = set()

    async def exec_source(req: ExecRequest) -> ExecProcess | None:
        if (req.namespace, req.pod, req.container) not in running:
            return None
        proc = await asyncio.create_subprocess_exec(
            *req.command, stdin=asyncio.subprocess.PIPE if req.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return ExecProcess.from_process(proc)

    server = KubeletServer(lambda ns, pod, c, prev: logs.get((ns, pod, c, prev)), host="127.0.0.1", port=0,
                           cert=serving.cert, key=serving.key, client_ca=ca.cert_path,
                           is_running=lambda ns, pod, c: (ns, pod, c) in running, exec_source=exec_source)
    await server.start()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    status, body = await api.call("POST", "/api/v1/nodes", node)
    assert status == 201, body
    body["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                    {"type": "Hostname", "address": NODE}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}}}
    status, body = await api.call("PUT", f"/api/v1/nodes/{NODE}/status", body)
    assert status == 200, body
    k = Kubelet(server, logs, running)
    try:
        yield k
    finally:
        await server.stop()


async def make_pod(api, kubelet: Kubelet, tmp_path: Path, name: str, containers: tuple[str, ...] = ("app",),
                   node: str = NODE) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]}}
    if node:
        pod["spec"]["nodeName"] = node
    status, body = await api.call("POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 201, body
    for c in containers:
        path = tmp_path / f"{name}-{c}.log"
        path.touch()
        kubelet.logs[("default", name, c, False)] = path
        kubelet.running.add(("default", name, c))


async def get_log(api, pod: str, query: str = "") -> tuple[int, str]:
    async with api.session.get(f"{api.base}/api/v1/namespaces/default/pods/{pod}/log?{query}") as resp:
        return resp.status, (await resp.read()).decode()


async def test_logs_tail_timestamps(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "web")
    kubelet.write("web", "app", "one", "two", "three")
    kubelet.write("web", "app", "oops", stream="stderr")
    assert await get_log(api, "web") == (200, "one\ntwo\nthree\noops\n")
    assert await get_log(api, "web", "container=app&tailLines=2") == (200, "three\noops\n")
    status, text = await get_log(api, "web", "timestamps=true&limitBytes=64")
    assert status == 200 and text.split(" ", 1)[1].startswith("one\n") and text.startswith("20")


async def test_logs_read_across_a_rotated_file(api, kubelet, tmp_path):
    """After a rotation (``N.log`` renamed ``N.log.<timestamp>``, older ones gzipped), the
    plain rotated file is read before the current one; a follower moves on to the new file."""
    await make_pod(api, kubelet, tmp_path, "rotated")
    path = kubelet.logs[("default", "rotated", "app", False)]
    kubelet.write("rotated", "app", "ancient")
    path.rename(path.with_name(path.name + ".20260101-000000.gz"))  # compressed: not read
    kubelet.write("rotated", "app", "one", "two")
    path.rename(path.with_name(path.name + ".20260101-000010"))
    kubelet.write("rotated", "app", "three")
    assert await get_log(api, "rotated") == (200, "one\ntwo\nthree\n")
    assert await get_log(api, "rotated", "tailLines=2") == (200, "two\nthree\n")
    url = f"{api.base}/api/v1/namespaces/default/pods/rotated/log?follow=true&tailLines=1"
    async with api.session.get(url) as resp:
        async with asyncio.timeout(10):
            assert await resp.content.readline() == b"three\n"
            path.rename(path.with_name(path.name + ".20260101-000020"))  # rotated while followed
            kubelet.write("rotated", "app", "four")
            assert await resp.content.readline() == b"four\n"
            kubelet.running.discard(("default", "rotated", "app"))
            assert await resp.content.read() == b""


async def test_follow_streams_appended_lines(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "tailer")
    kubelet.write("tailer", "app", "before")
    url = f"{api.base}/api/v1/namespaces/default/pods/tailer/log?follow=true"
    async with api.session.get(url) as resp:
        assert resp.status == 200
        async with asyncio.timeout(10):
            assert await resp.content.readline() == b"before\n"
            kubelet.write("tailer", "app", "after")
            assert await resp.content.readline() == b"after\n"
            # The container ends: the kubelet finishes the stream and the API server passes that on.
            kubelet.write("tailer", "app", "last words")
            kubelet.running.discard(("default", "tailer", "app"))
            assert await resp.content.read() == b"last words\n"


async def test_follow_ends_when_the_client_leaves(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "leaver")
    kubelet.write("leaver", "app", "hello")
    url = f"{api.base}/api/v1/namespaces/default/pods/leaver/log?follow=true"
    async with api.session.get(url) as resp:
        assert await resp.content.readline() == b"hello\n"
        assert kubelet.server.active_streams == 1
    # The API server notices (within a second) and drops its kubelet request; the kubelet then stops.
    await eventually(lambda: kubelet.server.active_streams, ok=lambda n: n == 0, what="kubelet stream ends")


async def test_errors(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "multi", ("main", "sidecar"))
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/multi/log")
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == "a container name must be specified for pod multi, choose one of: [main sidecar]"
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/multi/log?container=nope")
    assert (status, body["message"]) == (400, "container nope is not valid for pod multi")
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/ghost/log")
    assert (status, body["message"]) == (404, 'pods "ghost" not found')
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/multi/log?container=main&tailLines=-1")
    assert status == 422 and body["reason"] == "Invalid"
    # The kubelet has no previous instance: its 404 comes back as a Status.
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/multi/log?container=main&previous=true")
    assert (status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'previous terminated container "main" in pod "multi" not found'
    await make_pod(api, kubelet, tmp_path, "pending", node="")
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/pending/log")
    assert status == 400 and "not scheduled" in body["message"]
    status, _ = await api.call("POST", "/api/v1/namespaces/default/pods/multi/log?container=main", {})
    assert status == 405


async def test_discovery_lists_pods_log_and_exec(api):
    status, body = await api.call("GET", "/api/v1")
    [entry] = [r for r in body["resources"] if r["name"] == "pods/log"]
    assert entry["verbs"] == ["get"] and entry["kind"] == "Pod"
    [entry] = [r for r in body["resources"] if r["name"] == "pods/exec"]
    assert entry["verbs"] == ["create", "get"] and entry["kind"] == "PodExecOptions"


async def test_unconfigured_api_server_answers_503(api, kubelet, tmp_path):
    from pinnace.apiserver.podproxy import PodProxy

    await make_pod(api, kubelet, tmp_path, "lonely")
    api.server.handlers.pod_proxy = PodProxy(api.server.registry)
    status, body = await api.call("GET", "/api/v1/namespaces/default/pods/lonely/log")
    assert (status, body["message"]) == (503, "kubelet client certificate not configured")


async def test_kubelet_refuses_other_clients(api, kubelet, pki_dir, tmp_path):
    ca = CertificateAuthority.load_or_create(pki_dir)
    base = f"https://127.0.0.1:{kubelet.server.port}"
    path = "/containerLogs/default/x/app"

    async def status_with(ctx: ssl.SSLContext, url: str = base + path) -> int:
        async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx) as resp:
            return resp.status

    anonymous = ssl.create_default_context(cafile=str(ca.cert_path))
    assert await status_with(anonymous) == 401
    assert await status_with(anonymous, base + "/healthz") == 200
    alice = ca.issue_to_files(tmp_path, "alice", "alice", ("devs",), client=True)
    as_alice = ssl.create_default_context(cafile=str(ca.cert_path))
    as_alice.load_cert_chain(str(alice.cert), str(alice.key))
    assert await status_with(as_alice) == 403
    # A certificate from another CA does not get through the handshake.
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    mallory = other.issue_to_files(tmp_path, "mallory", "kube-apiserver-kubelet-client", client=True)
    as_mallory = ssl.create_default_context(cafile=str(ca.cert_path))
    as_mallory.load_cert_chain(str(mallory.cert), str(mallory.key))
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await status_with(as_mallory)
    # The API server's own identity is what gets in.
    assert (pki_dir / "apiserver-kubelet-client.crt").exists()
    apiserver = ssl.create_default_context(cafile=str(ca.cert_path))
    apiserver.load_cert_chain(str(pki_dir / "apiserver-kubelet-client.crt"),
                              str(pki_dir / "apiserver-kubelet-client.key"))
    assert await status_with(apiserver) == 404  # authorized; no such container


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_logs(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "kweb")
    kubelet.write("kweb", "app", "alpha", "beta", "gamma")
    rc, out = await kubectl(api, "logs", "kweb")
    assert (rc, out) == (0, "alpha\nbeta\ngamma\n")
    rc, out = await kubectl(api, "logs", "pod/kweb", "--tail=1")
    assert (rc, out) == (0, "gamma\n")
    follower = await start_kubectl(api, "logs", "-f", "kweb", "--tail=1")
    try:
        await follower.wait_for_line("gamma", 10)
        kubelet.write("kweb", "app", "delta")
        await follower.wait_for_line("delta", 10)
    finally:
        await follower.kill()
    await make_pod(api, kubelet, tmp_path, "kmulti", ("main", "sidecar"))
    kubelet.write("kmulti", "sidecar", "from the sidecar")
    rc, out = await kubectl(api, "logs", "kmulti", "-c", "sidecar")
    assert (rc, out) == (0, "from the sidecar\n")


async def ws_exec(api, pod: str, *command: str, stdin: bytes | None = None,
                  protocol: str = "v5.channel.k8s.io") -> tuple[str, bytes, bytes, dict]:
    """Run an exec over the API server's WebSocket: (protocol, stdout, stderr, status)."""
    query = "&".join(f"command={c}" for c in command) + "&stdout=true&stderr=true"
    if stdin is not None:
        query += "&stdin=true"
    url = f"{api.base.replace('https://', 'wss://')}/api/v1/namespaces/default/pods/{pod}/exec?{query}"
    out, err, status = bytearray(), bytearray(), {}
    async with asyncio.timeout(10), api.session.ws_connect(url, protocols=[protocol]) as ws:
        if stdin is not None:
            await ws.send_bytes(b"\x00" + stdin)
            await ws.send_bytes(b"\xff\x00")  # v5: stdin is done
        async for msg in ws:
            channel, data = msg.data[0], msg.data[1:]
            if channel == 1:
                out += data
            elif channel == 2:
                err += data
            elif channel == 3:
                status = json.loads(data)
        return ws.protocol or "", bytes(out), bytes(err), status


async def test_exec_over_websocket(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "shell")
    proto, out, err, status = await ws_exec(api, "shell", "sh", "-c", "echo%20out;echo%20err%3E%262")
    assert (proto, out, err, status) == ("v5.channel.k8s.io", b"out\n", b"err\n", {"metadata": {}, "status": "Success"})
    _, _, _, status = await ws_exec(api, "shell", "sh", "-c", "exit%203", protocol="v4.channel.k8s.io")
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    _, out, _, status = await ws_exec(api, "shell", "cat", stdin=b"piped in\n")
    assert (out, status["status"]) == (b"piped in\n", "Success")
    # A plain GET (no upgrade) and a missing command are refused before any kubelet is called.
    status_code, body = await api.call("GET", "/api/v1/namespaces/default/pods/shell/exec?command=ls")
    assert status_code == 400 and "Upgrade request required" in body["message"]
    status_code, body = await api.call("GET", "/api/v1/namespaces/default/pods/shell/exec")
    assert (status_code, body["message"]) == (400, "you must specify at least 1 command")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_exec(api, kubelet, tmp_path):
    await make_pod(api, kubelet, tmp_path, "kshell")
    rc, out = await kubectl(api, "exec", "kshell", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert rc == 3, out
    assert "hello\n" in out and "oops\n" in out and "command terminated with exit code 3" in out
    proc = await asyncio.create_subprocess_exec(
        "kubectl", f"--kubeconfig={api.kubeconfig}", "exec", "-i", "kshell", "--", "tr", "a-z", "A-Z",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(api.kubeconfig)})
    async with asyncio.timeout(20):
        out_b, _ = await proc.communicate(b"shout\n")
    assert (proc.returncode, out_b) == (0, b"SHOUT\n")
