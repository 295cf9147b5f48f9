"""TaintToleration: NoSchedule/NoExecute taints the pod does not tolerate rule a
node out; untolerated PreferNoSchedule taints make it less attractive."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.helpers import (
    MAX_NODE_SCORE,
    default_normalize_score,
    find_untolerated_taint,
    tolerations_tolerate_taint,
)


def _tolerations(pod: dict) -> list[dict]:
    return (pod.get("spec") or {}).get("tolerations") or []


class TaintToleration(Plugin):
    name = "TaintToleration"

    def filter(self, state, pod, node_info):
        if not node_info.no_schedule_taints:
            return None
        taint = find_untolerated_taint(node_info.no_schedule_taints, _tolerations(pod))
        if taint is None:
            return None
        return Status.unresolvable(
            f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}"
        )

    def filter_scope(self, state, pod, snapshot):
        """Only nodes with a NoSchedule/NoExecute taint can fail :meth:`filter`."""
        return snapshot.no_schedule_tainted_nodes()

    def score_constant(self, state, pod, nodes):
        """Without PreferNoSchedule taints anywhere every node counts 0, i.e. 100 reversed."""
        snapshot = state.snapshot
        if snapshot is not None and not snapshot.has_prefer_no_schedule_taints():
            return MAX_NODE_SCORE
        return None

    def pre_score(self, state, pod, nodes):
        # Only tolerations that can match PreferNoSchedule (that effect, or any effect) matter.
        state[self.name] = [
            t for t in _tolerations(pod) if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"
        ]
        return None

    def score(self, state, pod, node_info):
        tolerations = state.get(self.name)
        if tolerations is None:
            tolerations = _tolerations(pod)
        count = 0
        for taint in node_info.taints:
            if taint.get("effect") == "PreferNoSchedule" and not tolerations_tolerate_taint(tolerations, taint):
                count += 1
        return count

    def normalize(self, state, pod, scores):
        # Fewer intolerable taints is better: reverse.
        default_normalize_score(scores, reverse=True)
