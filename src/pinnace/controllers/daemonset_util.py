"""Pure helpers of the DaemonSet controller (Kubernetes' ``pkg/controller/daemon``
``util`` package plus the decision parts of ``daemon_controller.go`` and
``update.go``), kept free of I/O so they can be unit-tested directly.

* **Eligibility** — :func:`node_should_run_daemon_pod` answers (shouldRun,
  shouldContinueRunning) for a node, from the template's nodeName, nodeSelector,
  required node affinity and the node's NoSchedule/NoExecute taints against the
  template's tolerations plus the ones every daemon pod gets
  (:func:`add_daemon_tolerations`).  The matching itself is the scheduler's
  (:mod:`pinnace.scheduler.helpers`), so the controller and the scheduler never
  disagree about a node.  Resources are deliberately not checked: since
  Kubernetes 1.12 a daemon pod that does not fit stays Pending, as any pod.
* **Placement** — pods are pinned with required node affinity
  ``matchFields metadata.name In [node]`` (:func:`replace_node_affinity`) and the
  scheduler binds them; :func:`target_node_name` reads the node back.
* **Rollout budget** — :func:`surge_count`, :func:`unavailable_count`,
  :func:`desired_node_counts`, :func:`plan_rolling_update`.
* **Per-node reconciliation** — :func:`pods_should_be_on_node`.
* **Status** — :func:`calculate_status`.
* **History** — revision data and matching come from :mod:`.history`;
  :func:`revisions_to_clean` is DaemonSet-specific (see its docstring).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..scheduler.helpers import RequiredNodeAffinity, find_untolerated_taint
from . import controller_utils as cu
from .deployment_util import scaled_value
from .history import equal_revision, template_patch

# Labels and annotations (apps/v1 and the legacy extensions/v1beta1 ones DaemonSets still use).
HASH_LABEL = "controller-revision-hash"  # apps.DefaultDaemonSetUniqueLabelKey
TEMPLATE_GENERATION_LABEL = "pod-template-generation"  # extensions.DaemonSetTemplateGenerationKey
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# Event reasons (daemon_controller.go).
SELECTING_ALL = "SelectingAll"
FAILED_DAEMON_POD = "FailedDaemonPod"
SUCCEEDED_DAEMON_POD = "SucceededDaemonPod"

# Always-present DaemonSetStatus counts (no omitempty in the Go type); the others are omitted at 0.
REQUIRED_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
OPTIONAL_COUNTS = ("updatedNumberScheduled", "numberAvailable", "numberUnavailable")


# -- small accessors -------------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def template_spec(ds: dict) -> dict:
    return (_spec(ds).get("template") or {}).get("spec") or {}


def min_ready_seconds(ds: dict) -> int:
    return int(_spec(ds).get("minReadySeconds") or 0)


def strategy_type(ds: dict) -> str:
    return (_spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate"


def template_generation(ds: dict) -> int | None:
    """The legacy template generation (``GetTemplateGeneration``): from the
    ``deprecated.daemonset.template.generation`` annotation; None when absent or garbled."""
    raw = (_meta(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


# -- tolerations and eligibility ----------------------------------------------------------------


def _same_toleration(a: dict, b: dict) -> bool:
    # Toleration.MatchToleration: key, operator, value and effect all equal.
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def _add_or_update_toleration(tolerations: list[dict], toleration: dict) -> list[dict]:
    """``AddOrUpdateTolerationInPodSpec``: a toleration equal in key/operator/value/effect is
    replaced (dropping, say, its tolerationSeconds); otherwise the new one is appended."""
    out, updated = [], False
    for t in tolerations:
        if _same_toleration(toleration, t):
            out.append(dict(toleration))
            updated = True
        else:
            out.append(t)
    if not updated:
        out.append(dict(toleration))
    return out


def daemon_tolerations(host_network: bool = False) -> list[dict]:
    """The tolerations every daemon pod gets: NoExecute not-ready/unreachable *without*
    tolerationSeconds (taint-based eviction must never drain a daemon), and NoSchedule
    for the node-condition taints and cordoning (plus network-unavailable for hostNetwork)."""
    out = [{"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
           {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    for key in (TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_PID_PRESSURE, TAINT_UNSCHEDULABLE):
        out.append({"key": key, "operator": "Exists", "effect": "NoSchedule"})
    if host_network:
        out.append({"key": TAINT_NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    return out


def add_daemon_tolerations(pod_spec: dict) -> dict:
    """A copy of ``pod_spec`` with :func:`daemon_tolerations` added (``AddOrUpdateDaemonPodTolerations``)."""
    spec = copy.deepcopy(pod_spec)
    tolerations = list(spec.get("tolerations") or [])
    for t in daemon_tolerations(bool(spec.get("hostNetwork"))):
        tolerations = _add_or_update_toleration(tolerations, t)
    spec["tolerations"] = tolerations
    return spec


@dataclass(slots=True)
class _NodeView:
    """What :class:`RequiredNodeAffinity` reads of a node (a full NodeInfo would parse resources)."""

    name: str
    labels: dict[str, str]


@dataclass(slots=True)
class DaemonPodPredicate:
    """A DaemonSet's template, parsed once, ready to be checked against many nodes."""

    node_name: str
    affinity: RequiredNodeAffinity
    tolerations: list[dict] = field(default_factory=list)

    @classmethod
    def for_daemon_set(cls, ds: dict) -> DaemonPodPredicate:
        spec = add_daemon_tolerations(template_spec(ds))
        return cls(spec.get("nodeName") or "", RequiredNodeAffinity({"spec": spec}), spec["tolerations"])

    def check(self, node: dict) -> tuple[bool, bool]:
        """(shouldRun, shouldContinueRunning) — ``NodeShouldRunDaemonPod``."""
        meta = _meta(node)
        name = meta.get("name") or ""
        if self.node_name and self.node_name != name:
            return False, False
        if not self.affinity.matches(_NodeView(name, meta.get("labels") or {})):  # type: ignore[arg-type]
            return False, False
        taints = _spec(node).get("taints") or []
        blocking = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")]
        if find_untolerated_taint(blocking, self.tolerations) is None:
            return True, True
        # A pod already there may stay unless a NoExecute taint would evict it anyway.
        evicting = [t for t in taints if t.get("effect") == "NoExecute"]
        return False, find_untolerated_taint(evicting, self.tolerations) is None


def node_should_run_daemon_pod(node: dict, ds: dict) -> tuple[bool, bool]:
    """(shouldRun, shouldContinueRunning) of ``ds`` on ``node``:

    * shouldRun — a daemon pod should be created there if there is none;
    * shouldContinueRunning — a daemon pod already there may stay (true also when only
      a NoSchedule taint is untolerated: NoSchedule does not evict)."""
    return DaemonPodPredicate.for_daemon_set(ds).check(node)


# -- placement --------------------------------------------------------------------------------


def replace_node_affinity(affinity: dict | None, node_name: str) -> dict:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: the required node affinity becomes the one
    term ``matchFields metadata.name In [node]`` (the controller already checked the user's
    terms against that node); preferred terms and pod (anti-)affinity are kept."""
    out = copy.deepcopy(affinity or {})
    node_aff = out.setdefault("nodeAffinity", {})
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return out


def target_node_name(pod: dict) -> str | None:
    """The node a daemon pod is for (``GetTargetNodeName``): spec.nodeName once bound, else
    the ``metadata.name In [x]`` matchFields of its required node affinity; None if neither."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for req in (term or {}).get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("operator") == "In":
                values = req.get("values") or []
                return values[0] if len(values) == 1 else None
    return None


def create_pod_template(template: dict, generation: int | None, hash_: str) -> dict:
    """``CreatePodTemplate``: the DaemonSet's template with the daemon tolerations and the
    ``pod-template-generation`` (when known) and ``controller-revision-hash`` labels."""
    out = copy.deepcopy(template or {})
    out["spec"] = add_daemon_tolerations(out.get("spec") or {})
    labels = dict((out.setdefault("metadata", {})).get("labels") or {})
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_:
        labels[HASH_LABEL] = hash_
    out["metadata"]["labels"] = labels
    return out


def daemon_pod_template(ds: dict, hash_: str, node_name: str) -> dict:
    """The template of the daemon pod for ``node_name``."""
    tpl = create_pod_template(_spec(ds).get("template") or {}, template_generation(ds), hash_)
    tpl["spec"]["affinity"] = replace_node_affinity(tpl["spec"].get("affinity"), node_name)
    return tpl


def is_pod_updated(pod: dict, hash_: str, generation: int | None) -> bool:
    """``IsPodUpdated``: the pod carries the current revision hash (or the legacy template generation)."""
    labels = _meta(pod).get("labels") or {}
    template_matches = generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation)
    return (bool(hash_) and labels.get(HASH_LABEL) == hash_) or template_matches


# -- ordering ----------------------------------------------------------------------------------


def pod_age_key(pod: dict) -> tuple:
    """``podByCreationTimestampAndPhase``: scheduled pods first, then the oldest, then by name."""
    meta = _meta(pod)
    created = cu.parse_time(meta.get("creationTimestamp"))
    return (0 if _spec(pod).get("nodeName") else 1,
            created or dt.datetime.min.replace(tzinfo=dt.UTC), meta.get("name") or "")


def group_by_node(pods: Iterable[dict], include_deleted_terminal: bool = False) -> dict[str, list[dict]]:
    """Daemon pods by target node (``getNodesToDaemonPods``).  Terminal pods already being
    deleted are left out unless asked for: nothing more is to be done with them."""
    out: dict[str, list[dict]] = {}
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if not include_deleted_terminal and phase in ("Succeeded", "Failed") and cu.is_being_deleted(pod):
            continue
        node = target_node_name(pod)
        if node is None:
            continue
        out.setdefault(node, []).append(pod)
    return out


# -- rollout budget --------------------------------------------------------------------------


def _rolling(ds: dict) -> dict | None:
    if strategy_type(ds) != "RollingUpdate":
        return None
    return (_spec(ds).get("updateStrategy") or {}).get("rollingUpdate")


def surge_count(ds: dict, number_to_schedule: int) -> int:
    """``SurgeCount``: maxSurge scaled against ``number_to_schedule`` (percentages round up);
    0 unless the strategy is RollingUpdate with a maxSurge."""
    ru = _rolling(ds)
    if ru is None or ru.get("maxSurge") is None:
        return 0
    return scaled_value(ru["maxSurge"], number_to_schedule, True)


def unavailable_count(ds: dict, number_to_schedule: int) -> int:
    """``UnavailableCount``: maxUnavailable scaled against ``number_to_schedule`` (rounding up)."""
    ru = _rolling(ds)
    if ru is None:
        return 0
    return scaled_value(ru.get("maxUnavailable"), number_to_schedule, True)


def allows_surge(ds: dict) -> bool:
    """Whether more than one pod per node is allowed during an update."""
    return surge_count(ds, 1) > 0


def desired_node_counts(ds: dict, nodes: Iterable[dict], node_to_pods: dict[str, list[dict]],
                        predicate: DaemonPodPredicate | None = None) -> tuple[int, int, int]:
    """(maxSurge, maxUnavailable, desiredNumberScheduled) — ``updatedDesiredNodeCounts``.
    Also gives every node that should run the daemon an entry in ``node_to_pods``, so an
    empty node counts in the rollout.  An impossible 0/0 budget falls back to 1 unavailable."""
    pred = predicate or DaemonPodPredicate.for_daemon_set(ds)
    desired = 0
    for node in nodes:
        should_run, _ = pred.check(node)
        if not should_run:
            continue
        desired += 1
        node_to_pods.setdefault(_meta(node).get("name") or "", [])
    max_unavailable = unavailable_count(ds, desired)
    max_surge = surge_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1
    return max_surge, max_unavailable, desired


def find_updated_pods_on_node(pods: Iterable[dict], hash_: str, generation: int | None
                              ) -> tuple[dict | None, dict | None, bool]:
    """(new pod, old pod, ok) among a node's non-deleted pods; ok is False when there are
    two of a kind — the manage loop prunes those first."""
    new_pod = old_pod = None
    for pod in pods:
        if cu.is_being_deleted(pod):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new_pod is not None:
                return None, None, False
            new_pod = pod
        else:
            if old_pod is not None:
                return None, None, False
            old_pod = pod
    return new_pod, old_pod, True


def _name(pod: dict) -> str:
    return _meta(pod).get("name") or ""


def plan_rolling_update(ds: dict, nodes: Iterable[dict], node_to_pods: dict[str, list[dict]], hash_: str,
                        now: dt.datetime | None = None) -> tuple[list[str], list[str]]:
    """One RollingUpdate step (``rollingUpdate``): (names of pods to delete, nodes to create on).

    Without surge, old pods are deleted while fewer than maxUnavailable nodes lack an
    available updated pod (an old pod that is not available anyway may always go); the
    manage loop then creates the replacements.  With surge, a new pod is created next to an
    available old one on at most maxSurge nodes at a time, and the old pod is deleted once
    the new one is available; a node whose old pod is unavailable gets its new pod at once."""
    node_list = list(nodes)
    by_name = {_meta(n).get("name") or "": n for n in node_list}
    pred = DaemonPodPredicate.for_daemon_set(ds)
    node_to_pods = {k: list(v) for k, v in node_to_pods.items()}
    max_surge, max_unavailable, desired = desired_node_counts(ds, node_list, node_to_pods, pred)
    generation = template_generation(ds)
    mrs = min_ready_seconds(ds)

    def available(pod: dict) -> bool:
        return cu.is_pod_available(pod, mrs, now)

    if max_surge == 0:
        num_unavailable = 0
        allowed: list[str] = []
        candidates: list[str] = []
        for _node_name, pods in sorted(node_to_pods.items()):
            new_pod, old_pod, ok = find_updated_pods_on_node(pods, hash_, generation)
            if not ok:
                num_unavailable += 1  # the manage loop cleans this node up first
                continue
            if (old_pod is None) == (new_pod is None):
                num_unavailable += 1  # empty, or both: the manage loop creates/deletes
            elif new_pod is not None:
                if not available(new_pod):
                    num_unavailable += 1
            elif old_pod is not None:
                if not available(old_pod):
                    allowed.append(_name(old_pod))  # replacing it costs no availability
                    num_unavailable += 1
                elif num_unavailable < max_unavailable:
                    candidates.append(_name(old_pod))
        remaining = max(0, min(max_unavailable - num_unavailable, len(candidates)))
        return allowed + candidates[:remaining], []

    to_delete: list[str] = []
    should_not_run: list[str] = []
    candidate_nodes: list[str] = []
    allowed_nodes: list[str] = []
    num_surge = num_available = 0
    for node_name, pods in sorted(node_to_pods.items()):
        new_pod, old_pod, ok = find_updated_pods_on_node(pods, hash_, generation)
        if not ok:
            num_surge += 1
            continue
        if old_pod is not None:
            num_available += available(old_pod)
        elif new_pod is not None:
            num_available += available(new_pod)
        if old_pod is None:
            continue  # the manage loop handles it
        if new_pod is None:
            node = by_name.get(node_name)
            should_run = node is not None and pred.check(node)[0]
            if not available(old_pod):
                if not should_run:
                    to_delete.append(_name(old_pod))
                    continue
                allowed_nodes.append(node_name)
            else:
                if not should_run:
                    should_not_run.append(_name(old_pod))
                    continue
                if num_surge >= max_surge:
                    continue
                candidate_nodes.append(node_name)
        else:
            if not available(new_pod):
                num_surge += 1  # waiting for the new pod to go available
                continue
            to_delete.append(_name(old_pod))
    # With surge the owner expects full availability: a pod on a node it must leave goes only
    # once enough pods elsewhere are available.
    deletable = min(num_available - desired, len(should_not_run))
    if deletable > 0:
        to_delete.extend(should_not_run[:deletable])
    remaining = max(0, min(max_surge - num_surge, len(candidate_nodes)))
    return to_delete, allowed_nodes + candidate_nodes[:remaining]


# -- per-node reconciliation ------------------------------------------------------------------


@dataclass
class NodePlan:
    """What :func:`pods_should_be_on_node` decided for one node."""

    create: bool = False
    delete: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # failed pods to delete (an event each)
    succeeded: list[dict] = field(default_factory=list)
    backoff: float | None = None  # a failed pod's deletion waits this long


def pods_should_be_on_node(node: dict, pods: list[dict] | None, ds: dict, hash_: str,
                           predicate: DaemonPodPredicate | None = None,
                           failed_backoff: Callable[[str], float | None] | None = None,
                           now: dt.datetime | None = None) -> NodePlan:
    """``podsShouldBeOnNode``: create a pod where one should run and none exists; delete
    failed/succeeded pods (failed ones subject to ``failed_backoff(node)``, which returns
    None to go ahead or the seconds still to wait); keep one pod per node (two while
    surging: the oldest updated pod plus the oldest old pod, until the new one is
    available); delete every pod on a node that must not keep it."""
    pred = predicate or DaemonPodPredicate.for_daemon_set(ds)
    should_run, should_continue = pred.check(node)
    node_name = _meta(node).get("name") or ""
    plan = NodePlan()
    if should_run and pods is None:
        plan.create = True
        return plan
    pods = pods or []
    if should_continue:
        running: list[dict] = []
        for pod in pods:
            if cu.is_being_deleted(pod):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                wait = failed_backoff(node_name) if failed_backoff is not None else None
                if wait is not None:
                    plan.backoff = wait if plan.backoff is None else min(plan.backoff, wait)
                    continue
                plan.failed.append(pod)
            elif phase == "Succeeded":
                plan.succeeded.append(pod)
            else:
                running.append(pod)
        plan.delete.extend(plan.failed + plan.succeeded)
        running.sort(key=pod_age_key)
        if not allows_surge(ds):
            plan.delete.extend(running[1:])  # more than one: keep the oldest
            return plan
        if not running:
            plan.create = should_run  # surging needs at least one live pod per node
            return plan
        if len(running) == 1:
            return plan
        oldest_new = oldest_old = None
        for pod in running:
            if (_meta(pod).get("labels") or {}).get(HASH_LABEL) == hash_:
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            plan.delete.append(pod)
        if oldest_new is not None and oldest_old is not None:
            if not cu.is_pod_ready(oldest_old) or cu.is_pod_available(oldest_new, min_ready_seconds(ds), now):
                plan.delete.append(oldest_old)
        return plan
    if pods:
        plan.delete.extend(p for p in pods if not cu.is_being_deleted(p))
    return plan


def unscheduled_pods_without_node(nodes: Iterable[dict], node_to_pods: Mapping[str, list[dict]]) -> list[dict]:
    """Unbound pods aimed at nodes that no longer exist: the scheduler can never place them
    and pod GC only collects bound pods, so the DaemonSet controller deletes them."""
    names = {_meta(n).get("name") for n in nodes}
    return [p for node, pods in node_to_pods.items() if node not in names
            for p in pods if not _spec(p).get("nodeName")]


# -- status ------------------------------------------------------------------------------------


def calculate_status(ds: dict, nodes: Iterable[dict], node_to_pods: Mapping[str, list[dict]], hash_: str,
                     now: dt.datetime | None = None) -> dict[str, int]:
    """The DaemonSet counts (``updateDaemonSetStatus``), judged on each node's oldest pod."""
    pred = DaemonPodPredicate.for_daemon_set(ds)
    generation = template_generation(ds)
    mrs = min_ready_seconds(ds)
    desired = current = misscheduled = ready = updated = available = 0
    for node in nodes:
        should_run, _ = pred.check(node)
        pods = node_to_pods.get(_meta(node).get("name") or "") or []
        if not should_run:
            misscheduled += bool(pods)
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = min(pods, key=pod_age_key)
        if cu.is_pod_ready(pod):
            ready += 1
            if cu.is_pod_available(pod, mrs, now):
                available += 1
        if is_pod_updated(pod, hash_, generation):
            updated += 1
    return {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": updated,
            "numberAvailable": available, "numberUnavailable": desired - available}


def status_counts(status: dict) -> dict[str, int]:
    return {k: int(status.get(k) or 0) for k in (*REQUIRED_COUNTS, *OPTIONAL_COUNTS)}


def render_status(old: dict, counts: dict[str, int], observed_generation: int | None) -> dict[str, Any]:
    """The status to write: ``counts`` over ``old`` (keeping collisionCount and conditions),
    zero optional counts omitted as the Go type's omitempty does."""
    out: dict[str, Any] = {k: v for k, v in old.items() if k not in (*REQUIRED_COUNTS, *OPTIONAL_COUNTS)}
    for k in REQUIRED_COUNTS:
        out[k] = counts[k]
    for k in OPTIONAL_COUNTS:
        if counts[k]:
            out[k] = counts[k]
    if observed_generation is not None:
        out["observedGeneration"] = observed_generation
    return out


# -- history ------------------------------------------------------------------------------------


def revision_data(ds: dict) -> dict:
    """What a DaemonSet ControllerRevision stores (``getPatch``)."""
    return template_patch(ds)


def revision_matches(ds: dict, revision: dict) -> bool:
    """Whether ``revision`` holds ``ds``'s current template (``Match``), compared parsed."""
    return equal_revision({"data": revision_data(ds)}, revision)


def revisions_to_clean(old: Iterable[dict], live_hashes: Iterable[str], limit: int) -> list[dict]:
    """``cleanupHistory``: keep at most ``limit`` old revisions, live ones (a pod still carries
    their hash) *included* in that count but never deleted; the oldest go first.  (The
    generic :func:`.history.revisions_to_truncate` counts only non-live revisions, as the
    StatefulSet controller does, hence this DaemonSet-specific variant.)"""
    old = sorted(old, key=lambda r: (int(r.get("revision") or 0), _meta(r).get("name") or ""))
    to_kill = len(old) - max(int(limit), 0)
    live = set(live_hashes)
    out: list[dict] = []
    for r in old:
        if to_kill <= 0:
            break
        if (_meta(r).get("labels") or {}).get(HASH_LABEL) in live:
            continue
        out.append(r)
        to_kill -= 1
    return out


# -- failed pod backoff ------------------------------------------------------------------------


class FailedPodsBackoff:
    """Per-key exponential backoff (client-go's ``flowcontrol.Backoff``, 1 s doubling to
    15 min in kube-controller-manager) that keeps a DaemonSet from hot-looping against a
    kubelet that keeps failing its pod."""

    def __init__(self, initial: float = 1.0, maximum: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.initial, self.maximum, self.clock = initial, maximum, clock
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (backoff, last update)

    def in_backoff(self, key: str) -> float | None:
        """Seconds left while ``key`` backs off since its last :meth:`next`, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        backoff, last = entry
        left = backoff - (self.clock() - last)
        return left if left > 0 else None

    def next(self, key: str) -> float:
        """Record an attempt for ``key``: the first (or one after a long quiet spell) waits
        ``initial`` before the next, each further one twice as long up to ``maximum``."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            backoff = self.initial
        else:
            backoff = min(entry[0] * 2, self.maximum)
        self._entries[key] = (backoff, now)
        return backoff

    def gc(self) -> None:
        now = self.clock()
        self._entries = {k: v for k, v in self._entries.items() if now - v[1] <= 2 * self.maximum}


__all__ = [
    "FAILED_DAEMON_POD", "HASH_LABEL", "SELECTING_ALL", "SUCCEEDED_DAEMON_POD", "TEMPLATE_GENERATION_ANNOTATION",
    "TEMPLATE_GENERATION_LABEL", "DaemonPodPredicate", "FailedPodsBackoff", "NodePlan", "add_daemon_tolerations",
    "allows_surge", "calculate_status", "create_pod_template", "daemon_pod_template", "daemon_tolerations",
    "desired_node_counts", "find_updated_pods_on_node", "group_by_node", "is_pod_updated",
    "node_should_run_daemon_pod", "plan_rolling_update", "pod_age_key", "pods_should_be_on_node",
    "render_status", "replace_node_affinity", "revision_data", "revision_matches", "revisions_to_clean",
    "status_counts", "surge_count", "target_node_name", "template_generation", "unavailable_count",
    "unscheduled_pods_without_node",
]
