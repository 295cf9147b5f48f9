"""The pod worker (``SyncPod``) driven pass by pass: a real Kubelet around a fake in-memory
container runtime, a fake API client, fake volumes and images, and a fake clock for the
restart and image-pull back-offs.  No processes, no network."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pinnace.client.rest import ApiException
from pinnace.kubelet import podworker as pw
from pinnace.kubelet import status as st
from pinnace.kubelet.kubelet import Kubelet
from pinnace.kubelet.node import NodeConfig
from pinnace.kubelet.podworker import PodWorker
from pinnace.kubelet.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerStatus,
    RuntimeError_,
    Sandbox,
    SandboxConfig,
)

pytestmark = pytest.mark.timeout(10)

UID = "uid-1"
HOST_IP = "192.168.1.10"
POD_IP = "10.42.0.9"
T0_ISO = "2023-11-14T22:13:20Z"  # the fake clock's start

# ------------------------------------------------------------------------------------------ fakes


class Clock:
    """Both of the worker's clocks (``time.time`` for the restart back-off against a
    container's finishedAt, ``time.monotonic`` for pull back-off and grace deadlines)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now, dt.UTC)


class FakeRuntime:
    """An in-memory ContainerRuntime: containers run until ``exit(name, code)`` says otherwise."""

    name = "fake"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.containers: dict[str, ContainerStatus] = {}
        self.configs: dict[str, ContainerConfig] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.stop_exit_code = 143  # SIGTERM
        self.fail_create: dict[str, str] = {}  # container name → error
        self._n = 0

    # -- test controls
    def ids(self, name: str) -> list[str]:
        """Every container created for ``name``, oldest first (removed ones included)."""
        return [cid for op, cid, *_ in self.calls if op == "create" and self.configs[cid].name == name]

    def started(self) -> list[str]:
        return [self.configs[cid].name for op, cid, *_ in self.calls if op == "start"]

    def exit(self, name: str, code: int, reason: str = "") -> None:
        cid = self.ids(name)[-1]
        c = self.containers[cid]
        assert c.state == "running", f"{name} is {c.state}"
        c.state, c.exit_code, c.reason, c.finished_at = "exited", code, reason, self.clock.dt()

    # -- ContainerRuntime
    async def run_pod_sandbox(self, config: SandboxConfig) -> Sandbox:
        sb = Sandbox(id=f"sb-{config.pod_uid}", config=config, ip=None if config.host_network else POD_IP)
        self.sandboxes[sb.id] = sb
        self.calls.append(("run_sandbox", sb.id))
        return sb

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        self.calls.append(("stop_sandbox", sandbox.id))
        for c in self.containers.values():
            if c.state == "running":
                c.state, c.exit_code, c.finished_at = "exited", 137, self.clock.dt()

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        self.calls.append(("remove_sandbox", sandbox.id))
        self.sandboxes.pop(sandbox.id, None)

    async def create_container(self, sandbox: Sandbox, config: ContainerConfig) -> str:
        if config.name in self.fail_create:
            raise RuntimeError_(self.fail_create[config.name])
        self._n += 1
        cid = f"{config.name}-{self._n}"
        self.configs[cid] = config
        self.containers[cid] = ContainerStatus(id=cid, state="created", created_at=self.clock.dt(),
                                               labels=dict(config.labels))
        self.calls.append(("create", cid, sandbox.id))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        c.state, c.started_at = "running", self.clock.dt()
        self.calls.append(("start", container_id))

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self.calls.append(("stop", container_id, timeout))
        c = self.containers[container_id]
        if c.state == "running":
            c.state, c.exit_code, c.finished_at = "exited", self.stop_exit_code, self.clock.dt()

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove", container_id))
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        try:
            c = self.containers[container_id]
        except KeyError:
            raise RuntimeError_(f"no such container {container_id}") from None
        return dataclasses.replace(c, labels=dict(c.labels))  # a snapshot, as a real runtime returns

    async def list_containers(self) -> list[ContainerStatus]:
        return [dataclasses.replace(c) for c in self.containers.values()]

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> Any:
        raise NotImplementedError

    async def exec_process(self, container_id: str, cmd: list[str], *, tty: bool = False,
                           stdin: bool = False) -> Any:
        raise NotImplementedError


class FakeClient:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []  # the status bodies written
        self.deletes: list[tuple[str, str, str, dict[str, Any]]] = []
        self.delete_error: ApiException | None = None

    async def patch(self, api_version: str, plural: str, name: str, patch: Any, namespace: str = "",
                    sub: str = "", **kw: Any) -> dict:
        assert (api_version, plural, name, namespace, sub) == ("v1", "pods", "web", "ns", "status")
        self.patches.append(patch["status"])
        return {}

    async def delete(self, api_version: str, plural: str, name: str, namespace: str = "", **params: Any) -> dict:
        self.deletes.append((plural, name, namespace, params))
        if self.delete_error is not None:
            raise self.delete_error
        return {}

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        raise ApiException(404, "NotFound", f"{plural} {name} not found")

    @property
    def last(self) -> dict[str, Any]:
        return self.patches[-1]


class FakeVolumes:
    def __init__(self) -> None:
        self.torn_down: list[str] = []
        self.setup_error: Exception | None = None

    async def setup(self, pod: dict) -> dict[str, str]:
        if self.setup_error is not None:
            raise self.setup_error
        return {}

    async def refresh(self, pod: dict) -> list[str]:
        return []

    def pop_warnings(self, uid: str) -> list[str]:
        return []

    def mounts_for(self, pod: dict, container: dict, volume_dirs: dict, env: dict) -> list:
        return []

    async def teardown(self, uid: str) -> None:
        self.torn_down.append(uid)


class PullError(Exception):
    pass


class FakeImages:
    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.pulls: list[str] = []

    async def ensure(self, image: str, policy: str | None, secrets: Any) -> Any:
        self.pulls.append(image)
        if image in self.failing:
            raise PullError(f"pull {image}: not found")
        return SimpleNamespace(repo_digest=f"{image}@sha256:abc", id="sha256:abc", ref=image,
                               config={"config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}})


@dataclasses.dataclass
class Env:
    clock: Clock
    runtime: FakeRuntime
    client: FakeClient
    volumes: FakeVolumes
    images: FakeImages
    kubelet: Kubelet
    events: list[tuple[str, str, str, str]]  # (type, reason, message, fieldPath)

    def worker(self, pod: dict) -> PodWorker:
        return PodWorker(self.kubelet, pod)

    def reasons(self) -> list[str]:
        return [e[1] for e in self.events]


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    clock = Clock()
    monkeypatch.setattr(pw, "time", clock)
    monkeypatch.setattr(st, "now_iso", lambda: clock.dt().strftime("%Y-%m-%dT%H:%M:%SZ"))
    runtime, client, volumes, images = FakeRuntime(clock), FakeClient(), FakeVolumes(), FakeImages()
    node = NodeConfig(name="node-1", host_ip=HOST_IP, data_dir=tmp_path, runtime_version="fake://1")
    kubelet = Kubelet(client, runtime, node, volumes=volumes, images=images)  # type: ignore[arg-type]
    events: list[tuple[str, str, str, str]] = []
    kubelet.recorder.event = (  # type: ignore[method-assign]
        lambda obj, type_, reason, message, action="", field_path="": events.append(
            (type_, reason, message, field_path)))
    return Env(clock, runtime, client, volumes, images, kubelet, events)


def container(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "image": f"img/{name}:1", "command": [f"/bin/{name}"], **kw}


def make_pod(*names: str, inits: tuple[str, ...] = (), policy: str | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"nodeName": "node-1", "containers": [container(n) for n in names], **spec}
    if inits:
        s["initContainers"] = [container(n) for n in inits]
    if policy:
        s["restartPolicy"] = policy
    return {"metadata": {"name": "web", "namespace": "ns", "uid": UID}, "spec": s,
            "status": {"phase": "Pending", "qosClass": "BestEffort"}}


def cstatus(status: dict, name: str) -> dict[str, Any]:
    return next(c for c in [*status.get("initContainerStatuses", []), *status["containerStatuses"]]
                if c["name"] == name)


def cond(status: dict, ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


# ------------------------------------------------------------------------------------ start-up


async def test_containers_start_after_init_containers_succeed_in_order(env: Env) -> None:
    w = env.worker(make_pod("a", "b", inits=("i1", "i2")))
    assert await w._sync() is False
    assert env.runtime.calls[0] == ("run_sandbox", f"sb-{UID}")
    assert env.runtime.started() == ["i1"]
    s = env.client.last
    assert s["phase"] == "Pending"
    assert cond(s, "Initialized")["message"] == "containers with incomplete status: [i1 i2]"
    assert "running" in cstatus(s, "i1")["state"]

    await w._sync()  # i1 still runs: nothing new
    assert env.runtime.started() == ["i1"]

    env.runtime.exit("i1", 0)
    await w._sync()
    assert env.runtime.started() == ["i1", "i2"]
    s = env.client.last
    assert cstatus(s, "i1")["state"]["terminated"]["reason"] == "Completed"
    assert cond(s, "Initialized")["message"] == "containers with incomplete status: [i2]"

    env.runtime.exit("i2", 0)
    await w._sync()
    assert env.runtime.started() == ["i1", "i2", "a", "b"]
    s = env.client.last
    assert s["phase"] == "Running"
    assert cond(s, "Initialized")["status"] == "True"
    assert s["podIP"] == POD_IP and s["hostIP"] == HOST_IP

    await w._sync()  # running without probes: ready on the next pass
    s = env.client.last
    assert cond(s, "Ready")["status"] == "True"
    assert [cstatus(s, n)["ready"] for n in ("a", "b")] == [True, True]
    assert [cstatus(s, n)["ready"] for n in ("i1", "i2")] == [False, False]


async def test_container_config(env: Env) -> None:
    pod = make_pod("a")
    pod["spec"]["containers"][0]["env"] = [{"name": "GREETING", "value": "hi"}]
    w = env.worker(pod)
    await w._sync()
    (cid,) = env.runtime.ids("a")
    cfg = env.runtime.configs[cid]
    assert cfg.args == ["/bin/a"]
    assert cfg.env == {"PATH": "/bin", "GREETING": "hi"}  # the image's Env under the container's
    assert cfg.image == "img/a:1" and cfg.image_ref == "img/a:1"
    assert cfg.labels[LABEL_POD_UID] == UID and cfg.labels[LABEL_CONTAINER_NAME] == "a"
    assert cfg.labels[LABEL_ATTEMPT] == "0"
    assert cfg.log_path == env.kubelet.logs_dir / f"ns_web_{UID}" / "a" / "0.log"
    assert cstatus(env.client.last, "a")["imageID"] == "img/a:1@sha256:abc"
    assert ("Normal", "Created", "Created container a", "spec.containers{a}") in env.events
    assert ("Normal", "Started", "Started container a", "spec.containers{a}") in env.events


async def test_waiting_reason_while_initializing(env: Env) -> None:
    """convertToAPIContainerStatuses: the default waiting reason of every container of a pod
    with init containers is PodInitializing (ContainerCreating without init containers)."""
    w = env.worker(make_pod("a", inits=("i1",)))
    await w._sync()
    assert cstatus(env.client.last, "a")["state"] == {"waiting": {"reason": "PodInitializing"}}


@pytest.mark.parametrize(("inits", "reason"), [((), "ContainerCreating"), (("i1",), "PodInitializing")])
async def test_volume_setup_failure(env: Env, inits: tuple[str, ...], reason: str) -> None:
    env.volumes.setup_error = OSError("disk full")
    w = env.worker(make_pod("a", inits=inits))
    assert await w._sync() is False
    assert env.runtime.started() == []
    s = env.client.last
    assert s["phase"] == "Pending"
    assert [c["state"] for c in [*s.get("initContainerStatuses", []), *s["containerStatuses"]]] == [
        {"waiting": {"reason": reason}}] * (1 + len(inits))
    assert ("Warning", "FailedMount", "Unable to mount volumes: disk full", "") in env.events
    env.volumes.setup_error = None
    await w._sync()
    assert env.runtime.started() == [*inits[:1], *([] if inits else ["a"])]


async def test_init_container_failure_with_never_fails_pod(env: Env) -> None:
    w = env.worker(make_pod("app", inits=("i1",), policy="Never"))
    await w._sync()
    env.runtime.exit("i1", 1)
    await w._sync()
    s = env.client.last
    assert s["phase"] == "Failed"
    assert cstatus(s, "i1")["state"]["terminated"]["exitCode"] == 1
    assert cond(s, "Initialized")["status"] == "False"
    assert env.runtime.ids("app") == []
    assert ("stop_sandbox", f"sb-{UID}") in env.runtime.calls
    # Terminal: later passes start nothing and write nothing.
    writes = len(env.client.patches)
    env.clock.advance(60)
    await w._sync()
    assert env.runtime.started() == ["i1"] and len(env.client.patches) == writes


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
async def test_init_container_failure_is_retried(env: Env, policy: str) -> None:
    w = env.worker(make_pod("app", inits=("i1",), policy=policy))
    await w._sync()
    env.runtime.exit("i1", 1)
    await w._sync()  # first restart: at once
    assert env.runtime.started() == ["i1", "i1"]
    assert env.client.last["phase"] == "Pending"
    env.runtime.exit("i1", 0)
    await w._sync()
    assert env.runtime.started() == ["i1", "i1", "app"]
    assert cstatus(env.client.last, "i1")["restartCount"] == 1


async def test_sidecar_runs_alongside_containers(env: Env) -> None:
    pod = make_pod("app", policy="Never")
    pod["spec"]["initContainers"] = [container("side", restartPolicy="Always")]
    w = env.worker(pod)
    await w._sync()
    assert env.runtime.started() == ["side"]  # started, but not yet seen started
    await w._sync()
    assert env.runtime.started() == ["side", "app"]
    await w._sync()
    s = env.client.last
    assert s["phase"] == "Running" and cond(s, "Ready")["status"] == "True"
    # The sidecar is restarted whatever the pod's restartPolicy.
    env.runtime.exit("side", 1)
    await w._sync()
    assert env.runtime.started() == ["side", "app", "side"]
    s = env.client.last
    assert s["phase"] == "Running" and cond(s, "Initialized")["status"] == "True"
    # The main container completes: the pod Succeeds and the sidecar is stopped...
    env.runtime.exit("app", 0)
    await w._sync()
    assert env.client.last["phase"] == "Succeeded"
    assert env.runtime.containers[env.runtime.ids("side")[-1]].state == "exited"
    # ... which the final status shows.
    await w._sync()
    s = env.client.last
    assert s["phase"] == "Succeeded"
    assert cstatus(s, "side")["state"]["terminated"]["exitCode"] == 143
    writes = len(env.client.patches)
    await w._sync()
    assert len(env.client.patches) == writes


# ------------------------------------------------------------------------------- restarts, back-off


async def test_always_restarts_with_crash_loop_back_off(env: Env) -> None:
    w = env.worker(make_pod("app", policy="Always"))
    await w._sync()
    await w._sync()
    assert cstatus(env.client.last, "app")["ready"] is True

    env.clock.advance(5)
    env.runtime.exit("app", 1)
    await w._sync()  # the first exit: restarted at once
    assert env.runtime.started() == ["app", "app"]
    first, second = env.runtime.ids("app")
    s = cstatus(env.client.last, "app")
    assert s["restartCount"] == 1 and "running" in s["state"]
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert s["lastState"]["terminated"]["containerID"] == f"fake://{first}"
    assert env.runtime.configs[second].labels[LABEL_ATTEMPT] == "1"
    assert env.runtime.configs[second].log_path.name == "1.log"

    env.clock.advance(2)
    env.runtime.exit("app", 2)
    await w._sync()  # within 10 s of the second exit: CrashLoopBackOff
    assert len(env.runtime.started()) == 2
    s = cstatus(env.client.last, "app")
    assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert s["state"]["waiting"]["message"] == f"back-off 10s restarting failed container=app pod=web_ns({UID})"
    assert s["lastState"]["terminated"]["exitCode"] == 2
    assert s["restartCount"] == 1 and s["ready"] is False
    assert env.client.last["phase"] == "Running"
    assert cond(env.client.last, "Ready")["status"] == "False"
    assert env.reasons().count("BackOff") == 1

    env.clock.advance(9)
    await w._sync()
    assert len(env.runtime.started()) == 2 and env.reasons().count("BackOff") == 1  # one event per back-off
    env.clock.advance(1)
    await w._sync()  # 10 s after the exit: restarted
    assert len(env.runtime.started()) == 3
    assert cstatus(env.client.last, "app")["restartCount"] == 2
    assert ("remove", first) in env.runtime.calls  # the instance before the previous one is removed

    env.runtime.exit("app", 1)
    await w._sync()
    assert cstatus(env.client.last, "app")["state"]["waiting"]["message"].startswith("back-off 20s ")


async def test_back_off_doubles_up_to_max(env: Env) -> None:
    env.kubelet.max_backoff = 60.0
    w = env.worker(make_pod("app"))
    await w._sync()
    env.runtime.exit("app", 1)
    await w._sync()  # immediate first restart
    seen = []
    for _ in range(5):
        env.runtime.exit("app", 1)
        await w._sync()
        msg = cstatus(env.client.last, "app")["state"]["waiting"]["message"]
        seen.append(msg.split()[1])
        delay = w._backoff["app"]
        env.clock.advance(delay - 1)
        await w._sync()
        assert "waiting" in cstatus(env.client.last, "app")["state"]  # not a second early
        env.clock.advance(1)
        await w._sync()
        assert "running" in cstatus(env.client.last, "app")["state"]
    assert seen == ["10s", "20s", "40s", "1m0s", "1m0s"]


async def test_back_off_resets_after_a_long_run(env: Env) -> None:
    w = env.worker(make_pod("app"))
    await w._sync()
    env.runtime.exit("app", 1)
    await w._sync()
    env.runtime.exit("app", 1)
    await w._sync()
    assert cstatus(env.client.last, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    env.clock.advance(10)
    await w._sync()  # restarted; it now runs for 10 minutes
    env.clock.advance(600)
    env.runtime.exit("app", 1)
    await w._sync()
    assert "running" in cstatus(env.client.last, "app")["state"]  # restarted at once
    assert cstatus(env.client.last, "app")["restartCount"] == 3


async def test_on_failure_exit_zero_is_not_restarted(env: Env) -> None:
    w = env.worker(make_pod("a", "b", policy="OnFailure"))
    await w._sync()
    env.runtime.exit("a", 0)
    await w._sync()
    assert env.runtime.started() == ["a", "b"]
    assert env.client.last["phase"] == "Running"
    env.runtime.exit("b", 1)
    await w._sync()  # the failed one is restarted
    assert env.runtime.started() == ["a", "b", "b"]
    env.runtime.exit("b", 0)
    await w._sync()
    s = env.client.last
    assert s["phase"] == "Succeeded"
    assert cstatus(s, "a")["state"]["terminated"]["reason"] == "Completed"
    assert cstatus(s, "b")["restartCount"] == 1
    assert ("stop_sandbox", f"sb-{UID}") in env.runtime.calls
    assert env.runtime.started() == ["a", "b", "b"]


async def test_never_failed_container_fails_pod(env: Env) -> None:
    w = env.worker(make_pod("a", policy="Never"))
    await w._sync()
    env.runtime.exit("a", 3)
    await w._sync()
    s = env.client.last
    assert s["phase"] == "Failed"
    assert cstatus(s, "a")["state"]["terminated"] == {
        "exitCode": 3, "reason": "Error", "startedAt": cstatus(s, "a")["state"]["terminated"]["startedAt"],
        "finishedAt": cstatus(s, "a")["state"]["terminated"]["finishedAt"],
        "containerID": f"fake://{env.runtime.ids('a')[0]}"}
    assert env.runtime.started() == ["a"]


# ----------------------------------------------------------------------------------- image pulls


async def test_failed_pull_backs_off(env: Env) -> None:
    env.images.failing.add("img/app:1")
    w = env.worker(make_pod("app"))
    await w._sync()
    s = cstatus(env.client.last, "app")
    assert s["state"]["waiting"] == {"reason": "ErrImagePull", "message": "pull img/app:1: not found"}
    assert env.client.last["phase"] == "Pending"
    assert ("Warning", "Failed", 'Failed to pull image "img/app:1": pull img/app:1: not found',
            "spec.containers{app}") in env.events

    env.clock.advance(9)
    await w._sync()  # within the 10 s back-off: no pull
    assert env.images.pulls == ["img/app:1"]
    assert cstatus(env.client.last, "app")["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "img/app:1"'}

    env.clock.advance(1)
    await w._sync()  # retried, failed again: the back-off doubles
    assert env.images.pulls == ["img/app:1"] * 2
    assert cstatus(env.client.last, "app")["state"]["waiting"]["reason"] == "ErrImagePull"
    env.clock.advance(19)
    await w._sync()
    assert len(env.images.pulls) == 2
    env.images.failing.clear()
    env.clock.advance(1)
    await w._sync()
    assert len(env.images.pulls) == 3
    assert "running" in cstatus(env.client.last, "app")["state"]
    assert env.client.last["phase"] == "Running"


async def test_failed_pull_on_restart_keeps_the_exit_in_last_state(env: Env) -> None:
    """A restart whose pull fails: waiting ErrImagePull, the exit in lastState, restartCount
    counting instances that actually ran."""
    w = env.worker(make_pod("app"))
    await w._sync()
    env.images.failing.add("img/app:1")
    env.runtime.exit("app", 1)
    await w._sync()  # restart attempted: the pull fails
    s = cstatus(env.client.last, "app")
    assert s["state"]["waiting"]["reason"] == "ErrImagePull"
    assert s["lastState"]["terminated"]["exitCode"] == 1
    for _ in range(6):
        env.clock.advance(30)
        await w._sync()
    env.images.failing.clear()
    env.clock.advance(300)
    await w._sync()
    s = cstatus(env.client.last, "app")
    assert "running" in s["state"]
    assert s["restartCount"] == 1
    assert len(env.runtime.started()) == 2


async def test_create_container_error(env: Env) -> None:
    env.runtime.fail_create["app"] = "no such binary"
    w = env.worker(make_pod("app"))
    await w._sync()
    assert cstatus(env.client.last, "app")["state"]["waiting"] == {"reason": "CreateContainerError",
                                                                     "message": "no such binary"}
    del env.runtime.fail_create["app"]
    await w._sync()
    assert "running" in cstatus(env.client.last, "app")["state"]


async def test_create_container_config_error(env: Env) -> None:
    pod = make_pod("app")
    pod["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm",
                                                                                          "key": "k"}}}]
    w = env.worker(pod)
    await w._sync()
    waiting = cstatus(env.client.last, "app")["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert env.runtime.ids("app") == []


# ------------------------------------------------------------------------------------ termination


def deleting(pod: dict, grace: int | None = None) -> dict:
    meta = {**pod["metadata"], "deletionTimestamp": "2024-05-01T12:00:00Z"}
    if grace is not None:
        meta["deletionGracePeriodSeconds"] = grace
    return {**pod, "metadata": meta}


async def test_deletion_stops_containers_and_deletes_pod(env: Env) -> None:
    pod = make_pod("a", "b", terminationGracePeriodSeconds=45)
    w = env.worker(pod)
    await w._sync()
    await w._sync()
    ids = [env.runtime.ids("a")[0], env.runtime.ids("b")[0]]
    writes = len(env.client.patches)
    w.update(deleting(pod, grace=20))
    assert await w._sync() is True
    stops = [c for c in env.runtime.calls if c[0] == "stop"]
    assert sorted(stops) == [("stop", ids[0], 20.0), ("stop", ids[1], 20.0)]  # the deletion's grace period
    assert [r for r in env.reasons() if r == "Killing"] == ["Killing", "Killing"]
    # The final status: containers terminated (SIGTERM), not ready.
    assert len(env.client.patches) == writes + 1
    s = env.client.last
    assert cstatus(s, "a")["state"]["terminated"]["exitCode"] == 143
    assert cond(s, "Ready")["status"] == "False"
    assert ("stop_sandbox", f"sb-{UID}") in env.runtime.calls and ("remove_sandbox", f"sb-{UID}") in env.runtime.calls
    assert env.volumes.torn_down == [UID]
    assert env.client.deletes == [("pods", "web", "ns", {"gracePeriodSeconds": 0, "preconditions": {"uid": UID}})]


async def test_deletion_grace_defaults_to_termination_grace_period(env: Env) -> None:
    pod = make_pod("a", terminationGracePeriodSeconds=7)
    w = env.worker(pod)
    await w._sync()
    w.update(deleting(pod))
    await w._sync()
    assert [c[2] for c in env.runtime.calls if c[0] == "stop"] == [7.0]


async def test_deleted_pod_final_phase_is_terminal(env: Env) -> None:
    """The kubelet gives a pod it has stopped for deletion a terminal phase (getPhase with
    podIsTerminal): containers killed by SIGTERM → Failed, not Running."""
    pod = make_pod("a", policy="Always")
    w = env.worker(pod)
    await w._sync()
    w.update(deleting(pod, grace=5))
    await w._sync()
    assert env.client.last["phase"] == "Failed"


async def test_deletion_of_a_finished_pod(env: Env) -> None:
    pod = make_pod("a", policy="Never")
    w = env.worker(pod)
    await w._sync()
    env.runtime.exit("a", 0)
    await w._sync()
    assert env.client.last["phase"] == "Succeeded"
    writes = len(env.client.patches)
    env.client.delete_error = ApiException(409, "Conflict", "uid precondition failed")  # a new pod of that name
    w.update(deleting(pod))
    assert await w._sync() is True
    assert len(env.client.patches) == writes  # nothing more to report
    assert ("remove_sandbox", f"sb-{UID}") in env.runtime.calls
    assert len(env.client.deletes) == 1


async def test_deletion_delete_error_propagates(env: Env) -> None:
    pod = make_pod("a")
    w = env.worker(pod)
    await w._sync()
    env.client.delete_error = ApiException(500, "InternalError", "etcd down")
    w.update(deleting(pod, grace=0))
    with pytest.raises(ApiException):
        await w._sync()


# ------------------------------------------------------------------------------------ status writes


async def test_status_written_only_when_changed(env: Env) -> None:
    w = env.worker(make_pod("a"))
    await w._sync()
    await w._sync()  # becomes ready
    n = len(env.client.patches)
    assert n == 2
    for _ in range(3):
        env.clock.advance(1)
        await w._sync()
    assert len(env.client.patches) == n
    env.runtime.exit("a", 1)
    await w._sync()
    assert len(env.client.patches) == n + 1
    assert cond(env.client.last, "PodScheduled")["lastTransitionTime"] == T0_ISO


async def test_transition_times_survive_a_lagging_informer(env: Env) -> None:
    """The informer's copy of the pod still has no status: conditions keep the
    lastTransitionTime last written, and nothing is rewritten meanwhile."""
    w = env.worker(make_pod("a"))
    await w._sync()
    await w._sync()
    n = len(env.client.patches)
    ready_since = cond(env.client.last, "Ready")["lastTransitionTime"]
    env.clock.advance(30)
    await w._sync()
    assert len(env.client.patches) == n
    env.runtime.exit("a", 1)
    env.clock.advance(1)
    await w._sync()  # restarted: Ready went False, then True again on the next pass
    env.clock.advance(1)
    await w._sync()
    s = env.client.last
    assert cond(s, "PodScheduled")["lastTransitionTime"] == T0_ISO
    assert cond(s, "Ready")["lastTransitionTime"] != ready_since  # it did transition


async def test_status_write_of_a_vanished_pod_is_ignored(env: Env) -> None:
    async def gone(*_a: Any, **_k: Any) -> dict:
        raise ApiException(404, "NotFound", "pods web not found")

    env.client.patch = gone  # type: ignore[method-assign]
    w = env.worker(make_pod("a"))
    await w._sync()
    assert w._written is None


async def test_host_network_pod(env: Env) -> None:
    w = env.worker(make_pod("a", hostNetwork=True))
    await w._sync()
    assert w.sandbox is not None and w.sandbox.config.host_network is True
    assert env.client.last["podIP"] == HOST_IP


async def test_sidecar_in_back_off_does_not_hold_back_containers(env: Env) -> None:
    """Once the pod is initialized (a regular container runs: computeInitContainerActions'
    podHasInitialized) a restarting sidecar holds back neither the regular containers'
    restarts nor the phase (no return to Pending)."""
    pod = make_pod("app", "web", policy="Always")
    pod["spec"]["initContainers"] = [container("side", restartPolicy="Always")]
    w = env.worker(pod)
    await w._sync()
    await w._sync()
    assert env.runtime.started() == ["side", "app", "web"]
    env.runtime.exit("side", 1)
    await w._sync()  # restarted at once
    env.runtime.exit("side", 1)
    await w._sync()  # now in its back-off
    assert cstatus(env.client.last, "side")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    env.runtime.exit("app", 1)
    await w._sync()
    assert env.runtime.started() == ["side", "app", "web", "side", "app"]
    s = env.client.last
    assert s["phase"] == "Running" and cond(s, "Initialized")["status"] == "True"


# ----------------------------------------------------------------------------------- pod network


async def test_sandbox_waits_for_the_pod_network(env: Env) -> None:
    """A pod that is not hostNetwork gets no sandbox until the node's pod network is configured
    (its podCIDR): one NetworkNotReady event, the pod stays Pending."""
    net = SimpleNamespace(ready=False)
    env.kubelet.network = net
    w = env.worker(make_pod("a"))
    await w._sync()
    await w._sync()
    assert w.sandbox is None and not env.runtime.calls
    assert env.reasons().count("NetworkNotReady") == 1
    s = env.client.last
    assert s["phase"] == "Pending" and "podIP" not in s
    assert cond(s, "PodReadyToStartContainers")["status"] == "False"
    assert cstatus(s, "a")["state"]["waiting"]["reason"] == "ContainerCreating"

    net.ready = True
    await w._sync()
    assert w.sandbox is not None and env.runtime.started() == ["a"]
    assert env.client.last["podIP"] == POD_IP


async def test_failed_sandbox_is_retried_with_back_off(env: Env) -> None:
    failures = [RuntimeError_("CNI ADD failed: no IP addresses available"), RuntimeError_("again")]
    real = env.runtime.run_pod_sandbox

    async def flaky(config: SandboxConfig) -> Sandbox:
        if failures:
            raise failures.pop(0)
        return await real(config)

    env.runtime.run_pod_sandbox = flaky  # type: ignore[method-assign]
    w = env.worker(make_pod("a"))
    await w._sync()
    assert w.sandbox is None
    assert [e[2] for e in env.events if e[1] == "FailedCreatePodSandBox"] == [
        "Failed to create pod sandbox: CNI ADD failed: no IP addresses available"]
    assert env.client.last["phase"] == "Pending"
    await w._sync()  # within the 1 s back-off: not tried again
    assert len(failures) == 1
    env.clock.advance(1.1)
    await w._sync()  # the second failure: the back-off doubles
    assert not failures and w.sandbox is None
    env.clock.advance(1.5)
    await w._sync()
    assert w.sandbox is None
    env.clock.advance(0.6)
    await w._sync()
    assert w.sandbox is not None and env.runtime.started() == ["a"]
