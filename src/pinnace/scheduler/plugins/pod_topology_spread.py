"""PodTopologySpread: keep matching pods evenly spread over topology domains.

Filter (whenUnsatisfiable: DoNotSchedule): placing the pod in the node's domain
must keep ``count + self - global minimum <= maxSkew``, the minimum taken over the
eligible domains (0 while fewer than minDomains exist).  Eligible nodes carry
every constraint's key and pass nodeAffinityPolicy (default Honor: the pod's node
selector/affinity) and nodeTaintsPolicy (default Ignore).

Score (ScheduleAnyway, or the system defaults -- hostname maxSkew 3, zone maxSkew
5 -- for pods of a Service/ReplicaSet/StatefulSet without constraints): fewer
matching pods in the node's domains scores higher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.helpers import MAX_NODE_SCORE, untolerated_do_not_schedule_taint
from pinnace.scheduler.model import LABEL_HOSTNAME, LABEL_ZONE, NodeInfo, PodInfo, label_selector
from pinnace.scheduler.plugins.node_affinity import required_node_affinity
from pinnace.scheduler.plugins.spreading import SpreadSelector, default_selector, merge_match_label_keys

ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"

_NOT_MATCH = Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
_MISSING_LABEL = Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)

DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"

SYSTEM_DEFAULT_CONSTRAINTS = [
    {"topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": LABEL_ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
]


@dataclass(slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: SpreadSelector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE


def parse_constraints(raw: list[dict], labels: dict[str, str], action: str) -> list[Constraint]:
    out = []
    for c in raw:
        if c.get("whenUnsatisfiable") != action:
            continue
        sel = merge_match_label_keys(label_selector(c.get("labelSelector")), c.get("matchLabelKeys"), labels)
        out.append(Constraint(
            max_skew=int(c.get("maxSkew") or 1),
            topology_key=c.get("topologyKey") or "",
            selector=SpreadSelector(sel),
            min_domains=int(c.get("minDomains") or 1),
            node_affinity_policy=c.get("nodeAffinityPolicy") or HONOR,
            node_taints_policy=c.get("nodeTaintsPolicy") or IGNORE,
        ))
    return out


def _has_all_keys(labels: dict[str, str], constraints: list[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


class _FilterState:
    __slots__ = ("constraints", "counts", "mins")

    def __init__(self, constraints: list[Constraint], counts: list[dict[str, int]], mins: list[int] | None = None):
        self.constraints = constraints
        self.counts = counts  # per constraint: domain value -> matching pods (every eligible domain present)
        self.mins = mins if mins is not None else [min(c.values(), default=0) for c in counts]

    def clone(self) -> _FilterState:
        return _FilterState(self.constraints, [dict(c) for c in self.counts], list(self.mins))

    def min_match(self, i: int) -> int:
        # Too few domains: treat the global minimum as 0, so pods go to new domains first.
        if len(self.counts[i]) < self.constraints[i].min_domains:
            return 0
        return self.mins[i]


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        defaulting = self.args.get("defaultingType") or "System"
        given = self.args.get("defaultConstraints") or []
        if defaulting == "System":
            if given:
                raise ValueError("PodTopologySpreadArgs: defaultConstraints must be empty for defaultingType System")
            self.default_constraints, self.system_defaulted = SYSTEM_DEFAULT_CONSTRAINTS, True
        elif defaulting == "List":
            self.default_constraints, self.system_defaulted = list(given), False
        else:
            raise ValueError(f"PodTopologySpreadArgs: unknown defaultingType {defaulting!r}")

    def _constraints(self, state, pod: dict, action: str) -> list[Constraint]:
        pi: PodInfo = state.pod_info or PodInfo(pod)
        explicit = (pod.get("spec") or {}).get("topologySpreadConstraints")
        if explicit:
            return parse_constraints(explicit, pi.labels, action)
        if not any(c.get("whenUnsatisfiable") == action for c in self.default_constraints):
            return []
        constraints = parse_constraints(self.default_constraints, pi.labels, action)
        if "_default_selector" not in state:
            state["_default_selector"] = default_selector(pi, state.snapshot)
        sel = state["_default_selector"]
        if sel is None:
            return []
        for c in constraints:
            c.selector = sel
        return constraints

    @staticmethod
    def _included(c: Constraint, tolerations: list[dict], ni: NodeInfo, req_affinity) -> bool:
        if c.node_affinity_policy == HONOR and not req_affinity.matches(ni):
            return False
        return not (c.node_taints_policy == HONOR and untolerated_do_not_schedule_taint(ni, tolerations) is not None)

    # -- filter

    def pre_filter(self, state, pod, snapshot):
        constraints = self._constraints(state, pod, DO_NOT_SCHEDULE)
        if not constraints:
            return Status.skip()
        pi: PodInfo = state.pod_info or PodInfo(pod)
        req_affinity = required_node_affinity(state, pod)
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        counts: list[dict[str, int]] = [{} for _ in constraints]
        for ni in snapshot.list():
            labels = ni.labels
            if not _has_all_keys(labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if not self._included(c, tolerations, ni, req_affinity):
                    continue
                v = labels[c.topology_key]
                counts[i][v] = counts[i].get(v, 0) + c.selector.count_on(ni, pi.namespace)
        state[self.name] = _FilterState(constraints, counts)
        return None

    def _update(self, state, pod: dict, p: PodInfo, ni: NodeInfo, delta: int) -> None:
        s: _FilterState | None = state.get(self.name)
        pi = state.pod_info or PodInfo(pod)
        if s is None or p.namespace != pi.namespace or not _has_all_keys(ni.labels, s.constraints):
            return
        req_affinity = required_node_affinity(state, pod)
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        for i, c in enumerate(s.constraints):
            if not c.selector.matches(p) or not self._included(c, tolerations, ni, req_affinity):
                continue
            v = ni.labels[c.topology_key]
            s.counts[i][v] = s.counts[i].get(v, 0) + delta
            s.mins[i] = min(s.counts[i].values(), default=0)

    def add_pod(self, state, pod, pod_to_add: PodInfo, node_info: NodeInfo) -> None:
        self._update(state, pod, pod_to_add, node_info, 1)

    def remove_pod(self, state, pod, pod_to_remove: PodInfo, node_info: NodeInfo) -> None:
        self._update(state, pod, pod_to_remove, node_info, -1)

    def filter(self, state, pod, node_info):
        s: _FilterState | None = state.get(self.name)
        if s is None:
            return None
        pi = state.pod_info or PodInfo(pod)
        labels = node_info.labels
        for i, c in enumerate(s.constraints):
            v = labels.get(c.topology_key)
            if v is None:
                return _MISSING_LABEL
            self_match = 1 if c.selector.matches(pi) else 0
            if s.counts[i].get(v, 0) + self_match - s.min_match(i) > c.max_skew:
                return _NOT_MATCH
        return None

    # -- score

    def pre_score(self, state, pod, nodes):
        snapshot = state.snapshot
        all_nodes = snapshot.list() if snapshot is not None else nodes
        if not all_nodes:
            return Status.skip()
        constraints = self._constraints(state, pod, SCHEDULE_ANYWAY)
        if not constraints:
            return Status.skip()
        pi: PodInfo = state.pod_info or PodInfo(pod)
        # System defaults don't require every key, so nodes without a zone still spread by hostname.
        require_all = bool((pod.get("spec") or {}).get("topologySpreadConstraints")) or not self.system_defaulted
        ignored: set[str] = set()
        pair_counts: dict[tuple[str, str], int] = {}
        sizes = [0] * len(constraints)
        for ni in nodes:
            if require_all and not _has_all_keys(ni.labels, constraints):
                ignored.add(ni.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key == LABEL_HOSTNAME:
                    continue  # counted per node in score()
                pair = (c.topology_key, ni.labels.get(c.topology_key, ""))
                if pair not in pair_counts:
                    pair_counts[pair] = 0
                    sizes[i] += 1
        weights = [
            math.log((len(nodes) - len(ignored) if c.topology_key == LABEL_HOSTNAME else sizes[i]) + 2)
            for i, c in enumerate(constraints)
        ]
        if pair_counts:
            req_affinity = required_node_affinity(state, pod)
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            for ni in all_nodes:
                if require_all and not _has_all_keys(ni.labels, constraints):
                    continue
                for c in constraints:
                    pair = (c.topology_key, ni.labels.get(c.topology_key, ""))
                    if pair not in pair_counts or not self._included(c, tolerations, ni, req_affinity):
                        continue
                    pair_counts[pair] += c.selector.count_on(ni, pi.namespace)
        state[self.name + "/score"] = (constraints, ignored, pair_counts, weights)
        return None

    def score(self, state, pod, node_info):
        constraints, ignored, pair_counts, weights = state[self.name + "/score"]
        if node_info.name in ignored:
            return 0
        namespace = (state.pod_info or PodInfo(pod)).namespace
        total = 0.0
        for i, c in enumerate(constraints):
            v = node_info.labels.get(c.topology_key)
            if v is None:
                continue
            if c.topology_key == LABEL_HOSTNAME:
                cnt = c.selector.count_on(node_info, namespace)
            else:
                cnt = pair_counts.get((c.topology_key, v), 0)
            # maxSkew - 1 waters down small differences between domains.
            total += cnt * weights[i] + (c.max_skew - 1)
        return math.floor(total + 0.5)

    def normalize(self, state, pod, scores):
        data = state.get(self.name + "/score")
        if data is None:
            return
        ignored = data[1]
        considered = [s for name, s in scores.items() if name not in ignored]
        lo = min(considered, default=0)
        hi = max(considered, default=0)
        for name, s in scores.items():
            if name in ignored:
                scores[name] = 0
            elif hi == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (hi + lo - s) // hi
