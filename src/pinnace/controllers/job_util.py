"""Pure helpers of the Job controller (Kubernetes' ``pkg/controller/job``
``indexed_job_utils.go``, ``pod_failure_policy.go``, ``backoff_utils.go`` and
``util``): completion-index intervals, pod failure policy matching, failure
back-off, job conditions.  Nothing here talks to the API or mutates its arguments
unless it says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..api.times import format_time
from . import controller_utils as cu

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
UNKNOWN_INDEX = -1
# Generated names are at most 63 characters, 5 of which the server appends.
MAX_GENERATE_NAME_PREFIX = 58


# -- index intervals ("0-2,5") -------------------------------------------------------------

Intervals = list[tuple[int, int]]  # sorted, disjoint, non-adjacent (first, last) pairs


def parse_indexes(text: str | None, completions: int) -> Intervals:
    """``status.completedIndexes``-style text as intervals, clipped below ``completions``;
    corrupt pieces are skipped, as Kubernetes does."""
    out: Intervals = []
    for piece in (text or "").split(","):
        if not piece:
            continue
        lo_s, _, hi_s = piece.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
        except ValueError:
            continue
        if lo >= completions:
            break
        hi = min(hi, completions - 1)
        if out and out[-1][1] >= lo - 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def merge_indexes(intervals: Intervals, indexes: Iterable[int]) -> Intervals:
    """``intervals`` with ``indexes`` added (a new list)."""
    items = sorted([*intervals, *((i, i) for i in set(indexes))])
    out: Intervals = []
    for lo, hi in items:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def format_indexes(intervals: Intervals) -> str:
    """Kubernetes' compressed form: runs of three or more as ``a-b``, pairs as ``a,b``."""
    parts = []
    for lo, hi in intervals:
        if hi == lo:
            parts.append(str(lo))
        elif hi == lo + 1:
            parts.append(f"{lo},{hi}")
        else:
            parts.append(f"{lo}-{hi}")
    return ",".join(parts)


def total_indexes(intervals: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in intervals)


def has_index(intervals: Intervals, ix: int) -> bool:
    return any(lo <= ix <= hi for lo, hi in intervals)


def first_pending_indexes(count: int, completions: int, taken: Intervals) -> list[int]:
    """The ``count`` lowest indexes below ``completions`` not in ``taken``."""
    out: list[int] = []
    candidate = 0
    for lo, hi in taken:
        while candidate < min(lo, completions) and len(out) < count:
            out.append(candidate)
            candidate += 1
        candidate = max(candidate, hi + 1)
    while candidate < completions and len(out) < count:
        out.append(candidate)
        candidate += 1
    return out


# -- jobs and pods --------------------------------------------------------------------------


def _annotations(pod: dict) -> dict:
    return (pod.get("metadata") or {}).get("annotations") or {}


def completion_index(pod: dict) -> int:
    raw = _annotations(pod).get(COMPLETION_INDEX)
    try:
        ix = int(raw) if raw is not None else UNKNOWN_INDEX
    except ValueError:
        return UNKNOWN_INDEX
    return ix if ix >= 0 else UNKNOWN_INDEX


def _annotation_int(pod: dict, key: str) -> int:
    try:
        v = int(_annotations(pod).get(key, "0"))
    except ValueError:
        return 0
    return v if 0 <= v <= 2**31 - 1 else 0


def index_failure_count(pod: dict) -> int:
    return _annotation_int(pod, INDEX_FAILURE_COUNT)


def index_absolute_failure_count(pod: dict) -> int:
    return _annotation_int(pod, INDEX_FAILURE_COUNT) + _annotation_int(pod, INDEX_IGNORED_FAILURE_COUNT)


def is_indexed(job: dict) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def has_backoff_limit_per_index(job: dict) -> bool:
    return (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def has_finalizer(pod: dict) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def only_replace_failed_pods(job: dict) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: dict, job: dict) -> bool:
    """Counts as a failure: Failed, or (unless only failed pods are replaced) being
    deleted before succeeding — orphans may never reach a terminal phase."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return cu.is_being_deleted(pod) and phase(pod) != "Succeeded"


def is_terminating(pod: dict) -> bool:
    return cu.is_being_deleted(pod) and phase(pod) not in ("Succeeded", "Failed")


def job_condition(job: dict, ctype: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or () if c.get("type") == ctype), None)


def finished_condition(job: dict) -> dict | None:
    """The Complete or Failed condition that is True, if any."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c
    return None


def is_job_finished(job: dict) -> bool:
    return finished_condition(job) is not None


def is_job_succeeded(job: dict) -> bool:
    c = finished_condition(job)
    return c is not None and c.get("type") == "Complete"


def new_condition(ctype: str, status: str, reason: str, message: str, now: dt.datetime) -> dict[str, Any]:
    stamp = format_time(now)
    return {"type": ctype, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                     now: dt.datetime) -> bool:
    """Set (in place) condition ``ctype``; a False condition is never added, only updated.
    Returns whether anything changed."""
    for i, c in enumerate(conditions):
        if c.get("type") == ctype:
            if (c.get("status"), c.get("reason") or "", c.get("message") or "") != (status, reason, message):
                conditions[i] = new_condition(ctype, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_condition(ctype, status, reason, message, now))
        return True
    return False


# -- pod failure policy ---------------------------------------------------------------------


def _exit_code_matches(code: int, req: dict) -> bool:
    values = req.get("values") or ()
    op = req.get("operator")
    if op == "In":
        return code in values
    if op == "NotIn":
        return code not in values
    return False


def _matching_container(statuses: list[dict] | None, req: dict) -> dict | None:
    for cs in statuses or ():
        term = (cs.get("state") or {}).get("terminated")
        if term is None:
            continue  # still running or terminating: no exit code yet
        if req.get("containerName") not in (None, cs.get("name")):
            continue
        code = int(term.get("exitCode") or 0)
        if code != 0 and _exit_code_matches(code, req):
            return cs
    return None


def match_pod_failure_policy(policy: dict | None, pod: dict) -> tuple[str | None, bool, str | None]:
    """Match a failed ``pod`` against ``spec.podFailurePolicy``'s rules, first match wins:
    (job failure message if a FailJob rule matched, whether the failure counts towards
    the backoff limits, the action taken or None)."""
    if not policy:
        return None, True, None
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    for i, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        what: str | None = None
        if rule.get("onExitCodes") is not None:
            cs = (_matching_container(status.get("containerStatuses"), rule["onExitCodes"])
                  or _matching_container(status.get("initContainerStatuses"), rule["onExitCodes"]))
            if cs is None:
                continue
            code = cs["state"]["terminated"].get("exitCode")
            what = (f"Container {cs.get('name')} for pod {meta.get('namespace')}/{meta.get('name')} failed with "
                    f"exit code {code} matching {action} rule at index {i}")
        elif rule.get("onPodConditions") is not None:
            cond = next((c for c in status.get("conditions") or () for p in rule["onPodConditions"]
                         if c.get("type") == p.get("type") and c.get("status") == (p.get("status") or "True")),
                        None)
            if cond is None:
                continue
            what = (f"Pod {meta.get('namespace')}/{meta.get('name')} has condition {cond.get('type')} "
                    f"matching {action} rule at index {i}")
        else:
            continue
        if action == "Ignore":
            return None, False, "Ignore"
        if action == "FailJob":
            return what, True, "FailJob"
        if action in ("Count", "FailIndex"):
            return None, True, action
    return None, True, None


# -- failure back-off -------------------------------------------------------------------------


def finished_time(pod: dict) -> dt.datetime:
    """When a pod finished: its containers' latest finishedAt, else its Ready=False
    transition, else its deletion time minus the grace period, else its creation."""
    status = pod.get("status") or {}
    latest: dt.datetime | None = None
    statuses = status.get("containerStatuses") or ()
    for cs in statuses:
        t = cu.parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is None:
            latest = None
            break
        latest = t if latest is None or t > latest else latest
    if latest is not None:
        return latest
    ready = cu.pod_condition(pod, "Ready")
    if ready is not None and ready.get("status") == "False":
        t = cu.parse_time(ready.get("lastTransitionTime"))
        if t is not None:
            return t
    meta = pod.get("metadata") or {}
    deleted = cu.parse_time(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - dt.timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
    return cu.parse_time(meta.get("creationTimestamp")) or dt.datetime.fromtimestamp(0, dt.UTC)


@dataclass(frozen=True)
class BackoffRecord:
    failures_after_last_success: int = 0
    last_failure_time: dt.datetime | None = None


def next_backoff_record(old: BackoffRecord, new_succeeded: list[dict], new_failed: list[dict]) -> BackoffRecord:
    """Fold newly finished pods into the record: a success resets the streak, except for
    failures that finished after the last success."""
    if not new_failed:
        return BackoffRecord() if new_succeeded else old
    failed = sorted(finished_time(p) for p in new_failed)
    if not new_succeeded:
        return BackoffRecord(old.failures_after_last_success + len(failed), failed[-1])
    last_success = max(finished_time(p) for p in new_succeeded)
    after = [t for t in failed if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """``base`` doubled per consecutive failure after the first, at most ``cap``."""
    if failures <= 0:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            return cap
    return min(delay, cap)


def remaining_backoff(failures: int, last_failure: dt.datetime | None, now: dt.datetime, base: float,
                      cap: float) -> float:
    if failures <= 0 or last_failure is None:
        return 0.0
    left = backoff_delay(failures, base, cap) - (now - last_failure).total_seconds()
    return max(0.0, left)


# -- pod naming -----------------------------------------------------------------------------


def generate_name_with_index(job_name: str, index: int) -> str:
    prefix = f"{job_name}-{index}-"
    if len(prefix) > MAX_GENERATE_NAME_PREFIX:
        prefix = f"{job_name[:MAX_GENERATE_NAME_PREFIX - len(str(index)) - 2]}-{index}-"
    return prefix


def completion_index_env() -> dict:
    return {"name": COMPLETION_INDEX_ENV,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}}


def add_completion_index_env(pod_spec: dict) -> None:
    """Give every (init) container ``JOB_COMPLETION_INDEX`` unless it sets it itself (in place)."""
    for key in ("initContainers", "containers"):
        for c in pod_spec.get(key) or ():
            env = c.setdefault("env", [])
            if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                env.append(completion_index_env())


# -- decisions over a Job's pods -------------------------------------------------------------


def fail_job_message(job: dict, pods: list[dict]) -> str | None:
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None
    for p in pods:
        if is_pod_failed(p, job):
            msg, _, _ = match_pod_failure_policy(policy, p)
            if msg is not None:
                return msg
    return None


def is_index_failed(job: dict, pod: dict) -> bool:
    if not is_pod_failed(pod, job):
        return False
    _, counts, action = match_pod_failure_policy((job.get("spec") or {}).get("podFailurePolicy"), pod)
    if action == "FailIndex":
        return True
    return counts and index_failure_count(pod) >= int(job["spec"]["backoffLimitPerIndex"])


def active_pods_for_removal(job: dict, pods: list[dict], at_least: int) -> list[dict]:
    """Pods to delete: for Indexed Jobs every duplicate or out-of-range index first,
    then the least valuable of the rest."""
    rm: list[dict] = []
    left = list(pods)
    if is_indexed(job):
        completions = int((job.get("spec") or {}).get("completions") or 0)
        by_ix: dict[int, list[dict]] = {}
        left = []
        for p in pods:
            ix = completion_index(p)
            if ix == UNKNOWN_INDEX or ix >= completions:
                rm.append(p)
            else:
                by_ix.setdefault(ix, []).append(p)
        for group in by_ix.values():
            ranked = sorted(group, key=cu.pod_deletion_key)
            rm.extend(ranked[:-1])
            left.append(ranked[-1])
    if len(rm) < at_least:
        rm.extend(sorted(left, key=cu.pod_deletion_key)[:at_least - len(rm)])
    return rm


def clean_uncounted(status: dict, with_finalizer: set[str]) -> bool:
    """Move uncounted uids whose finalizer is gone into the counters (in place)."""
    changed = False
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    for key, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = uncounted.get(key) or []
        keep = [u for u in uids if u in with_finalizer]
        if len(keep) != len(uids):
            status[counter] = int(status.get(counter) or 0) + len(uids) - len(keep)
            uncounted[key] = keep
            changed = True
    return changed


def past_backoff_limit_on_failure(job: dict, pods: list[dict], limit: int) -> bool:
    """With restartPolicy OnFailure failures are restarts: sum them over live pods."""
    if ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for p in pods:
        if phase(p) in ("Running", "Pending"):
            st = p.get("status") or {}
            for cs in [*(st.get("initContainerStatuses") or ()), *(st.get("containerStatuses") or ())]:
                restarts += int(cs.get("restartCount") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


__all__ = [
    "COMPLETION_INDEX",
    "CONTROLLER_UID",
    "JOB_NAME",
    "TRACKING_FINALIZER",
    "BackoffRecord",
    "active_pods_for_removal",
    "add_completion_index_env",
    "backoff_delay",
    "clean_uncounted",
    "completion_index",
    "ensure_condition",
    "fail_job_message",
    "finished_condition",
    "finished_time",
    "first_pending_indexes",
    "format_indexes",
    "generate_name_with_index",
    "has_finalizer",
    "is_index_failed",
    "is_job_finished",
    "is_pod_failed",
    "match_pod_failure_policy",
    "merge_indexes",
    "next_backoff_record",
    "parse_indexes",
    "past_backoff_limit_on_failure",
    "remaining_backoff",
]
