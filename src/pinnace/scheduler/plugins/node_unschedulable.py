"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods that
tolerate the node.kubernetes.io/unschedulable:NoSchedule taint."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.helpers import tolerations_tolerate_taint

ERR_REASON = "node(s) were unschedulable"
_UNSCHEDULABLE = Status.unresolvable(ERR_REASON)
_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"

    def filter_scope(self, state, pod, snapshot):
        """Only cordoned nodes can fail :meth:`filter`."""
        return snapshot.unschedulable_nodes()

    def filter(self, state, pod, node_info):
        if not node_info.unschedulable:
            return None
        # A pod tolerating the cordon taint also tolerates spec.unschedulable (DaemonSets do).
        if tolerations_tolerate_taint((pod.get("spec") or {}).get("tolerations") or [], _TAINT):
            return None
        return _UNSCHEDULABLE
