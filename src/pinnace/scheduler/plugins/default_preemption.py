"""DefaultPreemption: the post-filter that, when no node fits, looks for a node
where evicting lower-priority pods would make room (see ``scheduler.preemption``)."""

from __future__ import annotations

from pinnace.scheduler.framework import Plugin


class DefaultPreemption(Plugin):
    name = "DefaultPreemption"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        # How many candidate nodes a dry run collects before choosing (DefaultPreemptionArgs).
        self.min_candidate_nodes_percentage = int(self.args.get("minCandidateNodesPercentage", 10))
        self.min_candidate_nodes_absolute = int(self.args.get("minCandidateNodesAbsolute", 100))

    def post_filter(self, profile, pod, snapshot, result, **kwargs):
        from pinnace.scheduler.preemption import preempt

        return preempt(profile, pod, snapshot, result, **kwargs)
