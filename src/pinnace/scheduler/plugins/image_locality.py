"""ImageLocality: prefer nodes that already have the pod's images, weighted by image
size and discounted for images present on many nodes (no herding onto one node)."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin
from pinnace.scheduler.helpers import MAX_NODE_SCORE

_MB = 1024 * 1024
MIN_THRESHOLD = 23 * _MB
MAX_CONTAINER_THRESHOLD = 1000 * _MB


def normalized_image_name(name: str) -> str:
    """Add the implicit ":latest" tag, as node status lists images."""
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    return name


class ImageLocality(Plugin):
    name = "ImageLocality"

    def pre_score(self, state, pod, nodes):
        spec = pod.get("spec") or {}
        containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())
        state[self.name] = ([normalized_image_name(c.get("image") or "") for c in containers], len(containers))
        return None

    def score_constant(self, state, pod, nodes):
        """No node reports any image: every node scores 0."""
        snapshot = state.snapshot
        if snapshot is not None and not snapshot.image_num_nodes:
            return 0
        return None

    def score(self, state, pod, node_info):
        images, num_containers = state[self.name]
        if not node_info.image_sizes:
            return 0
        snapshot = state.snapshot
        total_nodes = len(snapshot) if snapshot is not None else 1
        counts = snapshot.image_num_nodes if snapshot is not None else {}
        total = 0
        for image in images:
            size = node_info.image_sizes.get(image)
            if size is not None:
                spread = counts.get(image, 1) / total_nodes
                total += int(size * spread)
        max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
        if total < MIN_THRESHOLD:
            return 0
        total = min(total, max_threshold)
        return MAX_NODE_SCORE * (total - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)
