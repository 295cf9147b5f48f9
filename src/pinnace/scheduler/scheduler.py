"""The scheduler process: informers → cache and queue → scheduling cycle → binding.

- A node-state cache (:class:`~.model.ClusterSnapshot`) fed by informers, so a
  scheduling cycle makes no API reads.  A chosen pod is *assumed* on its node
  at once (its resources are reserved) and bound in the background through
  ``pods/binding``; the assumption ends when the informer shows the pod bound,
  or is undone if the binding fails.
- The queue (:mod:`.queue`) parks unschedulable pods until a cluster event
  (node added or changed, pod deleted) might make them fit.
- Failures are reported as Kubernetes does: a ``FailedScheduling`` event with
  the per-reason node counts, and the pod's ``PodScheduled`` condition.
- Preemption: a pending pod of higher priority evicts the fewest lower-priority
  pods on one node (graceful delete) and is nominated there.
- ``schedulerName`` is respected, so another scheduler can coexist; with leader
  election two instances never bind the same pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from typing import Any

from ..api.times import now_time as _now
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.leaderelection import LeaderElector
from ..client.rest import ApiException, RestClient
from . import framework, preemption
from .model import ClusterSnapshot
from .queue import SchedulingQueue, pod_key

log = logging.getLogger(__name__)

# Bindings in flight at once.  Each concurrent request needs its own connection, so
# without a bound a burst of bindings opens (and TLS-handshakes) hundreds of them;
# 64 keeps the API server's group commit busy without that.
MAX_IN_FLIGHT_BINDINGS = 64

# Node changes that can make a waiting pod fit.
NODE_FIELDS_THAT_MATTER = ("allocatable", "labels", "taints", "unschedulable", "conditions")


def _node_view(node: dict) -> tuple:
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (repr(status.get("allocatable")), repr(meta.get("labels")), repr(spec.get("taints")),
            spec.get("unschedulable"), repr(ready))


def is_pending(pod: dict) -> bool:
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    return not spec.get("nodeName") and not meta.get("deletionTimestamp") and \
        status.get("phase") not in ("Succeeded", "Failed")


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, client: RestClient, config: dict | None = None, *, seed: int | None = None):
        self.client = client
        self.profiles = {p.scheduler_name: p for p in framework.profiles_from_config(config)}
        self.rng = random.Random(seed)
        self.factory = SharedInformerFactory(client)
        self.nodes = self.factory.informer("v1", "nodes")
        self.pods = self.factory.informer("v1", "pods")
        self.namespaces = self.factory.informer("v1", "namespaces")
        self.pdbs = self.factory.informer("policy/v1", "poddisruptionbudgets")
        self.snapshot = ClusterSnapshot()
        self.queue = SchedulingQueue()
        self.recorder = EventRecorder(client, "default-scheduler")
        self._assumed: dict[str, str] = {}  # pod key -> node name, until the binding shows up
        self._bindings: set[asyncio.Task[None]] = set()
        self._binding_slots = asyncio.Semaphore(MAX_IN_FLIGHT_BINDINGS)
        self.bound = 0
        self._wire()

    # -- cache maintenance ------------------------------------------------------------

    def _wire(self) -> None:
        self.nodes.add_event_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.namespaces.add_event_handler(self._namespace_changed, lambda _o, n: self._namespace_changed(n),
                                          lambda n: self.snapshot.namespace_labels.pop(n["metadata"]["name"], None))

    def _namespace_changed(self, ns: dict) -> None:
        self.snapshot.namespace_labels[ns["metadata"]["name"]] = dict(ns["metadata"].get("labels") or {})

    def _node_added(self, node: dict) -> None:
        self.snapshot.add_node(node)
        self.queue.move_all_to_active("NodeAdd")

    def _node_updated(self, old: dict, new: dict) -> None:
        self.snapshot.add_node(new)
        if _node_view(old) != _node_view(new):
            self.queue.move_all_to_active("NodeUpdate")

    def _node_deleted(self, node: dict) -> None:
        self.snapshot.remove_node(node["metadata"]["name"])

    def _pod_added(self, pod: dict) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            key = pod_key(pod)
            if self._assumed.pop(key, None) is not None:
                self.snapshot.remove_pod(pod)  # replace the assumed copy with the real one
            if not is_terminal(pod):
                self.snapshot.add_pod(pod)
            self.queue.done(key)
        elif is_pending(pod) and self._responsible(pod):
            self.queue.add(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if (old.get("spec") or {}).get("nodeName"):
            self.snapshot.remove_pod(old)
            if is_terminal(new) and not is_terminal(old):
                self.queue.move_all_to_active("PodCompleted")  # its resources are free now
        self._pod_added(new)
        if not is_pending(new) and not (new.get("spec") or {}).get("nodeName"):
            self.queue.delete(new)

    def _pod_deleted(self, pod: dict) -> None:
        key = pod_key(pod)
        node = self._assumed.pop(key, None) or (pod.get("spec") or {}).get("nodeName")
        if node:
            self.snapshot.remove_pod(pod, node)
            self.queue.move_all_to_active("PodDelete")
        self.queue.delete(key)

    def _responsible(self, pod: dict) -> bool:
        return (pod.get("spec") or {}).get("schedulerName", "default-scheduler") in self.profiles

    # -- the scheduling cycle -------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled (call after winning leader election)."""
        self.factory.start()
        await self.factory.wait_for_sync()
        self.recorder.start()
        log.info("scheduler running with profiles %s over %d nodes", sorted(self.profiles), len(self.snapshot))
        try:
            while True:
                qp = await self.queue.pop()
                try:
                    self.schedule(qp.key)
                except Exception:
                    log.exception("scheduling %s failed", qp.key)
                    self.queue.retry(qp.key)
                if len(self.queue) and qp.attempts == 0:
                    await asyncio.sleep(0)  # let informer events and bindings in between cycles
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.queue.close()
        for t in list(self._bindings):
            t.cancel()
        await self.recorder.stop()
        await self.factory.stop()

    def _current(self, key: str) -> dict | None:
        return self.pods.indexer.get(key)

    def schedule(self, key: str) -> None:
        pod = self._current(key)
        if pod is None or not is_pending(pod) or not self._responsible(pod):
            self.queue.done(key)
            return
        profile = self.profiles[(pod.get("spec") or {}).get("schedulerName", "default-scheduler")]
        result = framework.schedule_one(profile, pod, self.snapshot, self.rng)
        if result.node_name:
            self._assume_and_bind(pod, result.node_name)
            return
        outcome = preemption.preempt(profile, pod, self.snapshot, result, pdbs=self.pdbs.indexer.list(),
                                     rng=self.rng, nominated=self._nominated_pods())
        message = framework.failure_message(result, len(self.snapshot), outcome.message)
        if outcome.node_name:
            self._preempt(pod, outcome.node_name, outcome.victims)
        self.queue.unschedulable(key)
        self.recorder.event(pod, "Warning", "FailedScheduling", message, "Scheduling")
        self._spawn(self._mark_unschedulable(pod, message, outcome.node_name))

    def _assume_and_bind(self, pod: dict, node: str) -> None:
        key = pod_key(pod)
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
        self.snapshot.add_pod(assumed)
        self._assumed[key] = node
        self._spawn(self._bind(pod, assumed, node))

    async def _bind(self, pod: dict, assumed: dict, node: str) -> None:
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        key = pod_key(pod)
        try:
            async with self._binding_slots:
                await self.client.create("v1", f"pods/{meta['name']}/binding", binding, namespace=meta["namespace"])
        except ApiException as e:
            # Undo the reservation; a 409 means someone else bound it (or it is going away).
            if self._assumed.pop(key, None) is not None:
                self.snapshot.remove_pod(assumed, node)
            if e.status == 409 or e.status == 404:
                self.queue.done(key)
            else:
                log.warning("binding %s to %s failed: %s", key, node, e)
                self.queue.retry(key)
            return
        self.bound += 1
        self.recorder.event(pod, "Normal", "Scheduled", f"Successfully assigned {key} to {node}", "Binding")

    def _nominated_pods(self) -> dict[str, list[dict]]:
        """Pending pods nominated to nodes by earlier preemptions: their room stays reserved."""
        out: dict[str, list[dict]] = {}
        for p in self.pods.indexer.list():
            node = (p.get("status") or {}).get("nominatedNodeName")
            if node and is_pending(p):
                out.setdefault(node, []).append(p)
        return out

    def _preempt(self, pod: dict, node: str, victims: list[dict]) -> None:
        for victim in victims:
            vmeta = victim["metadata"]
            self.recorder.event(victim, "Normal", "Preempted",
                                f"Preempted by pod {pod['metadata'].get('uid', '')} on node {node}", "Preempting")
            self._spawn(self._evict(vmeta["namespace"], vmeta["name"]))

    async def _evict(self, namespace: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            await self.client.delete("v1", "pods", name, namespace=namespace)

    async def _mark_unschedulable(self, pod: dict, message: str, nominated: str | None) -> None:
        status: dict[str, Any] = {"conditions": [{"type": "PodScheduled", "status": "False",
                                                   "reason": "Unschedulable", "message": message,
                                                   "lastProbeTime": None,
                                                   "lastTransitionTime": _now()}]}
        if nominated:
            status["nominatedNodeName"] = nominated
        meta = pod["metadata"]
        with contextlib.suppress(ApiException):
            await self.client.patch("v1", "pods", meta["name"], {"status": status}, namespace=meta["namespace"],
                                    patch_type="strategic", sub="status")

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._bindings.add(task)
        task.add_done_callback(self._bindings.discard)




async def run_scheduler(client: RestClient, config: dict | None = None, leader_elect: bool = True,
                        identity: str | None = None, **timing: float) -> None:
    """Run a scheduler until cancelled; with leader election only the leader schedules.
    ``timing``: lease_duration, renew_deadline, retry_period (seconds)."""
    if not leader_elect:
        await Scheduler(client, config).run()
        return
    identity = identity or f"{socket.gethostname()}_{random.getrandbits(32):08x}"
    while True:
        elector = LeaderElector(client, "kube-system", "kube-scheduler", identity, **timing,
                                on_started_leading=lambda: Scheduler(client, config).run())
        await elector.run()
        log.warning("scheduler lost leadership; standing for election again")
