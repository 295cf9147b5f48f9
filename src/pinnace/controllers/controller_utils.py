"""Helpers shared by the workload controllers (Kubernetes' ``pkg/controller``
``controller_utils.go``, ``controller_ref_manager.go`` and ``podutil``).

Stable API, meant to be imported by other controllers (ReplicaSet, Deployment, …):

Owner references
    :func:`controller_ref`, :func:`new_controller_ref`, :func:`is_controlled_by`,
    :func:`is_being_deleted`, :func:`resolve_controller_ref`, :func:`objects_selecting`.
Adoption / release
    :func:`claim_pods` (``PodControllerRefManager.ClaimPods``), :func:`claim_objects` (any
    namespaced kind, e.g. a Deployment's ReplicaSets), :func:`can_adopt`, :func:`adopt_patch`,
    :func:`release_patch`.
Expectations
    :class:`ControllerExpectations` (counts of pending creates/deletes) and
    :class:`UIDTrackingControllerExpectations` (deletes tracked by pod key, so a
    pod seen deleted twice — deletionTimestamp, then the DELETE event — counts once).
Pods
    :func:`is_pod_active`, :func:`filter_active_pods`, :func:`is_pod_ready`,
    :func:`pod_ready_since`, :func:`is_pod_available`, :func:`seconds_until_available`,
    :func:`pod_from_template`, :func:`pod_key`.
Ranking for scale-down
    :func:`pod_deletion_key`, :func:`pods_to_delete`.
Batching
    :func:`slow_start_batch`.

Objects are the plain API dicts the informers hold; nothing here mutates its
arguments.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.selectors import LabelSelector, SelectorError, from_label_selector_object, matches_labels
from ..api.times import parse_time
from ..client.cache import Lister
from ..client.events import EventRecorder
from ..client.rest import ApiException, RestClient

log = logging.getLogger(__name__)

# How long unmet expectations block a sync before being assumed lost (Kubernetes: 5 min).
EXPECTATIONS_TIMEOUT = 300.0
SLOW_START_INITIAL_BATCH_SIZE = 1
# The annotation users set to steer which pods a scale-down removes first.
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# -- time --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- owner references ----------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def controller_ref(obj: dict) -> dict | None:
    """The ownerReference with ``controller: true``, if any."""
    return next((r for r in _meta(obj).get("ownerReferences") or () if r.get("controller")), None)


def new_controller_ref(owner: dict, api_version: str | None = None, kind: str | None = None) -> dict:
    """An ownerReference making ``owner`` the controller of an object (``metav1.NewControllerRef``).
    ``api_version``/``kind`` default to the owner's own (cache objects carry them)."""
    meta = _meta(owner)
    return {"apiVersion": api_version or owner.get("apiVersion", ""), "kind": kind or owner.get("kind", ""),
            "name": meta.get("name", ""), "uid": meta.get("uid", ""), "controller": True,
            "blockOwnerDeletion": True}


def is_controlled_by(obj: dict, owner: dict) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == _meta(owner).get("uid")


def is_being_deleted(obj: dict) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def resolve_controller_ref(ref: dict | None, namespace: str, kind: str, group: str,
                           get: Callable[[str, str], dict | None]) -> dict | None:
    """The owner ``ref`` points to, if it is a ``group``/``kind`` that ``get(name, namespace)``
    (typically a lister's ``get``) knows with the same uid; else None (a stale or foreign ref)."""
    if ref is None or ref.get("kind") != kind or _group(ref.get("apiVersion", "")) != group:
        return None
    owner = get(ref.get("name", ""), namespace)
    if owner is None or _meta(owner).get("uid") != ref.get("uid"):
        return None
    return owner


def objects_selecting(lister: Lister, obj: dict) -> list[dict]:
    """The objects of ``lister`` in ``obj``'s namespace whose ``spec.selector`` matches
    ``obj``'s labels: the owners that may adopt it as an orphan.  An invalid or empty
    selector selects nothing here (its owner's sync refuses to adopt anything)."""
    meta = _meta(obj)
    out = []
    for owner in lister.list(meta.get("namespace", "")):
        try:
            sel = from_label_selector_object((owner.get("spec") or {}).get("selector"))
        except SelectorError:
            continue
        if sel and matches_labels(sel, meta.get("labels")):
            out.append(owner)
    return out


# -- adoption and release -------------------------------------------------------------------


def adopt_patch(owner_ref: dict, obj_uid: str) -> dict:
    """Strategic-merge patch adding ``owner_ref``; the uid makes it fail (409) if the object
    was deleted and recreated under the same name meanwhile."""
    return {"metadata": {"ownerReferences": [owner_ref], "uid": obj_uid}}


def release_patch(owner_uid: str, obj_uid: str) -> dict:
    """Strategic-merge patch removing the ownerReference to ``owner_uid`` (others are kept)."""
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": obj_uid}}


async def can_adopt(client: RestClient, owner: dict, api_version: str, plural: str) -> bool:
    """Whether ``owner`` may adopt orphans, read fresh from the server rather than the cache:
    never for an owner that is being deleted (the garbage collector would take the adopted
    objects with it) or was deleted and replaced under its name."""
    meta = _meta(owner)
    try:
        fresh = await client.get(api_version, plural, meta["name"], meta["namespace"])
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return _meta(fresh).get("uid") == meta.get("uid") and not is_being_deleted(fresh)


async def claim_objects(client: RestClient, owner: dict, selector: LabelSelector | dict | None,
                        objs: Iterable[dict], can_adopt: Callable[[], Awaitable[bool]],
                        owner_ref: dict | None = None, api_version: str = "v1", plural: str = "pods"
                        ) -> list[dict]:
    """The objects (``api_version``/``plural``, namespaced) ``owner`` should manage
    (``BaseControllerRefManager.ClaimObject``):

    * owned and matching → kept;
    * owned but no longer matching → released (PATCH), unless the owner is being deleted;
    * orphaned and matching → adopted (PATCH), if the owner is not being deleted, the
      object is not being deleted and ``can_adopt()`` (called at most once — typically a
      fresh GET of the owner, checking its uid and deletionTimestamp) agrees;
    * owned by someone else → ignored.

    Returns the claimed objects; adopted ones as the server returned them.  One that
    vanished (404) or changed identity (409/422) is skipped; other API errors are
    raised after every object was tried, so one sync never half-claims silently.
    """
    sel = from_label_selector_object(selector) if isinstance(selector, dict) or selector is None else selector
    owner_uid = _meta(owner).get("uid", "")
    ref = owner_ref or new_controller_ref(owner)
    adoption_ok: bool | None = None
    claimed: list[dict] = []
    errors: list[Exception] = []

    def matches(obj: dict) -> bool:
        # A nil selector selects nothing; an empty one ({}) would select everything,
        # which validation forbids for workloads anyway.
        return sel is not None and len(sel) > 0 and matches_labels(sel, _meta(obj).get("labels"))

    for obj in objs:
        ometa = _meta(obj)
        ns, name, uid = ometa.get("namespace", ""), ometa.get("name", ""), ometa.get("uid", "")
        cref = controller_ref(obj)
        try:
            if cref is not None:
                if cref.get("uid") != owner_uid:
                    continue
                if matches(obj):
                    claimed.append(obj)
                elif not is_being_deleted(owner):
                    await client.patch(api_version, plural, name, release_patch(owner_uid, uid), namespace=ns,
                                       patch_type="strategic")
                    log.info("released %s %s/%s from %s", plural, ns, name, _meta(owner).get("name"))
                continue
            if is_being_deleted(owner) or is_being_deleted(obj) or not matches(obj):
                continue
            if adoption_ok is None:
                adoption_ok = await can_adopt()
            if not adoption_ok:
                continue
            adopted = await client.patch(api_version, plural, name, adopt_patch(ref, uid), namespace=ns,
                                         patch_type="strategic")
            claimed.append(adopted)
        except ApiException as e:
            if e.status in (404, 409, 422):
                continue  # gone or replaced: nothing to claim or release
            errors.append(e)
    if errors:
        raise errors[0]
    return claimed


async def claim_pods(client: RestClient, owner: dict, selector: LabelSelector | dict | None, pods: Iterable[dict],
                     can_adopt: Callable[[], Awaitable[bool]], owner_ref: dict | None = None) -> list[dict]:
    """:func:`claim_objects` for pods (``PodControllerRefManager.ClaimPods``)."""
    return await claim_objects(client, owner, selector, pods, can_adopt, owner_ref, "v1", "pods")


# -- expectations -------------------------------------------------------------------------


@dataclass
class _Expectation:
    add: int = 0
    delete: int = 0
    timestamp: float = 0.0
    deleting: set[str] = field(default_factory=set)  # pod keys still to be seen deleted (UID tracking)

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Per controller key: how many creates and deletes the controller issued but its
    informer has not yet observed.  ``sync`` acts (creates/deletes) only when
    :meth:`satisfied_expectations`; otherwise a burst of events for one object could
    make it act again on a stale cache and overshoot.  Expectations older than
    ``timeout`` seconds count as satisfied, so a lost watch event cannot wedge a controller.
    """

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic):
        self.timeout, self.clock = timeout, clock
        self._store: dict[str, _Expectation] = {}

    def get(self, key: str) -> tuple[int, int] | None:
        """``(pending creates, pending deletes)`` for ``key``, or None if nothing is recorded."""
        e = self._store.get(key)
        return None if e is None else (e.add, e.delete)

    def satisfied_expectations(self, key: str) -> bool:
        e = self._store.get(key)
        if e is None:
            return True  # first sync, or expectations deleted with the object
        if e.fulfilled():
            return True
        if self.clock() - e.timestamp > self.timeout:
            log.warning("expectations for %s expired (add=%d del=%d); syncing anyway", key, e.add, e.delete)
            return True
        return False

    def set_expectations(self, key: str, add: int, delete: int) -> None:
        self._store[key] = _Expectation(add, delete, self.clock())

    def expect_creations(self, key: str, adds: int) -> None:
        self.set_expectations(key, adds, 0)

    def expect_deletions(self, key: str, dels: int) -> None:
        self.set_expectations(key, 0, dels)

    def lower_expectations(self, key: str, add: int = 0, delete: int = 0) -> None:
        e = self._store.get(key)
        if e is not None:
            e.add -= add
            e.delete -= delete

    def raise_expectations(self, key: str, add: int = 0, delete: int = 0) -> None:
        e = self._store.get(key)
        if e is not None:
            e.add += add
            e.delete += delete

    def creation_observed(self, key: str) -> None:
        self.lower_expectations(key, add=1)

    def deletion_observed(self, key: str) -> None:
        self.lower_expectations(key, delete=1)

    def delete_expectations(self, key: str) -> None:
        self._store.pop(key, None)


class UIDTrackingControllerExpectations(ControllerExpectations):
    """Deletions tracked by pod key: a deletion lowers the count only the first time
    that pod is seen going (a graceful deletion is seen twice: as an update setting
    deletionTimestamp, then as the DELETE event)."""

    def expect_pod_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Expect exactly these pods (``ns/name`` keys) to be deleted."""
        keys = set(pod_keys)
        self.set_expectations(key, 0, len(keys))
        self._store[key].deleting = keys

    def deletion_observed(self, key: str, pod_key: str | None = None) -> None:  # type: ignore[override]
        e = self._store.get(key)
        if e is None:
            return
        if pod_key is None:
            e.delete -= 1
        elif pod_key in e.deleting:
            e.deleting.discard(pod_key)
            e.delete -= 1

    def pending_deletions(self, key: str) -> set[str]:
        e = self._store.get(key)
        return set(e.deleting) if e else set()


# -- pods ---------------------------------------------------------------------------------


def pod_key(pod: dict) -> str:
    meta = _meta(pod)
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def is_pod_active(pod: dict) -> bool:
    """Counts towards a controller's replicas: not terminal and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_being_deleted(pod)


def filter_active_pods(pods: Iterable[dict]) -> list[dict]:
    return [p for p in pods if is_pod_active(p)]


def pod_condition(pod: dict, ctype: str) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == ctype), None)


def is_pod_ready(pod: dict) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_ready_since(pod: dict) -> dt.datetime | None:
    """When a ready pod became ready (its Ready condition's lastTransitionTime); None if not ready."""
    cond = pod_condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def seconds_until_available(pod: dict, min_ready_seconds: int, now: dt.datetime | None = None) -> float | None:
    """0 if the pod is available, the seconds left until it is if it is ready but not yet
    for ``min_ready_seconds``, None if it is not ready."""
    if not is_pod_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = pod_ready_since(pod)
    if since is None:
        return float(min_ready_seconds)  # ready, but no time recorded: wait the whole period
    left = (since + dt.timedelta(seconds=min_ready_seconds) - (now or _now())).total_seconds()
    # Kubernetes demands readyTime + minReadySeconds strictly before now.
    return left if left >= 0 else 0.0


def is_pod_available(pod: dict, min_ready_seconds: int, now: dt.datetime | None = None) -> bool:
    """Ready for at least ``min_ready_seconds`` (``podutil.IsPodAvailable``)."""
    left = seconds_until_available(pod, min_ready_seconds, now)
    if left is None:
        return False
    if min_ready_seconds <= 0:
        return True
    since = pod_ready_since(pod)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) < (now or _now())


def pod_from_template(template: dict, owner: dict, owner_ref: dict | None = None,
                      generate_name: str | None = None) -> dict:
    """A pod to create from a pod template (``GetPodFromTemplate``): the template's
    labels, annotations, finalizers and spec; ``generateName`` ``<owner>-``; a controller
    ownerReference to ``owner``."""
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"generateName": generate_name or f"{_meta(owner).get('name', '')}-",
                            "ownerReferences": [owner_ref or new_controller_ref(owner)]}
    for k in ("labels", "annotations", "finalizers"):
        if tmeta.get(k):
            meta[k] = copy.deepcopy(tmeta[k])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


# -- pod control (Kubernetes' ``RealPodControl``) ------------------------------------------


def namespace_terminating(e: ApiException) -> bool:
    """Whether a create was refused because its namespace is being deleted."""
    causes = ((e.body or {}).get("details") or {}).get("causes") or ()
    return any(c.get("reason") == "NamespaceTerminating" for c in causes) or "being terminated" in (e.message or "")


async def create_pod(client: RestClient, recorder: EventRecorder, owner: dict, pod: dict,
                     on_failure: Callable[[], object] | None = None) -> None:
    """Create ``pod`` for ``owner``, recording SuccessfulCreate / FailedCreate on the owner.
    ``on_failure`` runs on any refusal (typically: an expected creation will never be
    observed).  A namespace being deleted is not an error: every further create would fail
    the same way, and the namespace controller is removing the owner anyway."""
    try:
        created = await client.create("v1", "pods", pod, _meta(owner)["namespace"])
    except ApiException as e:
        if on_failure is not None:
            on_failure()
        if e.status == 403 and namespace_terminating(e):
            return
        recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {e.message or e}")
        raise
    recorder.event(owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")


async def delete_pod(client: RestClient, recorder: EventRecorder, owner: dict, pod: dict,
                     on_failure: Callable[[], object] | None = None) -> None:
    """Delete ``pod`` for ``owner``, recording SuccessfulDelete / FailedDelete on the owner.
    The uid precondition keeps a stale cache from deleting a same-named successor; a pod
    already gone (404) or replaced (409) is not an error.  ``on_failure`` runs on any
    refusal: the informer will never report this deletion (or not as ours)."""
    pmeta = pod["metadata"]
    try:
        await client.delete("v1", "pods", pmeta["name"], pmeta["namespace"], preconditions={"uid": pmeta.get("uid")})
    except ApiException as e:
        if on_failure is not None:
            on_failure()
        if e.status in (404, 409):
            return
        recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {e.message or e}")
        raise
    recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pmeta['name']}")


# -- ranking for scale-down ---------------------------------------------------------------

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(value: dt.datetime | None) -> float:
    return (value - _EPOCH).total_seconds() if value else 0.0


def _restarts(pod: dict) -> int:
    return max((c.get("restartCount") or 0 for c in (pod.get("status") or {}).get("containerStatuses") or ()),
               default=0)


def _deletion_cost(pod: dict) -> int:
    raw = (_meta(pod).get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def pod_deletion_key(pod: dict, rank: int = 0) -> tuple:
    """Sort key putting the pod to delete first first (``ActivePodsWithRanks.Less``):
    unscheduled < scheduled; Pending < Unknown < Running; not ready < ready; lower
    pod-deletion-cost; higher ``rank`` (more pods of the same owner on its node); ready
    for a shorter time; more restarts; newer.  Pods lacking a timestamp sort first."""
    meta, status, spec = _meta(pod), pod.get("status") or {}, pod.get("spec") or {}
    ready = is_pod_ready(pod)
    ready_since = pod_ready_since(pod) if ready else None
    created = parse_time(meta.get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDER.get(status.get("phase") or "Pending", 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -rank,
        # Empty time first, then the most recently ready.
        (0, 0.0) if ready and ready_since is None else (1, -_ts(ready_since)),
        -_restarts(pod),
        (0, 0.0) if created is None else (1, -_ts(created)),
    )


def pods_to_delete(pods: list[dict], count: int, related: Iterable[dict] | None = None) -> list[dict]:
    """The ``count`` least valuable of ``pods``.  Pods sharing a node with more ``related``
    pods (default: ``pods`` themselves) go first among equals, to spread what remains."""
    if count <= 0:
        return []
    if count >= len(pods):
        return list(pods)
    per_node: dict[str, int] = {}
    for p in related if related is not None else pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node and is_pod_active(p):
            per_node[node] = per_node.get(node, 0) + 1
    ranked = sorted(pods, key=lambda p: pod_deletion_key(p, per_node.get((p.get("spec") or {}).get("nodeName")
                                                                         or "", 0)))
    return ranked[:count]


# -- batching ---------------------------------------------------------------------------


async def slow_start_batch(count: int, initial_batch_size: int, fn: Callable[[], Awaitable[None]]
                           ) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in batches of 1, 2, 4, … (each batch concurrently),
    stopping after the first batch with a failure, so a call bound to fail (quota,
    admission) fails once rather than ``count`` times.  Returns (successes, first error)."""
    remaining, successes = count, 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        for r in errors:
            if isinstance(r, asyncio.CancelledError):
                raise r
        if errors:
            err = errors[0]
            return successes, err if isinstance(err, Exception) else Exception(str(err))
        remaining -= batch
        batch = min(remaining, 2 * batch)
    return successes, None


__all__ = [
    "EXPECTATIONS_TIMEOUT", "POD_DELETION_COST", "SLOW_START_INITIAL_BATCH_SIZE", "ControllerExpectations",
    "UIDTrackingControllerExpectations", "adopt_patch", "can_adopt", "claim_objects", "claim_pods", "controller_ref",
    "create_pod", "delete_pod", "filter_active_pods", "is_being_deleted", "is_controlled_by", "is_pod_active",
    "is_pod_available", "is_pod_ready", "namespace_terminating", "new_controller_ref", "objects_selecting",
    "parse_time", "pod_condition", "pod_deletion_key", "pod_from_template", "pod_key", "pod_ready_since",
    "pods_to_delete", "release_patch", "resolve_controller_ref", "seconds_until_available", "slow_start_batch",
]
