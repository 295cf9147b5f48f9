"""The scheduler's data model: resources, pod and node summaries, the cluster snapshot.

Everything is pure and synchronous.  A :class:`NodeInfo` keeps its aggregates
(requested resources, used host ports, pods with affinity) incremental, so adding
an assumed pod or removing a preemption victim costs O(1) rather than a rescan.
Pod dicts are parsed once into a :class:`PodInfo` (requests, ports, affinity
terms) that every plugin reuses.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pinnace.api.selectors import LabelSelector, SelectorError, from_label_selector_object, matches_labels
from pinnace.api.validation import parse_quantity

# What the scheduler assumes a container without a cpu/memory request uses when
# *scoring* (never when filtering): schedutil.DefaultMilliCPURequest / DefaultMemoryRequest.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"


# -- quantities ---------------------------------------------------------------


@lru_cache(maxsize=8192)
def _parse(q: str) -> Decimal:
    return parse_quantity(q)


def quantity_value(name: str, q: Any) -> int:
    """A quantity in the scheduler's integer unit: millicores for cpu, else the
    plain value; both round up, like ``Quantity.MilliValue()`` / ``Value()``."""
    try:
        return _quantity_value(name == CPU, q)
    except TypeError:  # unhashable: not a quantity anyone writes, but parse it all the same
        return _quantity_value.__wrapped__(name == CPU, q)


@lru_cache(maxsize=8192, typed=True)
def _quantity_value(milli: bool, q: Any) -> int:
    d = _parse(q if isinstance(q, str) else str(q))
    if milli:
        d = d * 1000
    return math.ceil(d)


def is_scalar_resource(name: str) -> bool:
    """Extended (``example.com/gpu``), prefixed native, hugepages and attachable
    volume resources -- everything ``Resource.ScalarResources`` tracks."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def is_extended_resource(name: str) -> bool:
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def _resource_list(rl: dict | None) -> dict[str, int]:
    if not rl:
        return {}
    return {name: quantity_value(name, q) for name, q in rl.items()}


# -- Resources ----------------------------------------------------------------


@dataclass(slots=True)
class Resources:
    """``framework.Resource``: cpu in millicores, byte counts, a pod count and
    scalar (extended, hugepages) resources."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, rl: dict | None) -> Resources:
        """From a ResourceList of quantities (``{"cpu": "500m", "memory": "1Gi"}``)."""
        return cls.from_ints(_resource_list(rl))

    @classmethod
    def from_ints(cls, values: dict[str, int]) -> Resources:
        r = cls()
        for name, v in values.items():
            if name == CPU:
                r.milli_cpu += v
            elif name == MEMORY:
                r.memory += v
            elif name == EPHEMERAL_STORAGE:
                r.ephemeral_storage += v
            elif name == PODS:
                r.pods += v
            elif is_scalar_resource(name):
                r.scalar[name] = r.scalar.get(name, 0) + v
        return r

    def get(self, name: str) -> int:
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        if name == PODS:
            return self.pods
        return self.scalar.get(name, 0)

    def add(self, other: Resources, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        self.pods += sign * other.pods
        for name, v in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * v

    def sub(self, other: Resources) -> None:
        self.add(other, -1)

    def copy(self) -> Resources:
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, self.pods, dict(self.scalar))

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or any(self.scalar.values()))

    def to_list(self) -> dict[str, int]:
        out = {CPU: self.milli_cpu, MEMORY: self.memory, EPHEMERAL_STORAGE: self.ephemeral_storage, PODS: self.pods}
        out.update(self.scalar)
        return out


# -- pod requests -------------------------------------------------------------


def _add_into(acc: dict[str, int], rl: dict[str, int]) -> None:
    for k, v in rl.items():
        acc[k] = acc.get(k, 0) + v


def _max_into(acc: dict[str, int], rl: dict[str, int]) -> None:
    for k, v in rl.items():
        acc[k] = max(acc[k], v) if k in acc else v


def _container_requests(c: dict, non_missing: bool) -> dict[str, int]:
    reqs = _resource_list((c.get("resources") or {}).get("requests"))
    if non_missing:
        # Only a *missing* request gets the default; an explicit "0" stays 0.
        reqs.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
        reqs.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return reqs


def pod_request_list(pod: dict, *, non_missing: bool = False) -> dict[str, int]:
    """``resourcehelper.PodRequests`` as integers (cpu in millicores).

    Regular containers run together, so their requests add up; init containers run
    one at a time, so each contributes a maximum -- except sidecars
    (``restartPolicy: Always``, KEP-753), which keep running: they add to the sum
    and to every later init container's peak.  Pod overhead is added last.
    ``non_missing`` substitutes the scoring defaults (100m, 200Mi) for a missing
    cpu/memory request, as the scheduler does for NonZeroRequested.
    """
    spec = pod.get("spec") or {}
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or ():
        _add_into(reqs, _container_requests(c, non_missing))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        creqs = _container_requests(c, non_missing)
        if c.get("restartPolicy") == "Always":
            _add_into(reqs, creqs)
            _add_into(sidecars, creqs)
            use = dict(sidecars)
        else:
            use = dict(creqs)
            _add_into(use, sidecars)
        _max_into(init_peak, use)
    _max_into(reqs, init_peak)
    _add_into(reqs, _resource_list(spec.get("overhead")))
    return reqs


def pod_requests(pod: dict, *, non_missing: bool = False) -> Resources:
    """The pod's effective requests, computed as Kubernetes does (see :func:`pod_request_list`)."""
    return Resources.from_ints(pod_request_list(pod, non_missing=non_missing))


# -- affinity terms -------------------------------------------------------------


def label_selector(sel: dict | None) -> LabelSelector | None:
    """``metav1.LabelSelectorAsSelector``: None selects nothing, ``{}`` everything.
    An invalid selector selects nothing (the API server rejects those anyway)."""
    try:
        return from_label_selector_object(sel)
    except (SelectorError, KeyError, TypeError):
        return None


def _never(labels: dict[str, str] | None) -> bool:
    return False


def _always(labels: dict[str, str] | None) -> bool:
    return True


def compile_selector(sel: LabelSelector | None) -> Callable[[dict[str, str] | None], bool]:
    """A fast predicate over a label dict: selectors run once per pod per node in
    affinity and spreading, and most are plain matchLabels."""
    if sel is None:
        return _never
    if not sel:
        return _always
    if all(r.op == "=" and len(r.values) == 1 for r in sel):
        pairs = tuple((r.key, next(iter(r.values))) for r in sel)
        if len(pairs) == 1:
            (key, value), = pairs

            def one(labels: dict[str, str] | None) -> bool:
                return labels is not None and labels.get(key) == value

            return one

        def equal_all(labels: dict[str, str] | None) -> bool:
            if not labels:
                return False
            for k, v in pairs:
                if labels.get(k) != v:
                    return False
            return True

        return equal_all
    return lambda labels: matches_labels(sel, labels)


@dataclass(slots=True)
class AffinityTerm:
    """A parsed ``PodAffinityTerm`` (``framework.AffinityTerm``), with its weight when preferred."""

    selector: LabelSelector | None  # None: matches no pod
    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None  # None: no namespace by labels; (): every namespace
    topology_key: str
    weight: int = 0
    _selects: Callable = field(init=False, repr=False, compare=False)
    _selects_ns: Callable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._selects = compile_selector(self.selector)
        self._selects_ns = compile_selector(self.namespace_selector)

    def matches(self, namespace: str, labels: dict[str, str] | None, ns_labels: dict[str, str] | None) -> bool:
        """Does a pod in ``namespace`` with ``labels`` match?  ``ns_labels`` are that
        namespace's labels, for ``namespaceSelector``."""
        if namespace in self.namespaces or self._selects_ns(ns_labels):
            return self._selects(labels)
        return False

    def resolved(self, namespace_labels: dict[str, dict[str, str]]) -> AffinityTerm:
        """The term with a non-empty namespaceSelector folded into ``namespaces``
        (``mergeAffinityTermNamespacesIfNotEmpty``): the incoming pod's terms are
        matched against many pods, so list the matching namespaces once."""
        if not self.namespace_selector:  # None (nothing) or () (everything): nothing to resolve
            return self
        extra = {ns for ns, labels in namespace_labels.items() if matches_labels(self.namespace_selector, labels)}
        return AffinityTerm(self.selector, self.namespaces | extra, None, self.topology_key, self.weight)


def _affinity_term(pod_ns: str, term: dict, weight: int = 0) -> AffinityTerm:
    ns_sel_obj = term.get("namespaceSelector")
    names = term.get("namespaces") or []
    # No namespaces and no namespaceSelector means "the pod's own namespace".
    namespaces = frozenset(names) if (names or ns_sel_obj is not None) else frozenset([pod_ns])
    return AffinityTerm(
        selector=label_selector(term.get("labelSelector")),
        namespaces=namespaces,
        namespace_selector=label_selector(ns_sel_obj) if ns_sel_obj is not None else None,
        topology_key=term.get("topologyKey") or "",
        weight=weight,
    )


def _terms(pod_ns: str, block: dict | None) -> tuple[list[AffinityTerm], list[AffinityTerm]]:
    if not block:
        return [], []
    required = [_affinity_term(pod_ns, t) for t in block.get("requiredDuringSchedulingIgnoredDuringExecution") or ()]
    preferred = [
        _affinity_term(pod_ns, w.get("podAffinityTerm") or {}, int(w.get("weight") or 0))
        for w in block.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    ]
    return required, preferred


# -- PodInfo ------------------------------------------------------------------

_FAR_FUTURE = datetime.max.replace(tzinfo=None)


def _parse_time(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


class PodInfo:
    """A pod dict parsed once: identity, priority, requests, host ports, affinity terms."""

    __slots__ = (
        "deleting",
        "host_ports",
        "key",
        "labels",
        "name",
        "namespace",
        "non0_cpu",
        "non0_mem",
        "owner_uid",
        "pod",
        "preferred_affinity",
        "preferred_anti_affinity",
        "priority",
        "requests",
        "required_affinity",
        "required_anti_affinity",
        "start_time",
        "uid",
    )

    def __init__(self, pod: dict):
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.name: str = meta.get("name") or ""
        self.namespace: str = meta.get("namespace") or ""
        self.uid: str = meta.get("uid") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.priority: int = int(spec.get("priority") or 0)
        self.deleting: bool = bool(meta.get("deletionTimestamp"))
        self.owner_uid: str = next(
            (o.get("uid") or "" for o in meta.get("ownerReferences") or () if o.get("controller")), ""
        )
        self.start_time = _parse_time((pod.get("status") or {}).get("startTime"))
        self.requests = pod_requests(pod)
        non0 = pod_request_list(pod, non_missing=True)
        self.non0_cpu: int = non0.get(CPU, 0)
        self.non0_mem: int = non0.get(MEMORY, 0)
        self.host_ports = _host_ports(spec)
        affinity = spec.get("affinity") or {}
        self.required_affinity, self.preferred_affinity = _terms(self.namespace, affinity.get("podAffinity"))
        self.required_anti_affinity, self.preferred_anti_affinity = _terms(
            self.namespace, affinity.get("podAntiAffinity")
        )

    @property
    def has_affinity(self) -> bool:
        """Any pod (anti-)affinity at all (``NodeInfo.PodsWithAffinity``)."""
        return bool(
            self.required_affinity or self.preferred_affinity or self.required_anti_affinity
            or self.preferred_anti_affinity
        )

    @property
    def start_sort_time(self) -> datetime:
        """Start time for ordering; a pod not started yet counts as "now", i.e. latest."""
        return self.start_time or _FAR_FUTURE

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


def as_pod_info(pod: dict | PodInfo) -> PodInfo:
    return pod if isinstance(pod, PodInfo) else PodInfo(pod)


def _host_ports(spec: dict) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port with a hostPort.  Sidecar
    init containers keep running, so their host ports stay bound too."""
    out: list[tuple[str, str, int]] = []
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            hp = int(p.get("hostPort") or 0)
            if hp > 0:
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", hp))
    return out


# -- NodeInfo -------------------------------------------------------------------


class NodeInfo:
    """A node and the pods on it, with incrementally maintained aggregates."""

    __slots__ = (
        "allocatable",
        "fit",
        "generation",
        "image_sizes",
        "index",
        "labels",
        "memo",
        "name",
        "no_schedule_taints",
        "node",
        "non0_cpu",
        "non0_mem",
        "owner",
        "owner_counts",
        "pods",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "requested",
        "res",
        "taints",
        "unschedulable",
        "used_ports",
    )

    def __init__(self, node: dict | None = None, pods: Iterable[dict | PodInfo] = ()):
        # The ClusterSnapshot listing this node (told about changes its caches depend on),
        # and the node's position in that snapshot's list().
        self.owner: ClusterSnapshot | None = None
        self.index = -1
        self.pods: list[PodInfo] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.requested = Resources()
        self.non0_cpu = 0
        self.non0_mem = 0
        self.used_ports: Counter[tuple[str, str, int]] = Counter()
        # Live (not terminating) pods per controller uid: default spreading counts siblings often.
        self.owner_counts: Counter[str] = Counter()
        self.generation = 0
        self.set_node(node)
        for p in pods:
            self.add_pod(p)

    def set_node(self, node: dict | None) -> None:
        node = node or {}
        self.node = node
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.name: str = meta.get("name") or ""
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.taints: list[dict] = spec.get("taints") or []
        # Only these two effects keep pods off a node; cached for the hot filter path.
        self.no_schedule_taints = [t for t in self.taints if t.get("effect") in ("NoSchedule", "NoExecute")]
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = Resources.from_list(status.get("allocatable"))
        self.image_sizes: dict[str, int] = {}
        for image in status.get("images") or ():
            for name in image.get("names") or ():
                self.image_sizes[name] = int(image.get("sizeBytes") or 0)
        self.generation += 1
        self._refresh()
        if self.owner is not None:
            self.owner._node_changed(self)

    def _refresh(self) -> None:
        """Recompute the flat numbers the hot filter and score loops read (one tuple
        lookup per node instead of a chain of attribute lookups)."""
        a, u = self.allocatable, self.requested
        # Room left: pods, cpu, memory, ephemeral storage (NodeResourcesFit's filter).
        self.fit = (a.pods - len(self.pods), a.milli_cpu - u.milli_cpu, a.memory - u.memory,
                    a.ephemeral_storage - u.ephemeral_storage)
        # Allocatable cpu/memory, non-zero requested cpu/memory, requested cpu/memory (scoring).
        self.res = (a.milli_cpu, a.memory, self.non0_cpu, self.non0_mem, u.milli_cpu, u.memory)
        self.memo = {}
        if self.owner is not None:
            self.owner._node_dirty(self)

    # pods

    def add_pod(self, pod: dict | PodInfo) -> PodInfo:
        pi = as_pod_info(pod)
        self.pods.append(pi)
        if pi.has_affinity:
            self.pods_with_affinity.append(pi)
            if pi.required_anti_affinity:
                self.pods_with_required_anti_affinity.append(pi)
            if self.owner is not None:
                self.owner._affinity_changed()
        self._account(pi, 1)
        return pi

    def remove_pod(self, pod: dict | PodInfo) -> PodInfo | None:
        """Remove the pod with the same uid (or namespace/name when uids are absent)."""
        idx = self._find(pod)
        if idx is None:
            return None
        pi = self.pods.pop(idx)
        if pi.has_affinity:
            for lst in (self.pods_with_affinity, self.pods_with_required_anti_affinity):
                for i, other in enumerate(lst):
                    if other is pi:
                        del lst[i]
                        break
            if self.owner is not None:
                self.owner._affinity_changed()
        self._account(pi, -1)
        return pi

    def _find(self, pod: dict | PodInfo) -> int | None:
        if isinstance(pod, PodInfo):
            for i, p in enumerate(self.pods):
                if p is pod:
                    return i
            uid, key = pod.uid, pod.key
        else:
            meta = pod.get("metadata") or {}
            uid, key = meta.get("uid") or "", f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        for i, p in enumerate(self.pods):
            if (uid and p.uid == uid) or (not (uid and p.uid) and p.key == key):
                return i
        return None

    def _account(self, pi: PodInfo, sign: int) -> None:
        self.requested.add(pi.requests, sign)
        self.non0_cpu += sign * pi.non0_cpu
        self.non0_mem += sign * pi.non0_mem
        for port in pi.host_ports:
            self.used_ports[port] += sign
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
        if pi.owner_uid and not pi.deleting:
            self.owner_counts[pi.owner_uid] += sign
            if self.owner_counts[pi.owner_uid] <= 0:
                del self.owner_counts[pi.owner_uid]
        self.generation += 1
        self._refresh()

    def port_conflict(self, ip: str, protocol: str, port: int) -> bool:
        """``HostPortInfo.CheckConflict``: 0.0.0.0 clashes with every address."""
        if port <= 0 or not self.used_ports:
            return False
        ip = ip or "0.0.0.0"
        protocol = protocol or "TCP"
        if ip == "0.0.0.0":
            return any(pr == protocol and po == port for (_, pr, po) in self.used_ports)
        return (ip, protocol, port) in self.used_ports or ("0.0.0.0", protocol, port) in self.used_ports

    def clone(self) -> NodeInfo:
        """A copy whose pod list and aggregates can change independently (PodInfos are shared)."""
        c = NodeInfo.__new__(NodeInfo)
        c.owner, c.index = None, -1
        c.node, c.name, c.labels = self.node, self.name, self.labels
        c.taints, c.no_schedule_taints, c.unschedulable = self.taints, self.no_schedule_taints, self.unschedulable
        c.allocatable, c.image_sizes = self.allocatable, self.image_sizes
        c.pods = list(self.pods)
        c.pods_with_affinity = list(self.pods_with_affinity)
        c.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        c.requested = self.requested.copy()
        c.non0_cpu, c.non0_mem = self.non0_cpu, self.non0_mem
        c.used_ports = Counter(self.used_ports)
        c.owner_counts = Counter(self.owner_counts)
        c.generation = self.generation
        c.fit, c.res = self.fit, self.res
        c.memo = {}
        return c

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"


MEMO_LIMIT = 64
COLUMN_LIMIT = 32
CHANGE_LOG_LIMIT = 100_000


def memoized(nodes: list[NodeInfo], key: str, compute: Callable[[NodeInfo], Any]) -> list:
    """``[compute(ni) for ni in nodes]``, remembered per node under ``key`` until the
    node changes (any change to it, or to its pods, empties ``NodeInfo.memo``).

    For per-node results that depend only on the node's own state and on what
    ``key`` stands for -- e.g. a resource score for one request vector: pods of a
    Deployment share requests and each binding changes one node, so nearly every
    node's score is already known from the previous cycle."""

    def fill(ni: NodeInfo, memo: dict) -> Any:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        v = memo[key] = compute(ni)
        return v

    return [memo[key] if key in (memo := ni.memo) else fill(ni, memo) for ni in nodes]


# -- ClusterSnapshot -------------------------------------------------------------


class ClusterSnapshot:
    """Everything one scheduling cycle reads: node infos by name (in a stable order,
    which the rotating start index walks), namespace labels for namespaceSelector,
    and the Services/ReplicaSets/StatefulSets/ReplicationControllers used to derive
    the default spreading selector.  Pods whose node is unknown wait in a ghost
    NodeInfo until the node arrives (as the scheduler cache does)."""

    def __init__(
        self,
        nodes: Iterable[dict] = (),
        pods: Iterable[dict] = (),
        *,
        namespaces: dict[str, dict[str, str]] | Iterable[dict] | None = None,
        services: Iterable[dict] = (),
        replica_sets: Iterable[dict] = (),
        stateful_sets: Iterable[dict] = (),
        replication_controllers: Iterable[dict] = (),
    ):
        self.node_infos: dict[str, NodeInfo] = {}
        self._ghosts: dict[str, NodeInfo] = {}
        self._list: list[NodeInfo] | None = None
        self._domains: dict[str, dict[str, list[str]]] = {}
        # Caches over all nodes, rebuilt on first use after a node (or its affinity pods) changed.
        self._node_sets: _NodeSets | None = None
        # Per-node values computed once and then only for nodes that changed (see column()).
        self._columns: dict[Hashable, list] = {}
        self._column_seen: dict[Hashable, int] = {}
        self._changed: list[int] = []  # list() positions of nodes changed, in order
        self._with_affinity: list[NodeInfo] | None = None
        self._with_required_anti_affinity: list[NodeInfo] | None = None
        self.image_num_nodes: Counter[str] = Counter()
        self.namespace_labels: dict[str, dict[str, str]] = {}
        if isinstance(namespaces, dict):
            self.namespace_labels = {k: dict(v or {}) for k, v in namespaces.items()}
        elif namespaces is not None:
            for ns in namespaces:
                meta = ns.get("metadata") or {}
                self.namespace_labels[meta.get("name") or ""] = meta.get("labels") or {}
        self.services = list(services)
        self.replica_sets = list(replica_sets)
        self.stateful_sets = list(stateful_sets)
        self.replication_controllers = list(replication_controllers)
        for n in nodes:
            self.add_node(n)
        for p in pods:
            self.add_pod(p)

    # nodes

    def add_node(self, node: dict) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name") or ""
        ni = self.node_infos.get(name)
        if ni is not None:
            self._forget_images(ni)
            ni.set_node(node)
        else:
            ni = self._ghosts.pop(name, None)
            if ni is not None:
                ni.set_node(node)
            else:
                ni = NodeInfo(node)
            self.node_infos[name] = ni
            ni.owner = self
            if self._list is not None:
                # A new node goes to the end (dicts keep insertion order): positions stay.
                ni.index = len(self._list)
                self._list = [*self._list, ni]
                self._changed.append(ni.index)
            self._affinity_changed()
        self.image_num_nodes.update(ni.image_sizes.keys())
        self._node_changed(ni)
        return ni

    update_node = add_node

    def remove_node(self, name: str) -> None:
        ni = self.node_infos.pop(name, None)
        if ni is None:
            return
        self._forget_images(ni)
        ni.owner, ni.index = None, -1
        self._list = None
        self._node_changed()
        self._affinity_changed()
        if ni.pods:  # pods still bound to it stay accounted until they go
            ni.set_node({"metadata": {"name": name}})
            self._ghosts[name] = ni

    def _node_changed(self, ni: NodeInfo | None = None) -> None:
        """A node was added, removed or changed (labels, taints, ...): drop node caches
        (or, for one listed node, bring them up to date)."""
        self._domains.clear()
        if self._node_sets is not None:
            if ni is not None and self.node_infos.get(ni.name) is ni:
                self._node_sets.update(ni)
            else:
                self._node_sets = None

    def _affinity_changed(self) -> None:
        """A pod with (anti-)affinity came or went, or the node list changed."""
        self._with_affinity = None
        self._with_required_anti_affinity = None

    def _forget_images(self, ni: NodeInfo) -> None:
        self.image_num_nodes.subtract(ni.image_sizes.keys())
        for name in ni.image_sizes:
            if self.image_num_nodes[name] <= 0:
                del self.image_num_nodes[name]

    # pods

    def add_pod(self, pod: dict | PodInfo, node_name: str | None = None) -> PodInfo | None:
        """Account a pod on ``node_name`` (default: its spec.nodeName); unbound pods are ignored."""
        pi = as_pod_info(pod)
        node_name = node_name or (pi.pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        ni = self.node_infos.get(node_name)
        if ni is None:
            ni = self._ghosts.setdefault(node_name, NodeInfo({"metadata": {"name": node_name}}))
        return ni.add_pod(pi)

    def remove_pod(self, pod: dict | PodInfo, node_name: str | None = None) -> PodInfo | None:
        pi_pod = pod.pod if isinstance(pod, PodInfo) else pod
        node_name = node_name or (pi_pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        ni = self.node_infos.get(node_name) or self._ghosts.get(node_name)
        if ni is None:
            return None
        removed = ni.remove_pod(pod)
        if node_name in self._ghosts and not ni.pods:
            del self._ghosts[node_name]
        return removed

    # reads

    def get(self, name: str) -> NodeInfo | None:
        return self.node_infos.get(name)

    def list(self) -> list[NodeInfo]:
        if self._list is None:
            self._list = list(self.node_infos.values())
            for i, ni in enumerate(self._list):
                ni.index = i
            self._columns.clear()  # positions moved: start over
            self._column_seen.clear()
            self._changed = []
        return self._list

    def _node_dirty(self, ni: NodeInfo) -> None:
        """A listed node's state changed (its pods, or the node itself)."""
        if self._list is not None and ni.index >= 0:
            self._changed.append(ni.index)
            if len(self._changed) > CHANGE_LOG_LIMIT:  # columns nobody read for long: drop them
                self._columns.clear()
                self._column_seen.clear()
                self._changed = []

    def column(self, key: Hashable, compute: Callable[[NodeInfo], Any]) -> list:
        """``[compute(ni) for ni in self.list()]``, kept from call to call under ``key``
        and recomputed only for the nodes that changed in between.

        ``compute`` must depend on nothing but the node's own state (its node object
        and pods) and what ``key`` stands for, e.g. a resource score for one request
        vector.  A scheduling cycle then reads whole runs of nodes as list slices:
        pods of one Deployment share requests and each binding changes one node."""
        nodes = self.list()
        values = self._columns.get(key)
        changed = self._changed
        if values is None:
            if len(self._columns) >= COLUMN_LIMIT:  # the oldest goes
                oldest = next(iter(self._columns))
                del self._columns[oldest], self._column_seen[oldest]
            values = self._columns[key] = [compute(ni) for ni in nodes]
        else:
            seen = self._column_seen[key]
            if seen < len(changed):
                if len(values) < len(nodes):  # nodes were added
                    values.extend([None] * (len(nodes) - len(values)))
                for i in (set(changed[seen:]) if len(changed) - seen > 8 else changed[seen:]):
                    values[i] = compute(nodes[i])
        self._column_seen[key] = len(changed)
        if len(changed) > 4096 and min(self._column_seen.values()) == len(changed):
            self._changed = []  # every column is up to date: start the log afresh
            self._column_seen = dict.fromkeys(self._column_seen, 0)
        return values

    def __len__(self) -> int:
        return len(self.node_infos)

    def have_pods_with_affinity(self) -> list[NodeInfo]:
        """Nodes running pods with (anti-)affinity terms (cached; do not modify)."""
        if self._with_affinity is None:
            self._with_affinity = [ni for ni in self.list() if ni.pods_with_affinity]
        return self._with_affinity

    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        """Nodes running pods with required anti-affinity terms (cached; do not modify)."""
        if self._with_required_anti_affinity is None:
            self._with_required_anti_affinity = [ni for ni in self.list() if ni.pods_with_required_anti_affinity]
        return self._with_required_anti_affinity

    def _sets(self) -> _NodeSets:
        s = self._node_sets
        if s is None:
            s = self._node_sets = _NodeSets(self.list())
        return s

    def unschedulable_nodes(self) -> set[str]:
        """Names of the cordoned nodes (spec.unschedulable; do not modify)."""
        return self._sets().unschedulable

    def no_schedule_tainted_nodes(self) -> set[str]:
        """Names of the nodes with a NoSchedule or NoExecute taint (do not modify)."""
        return self._sets().no_schedule_tainted

    def has_prefer_no_schedule_taints(self) -> bool:
        """Does any node have a PreferNoSchedule taint?"""
        return bool(self._sets().prefer_no_schedule)

    def pods_by_node(self) -> dict[str, list[PodInfo]]:
        return {name: ni.pods for name, ni in self.node_infos.items()}

    def topology_domains(self, key: str) -> dict[str, list[str]]:
        """Topology value -> names of the nodes carrying it (cached until nodes change)."""
        d = self._domains.get(key)
        if d is None:
            d = {}
            for ni in self.list():
                v = ni.labels.get(key)
                if v is not None:
                    d.setdefault(v, []).append(ni.name)
            self._domains[key] = d
        return d

    def namespace_labels_for(self, namespace: str) -> dict[str, str]:
        return self.namespace_labels.get(namespace, {})


class _NodeSets:
    """Which nodes a plugin has to look at for a verdict other than the trivial one
    (most nodes are neither cordoned nor tainted).  Kept up to date node by node:
    every node reports its status now and then."""

    __slots__ = ("no_schedule_tainted", "prefer_no_schedule", "unschedulable")

    def __init__(self, nodes: list[NodeInfo]):
        self.unschedulable: set[str] = set()
        self.no_schedule_tainted: set[str] = set()
        self.prefer_no_schedule: set[str] = set()
        for ni in nodes:
            self.update(ni)

    def update(self, ni: NodeInfo) -> None:
        name = ni.name
        for members, yes in ((self.unschedulable, ni.unschedulable),
                             (self.no_schedule_tainted, ni.no_schedule_taints),
                             (self.prefer_no_schedule,
                              any(t.get("effect") == "PreferNoSchedule" for t in ni.taints))):
            if yes:
                members.add(name)
            else:
                members.discard(name)
