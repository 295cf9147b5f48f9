"""SelectorSpread (legacy, not in the default profile): spread pods of the same
Service/ReplicaSet/StatefulSet (or, failing those, the same controller) over nodes
and, with two-thirds of the weight, over zones.  Kubernetes replaced it with
PodTopologySpread's system defaults; it remains for profiles that ask for it."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin
from pinnace.scheduler.helpers import MAX_NODE_SCORE
from pinnace.scheduler.model import LABEL_REGION, LABEL_ZONE, PodInfo
from pinnace.scheduler.plugins.spreading import default_selector

ZONE_WEIGHTING = 2.0 / 3.0


def zone_key(labels: dict[str, str]) -> str:
    """``utilnode.GetZoneKey``: region and zone, beta labels first; "" without either."""
    zone = labels.get("failure-domain.beta.kubernetes.io/zone", labels.get(LABEL_ZONE, ""))
    region = labels.get("failure-domain.beta.kubernetes.io/region", labels.get(LABEL_REGION, ""))
    if not zone and not region:
        return ""
    return f"{region}:\x00:{zone}"


class SelectorSpread(Plugin):
    name = "SelectorSpread"

    def pre_score(self, state, pod, nodes):
        # Pods with explicit topology spread constraints are PodTopologySpread's business.
        if (pod.get("spec") or {}).get("topologySpreadConstraints"):
            state[self.name] = None
            return None
        state[self.name] = default_selector(state.pod_info or PodInfo(pod), state.snapshot)
        return None

    def score(self, state, pod, node_info):
        sel = state.get(self.name)
        if sel is None:
            return 0
        return sel.count_on(node_info, (state.pod_info or PodInfo(pod)).namespace)

    def normalize(self, state, pod, scores):
        if (pod.get("spec") or {}).get("topologySpreadConstraints"):
            return
        snapshot = state.snapshot
        zones: dict[str, str] = {}
        by_zone: dict[str, int] = {}
        for name, s in scores.items():
            ni = snapshot.get(name) if snapshot is not None else None
            z = zone_key(ni.labels) if ni is not None else ""
            zones[name] = z
            if z:
                by_zone[z] = by_zone.get(z, 0) + s
        max_node = max(scores.values(), default=0)
        max_zone = max(by_zone.values(), default=0)
        for name, s in scores.items():
            f = float(MAX_NODE_SCORE)
            if max_node > 0:
                f = MAX_NODE_SCORE * ((max_node - s) / max_node)
            z = zones[name]
            if by_zone and z:
                zone_score = float(MAX_NODE_SCORE)
                if max_zone > 0:
                    zone_score = MAX_NODE_SCORE * ((max_zone - by_zone[z]) / max_zone)
                f = f * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score
            scores[name] = int(f)
