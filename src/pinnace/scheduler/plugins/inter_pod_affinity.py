"""InterPodAffinity: required pod affinity / anti-affinity of the incoming pod, and
existing pods' required anti-affinity against it (filter); preferred terms of both
sides, plus existing pods' required affinity at hardPodAffinityWeight (score).

Counts are kept per topology pair (topologyKey, value): a node passes a term when
its own value for the key has (affinity) or lacks (anti-affinity) matching pods.
"""

from __future__ import annotations

import math

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.helpers import MAX_NODE_SCORE
from pinnace.scheduler.model import AffinityTerm, NodeInfo, PodInfo

ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

_AFFINITY = Status.unresolvable(ERR_REASON_AFFINITY)  # evicting pods never creates a match
_ANTI_AFFINITY = Status.unschedulable(ERR_REASON_ANTI_AFFINITY)
_EXISTING_ANTI_AFFINITY = Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)

Pair = tuple[str, str]


def _bump(counts: dict[Pair, int], node_info: NodeInfo, key: str, delta: int) -> None:
    value = node_info.labels.get(key)
    if value is None:
        return
    pair = (key, value)
    n = counts.get(pair, 0) + delta
    if n:
        counts[pair] = n
    else:
        counts.pop(pair, None)


def _matches_all(terms: list[AffinityTerm], p: PodInfo) -> bool:
    # The incoming pod's terms have namespaceSelector folded into namespaces, so no namespace labels needed.
    return all(t.matches(p.namespace, p.labels, None) for t in terms)


class _FilterState:
    __slots__ = ("affinity", "affinity_counts", "anti_affinity", "anti_counts", "existing_anti_counts", "ns_labels",
                 "pod")

    def __init__(self, pod: PodInfo, affinity: list[AffinityTerm], anti_affinity: list[AffinityTerm],
                 ns_labels: dict[str, str]):
        self.pod = pod
        self.affinity = affinity
        self.anti_affinity = anti_affinity
        self.ns_labels = ns_labels
        self.existing_anti_counts: dict[Pair, int] = {}
        self.affinity_counts: dict[Pair, int] = {}
        self.anti_counts: dict[Pair, int] = {}

    def clone(self) -> _FilterState:
        c = _FilterState(self.pod, self.affinity, self.anti_affinity, self.ns_labels)
        c.existing_anti_counts = dict(self.existing_anti_counts)
        c.affinity_counts = dict(self.affinity_counts)
        c.anti_counts = dict(self.anti_counts)
        return c

    def update_with_pod(self, p: PodInfo, node_info: NodeInfo, delta: int) -> None:
        incoming = self.pod
        for t in p.required_anti_affinity:
            if t.matches(incoming.namespace, incoming.labels, self.ns_labels):
                _bump(self.existing_anti_counts, node_info, t.topology_key, delta)
        if self.affinity and _matches_all(self.affinity, p):
            for t in self.affinity:
                _bump(self.affinity_counts, node_info, t.topology_key, delta)
        for t in self.anti_affinity:
            if t.matches(p.namespace, p.labels, None):
                _bump(self.anti_counts, node_info, t.topology_key, delta)


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        w = self.args.get("hardPodAffinityWeight")
        self.hard_pod_affinity_weight = 1 if w is None else int(w)
        self.ignore_preferred_terms_of_existing_pods = bool(self.args.get("ignorePreferredTermsOfExistingPods"))

    # -- filter

    def pre_filter(self, state, pod, snapshot):
        pi = state.pod_info or PodInfo(pod)
        all_ns = snapshot.namespace_labels
        s = _FilterState(
            pi,
            [t.resolved(all_ns) for t in pi.required_affinity],
            [t.resolved(all_ns) for t in pi.required_anti_affinity],
            snapshot.namespace_labels_for(pi.namespace),
        )
        # Existing pods whose required anti-affinity the incoming pod would violate.
        for ni in snapshot.have_pods_with_required_anti_affinity():
            for existing in ni.pods_with_required_anti_affinity:
                for t in existing.required_anti_affinity:
                    if t.matches(pi.namespace, pi.labels, s.ns_labels):
                        _bump(s.existing_anti_counts, ni, t.topology_key, 1)
        if not s.existing_anti_counts and not s.affinity and not s.anti_affinity:
            return Status.skip()
        if s.affinity or s.anti_affinity:
            for ni in snapshot.list():
                for p in ni.pods:
                    if s.affinity and _matches_all(s.affinity, p):
                        for t in s.affinity:
                            _bump(s.affinity_counts, ni, t.topology_key, 1)
                    for t in s.anti_affinity:
                        if t.matches(p.namespace, p.labels, None):
                            _bump(s.anti_counts, ni, t.topology_key, 1)
        state[self.name] = s
        return None

    def add_pod(self, state, pod, pod_to_add: PodInfo, node_info: NodeInfo) -> None:
        s = state.get(self.name)
        if s is not None:
            s.update_with_pod(pod_to_add, node_info, 1)

    def remove_pod(self, state, pod, pod_to_remove: PodInfo, node_info: NodeInfo) -> None:
        s = state.get(self.name)
        if s is not None:
            s.update_with_pod(pod_to_remove, node_info, -1)

    def filter(self, state, pod, node_info):
        s: _FilterState | None = state.get(self.name)
        if s is None:
            return None
        labels = node_info.labels
        if s.affinity and not self._satisfies_affinity(s, labels):
            return _AFFINITY
        if s.anti_counts:
            for t in s.anti_affinity:
                v = labels.get(t.topology_key)
                if v is not None and s.anti_counts.get((t.topology_key, v), 0) > 0:
                    return _ANTI_AFFINITY
        if s.existing_anti_counts:
            for pair in labels.items():
                if s.existing_anti_counts.get(pair, 0) > 0:
                    return _EXISTING_ANTI_AFFINITY
        return None

    @staticmethod
    def _satisfies_affinity(s: _FilterState, labels: dict[str, str]) -> bool:
        pods_exist = True
        for t in s.affinity:
            v = labels.get(t.topology_key)
            if v is None:
                return False  # every topology key must be on the node
            if s.affinity_counts.get((t.topology_key, v), 0) <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # The first pod of a group with affinity to itself: nothing matches anywhere yet,
        # so let it through if it matches its own terms (else it would wait forever).
        return not s.affinity_counts and all(
            t.matches(s.pod.namespace, s.pod.labels, s.ns_labels) for t in s.affinity
        )

    # -- score

    def pre_score(self, state, pod, nodes):
        snapshot = state.snapshot
        pi = state.pod_info or PodInfo(pod)
        has_constraints = bool(pi.preferred_affinity or pi.preferred_anti_affinity)
        if not nodes or (self.ignore_preferred_terms_of_existing_pods and not has_constraints):
            return Status.skip()
        all_ns = snapshot.namespace_labels
        pref_affinity = [t.resolved(all_ns) for t in pi.preferred_affinity]
        pref_anti = [t.resolved(all_ns) for t in pi.preferred_anti_affinity]
        ns_labels = snapshot.namespace_labels_for(pi.namespace)
        # Without preferences of its own, only pods that have affinity terms can matter.
        node_infos = snapshot.list() if has_constraints else snapshot.have_pods_with_affinity()
        topology: dict[str, dict[str, int]] = {}

        def add(t: AffinityTerm, weight: int, ni: NodeInfo) -> None:
            v = ni.labels.get(t.topology_key)
            if v is not None:
                values = topology.setdefault(t.topology_key, {})
                values[v] = values.get(v, 0) + weight

        for ni in node_infos:
            if not ni.labels:
                continue
            for ep in ni.pods if has_constraints else ni.pods_with_affinity:
                for t in pref_affinity:
                    if t.matches(ep.namespace, ep.labels, None):
                        add(t, t.weight, ni)
                for t in pref_anti:
                    if t.matches(ep.namespace, ep.labels, None):
                        add(t, -t.weight, ni)
                if self.hard_pod_affinity_weight > 0:
                    for t in ep.required_affinity:
                        if t.matches(pi.namespace, pi.labels, ns_labels):
                            add(t, self.hard_pod_affinity_weight, ni)
                for t in ep.preferred_affinity:
                    if t.matches(pi.namespace, pi.labels, ns_labels):
                        add(t, t.weight, ni)
                for t in ep.preferred_anti_affinity:
                    if t.matches(pi.namespace, pi.labels, ns_labels):
                        add(t, -t.weight, ni)
        if not topology:
            return Status.skip()
        state[self.name + "/score"] = topology
        return None

    def score(self, state, pod, node_info):
        topology = state.get(self.name + "/score") or {}
        labels = node_info.labels
        total = 0
        for key, values in topology.items():
            v = labels.get(key)
            if v is not None:
                total += values.get(v, 0)
        return total

    def normalize(self, state, pod, scores):
        if not state.get(self.name + "/score") or not scores:
            return
        lo, hi = min(scores.values()), max(scores.values())
        diff = hi - lo
        for name, s in scores.items():
            scores[name] = math.trunc(MAX_NODE_SCORE * ((s - lo) / diff)) if diff > 0 else 0
