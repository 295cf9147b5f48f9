"""A restarted node agent adopts the containers that outlived it, as the kubelet does
from the runtime's sandbox and container lists and their labels: no second sandbox or
container, the same containerID and restartCount, the same log file; what belongs to
pods deleted while it was down is garbage-collected at its next start.

The runc tests need root, runc, busybox-static and a writable cgroup fs (skipped
otherwise): only runc containers outlive the agent (their shims do, as containerd's).
The process runtime's containers die with the agent; there a restart carries on with
the same sandbox and counts the restart.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pinnace.images.service import ImageService
from pinnace.kubelet import mounts
from pinnace.kubelet.agent import AgentConfig, RunningAgent, start_agent
from pinnace.kubelet.podworker import Adoptable, PodWorker, attempt_of
from pinnace.kubelet.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerStatus,
    Sandbox,
    SandboxConfig,
    State,
)
from pinnace.kubelet.runtime.process import ProcessRuntime
from pinnace.pki import CertificateAuthority, kubelet_serving_cert
from tests.support.images import IMAGE, busybox_archive
from tests.support.runc import remove_runc_containers, runc_skip_reason
from tests.support.waiting import eventually as _eventually
from tests.support.waiting import get_or_none

pytestmark = pytest.mark.timeout(180)

NODE = "adopt-node"
PODS = "/api/v1/namespaces/default/pods"
_RUNC_SKIP = runc_skip_reason()
needs_runc = pytest.mark.skipif(_RUNC_SKIP is not None, reason=str(_RUNC_SKIP))


@pytest.fixture
def agents(api, pki_dir: Path, tmp_path: Path) -> Callable[..., Any]:
    """``await start(runtime)``: a node agent over one data dir (the same for every start)."""
    ca = CertificateAuthority.load_or_create(pki_dir)  # the cluster's CA: the API server proxies logs
    serving = kubelet_serving_cert(ca, tmp_path, NODE, ("127.0.0.1",))
    data_dir = tmp_path / "data"

    async def start(runtime: str) -> RunningAgent:
        return await start_agent(AgentConfig(
            kubeconfig=api.kubeconfig, data_dir=data_dir, node_name=NODE, serving_cert=serving.cert,
            serving_key=serving.key, client_ca=ca.cert_path, runtime=runtime, node_ip="127.0.0.1", port=0,
            backoff_base=1.0))

    start.data_dir = data_dir  # type: ignore[attr-defined]
    return start


@pytest.fixture
async def runc_agents(agents, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    images = ImageService(agents.data_dir)
    await images.import_archive(busybox_archive(tmp_path / "busybox.tar"))
    await images.close()
    try:
        yield agents
    finally:
        remove_runc_containers(tmp_path)


def pod(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                     "command": command}]}}


async def create(api, obj: dict[str, Any]) -> dict[str, Any]:
    status, body = await api.call("POST", PODS, obj)
    assert status == 201, body
    return body


def main_status(p: dict[str, Any] | None) -> dict[str, Any]:
    return (((p or {}).get("status") or {}).get("containerStatuses") or [{}])[0]


async def running(api, name: str) -> dict[str, Any]:
    return await eventually(lambda: get_or_none(api, f"{PODS}/{name}"),
                            lambda p: "running" in main_status(p).get("state", {}), timeout=90,
                            what=f"{name} running")


async def pod_log(api, name: str) -> str:
    async with api.session.get(f"{api.base}{PODS}/{name}/log") as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text


async def delete(api, name: str, grace: int | None = None) -> None:
    query = "" if grace is None else f"?gracePeriodSeconds={grace}"
    status, body = await api.call("DELETE", f"{PODS}/{name}{query}")
    assert status == 200, body


async def eventually(fn: Callable[[], Any], ok: Callable[[Any], Any] = bool, timeout: float = 30,
                     **kw: Any) -> Any:
    """Generous waits: the machine may be busy with other tests."""
    return await _eventually(fn, ok, timeout, **kw)


def dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


LOOP = ["sh", "-c", "i=0; trap 'exit 0' TERM; while :; do echo line $i; i=$((i+1)); sleep 0.2; done"]


@needs_runc
async def test_restarted_agent_adopts_running_containers_and_collects_deleted_pods(api, runc_agents) -> None:
    agent = await runc_agents("runc")
    try:
        await create(api, pod("keeper", IMAGE, LOOP))
        await create(api, pod("goner", IMAGE, ["sleep", "3600"]))
        keeper = await running(api, "keeper")
        await running(api, "goner")
        cid = main_status(keeper)["containerID"]
        assert cid.startswith("runc://") and main_status(keeper)["restartCount"] == 0
        runtime_dir = agent.kubelet.runtime.state_dir
        log_file = agent.kubelet.log_path_for("default", "keeper", "main", previous=False)
        assert log_file is not None and log_file.name == "0.log"
        assert len(await agent.kubelet.runtime.runc.list()) == 2  # the two containers (no pause containers)
    finally:
        await agent.stop()  # runc containers outlive the agent (as with containerd's shims)

    # While the agent is down: "goner" is deleted for good (no kubelet confirms it).
    await delete(api, "goner", grace=0)
    assert await get_or_none(api, f"{PODS}/goner") is None
    size = log_file.stat().st_size
    lines = log_file.read_text().count("line ")
    assert lines > 0

    agent = await runc_agents("runc")
    try:
        worker = await eventually(lambda: agent.kubelet.workers.get(keeper["metadata"]["uid"]),
                                  lambda w: w is not None and w._written is not None, what="keeper's status written")
        rec = worker.containers[0]
        assert f"runc://{rec.current.id}" == cid and rec.restart_count == 0 and rec.running
        after = await get_or_none(api, f"{PODS}/keeper")
        assert main_status(after)["containerID"] == cid
        assert main_status(after)["restartCount"] == 0 and "running" in main_status(after)["state"]
        assert main_status(after)["imageID"], "the adopted container's imageID is known"
        assert after["status"]["phase"] == "Running"
        # goner's sandbox and container are garbage-collected; keeper's container is the same one.
        listed = await eventually(agent.kubelet.runtime.runc.list, lambda c: len(c) == 1,
                                  what="goner's container removed")
        assert [c["id"] for c in listed] == [rec.current.id]
        await eventually(lambda: dirs(runtime_dir / "sandboxes"), lambda d: d == [worker.sandbox.id],
                         what="goner's sandbox dir removed")
        assert dirs(runtime_dir / "containers") == [rec.current.id]
        assert not agent.kubelet.leftovers
        # The same log file goes on growing, and the API serves it (kubectl logs).
        assert agent.kubelet.log_path_for("default", "keeper", "main", previous=False) == log_file
        await eventually(lambda: log_file.stat().st_size, lambda s: s > size, what="log continues")
        assert dirs(log_file.parent) == ["0.log"]
        text = await pod_log(api, "keeper")
        assert text.startswith("line 0\nline 1\n") and text.count("line ") > lines
        # Deleting the pod removes everything.
        await delete(api, "keeper")
        await eventually(lambda: get_or_none(api, f"{PODS}/keeper"), lambda p: p is None, timeout=60,
                         what="keeper deleted")
        assert await agent.kubelet.runtime.runc.list() == []
        assert dirs(runtime_dir / "sandboxes") == [] and dirs(runtime_dir / "containers") == []
    finally:
        await agent.stop()


@needs_runc
async def test_restart_counts_continue_and_a_dead_sandbox_is_replaced(api, runc_agents) -> None:
    """A crash-looping container keeps its restartCount and lastState across the restart;
    a sandbox whose namespaces are gone (as after a reboot) is replaced, its containers
    started again at their next attempt."""
    agent = await runc_agents("runc")
    try:
        crasher = await create(api, pod("crasher", IMAGE, ["sh", "-c", "echo run; sleep 1; exit 3"]))
        sleeper = await create(api, pod("sleeper", IMAGE, ["sleep", "3600"]))
        await eventually(lambda: get_or_none(api, f"{PODS}/crasher"),
                         lambda p: main_status(p).get("restartCount", 0) >= 1, timeout=90, what="a restart")
        await running(api, "sleeper")
        runtime = agent.kubelet.runtime
        old_sandbox = agent.kubelet.workers[sleeper["metadata"]["uid"]].sandbox
    finally:
        await agent.stop()
    # The attempt the runtime has last (the API may lag behind it by one).
    count = max(attempt_of(c) for c in await runtime.list_containers()
                if c.labels[LABEL_POD_UID] == crasher["metadata"]["uid"])
    assert count >= 1
    for pinned in (old_sandbox.ipc_path, old_sandbox.uts_path):  # lost while no agent watches
        mounts.unmount(pinned)

    agent = await runc_agents("runc")
    try:
        worker = await eventually(lambda: agent.kubelet.workers.get(crasher["metadata"]["uid"]),
                                  lambda w: w is not None and w._written is not None, what="crasher's status")
        assert worker._written["containerStatuses"][0]["restartCount"] >= count  # not back to 0
        p = await eventually(lambda: get_or_none(api, f"{PODS}/crasher"),
                             lambda p: main_status(p).get("restartCount", 0) > count
                             and main_status(p)["lastState"].get("terminated"), timeout=90,
                             what="restartCount goes on")
        assert main_status(p)["lastState"]["terminated"]["exitCode"] == 3
        rec = worker.containers[0]
        logs = agent.kubelet.log_path_for("default", "crasher", "main", previous=False)
        assert logs is not None and logs.name == f"{rec.restart_count}.log"
        assert (logs.parent / f"{count}.log").read_text().count("run") == 1  # the adopted attempt's log
        # The sleeper's sandbox was dead: a new one, and its container started again.
        p = await eventually(lambda: get_or_none(api, f"{PODS}/sleeper"),
                             lambda p: main_status(p).get("restartCount") == 1 and "running" in main_status(p)["state"],
                             timeout=90, what="sleeper restarted in a new sandbox")
        worker = agent.kubelet.workers[sleeper["metadata"]["uid"]]
        assert worker.sandbox.id != old_sandbox.id and worker.sandbox.ready
        assert old_sandbox.id not in dirs(agent.kubelet.runtime.state_dir / "sandboxes")
        assert main_status(p)["lastState"]["terminated"]["exitCode"] == 137
        uids = {crasher["metadata"]["uid"], sleeper["metadata"]["uid"]}
        for name in ("crasher", "sleeper"):
            await delete(api, name)
        for name in ("crasher", "sleeper"):
            await eventually(lambda n=name: get_or_none(api, f"{PODS}/{n}"), lambda p: p is None, timeout=60,
                             what=f"{name} deleted")
        assert await agent.kubelet.runtime.runc.list() == []
        assert not uids & set(agent.kubelet.workers)
    finally:
        await agent.stop()


async def test_process_runtime_restart_reuses_the_sandbox_and_counts_the_restart(api, agents) -> None:
    """The process runtime's containers die with the agent: the next one carries on in the
    same sandbox with the next attempt (no leaked sandbox), and reports the exit."""
    agent = await agents("process")
    try:
        created = await create(api, pod("proc", "host", LOOP))
        first = await running(api, "proc")
        sandbox = agent.kubelet.workers[created["metadata"]["uid"]].sandbox
    finally:
        await agent.stop()  # kills the process runtime's containers
    agent = await agents("process")
    try:
        p = await eventually(lambda: get_or_none(api, f"{PODS}/proc"),
                             lambda p: main_status(p).get("restartCount") == 1 and "running" in main_status(p)["state"],
                             timeout=60, what="restarted once")
        assert main_status(p)["lastState"]["terminated"]["containerID"] == main_status(first)["containerID"]
        worker = agent.kubelet.workers[created["metadata"]["uid"]]
        assert worker.sandbox.id == sandbox.id
        state = agents.data_dir / "runtime" / "process"
        assert dirs(state / "sandboxes") == [sandbox.id]
        assert len(dirs(state / "containers")) == 2  # the exited attempt (lastState) and the running one
        await delete(api, "proc")
        await eventually(lambda: get_or_none(api, f"{PODS}/proc"), lambda p: p is None, timeout=60,
                         what="proc deleted")
        assert dirs(state / "sandboxes") == [] and dirs(state / "containers") == []
    finally:
        await agent.stop()


async def test_process_runtime_lists_its_sandboxes(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path, "127.0.0.1")
    config = SandboxConfig(pod_uid="u1", name="p", namespace="ns", hostname="p", labels={LABEL_POD_UID: "u1"})
    sb = await runtime.run_pod_sandbox(config)
    (tmp_path / "sandboxes" / "junk").mkdir()  # a sandbox without a record: listed, to be removed
    again = ProcessRuntime(tmp_path, "127.0.0.1")  # a restarted kubelet
    listed = {s.id: s for s in await again.list_pod_sandboxes()}
    assert set(listed) == {sb.id, "junk"}
    assert listed[sb.id].config == config and listed[sb.id].ready and listed[sb.id].ip == "127.0.0.1"
    assert listed[sb.id].created_at == sb.created_at is not None
    assert listed["junk"].config.pod_uid == ""
    await again.remove_pod_sandbox(listed["junk"])
    assert [s.id for s in await again.list_pod_sandboxes()] == [sb.id]
    assert json.loads((tmp_path / "sandboxes" / sb.id / "sandbox.json").read_text())["config"]["pod_uid"] == "u1"


def test_what_a_worker_adopts() -> None:
    """The choice alone: the newest ready sandbox; per container the newest attempt in it
    (restartCount = attempt) and the exited one before; everything else to remove."""
    def at(minute: int) -> dt.datetime:
        return dt.datetime(2024, 1, 1, 0, minute, tzinfo=dt.UTC)

    def c(cid: str, name: str, attempt: int, state: State, minute: int, sandbox: str = "sb-ready") -> ContainerStatus:
        return ContainerStatus(id=cid, state=state, created_at=at(minute), sandbox_id=sandbox,
                               labels={LABEL_POD_UID: "u", LABEL_CONTAINER_NAME: name, LABEL_ATTEMPT: str(attempt)})

    config = SandboxConfig(pod_uid="u", name="p", namespace="ns", hostname="p")
    ready = Sandbox("sb-ready", config, ready=True, created_at=at(1))
    dead = Sandbox("sb-dead", config, ready=False, created_at=at(2))
    found = Adoptable(sandboxes=[dead, ready], containers=[
        c("a0", "a", 0, "exited", 3), c("a2", "a", 2, "running", 5), c("a1", "a", 1, "exited", 4),
        c("b0", "b", 0, "exited", 3), c("b1", "b", 1, "created", 4),
        c("x0", "a", 7, "running", 9, sandbox="sb-dead"), c("gone", "removed-from-spec", 0, "exited", 1)])
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}}
    worker = PodWorker(SimpleNamespace(), pod, found)  # type: ignore[arg-type]
    a, b = worker.containers
    assert worker.sandbox is ready and worker._discard_sandboxes == [dead]
    assert (a.current.id, a.previous.id, a.restart_count) == ("a2", "a1", 2)
    assert (b.current, b.previous.id, b.restart_count) == (None, "b0", 1)  # b1 never started: start attempt 1 again
    assert sorted(d.id for d in worker._discard) == ["a0", "b1", "gone", "x0"]
