"""Simulated nodes (kwok-style): many fake kubelets in one process, no containers.

:class:`NodeSimulator` registers N Node objects, keeps their Leases and Ready
conditions fresh, and drives every pod bound to them through the phases a
kubelet would report (Running, Succeeded/Failed, graceful deletion) — enough
for the scheduler, controllers and clients to be tested and benchmarked at
scale.

Cost model (so 1,000 nodes stay cheap): one scheduler task walks a heap of due
heartbeats, spread evenly over each interval; every API request goes through
one semaphore (``max_in_flight``); pods need no task while they wait, only a
timer handle; one watch for all nodes and one for all pods, filtered in memory.

Failure injection: annotate a Node ``sim.pinnace.io/heartbeat: "stop"`` (or
call :meth:`NodeSimulator.stop_heartbeat`) and its "kubelet" goes silent — no
lease renewals, no status, no pod updates — until the annotation is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from ..api.times import now_micro_time as _micro_time
from ..client.rest import ApiException, RestClient
from . import pods as podstatus
from ._listwatch import list_watch

log = logging.getLogger(__name__)

T = TypeVar("T")

HEARTBEAT_ANNOTATION = "sim.pinnace.io/heartbeat"
SIMULATED_ANNOTATION = "sim.pinnace.io/node"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
KUBELET_VERSION = "v1.32.0-pinnace-sim"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
RETRY_SECONDS = 1.0
# Kubelet CrashLoopBackOff: 10 s doubling up to 5 min between restarts.
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0


def parse_labels(text: str | None) -> dict[str, str]:
    """``"k=v,k2=v2"`` → ``{"k": "v", "k2": "v2"}`` (a bare ``k`` gets an empty value)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if item:
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
    return out


def parse_taints(text: str | None) -> list[dict[str, str]]:
    """``"key=value:Effect,key2:Effect"`` → Node ``spec.taints`` entries."""
    out: list[dict[str, str]] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        kv, sep, effect = item.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise ValueError(f"taint {item!r}: expected key[=value]:Effect, Effect one of {', '.join(TAINT_EFFECTS)}")
        key, has_value, value = kv.partition("=")
        taint = {"key": key, "effect": effect}
        if has_value:
            taint["value"] = value
        out.append(taint)
    return out


def node_pod_cidr(index: int, base: str = "10.42.0.0", avoid: str | None = "10.43.0.0/16") -> str:
    """The ``index``-th /24 from ``base`` (10.42.{i}.0/24 for the first 256 nodes), skipping ``avoid``
    — by default the server's Service range, which sits right after 10.42.0.0/16."""
    addr = int(ipaddress.IPv4Address(base)) + index * 256
    if avoid:
        net = ipaddress.ip_network(avoid)
        if addr >= int(net.network_address):
            addr += net.num_addresses
    return f"{ipaddress.IPv4Address(addr)}/24"


@dataclass(eq=False)
class _Node:
    name: str
    index: int
    pod_cidr: str
    internal_ip: str
    uid: str = ""
    lease: dict | None = None
    registered_at: str = ""
    ready_since: str = ""
    observed_ready: str | None = None  # the Ready status last seen in the API (a controller may set Unknown)
    registered: bool = False
    deleted: bool = False
    paused_manual: bool = False
    paused_annotation: bool = False
    was_active: bool = False
    busy: set[str] = field(default_factory=set)  # heartbeat kinds in flight: never two of a kind at once
    pods: dict[str, _Pod] = field(default_factory=dict)
    _used: set[int] = field(default_factory=set)
    _next: int = 0

    @property
    def active(self) -> bool:
        return self.registered and not self.deleted and not self.paused_manual and not self.paused_annotation

    def allocate_ip(self) -> str:
        net = ipaddress.ip_network(self.pod_cidr, strict=False)
        size = net.num_addresses - 3  # not the network, the gateway (.1) or broadcast
        if size <= 0:
            raise ValueError(f"pod CIDR {self.pod_cidr} of node {self.name} is too small")
        # Next-fit, so a freed address is not handed out again at once (like host-local IPAM).
        for _ in range(size):
            offset = 2 + self._next % size
            self._next += 1
            if offset not in self._used:
                self._used.add(offset)
                return str(net.network_address + offset)
        # Exhausted (more pods than addresses): share rather than fail — nothing routes to them anyway.
        offset = 2 + self._next % size
        self._next += 1
        return str(net.network_address + offset)

    def reserve_ip(self, ip: str) -> None:
        net = ipaddress.ip_network(self.pod_cidr, strict=False)
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(ip)
            if addr in net:
                self._used.add(int(addr) - int(net.network_address))

    def release_ip(self, ip: str) -> None:
        if ip:
            net = ipaddress.ip_network(self.pod_cidr, strict=False)
            with contextlib.suppress(ValueError):
                self._used.discard(int(ipaddress.ip_address(ip)) - int(net.network_address))


@dataclass(eq=False)
class _Pod:
    uid: str
    namespace: str
    name: str
    node: _Node
    obj: dict
    stage: str = "new"  # new → starting → running → done; "gone" once deleted from the API
    terminating: bool = False
    ip: str = ""
    start_time: str = ""
    started_at: str = ""
    started_mono: float = 0.0
    restarts: int = 0
    ready: bool | None = None
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class NodeSimulator:
    """Runs ``count`` simulated nodes named ``{name_prefix}{i}`` against one API server."""

    def __init__(self, *, client: RestClient | None = None, kubeconfig: str | Path | None = None, count: int,
                 name_prefix: str = "sim-node-", index_offset: int = 0, cpu: str = "32", memory: str = "256Gi",
                 pods: int = 110, ephemeral_storage: str = "100Gi", labels: dict[str, str] | None = None,
                 taints: list[dict[str, str]] | None = None, zones: int = 3, start_delay: float = 0.5,
                 lease_interval: float = 10.0, status_interval: float = 60.0, max_in_flight: int = 16,
                 delete_grace_cap: float = 1.0, delete_nodes_on_exit: bool = False):
        if (client is None) == (kubeconfig is None):
            raise ValueError("pass exactly one of client or kubeconfig")
        if count < 0 or zones < 1 or lease_interval <= 0 or status_interval <= 0 or max_in_flight < 1:
            raise ValueError("count >= 0, zones >= 1, intervals > 0 and max_in_flight >= 1 are required")
        self._owns_client = client is None
        self.client = client or RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-node-simulator")
        self.count = count
        self.name_prefix = name_prefix
        self.capacity = {"cpu": str(cpu), "memory": str(memory), "ephemeral-storage": str(ephemeral_storage),
                         "pods": str(pods), "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
        self.labels = dict(labels or {})
        self.taints = list(taints or [])
        self.zones = zones
        self.start_delay = start_delay
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.max_in_flight = max_in_flight
        self.delete_grace_cap = delete_grace_cap
        self.delete_nodes_on_exit = delete_nodes_on_exit
        self._nodes: dict[str, _Node] = {}
        for i in range(index_offset, index_offset + count):
            name = f"{name_prefix}{i}"
            self._nodes[name] = _Node(name, i, node_pod_cidr(i), f"10.0.{(i // 256) % 256}.{i % 256}")
        self._pods: dict[str, _Pod] = {}
        self._sem: asyncio.Semaphore | None = None
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._background: list[asyncio.Task[Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pods_synced = asyncio.Event()
        self._started = False
        self._stopping = False

    # -- public ------------------------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        return list(self._nodes)

    async def start(self) -> None:
        """Register every node (retrying until the API server takes them) and start the heartbeat,
        node and pod loops; returns once all nodes are registered and the first pod list is in."""
        if self._started:
            raise RuntimeError("NodeSimulator already started")
        self._started = True
        names = list(self._nodes)
        log.info("simulating %d nodes (%s) against %s: lease every %gs, status every %gs, %d requests in flight",
                 self.count, f"{names[0]}..{names[-1]}" if names else "none", self.client.config.server,
                 self.lease_interval, self.status_interval, self.max_in_flight)
        began = time.monotonic()
        self._sem = asyncio.Semaphore(self.max_in_flight)
        # Watches first, so a heartbeat-stop annotation on a pre-existing node counts from the start.
        self._background.append(asyncio.create_task(list_watch(
            self.client, "v1", "nodes", on_list=self._on_node_list, on_event=self._on_node_event),
            name="simulator-node-watch"))
        self._background.append(asyncio.create_task(list_watch(
            self.client, "v1", "pods", on_list=self._on_pod_list, on_event=self._on_pod_event,
            synced=self._pods_synced), name="simulator-pod-watch"))
        try:
            async with asyncio.TaskGroup() as tg:  # one bad node (say, an invalid quantity) fails them all
                for node in self._nodes.values():
                    tg.create_task(self._register(node))
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        # Spread first heartbeats evenly over one interval so renewals never come in bursts.
        now, n = asyncio.get_running_loop().time(), max(1, self.count)
        for k, name in enumerate(self._nodes):
            self._push(now + self.lease_interval * (k + 1) / n, "lease", name)
            self._push(now + self.status_interval * (k + 1) / n, "status", name)
        self._background.append(asyncio.create_task(self._heartbeat_loop(), name="simulator-heartbeats"))
        await self._pods_synced.wait()
        log.info("simulated nodes registered: %d in %.1fs", self.count, time.monotonic() - began)

    async def stop(self) -> None:
        """Stop every loop and timer; with ``delete_nodes_on_exit``, delete the nodes and their leases."""
        self._stopping = True
        for p in self._pods.values():
            p.cancel_timer()
        tasks = [*self._background, *self._tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        if self.delete_nodes_on_exit and self._started:
            await asyncio.gather(*(self._delete_node(n) for n in self._nodes.values()), return_exceptions=True)
            log.info("deleted %d simulated nodes", self.count)
        if self._owns_client:
            await self.client.close()

    def stop_heartbeat(self, name: str) -> None:
        """Make node ``name`` go silent (as if its kubelet died) until :meth:`resume_heartbeat`."""
        node = self._node(name)
        node.paused_manual = True
        self._active_changed(node)

    def resume_heartbeat(self, name: str) -> None:
        node = self._node(name)
        node.paused_manual = False
        self._active_changed(node)

    # -- plumbing ----------------------------------------------------------------------

    def _node(self, name: str) -> _Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"{name} is not a node of this simulator") from None

    async def _req(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        assert self._sem is not None
        async with self._sem:
            return await fn(*args, **kwargs)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._stopping:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("simulator task failed: %r", task.exception())

    # -- nodes -------------------------------------------------------------------------

    def _conditions(self, n: _Node, heartbeat: str) -> list[dict[str, Any]]:
        def cond(ctype: str, status: str, reason: str, message: str, since: str) -> dict[str, Any]:
            return {"type": ctype, "status": status, "lastHeartbeatTime": heartbeat, "lastTransitionTime": since,
                    "reason": reason, "message": message}

        since = n.registered_at
        return [
            cond("NetworkUnavailable", "False", "RouteCreated", "simulated network is up", since),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
                 since),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", since),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", since),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", n.ready_since),
        ]

    def _node_object(self, n: _Node) -> dict[str, Any]:
        labels = {"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                  "node.kubernetes.io/instance-type": "simulated",
                  "topology.kubernetes.io/zone": f"zone-{n.index % self.zones}", **self.labels}
        spec: dict[str, Any] = {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]}
        if self.taints:
            spec["taints"] = [dict(t) for t in self.taints]
        node_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{n.name}.sim.pinnace.io")
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "labels": labels, "annotations": {
                SIMULATED_ANNOTATION: "true", "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": spec,
            "status": {
                "capacity": dict(self.capacity), "allocatable": dict(self.capacity),
                "conditions": self._conditions(n, n.registered_at),
                "addresses": [{"type": "InternalIP", "address": n.internal_ip},
                              {"type": "Hostname", "address": n.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": node_uuid.hex, "systemUUID": str(node_uuid),
                             "bootID": str(uuid.uuid5(node_uuid, "boot")), "kernelVersion": "6.1.0-simulated",
                             "osImage": "Pinnace Simulated Linux", "containerRuntimeVersion": "simulated://1.0",
                             "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                             "operatingSystem": "linux", "architecture": "amd64"},
            },
        }

    async def _register(self, n: _Node) -> None:
        """Create the Node, or take over an existing one (a restarted kubelet), then its Lease.
        Retries for ever, as a kubelet does: the API server may still be coming up."""
        delay = RETRY_SECONDS
        while True:
            try:
                await self._register_once(n)
                return
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if 400 <= e.status < 500 and e.status not in (409, 429):
                    raise  # invalid or forbidden: retrying will not help
                log.warning("registering node %s failed (%s); retrying in %gs", n.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception as e:
                log.warning("registering node %s failed (%s); retrying in %gs", n.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _register_once(self, n: _Node) -> None:
        n.registered_at = n.ready_since = podstatus.now_iso()
        body = self._node_object(n)
        try:
            node = await self._req(self.client.create, "v1", "nodes", body)
        except ApiException as e:
            if e.status != 409:
                raise
            node = await self._adopt_node(n, body)
        self._observe_node(n, node)
        n.uid = node["metadata"]["uid"]
        n.deleted = False
        if not (n.paused_annotation or n.paused_manual):  # a node marked dead stays silent, lease included
            await self._renew_lease(n)
        n.registered = True
        # Registration wrote a fresh lease and status: only pods need driving now.
        n.was_active = n.active
        if n.was_active:
            for p in list(n.pods.values()):
                self._drive(p)

    async def _adopt_node(self, n: _Node, body: dict[str, Any]) -> dict[str, Any]:
        for _ in range(5):
            node = await self._req(self.client.get, "v1", "nodes", n.name)
            meta, spec = node["metadata"], node.setdefault("spec", {})
            meta["labels"] = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
            meta["annotations"] = {**body["metadata"]["annotations"], **(meta.get("annotations") or {})}
            spec["taints"] = body["spec"].get("taints") or []
            if spec.get("podCIDR"):
                n.pod_cidr = spec["podCIDR"]  # immutable once set: use what the node already has
            else:
                spec["podCIDR"], spec["podCIDRs"] = n.pod_cidr, [n.pod_cidr]
            ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
            if ready.get("status") == "True" and ready.get("lastTransitionTime"):
                n.ready_since = ready["lastTransitionTime"]
            try:
                node = await self._req(self.client.update, "v1", "nodes", node)
            except ApiException as e:
                if e.status == 409:
                    continue
                raise
            if (meta.get("annotations") or {}).get(HEARTBEAT_ANNOTATION, "").strip().lower() == "stop":
                return node  # marked dead: leave its status as it is
            status = {**body["status"], "conditions": self._conditions(n, n.registered_at)}
            return await self._req(self.client.patch, "v1", "nodes", n.name, {"status": status}, sub="status")
        raise RuntimeError(f"node {n.name} keeps changing under us")

    def _lease_object(self, n: _Node) -> dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": n.name, "namespace": LEASE_NAMESPACE, "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": n.uid}]},
                "spec": {"holderIdentity": n.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                         "renewTime": _micro_time()}}

    async def _renew_lease(self, n: _Node) -> None:
        """PUT the cached lease with a new renewTime (one request, like the kubelet); GET on conflict."""
        api = "coordination.k8s.io/v1"
        for _ in range(3):
            if n.lease is None:
                try:
                    n.lease = await self._req(self.client.create, api, "leases", self._lease_object(n),
                                              namespace=LEASE_NAMESPACE)
                    return
                except ApiException as e:
                    if e.status != 409:
                        raise
                    n.lease = await self._req(self.client.get, api, "leases", n.name, namespace=LEASE_NAMESPACE)
            lease = n.lease
            lease["spec"].update(holderIdentity=n.name, leaseDurationSeconds=LEASE_DURATION_SECONDS,
                                 renewTime=_micro_time())
            try:
                n.lease = await self._req(self.client.update, api, "leases", lease, namespace=LEASE_NAMESPACE)
                return
            except ApiException as e:
                if e.status == 404:
                    n.lease = None
                elif e.status == 409:
                    n.lease = await self._req(self.client.get, api, "leases", n.name, namespace=LEASE_NAMESPACE)
                else:
                    raise
        raise RuntimeError(f"lease of node {n.name} keeps conflicting")

    async def _post_status(self, n: _Node) -> None:
        now = podstatus.now_iso()
        if n.observed_ready not in (None, "True"):
            n.ready_since = now  # back from Unknown/False (e.g. the node controller gave up on us)
        conds = self._conditions(n, now)
        try:
            node = await self._req(self.client.patch, "v1", "nodes", n.name, {"status": {"conditions": conds}},
                                   sub="status")
        except ApiException as e:
            if e.status == 404 and not self._stopping:
                self._node_gone(n)
                return
            raise
        self._observe_node(n, node)

    async def _delete_node(self, n: _Node) -> None:
        for api, plural, ns in (("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE), ("v1", "nodes", "")):
            try:
                await self._req(self.client.delete, api, plural, n.name, namespace=ns)
            except ApiException as e:
                if e.status != 404:
                    raise

    def _node_gone(self, n: _Node) -> None:
        if not n.deleted:
            # A kubelet does not re-register a deleted node until it restarts: neither do we.
            log.info("node %s was deleted from the API; it stops heartbeating", n.name)
            n.deleted = True
            self._active_changed(n)

    def _observe_node(self, n: _Node, node: dict[str, Any]) -> None:
        meta = node.get("metadata") or {}
        n.observed_ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                                 if c.get("type") == "Ready"), None)
        stop = (meta.get("annotations") or {}).get(HEARTBEAT_ANNOTATION, "").strip().lower() == "stop"
        if stop != n.paused_annotation:
            n.paused_annotation = stop
            self._active_changed(n)

    def _on_node_list(self, items: list[dict]) -> None:
        seen = set()
        for node in items:
            n = self._nodes.get(node["metadata"]["name"])
            if n is not None:
                seen.add(n.name)
                self._observe_node(n, node)
        for n in self._nodes.values():
            if n.registered and n.name not in seen:
                self._node_gone(n)

    def _on_node_event(self, etype: str, node: dict) -> None:
        n = self._nodes.get(node["metadata"]["name"])
        if n is None:
            return
        if etype == "DELETED":
            if n.registered and node["metadata"].get("uid") == n.uid:
                self._node_gone(n)
        elif node["metadata"].get("uid") == n.uid or not n.registered:
            self._observe_node(n, node)

    def _active_changed(self, n: _Node) -> None:
        if n.active == n.was_active or not n.registered:
            return
        n.was_active = n.active
        if n.active:
            log.info("node %s: heartbeat resumed", n.name)
            self._heartbeat(n, "lease")
            self._heartbeat(n, "status")
            for p in list(n.pods.values()):
                self._drive(p)
        elif not n.deleted:
            log.info("node %s: heartbeat stopped", n.name)

    # -- heartbeats --------------------------------------------------------------------

    def _push(self, due: float, kind: str, name: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, name))

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        # Batch whatever falls due within a few ms: fewer wake-ups, same spread.
        slack = min(0.05, self.lease_interval / 20)
        while self._heap:
            now = loop.time()
            due = self._heap[0][0]
            if due > now + slack:
                await asyncio.sleep(due - now)
                continue
            while self._heap and self._heap[0][0] <= now + slack:
                due, _, kind, name = heapq.heappop(self._heap)
                interval = self.lease_interval if kind == "lease" else self.status_interval
                nxt = due + interval
                if nxt <= now:  # fell behind (overloaded server): skip missed beats, keep the phase
                    nxt += interval * ((now - nxt) // interval + 1)
                self._push(nxt, kind, name)
                n = self._nodes[name]
                if n.active:
                    self._heartbeat(n, kind)

    def _heartbeat(self, n: _Node, kind: str) -> None:
        if kind in n.busy:
            return  # the previous one is still in flight; the server is slow, don't pile on
        n.busy.add(kind)
        self._spawn(self._beat(n, kind))

    async def _beat(self, n: _Node, kind: str) -> None:
        try:
            if kind == "lease":
                await self._renew_lease(n)
            else:
                await self._post_status(n)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("node %s: %s heartbeat failed: %s", n.name, kind, e)
        finally:
            n.busy.discard(kind)

    # -- pods --------------------------------------------------------------------------

    def _on_pod_list(self, items: list[dict]) -> None:
        live = set()
        for pod in items:
            live.add(pod["metadata"].get("uid"))
            self._on_pod_event("MODIFIED", pod)
        for uid in [u for u in self._pods if u not in live]:
            self._forget(uid)

    def _on_pod_event(self, etype: str, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        if etype == "DELETED":
            self._forget(uid)
            return
        p = self._pods.get(uid)
        if p is None:
            n = self._nodes.get((pod.get("spec") or {}).get("nodeName") or "")
            if n is None:
                return
            p = _Pod(uid, meta.get("namespace", ""), meta.get("name", ""), n, pod)
            self._pods[uid] = p
            n.pods[uid] = p
        p.obj = pod
        self._drive(p)

    def _forget(self, uid: str) -> None:
        p = self._pods.pop(uid, None)
        if p is not None:
            p.stage = "gone"
            p.cancel_timer()
            p.node.pods.pop(uid, None)
            p.node.release_ip(p.ip)

    def _drive(self, p: _Pod) -> None:
        """Decide the pod's next step from its latest object; never blocks (work goes to tasks/timers)."""
        if not p.node.active or p.stage == "gone":
            return  # a silent kubelet does nothing; resuming the node drives its pods again
        pod, loop = p.obj, asyncio.get_running_loop()
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp"):
            if not p.terminating:
                p.terminating = True
                p.cancel_timer()
                self._spawn(self._terminate(p))
            return
        if p.stage == "done":
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            p.stage = "done"
            p.cancel_timer()
            p.node.release_ip(p.ip)
            return
        if p.stage == "new":
            if status.get("phase") == "Running" and status.get("podIP"):
                self._adopt_pod(p, status)
            else:
                p.stage = "starting"
                delay = podstatus.annotation_float(pod, podstatus.START_DELAY, self.start_delay) or 0.0
                p.timer = loop.call_later(delay, self._fire, p, self._start)
                return
        if p.stage == "running":
            if p.ready is not None and podstatus.wants_ready(pod) != p.ready:
                p.ready = podstatus.wants_ready(pod)
                self._spawn(self._write_running(p))
            exit_after = podstatus.annotation_float(pod, podstatus.EXIT_AFTER, None)
            if exit_after is not None and p.timer is None:
                backoff = min(BACKOFF_BASE * 2 ** (p.restarts - 1), BACKOFF_MAX) if p.restarts else 0.0
                due = p.started_mono + exit_after + backoff
                p.timer = loop.call_later(max(0.0, due - loop.time()), self._fire, p, self._exit)

    def _adopt_pod(self, p: _Pod, status: dict) -> None:
        """A pod this simulator (an earlier run of it) already started: carry on from its status."""
        p.ip = status["podIP"]
        p.node.reserve_ip(p.ip)
        p.start_time = status.get("startTime") or podstatus.now_iso()
        cstats = status.get("containerStatuses") or []
        p.started_at = next((c["state"]["running"].get("startedAt") for c in cstats
                             if (c.get("state") or {}).get("running")), None) or p.start_time
        p.restarts = max((c.get("restartCount") or 0 for c in cstats), default=0)
        p.ready = all(c.get("ready") for c in cstats) if cstats else True
        try:
            began = dt.datetime.strptime(p.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            age = (dt.datetime.now(dt.UTC) - began).total_seconds()
        except ValueError:
            age = 0.0
        p.started_mono = asyncio.get_running_loop().time() - max(0.0, age)
        p.stage = "running"

    def _fire(self, p: _Pod, step: Callable[[_Pod], Coroutine[Any, Any, None]]) -> None:
        p.timer = None
        self._spawn(step(p))

    def _retry(self, p: _Pod) -> None:
        if p.stage != "gone" and p.timer is None and not self._stopping:
            p.timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._redrive, p)

    def _redrive(self, p: _Pod) -> None:
        p.timer = None
        self._drive(p)

    async def _patch_status(self, p: _Pod, status: dict[str, Any]) -> bool | None:
        """True when written; None when the pod is gone; False on another error (retry later)."""
        try:
            await self._req(self.client.patch, "v1", "pods", p.name, {"status": status}, namespace=p.namespace,
                            sub="status")
            return True
        except ApiException as e:
            if e.status == 404:
                return None
            log.warning("pod %s/%s: status update failed: %s", p.namespace, p.name, e)
        except (OSError, TimeoutError, aiohttp.ClientError) as e:
            log.warning("pod %s/%s: status update failed: %s", p.namespace, p.name, e)
        return False

    def _running(self, p: _Pod, last_exit: tuple[int, str, str] | None = None) -> dict[str, Any]:
        return podstatus.running_status(p.obj, host_ip=p.node.internal_ip, pod_ip=p.ip, start_time=p.start_time,
                                        started_at=p.started_at, ready=bool(p.ready), restarts=p.restarts,
                                        last_exit=last_exit)

    async def _start(self, p: _Pod) -> None:
        async with p.lock:
            if p.stage != "starting" or p.terminating:
                return
            if not p.node.active:
                p.stage = "new"  # start over when the node comes back
                return
            if not p.ip and not (p.obj.get("spec") or {}).get("hostNetwork"):
                p.ip = p.node.allocate_ip()
            p.start_time = p.started_at = podstatus.now_iso()
            p.started_mono = asyncio.get_running_loop().time()
            p.ready = podstatus.wants_ready(p.obj)
            ok = await self._patch_status(p, self._running(p))
            if ok is None or p.stage == "gone":
                return
            if not ok:
                p.stage = "new"
                self._retry(p)
                return
            p.stage = "running"
            self._drive(p)  # schedules the exit, if the pod asks for one

    async def _write_running(self, p: _Pod) -> None:
        async with p.lock:
            if p.stage == "running" and not p.terminating and p.node.active:
                if await self._patch_status(p, self._running(p)) is False:
                    p.ready = not p.ready  # not written: let the next drive notice the difference again
                    self._retry(p)

    async def _exit(self, p: _Pod) -> None:
        async with p.lock:
            if p.stage != "running" or p.terminating or not p.node.active:
                return
            code = podstatus.exit_code(p.obj)
            if podstatus.restarts_on(p.obj, code):
                now = podstatus.now_iso()
                last = (code, p.started_at, now)
                p.restarts += 1
                p.started_at, p.started_mono = now, asyncio.get_running_loop().time()
                ok = await self._patch_status(p, self._running(p, last))
                if ok is False:
                    p.restarts -= 1
                    self._retry(p)
                elif ok:
                    self._drive(p)  # next exit, after CrashLoopBackOff
                return
            status = podstatus.terminal_status(p.obj, host_ip=p.node.internal_ip, pod_ip=p.ip,
                                               start_time=p.start_time, started_at=p.started_at, code=code,
                                               restarts=p.restarts)
            ok = await self._patch_status(p, status)
            if ok is False:
                self._retry(p)
            elif ok and p.stage != "gone":
                p.stage = "done"
                p.node.release_ip(p.ip)

    async def _terminate(self, p: _Pod) -> None:
        """Graceful deletion: 'stop' the containers (waiting at most ``delete_grace_cap``), report them
        terminated, then remove the pod for good with gracePeriodSeconds=0 — the kubelet's last word."""
        async with p.lock:
            grace = float(p.obj["metadata"].get("deletionGracePeriodSeconds") or 0)
            await asyncio.sleep(min(grace, self.delete_grace_cap))
            if p.stage == "gone":
                return
            if not p.node.active:
                p.terminating = False  # the node died mid-shutdown: pick up again when it resumes
                return
            if p.stage == "running":
                status = podstatus.terminal_status(p.obj, host_ip=p.node.internal_ip, pod_ip=p.ip,
                                                   start_time=p.start_time, started_at=p.started_at, code=0,
                                                   restarts=p.restarts)
                if await self._patch_status(p, status) is None:
                    return
                p.stage = "done"
            try:
                await self._req(self.client.delete, "v1", "pods", p.name, namespace=p.namespace,
                                gracePeriodSeconds=0, preconditions={"uid": p.uid})
            except ApiException as e:
                if e.status not in (404, 409):
                    log.warning("pod %s/%s: delete failed: %s", p.namespace, p.name, e)
                    p.terminating = False
                    self._retry(p)
