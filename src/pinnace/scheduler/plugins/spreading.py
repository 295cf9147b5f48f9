"""Selectors for spreading: which existing pods count as "the same group" as the
incoming one (shared by PodTopologySpread and SelectorSpread)."""

from __future__ import annotations

from collections.abc import Iterable

from pinnace.api.selectors import LabelSelector, Requirement
from pinnace.scheduler.model import ClusterSnapshot, NodeInfo, PodInfo, compile_selector, label_selector


class SpreadSelector:
    """A label selector, optionally narrowed to pods of one controller uid (used
    when the owning ReplicaSet/StatefulSet/ReplicationController is not in the
    snapshot, so its selector is unknown but its pods still form the group)."""

    __slots__ = ("_selects", "owner_uid", "selector")

    def __init__(self, selector: LabelSelector | None, owner_uid: str = ""):
        self.selector = selector  # None selects nothing, () everything
        self.owner_uid = owner_uid
        self._selects = compile_selector(selector)

    @property
    def empty(self) -> bool:
        """No requirement at all (``Selector.Empty()``): counts nothing."""
        return self.selector == () and not self.owner_uid

    def matches(self, p: PodInfo) -> bool:
        if self.owner_uid and p.owner_uid != self.owner_uid:
            return False
        return self._selects(p.labels)

    def count_on(self, node_info: NodeInfo, namespace: str) -> int:
        """:meth:`count` over a node's pods, from its per-controller index when the
        selector is just "same controller" (owner references never cross namespaces)."""
        if self.owner_uid and self.selector == ():
            return node_info.owner_counts.get(self.owner_uid, 0)
        return self.count(node_info.pods, namespace)

    def count(self, pods: Iterable[PodInfo], namespace: str) -> int:
        """Matching pods in ``namespace``, not counting terminating ones."""
        if self.empty:
            return 0
        n = 0
        uid, selects = self.owner_uid, self._selects
        for p in pods:
            if p.namespace == namespace and not p.deleting and (not uid or p.owner_uid == uid) and selects(p.labels):
                n += 1
        return n

    def __repr__(self) -> str:
        return f"SpreadSelector({self.selector!r}, owner_uid={self.owner_uid!r})"


def merge_match_label_keys(selector: LabelSelector | None, keys: list[str] | None,
                           labels: dict[str, str]) -> LabelSelector | None:
    """Add ``key=value`` for each matchLabelKeys key the pod has (idempotent if the
    API server already merged them)."""
    if selector is None or not keys:
        return selector
    extra = tuple(Requirement(k, "=", frozenset([labels[k]])) for k in keys if k in labels)
    return extra + selector if extra else selector


def _find(objs: list[dict], namespace: str, name: str) -> dict | None:
    for o in objs:
        meta = o.get("metadata") or {}
        if meta.get("name") == name and (meta.get("namespace") or "") == namespace:
            return o
    return None


def default_selector(pi: PodInfo, snapshot: ClusterSnapshot | None) -> SpreadSelector | None:
    """``helper.DefaultSelector``: the union of the selectors of Services selecting the
    pod and of its controlling ReplicationController/ReplicaSet/StatefulSet.  None when
    that is empty (the pod belongs to no group, so there is nothing to spread)."""
    label_set: dict[str, str] = {}
    services = snapshot.services if snapshot is not None else []
    for svc in services:
        if ((svc.get("metadata") or {}).get("namespace") or "") != pi.namespace:
            continue
        sel = (svc.get("spec") or {}).get("selector")
        if sel and all(pi.labels.get(k) == v for k, v in sel.items()):
            label_set.update(sel)
    extra: tuple[Requirement, ...] = ()
    owner_uid = ""
    owner = next((o for o in (pi.pod.get("metadata") or {}).get("ownerReferences") or () if o.get("controller")), None)
    if owner is not None:
        api_version = owner.get("apiVersion") or ""
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = owner.get("kind")
        name = owner.get("name") or ""
        obj = None
        if (group, kind) == ("", "ReplicationController"):
            obj = _find(snapshot.replication_controllers, pi.namespace, name) if snapshot else None
            if obj is not None:
                label_set.update((obj.get("spec") or {}).get("selector") or {})
        elif (group, kind) in (("apps", "ReplicaSet"), ("apps", "StatefulSet")):
            pool = (snapshot.replica_sets if kind == "ReplicaSet" else snapshot.stateful_sets) if snapshot else []
            obj = _find(pool, pi.namespace, name)
            if obj is not None:
                extra = label_selector((obj.get("spec") or {}).get("selector")) or ()
        else:
            owner = None
        if owner is not None and obj is None:
            owner_uid = pi.owner_uid
    reqs = tuple(Requirement(k, "=", frozenset([v])) for k, v in label_set.items()) + extra
    if not reqs and not owner_uid:
        return None
    return SpreadSelector(reqs, owner_uid)
