"""``kubectl exec -t`` on a real terminal, terminal resize, and ``pods/attach``, end to end:
the API server proxies to a node agent's kubelet server, which runs the command on a
new pty (process runtime: ``os.openpty`` and the slave as controlling terminal; runc:
``runc exec --tty --console-socket``) or follows the container's output and writes its
stdin FIFO.  Driven over the WebSocket protocols directly (``v5.channel.k8s.io`` and
``v4.channel.k8s.io``), and with the real kubectl (``kubectl attach``; ``kubectl exec
-it`` under util-linux ``script``, which gives it a terminal).

The runc tests need root, runc, busybox-static and a writable cgroup fs (skipped
otherwise); their pods use the host network, and nothing listens.

Conformance: "[sig-node] Pods should support remote command execution over websockets
[NodeConformance] [Conformance]" (exec over a WebSocket with channel-prefixed frames).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from pinnace.images.service import ImageService
from pinnace.kubelet.agent import AgentConfig, RunningAgent, start_agent
from pinnace.pki import CertificateAuthority, kubelet_serving_cert
from tests.support.cluster import start_kubectl
from tests.support.images import IMAGE, busybox_archive
from tests.support.runc import remove_runc_containers, runc_skip_reason
from tests.support.waiting import eventually, get_or_none

pytestmark = pytest.mark.timeout(180)

NODE = "tty-node"
PODS = "/api/v1/namespaces/default/pods"
_RUNC_SKIP = runc_skip_reason()
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
needs_script = pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script not installed")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
ECHO_LINES = "echo started; while read l; do echo got:$l; echo err:$l >&2; done; echo eof"


# -- the cluster: the in-process API server and one node agent -------------------------------------


@pytest.fixture(params=["process", pytest.param("runc", marks=pytest.mark.skipif(
    _RUNC_SKIP is not None, reason=str(_RUNC_SKIP)))])
async def node(request, api, pki_dir: Path, tmp_path: Path) -> AsyncIterator[Node]:
    runtime = request.param
    ca = CertificateAuthority.load_or_create(pki_dir)
    serving = kubelet_serving_cert(ca, tmp_path, NODE, ("127.0.0.1",))
    data_dir = tmp_path / "data"
    if runtime == "runc":
        images = ImageService(data_dir)
        await images.import_archive(busybox_archive(tmp_path / "busybox.tar"))
        await images.close()
    agent = await start_agent(AgentConfig(
        kubeconfig=api.kubeconfig, data_dir=data_dir, node_name=NODE, serving_cert=serving.cert,
        serving_key=serving.key, client_ca=ca.cert_path, runtime=runtime, node_ip="127.0.0.1", port=0,
        backoff_base=1.0))
    n = Node(api, agent, runtime)
    try:
        yield n
    finally:
        try:
            for name in n.pods:
                await api.call("DELETE", f"{PODS}/{name}?gracePeriodSeconds=0")
            await eventually(lambda: api.call("GET", PODS), lambda r: not r[1]["items"], timeout=60,
                             what="pods deleted")
        finally:
            await agent.stop()
            if runtime == "runc":
                remove_runc_containers(tmp_path)


class Node:
    def __init__(self, api: Any, agent: RunningAgent, runtime: str):
        self.api, self.agent, self.runtime = api, agent, runtime
        self.pods: list[str] = []

    async def pod(self, name: str, script: str, **container: Any) -> dict:
        """A running pod with one container ``main`` running ``sh -c script``."""
        spec: dict[str, Any] = {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                                "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                                "command": ["sh", "-c", script], **container}]}
        if self.runtime == "runc":
            spec["hostNetwork"] = True  # no pod network (CNI) in these tests: they touch no links
        status, body = await self.api.call("POST", PODS, {"apiVersion": "v1", "kind": "Pod",
                                                          "metadata": {"name": name}, "spec": spec})
        assert status == 201, body
        self.pods.append(name)
        return await eventually(lambda: get_or_none(self.api, f"{PODS}/{name}"),
                                lambda p: "running" in main_status(p).get("state", {}), timeout=90,
                                what=f"{name} running")

    async def log(self, name: str) -> str:
        async with self.api.session.get(f"{self.api.base}{PODS}/{name}/log") as resp:
            return await resp.text()


def main_status(p: dict | None) -> dict:
    return (((p or {}).get("status") or {}).get("containerStatuses") or [{}])[0]


# -- a remote-command session over the API server's WebSocket ----------------------------------------


class Session:
    """An exec or attach session: what came on each channel, and the final Status."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.out, self.err = bytearray(), bytearray()
        self.status: dict | None = None
        self.first: int | None = None  # the channel of the first (readiness) frame
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if self.first is None:
                self.first = channel
            if channel == STDOUT:
                self.out += data
            elif channel == STDERR:
                self.err += data
            elif channel == ERROR:
                self.status = json.loads(data)

    async def send(self, channel: int, data: bytes) -> None:
        await self.ws.send_bytes(bytes([channel]) + data)

    async def resize(self, width: int, height: int) -> None:
        await self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    async def wait_for(self, ok: Callable[[Session], bool], what: str, timeout: float = 20) -> None:
        await eventually(lambda: ok(self) or self._task.done(), timeout=timeout, what=what)
        assert ok(self), f"{what}: the session ended first; out={bytes(self.out)!r} err={bytes(self.err)!r} " \
                         f"status={self.status}"

    async def finish(self, timeout: float = 20) -> dict:
        """Wait for the server to end the session; its Status."""
        async with asyncio.timeout(timeout):
            await self._task
        assert self.status is not None, f"no status; out={bytes(self.out)!r}"
        return self.status

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._task, return_exceptions=True)


async def open_session(api: Any, pod: str, what: str, params: list[tuple[str, str]],
                       protocol: str = "v5.channel.k8s.io") -> Session:
    url = f"{api.base.replace('https://', 'wss://')}{PODS}/{pod}/{what}?{urlencode(params)}"
    ws = await api.session.ws_connect(url, protocols=[protocol], max_msg_size=0)
    assert ws.protocol == protocol
    return Session(ws)


def exec_params(*command: str, stdin: bool = True, tty: bool = True) -> list[tuple[str, str]]:
    params = [("command", c) for c in command] + [("stdout", "true"), ("tty", str(tty).lower())]
    if stdin:
        params.append(("stdin", "true"))
    if not tty:
        params.append(("stderr", "true"))
    return params


def exit_code(status: dict) -> int:
    if status.get("status") == "Success":
        return 0
    assert status.get("reason") == "NonZeroExitCode", status
    return int(status["details"]["causes"][0]["message"])


# -- exec with a terminal -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
async def test_exec_tty_resize_and_exit_code(node: Node, protocol: str) -> None:
    """``tty`` names the new terminal, ``stty size`` sees the size the client asked for, the
    terminal is the command's controlling one (``/dev/tty``), and the exit code arrives on
    channel 3."""
    await node.pod("shell", "sleep 3600")
    script = "tty; read go; stty size; echo via-dev-tty > /dev/tty; exit 3"
    s = await open_session(node.api, "shell", "exec", exec_params("sh", "-c", script), protocol)
    try:
        await s.wait_for(lambda s: b"/dev/pts/" in s.out, "the tty's name")
        await s.resize(100, 40)
        await s.send(STDIN, b"go\n")
        status = await s.finish()
    finally:
        await s.close()
    out = bytes(s.out)
    assert re.search(rb"^/dev/pts/\d+\r\n", out), out  # a terminal: "\n" goes out as "\r\n"
    assert b"go\r\n" in out  # the terminal echoes what is typed
    assert b"40 100\r\n" in out  # rows, columns
    assert b"via-dev-tty\r\n" in out
    assert s.err == b"" and s.first == STDOUT
    assert exit_code(status) == 3


async def test_exec_tty_interrupt_reaches_the_foreground_command(node: Node) -> None:
    """^C typed on the terminal interrupts the command (it is the terminal's foreground
    process group): killed by SIGINT, exit code 130."""
    await node.pod("shell", "sleep 3600")
    s = await open_session(node.api, "shell", "exec", exec_params("sh", "-c", "echo ready; exec sleep 60"))
    try:
        await s.wait_for(lambda s: b"ready" in s.out, "ready")
        await asyncio.sleep(0.2)  # sh has exec'd sleep
        await s.send(STDIN, b"\x03")
        status = await s.finish()
    finally:
        await s.close()
    assert exit_code(status) == 130


async def test_exec_session_without_stdin_and_client_leaving(node: Node) -> None:
    """No stdin: the output alone; a client that leaves mid-command gets the command killed."""
    await node.pod("shell", "sleep 3600")
    s = await open_session(node.api, "shell", "exec", exec_params("sh", "-c", "tty; exit 0", stdin=False))
    try:
        status = await s.finish()
    finally:
        await s.close()
    assert exit_code(status) == 0 and b"/dev/pts/" in s.out
    for tty in (True, False):  # without a terminal too: the command, not only runc exec, is killed
        seconds = 3000 + os.getpid() % 997 + tty  # a command line of its own, to find it in /proc
        s = await open_session(node.api, "shell", "exec",
                               exec_params("sh", "-c", f"echo up; exec sleep {seconds}", stdin=False, tty=tty))
        await s.wait_for(lambda s: b"up" in s.out, "started")
        cmdline = f"sleep\0{seconds}\0"
        assert await eventually(lambda cmdline=cmdline: _processes(cmdline), what="the command in /proc")
        await s.close()
        await eventually(lambda cmdline=cmdline: _processes(cmdline), lambda pids: not pids, timeout=15,
                         what=f"the abandoned command killed (tty={tty})")


def _processes(cmdline: str) -> list[int]:
    """Pids whose command line is ``cmdline`` (a runc container's too: /proc shows every pid
    namespace's processes)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes() == cmdline.encode():
                    found.append(int(d.name))
            except OSError:
                continue
    return found


async def test_exec_tty_missing_command_is_reported(node: Node) -> None:
    await node.pod("shell", "sleep 3600")
    s = await open_session(node.api, "shell", "exec", exec_params("no-such-command-here"))
    try:
        status = await s.finish()
    finally:
        await s.close()
    assert status["status"] == "Failure"
    assert "no-such-command-here" in status["message"], status


# -- attach ------------------------------------------------------------------------------------------------


async def test_attach_writes_stdin_and_streams_new_output(node: Node) -> None:
    """Channel 0 goes to the container's stdin; its output from now on comes back on
    channels 1 and 2 (what it printed before the session does not).  stdin stays open
    across sessions (no stdinOnce): a second session is read too."""
    await node.pod("echoer", ECHO_LINES, stdin=True)
    await eventually(lambda: node.log("echoer"), lambda text: "started" in text, what="started")
    s = await open_session(node.api, "echoer", "attach", [("stdin", "true"), ("stdout", "true"),
                                                          ("stderr", "true")])
    try:
        await s.send(STDIN, b"hello\n")
        await s.wait_for(lambda s: b"got:hello\n" in s.out and b"err:hello\n" in s.err, "the echo")
        await s.send(CLOSE, bytes([STDIN]))  # this session's input is done; the container's stdin is not
    finally:
        await s.close()
    assert b"started" not in s.out
    s = await open_session(node.api, "echoer", "attach", [("stdin", "true"), ("stdout", "true")],
                           protocol="v4.channel.k8s.io")
    try:
        await s.send(STDIN, b"again\n")
        await s.wait_for(lambda s: b"got:again\n" in s.out, "the second session's echo")
    finally:
        await s.close()
    assert s.err == b""  # stderr was not asked for
    assert "running" in main_status(await get_or_none(node.api, f"{PODS}/echoer"))["state"]


async def test_attach_session_ends_with_the_container(node: Node) -> None:
    await node.pod("brief", "read l; echo bye:$l; sleep 0.5; exit 0", stdin=True)
    s = await open_session(node.api, "brief", "attach", [("stdin", "true"), ("stdout", "true")])
    try:
        await s.send(STDIN, b"now\n")
        status = await s.finish(timeout=30)
    finally:
        await s.close()
    assert status == {"metadata": {}, "status": "Success"}
    assert b"bye:now\n" in s.out


async def test_attach_stdin_once_closes_stdin_after_the_session(node: Node) -> None:
    """stdinOnce: the container reads EOF once the first attach session's stdin ends (runc:
    the shim copies the FIFO into the container's stdin pipe and closes it)."""
    await node.pod("once", ECHO_LINES, stdin=True, stdinOnce=True)
    s = await open_session(node.api, "once", "attach", [("stdin", "true"), ("stdout", "true")])
    try:
        await s.send(STDIN, b"one\n")
        await s.wait_for(lambda s: b"got:one\n" in s.out, "the echo")
        await s.send(CLOSE, bytes([STDIN]))
        await s.wait_for(lambda s: b"eof\n" in s.out, "EOF seen by the container")
        status = await s.finish()
    finally:
        await s.close()
    assert status["status"] == "Success"
    done = await eventually(lambda: get_or_none(node.api, f"{PODS}/once"),
                            lambda p: "terminated" in main_status(p).get("state", {}), what="finished")
    assert main_status(done)["state"]["terminated"]["exitCode"] == 0


async def test_attach_to_a_terminal_container(node: Node) -> None:
    """``tty: true``: the container runs on a terminal (its controlling one, ``TERM`` set);
    attach types into it, sees its echo and output on channel 1 (stderr too), and resize
    messages reach it (``stty size``).  stdin stays open across sessions (no stdinOnce)."""
    script = "tty; echo term=$TERM; while read l; do echo got:$l; echo size=$(stty size) >&2; done"
    await node.pod("terminal", script, tty=True, stdin=True)
    text = await eventually(lambda: node.log("terminal"), lambda t: "term=" in t, what="started")
    assert re.search(r"^/dev/pts/\d+\r$", text, re.M) and "term=xterm\r\n" in text, text
    for word in ("hi", "again"):
        s = await open_session(node.api, "terminal", "attach", [("stdin", "true"), ("stdout", "true"),
                                                                ("tty", "true")])
        try:
            await s.resize(101, 33)
            await asyncio.sleep(0.2)  # (resize and input take different ways to the terminal)
            await s.send(STDIN, f"{word}\n".encode())
            await s.wait_for(lambda s, w=word: f"got:{w}\r\n".encode() in s.out and b"size=33 101" in s.out,
                             f"the echo of {word}")
        finally:
            await s.close()
        assert s.err == b""
        assert f"{word}\r\n".encode() in s.out  # the terminal echoes what is typed
    assert "running" in main_status(await get_or_none(node.api, f"{PODS}/terminal"))["state"]


async def test_attach_refusals(node: Node) -> None:
    """A completed pod, a container not in the pod and a plain GET are refused by the API
    server."""
    await node.pod("terminal", "sleep 3600")
    code, body = await node.api.call("GET", f"{PODS}/terminal/attach?stdout=true")
    assert code == 400 and "Upgrade request required" in body["message"]
    code, body = await node.api.call("GET", f"{PODS}/terminal/attach?stdout=true&container=nope")
    assert (code, body["message"]) == (400, "container nope is not valid for pod terminal")
    await node.pod("quick", "sleep 0.2")
    await eventually(lambda: get_or_none(node.api, f"{PODS}/quick"),
                     lambda p: (p or {}).get("status", {}).get("phase") == "Succeeded", timeout=30, what="done")
    code, body = await node.api.call("GET", f"{PODS}/quick/attach?stdout=true")
    assert (code, body["message"]) == (400, "cannot attach a container in a completed pod; current phase is "
                                             "Succeeded")


async def test_discovery_lists_pods_attach(api) -> None:
    status, body = await api.call("GET", "/api/v1")
    [entry] = [r for r in body["resources"] if r["name"] == "pods/attach"]
    assert entry["verbs"] == ["create", "get"] and entry["kind"] == "PodAttachOptions"


# -- the real kubectl -----------------------------------------------------------------------------------


COUNTER = "i=0; while :; do echo count:$i; i=$((i+1)); sleep 0.2; done"


@needs_kubectl
async def test_kubectl_attach_sees_new_output(node: Node) -> None:
    await node.pod("counter", COUNTER)
    text = await eventually(lambda: node.log("counter"), lambda t: "count:3" in t, what="counting")
    seen = max(int(n) for n in re.findall(r"count:(\d+)", text))
    k = await start_kubectl(node.api, "attach", "counter")
    try:
        await eventually(lambda: re.findall(r"count:(\d+)", k.output), lambda ns: len(ns) >= 3, timeout=20,
                         what="kubectl attach output")
        counts = [int(n) for n in re.findall(r"count:(\d+)", k.output)]
    finally:
        await k.kill()
    assert counts[0] > seen and counts == sorted(counts), (seen, counts)  # only new output, in order


@needs_kubectl
async def test_kubectl_attach_stdin(node: Node) -> None:
    """``kubectl attach -i`` pipes its stdin into the container (stdinOnce: its EOF ends the
    container and so the session)."""
    await node.pod("reader", ECHO_LINES, stdin=True, stdinOnce=True)
    proc = await asyncio.create_subprocess_exec(
        "kubectl", f"--kubeconfig={node.api.kubeconfig}", "attach", "-i", "reader",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"piped\n")
        await proc.stdin.drain()
        out = b""
        async with asyncio.timeout(30):
            while b"got:piped" not in out:
                chunk = await proc.stdout.read(4096)
                assert chunk, out
                out += chunk
            proc.stdin.close()
            out += await proc.stdout.read()
            assert await proc.wait() == 0, out
            assert b"eof" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@needs_kubectl
@needs_script
async def test_kubectl_exec_it_under_script(node: Node, tmp_path: Path) -> None:
    """``kubectl exec -it`` with a terminal (util-linux ``script`` gives kubectl one): the
    command sees a pty of the terminal's size, and kubectl exits with its exit code."""
    await node.pod("shell", "sleep 3600")
    # kubectl sends the terminal's size once the command runs, as upstream's does: wait for it.
    remote = "tty; for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size); [ \"$s\" = \"45 123\" ] && break; " \
             "sleep 0.2; done; echo size=$s; exit 7"
    kubectl = (f"stty cols 123 rows 45; kubectl --kubeconfig={node.api.kubeconfig} exec -it shell -- "
               f"sh -c '{remote}'")
    proc = await asyncio.create_subprocess_exec(
        "script", "-qec", kubectl, "/dev/null", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "KUBECONFIG": str(node.api.kubeconfig)})
    try:
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert re.search(rb"/dev/pts/\d+", out), out
    assert b"size=45 123" in out, out
    assert proc.returncode == 7, out
