"""The runc ContainerRuntime with real containers: pod sandboxes, CRI logs, exit reasons,
exec, graceful and forced stops, OOM kills, mounts, restarts of the runtime, cleanup.

Needs root, runc, busybox-static and a writable cgroup fs; skipped cleanly otherwise.
The image is built from the host's static busybox. Pods use the host network (no CNI
yet) but only as readers: nothing here listens or touches interfaces.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pinnace.images.service import ImageService
from pinnace.kubelet import crilog
from pinnace.kubelet.mounts import mounts_under, unmount
from pinnace.kubelet.runtime import runc_runtime
from pinnace.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerStatus,
    Mount,
    RuntimeError_,
    Sandbox,
    SandboxConfig,
)
from pinnace.kubelet.runtime.runc import cgroup_dirs, cgroup_version
from pinnace.kubelet.runtime.runc_runtime import RuncRuntime
from tests.support.images import IMAGE, IMAGE_APP_USER, busybox_archive
from tests.support.runc import memory_controller, runc_skip_reason

HOST_IP = "10.11.12.13"  # only written into /etc/hosts: nothing is sent to it


_SKIP = runc_skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageService:
    base = tmp_path_factory.mktemp("images")
    svc = ImageService(base / "data")
    asyncio.run(svc.import_archive(busybox_archive(base / "busybox.tar")))
    return svc


class Node:
    """A RuncRuntime over a test's tmp dir, with helpers and a check that nothing is left."""

    def __init__(self, base: Path, images: ImageService):
        self.base, self.images = base, images
        tag = uuid.uuid4().hex[:8]
        # v1: relative, so containers nest under the test's own cgroups (and limits); v2 forbids
        # children of a cgroup holding processes, so a top-level one there (as test_runc does).
        self.cgroup_parent = ("/" if cgroup_version() == 2 else "") + f"pinnace-test-{tag}"
        self.rt = self.runtime()
        self.sandboxes: list[Sandbox] = []

    def runtime(self) -> RuncRuntime:
        return RuncRuntime(self.base / "state", self.images, host_ip=HOST_IP, cgroup_parent=self.cgroup_parent)

    async def sandbox(self, hostname: str = "web-0", **kw: Any) -> Sandbox:
        uid = str(uuid.uuid4())
        sb = await self.rt.run_pod_sandbox(SandboxConfig(pod_uid=uid, name=hostname, namespace="default",
                                                         hostname=hostname, labels={LABEL_POD_UID: uid}, **kw))
        self.sandboxes.append(sb)
        return sb

    def log_path(self, name: str) -> Path:
        return self.base / "logs" / name / "0.log"

    async def create(self, sb: Sandbox, name: str, args: list[str], **kw: Any) -> str:
        image = kw.pop("image", IMAGE)
        config = ContainerConfig(name=name, image=image, image_ref=image, args=args,
                                 env={"PATH": "/bin", **kw.pop("env", {})}, log_path=self.log_path(name),
                                 labels={LABEL_POD_UID: sb.config.pod_uid, LABEL_CONTAINER_NAME: name}, **kw)
        return await self.rt.create_container(sb, config)

    async def run(self, sb: Sandbox, name: str, args: list[str], **kw: Any) -> str:
        cid = await self.create(sb, name, args, **kw)
        await self.rt.start_container(cid)
        return cid

    async def wait(self, cid: str, timeout: float = 20, rt: RuncRuntime | None = None) -> ContainerStatus:
        deadline = time.monotonic() + timeout
        while (st := await (rt or self.rt).container_status(cid)).state != "exited":
            assert time.monotonic() < deadline, f"container {cid[:12]} did not exit: {st}"
            await asyncio.sleep(0.05)
        return st

    def entries(self, name: str) -> list[tuple[str, bool, str]]:
        return [(e.stream, e.partial, e.content.decode()) for e in crilog.read_entries(self.log_path(name))]

    def stdout(self, name: str) -> str:
        return "".join(c for s, _, c in self.entries(name) if s == "stdout")

    async def wait_for_log(self, name: str, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout(name):
            assert time.monotonic() < deadline, f"{text!r} never appeared in {name}'s log"
            await asyncio.sleep(0.05)

    async def cleanup(self) -> None:
        for sb in reversed(self.sandboxes):
            await self.rt.remove_pod_sandbox(sb)
        for st in await self.rt.list_containers():
            await self.rt.remove_container(st.id)

    async def assert_nothing_left(self) -> None:
        assert await self.rt.runc.list() == [], "runc containers left behind"
        assert not mounts_under(self.base), "mounts left behind"
        state = self.base / "state"
        assert not any((state / "containers").iterdir()), "container state left behind"
        assert not any((state / "sandboxes").iterdir()), "sandbox state left behind"
        assert not any(self.rt.runc.shims.iterdir()), "shim state left behind"
        for d in cgroup_dirs(self.cgroup_parent):
            if d.exists():
                children = [c for c in d.iterdir() if c.is_dir()]
                assert not children, f"cgroups left behind: {children}"
                d.rmdir()


@pytest.fixture
async def node(tmp_path: Path, images: ImageService) -> AsyncIterator[Node]:
    n = Node(tmp_path, images)
    try:
        yield n
    finally:
        await n.cleanup()
    await n.assert_nothing_left()


async def test_logs_exit_codes_hostname_and_etc_files(node: Node) -> None:
    sb = await node.sandbox("web-0")
    assert (sb.ip, sb.netns_path) == (HOST_IP, None)
    cid = await node.run(sb, "echo", ["sh", "-c", "echo hello $GREETING; echo oops >&2; hostname; cat /etc/hostname; "
                                                  "grep web-0 /etc/hosts; pwd; echo $FROM_IMAGE; printf partial"],
                         env={"GREETING": "$(not-expanded-twice)", "FROM_IMAGE": "yes"}, working_dir="/tmp")
    st = await node.wait(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 0, "Completed")
    assert st.created_at and st.started_at and st.finished_at and st.created_at <= st.started_at <= st.finished_at
    assert st.labels[LABEL_CONTAINER_NAME] == "echo"
    entries = node.entries("echo")
    assert [e for e in entries if e[0] == "stdout"] == [
        ("stdout", False, "hello $(not-expanded-twice)\n"), ("stdout", False, "web-0\n"), ("stdout", False, "web-0\n"),
        ("stdout", False, f"{HOST_IP}\tweb-0\n"), ("stdout", False, "/tmp\n"), ("stdout", False, "yes\n"),
        ("stdout", True, "partial")]
    assert [e for e in entries if e[0] == "stderr"] == [("stderr", False, "oops\n")]
    lines = node.log_path("echo").read_text().splitlines()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] .*", line) for line in lines)
    assert any(line.endswith(" stdout F hello $(not-expanded-twice)") for line in lines)
    assert lines[-1].endswith(" stdout P partial")

    three = await node.run(sb, "three", ["sh", "-c", "exit 3"])
    st = await node.wait(three)
    assert (st.exit_code, st.reason) == (3, "Error")


async def test_containers_share_the_sandbox_ipc_and_uts(node: Node) -> None:
    sb = await node.sandbox("shared")
    assert sb.ipc_path and sb.uts_path
    script = "for n in ipc uts net pid; do readlink /proc/self/ns/$n; done; hostname; cat /dev/shm/note"
    first = await node.run(sb, "first", ["sh", "-c", "echo from-first > /dev/shm/note; " + script])
    assert (await node.wait(first)).exit_code == 0
    second = await node.run(sb, "second", ["sh", "-c", script])
    assert (await node.wait(first)).exit_code == 0
    assert (await node.wait(second)).exit_code == 0
    a, b = node.stdout("first").splitlines(), node.stdout("second").splitlines()
    pinned = [f"{kind}:[{os.stat(path).st_ino}]" for kind, path in (("ipc", sb.ipc_path), ("uts", sb.uts_path))]
    assert a[:2] == b[:2] == pinned
    assert a[0] != os.readlink("/proc/self/ns/ipc") and a[1] != os.readlink("/proc/self/ns/uts")
    assert a[2] == b[2] == os.readlink("/proc/self/ns/net")  # the host's network, until CNI
    assert os.readlink("/proc/self/ns/pid") not in (a[3], b[3])  # their own PID namespaces
    assert a[4] == b[4] == "shared"
    assert a[5] == b[5] == "from-first"  # one /dev/shm for the pod
    # The namespaces are pinned files, not held by a pause container: runc runs only the two.
    assert sorted(c["id"] for c in await node.rt.runc.list()) == sorted([first, second])


async def test_a_sandbox_is_ready_while_pinned_and_not_once_stopped(node: Node) -> None:
    """CRI's sandbox states: READY from creation, NOTREADY once stopped (its containers
    killed) or once its namespaces are gone; a new runtime over the state sees the same."""
    kept, stopped, lost = [await node.sandbox(name) for name in ("kept", "stopped", "lost")]
    cid = await node.run(stopped, "sleeper", ["sleep", "3600"])
    await node.rt.stop_pod_sandbox(stopped)
    assert (await node.rt.container_status(cid)).state == "exited"
    unmount(lost.uts_path)  # as after a reboot
    again = RuncRuntime(node.rt.state_dir, node.rt.images, cgroup_parent=node.rt.cgroup_parent)
    ready = {s.id: s.ready for s in await again.list_pod_sandboxes()}
    assert ready == {kept.id: True, stopped.id: False, lost.id: False}


async def test_host_network_sandbox_uses_the_host_names(node: Node) -> None:
    sb = await node.sandbox("hostnet", host_network=True)
    assert sb.uts_path is None
    cid = await node.run(sb, "names", ["sh", "-c", "hostname; readlink /proc/self/ns/uts"])
    assert (await node.wait(cid)).exit_code == 0
    assert node.stdout("names").splitlines() == [socket.gethostname(), os.readlink("/proc/self/ns/uts")]


async def test_exec_sync(node: Node) -> None:
    sb = await node.sandbox("exec")
    cid = await node.run(sb, "sleeper", ["sleep", "3600"], env={"GREETING": "hi"})
    res = await node.rt.exec_sync(cid, ["sh", "-c", "echo out $GREETING; echo err >&2; hostname; exit 4"], 10)
    assert (res.exit_code, res.stdout, res.stderr) == (4, b"out hi\nexec\n", b"err\n")
    assert (await node.rt.exec_sync(cid, ["true"], 10)).exit_code == 0
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await node.rt.exec_sync(cid, ["sleep", "30"], 0.5)
    assert time.monotonic() - t0 < 5
    ps = await node.rt.exec_sync(cid, ["ps"], 10)
    assert b"sleep 30" not in ps.stdout, "the timed-out process is still running"
    await node.rt.stop_container(cid, 0)
    assert (await node.rt.container_status(cid)).exit_code == 137
    with pytest.raises(RuntimeError_, match="not running"):
        await node.rt.exec_sync(cid, ["true"], 10)


async def test_stop_container_graceful_and_forced(node: Node) -> None:
    sb = await node.sandbox("stop")
    handles = await node.run(sb, "handles", ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; "
                                                         "while :; do sleep 0.1; done"])
    ignores = await node.run(sb, "ignores", ["sh", "-c", "echo ready; while :; do sleep 0.1; done"])
    await node.wait_for_log("handles", "ready")
    await node.wait_for_log("ignores", "ready")

    async def timed_stop(cid: str, timeout: float) -> float:
        t0 = time.monotonic()
        await node.rt.stop_container(cid, timeout)
        return time.monotonic() - t0

    graceful, forced = await asyncio.gather(timed_stop(handles, 10), timed_stop(ignores, 1))
    st = await node.rt.container_status(handles)
    assert (st.state, st.exit_code, st.reason) == ("exited", 0, "Completed")
    assert graceful < 5 and node.stdout("handles") == "ready\nbye\n"
    st = await node.rt.container_status(ignores)
    assert (st.state, st.exit_code, st.reason) == ("exited", 137, "Error")  # PID 1 ignores SIGTERM: SIGKILL
    assert 1 <= forced < 6
    await node.rt.stop_container(ignores, 1)  # stopping an exited container is a no-op


@pytest.mark.skipif(not memory_controller(), reason="the cgroup memory controller is not available here")
async def test_oom_killed(node: Node) -> None:
    sb = await node.sandbox("oom")
    # busybox tail looks for the last newline of /dev/zero forever, buffering it all.
    cid = await node.run(sb, "hog", ["tail", "/dev/zero"], resources={"limits": {"memory": "16Mi"}})
    st = await node.wait(cid, timeout=30)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")


async def test_mounts_overlay_rootfs_and_image_user(node: Node) -> None:
    data = node.base / "volume"
    data.mkdir()
    (data / "greeting").write_text("hello from the host\n")
    sb = await node.sandbox("mounts")
    cid = await node.run(sb, "mounts", ["sh", "-c", "cat /data/greeting; (echo x > /data/x) 2>/dev/null && echo rw "
                                                    "|| echo ro; echo new > /bin/created && cat /bin/created; id -u"],
                         mounts=[Mount(str(data), "/data", read_only=True)])
    assert (await node.wait(cid)).exit_code == 0
    assert node.stdout("mounts") == "hello from the host\nro\nnew\n0\n"
    assert not (data / "x").exists()
    record = json.loads((node.base / "state/containers" / cid / "container.json").read_text())
    assert record["rootfs"] == "overlay"
    caches = list((node.base / "state/rootfs-cache").iterdir())
    assert len(caches) == 1 and not (caches[0] / "bin/created").exists(), "a container wrote into the image cache"

    user = await node.run(sb, "user", ["sh", "-c", "id -u; id -g; pwd"], image=IMAGE_APP_USER)
    assert (await node.wait(user)).exit_code == 0
    assert node.stdout("user") == "1234\n1234\n/work\n"

    ro = await node.run(sb, "ro", ["sh", "-c", "touch /oops 2>/dev/null && echo rw || echo ro"],
                        security_context={"readOnlyRootFilesystem": True})
    assert (await node.wait(ro)).exit_code == 0
    assert node.stdout("ro") == "ro\n"


async def test_state_and_logs_survive_a_new_runtime(node: Node) -> None:
    sb = await node.sandbox("restart")
    cid = await node.run(sb, "later", ["sh", "-c", "echo before; sleep 1; echo after; exit 7"])
    await node.wait_for_log("later", "before")
    fresh = node.runtime()  # a restarted kubelet: no handles, only the state dir
    [st] = await fresh.list_containers()
    assert (st.id, st.state, st.labels[LABEL_CONTAINER_NAME]) == (cid, "running", "later")
    st = await node.wait(cid, rt=fresh)
    assert (st.exit_code, st.reason) == (7, "Error")
    assert node.stdout("later") == "before\nafter\n"
    assert [s.exit_code for s in await fresh.list_containers()] == [7]
    await fresh.remove_container(cid)
    assert await fresh.list_containers() == []


async def test_remove_leaves_nothing(node: Node) -> None:
    sb = await node.sandbox("gone")
    running = await node.run(sb, "running", ["sleep", "3600"])
    created = await node.create(sb, "created", ["true"])
    assert (await node.rt.container_status(created)).state == "created"
    await node.rt.stop_pod_sandbox(sb)  # forcefully: no grace
    assert (await node.rt.container_status(running)).exit_code == 137
    assert (await node.rt.container_status(created)).state == "exited"
    await node.rt.remove_pod_sandbox(sb)
    node.sandboxes.remove(sb)
    assert await node.rt.list_containers() == []
    assert await node.rt.runc.list() == []
    assert not mounts_under(node.base)
    assert not [d for d in cgroup_dirs(f"{node.cgroup_parent}/pod{sb.config.pod_uid}") if d.exists()]
    with pytest.raises(RuntimeError_, match="not found"):
        await node.rt.container_status(running)
    await node.rt.remove_container(running)  # removing twice is fine


async def test_create_errors_clean_up(node: Node) -> None:
    sb = await node.sandbox("errors")
    with pytest.raises(RuntimeError_, match="not present"):
        await node.create(sb, "noimage", ["true"], image="pinnace.test/nope:1")
    with pytest.raises(RuntimeError_, match="/no/such/binary"):
        await node.create(sb, "nobinary", ["/no/such/binary"])
    assert await node.rt.list_containers() == []
    assert mounts_under(node.base / "state/containers") == []


async def test_full_unpack_when_overlay_cannot_be_mounted(node: Node, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def no_overlay(*args: Any) -> None:
        raise OSError(22, "overlay not supported here")

    monkeypatch.setattr(runc_runtime, "_mount_overlay", no_overlay)
    sb = await node.sandbox("copy")
    cid = await node.run(sb, "copy", ["sh", "-c", "echo new > /bin/created && cat /bin/created"])
    assert (await node.wait(cid)).exit_code == 0
    assert node.stdout("copy") == "new\n"
    record = json.loads((node.base / "state/containers" / cid / "container.json").read_text())
    assert record["rootfs"] == "copy"
    assert "overlay mount failed" in caplog.text



async def test_exit_events_and_log_reopen(node: Node) -> None:
    """Pod lifecycle events: ``on_container_exit`` hears of an exit as soon as the shim has
    recorded it; ``reopen_container_log`` (rotation) makes the shim write a new log file."""
    exited: list[str] = []
    node.rt.on_container_exit = lambda cid: exited.append(cid) if node.rt.runc.exit_status(cid) else None
    sb = await node.sandbox()
    cid = await node.run(sb, "talker", ["sh", "-c", "echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                                                    "echo after; sleep 3600"])
    await node.wait_for_log("talker", "before")
    log = node.log_path("talker")
    rotated = log.with_name("0.log.20260101-000000")
    log.rename(rotated)
    await node.rt.reopen_container_log(cid)
    await node.rt.exec_sync(cid, ["touch", "/tmp/go"], timeout=10)
    await node.wait_for_log("talker", "after")
    assert node.stdout("talker") == "after\n"
    assert [e.content for e in crilog.read_entries(rotated)] == [b"before\n"]
    await node.rt.stop_container(cid, 0)
    deadline = time.monotonic() + 10
    while cid not in exited:
        assert time.monotonic() < deadline, "no exit event"
        await asyncio.sleep(0.02)
    with pytest.raises(RuntimeError_):
        await node.rt.reopen_container_log(cid)  # exited: its shim is gone
