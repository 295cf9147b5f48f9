"""Scheduler plugins, one module each; :data:`REGISTRY` maps the Kubernetes plugin
name to its class (what a profile's ``plugins`` and ``pluginConfig`` refer to)."""

from __future__ import annotations

from pinnace.scheduler.plugins.balanced_allocation import BalancedAllocation
from pinnace.scheduler.plugins.default_preemption import DefaultPreemption
from pinnace.scheduler.plugins.image_locality import ImageLocality
from pinnace.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from pinnace.scheduler.plugins.node_affinity import NodeAffinity
from pinnace.scheduler.plugins.node_name import NodeName
from pinnace.scheduler.plugins.node_ports import NodePorts
from pinnace.scheduler.plugins.node_resources_fit import NodeResourcesFit
from pinnace.scheduler.plugins.node_unschedulable import NodeUnschedulable
from pinnace.scheduler.plugins.pod_topology_spread import PodTopologySpread
from pinnace.scheduler.plugins.selector_spread import SelectorSpread
from pinnace.scheduler.plugins.taint_toleration import TaintToleration

REGISTRY: dict[str, type] = {
    cls.name: cls
    for cls in (
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodePorts,
        NodeResourcesFit,
        PodTopologySpread,
        InterPodAffinity,
        DefaultPreemption,
        BalancedAllocation,
        ImageLocality,
        SelectorSpread,
    )
}

__all__ = [
    "REGISTRY",
    "BalancedAllocation",
    "DefaultPreemption",
    "ImageLocality",
    "InterPodAffinity",
    "NodeAffinity",
    "NodeName",
    "NodePorts",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "PodTopologySpread",
    "SelectorSpread",
    "TaintToleration",
]
