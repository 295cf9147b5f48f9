"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be
used in similar proportions: 100 x (1 - standard deviation of the fractions)."""

from __future__ import annotations

import math

from pinnace.scheduler.framework import Plugin
from pinnace.scheduler.helpers import MAX_NODE_SCORE
from pinnace.scheduler.plugins.resource_allocation import (
    VectorScoring,
    cpu_memory_weights,
    parse_resources,
    pod_request_vector,
    score_node,
)


def balanced_resource_score(requested: list[int], allocatable: list[int]) -> int:
    fractions = [min(r / a, 1.0) for r, a in zip(requested, allocatable, strict=True) if a]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)  # the two-resource shortcut Kubernetes takes
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation(VectorScoring, Plugin):
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        self.resources = parse_resources(self.args.get("resources"))

    def pre_score(self, state, pod, nodes):
        # Actual requests, not the 100m/200Mi stand-ins: balance is about real usage.
        reqs = pod_request_vector(pod, self.resources, use_requested=True, pod_info=state.pod_info)
        state[self.name + "/reqs"] = reqs
        state[self.name] = self._node_scorer(reqs)
        return None

    def _vector_scorer(self, state, pod):
        """(request vector, per-node scorer) when scores depend only on cpu and memory
        (so they can be kept per vector); else None."""
        if cpu_memory_weights(self.resources) is None:
            return None
        reqs = state.get(self.name + "/reqs")
        if reqs is None:
            reqs = pod_request_vector(pod, self.resources, use_requested=True)
        return reqs, state.get(self.name) or self._node_scorer(reqs)

    def score(self, state, pod, node_info):
        fn = state.get(self.name)
        if fn is None:
            fn = self._node_scorer(pod_request_vector(pod, self.resources, use_requested=True))
        return fn(node_info)

    def score_nodes(self, state, pod, nodes) -> dict[str, int]:
        fn = state.get(self.name)
        if fn is None:
            fn = self._node_scorer(pod_request_vector(pod, self.resources, use_requested=True))
        return {ni.name: fn(ni) for ni in nodes}

    def _node_scorer(self, reqs: list[int]):
        if cpu_memory_weights(self.resources) is None:
            return lambda ni: score_node(ni, self.resources, reqs, True, balanced_resource_score)
        pc, pm = reqs

        def fast(ni) -> int:  # the two-resource case, inlined (weights don't enter the std-dev)
            ac, am = ni.allocatable.milli_cpu, ni.allocatable.memory
            if not (ac and am):
                return balanced_resource_score(
                    [ni.requested.milli_cpu + pc, ni.requested.memory + pm], [ac, am])
            fc = min((ni.requested.milli_cpu + pc) / ac, 1.0)
            fm = min((ni.requested.memory + pm) / am, 1.0)
            return int((1 - abs((fc - fm) / 2)) * MAX_NODE_SCORE)

        return fast
