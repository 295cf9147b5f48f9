"""Preemption (DefaultPreemption's dry run): when a pod fits nowhere, find a node
where evicting pods of lower priority would let it fit, and the fewest, least
important pods to evict there.

1. The pod must be eligible (preemptionPolicy is not Never; no lower-priority pod
   is already terminating on its nominated node).
2. Only nodes whose failure was ``Unschedulable`` are tried (a taint or node
   selector mismatch is ``UnschedulableAndUnresolvable``: no eviction helps).
3. Per node, on copies: remove every lower-priority pod; if the pod still does not
   fit, the node is out.  Otherwise add pods back, most important first ("reprieve"),
   PodDisruptionBudget-protected ones before the others, keeping each that still
   lets the pod fit; the rest are the victims.
4. Among candidate nodes pick (``pickOneNodeForPreemption``): fewest PDB
   violations, then the lowest highest-victim priority, the lowest sum of
   priorities, the fewest victims, the latest start of the top-priority victims.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from pinnace.api.selectors import matches_labels
from pinnace.scheduler.framework import (
    Code,
    CycleState,
    Profile,
    ScheduleResult,
    Status,
    fit_error_message,
)
from pinnace.scheduler.model import ClusterSnapshot, NodeInfo, PodInfo, as_pod_info, label_selector

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."

DEFAULT_MIN_CANDIDATE_NODES_PERCENTAGE = 10
DEFAULT_MIN_CANDIDATE_NODES_ABSOLUTE = 100

_INT32_OFFSET = 2**31  # MaxInt32 + 1: makes every priority non-negative before summing


@dataclass
class Candidate:
    node_name: str
    victims: list[PodInfo]  # most important first
    num_pdb_violations: int = 0


@dataclass
class PreemptionResult:
    """``node_name`` and ``victims`` when preemption can help.  Otherwise ``message``
    is the post-filter sentence for FailedScheduling (pass it to
    :func:`~pinnace.scheduler.framework.failure_message`)."""

    node_name: str | None
    victims: list[dict] = field(default_factory=list)
    num_pdb_violations: int = 0
    message: str = ""
    statuses: dict[str, Status] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)


def _importance_key(p: PodInfo):
    """``MoreImportantPod``: higher priority first, then the one running longer."""
    return (-p.priority, p.start_sort_time)


def pod_eligible_to_preempt_others(
    pod: dict, snapshot: ClusterSnapshot, result: ScheduleResult | None = None
) -> tuple[bool, str]:
    spec = pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return False, NOT_ELIGIBLE_NEVER
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated:
        st = result.status_of(nominated) if result is not None else None
        if st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return True, ""  # the nominated node can no longer work: preempt elsewhere
        ni = snapshot.get(nominated)
        if ni is not None:
            prio = int(spec.get("priority") or 0)
            # A victim is still going away there: wait for it instead of evicting more.
            if any(p.deleting and p.priority < prio for p in ni.pods):
                return False, NOT_ELIGIBLE_TERMINATING
    return True, ""


def filter_pods_with_pdb_violation(pods: list[PodInfo], pdbs: Iterable[dict]) -> tuple[list[PodInfo], list[PodInfo]]:
    """Split pods into (would violate a PDB if evicted, would not), spending each
    budget's disruptionsAllowed in order."""
    pdbs = list(pdbs)
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    selectors = [label_selector((p.get("spec") or {}).get("selector")) for p in pdbs]
    violating: list[PodInfo] = []
    ok: list[PodInfo] = []
    for pi in pods:
        violated = False
        if pi.labels:  # a pod without labels matches no PDB
            for i, pdb in enumerate(pdbs):
                meta = pdb.get("metadata") or {}
                if (meta.get("namespace") or "") != pi.namespace:
                    continue
                sel = selectors[i]
                if not sel or not matches_labels(sel, pi.labels):  # nil/empty selector matches nothing
                    continue
                if pi.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue  # already counted by the disruption controller
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else ok).append(pi)
    return violating, ok


def select_victims_on_node(
    profile: Profile,
    state: CycleState,
    pod: dict,
    node_info: NodeInfo,
    pdbs: Iterable[dict] = (),
    nominated: dict[str, list] | None = None,
) -> tuple[list[PodInfo], int, Status | None]:
    """(victims most important first, PDB violations, None) or ([], 0, why not).
    Mutates ``state`` and ``node_info``: pass copies."""
    prio = (state.pod_info or as_pod_info(pod)).priority
    potential = [p for p in node_info.pods if p.priority < prio]
    if not potential:
        return [], 0, Status.unresolvable(NO_VICTIMS)
    for p in potential:
        node_info.remove_pod(p)
        profile.run_remove_pod(state, pod, p, node_info)
    filters = profile.active_filters(state)
    st = profile.run_filter_with_nominated_pods(state, pod, node_info, nominated, filters)
    if st is not None:
        # Even with every lower-priority pod gone it does not fit (e.g. it needs more
        # than the node has, or affinity to one of the victims).
        return [], 0, st
    potential.sort(key=_importance_key)
    violating, non_violating = filter_pods_with_pdb_violation(potential, pdbs)
    victims: list[PodInfo] = []

    def reprieve(p: PodInfo) -> bool:
        node_info.add_pod(p)
        profile.run_add_pod(state, pod, p, node_info)
        if profile.run_filter_with_nominated_pods(state, pod, node_info, nominated, filters) is None:
            return True
        node_info.remove_pod(p)
        profile.run_remove_pod(state, pod, p, node_info)
        victims.append(p)
        return False

    num_violating = sum(1 for p in violating if not reprieve(p))
    for p in non_violating:
        reprieve(p)
    if violating and non_violating:
        victims.sort(key=_importance_key)
    return victims, num_violating, None


def pick_one_node_for_preemption(candidates: list[Candidate]) -> Candidate | None:
    """Apply the tie-breakers in order until one candidate is left (then the first)."""
    if not candidates:
        return None

    def earliest_top_start(c: Candidate):
        top = c.victims[0].priority
        return min(p.start_sort_time for p in c.victims if p.priority == top)

    criteria = [
        lambda c: -c.num_pdb_violations,
        lambda c: -c.victims[0].priority,
        lambda c: -sum(p.priority + _INT32_OFFSET for p in c.victims),
        lambda c: -len(c.victims),
        earliest_top_start,  # later is better: evict pods that have run the shortest
    ]
    remaining = candidates
    for score in criteria:
        best = max(score(c) for c in remaining)
        remaining = [c for c in remaining if score(c) == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def num_candidates(num_nodes: int, percentage: int = DEFAULT_MIN_CANDIDATE_NODES_PERCENTAGE,
                   absolute: int = DEFAULT_MIN_CANDIDATE_NODES_ABSOLUTE) -> int:
    """How many candidates the dry run collects before stopping."""
    return min(max(num_nodes * percentage // 100, absolute), num_nodes)


def _diagnose(profile: Profile, pod: dict, snapshot: ClusterSnapshot) -> ScheduleResult:
    """Filter every node (without moving the profile's start index) to learn why the pod fails."""
    state = CycleState(snapshot, as_pod_info(pod))
    result = ScheduleResult(None, num_all_nodes=len(snapshot), state=state)
    pre, status, narrowing = profile.run_pre_filter(state, pod, snapshot)
    if status is not None:
        result.absent_status, result.pre_filter_msg = status, status.message
        return result
    names = pre.node_names if pre is not None and pre.node_names is not None else None
    if names is not None:
        result.absent_status = Status.unresolvable(f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(narrowing))}]")
    for ni in snapshot.list():
        if names is not None and ni.name not in names:
            continue
        st = profile.run_filter(state, pod, ni)
        if st is not None:
            result.statuses[ni.name] = st
        else:
            result.feasible_nodes += 1
    return result


def preempt(
    profile: Profile,
    pod: dict,
    snapshot: ClusterSnapshot,
    result: ScheduleResult | None = None,
    *,
    pdbs: Iterable[dict] = (),
    rng: random.Random | None = None,
    nominated: dict[str, list] | None = None,
) -> PreemptionResult:
    """The node to nominate and the pods to evict there, or why there is none.

    ``result`` is the failed :func:`schedule_one` result for ``pod`` (its statuses and
    cycle state are reused); without it every node is filtered again.  ``rng`` picks
    where the dry run starts, as Kubernetes does; without it the walk starts at the
    first node.
    """
    if result is None or result.state is None:
        result = _diagnose(profile, pod, snapshot)
    ok, msg = pod_eligible_to_preempt_others(pod, snapshot, result)
    if not ok:
        return PreemptionResult(None, message=f"preemption: {msg}")

    n_all = len(snapshot)
    not_helpful = Status.unresolvable(NOT_HELPFUL)
    potential = [
        ni for ni in snapshot.list()
        if (st := result.status_of(ni.name)) is not None and st.code == Code.UNSCHEDULABLE
    ]
    statuses: dict[str, Status] = {}
    if not potential:
        return PreemptionResult(None, message="preemption: " + fit_error_message(statuses, not_helpful, n_all))

    args = profile.plugins.get("DefaultPreemption")
    pct = getattr(args, "min_candidate_nodes_percentage", DEFAULT_MIN_CANDIDATE_NODES_PERCENTAGE)
    absolute = getattr(args, "min_candidate_nodes_absolute", DEFAULT_MIN_CANDIDATE_NODES_ABSOLUTE)
    wanted = num_candidates(len(potential), pct, absolute)
    offset = rng.randrange(len(potential)) if rng is not None else 0
    pdbs = list(pdbs)
    state = result.state
    clean: list[Candidate] = []
    violating: list[Candidate] = []
    for i in range(len(potential)):
        ni = potential[(offset + i) % len(potential)]
        victims, n_viol, st = select_victims_on_node(profile, state.clone(), pod, ni.clone(), pdbs, nominated)
        if st is None and victims:
            (clean if n_viol == 0 else violating).append(Candidate(ni.name, victims, n_viol))
            if clean and len(clean) + len(violating) >= wanted:
                break
            continue
        statuses[ni.name] = st or Status.error(f"expected at least one victim pod on node {ni.name!r}")

    candidates = clean + violating
    if not candidates:
        return PreemptionResult(
            None, message="preemption: " + fit_error_message(statuses, not_helpful, n_all), statuses=statuses
        )
    best = pick_one_node_for_preemption(candidates)
    assert best is not None
    return PreemptionResult(
        best.node_name,
        [p.pod for p in best.victims],
        best.num_pdb_violations,
        statuses=statuses,
        candidates=candidates,
    )


def find_preemption(
    profile: Profile,
    pod: dict,
    snapshot: ClusterSnapshot,
    pdbs: Iterable[dict] = (),
    rng: random.Random | None = None,
    *,
    result: ScheduleResult | None = None,
    nominated: dict[str, list] | None = None,
) -> tuple[str, list[dict]] | None:
    """(node name, victim pods) or None -- :func:`preempt` without the diagnostics."""
    r = preempt(profile, pod, snapshot, result, pdbs=pdbs, rng=rng, nominated=nominated)
    return (r.node_name, r.victims) if r.node_name else None
