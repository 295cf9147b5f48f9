"""The scheduling framework: statuses, cycle state, profiles built from a
KubeSchedulerConfiguration, and one scheduling cycle (:func:`schedule_one`).

A plugin is a small class with a ``name`` and any of these methods (Kubernetes'
extension points, synchronous and pure):

- ``pre_filter(state, pod, snapshot) -> Status | PreFilterResult | None`` --
  per-pod precomputation, written into ``state``; ``Status.skip()`` turns the
  plugin's ``filter`` off for this pod, an Unschedulable status rejects the pod
  on every node, a :class:`PreFilterResult` narrows the nodes to look at.
- ``add_pod(state, pod, pod_to_add, node_info)`` / ``remove_pod(...)`` -- keep
  the pre-filter state right when preemption or nominated pods change a node.
- ``filter(state, pod, node_info) -> Status | None`` -- None means "fits".
- ``pre_score(state, pod, nodes) -> Status | None`` -- ``Status.skip()`` turns
  ``score`` off for this pod.
- ``score(state, pod, node_info) -> int`` and ``normalize(state, pod, scores)``,
  which rewrites the ``{node name: score}`` dict in place to 0..100.

Optional shortcuts, each returning None when it cannot help for this pod (the
plain methods above then run); they must give exactly what those would:

- ``filter_scope(state, pod, snapshot) -> set[str]`` -- the only nodes ``filter``
  can reject (e.g. the tainted ones); every other node passes without a call.
- ``filter_column(state, pod, snapshot) -> list[bool]`` -- ``filter``'s pass/fail
  for every node of ``snapshot.list()`` (see ``ClusterSnapshot.column``).
- ``score_constant(state, pod, nodes) -> int`` -- the normalized score every node
  gets this cycle, known without looking at nodes.
- ``score_column(state, pod, snapshot) -> list[int]`` -- the raw score of every
  node of ``snapshot.list()``; ``score_list(state, pod, nodes)`` -- of ``nodes``.

With them a cycle over the default profile and a pod without affinity, spread
constraints or tolerated taints costs list slices rather than calls per node.

``state.snapshot`` and ``state.pod_info`` (the parsed incoming pod) are always set.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from pinnace.scheduler.helpers import MAX_NODE_SCORE
from pinnace.scheduler.model import ClusterSnapshot, NodeInfo, PodInfo, as_pod_info

DEFAULT_SCHEDULER_NAME = "default-scheduler"
CONFIG_API_VERSION = "kubescheduler.config.k8s.io/v1"
CONFIG_KIND = "KubeSchedulerConfiguration"

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5

# Kubernetes' default profile (``getDefaultPlugins``), in order: (name, score weight).
# Plugins Pinnace does not implement (PrioritySort, SchedulingGates, the volume
# plugins, DefaultBinder) belong to other parts of the scheduler or are gaps.
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
]

# Real Kubernetes plugins a config may name that have no counterpart here; enabling
# them is accepted and ignored rather than failing the whole configuration.
UNIMPLEMENTED_PLUGINS = frozenset({
    "PrioritySort", "SchedulingGates", "DefaultBinder", "VolumeBinding", "VolumeRestrictions",
    "VolumeZone", "NodeVolumeLimits", "DynamicResources", "EBSLimits", "GCEPDLimits", "AzureDiskLimits",
})

# Config extension point -> plugin method.
EXTENSION_POINTS = {
    "preFilter": "pre_filter",
    "filter": "filter",
    "postFilter": "post_filter",
    "preScore": "pre_score",
    "score": "score",
}


# -- Status ---------------------------------------------------------------------


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    # Preemption cannot help on this node (e.g. a taint, a node selector).
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's verdict; ``reasons`` are the strings FailedScheduling events count."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @classmethod
    def skip(cls) -> Status:
        return _SKIP

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, name: str) -> Status:
        return self if self.plugin else Status(self.code, self.reasons, name)


_SKIP = Status(Code.SKIP)


@dataclass(slots=True)
class PreFilterResult:
    """Returned by a pre_filter that already knows which nodes can fit; None means all."""

    node_names: set[str] | None = None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult:
        if other is None or other.node_names is None:
            return self
        if self.node_names is None:
            return PreFilterResult(set(other.node_names))
        return PreFilterResult(self.node_names & other.node_names)


class SchedulingError(RuntimeError):
    """A plugin failed (an Error status, or a score outside 0..100 after normalising)."""


class CycleState(dict):
    """Per-cycle scratch space.  Plugins keep their pre-computed data under their own
    keys; values with a ``clone()`` method are copied by :meth:`clone` (preemption
    and nominated pods simulate on a copy)."""

    def __init__(self, snapshot: ClusterSnapshot | None = None, pod_info: PodInfo | None = None):
        super().__init__()
        self.snapshot = snapshot
        self.pod_info = pod_info
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def clone(self) -> CycleState:
        c = CycleState(self.snapshot, self.pod_info)
        c.skip_filter = set(self.skip_filter)
        c.skip_score = set(self.skip_score)
        for k, v in self.items():
            c[k] = v.clone() if hasattr(v, "clone") else v
        return c


_plugin_serials = itertools.count(1)


class Plugin:
    """Optional base class: stores the plugin's args, and gives the instance a
    process-unique ``serial`` (to key what it memoizes on nodes)."""

    name = ""

    def __init__(self, args: dict | None = None):
        self.args = dict(args or {})
        self.serial = next(_plugin_serials)

    def __repr__(self) -> str:
        return f"<{self.name}>"


# -- configuration -------------------------------------------------------------------


def _plugin_list(ps: dict | None, key: str) -> list[dict]:
    return [p if isinstance(p, dict) else {"name": p} for p in ((ps or {}).get(key) or ())]


def merge_plugin_set(default: dict, custom: dict | None) -> dict:
    """``mergePluginSet``: defaults minus disabled ones ("*" disables all), custom
    entries replace a default of the same name in place, the rest are appended."""
    disabled = [p["name"] for p in _plugin_list(custom, "disabled")] + [
        p["name"] for p in _plugin_list(default, "disabled")
    ]
    custom_enabled = _plugin_list(custom, "enabled")
    by_name = {p["name"]: (i, p) for i, p in enumerate(custom_enabled)}
    replaced: set[int] = set()
    enabled: list[dict] = []
    if "*" not in disabled:
        for p in _plugin_list(default, "enabled"):
            if p["name"] in disabled:
                continue
            if p["name"] in by_name:
                i, p = by_name[p["name"]]
                replaced.add(i)
            enabled.append(p)
    enabled += [p for i, p in enumerate(custom_enabled) if i not in replaced]
    return {"enabled": enabled, "disabled": [{"name": n} for n in disabled]}


def _default_registry() -> dict[str, type]:
    from pinnace.scheduler.plugins import REGISTRY

    return REGISTRY


class Profile:
    """One scheduler profile: the plugins at each extension point, score weights,
    percentageOfNodesToScore.  Build with :meth:`default` or :func:`load_config`.

    ``next_start_node_index`` is the one piece of mutable state: like the
    kube-scheduler, each cycle starts filtering where the previous one stopped.
    """

    def __init__(
        self,
        config: dict | None = None,
        *,
        percentage_of_nodes_to_score: int | None = None,
        registry: dict[str, type] | None = None,
    ):
        config = config or {}
        registry = registry if registry is not None else _default_registry()
        self.scheduler_name: str = config.get("schedulerName") or DEFAULT_SCHEDULER_NAME
        pct = config.get("percentageOfNodesToScore")
        self.percentage_of_nodes_to_score: int = int(pct if pct is not None else (percentage_of_nodes_to_score or 0))
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            raise ValueError(f"percentageOfNodesToScore must be in 0..100, got {self.percentage_of_nodes_to_score}")
        self.next_start_node_index = 0

        plugins_cfg = config.get("plugins") or {}
        default_mp = {"enabled": [{"name": n, "weight": w} for n, w in DEFAULT_PLUGINS]}
        multipoint = merge_plugin_set(default_mp, plugins_cfg.get("multiPoint"))
        mp_enabled = [p for p in multipoint["enabled"] if p["name"] not in UNIMPLEMENTED_PLUGINS]
        for p in mp_enabled:
            if p["name"] not in registry:
                raise ValueError(f"plugin {p['name']!r} does not exist")

        args_by_name: dict[str, dict] = {}
        for pc in config.get("pluginConfig") or ():
            if pc.get("name") in args_by_name:
                raise ValueError(f"repeated config for plugin {pc.get('name')!r}")
            args_by_name[pc.get("name")] = pc.get("args") or {}

        points: dict[str, list[str]] = {}
        for point, method in EXTENSION_POINTS.items():
            specific = merge_plugin_set({}, plugins_cfg.get(point))
            enabled_specific = [p["name"] for p in specific["enabled"] if p["name"] not in UNIMPLEMENTED_PLUGINS]
            for name in enabled_specific:
                if name not in registry:
                    raise ValueError(f"plugin {name!r} does not exist")
                if not hasattr(registry[name], method):
                    raise ValueError(f"plugin {name!r} does not extend {point} plugin")
            disabled = {p["name"] for p in specific["disabled"]}
            if "*" in disabled or not mp_enabled:
                points[point] = enabled_specific
                continue
            overrides: set[str] = set()
            expanded: list[str] = []
            for p in mp_enabled:
                name = p["name"]
                if not hasattr(registry[name], method) or name in disabled:
                    continue
                if name in enabled_specific:  # explicitly re-configured at this point
                    overrides.add(name)
                    continue
                if name in expanded:
                    raise ValueError(f"plugin {name!r} already registered as {point} plugin")
                expanded.append(name)
            points[point] = (
                [n for n in enabled_specific if n in overrides]
                + expanded
                + [n for n in enabled_specific if n not in overrides]
            )

        # Score weights: the score point's own entry wins over multiPoint; 0 means 1.
        self.weights: dict[str, int] = {}
        for p in _plugin_list(plugins_cfg.get("score"), "enabled") + mp_enabled:
            name = p["name"]
            if name in registry and hasattr(registry[name], "score") and name not in self.weights:
                self.weights[name] = int(p.get("weight") or 0) or 1

        self.plugins: dict[str, Any] = {}
        for names in points.values():
            for name in names:
                if name not in self.plugins:
                    self.plugins[name] = registry[name](args_by_name.get(name))
        self.pre_filter_plugins = [self.plugins[n] for n in points["preFilter"]]
        self.filter_plugins = [self.plugins[n] for n in points["filter"]]
        self.post_filter_plugins = [self.plugins[n] for n in points["postFilter"]]
        self.pre_score_plugins = [self.plugins[n] for n in points["preScore"]]
        self.score_plugins = [(self.plugins[n], self.weights.get(n, 1)) for n in points["score"]]

    @classmethod
    def default(cls, **kwargs: Any) -> Profile:
        return cls(None, **kwargs)

    def __repr__(self) -> str:
        return f"Profile({self.scheduler_name!r}, plugins={list(self.plugins)})"

    # extension points

    def run_pre_filter(
        self, state: CycleState, pod: dict, snapshot: ClusterSnapshot
    ) -> tuple[PreFilterResult | None, Status | None, list[str]]:
        """Run pre_filter plugins: (narrowed nodes or None, rejecting status or None,
        names of the plugins that narrowed the nodes)."""
        result: PreFilterResult | None = None
        narrowing: list[str] = []
        for pl in self.pre_filter_plugins:
            r = pl.pre_filter(state, pod, snapshot)
            if isinstance(r, Status):
                if r.code == Code.SKIP:
                    state.skip_filter.add(pl.name)
                    continue
                if r.code == Code.SUCCESS:
                    continue
                if r.is_rejected:
                    return None, r.with_plugin(pl.name), narrowing
                raise SchedulingError(f"running PreFilter plugin {pl.name!r}: {r.message}")
            if isinstance(r, PreFilterResult) and r.node_names is not None:
                narrowing.append(pl.name)
                result = r if result is None else result.merge(r)
                if not result.node_names:
                    msg = (f"node(s) didn't satisfy plugin {narrowing[0]}" if len(narrowing) == 1
                           else f"node(s) didn't satisfy plugin(s) [{' '.join(narrowing)}] simultaneously")
                    return result, Status.unresolvable(msg), narrowing
        return result, None, narrowing

    def active_filters(self, state: CycleState) -> list[tuple[str, Callable]]:
        return [(pl.name, pl.filter) for pl in self.filter_plugins if pl.name not in state.skip_filter]

    def run_filter(self, state: CycleState, pod: dict, node_info: NodeInfo,
                   filters: list[tuple[str, Callable]] | None = None) -> Status | None:
        """Filters in order; the first failure is the node's status (None: fits)."""
        for name, fn in filters if filters is not None else self.active_filters(state):
            st = fn(state, pod, node_info)
            if st is not None and st.code != Code.SUCCESS:
                if st.code == Code.ERROR:
                    raise SchedulingError(f"running {name!r} filter plugin: {st.message}")
                return st.with_plugin(name)
        return None

    def run_filter_with_nominated_pods(
        self, state: CycleState, pod: dict, node_info: NodeInfo,
        nominated: dict[str, list[dict | PodInfo]] | None = None,
        filters: list[tuple[str, Callable]] | None = None,
    ) -> Status | None:
        """``RunFilterPluginsWithNominatedPods``: pods nominated to this node with
        priority >= the pod's count as running; the pod must fit both with and
        without them (affinity may need them absent, resources present)."""
        pods = _nominated_for(state.pod_info or as_pod_info(pod), node_info.name, nominated)
        if not pods:
            return self.run_filter(state, pod, node_info, filters)
        state2, ni2 = state.clone(), node_info.clone()
        for p in pods:
            ni2.add_pod(p)
            self.run_add_pod(state2, pod, p, ni2)
        st = self.run_filter(state2, pod, ni2, filters)
        if st is not None:
            return st
        return self.run_filter(state, pod, node_info, filters)

    def run_add_pod(self, state: CycleState, pod: dict, pod_to_add: PodInfo, node_info: NodeInfo) -> None:
        for pl in self.pre_filter_plugins:
            if pl.name not in state.skip_filter and hasattr(pl, "add_pod"):
                pl.add_pod(state, pod, pod_to_add, node_info)

    def run_remove_pod(self, state: CycleState, pod: dict, pod_to_remove: PodInfo, node_info: NodeInfo) -> None:
        for pl in self.pre_filter_plugins:
            if pl.name not in state.skip_filter and hasattr(pl, "remove_pod"):
                pl.remove_pod(state, pod, pod_to_remove, node_info)

    def run_post_filter(self, pod: dict, snapshot: ClusterSnapshot, result: ScheduleResult, **kwargs: Any):
        """Run the post-filter (DefaultPreemption) after a failed cycle; its result, or
        None when the profile has no post-filter plugin."""
        for pl in self.post_filter_plugins:
            return pl.post_filter(self, pod, snapshot, result, **kwargs)
        return None

    def prioritize(self, state: CycleState, pod: dict, nodes: list[NodeInfo]) -> dict[str, int]:
        """pre_score, score, normalize, weight; the total per node name."""
        return dict(zip([ni.name for ni in nodes], self.score_totals(state, pod, nodes), strict=True))

    def score_totals(self, state: CycleState, pod: dict, nodes: list[NodeInfo],
                     segments: list[tuple[int, int]] | None = None) -> list[int]:
        """:meth:`prioritize` as a list aligned with ``nodes``.  A plugin's scores come
        from, in order of preference: ``score_constant`` (every node scores the same,
        known without looking at nodes), ``score_column`` (a score for every node of
        ``state.snapshot.list()``, of which ``nodes`` are the runs ``segments``, as
        [start, end) positions), ``score_list`` (one call for all nodes),
        ``score_nodes`` or ``score`` per node."""
        if not self.score_plugins:
            return [1] * len(nodes)  # no scoring: every feasible node is as good
        for pl in self.pre_score_plugins:
            st = pl.pre_score(state, pod, nodes)
            if st is not None:
                if st.code == Code.SKIP:
                    state.skip_score.add(pl.name)
                elif st.code != Code.SUCCESS:
                    raise SchedulingError(f"running PreScore plugin {pl.name!r}: {st.message}")
        constant = 0
        weighted: list[tuple[list[int], int]] = []
        names: list[str] | None = None
        for pl, weight in self.score_plugins:
            if pl.name in state.skip_score:
                continue
            const_fn = getattr(pl, "score_constant", None)
            if const_fn is not None:
                c = const_fn(state, pod, nodes)
                if c is not None:
                    if not 0 <= c <= MAX_NODE_SCORE and nodes:
                        raise SchedulingError(
                            f"plugin {pl.name!r} returns an invalid score {c} for node {nodes[0].name!r}")
                    constant += c * weight
                    continue
            scores_list = None
            if segments is not None:
                column_fn = getattr(pl, "score_column", None)
                col = column_fn(state, pod, state.snapshot) if column_fn is not None else None
                if col is not None:
                    if len(segments) == 1:
                        scores_list = col[segments[0][0]:segments[0][1]]
                    else:
                        scores_list = []
                        for a, b in segments:
                            scores_list += col[a:b]
            if scores_list is None:
                list_fn = getattr(pl, "score_list", None)
                scores_list = list_fn(state, pod, nodes) if list_fn is not None else None
            normalize = getattr(pl, "normalize", None)
            if scores_list is None or normalize is not None:
                if names is None:
                    names = [ni.name for ni in nodes]
                if scores_list is not None:
                    scores = dict(zip(names, scores_list, strict=True))
                else:
                    # A plugin may score every node in one call (saves a call per node).
                    batch = getattr(pl, "score_nodes", None)
                    if batch is not None:
                        scores = batch(state, pod, nodes)
                    else:
                        fn = pl.score
                        scores = {ni.name: fn(state, pod, ni) for ni in nodes}
                if normalize is not None:
                    normalize(state, pod, scores)
                scores_list = [scores[n] for n in names]
            if scores_list and not (0 <= min(scores_list) and max(scores_list) <= MAX_NODE_SCORE):
                i, s = next((i, v) for i, v in enumerate(scores_list) if not 0 <= v <= MAX_NODE_SCORE)
                raise SchedulingError(f"plugin {pl.name!r} returns an invalid score {s} for node {nodes[i].name!r}")
            weighted.append((scores_list, weight))
        return _add_up(weighted, constant, len(nodes))

    def fast_filter(self, state: CycleState, pod: dict, snapshot: ClusterSnapshot,
                    filters: list[tuple[str, Callable]]) -> tuple[list[list[bool]], Set[str]] | None:
        """When every active filter can say without a call per node which nodes pass:
        (verdict columns, names of the nodes that need the full filter chain anyway).

        A plugin supports this with ``filter_column(state, pod, snapshot)`` -- its
        exact verdict for every node of ``snapshot.list()`` -- or ``filter_scope(state,
        pod, snapshot)`` -- the names of the only nodes its filter can reject.  None
        of either (or any other active filter) means: run every filter on every node."""
        columns: list[list[bool]] = []
        special: Set[str] = frozenset()
        for name, _fn in filters:
            pl = self.plugins[name]
            column_fn = getattr(pl, "filter_column", None)
            if column_fn is not None:
                col = column_fn(state, pod, snapshot)
                if col is not None:
                    columns.append(col)
                    continue
            scope_fn = getattr(pl, "filter_scope", None)
            if scope_fn is not None:
                scope = scope_fn(state, pod, snapshot)
                if scope is not None:
                    special = special | scope if special else scope
                    continue
            return None
        return columns, special


def _add_up(weighted: list[tuple[list[int], int]], constant: int, n: int) -> list[int]:
    """``constant + sum(weight * scores[i])`` per node, in as few passes as possible."""
    if not weighted:
        return [constant] * n
    if len(weighted) == 2 and weighted[0][1] == weighted[1][1] == 1:  # the default profile's common case
        return [a + b + constant for a, b in zip(weighted[0][0], weighted[1][0], strict=True)]
    (first, w), *rest = weighted
    totals = [s * w + constant for s in first] if w != 1 or constant else list(first)
    for scores, w in rest:
        if w == 1:
            totals = [t + s for t, s in zip(totals, scores, strict=True)]
        else:
            totals = [t + s * w for t, s in zip(totals, scores, strict=True)]
    return totals


def _nominated_for(pod_info: PodInfo, node_name: str,
                   nominated: dict[str, list[dict | PodInfo]] | None) -> list[PodInfo]:
    if not nominated:
        return []
    out = []
    for p in nominated.get(node_name) or ():
        pi = as_pod_info(p)
        same = (pi.uid and pi.uid == pod_info.uid) or (not pi.uid and pi.key == pod_info.key)
        if not same and pi.priority >= pod_info.priority:
            out.append(pi)
    return out


def load_config(config: dict | None = None, registry: dict[str, type] | None = None) -> dict[str, Profile]:
    """Profiles by schedulerName from a KubeSchedulerConfiguration dict (None: defaults)."""
    config = config or {}
    api_version = config.get("apiVersion")
    if api_version and api_version != CONFIG_API_VERSION:
        raise ValueError(f"unsupported apiVersion {api_version!r}; want {CONFIG_API_VERSION}")
    if config.get("kind") and config["kind"] != CONFIG_KIND:
        raise ValueError(f"unsupported kind {config['kind']!r}; want {CONFIG_KIND}")
    pct = config.get("percentageOfNodesToScore")
    profiles: dict[str, Profile] = {}
    for pc in config.get("profiles") or [{}]:
        prof = Profile(pc, percentage_of_nodes_to_score=pct, registry=registry)
        if prof.scheduler_name in profiles:
            raise ValueError(f"duplicate profile with scheduler name {prof.scheduler_name!r}")
        profiles[prof.scheduler_name] = prof
    return profiles


def profiles_from_config(config: dict | None = None, registry: dict[str, type] | None = None) -> list[Profile]:
    """The profiles of a KubeSchedulerConfiguration, in order."""
    return list(load_config(config, registry).values())


# -- one cycle ---------------------------------------------------------------------------


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes to find before scoring: all of a small cluster, else a
    percentage (adaptive when 0: 50% minus 1% per 125 nodes, at least 5%), >= 100."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    n = num_all_nodes * percentage // 100
    return max(n, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class ScheduleResult:
    """The outcome of one cycle.  On failure ``statuses`` holds every rejected node's
    status and ``absent_status`` the status of nodes never filtered (a pre_filter
    rejection or narrowing), which is what preemption and the event message read."""

    node_name: str | None
    feasible_nodes: int = 0
    statuses: dict[str, Status] = field(default_factory=dict)
    evaluated_nodes: int = 0
    num_all_nodes: int = 0
    pre_filter_msg: str = ""
    absent_status: Status | None = None
    state: CycleState | None = field(default=None, repr=False)
    # The feasible nodes and their totals; ``scores`` is built from them when read.
    _scored: tuple[list[NodeInfo], list[int]] | None = field(default=None, repr=False)
    _scores: dict[str, int] | None = field(default=None, repr=False)

    @property
    def scores(self) -> dict[str, int]:
        """Total score by feasible node name (empty when there was nothing to choose)."""
        if self._scores is None:
            if self._scored is None:
                self._scores = {}
            else:
                nodes, totals = self._scored
                self._scores = dict(zip([ni.name for ni in nodes], totals, strict=True))
        return self._scores

    @scores.setter
    def scores(self, value: dict[str, int]) -> None:
        self._scores = value

    def status_of(self, node_name: str) -> Status | None:
        return self.statuses.get(node_name) or self.absent_status


def schedule_one(
    profile: Profile,
    pod: dict,
    snapshot: ClusterSnapshot,
    rng: random.Random | None = None,
    *,
    nominated: dict[str, list[dict | PodInfo]] | None = None,
) -> ScheduleResult:
    """Find the best node for ``pod`` (``schedulePod``): pre_filter, filter from a
    rotating start until enough feasible nodes are found, score, and pick the
    highest total, ties broken uniformly with ``rng``.  ``nominated`` maps node names
    to pods nominated there by earlier preemptions."""
    rng = rng or random.Random()
    all_nodes = snapshot.list()
    n_all = len(all_nodes)
    pod_info = as_pod_info(pod)
    state = CycleState(snapshot, pod_info)
    result = ScheduleResult(None, num_all_nodes=n_all, state=state)
    if n_all == 0:
        return result

    pre_result, status, narrowing = profile.run_pre_filter(state, pod, snapshot)
    if status is not None:
        # Every node gets the same status, so preemption can read it.
        result.absent_status = status
        result.pre_filter_msg = status.message
        return result

    filters = profile.active_filters(state)
    nominated_node = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated_node:
        ni = snapshot.get(nominated_node)
        if ni is not None and profile.run_filter_with_nominated_pods(state, pod, ni, nominated, filters) is None:
            # The node preemption made room on is most likely still the one.
            result.node_name, result.feasible_nodes, result.evaluated_nodes = ni.name, 1, 1
            return result

    nodes = all_nodes
    if pre_result is not None and pre_result.node_names is not None:
        nodes = [ni for name in pre_result.node_names if (ni := snapshot.get(name)) is not None]
        nodes.sort(key=lambda ni: ni.name)
        result.absent_status = Status.unresolvable(f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(narrowing))}]")

    num_to_find = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, len(nodes))
    if not profile.score_plugins:
        num_to_find = 1
    feasible: list[NodeInfo] = []
    statuses = result.statuses
    m = len(nodes)
    start = profile.next_start_node_index
    fast = None if nominated or not m else profile.fast_filter(state, pod, snapshot, filters)
    segments: list[tuple[int, int]] | None = None
    if fast is not None:
        segments = _walk_fast(profile, state, pod, snapshot, nodes, start % m, num_to_find, filters, fast, statuses)
        for a, b in segments:
            feasible += nodes[a:b]
        if nodes is not all_nodes:
            segments = None  # positions in the narrowed list, not in the snapshot's
    else:
        for i in range(m):
            ni = nodes[(start + i) % m]
            if nominated:
                st = profile.run_filter_with_nominated_pods(state, pod, ni, nominated, filters)
            else:
                st = None
                for name, fn in filters:  # inlined run_filter: the hot loop
                    st = fn(state, pod, ni)
                    if st is not None and st.code != Code.SUCCESS:
                        if st.code == Code.ERROR:
                            raise SchedulingError(f"running {name!r} filter plugin: {st.message}")
                        st = st.with_plugin(name)
                        break
                    st = None
            if st is None:
                feasible.append(ni)
                if len(feasible) >= num_to_find:
                    break
            else:
                statuses[ni.name] = st
    processed = len(feasible) + len(statuses)
    profile.next_start_node_index = (start + processed) % n_all
    result.evaluated_nodes = processed
    result.feasible_nodes = len(feasible)
    if not feasible:
        return result
    if len(feasible) == 1:
        result.node_name = feasible[0].name
        return result

    totals = profile.score_totals(state, pod, feasible, segments)
    result._scored = (feasible, totals)
    result.node_name = feasible[_select_index(totals, rng)].name
    return result


def _walk_fast(profile: Profile, state: CycleState, pod: dict, snapshot: ClusterSnapshot, nodes: list[NodeInfo],
               start: int, num_to_find: int, filters: list[tuple[str, Callable]],
               fast: tuple[list[list[bool]], Set[str]], statuses: dict[str, Status]) -> list[tuple[int, int]]:
    """The filter walk of :func:`schedule_one` on verdict columns: from ``start`` round
    ``nodes``, take exactly as many nodes as feasible ones are still missing; a run
    that passes every column and holds no node a plugin asked to see is feasible as
    a whole, elsewhere the full filter chain runs per node (for the node's status).
    Same nodes, same order, same statuses as filtering one node at a time.  Returns
    the feasible positions in ``nodes`` as [start, end) runs, in walk order."""
    columns, special = fast
    full = nodes is snapshot.list()
    ok: list[bool] | None = None
    if columns:
        ok = columns[0] if len(columns) == 1 else [all(v) for v in zip(*columns, strict=True)]
        if not full:
            ok = [ok[ni.index] for ni in nodes]
    if not special:
        sp: list[int] = []
    elif full:
        sp = sorted(ni.index for name in special if (ni := snapshot.get(name)) is not None and ni.index >= 0)
    else:
        sp = [p for p, ni in enumerate(nodes) if ni.name in special]
    m = len(nodes)
    runs: list[tuple[int, int]] = []
    found = walked = 0
    while walked < m and found < num_to_find:
        a = start + walked
        if a >= m:
            a -= m
        b = a + min(num_to_find - found, m - walked, m - a)
        walked += b - a
        if (ok is None or all(ok[a:b])) and (not sp or bisect_left(sp, b) == bisect_left(sp, a)):
            found += b - a
            if runs and runs[-1][1] == a:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
            continue
        spset = set(sp)
        for i in range(a, b):
            if (ok is None or ok[i]) and i not in spset:
                fits = True
            else:
                ni = nodes[i]
                st = profile.run_filter(state, pod, ni, filters)
                fits = st is None
                if not fits:
                    statuses[ni.name] = st
            if fits:
                found += 1
                if runs and runs[-1][1] == i:
                    runs[-1] = (runs[-1][0], i + 1)
                else:
                    runs.append((i, i + 1))
    return runs


def _select_index(totals: list[int], rng: random.Random) -> int:
    """The index of the highest total; among equals each is picked with equal probability."""
    best = max(totals)
    i = totals.index(best)
    ties = totals.count(best)
    if ties > 1:
        for _ in range(rng.randrange(ties)):  # the r-th of the tied ones, in order
            i = totals.index(best, i + 1)
    return i


def select_host(nodes: Iterable[NodeInfo], totals: dict[str, int], rng: random.Random) -> str | None:
    """The highest total; among equals each is picked with equal probability (one
    draw among the tied nodes, in ``nodes`` order -- the distribution ``selectHost``'s
    reservoir sampling gives)."""
    names = [ni.name for ni in nodes]
    if not names:
        return None
    return names[_select_index([totals[n] for n in names], rng)]


# -- the FailedScheduling message -----------------------------------------------------------


def failure_message(result: ScheduleResult, total_nodes: int | None = None, post_filter_msg: str = "") -> str:
    """``FitError.Error()``: "0/N nodes are available: <count> <reason>, ...." with the
    reason histogram sorted as strings (so "1 node(s)..." sorts before "2 Insufficient
    cpu"), then the post-filter (preemption) message, which brings its own full stop,
    e.g. "preemption: 0/N nodes are available: N Preemption is not helpful for scheduling."
    """
    n = result.num_all_nodes if total_nodes is None else total_nodes
    if n == 0 and not result.statuses:
        return "no nodes available to schedule pods"
    msg = f"0/{n} nodes are available:"
    if result.pre_filter_msg:
        msg += f" {result.pre_filter_msg}."
    else:
        msg += _reason_histogram(result.statuses, result.absent_status, n)
    if post_filter_msg:
        msg += f" {post_filter_msg}"
    return msg


def _reason_histogram(statuses: dict[str, Status], absent: Status | None, n: int) -> str:
    counts: Counter[str] = Counter()
    for st in statuses.values():
        for r in st.reasons:
            counts[r] += 1
    if absent is not None and len(statuses) < n:
        for r in absent.reasons:
            counts[r] += n - len(statuses)
    parts = sorted(f"{v} {k}" for k, v in counts.items())
    return f" {', '.join(parts)}." if parts else ""


def fit_error_message(statuses: dict[str, Status], absent: Status | None, n: int) -> str:
    """The same sentence for an arbitrary status map (preemption's dry run uses it)."""
    return f"0/{n} nodes are available:{_reason_histogram(statuses, absent, n)}"
