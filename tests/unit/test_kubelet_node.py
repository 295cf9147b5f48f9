"""The kubelet's Node (``pinnace.kubelet.node``): capacity and allocatable with reservations,
pressure conditions and their lastTransitionTime, registration and the heartbeat Lease
against a fake API client.  /proc and the disk are faked."""

from __future__ import annotations

import asyncio
import copy
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pinnace.client.rest import ApiException
from pinnace.kubelet import node as nd
from pinnace.kubelet.node import LEASE_API, LEASE_NAMESPACE, NodeAgent, NodeConfig, Reservations, capacity, conditions

pytestmark = pytest.mark.timeout(10)

GiB = 2**30


class Machine:
    """What the node module reads of the machine: /proc/meminfo, the CPU count, the disk."""

    def __init__(self) -> None:
        self.cpus = 4
        self.mem_total_kib = 16_384_000
        self.mem_available_kib = 8_000_000
        self.disk_total = 100 * GiB
        self.disk_free = 50 * GiB

    def read(self, path: str, default: str = "") -> str:
        if path == "/proc/meminfo":
            return (f"MemTotal:       {self.mem_total_kib} kB\nMemFree:         1000 kB\n"
                    f"MemAvailable:   {self.mem_available_kib} kB\nBuffers:  10 kB")
        if path == "/etc/machine-id":
            return "0123456789abcdef"
        if path == "/proc/sys/kernel/random/boot_id":
            return "boot-1"
        return default

    def disk_usage(self, path: Any) -> Any:
        return SimpleNamespace(total=self.disk_total, used=self.disk_total - self.disk_free, free=self.disk_free)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    m = Machine()
    monkeypatch.setattr(nd, "_read", m.read)
    monkeypatch.setattr(nd, "os", SimpleNamespace(cpu_count=lambda: m.cpus))
    monkeypatch.setattr(nd, "shutil", SimpleNamespace(disk_usage=m.disk_usage))
    return m


def config(tmp_path: Path, **kw: Any) -> NodeConfig:
    return NodeConfig(name="node-1", host_ip="192.168.1.10", data_dir=tmp_path, runtime_version="fake://1", **kw)


# ---------------------------------------------------------------------------------------- capacity


def test_capacity_and_allocatable(machine: Machine, tmp_path: Path) -> None:
    cap, alloc = capacity(config(tmp_path))
    assert cap == {"cpu": "4", "memory": "16384000Ki", "ephemeral-storage": f"{100 * GiB // 1024}Ki", "pods": "110"}
    # Defaults: 100m CPU, 256Mi memory, 1Gi storage held back.
    assert alloc == {"cpu": "3900m", "memory": f"{16_384_000 - 256 * 1024}Ki",
                     "ephemeral-storage": f"{99 * GiB // 1024}Ki", "pods": "110"}


def test_allocatable_with_custom_reservations(machine: Machine, tmp_path: Path) -> None:
    machine.cpus = 2
    cfg = config(tmp_path, max_pods=30, reservations=Reservations(cpu_millis=500, memory_mib=1024,
                                                                  ephemeral_storage_gib=10))
    cap, alloc = capacity(cfg)
    assert cap["cpu"] == "2" and cap["pods"] == "30"
    assert alloc == {"cpu": "1500m", "memory": f"{16_384_000 - 1024 * 1024}Ki",
                     "ephemeral-storage": f"{90 * GiB // 1024}Ki", "pods": "30"}


def test_allocatable_never_negative(machine: Machine, tmp_path: Path) -> None:
    machine.cpus, machine.mem_total_kib, machine.disk_total = 1, 100_000, GiB // 2
    cfg = config(tmp_path, reservations=Reservations(cpu_millis=2000, memory_mib=1024, ephemeral_storage_gib=1))
    _, alloc = capacity(cfg)
    assert (alloc["cpu"], alloc["memory"], alloc["ephemeral-storage"]) == ("0m", "0Ki", "0Ki")


def test_meminfo_kib(machine: Machine) -> None:
    assert nd.meminfo_kib("MemTotal") == 16_384_000
    assert nd.meminfo_kib("MemAvailable") == 8_000_000
    assert nd.meminfo_kib("Nope") == 0


# -------------------------------------------------------------------------------------- conditions


def by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


def test_conditions_healthy(machine: Machine, tmp_path: Path) -> None:
    c = by_type(conditions(config(tmp_path), "t1", {}))
    assert list(c) == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert c["MemoryPressure"] == {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t1",
                                   "lastTransitionTime": "t1", "reason": "KubeletHasSufficientMemory",
                                   "message": "kubelet has sufficient memory available"}
    assert (c["DiskPressure"]["status"], c["DiskPressure"]["reason"]) == ("False", "KubeletHasNoDiskPressure")
    assert (c["PIDPressure"]["status"], c["PIDPressure"]["reason"]) == ("False", "KubeletHasSufficientPID")
    assert (c["Ready"]["status"], c["Ready"]["reason"], c["Ready"]["message"]) == (
        "True", "KubeletReady", "kubelet is posting ready status")


def test_condition_transition_time_kept_across_heartbeats(machine: Machine, tmp_path: Path) -> None:
    cfg, since = config(tmp_path), {}
    conditions(cfg, "t1", since)
    c = by_type(conditions(cfg, "t2", since))
    assert all(x["lastHeartbeatTime"] == "t2" and x["lastTransitionTime"] == "t1" for x in c.values())

    machine.mem_available_kib = 50 * 1024  # under 100Mi
    machine.disk_free = 5 * GiB  # under 10%
    c = by_type(conditions(cfg, "t3", since))
    mem, disk = c["MemoryPressure"], c["DiskPressure"]
    assert (mem["status"], mem["reason"], mem["lastTransitionTime"]) == ("True", "KubeletHasInsufficientMemory", "t3")
    assert mem["message"] == "kubelet has insufficient memory available"
    assert (disk["status"], disk["reason"], disk["message"]) == ("True", "KubeletHasDiskPressure",
                                                                  "kubelet has disk pressure")
    assert c["Ready"]["lastTransitionTime"] == "t1"

    c = by_type(conditions(cfg, "t4", since))
    assert c["MemoryPressure"]["lastTransitionTime"] == "t3"  # still True: kept
    machine.mem_available_kib = 8_000_000
    c = by_type(conditions(cfg, "t5", since))
    assert (c["MemoryPressure"]["status"], c["MemoryPressure"]["lastTransitionTime"]) == ("False", "t5")


def test_unknown_mem_available_is_no_pressure(machine: Machine, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nd, "_read", lambda path, default="": default)  # no /proc/meminfo
    assert by_type(conditions(config(tmp_path), "t", {}))["MemoryPressure"]["status"] == "False"


# ---------------------------------------------------------------------------------------- the agent


class FakeClient:
    """Objects by (apiVersion, plural, namespace, name) with resourceVersions; writes recorded."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.status_patches: list[dict] = []
        self.errors: dict[tuple[str, str], list[ApiException]] = {}  # (verb, plural) → errors to raise first
        self._rv = itertools.count(1)

    def _fail(self, verb: str, plural: str) -> None:
        queue = self.errors.get((verb, plural))
        if queue:
            raise queue.pop(0)

    def put(self, api: str, plural: str, obj: dict, namespace: str = "") -> dict:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[(api, plural, namespace, obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    async def create(self, api: str, plural: str, obj: dict, namespace: str = "") -> dict:
        name = obj["metadata"]["name"]
        self.calls.append(("create", plural, name))
        self._fail("create", plural)
        if (api, plural, namespace, name) in self.objects:
            raise ApiException(409, "AlreadyExists", f"{plural} {name} already exists")
        return self.put(api, plural, obj, namespace)

    async def get(self, api: str, plural: str, name: str, namespace: str = "") -> dict:
        self.calls.append(("get", plural, name))
        self._fail("get", plural)
        try:
            return copy.deepcopy(self.objects[(api, plural, namespace, name)])
        except KeyError:
            raise ApiException(404, "NotFound", f"{plural} {name} not found") from None

    async def update(self, api: str, plural: str, obj: dict, namespace: str = "", sub: str = "") -> dict:
        name = obj["metadata"]["name"]
        self.calls.append(("update", plural, name))
        self._fail("update", plural)
        cur = self.objects.get((api, plural, namespace, name))
        if cur is None:
            raise ApiException(404, "NotFound", f"{plural} {name} not found")
        if obj["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise ApiException(409, "Conflict", "the object has been modified")
        return self.put(api, plural, obj, namespace)

    async def patch(self, api: str, plural: str, name: str, patch: Any, namespace: str = "", sub: str = "",
                    **kw: Any) -> dict:
        self.calls.append(("patch", plural, name))
        self._fail("patch", plural)
        cur = self.objects.get((api, plural, namespace, name))
        if cur is None:
            raise ApiException(404, "NotFound", f"{plural} {name} not found")
        assert sub == "status"
        self.status_patches.append(patch["status"])
        cur["status"] = {**(cur.get("status") or {}), **patch["status"]}
        return copy.deepcopy(cur)

    def node(self) -> dict:
        return self.objects[("v1", "nodes", "", "node-1")]

    def lease(self) -> dict:
        return self.objects[(LEASE_API, "leases", LEASE_NAMESPACE, "node-1")]


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> itertools.count:
    counter = itertools.count(1)
    monkeypatch.setattr(nd, "_micro_time", lambda: f"2024-05-01T12:00:{next(counter):02d}.000000Z")
    monkeypatch.setattr(nd, "_now", lambda: "2024-05-01T12:00:00Z")
    return counter


def agent(tmp_path: Path, client: FakeClient, **kw: Any) -> NodeAgent:
    cfg = config(tmp_path, labels={"zone": "a"}, taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}],
                 kubelet_port=10555, **kw)
    return NodeAgent(client, cfg)  # type: ignore[arg-type]


def test_node_object(machine: Machine, tmp_path: Path) -> None:
    obj = agent(tmp_path, FakeClient()).node_object()
    meta, spec, status = obj["metadata"], obj["spec"], obj["status"]
    assert (obj["apiVersion"], obj["kind"], meta["name"]) == ("v1", "Node", "node-1")
    assert meta["labels"]["kubernetes.io/hostname"] == "node-1"
    assert meta["labels"]["kubernetes.io/os"] == "linux" and meta["labels"]["zone"] == "a"
    assert meta["labels"]["kubernetes.io/arch"] == nd.arch()
    assert spec["taints"] == [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.168.1.10"},
                                   {"type": "Hostname", "address": "node-1"}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10555}}
    assert status["capacity"]["cpu"] == "4" and status["allocatable"]["cpu"] == "3900m"
    info = status["nodeInfo"]
    assert info["machineID"] == "0123456789abcdef" and info["bootID"] == "boot-1"
    assert info["containerRuntimeVersion"] == "fake://1"
    assert info["kubeletVersion"].startswith(f"v{nd.KUBERNETES_VERSION}")
    assert {c["type"] for c in status["conditions"]} == {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}


async def test_register_creates_node_status_and_lease(machine: Machine, tmp_path: Path,
                                                      ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.register()
    assert client.calls == [("create", "nodes", "node-1"), ("patch", "nodes", "node-1"),
                            ("create", "leases", "node-1")]
    node = client.node()
    assert node["metadata"]["labels"]["zone"] == "a"
    assert node["status"]["allocatable"]["memory"] == f"{16_384_000 - 256 * 1024}Ki"
    lease = client.lease()
    assert lease["spec"]["holderIdentity"] == "node-1" and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["renewTime"] == "2024-05-01T12:00:01.000000Z"


async def test_register_takes_over_an_existing_node(machine: Machine, tmp_path: Path,
                                                    ticks: itertools.count) -> None:
    client = FakeClient()
    client.put("v1", "nodes", {"metadata": {"name": "node-1", "labels": {"zone": "old", "team": "x"}},
                               "spec": {"unschedulable": True}, "status": {"capacity": {"cpu": "1"}}})
    a = agent(tmp_path, client)
    await a.register()
    assert client.calls[:4] == [("create", "nodes", "node-1"), ("get", "nodes", "node-1"),
                                ("update", "nodes", "node-1"), ("patch", "nodes", "node-1")]
    node = client.node()
    labels = node["metadata"]["labels"]
    assert labels["team"] == "x"  # kept
    assert labels["zone"] == "a" and labels["kubernetes.io/hostname"] == "node-1"  # ours win
    assert node["spec"] == {"unschedulable": True}  # the admin's cordon survives a kubelet restart
    assert node["status"]["capacity"]["cpu"] == "4"


async def test_register_propagates_other_errors(machine: Machine, tmp_path: Path) -> None:
    client = FakeClient()
    client.errors[("create", "nodes")] = [ApiException(403, "Forbidden", "no")]
    with pytest.raises(ApiException) as e:
        await agent(tmp_path, client).register()
    assert e.value.status == 403


async def test_renew_lease_creates_then_updates(machine: Machine, tmp_path: Path, ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.renew_lease()
    await a.renew_lease()
    await a.renew_lease()
    assert client.calls == [("create", "leases", "node-1"), ("update", "leases", "node-1"),
                            ("update", "leases", "node-1")]
    assert client.lease()["spec"]["renewTime"] == "2024-05-01T12:00:03.000000Z"
    assert client.lease()["metadata"]["resourceVersion"] == "3"


async def test_renew_lease_conflict_rereads(machine: Machine, tmp_path: Path, ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.renew_lease()
    # Someone else wrote the Lease: our cached resourceVersion is stale.
    other = copy.deepcopy(client.lease())
    other["spec"]["holderIdentity"] = "node-1"
    other["metadata"]["labels"] = {"touched": "yes"}
    client.put(LEASE_API, "leases", other, LEASE_NAMESPACE)
    client.calls.clear()
    await a.renew_lease()
    assert client.calls == [("update", "leases", "node-1"), ("get", "leases", "node-1"),
                            ("update", "leases", "node-1")]
    lease = client.lease()
    assert lease["metadata"]["labels"] == {"touched": "yes"}  # written over what the server had
    assert lease["spec"]["renewTime"] == "2024-05-01T12:00:03.000000Z"


async def test_renew_lease_recreates_a_deleted_lease(machine: Machine, tmp_path: Path,
                                                     ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.renew_lease()
    del client.objects[(LEASE_API, "leases", LEASE_NAMESPACE, "node-1")]
    client.calls.clear()
    await a.renew_lease()
    assert client.calls == [("update", "leases", "node-1"), ("get", "leases", "node-1"),
                            ("create", "leases", "node-1")]
    assert "resourceVersion" in client.lease()["metadata"]


async def test_renew_lease_other_errors_propagate(machine: Machine, tmp_path: Path, ticks: itertools.count) -> None:
    client = FakeClient()
    client.errors[("create", "leases")] = [ApiException(500, "InternalError", "etcd")]
    with pytest.raises(ApiException):
        await agent(tmp_path, client).renew_lease()


async def test_post_status(machine: Machine, tmp_path: Path, ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.register()
    machine.mem_available_kib = 10 * 1024
    await a.post_status()
    st = client.status_patches[-1]
    assert set(st) == {"capacity", "allocatable", "conditions"}
    mem = by_type(st["conditions"])["MemoryPressure"]
    assert mem["status"] == "True"
    assert by_type(st["conditions"])["Ready"]["lastTransitionTime"] == "2024-05-01T12:00:00Z"


async def test_post_status_registers_again_when_node_deleted(machine: Machine, tmp_path: Path,
                                                             ticks: itertools.count) -> None:
    client = FakeClient()
    a = agent(tmp_path, client)
    await a.register()
    del client.objects[("v1", "nodes", "", "node-1")]
    client.calls.clear()
    await a.post_status()
    assert client.calls[:3] == [("patch", "nodes", "node-1"), ("create", "nodes", "node-1"),
                                ("patch", "nodes", "node-1")]
    assert client.node()["status"]["capacity"]["cpu"] == "4"


async def test_start_retries_registration_then_heartbeats(machine: Machine, tmp_path: Path,
                                                          ticks: itertools.count,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fast_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    fake_asyncio = SimpleNamespace(sleep=fast_sleep, **{k: getattr(asyncio, k) for k in (
        "Event", "create_task", "gather", "CancelledError")})
    monkeypatch.setattr(nd, "asyncio", fake_asyncio)
    client = FakeClient()
    client.errors[("create", "nodes")] = [ApiException(503, "ServiceUnavailable", "starting")] * 3
    a = agent(tmp_path, client, lease_interval=10.0, status_interval=10.0)
    await a.start()
    try:
        assert a.registered.is_set()
        assert delays[:3] == [0.5, 1.0, 2.0]  # back-off between attempts
        for _ in range(20):
            await real_sleep(0)
        assert sum(1 for c in client.calls if c == ("update", "leases", "node-1")) >= 2
        assert len(client.status_patches) >= 2
    finally:
        await a.stop()
