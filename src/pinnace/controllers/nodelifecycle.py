"""Node lifecycle controller (kube-controller-manager's ``nodelifecycle`` plus the
NoExecute taint manager, ``tainteviction``).

Three jobs, all level-triggered off the informer caches:

* **Health monitoring.**  A node is alive while its kubelet shows signs of life:
  its Lease in ``kube-node-lease`` is renewed, or its Ready condition's
  ``lastHeartbeatTime`` moves.  We note *when we saw* each change (our own
  monotonic clock, as Kubernetes does, so clock skew between kubelet and
  controller does not matter).  After ``node_monitor_grace_period`` without one,
  the node's Ready/MemoryPressure/DiskPressure/PIDPressure conditions become
  Unknown ("Kubelet stopped posting node status.") via ``/status``.
* **Taints from state** (TaintNodesByCondition and taint-based eviction):
  Ready False → ``node.kubernetes.io/not-ready``, Ready Unknown →
  ``node.kubernetes.io/unreachable`` (both NoSchedule, and NoExecute with
  ``timeAdded``); pressure / network conditions → their NoSchedule taints;
  ``spec.unschedulable`` → ``node.kubernetes.io/unschedulable:NoSchedule``.
  Taints the state no longer calls for are removed; other taints are untouched.
* **NoExecute eviction.**  Pods on a node with NoExecute taints are deleted at
  once unless every such taint is tolerated; a toleration with
  ``tolerationSeconds`` delays that until ``timeAdded + tolerationSeconds``
  (requeued for exactly then); without ``tolerationSeconds`` the pod stays.

Not done (yet): zone-disruption rate limiting of evictions, marking pods
NotReady when their node goes away, and the "out-of-service" force-detach flow.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import times
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
NODE_NAME_INDEX = "spec.nodeName"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# condition type → {status: taint key}, as Kubernetes' nodeConditionToTaintKeyStatusMap.
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
NO_SCHEDULE_KEYS = frozenset({k for m in CONDITION_TAINTS.values() for k in m.values()} | {TAINT_UNSCHEDULABLE})
NO_EXECUTE_KEYS = frozenset({TAINT_NOT_READY, TAINT_UNREACHABLE})
# The conditions a silent kubelet can no longer vouch for (NetworkUnavailable is set by the network plugin).
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
CONFLICT_RETRIES = 5


# -- time ----------------------------------------------------------------------------------


def format_time(t: float) -> str:
    """Epoch seconds → metav1.Time (whole seconds, UTC)."""
    return times.format_time(dt.datetime.fromtimestamp(t, dt.UTC))


def parse_time(s: str | None) -> float | None:
    """RFC 3339 (with or without fractional seconds) → epoch seconds; None if absent or malformed."""
    if not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- taints and tolerations -----------------------------------------------------------------


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def no_execute_taints(node: dict) -> list[dict]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def eviction_time(pod: dict, taints: list[dict], taint_start: Callable[[dict], float]) -> float | None:
    """When (epoch seconds) the pod must go because of ``taints`` (NoExecute), or None if never.

    An untolerated taint means now (``-inf``).  For a tolerated one, the shortest
    ``tolerationSeconds`` among the tolerations matching it counts from when the
    taint was added; matching tolerations without ``tolerationSeconds`` do not
    limit it (Kubernetes' getMinTolerationTime)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return float("-inf")
        limits = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if not limits:
            continue
        at = taint_start(taint) + max(0, min(int(s) for s in limits))
        due = at if due is None else min(due, at)
    return due


def condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


def desired_taints(node: dict, now: float) -> tuple[list[dict], bool]:
    """The node's taints as its conditions and spec call for: managed taints added or
    dropped, everything else (and kept managed taints, with their timeAdded) as is.
    Returns (taints, changed)."""
    spec = node.get("spec") or {}
    current: list[dict] = list(spec.get("taints") or [])
    want: list[tuple[str, str]] = []
    for ctype, by_status in CONDITION_TAINTS.items():
        cond = condition(node, ctype)
        key = by_status.get((cond or {}).get("status") or "")
        if key:
            want.append((key, "NoSchedule"))
    if spec.get("unschedulable"):
        want.append((TAINT_UNSCHEDULABLE, "NoSchedule"))
    ready = (condition(node, "Ready") or {}).get("status")
    if ready == "False":
        want.append((TAINT_NOT_READY, "NoExecute"))
    elif ready == "Unknown":
        want.append((TAINT_UNREACHABLE, "NoExecute"))

    def managed(t: dict) -> bool:
        return (t.get("effect") == "NoSchedule" and t.get("key") in NO_SCHEDULE_KEYS) or \
            (t.get("effect") == "NoExecute" and t.get("key") in NO_EXECUTE_KEYS)

    wanted = set(want)
    kept = [t for t in current if not managed(t) or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in want:
        if (key, effect) not in have:
            taint: dict[str, Any] = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = format_time(now)  # eviction deadlines count from here
            kept.append(taint)
            have.add((key, effect))
    return kept, kept != current


def pod_node_index(pod: dict) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def ensure_pod_node_index(informer: Any) -> None:
    # The pod informer is shared: another controller may have registered the index already.
    try:
        informer.add_index(NODE_NAME_INDEX, pod_node_index)
    except ValueError:
        pass


async def add_disruption_condition(client: RestClient, pod: dict, reason: str, message: str,
                                   fail: bool = False) -> None:
    """Best effort: tell the pod's owners why it is going (DisruptionTarget), as
    Kubernetes does before a controller-initiated deletion.  With ``fail`` a not yet
    finished pod is also marked Failed (PodGC: its kubelet is gone and cannot)."""
    meta = pod["metadata"]
    status: dict[str, Any] = {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": reason, "message": message,
        "lastTransitionTime": format_time(time.time())}]}
    if fail and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        status["phase"] = "Failed"
    try:
        await client.patch("v1", "pods", meta["name"], {"status": status}, namespace=meta.get("namespace", ""),
                           patch_type="strategic", sub="status")
    except ApiException as e:
        if e.status != 404:
            log.debug("pod %s/%s: could not add DisruptionTarget: %s", meta.get("namespace"), meta["name"], e)


# -- the controller -------------------------------------------------------------------------


@dataclass
class _Health:
    probe: float  # monotonic time we last saw a sign of life
    heartbeat: str | None  # the Ready condition's lastHeartbeatTime we last saw
    renew: str | None  # the Lease's renewTime we last saw


class NodeLifecycleController:
    """Nodes and Leases → health and taints (queue ``nodelifecycle``); pods on
    NoExecute-tainted nodes → eviction (queue ``tainteviction``)."""

    NODE_WORKERS = 4
    POD_WORKERS = 4

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder,
                 node_monitor_grace_period: float = 40.0, monitor_period: float = 5.0):
        self.client = client
        self.recorder = recorder
        self.grace = node_monitor_grace_period
        self.monitor_period = monitor_period
        self.nodes = factory.informer("v1", "nodes")
        self.leases = factory.informer("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE)
        self.pods = factory.informer("v1", "pods")
        ensure_pod_node_index(self.pods)
        self.node_queue: RateLimitingQueue[str] = RateLimitingQueue("nodelifecycle")
        self.pod_queue: RateLimitingQueue[str] = RateLimitingQueue("tainteviction")
        self._health: dict[str, _Health] = {}
        # (node, taint key, effect) → (timeAdded as written, precise epoch time): timeAdded has
        # whole seconds only, and tolerationSeconds deadlines should not be up to 1 s early.
        self._taint_seen: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.nodes.add_event_handler(on_add=self._node_added, on_update=self._node_updated,
                                     on_delete=self._node_deleted)
        self.leases.add_event_handler(on_add=self._lease_changed, on_update=lambda _o, n: self._lease_changed(n))
        self.pods.add_event_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n),
                                    on_delete=lambda p: self._evicted.discard(p["metadata"].get("uid", "")))
        # UIDs we have deleted: our own DisruptionTarget write brings the pod back to the queue
        # before the cache shows its deletionTimestamp, and it must not be evicted twice.
        self._evicted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nodelifecycle")

    async def stop(self) -> None:
        self.node_queue.shutdown()
        self.pod_queue.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # Judging health before the lease cache is filled would mark live nodes dead.
        for inf in (self.nodes, self.leases, self.pods):
            while not await inf.wait_for_sync(60.0):
                log.info("nodelifecycle: waiting for %r to sync", inf)
        await asyncio.gather(
            run_workers(self.node_queue, self.NODE_WORKERS, self._sync_node, "nodelifecycle"),
            run_workers(self.pod_queue, self.POD_WORKERS, self._sync_pod, "tainteviction"),
            self._monitor_loop())

    async def _monitor_loop(self) -> None:
        # A silent node produces no events: only this periodic pass notices it.
        while True:
            for name in self.nodes.indexer.keys():
                self.node_queue.add(name)
            await asyncio.sleep(self.monitor_period)

    # -- event handlers ----------------------------------------------------------------

    def _node_added(self, node: dict) -> None:
        self._observe(node)
        self.node_queue.add(node["metadata"]["name"])
        if no_execute_taints(node):
            self._enqueue_pods_on(node["metadata"]["name"])

    def _node_updated(self, old: dict, new: dict) -> None:
        self._observe(new)
        self.node_queue.add(new["metadata"]["name"])
        if no_execute_taints(old) != no_execute_taints(new) and no_execute_taints(new):
            self._enqueue_pods_on(new["metadata"]["name"])

    def _node_deleted(self, node: dict) -> None:
        name = node["metadata"]["name"]
        self._health.pop(name, None)
        for key in [k for k in self._taint_seen if k[0] == name]:
            del self._taint_seen[key]

    def _lease_changed(self, lease: dict) -> None:
        node = self.nodes.lister.get(lease["metadata"]["name"])
        if node is not None:
            self._observe(node)

    def _pod_changed(self, pod: dict) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.nodes.lister.get(node_name)
        if node is not None and no_execute_taints(node):
            self.pod_queue.add(f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}")

    def _enqueue_pods_on(self, node_name: str) -> None:
        for pod in self.pods.indexer.by_index(NODE_NAME_INDEX, node_name):
            self._pod_changed(pod)

    # -- health ------------------------------------------------------------------------

    def _observe(self, node: dict) -> _Health:
        """Record a sign of life if the Ready heartbeat or the lease renewal moved."""
        name = node["metadata"]["name"]
        heartbeat = (condition(node, "Ready") or {}).get("lastHeartbeatTime")
        lease = self.leases.lister.get(name, LEASE_NAMESPACE)
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        now = time.monotonic()
        h = self._health.get(name)
        if h is None:
            # First sight (or a controller restart): a full grace period from now, as Kubernetes does.
            h = self._health[name] = _Health(now, heartbeat, renew)
        elif heartbeat != h.heartbeat or renew != h.renew:
            h.probe, h.heartbeat, h.renew = now, heartbeat, renew
        return h

    def _stale(self, node: dict) -> bool:
        return time.monotonic() - self._observe(node).probe > self.grace

    async def _sync_node(self, name: str) -> None:
        node = self.nodes.lister.get(name)
        if node is None:
            return
        if self._stale(node):
            node = await self._mark_unknown(node)
            if node is None:
                return
        else:
            # Check again right when the grace period would run out, not a monitor period later.
            left = self._health[name].probe + self.grace - time.monotonic()
            self.node_queue.add_after(name, left + 0.01)
        await self._update_taints(node)

    async def _mark_unknown(self, node: dict) -> dict | None:
        was_ready = (condition(node, "Ready") or {}).get("status") == "True"
        now = format_time(time.time())

        def mutate(obj: dict) -> bool:
            if not self._stale(obj):
                return False  # a heartbeat arrived in the meantime
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            changed = False
            for ctype in MONITORED_CONDITIONS:
                c = condition(obj, ctype)
                if c is None:
                    conds.append({"type": ctype, "status": "Unknown", "reason": NEVER_REASON,
                                  "message": NEVER_MESSAGE, "lastTransitionTime": now,
                                  "lastHeartbeatTime": obj["metadata"].get("creationTimestamp")})
                    changed = True
                elif c.get("status") != "Unknown":
                    # lastHeartbeatTime stays: it is the kubelet's, and our write must not look like one.
                    c.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE,
                             lastTransitionTime=now)
                    changed = True
            return changed

        updated, written = await self._update(node, mutate, sub="status")
        if written and updated is not None:
            log.info("node %s: no heartbeat for %.1fs; conditions set to Unknown", node["metadata"]["name"],
                     self.grace)
            if was_ready:
                self.recorder.event(updated, "Normal", "NodeNotReady",
                                    f"Node {node['metadata']['name']} status is now: NodeNotReady")
        return updated

    async def _update_taints(self, node: dict) -> None:
        name = node["metadata"]["name"]
        added_at = time.time()

        def mutate(obj: dict) -> bool:
            taints, changed = desired_taints(obj, added_at)
            if not changed:
                return False
            old = {(t.get("key"), t.get("effect")) for t in (obj.get("spec") or {}).get("taints") or []}
            for t in taints:
                if t.get("timeAdded") and (t["key"], t["effect"]) not in old:
                    # Recorded before the write: the node's watch event (and pod syncs that
                    # read this) may come in before our update call returns.
                    self._taint_seen[(name, t["key"], t["effect"])] = (t["timeAdded"], added_at)
            obj.setdefault("spec", {})["taints"] = taints
            return True

        before = {(t.get("key"), t.get("effect")) for t in (node.get("spec") or {}).get("taints") or []}
        updated, written = await self._update(node, mutate)
        if not written or updated is None:
            return
        after = {(t.get("key"), t.get("effect")) for t in (updated.get("spec") or {}).get("taints") or []}
        log.info("node %s: taints +%s -%s", name, sorted(f"{k}:{e}" for k, e in after - before),
                 sorted(f"{k}:{e}" for k, e in before - after))

    async def _update(self, node: dict, mutate: Callable[[dict], bool], sub: str = ""
                      ) -> tuple[dict | None, bool]:
        """Apply ``mutate`` to a copy and PUT it; on conflict re-read and retry.
        Returns (the node as now known, whether we wrote it); (None, False) when it is gone."""
        name = node["metadata"]["name"]
        obj = copy.deepcopy(node)
        for _ in range(CONFLICT_RETRIES):
            if not mutate(obj):
                return node, False
            try:
                return await self.client.update("v1", "nodes", obj, sub=sub), True
            except ApiException as e:
                if e.status == 404:
                    return None, False
                if e.status != 409:
                    raise
            try:
                node = await self.client.get("v1", "nodes", name)
            except ApiException as e:
                if e.status == 404:
                    return None, False
                raise
            obj = copy.deepcopy(node)
        raise RuntimeError(f"node {name}: conflicting updates, giving up for now")

    # -- NoExecute eviction ------------------------------------------------------------

    def _taint_start(self, node_name: str, taint: dict) -> float:
        key = (node_name, taint.get("key", ""), taint.get("effect", ""))
        added = taint.get("timeAdded") or ""
        seen = self._taint_seen.get(key)
        if seen is not None and seen[0] == added:
            return seen[1]
        # Someone else's taint (or added before we started): its timeAdded, else first sight.
        start = parse_time(added) or time.time()
        self._taint_seen[key] = (added, start)
        return start

    async def _sync_pod(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pod = self.pods.lister.get(name, namespace)
        if pod is None or pod["metadata"].get("deletionTimestamp") or pod["metadata"].get("uid") in self._evicted:
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.lister.get(node_name) if node_name else None
        if node is None:
            return
        taints = no_execute_taints(node)
        if not taints:
            return
        due = eviction_time(pod, taints, lambda t: self._taint_start(node_name, t))
        if due is None:
            return
        wait = due - time.time()
        if wait > 0:
            self.pod_queue.add_after(key, wait)
            return
        uid = pod["metadata"].get("uid", "")
        self._evicted.add(uid)
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}")
        await add_disruption_condition(self.client, pod, "DeletionByTaintManager",
                                       "Taint manager: deleting due to NoExecute taint")
        try:
            await self.client.delete("v1", "pods", name, namespace=namespace, preconditions={"uid": uid})
        except ApiException as e:
            if e.status not in (404, 409):  # gone, or a different pod of that name now
                self._evicted.discard(uid)
                raise
        log.info("pod %s evicted from node %s (NoExecute taint)", key, node_name)


__all__ = [
    "CONDITION_TAINTS",
    "LEASE_NAMESPACE",
    "NODE_NAME_INDEX",
    "TAINT_NOT_READY",
    "TAINT_UNREACHABLE",
    "TAINT_UNSCHEDULABLE",
    "NodeLifecycleController",
    "desired_taints",
    "eviction_time",
    "tolerates",
]
