"""Simulated nodes: fake kubelets that register Nodes, renew Leases and run pods on paper."""

from .nodes import HEARTBEAT_ANNOTATION, NodeSimulator, node_pod_cidr, parse_labels, parse_taints
from .pods import EXIT_AFTER, EXIT_CODE, READY, START_DELAY

__all__ = [
    "EXIT_AFTER",
    "EXIT_CODE",
    "HEARTBEAT_ANNOTATION",
    "READY",
    "START_DELAY",
    "NodeSimulator",
    "node_pod_cidr",
    "parse_labels",
    "parse_taints",
]
