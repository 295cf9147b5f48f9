"""NodePorts: the pod's hostPorts must be free on the node (0.0.0.0 clashes with any address)."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin, Status
from pinnace.scheduler.model import PodInfo

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_CONFLICT = Status.unschedulable(ERR_REASON)  # preemption can free a port


class NodePorts(Plugin):
    name = "NodePorts"

    def pre_filter(self, state, pod, snapshot):
        ports = state.pod_info.host_ports if state.pod_info is not None else PodInfo(pod).host_ports
        if not ports:
            return Status.skip()
        state[self.name] = ports
        return None

    def filter(self, state, pod, node_info):
        ports = state.get(self.name)
        if ports is None:
            ports = PodInfo(pod).host_ports
        for ip, protocol, port in ports:
            if node_info.port_conflict(ip, protocol, port):
                return _CONFLICT
        return None
