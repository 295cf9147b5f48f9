"""NodeAffinity: spec.nodeSelector and required node affinity must match the node
(filter); preferred node affinity terms add their weights (score)."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin, PreFilterResult, Status
from pinnace.scheduler.helpers import (
    NodeSelector,
    PreferredSchedulingTerms,
    RequiredNodeAffinity,
    default_normalize_score,
)

ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT = "pod affinity terms conflict"

_NOT_MATCH = Status.unresolvable(ERR_REASON_POD)
_NOT_MATCH_ENFORCED = Status.unresolvable(ERR_REASON_ENFORCED)


def required_node_affinity(state, pod: dict) -> RequiredNodeAffinity:
    """Parsed once per cycle and shared (PodTopologySpread needs it too)."""
    r = state.get("_required_node_affinity")
    if r is None:
        r = state["_required_node_affinity"] = RequiredNodeAffinity(pod)
    return r


def _node_affinity(pod: dict) -> dict:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def _node_names_from_terms(terms: list[dict]) -> set[str] | None:
    """The nodes a required affinity pins by ``matchFields metadata.name In``: None
    unless every (ORed) term pins names; within a term the pins intersect."""
    names: set[str] = set()
    for term in terms:
        term_names: set[str] | None = None
        for r in term.get("matchFields") or ():
            if r.get("key") == "metadata.name" and r.get("operator") == "In":
                s = set(r.get("values") or ())
                term_names = s if term_names is None else term_names & s
        if term_names is None:
            return None  # this term allows any node
        names |= term_names
    return names


class NodeAffinity(Plugin):
    name = "NodeAffinity"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        added = self.args.get("addedAffinity") or {}
        required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_required = NodeSelector(required.get("nodeSelectorTerms") or []) if required else None
        preferred = added.get("preferredDuringSchedulingIgnoredDuringExecution")
        self.added_preferred = PreferredSchedulingTerms(preferred) if preferred else None

    def pre_filter(self, state, pod, snapshot):
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        node_selector = (pod.get("spec") or {}).get("nodeSelector")
        if required is None and not node_selector and self.added_required is None:
            return Status.skip()
        required_node_affinity(state, pod)
        terms = (required or {}).get("nodeSelectorTerms") or []
        if not terms:
            return None
        names = _node_names_from_terms(terms)
        if names is None:
            return None
        if not names:
            return Status.unresolvable(ERR_REASON_CONFLICT)
        return PreFilterResult(names)

    def filter(self, state, pod, node_info):
        if self.added_required is not None and not self.added_required.matches(node_info.labels, node_info.name):
            return _NOT_MATCH_ENFORCED
        if not required_node_affinity(state, pod).matches(node_info):
            return _NOT_MATCH
        return None

    def pre_score(self, state, pod, nodes):
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        if preferred is None and self.added_preferred is None:
            return Status.skip()
        state[self.name + "/score"] = PreferredSchedulingTerms(preferred or [])
        return None

    def score(self, state, pod, node_info):
        terms = state.get(self.name + "/score")
        if terms is None:
            preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
            terms = PreferredSchedulingTerms(preferred or [])
        total = terms.score(node_info)
        if self.added_preferred is not None:
            total += self.added_preferred.score(node_info)
        return total

    def normalize(self, state, pod, scores):
        default_normalize_score(scores)
