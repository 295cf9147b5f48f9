"""Pure helpers of the StatefulSet controller (Kubernetes'
``pkg/controller/statefulset/stateful_set_utils.go``): pod identity and ordinals,
volume claims and their retention-policy owner references, revisions of a set,
pod health and the status a set's pods add up to.

Everything works on plain API dicts and mutates nothing it is given.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from . import controller_utils as cu
from . import history

API_VERSION, GROUP, KIND = "apps/v1", "apps", "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
RETAIN, DELETE = "Retain", "Delete"
ON_DELETE, ROLLING_UPDATE = "OnDelete", "RollingUpdate"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def _meta(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def _spec(obj: dict | None) -> dict:
    return (obj or {}).get("spec") or {}


# -- the set's spec -----------------------------------------------------------------------


def replicas(s: dict) -> int:
    r = _spec(s).get("replicas")
    return 1 if r is None else int(r)


def start_ordinal(s: dict) -> int:
    return int((_spec(s).get("ordinals") or {}).get("start") or 0)


def end_ordinal(s: dict) -> int:
    """The highest ordinal in range (start - 1 when there are no replicas)."""
    return start_ordinal(s) + replicas(s) - 1


def allows_burst(s: dict) -> bool:
    return _spec(s).get("podManagementPolicy") == "Parallel"


def min_ready_seconds(s: dict) -> int:
    return int(_spec(s).get("minReadySeconds") or 0)


def strategy_type(s: dict) -> str:
    return (_spec(s).get("updateStrategy") or {}).get("type") or ROLLING_UPDATE


def rolling_update(s: dict) -> dict | None:
    ru = (_spec(s).get("updateStrategy") or {}).get("rollingUpdate")
    return ru if isinstance(ru, dict) else None


def partition(s: dict) -> int:
    return int((rolling_update(s) or {}).get("partition") or 0)


def max_unavailable(s: dict) -> int | None:
    """``rollingUpdate.maxUnavailable`` resolved against replicas (percentages round up,
    at least 1), or None when unset: then updates go one pod at a time."""
    raw = (rolling_update(s) or {}).get("maxUnavailable")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.endswith("%"):
        value = -(-int(raw[:-1]) * replicas(s) // 100)
    else:
        value = int(raw)
    return max(value, 1)


def retention_policy(s: dict) -> tuple[str, str]:
    """(whenDeleted, whenScaled); Retain unless set to Delete."""
    p = _spec(s).get("persistentVolumeClaimRetentionPolicy") or {}
    return (DELETE if p.get("whenDeleted") == DELETE else RETAIN,
            DELETE if p.get("whenScaled") == DELETE else RETAIN)


def revision_history_limit(s: dict) -> int:
    v = _spec(s).get("revisionHistoryLimit")
    return 10 if v is None else int(v)


# -- ordinals and identity -------------------------------------------------------------------


def parent_and_ordinal(pod: dict) -> tuple[str, int]:
    """("web", 3) for pod "web-3"; ("", -1) for names without an ordinal."""
    m = _ORDINAL.match(_meta(pod).get("name", ""))
    if not m:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal(pod: dict) -> int:
    return parent_and_ordinal(pod)[1]


def is_member_of(s: dict, pod: dict) -> bool:
    return parent_and_ordinal(pod)[0] == _meta(s).get("name")


def in_ordinal_range(pod: dict, s: dict) -> bool:
    return start_ordinal(s) <= ordinal(pod) <= end_ordinal(s)


def pod_name(s: dict, ordinal_: int) -> str:
    return f"{_meta(s).get('name', '')}-{ordinal_}"


def claim_name(s: dict, template: dict, ordinal_: int) -> str:
    return f"{_meta(template).get('name', '')}-{_meta(s).get('name', '')}-{ordinal_}"


def identity_matches(s: dict, pod: dict) -> bool:
    parent, ord_ = parent_and_ordinal(pod)
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    return (ord_ >= 0 and parent == _meta(s).get("name") and meta.get("namespace") == _meta(s).get("namespace")
            and labels.get(POD_NAME_LABEL) == meta.get("name") and labels.get(POD_INDEX_LABEL) == str(ord_))


def identity_labels(pod: dict) -> dict[str, str]:
    """The identity labels ``pod`` should carry (``updateIdentity``)."""
    return {POD_NAME_LABEL: _meta(pod).get("name", ""), POD_INDEX_LABEL: str(ordinal(pod))}


def claims_for(s: dict, ordinal_: int) -> dict[str, dict]:
    """template name -> the PVC ordinal ``ordinal_`` should have (``getPersistentVolumeClaims``):
    the template, renamed ``<template>-<set>-<ordinal>``, labelled with the selector's labels."""
    selector_labels = (_spec(s).get("selector") or {}).get("matchLabels") or {}
    out = {}
    for t in _spec(s).get("volumeClaimTemplates") or ():
        claim = copy.deepcopy(t)
        claim.pop("status", None)
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(s, t, ordinal_)
        meta["namespace"] = _meta(s).get("namespace", "")
        meta["labels"] = {**(meta.get("labels") or {}), **selector_labels}
        for k in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences"):
            meta.pop(k, None)
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        out[_meta(t).get("name", "")] = claim
    return out


def storage_matches(s: dict, pod: dict) -> bool:
    ord_ = ordinal(pod)
    if ord_ < 0:
        return False
    volumes = {v.get("name"): v for v in _spec(pod).get("volumes") or ()}
    for t in _spec(s).get("volumeClaimTemplates") or ():
        v = volumes.get(_meta(t).get("name"))
        if v is None or (v.get("persistentVolumeClaim") or {}).get("claimName") != claim_name(s, t, ord_):
            return False
    return True


def _with_storage(s: dict, pod: dict) -> None:
    # Claim volumes replace same-named template volumes (``updateStorage``).
    claims = claims_for(s, ordinal(pod))
    spec = pod.setdefault("spec", {})
    volumes = [{"name": name, "persistentVolumeClaim": {"claimName": _meta(c)["name"]}} for name, c in claims.items()]
    volumes += [v for v in spec.get("volumes") or () if v.get("name") not in claims]
    if volumes:
        spec["volumes"] = volumes


def new_pod(s: dict, ordinal_: int, revision_name: str) -> dict:
    """Pod ``ordinal_`` of ``s`` (already at the wanted revision's template): identity
    labels, hostname/subdomain, claim volumes, the revision label, a controller ref."""
    pod = cu.pod_from_template(_spec(s).get("template") or {}, s, cu.new_controller_ref(s, API_VERSION, KIND))
    meta = pod["metadata"]
    meta["name"] = pod_name(s, ordinal_)
    meta["namespace"] = _meta(s).get("namespace", "")
    meta["labels"] = {**(meta.get("labels") or {}), **identity_labels(pod), REVISION_LABEL: revision_name}
    # Set only at creation: both are immutable afterwards.
    pod["spec"]["hostname"] = meta["name"]
    if _spec(s).get("serviceName"):
        pod["spec"]["subdomain"] = _spec(s)["serviceName"]
    _with_storage(s, pod)
    return pod


def new_versioned_pod(current_set: dict, update_set: dict, current_revision: str, update_revision: str,
                      ordinal_: int, current_replicas: int) -> dict:
    """``newVersionedStatefulSetPod``: ordinals below the partition (or, with a RollingUpdate
    lacking parameters, below status.currentReplicas) are (re)created at the current
    revision, all others at the update revision (OnDelete included)."""
    rolling = strategy_type(current_set) == ROLLING_UPDATE
    ru = rolling_update(current_set)
    if ((rolling and ru is None and ordinal_ < current_replicas)
            or (ru is not None and ordinal_ < partition(current_set))):
        return new_pod(current_set, ordinal_, current_revision)
    return new_pod(update_set, ordinal_, update_revision)


def pod_revision(pod: dict) -> str:
    return (_meta(pod).get("labels") or {}).get(REVISION_LABEL, "")


# -- health ------------------------------------------------------------------------------


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_created(pod: dict) -> bool:
    # Placeholders for pods still to create have no status.
    return phase(pod) != ""


def is_failed(pod: dict) -> bool:
    return phase(pod) == "Failed"


def is_succeeded(pod: dict) -> bool:
    return phase(pod) == "Succeeded"


def is_pending(pod: dict) -> bool:
    return phase(pod) == "Pending"


def is_terminating(pod: dict) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_running_and_ready(pod: dict) -> bool:
    return phase(pod) == "Running" and cu.is_pod_ready(pod)


def is_running_and_available(pod: dict, min_ready: int, now: dt.datetime | None = None) -> bool:
    return is_running_and_ready(pod) and cu.is_pod_available(pod, min_ready, now)


def is_healthy(pod: dict) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: dict, min_ready: int, now: dt.datetime | None = None) -> bool:
    return not is_healthy(pod) or not cu.is_pod_available(pod, min_ready, now)


# -- claims and retention -------------------------------------------------------------------


def _ref_for(obj: dict, api_version: str, kind: str) -> dict:
    # Retention owner refs are plain (non-controller) references: the garbage
    # collector deletes the claim with its owner, nothing else reads them.
    return {"apiVersion": api_version, "kind": kind, "name": _meta(obj).get("name", ""),
            "uid": _meta(obj).get("uid", "")}


def wanted_claim_owner_refs(claim: dict, s: dict, pod: dict) -> list[dict] | None:
    """The claim's ownerReferences under the set's retention policy
    (``updateClaimOwnerRefForSetAndPod``), or None when they already conform.

    Retain/Retain: neither the set nor the pod owns it.  whenDeleted=Delete: the set owns it
    (the claim goes with the set).  whenScaled=Delete: once its pod is out of range
    (condemned) the pod owns it instead, so it goes with the pod; in range, Delete/Delete
    keeps the set as owner."""
    when_deleted, when_scaled = retention_policy(s)
    refs = [dict(r) for r in _meta(claim).get("ownerReferences") or ()]
    set_uid, pod_uid = _meta(s).get("uid"), _meta(pod).get("uid")
    scaled_down = not in_ordinal_range(pod, s)
    want_set = (when_deleted == DELETE and (when_scaled == RETAIN or not scaled_down))
    want_pod = when_scaled == DELETE and scaled_down and bool(pod_uid)
    out = [r for r in refs if r.get("uid") not in (set_uid, pod_uid)]
    # A ref to the set of another kind/uid (e.g. a pod's previous incarnation) is left alone.
    if want_set:
        out.append(next((r for r in refs if r.get("uid") == set_uid), _ref_for(s, API_VERSION, KIND)))
    if want_pod:
        out.append(next((r for r in refs if r.get("uid") == pod_uid), _ref_for(pod, "v1", "Pod")))

    def key(rs: list[dict]) -> list[str]:
        return sorted(r.get("uid", "") for r in rs)
    return None if key(out) == key(refs) else out


def has_stale_owner_ref(claim: dict, pod: dict) -> bool:
    """The claim is owned by an earlier pod of the same name (about to be collected)."""
    return any(r.get("kind") == "Pod" and r.get("name") == _meta(pod).get("name")
               and r.get("uid") != _meta(pod).get("uid") for r in _meta(claim).get("ownerReferences") or ())


# -- revisions ---------------------------------------------------------------------------


def revision_data(s: dict) -> dict:
    """The ControllerRevision data of the set's template (``getPatch``)."""
    return history.template_patch(s)


def new_revision(s: dict, number: int, collision_count: int) -> dict:
    """``newRevision``: the template patch, labelled like the template, carrying the
    set's annotations (``kubectl rollout history`` shows change-cause from them)."""
    labels = ((_spec(s).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return history.new_revision(s, revision_data(s), number, collision_count, labels=labels,
                                annotations=_meta(s).get("annotations") or None)


# -- status -----------------------------------------------------------------------------


def replica_status(pods: Iterable[dict], min_ready: int, current_revision: str, update_revision: str,
                   now: dt.datetime | None = None) -> dict[str, int]:
    """``computeReplicaStatus`` over pods (placeholders for uncreated pods count nothing)."""
    out = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for p in pods:
        if is_created(p):
            out["replicas"] += 1
        if is_running_and_ready(p):
            out["readyReplicas"] += 1
            if is_running_and_available(p, min_ready, now):
                out["availableReplicas"] += 1
        if is_created(p) and not is_terminating(p):
            rev = pod_revision(p)
            if rev == current_revision:
                out["currentReplicas"] += 1
            if rev == update_revision:
                out["updatedReplicas"] += 1
    return out


def complete_rolling_update(s: dict, status: dict[str, Any]) -> None:
    """``completeRollingUpdate``: every pod updated and ready -> the update revision is current."""
    if (strategy_type(s) == ROLLING_UPDATE and status.get("updatedReplicas") == status.get("replicas")
            and status.get("readyReplicas") == status.get("replicas")):
        status["currentReplicas"] = status.get("updatedReplicas", 0)
        status["currentRevision"] = status.get("updateRevision", "")


STATUS_FIELDS = ("observedGeneration", "replicas", "readyReplicas", "availableReplicas", "currentReplicas",
                 "updatedReplicas", "currentRevision", "updateRevision", "collisionCount")


def inconsistent_status(s: dict, status: dict[str, Any]) -> bool:
    old = s.get("status") or {}
    return any((old.get(k) or 0) != (status.get(k) or 0) for k in STATUS_FIELDS)


__all__ = [
    "POD_INDEX_LABEL", "POD_NAME_LABEL", "REVISION_LABEL", "allows_burst", "claims_for", "complete_rolling_update",
    "end_ordinal", "has_stale_owner_ref", "identity_matches", "in_ordinal_range", "inconsistent_status",
    "is_member_of", "is_unavailable", "max_unavailable", "new_pod", "new_revision", "new_versioned_pod", "ordinal",
    "parent_and_ordinal", "pod_revision", "replica_status", "start_ordinal", "storage_matches",
    "wanted_claim_owner_refs",
]
