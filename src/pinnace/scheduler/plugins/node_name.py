"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin, Status

ERR_REASON = "node(s) didn't match the requested node name"
_NOT_MATCH = Status.unresolvable(ERR_REASON)


class NodeName(Plugin):
    name = "NodeName"

    def pre_filter(self, state, pod, snapshot):
        # Almost no pending pod names a node; skipping the filter then saves a call per node.
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return Status.skip()
        state[self.name] = node_name
        return None

    def filter(self, state, pod, node_info):
        want = state.get(self.name) or (pod.get("spec") or {}).get("nodeName")
        if want and want != node_info.name:
            return _NOT_MATCH
        return None
