"""Pure rollout arithmetic for the Deployment controller (Kubernetes'
``pkg/controller/deployment/util``): surge/unavailable resolution, how far to
scale the new and old ReplicaSets in one step, proportional scaling, revisions,
the pod-template hash, and status conditions.

Everything here works on plain API dicts and never does I/O, so the rollout
rules can be unit-tested without a cluster.  Functions that "change" a
ReplicaSet return new numbers instead; the controller writes them.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import orjson

from ..api.times import now_time as now_iso
from ..api.times import parse_time

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Deployment annotations that are about the Deployment itself and must not be copied to its ReplicaSets.
SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})

# Condition reasons, as Kubernetes spells them (kubectl rollout status matches on some).
AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LENGTH = 10


# -- small accessors -------------------------------------------------------------------


def spec_replicas(obj: dict | None) -> int:
    if obj is None:
        return 0
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def status_int(obj: dict | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations(obj: dict) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def creation_key(rs: dict) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


# -- hashing ----------------------------------------------------------------------------


def safe_encode(text: str) -> str:
    """Map each character onto an alphabet without vowels or look-alikes, so a
    hash never spells words and is a valid DNS label fragment."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: dict, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template: stable across processes (sorted
    JSON, no Python ``hash``), ignoring any hash label already present, and
    perturbed by ``collisionCount`` so a name clash can be escaped."""
    tpl = copy.deepcopy(template or {})
    labels = (tpl.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    data = orjson.dumps(tpl, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += b"#" + str(int(collision_count)).encode()
    return safe_encode(f"{_fnv32a(data):010d}")[:HASH_LENGTH]


def equal_ignore_hash(a: dict | None, b: dict | None) -> bool:
    """Whether two pod templates are equal apart from the ``pod-template-hash`` label."""
    def strip(t: dict | None) -> dict:
        t = copy.deepcopy(t or {})
        meta = t.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels.pop(HASH_LABEL, None)
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        # Empty maps and absent maps mean the same thing.
        for k in [k for k, v in meta.items() if v in (None, {}, [])]:
            del meta[k]
        if meta:
            t["metadata"] = meta
        else:
            t.pop("metadata", None)
        return t
    return strip(a) == strip(b)


# -- surge and unavailability -------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An IntOrString against ``total``: ``3`` → 3, ``"25%"`` → 25% of total, rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) as counts: surge rounds up, unavailable rounds down; if
    both come out 0 unavailable becomes 1, or a rollout could never move."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(d: dict) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling(d: dict) -> tuple[int, int]:
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), spec_replicas(d))


def max_unavailable(d: dict) -> int:
    if not is_rolling_update(d) or spec_replicas(d) == 0:
        return 0
    return min(_rolling(d)[1], spec_replicas(d))


def max_surge(d: dict) -> int:
    if not is_rolling_update(d):
        return 0
    return _rolling(d)[0]


# -- revisions ----------------------------------------------------------------------------


def revision(obj: dict) -> int:
    try:
        return int(annotations(obj).get(REVISION, "0") or 0)
    except ValueError:
        return 0


def max_revision(rses: Iterable[dict]) -> int:
    return max((revision(rs) for rs in rses), default=0)


def new_rs_annotations(d: dict, rs_annotations: dict[str, str], new_revision: int,
                       exists: bool) -> dict[str, str]:
    """The annotations a (new) ReplicaSet should carry: the Deployment's own ones
    copied, its revision raised to ``new_revision`` (recording the old one in the
    history when an existing RS is brought back, i.e. a rollback), and for a fresh
    RS the desired/max replica counts."""
    out = dict(rs_annotations)
    for k, v in annotations(d).items():
        if k not in SKIP_COPY:
            out[k] = v
    old = out.get(REVISION, "")
    try:
        old_int = int(old) if old else 0
    except ValueError:
        old_int = 0
    if old_int < new_revision:
        out[REVISION] = str(new_revision)
        if old:
            history = out.get(REVISION_HISTORY, "")
            out[REVISION_HISTORY] = f"{history},{old}" if history else old
    if not exists:
        out.update(replicas_annotations(d))
    return out


def replicas_annotations(d: dict) -> dict[str, str]:
    return {DESIRED_REPLICAS: str(spec_replicas(d)), MAX_REPLICAS: str(spec_replicas(d) + max_surge(d))}


def replicas_annotations_need_update(rs: dict, d: dict) -> bool:
    a = annotations(rs)
    return any(a.get(k) != v for k, v in replicas_annotations(d).items())


# -- choosing the new RS ------------------------------------------------------------------


def find_new_replica_set(d: dict, rses: list[dict]) -> dict | None:
    """The oldest RS whose template equals the Deployment's (ignoring the hash label):
    deterministic when, rarely, several match."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rses, key=creation_key):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def active(rses: Iterable[dict | None]) -> list[dict]:
    return [rs for rs in rses if rs is not None and spec_replicas(rs) > 0]


def total_replicas(rses: Iterable[dict | None]) -> int:
    return sum(spec_replicas(rs) for rs in rses if rs is not None)


def total_status(rses: Iterable[dict | None], field: str) -> int:
    return sum(status_int(rs, field) for rs in rses if rs is not None)


# -- rolling update step sizes ------------------------------------------------------------


def new_rs_new_replicas(d: dict, all_rses: list[dict], new_rs: dict) -> int:
    """How many replicas the new RS may have now: as many as the surge budget allows,
    never more than the Deployment wants."""
    want = spec_replicas(d)
    if not is_rolling_update(d):
        return want
    current = total_replicas(all_rses)
    limit = want + max_surge(d)
    if current >= limit:
        return spec_replicas(new_rs)
    scale_up = min(limit - current, want - spec_replicas(new_rs))
    return spec_replicas(new_rs) + max(0, scale_up)


def old_rs_scale_down(d: dict, all_rses: list[dict], old_rses: list[dict], new_rs: dict | None) -> dict[str, int]:
    """New sizes for old ReplicaSets in one rolling-update step (name → replicas;
    only those that change).  First unhealthy old replicas go (they cost no
    availability), then available ones, oldest RS first, never taking the
    available count below ``replicas - maxUnavailable``."""
    old_active = [rs for rs in old_rses if spec_replicas(rs) > 0]
    if not old_active:
        return {}
    sizes = {rs["metadata"]["name"]: spec_replicas(rs) for rs in old_rses}
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas") if new_rs else 0
    max_scaled_down = total_replicas(all_rses) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    # Step 1: unhealthy replicas of old RSes, oldest first.
    cleaned = 0
    for rs in sorted(old_active, key=creation_key):
        if cleaned >= max_scaled_down:
            break
        name = rs["metadata"]["name"]
        unhealthy = sizes[name] - status_int(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        down = min(max_scaled_down - cleaned, unhealthy)
        sizes[name] -= down
        cleaned += down
    # Step 2: available replicas, as far as minimum availability allows.  An RS just
    # scaled down may still report its old available count until its controller
    # catches up; counting more than its spec would scale it down a second time.
    available = sum(min(status_int(rs, "availableReplicas"), spec_replicas(rs)) for rs in active(all_rses))
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in sorted(old_active, key=creation_key):
            if done >= budget:
                break
            name = rs["metadata"]["name"]
            if sizes[name] == 0:
                continue
            down = min(sizes[name], budget - done)
            sizes[name] -= down
            done += down
    return {rs["metadata"]["name"]: sizes[rs["metadata"]["name"]] for rs in old_rses
            if sizes[rs["metadata"]["name"]] != spec_replicas(rs)}


# -- proportional scaling -----------------------------------------------------------------


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def rs_fraction(rs: dict, d: dict) -> int:
    """How many replicas ``rs`` gains (or loses) when the Deployment is resized,
    in proportion to its share of the size the Deployment had before."""
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    deployment_replicas = spec_replicas(d) + max_surge(d)
    try:
        annotated = int(annotations(rs).get(MAX_REPLICAS, ""))
    except ValueError:
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0
    return _round(spec_replicas(rs) * deployment_replicas / annotated) - spec_replicas(rs)


def is_saturated(d: dict, rs: dict | None) -> bool:
    """The new RS alone runs everything the Deployment wants."""
    if rs is None:
        return False
    try:
        desired = int(annotations(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    return (spec_replicas(rs) == spec_replicas(d) and desired == spec_replicas(d)
            and status_int(rs, "availableReplicas") == spec_replicas(d))


def proportional_sizes(d: dict, new_rs: dict | None, old_rses: list[dict]) -> dict[str, int]:
    """Target sizes (name → replicas) when the Deployment is resized: with one
    active RS it takes everything; mid-rollout the new size (replicas +
    maxSurge) is shared out in proportion to each RS's size, the rounding
    leftover going to the largest (then every active RS is listed, changed or
    not, so the controller refreshes their replica annotations too)."""
    all_rses = [rs for rs in [new_rs, *old_rses] if rs is not None]
    act = active(all_rses)
    want = spec_replicas(d)
    if len(act) <= 1:
        # One active RS (or none: the newest) simply becomes the Deployment's size.
        target = act[0] if act else (new_rs or (max(old_rses, key=creation_key) if old_rses else None))
        if target is None or spec_replicas(target) == want:
            return {}
        return {target["metadata"]["name"]: want}
    if is_saturated(d, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in active(old_rses)}
    if not is_rolling_update(d):
        return {}
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - total_replicas(all_rses)
    if to_add == 0:
        # Sizes stay, but every active RS is reported so its replica annotations get refreshed.
        return {rs["metadata"]["name"]: spec_replicas(rs) for rs in act}
    # Bigger first; on ties newer first when growing, older first when shrinking.
    if to_add > 0:
        order = sorted(act, key=lambda rs: (-spec_replicas(rs), tuple(-ord(c) for c in creation_key(rs)[0])))
    else:
        order = sorted(act, key=lambda rs: (-spec_replicas(rs), creation_key(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in order:
        prop = 0
        if to_add != 0 and spec_replicas(rs) != 0:
            frac = rs_fraction(rs, d)
            left = to_add - added
            prop = min(frac, left) if to_add > 0 else max(frac, left)
        sizes[rs["metadata"]["name"]] = spec_replicas(rs) + prop
        added += prop
    first = order[0]["metadata"]["name"]
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


# -- clean-up --------------------------------------------------------------------------------


def history_to_delete(d: dict, old_rses: list[dict]) -> list[dict]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` that may be deleted now (no
    replicas, fully observed), lowest revision first."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    live = [rs for rs in old_rses if not rs["metadata"].get("deletionTimestamp")]
    diff = len(live) - int(limit)
    if diff <= 0:
        return []
    out = []
    for rs in sorted(live, key=lambda r: (revision(r), creation_key(r)))[:diff]:
        observed = (rs.get("status") or {}).get("observedGeneration")
        if status_int(rs, "replicas") != 0 or spec_replicas(rs) != 0 or (
                observed is not None and rs["metadata"].get("generation", 0) > observed):
            continue
        out.append(rs)
    return out


# -- status and conditions ------------------------------------------------------------------


def get_condition(status: dict, ctype: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def new_condition(ctype: str, status: str, reason: str, message: str, now: str | None = None) -> dict[str, Any]:
    now = now or now_iso()
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """Set ``cond`` unless one with the same status and reason exists; keep the
    transition time when only the reason changes."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime") or cond["lastTransitionTime"]}
    status["conditions"] = [*(c for c in status.get("conditions") or [] if c.get("type") != cond["type"]), cond]


def remove_condition(status: dict, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def calculate_status(d: dict, all_rses: list[dict], new_rs: dict | None, now: str | None = None) -> dict[str, Any]:
    """The Deployment's status from its ReplicaSets (conditions other than
    Available are carried over from the current status)."""
    rses = [rs for rs in all_rses if rs is not None]
    available = total_status(rses, "availableReplicas")
    old = d.get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": (d.get("metadata") or {}).get("generation", 0),
        "replicas": total_status(rses, "replicas"),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": total_status(rses, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_replicas(rses) - available),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.",
                                            now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def has_progress_deadline(d: dict) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and int(pds) < 2**31 - 1


def deployment_complete(d: dict, status: dict) -> bool:
    want = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: dict, new_status: dict) -> bool:
    """Any step forward since the last status: more updated, ready or available
    pods, or fewer old ones."""
    old = d.get("status") or {}

    def g(s: dict, k: str) -> int:
        return int(s.get(k) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new_status, "replicas") - g(new_status, "updatedReplicas")
    return (g(new_status, "updatedReplicas") > g(old, "updatedReplicas") or new_old < old_old
            or g(new_status, "readyReplicas") > g(old, "readyReplicas")
            or g(new_status, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: dict, status: dict, now: dt.datetime | None = None) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    now = now or dt.datetime.now(dt.UTC)
    return since + dt.timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"])) < now


def rollout_status(d: dict, all_rses: list[dict], new_rs: dict | None, now: str | None = None) -> dict[str, Any]:
    """``calculate_status`` plus the Progressing condition's verdict: complete,
    progressing (refreshes its update time), or past the deadline."""
    now = now or now_iso()
    status = calculate_status(d, all_rses, new_rs, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
        return status
    # A ReplicaSet that cannot create or delete pods (quota, admission): surface it.
    failure = replica_failure(all_rses, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    cond = get_condition(status, PROGRESSING)
    complete = (status["replicas"] == status["updatedReplicas"] and cond is not None
                and cond.get("reason") == NEW_RS_AVAILABLE)
    if complete:
        return status
    name = (new_rs or {}).get("metadata", {}).get("name", "")
    if deployment_complete(d, status):
        msg = (f'ReplicaSet "{name}" has successfully progressed.' if new_rs
               else "Deployment has successfully progressed.")
        set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
    elif deployment_progressing(d, status):
        msg = f'ReplicaSet "{name}" is progressing.' if new_rs else "Deployment is progressing."
        fresh = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now)
        if cond is not None and cond.get("status") == "True":
            fresh["lastTransitionTime"] = cond.get("lastTransitionTime") or now
        remove_condition(status, PROGRESSING)
        set_condition(status, fresh)
    elif deployment_timed_out(d, status, parse_time(now)):
        msg = f'ReplicaSet "{name}" has timed out progressing.' if new_rs else "Deployment has timed out progressing."
        set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    return status


def replica_failure(all_rses: list[dict], new_rs: dict | None, now: str | None = None) -> dict | None:
    """The first ReplicaFailure condition of the new RS, else of any other, as a Deployment condition."""
    for rs in [new_rs, *all_rses]:
        if rs is None:
            continue
        c = get_condition(rs.get("status") or {}, REPLICA_FAILURE)
        if c is not None:
            return new_condition(REPLICA_FAILURE, c.get("status", "True"), c.get("reason", ""), c.get("message", ""),
                                 now)
    return None


def seconds_until_deadline(d: dict, status: dict, now: dt.datetime | None = None) -> float | None:
    """When to look again so a stalled rollout is reported on time (None: no need)."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    if deployment_complete(d, status):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    left = (since + dt.timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"])) - now).total_seconds()
    return max(0.0, left) + 1.0
