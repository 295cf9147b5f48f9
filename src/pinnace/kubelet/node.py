"""The kubelet's Node: registration with this machine's real capacity, the
heartbeat Lease in kube-node-lease, and periodic status (conditions,
addresses, nodeInfo).

Like the kubelet, it keeps trying while the API server is unreachable and
never gives up: pods keep running meanwhile, and the node catches up when the
server returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..api.schema import KUBERNETES_VERSION
from ..api.times import now_micro_time as _micro_time
from ..api.times import now_time as _now
from ..client.rest import ApiException, RestClient

log = logging.getLogger(__name__)

LEASE_API = "coordination.k8s.io/v1"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
KUBELET_PORT = 10250


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def meminfo_kib(key: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return 0


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


@dataclass
class Reservations:
    """kube-reserved + system-reserved + the hard eviction threshold, taken off capacity."""

    cpu_millis: int = 100
    memory_mib: int = 256
    ephemeral_storage_gib: int = 1


@dataclass
class NodeConfig:
    name: str
    host_ip: str
    data_dir: Path
    runtime_version: str  # e.g. "runc://1.1.12" or "process://pinnace"
    kubelet_port: int = KUBELET_PORT
    max_pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    reservations: Reservations = field(default_factory=Reservations)
    lease_interval: float = 10.0
    status_interval: float = 10.0


def capacity(config: NodeConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) of this machine."""
    cpus = os.cpu_count() or 1
    mem_kib = meminfo_kib("MemTotal")
    disk = shutil.disk_usage(config.data_dir).total
    cap = {"cpu": str(cpus), "memory": f"{mem_kib}Ki", "ephemeral-storage": f"{disk // 1024}Ki",
           "pods": str(config.max_pods)}
    r = config.reservations
    alloc = {"cpu": f"{max(0, cpus * 1000 - r.cpu_millis)}m",
             "memory": f"{max(0, mem_kib - r.memory_mib * 1024)}Ki",
             "ephemeral-storage": f"{max(0, disk - r.ephemeral_storage_gib * 2**30) // 1024}Ki",
             "pods": str(config.max_pods)}
    return cap, alloc


def conditions(config: NodeConfig, heartbeat: str, since: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Pressure conditions measured now; ``since`` remembers (status, lastTransitionTime) per type."""
    mem_available = meminfo_kib("MemAvailable")
    usage = shutil.disk_usage(config.data_dir)
    # type: (under pressure, (reason, message) when True, (reason, message) when False), as the kubelet
    pressures = {
        "MemoryPressure": (mem_available and mem_available < 100 * 1024,
                           ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
                           ("KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
        "DiskPressure": (usage.free < usage.total * 0.10,
                         ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                         ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
        "PIDPressure": (False,
                        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                        ("KubeletHasSufficientPID", "kubelet has sufficient PID available")),
    }
    out = []

    def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
        prev = since.get(ctype)
        transition = prev[1] if prev and prev[0] == status else heartbeat
        since[ctype] = (status, transition)
        return {"type": ctype, "status": status, "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
                "reason": reason, "message": message}

    for ctype, (bad, (bad_reason, bad_message), (ok_reason, ok_message)) in pressures.items():
        if bad:
            out.append(cond(ctype, "True", bad_reason, bad_message))
        else:
            out.append(cond(ctype, "False", ok_reason, ok_message))
    out.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    return out


class NodeAgent:
    """Registers the Node and keeps its Lease and status fresh until stopped."""

    def __init__(self, client: RestClient, config: NodeConfig):
        self.client = client
        self.config = config
        self._since: dict[str, tuple[str, str]] = {}
        self._lease: dict | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.registered = asyncio.Event()

    def node_object(self) -> dict[str, Any]:
        c = self.config
        cap, alloc = capacity(c)
        machine_id = _read("/etc/machine-id") or uuid.uuid5(uuid.NAMESPACE_DNS, c.name).hex
        kubelet_version = f"v{KUBERNETES_VERSION}-pinnace.{__version__}"
        labels = {"kubernetes.io/hostname": c.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch(),
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch(), **c.labels}
        spec: dict[str, Any] = {}
        if c.taints:
            spec["taints"] = [dict(t) for t in c.taints]
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": c.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": spec,
                "status": {
                    "capacity": cap, "allocatable": alloc,
                    "conditions": conditions(c, _now(), self._since),
                    "addresses": [{"type": "InternalIP", "address": c.host_ip},
                                  {"type": "Hostname", "address": c.name}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": c.kubelet_port}},
                    "nodeInfo": {"machineID": machine_id, "systemUUID": machine_id,
                                 "bootID": _read("/proc/sys/kernel/random/boot_id"),
                                 "kernelVersion": platform.release(), "osImage": os_image(),
                                 "containerRuntimeVersion": c.runtime_version, "kubeletVersion": kubelet_version,
                                 "kubeProxyVersion": kubelet_version, "operatingSystem": "linux",
                                 "architecture": arch()}}}

    async def start(self) -> None:
        """Register (retrying until the API server answers), then heartbeat in the background."""
        await self._retry(self.register, "register node")
        self.registered.set()
        self._tasks = [asyncio.create_task(self._loop(self.renew_lease, self.config.lease_interval, "renew lease")),
                       asyncio.create_task(self._loop(self.post_status, self.config.status_interval, "post status"))]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _retry(self, fn: Any, what: str) -> None:
        delay = 0.5
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API server may be down or restarting: keep trying
                log.warning("%s failed (%s); retrying in %.1fs", what, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _loop(self, fn: Any, interval: float, what: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("%s failed: %s", what, e)

    async def register(self) -> None:
        body = self.node_object()
        try:
            await self.client.create("v1", "nodes", body)
        except ApiException as e:
            if e.status != 409:
                raise
            # Registered before (a restarted kubelet): take it over with fresh labels and status.
            node = await self.client.get("v1", "nodes", self.config.name)
            node["metadata"]["labels"] = {**(node["metadata"].get("labels") or {}), **body["metadata"]["labels"]}
            await self.client.update("v1", "nodes", node)
        await self.client.patch("v1", "nodes", self.config.name, {"status": body["status"]}, sub="status")
        await self.renew_lease()

    async def post_status(self) -> None:
        cap, alloc = capacity(self.config)
        status = {"capacity": cap, "allocatable": alloc, "conditions": conditions(self.config, _now(), self._since)}
        try:
            await self.client.patch("v1", "nodes", self.config.name, {"status": status}, sub="status")
        except ApiException as e:
            if e.status != 404:
                raise
            await self.register()  # the Node was deleted under us: register again, as the kubelet does

    async def renew_lease(self) -> None:
        """One PUT of the cached Lease with a new renewTime, like the kubelet; on a conflict
        (or a deleted Lease) start again from what the server has."""
        try:
            await self._write_lease()
        except ApiException as e:
            if e.status not in (404, 409):
                raise
            try:
                self._lease = await self.client.get(LEASE_API, "leases", self.config.name, LEASE_NAMESPACE)
            except ApiException as e2:
                if e2.status != 404:
                    raise
                self._lease = None
            await self._write_lease()

    async def _write_lease(self) -> None:
        name = self.config.name
        lease = self._lease or {
            "apiVersion": LEASE_API, "kind": "Lease", "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS}}
        lease["spec"]["renewTime"] = _micro_time()
        if "resourceVersion" in lease["metadata"]:
            self._lease = await self.client.update(LEASE_API, "leases", lease, LEASE_NAMESPACE)
        else:
            self._lease = await self.client.create(LEASE_API, "leases", lease, LEASE_NAMESPACE)


__all__ = ["KUBELET_PORT", "NodeAgent", "NodeConfig", "Reservations", "capacity"]
