"""Pod garbage collector (kube-controller-manager's ``podgc``).

Every ``gc_period`` seconds, from the informer caches:

* **terminated pods** (Succeeded/Failed) beyond ``terminated_pod_threshold``
  are force-deleted, oldest first (ties by name, as Kubernetes sorts them);
  a threshold <= 0 disables this;
* **orphaned pods**, bound to a node that no longer exists, are marked Failed
  (DisruptionTarget "DeletionByPodGC") and force-deleted — but only after a
  GET confirms the node is gone, because a lagging node cache must never cost
  running pods;
* **unscheduled terminating pods** (deletionTimestamp, no nodeName: no kubelet
  will ever finish them) are force-deleted;
* **terminating pods on out-of-service nodes** (not Ready and tainted
  ``node.kubernetes.io/out-of-service:NoExecute``) are force-deleted, so
  their workloads can be replaced elsewhere.

Force deletion is ``gracePeriodSeconds: 0`` with a UID precondition, so a
new pod that reuses the name is never hit.
"""

from __future__ import annotations

import asyncio
import logging

from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from .nodelifecycle import NODE_NAME_INDEX, add_disruption_condition, condition, ensure_pod_node_index

log = logging.getLogger(__name__)

TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
TERMINATED_PHASES = ("Succeeded", "Failed")


def _key(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class PodGCController:
    """Periodic rather than queue-driven, like Kubernetes' PodGC: each pass is a
    cheap scan of the cache, and the work is inherently about the whole set."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder,
                 terminated_pod_threshold: int = 12500, gc_period: float = 20.0):
        self.client = client
        self.recorder = recorder  # PodGC writes no events today (nor does Kubernetes'); kept for uniformity
        self.threshold = terminated_pod_threshold
        self.gc_period = gc_period
        self.pods = factory.informer("v1", "pods")
        self.nodes = factory.informer("v1", "nodes")
        ensure_pod_node_index(self.pods)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="podgc")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # An unsynced node cache would make every bound pod look orphaned (the GET would save
        # them, but at one request per node).
        for inf in (self.pods, self.nodes):
            while not await inf.wait_for_sync(60.0):
                log.info("podgc: waiting for %r to sync", inf)
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("podgc: pass failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
            await asyncio.sleep(self.gc_period)

    async def gc(self) -> int:
        """One pass; returns how many pods it deleted."""
        deleted = 0
        if self.threshold > 0:
            deleted += await self.gc_terminated()
        deleted += await self.gc_orphaned()
        deleted += await self.gc_unscheduled_terminating()
        deleted += await self.gc_terminating_out_of_service()
        return deleted

    async def gc_terminated(self) -> int:
        terminated = [p for p in self.pods.lister.list()
                      if (p.get("status") or {}).get("phase") in TERMINATED_PHASES]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return 0
        # Evicted pods go first (they are noise), then the oldest; RFC 3339 UTC strings sort as times.
        terminated.sort(key=lambda p: ((p.get("status") or {}).get("reason") != "Evicted",
                                       p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        log.info("podgc: %d terminated pods, threshold %d: deleting %d", len(terminated), self.threshold, excess)
        n = 0
        for pod in terminated[:excess]:
            n += await self._force_delete(pod, "terminated pod over the threshold")
        return n

    async def gc_orphaned(self) -> int:
        by_node: dict[str, list[dict]] = {}
        for node_name in self.pods.indexer.index_values(NODE_NAME_INDEX):
            if self.nodes.lister.get(node_name) is None:
                by_node[node_name] = self.pods.indexer.by_index(NODE_NAME_INDEX, node_name)
        n = 0
        for node_name, pods in by_node.items():
            if not pods or await self._node_exists(node_name):
                continue
            for pod in pods:
                await add_disruption_condition(self.client, pod, "DeletionByPodGC",
                                               "PodGC: node no longer exists", fail=True)
                n += await self._force_delete(pod, f"node {node_name} no longer exists")
        return n

    async def gc_unscheduled_terminating(self) -> int:
        n = 0
        for pod in self.pods.lister.list():
            if pod["metadata"].get("deletionTimestamp") and not (pod.get("spec") or {}).get("nodeName"):
                n += await self._force_delete(pod, "unscheduled and terminating")
        return n

    async def gc_terminating_out_of_service(self) -> int:
        n = 0
        for node in self.nodes.lister.list():
            if (condition(node, "Ready") or {}).get("status") == "True":
                continue
            if not any(t.get("key") == TAINT_OUT_OF_SERVICE and t.get("effect") == "NoExecute"
                       for t in (node.get("spec") or {}).get("taints") or []):
                continue
            for pod in self.pods.indexer.by_index(NODE_NAME_INDEX, node["metadata"]["name"]):
                if pod["metadata"].get("deletionTimestamp"):
                    await add_disruption_condition(self.client, pod, "DeletionByPodGC",
                                                   "PodGC: node is out of service", fail=True)
                    n += await self._force_delete(pod, f"terminating on out-of-service node {node['metadata']['name']}")
        return n

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get("v1", "nodes", name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    async def _force_delete(self, pod: dict, why: str) -> int:
        meta = pod["metadata"]
        try:
            await self.client.delete("v1", "pods", meta["name"], namespace=meta.get("namespace", ""),
                                     gracePeriodSeconds=0, preconditions={"uid": meta.get("uid")})
        except ApiException as e:
            if e.status in (404, 409):  # already gone, or a new pod by that name
                return 0
            raise
        log.info("podgc: deleted pod %s (%s)", _key(pod), why)
        return 1


__all__ = ["TAINT_OUT_OF_SERVICE", "PodGCController"]
