"""NodeResourcesFit: the node must have room for the pod's requests (filter), and
scores by how allocated it would be (LeastAllocated spreads, MostAllocated packs,
RequestedToCapacityRatio follows a configured curve)."""

from __future__ import annotations

import math

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.helpers import MAX_NODE_SCORE, go_div
from pinnace.scheduler.model import PodInfo, is_extended_resource
from pinnace.scheduler.plugins.resource_allocation import (
    VectorScoring,
    cpu_memory_weights,
    parse_resources,
    pod_request_vector,
    score_node,
)

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"

MAX_UTILIZATION = 100
MAX_CUSTOM_PRIORITY_SCORE = 10

_TOO_MANY_PODS = "Too many pods"
_NO_LIMIT = float("-inf")  # "no request": any room left (even negative) is enough


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    # Pods without requests count as 100m/200Mi, so requested may exceed capacity.
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def _weighted(resources: list[tuple[str, int]], per_resource):
    def scorer(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for i, (_, weight) in enumerate(resources):
            if allocatable[i] == 0:
                continue
            total += per_resource(requested[i], allocatable[i]) * weight
            weight_sum += weight
        return total // weight_sum if weight_sum else 0

    return scorer


def broken_linear(shape: list[tuple[int, int]]):
    """``helper.BuildBrokenLinearFunction`` over (utilization, score) points."""

    def f(p: int) -> int:
        for i, (u, s) in enumerate(shape):
            if p <= u:
                if i == 0:
                    return s
                pu, ps = shape[i - 1]
                return ps + go_div((s - ps) * (p - pu), u - pu)
        return shape[-1][1]

    return f


def _ratio_scorer(resources: list[tuple[str, int]], shape_cfg: list[dict]):
    scale = MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE
    raw = broken_linear([(int(p["utilization"]), int(p["score"]) * scale) for p in shape_cfg])

    def per_resource(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return raw(MAX_UTILIZATION)
        return raw(requested * MAX_UTILIZATION // capacity)

    def scorer(requested: list[int], allocatable: list[int]) -> int:
        total = weight_sum = 0
        for i, (_, weight) in enumerate(resources):
            if allocatable[i] == 0:
                continue
            s = per_resource(requested[i], allocatable[i])
            if s > 0:
                total += s * weight
                weight_sum += weight
        return math.floor(total / weight_sum + 0.5) if weight_sum else 0

    return scorer


class NodeResourcesFit(VectorScoring, Plugin):
    name = "NodeResourcesFit"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        strategy = self.args.get("scoringStrategy") or {}
        self.strategy: str = strategy.get("type") or LEAST_ALLOCATED
        self.resources = parse_resources(strategy.get("resources"))
        self.ignored_resources = set(self.args.get("ignoredResources") or ())
        self.ignored_groups = set(self.args.get("ignoredResourceGroups") or ())
        if self.strategy == LEAST_ALLOCATED:
            self._scorer = _weighted(self.resources, least_requested_score)
        elif self.strategy == MOST_ALLOCATED:
            self._scorer = _weighted(self.resources, most_requested_score)
        elif self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or []
            if not shape:
                raise ValueError("RequestedToCapacityRatio needs a non-empty shape")
            self._scorer = _ratio_scorer(self.resources, shape)
        else:
            raise ValueError(f"scoring strategy {self.strategy} is not supported")

    def pre_filter(self, state, pod, snapshot):
        state[self.name] = (state.pod_info or PodInfo(pod)).requests
        return None

    def filter(self, state, pod, node_info):
        req = state.get(self.name) or PodInfo(pod).requests
        alloc, used = node_info.allocatable, node_info.requested
        reasons: list[str] = []
        if len(node_info.pods) + 1 > alloc.pods:
            reasons.append(_TOO_MANY_PODS)
        if req.milli_cpu > 0 and req.milli_cpu > alloc.milli_cpu - used.milli_cpu:
            reasons.append("Insufficient cpu")
        if req.memory > 0 and req.memory > alloc.memory - used.memory:
            reasons.append("Insufficient memory")
        if req.ephemeral_storage > 0 and req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage:
            reasons.append("Insufficient ephemeral-storage")
        for name in sorted(req.scalar) if req.scalar else ():
            q = req.scalar[name]
            if q == 0:
                continue
            if is_extended_resource(name) and (
                name in self.ignored_resources or name.split("/", 1)[0] in self.ignored_groups
            ):
                continue
            if q > alloc.scalar.get(name, 0) - used.scalar.get(name, 0):
                reasons.append(f"Insufficient {name}")
        return Status.unschedulable(*reasons) if reasons else None

    def filter_column(self, state, pod, snapshot):
        """:meth:`filter`'s pass/fail for every node of the snapshot (from
        ``NodeInfo.fit``, kept per request vector), unless the pod asks for scalar
        resources (those take the per-node path)."""
        req = state.get(self.name) or PodInfo(pod).requests
        if any(req.scalar.values()):
            return None
        rc = req.milli_cpu if req.milli_cpu > 0 else _NO_LIMIT
        rm = req.memory if req.memory > 0 else _NO_LIMIT
        re = req.ephemeral_storage if req.ephemeral_storage > 0 else _NO_LIMIT

        def fits(ni) -> bool:
            f = ni.fit
            return f[0] > 0 and f[1] >= rc and f[2] >= rm and f[3] >= re

        return snapshot.column((self.serial, "fit", rc, rm, re), fits)

    def pre_score(self, state, pod, nodes):
        reqs = pod_request_vector(pod, self.resources, use_requested=False, pod_info=state.pod_info)
        state[self.name + "/reqs"] = reqs
        state[self.name + "/score"] = self._node_scorer(reqs)
        return None

    def _vector_scorer(self, state, pod):
        """(request vector, per-node scorer) when scores depend only on the default
        cpu/memory resources (so they can be kept per vector); else None."""
        if cpu_memory_weights(self.resources) is None or self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            return None
        reqs = state.get(self.name + "/reqs")
        if reqs is None:
            reqs = pod_request_vector(pod, self.resources, use_requested=False)
        return reqs, state.get(self.name + "/score") or self._node_scorer(reqs)

    def score(self, state, pod, node_info):
        fn = state.get(self.name + "/score")
        if fn is None:
            fn = self._node_scorer(pod_request_vector(pod, self.resources, use_requested=False))
        return fn(node_info)

    def score_nodes(self, state, pod, nodes) -> dict[str, int]:
        fn = state.get(self.name + "/score")
        if fn is None:
            fn = self._node_scorer(pod_request_vector(pod, self.resources, use_requested=False))
        return {ni.name: fn(ni) for ni in nodes}

    def _node_scorer(self, reqs: list[int]):
        """node_info -> score for this pod's requests (NonZeroRequested: missing
        requests count as 100m/200Mi, so empty pods still spread)."""
        weights = cpu_memory_weights(self.resources)
        if weights is None or self.strategy == REQUESTED_TO_CAPACITY_RATIO:
            return lambda ni: score_node(ni, self.resources, reqs, False, self._scorer)
        wc, wm = weights
        pc, pm = reqs
        most = self.strategy == MOST_ALLOCATED

        def fast(ni) -> int:
            total = wsum = 0
            a = ni.allocatable.milli_cpu
            if a:
                r = ni.non0_cpu + pc
                total += (min(r, a) * MAX_NODE_SCORE // a if most else
                          ((a - r) * MAX_NODE_SCORE // a if r <= a else 0)) * wc
                wsum += wc
            a = ni.allocatable.memory
            if a:
                r = ni.non0_mem + pm
                total += (min(r, a) * MAX_NODE_SCORE // a if most else
                          ((a - r) * MAX_NODE_SCORE // a if r <= a else 0)) * wm
                wsum += wm
            return total // wsum if wsum else 0

        return fast
