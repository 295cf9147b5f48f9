"""Scoring shared by NodeResourcesFit and NodeResourcesBalancedAllocation
(``resourceAllocationScorer``): per configured resource, the node's allocatable and
what would be requested with the pod on it."""

from __future__ import annotations

from collections.abc import Callable

from pinnace.scheduler.model import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    NodeInfo,
    PodInfo,
    is_scalar_resource,
    memoized,
    pod_request_list,
)

DEFAULT_RESOURCES = [{"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1}]


def parse_resources(specs: list[dict] | None) -> list[tuple[str, int]]:
    return [(r["name"], int(r.get("weight") or 1)) for r in (specs or DEFAULT_RESOURCES)]


def pod_request_vector(pod: dict, resources: list[tuple[str, int]], use_requested: bool,
                       pod_info: PodInfo | None = None) -> list[int]:
    """The pod's request per resource; unless ``use_requested``, containers without a
    cpu/memory request count as 100m/200Mi so that such pods still spread.  With the
    pod's ``pod_info`` and just cpu and memory, from what that already parsed."""
    if pod_info is not None and cpu_memory_weights(resources) is not None:
        if use_requested:
            return [pod_info.requests.milli_cpu, pod_info.requests.memory]
        return [pod_info.non0_cpu, pod_info.non0_mem]
    reqs = pod_request_list(pod, non_missing=not use_requested)
    return [reqs.get(name, 0) for name, _ in resources]


def allocatable_and_requested(node_info: NodeInfo, name: str, pod_request: int, use_requested: bool) -> tuple[int, int]:
    if name == CPU:
        used = node_info.requested.milli_cpu if use_requested else node_info.non0_cpu
        return node_info.allocatable.milli_cpu, used + pod_request
    if name == MEMORY:
        used = node_info.requested.memory if use_requested else node_info.non0_mem
        return node_info.allocatable.memory, used + pod_request
    if pod_request == 0 and is_scalar_resource(name):
        return 0, 0  # an extended resource the pod doesn't ask for is not scored
    if name == EPHEMERAL_STORAGE:
        return node_info.allocatable.ephemeral_storage, node_info.requested.ephemeral_storage + pod_request
    if is_scalar_resource(name):
        return node_info.allocatable.scalar.get(name, 0), node_info.requested.scalar.get(name, 0) + pod_request
    return 0, 0


def cpu_memory_weights(resources: list[tuple[str, int]]) -> tuple[int, int] | None:
    """(cpu weight, memory weight) when the resources are exactly cpu then memory --
    the default, which gets a hand-inlined fast path (scoring runs per node)."""
    if len(resources) == 2 and resources[0][0] == CPU and resources[1][0] == MEMORY:
        return resources[0][1], resources[1][1]
    return None


def score_node(
    node_info: NodeInfo,
    resources: list[tuple[str, int]],
    pod_requests: list[int],
    use_requested: bool,
    scorer: Callable[[list[int], list[int]], int],
) -> int:
    requested = [0] * len(resources)
    allocatable = [0] * len(resources)
    for i, (name, _) in enumerate(resources):
        alloc, req = allocatable_and_requested(node_info, name, pod_requests[i], use_requested)
        if alloc:
            allocatable[i], requested[i] = alloc, req
    return scorer(requested, allocatable)


class VectorScoring:
    """The batch score paths of a resource plugin whose score depends only on the pod's request
    vector: ``_vector_scorer(state, pod)`` gives (vector, per-node score function) or None, and
    results are reused per vector across cycles (``serial`` tells plugin instances apart)."""

    serial: int

    def _vector_scorer(self, state, pod):  # pragma: no cover - each plugin defines it
        raise NotImplementedError

    def score_list(self, state, pod, nodes) -> list[int] | None:
        """Every node's score, memoized per node for this request vector (else None and
        :meth:`score_nodes` does it)."""
        if (scorer := self._vector_scorer(state, pod)) is None:
            return None
        reqs, fn = scorer
        return memoized(nodes, f"{self.serial}:{reqs[0]}:{reqs[1]}", fn)

    def score_column(self, state, pod, snapshot) -> list[int] | None:
        """Every snapshot node's score, kept per request vector (else None)."""
        if (scorer := self._vector_scorer(state, pod)) is None:
            return None
        reqs, fn = scorer
        return snapshot.column((self.serial, "score", reqs[0], reqs[1]), fn)
