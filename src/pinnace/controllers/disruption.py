"""Disruption controller (Kubernetes' ``pkg/controller/disruption``): keeps the
status of every PodDisruptionBudget (policy/v1) current, so the eviction
subresource (:mod:`pinnace.apiserver.eviction`) can decide whether a pod may go.

For each PDB, level-triggered from informers on PDBs, pods and the workload
controllers:

1. the pods its selector matches (policy/v1: a nil selector matches nothing,
   ``{}`` matches every pod of the namespace);
2. ``expectedPods`` and ``desiredHealthy``: an integer ``minAvailable`` needs
   only the pod count; a percentage ``minAvailable`` or any ``maxUnavailable``
   needs the pods' controllers' scale — Deployment (through its ReplicaSet),
   ReplicaSet, StatefulSet, ReplicationController ``spec.replicas``, or the
   ``/scale`` subresource of any other owner that serves one;
3. ``disruptedPods``: pods the eviction handler approved but which are not yet
   being deleted; an entry older than :data:`DELETION_TIMEOUT` is dropped (the
   pod was not deleted after all) and the PDB is looked at again when the next
   entry expires;
4. ``currentHealthy`` (Ready pods, not being deleted, not in
   ``disruptedPods``), ``disruptionsAllowed`` = max(0, current - desired) (0
   while no pods are expected), ``observedGeneration`` and the
   ``DisruptionAllowed`` condition (SufficientPods / InsufficientPods).

A sync that fails (no controller found for a pod, a bad percentage) writes the
fail-safe status instead — ``disruptionsAllowed: 0`` and the condition with
reason ``SyncFailed`` — so evictions stop rather than run on a stale budget.

Pods whose ``DisruptionTarget`` condition was set by an eviction that never
led to a deletion get it reset to False after ``stale_pod_disruption_timeout``.

The budget arithmetic is pure functions (:func:`expected_and_desired`,
:func:`build_disrupted_pod_map`, :func:`count_healthy`, :func:`compute_status`,
:func:`update_disruption_allowed_condition`), shared with the eviction handler.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from ..api.selectors import SelectorError, from_label_selector_object, matches_labels
from ..api.times import format_time
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers
from . import controller_utils as cu
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION, PLURAL, KIND = "policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"
# How long an approved eviction may take to show up as a deleting pod (Kubernetes: 2 min).
DELETION_TIMEOUT = 120.0
# How long a DisruptionTarget condition may stay on a pod that is not deleted (Kubernetes: 2 min).
STALE_POD_DISRUPTION_TIMEOUT = 120.0
WORKERS = 3
CONDITION = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"


class BudgetError(Exception):
    """The budget cannot be computed (its fail-safe status is written instead)."""


# -- time ---------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- budget arithmetic ------------------------------------------------------------------------


def scaled_value(value: int | str, total: int, round_up: bool = True) -> int:
    """An IntOrString against ``total`` (``intstr.GetScaledValueFromIntOrPercent``):
    an int is itself, ``"NN%"`` is NN% of ``total``, rounded up (or down)."""
    if isinstance(value, bool):
        raise BudgetError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise BudgetError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise BudgetError(f"invalid value {value!r}: not an integer percentage") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def needs_scale(pdb: dict) -> bool:
    """Whether the budget is relative to the controllers' scale (any maxUnavailable,
    a percentage minAvailable) rather than to the pod count."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        return True
    return isinstance(spec.get("minAvailable"), str)


def expected_and_desired(pdb: dict, pod_count: int, expected_scale: int | None) -> tuple[int, int]:
    """``(expectedPods, desiredHealthy)`` (``getExpectedPodCount``).  ``expected_scale``
    is the summed scale of the pods' controllers, needed only when :func:`needs_scale`."""
    spec = pdb.get("spec") or {}
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected = expected_scale or 0
        return expected, max(0, expected - scaled_value(max_unavailable, expected, True))
    if min_available is not None:
        if isinstance(min_available, str):
            expected = expected_scale or 0
            return expected, scaled_value(min_available, expected, True)
        return pod_count, scaled_value(min_available, pod_count, True)
    return 0, 0  # neither set: validation forbids it; nothing is desired


def build_disrupted_pod_map(pods: Iterable[dict], disrupted: dict[str, str] | None, now: dt.datetime,
                            timeout: float = DELETION_TIMEOUT
                            ) -> tuple[dict[str, str], dt.datetime | None, list[dict]]:
    """The ``disruptedPods`` entries still pending (``buildDisruptedPodMap``): pods the
    eviction handler approved that are not being deleted yet, for at most ``timeout``
    seconds.  Returns (map, when the earliest entry expires, pods whose entry expired)."""
    result: dict[str, str] = {}
    recheck: dt.datetime | None = None
    expired: list[dict] = []
    if not disrupted:
        return result, recheck, expired
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue  # already going: the entry has done its job
        stamp = disrupted.get(meta.get("name", ""))
        if stamp is None:
            continue
        since = cu.parse_time(stamp)
        if since is None:
            continue
        expected_deletion = since + dt.timedelta(seconds=timeout)
        if expected_deletion < now:
            expired.append(pod)
            continue
        if recheck is None or expected_deletion < recheck:
            recheck = expected_deletion
        result[meta["name"]] = stamp
    return result, recheck, expired


def count_healthy(pods: Iterable[dict], disrupted: dict[str, str], now: dt.datetime,
                  timeout: float = DELETION_TIMEOUT) -> int:
    """Ready pods that are neither being deleted nor about to be (``countHealthyPods``)."""
    healthy = 0
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        stamp = disrupted.get(meta.get("name", ""))
        since = cu.parse_time(stamp) if stamp else None
        if since is not None and since + dt.timedelta(seconds=timeout) > now:
            continue
        if cu.is_pod_ready(pod):
            healthy += 1
    return healthy


def set_condition(conditions: list[dict], new: dict, now: dt.datetime) -> list[dict]:
    """``meta.SetStatusCondition``: replace the condition of ``new["type"]``, keeping its
    lastTransitionTime unless the status changes."""
    out = [dict(c) for c in conditions]
    for c in out:
        if c.get("type") == new["type"]:
            if c.get("status") != new["status"] or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = format_time(now)
            c.update({k: v for k, v in new.items() if k != "lastTransitionTime"})
            return out
    out.append({**new, "lastTransitionTime": new.get("lastTransitionTime") or format_time(now)})
    return out


def update_disruption_allowed_condition(status: dict, now: dt.datetime | None = None) -> None:
    """Set ``DisruptionAllowed`` from ``status["disruptionsAllowed"]`` (in place), as
    component-helpers' ``UpdateDisruptionAllowedCondition`` does."""
    allowed = (status.get("disruptionsAllowed") or 0) > 0
    cond = {"type": CONDITION, "status": "True" if allowed else "False",
            "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": "",
            "observedGeneration": status.get("observedGeneration") or 0}
    status["conditions"] = set_condition(status.get("conditions") or [], cond, now or _now())


def conditions_up_to_date(pdb: dict) -> bool:
    status = pdb.get("status") or {}
    if (status.get("observedGeneration") or 0) != ((pdb.get("metadata") or {}).get("generation") or 0):
        return False
    cond = next((c for c in status.get("conditions") or () if c.get("type") == CONDITION), None)
    if cond is None:
        return False
    if (status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS


def compute_status(pdb: dict, current_healthy: int, desired_healthy: int, expected: int,
                   disrupted: dict[str, str], now: dt.datetime | None = None) -> dict | None:
    """The new status (``updatePdbStatus``), or None when the current one already says it.
    No disruption is allowed while no pods are expected: a PDB whose first pods just
    appeared is safe before this controller has counted them."""
    allowed = current_healthy - desired_healthy
    if expected <= 0 or allowed <= 0:
        allowed = 0
    old = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation") or 0
    if ((old.get("currentHealthy") or 0) == current_healthy and (old.get("desiredHealthy") or 0) == desired_healthy
            and (old.get("expectedPods") or 0) == expected and (old.get("disruptionsAllowed") or 0) == allowed
            and (old.get("disruptedPods") or {}) == disrupted and conditions_up_to_date(pdb)):
        return None
    status: dict[str, Any] = {"observedGeneration": generation, "disruptionsAllowed": allowed,
                              "currentHealthy": current_healthy, "desiredHealthy": desired_healthy,
                              "expectedPods": expected, "conditions": copy.deepcopy(old.get("conditions") or [])}
    if disrupted:
        status["disruptedPods"] = dict(disrupted)
    update_disruption_allowed_condition(status, now)
    return status


def pdb_selects(pdb: dict, pod: dict) -> bool:
    """policy/v1 matching: a nil selector matches nothing, ``{}`` every pod (of the namespace)."""
    if (pdb.get("metadata") or {}).get("namespace") != (pod.get("metadata") or {}).get("namespace"):
        return False
    try:
        sel = from_label_selector_object((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return sel is not None and matches_labels(sel, (pod.get("metadata") or {}).get("labels"))


def stale_disruption_condition(pod: dict, now: dt.datetime, timeout: float) -> tuple[bool, float]:
    """Whether ``pod`` carries a DisruptionTarget condition that may go stale, and the
    seconds until it does (``nonTerminatingPodHasStaleDisruptionCondition``)."""
    if cu.is_being_deleted(pod):
        return False, 0.0
    cond = cu.pod_condition(pod, DISRUPTION_TARGET)
    phase = (pod.get("status") or {}).get("phase")
    if (cond is None or cond.get("status") != "True" or cond.get("reason") == TERMINATION_BY_KUBELET
            or phase in ("Succeeded", "Failed")):
        return False, 0.0
    since = cu.parse_time(cond.get("lastTransitionTime")) or now
    return True, max(0.0, timeout - (now - since).total_seconds())


# -- the controller -------------------------------------------------------------------------------

# Workload kinds whose spec.replicas the controller reads from its own caches:
# (api group, kind) → (api version, plural).
_WORKLOADS = {
    ("apps", "ReplicaSet"): ("apps/v1", "replicasets"),
    ("apps", "Deployment"): ("apps/v1", "deployments"),
    ("apps", "StatefulSet"): ("apps/v1", "statefulsets"),
    ("", "ReplicationController"): ("v1", "replicationcontrollers"),
}


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


class DisruptionController(QueueController):
    """``DisruptionController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  ``recorder=None`` makes it own an EventRecorder."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, deletion_timeout: float = DELETION_TIMEOUT,
                 stale_pod_disruption_timeout: float = STALE_POD_DISRUPTION_TIMEOUT,
                 clock: Callable[[], dt.datetime] = _now):
        super().__init__(client, factory, recorder, component="controllermanager", queue="disruption",
                         workers=workers)
        self.deletion_timeout = deletion_timeout
        self.stale_timeout = stale_pod_disruption_timeout
        self.clock = clock
        self.pdb_informer = self.informer(API_VERSION, PLURAL)
        self.pod_informer = self.informer("v1", "pods")
        self.workload_informers = {gk: self.informer(av, plural) for gk, (av, plural) in _WORKLOADS.items()}
        self.pdb_lister, self.pod_lister = self.pdb_informer.lister, self.pod_informer.lister
        self.stale_queue: RateLimitingQueue[str] = RateLimitingQueue("stale_pod_disruption")
        self.pdb_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                            on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                                            on_delete=self._pod_deleted)
        # Scale lookups of owners outside _WORKLOADS: (apiVersion, kind) → plural with /scale, or None.
        self._scale_plurals: dict[tuple[str, str], str | None] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def _run_workers(self) -> None:
        await asyncio.gather(
            super()._run_workers(),
            run_workers(self.stale_queue, 1, self.sync_stale_pod_disruption, "stale_pod_disruption"))

    def _retry_quietly(self, e: Exception) -> bool:
        # The eviction handler (or our own last write) moved the PDB on.
        return isinstance(e, ApiException) and e.status == 409

    async def stop(self) -> None:
        self.stale_queue.shutdown()
        await super().stop()

    # -- event handlers (quick: they only enqueue) -----------------------------------------------

    def pdbs_for_pod(self, pod: dict) -> list[dict]:
        ns = (pod.get("metadata") or {}).get("namespace", "")
        return [p for p in self.pdb_lister.list(ns) if pdb_selects(p, pod)]

    def _pod_changed(self, pod: dict) -> None:
        pdbs = self.pdbs_for_pod(pod)
        if len(pdbs) > 1:
            names = sorted(p["metadata"]["name"] for p in pdbs)
            meta = pod.get("metadata") or {}
            msg = (f'Pod "{meta.get("namespace")}"/"{meta.get("name")}" matches multiple PodDisruptionBudgets.  '
                   f'Chose "{names[0]}" arbitrarily.')
            self.recorder.event({"kind": "Pod", "apiVersion": "v1", **pod}, "Warning",
                                "MultiplePodDisruptionBudgets", msg)
        for pdb in pdbs:
            self.enqueue(pdb)
        has, after = stale_disruption_condition(pod, self.clock(), self.stale_timeout)
        if has:
            self.stale_queue.add_after(self.key(pod), after)

    def _pod_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("labels") != (cur.get("metadata") or {}).get("labels"):
            for pdb in self.pdbs_for_pod(old):  # a PDB that stopped selecting it counts it no more
                self.enqueue(pdb)
        self._pod_changed(cur)

    def _pod_deleted(self, pod: dict) -> None:
        for pdb in self.pdbs_for_pod(pod):
            self.enqueue(pdb)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one PDB ("ns/name").  Conflicts are raised (retried with backoff);
        other failures write the fail-safe status and are raised too."""
        namespace, name = split_key(key)
        pdb = self.pdb_lister.get(name, namespace)
        if pdb is None:
            return
        pdb = {**pdb, "kind": KIND, "apiVersion": API_VERSION}  # events need them
        try:
            await self._try_sync(pdb)
        except ApiException as e:
            if e.status == 409:
                raise  # our cache is behind; the informer brings the news, then we retry
            log.error("disruption: failed to sync PDB %s: %s", key, e)
            await self._fail_safe(pdb, e.message or str(e))
            raise
        except BudgetError as e:
            log.error("disruption: failed to sync PDB %s: %s", key, e)
            await self._fail_safe(pdb, str(e))
            raise

    def pods_for_pdb(self, pdb: dict) -> list[dict]:
        ns = (pdb.get("metadata") or {}).get("namespace", "")
        return [p for p in self.pod_lister.list(ns) if pdb_selects(pdb, p)]

    async def _try_sync(self, pdb: dict) -> None:
        pods = self.pods_for_pdb(pdb)
        if not pods:
            self.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        scale: int | None = None
        if needs_scale(pdb):
            try:
                scale, unmanaged = await self.expected_scale(pods)
            except BudgetError as e:
                self.recorder.event(pdb, "Warning", "CalculateExpectedPodCountFailed",
                                    f"Failed to calculate the number of expected pods: {e}")
                raise
            if unmanaged:
                sel = (pdb.get("spec") or {}).get("selector")
                self.recorder.event(
                    pdb, "Warning", "UnmanagedPods",
                    f"Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be unmanaged. "
                    "As a result, the status of the PDB cannot be calculated correctly, which may result in "
                    'undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
                    "PDB to an integer value.")
        expected, desired = expected_and_desired(pdb, len(pods), scale)
        now = self.clock()
        disrupted, recheck, expired = build_disrupted_pod_map(
            pods, (pdb.get("status") or {}).get("disruptedPods"), now, self.deletion_timeout)
        for pod in expired:
            meta = pdb["metadata"]
            self.recorder.event({"kind": "Pod", "apiVersion": "v1", **pod}, "Warning", "NotDeleted",
                                f"Pod was expected by PDB {meta['namespace']}/{meta['name']} to be deleted "
                                "but it wasn't")
        healthy = count_healthy(pods, disrupted, now, self.deletion_timeout)
        status = compute_status(pdb, healthy, desired, expected, disrupted, now)
        if status is not None:
            await self._write_status(pdb, status)
        if recheck is not None:
            # Look again when the first approved eviction is overdue.
            self.enqueue(pdb, after=max(0.0, (recheck - now).total_seconds()) + 0.5)

    async def _fail_safe(self, pdb: dict, message: str) -> None:
        """Stop evictions rather than allow them on a budget we could not compute."""
        old = pdb.get("status") or {}
        status = {**copy.deepcopy(old), "disruptionsAllowed": 0}
        cond = {"type": CONDITION, "status": "False", "reason": SYNC_FAILED, "message": message,
                "observedGeneration": old.get("observedGeneration") or 0}
        status["conditions"] = set_condition(old.get("conditions") or [], cond, self.clock())
        try:
            await self._write_status(pdb, status)
        except ApiException as e:
            log.warning("disruption: could not write the fail-safe status of %s: %s", self.key(pdb), e)

    async def _write_status(self, pdb: dict, status: dict) -> None:
        # Guarded by the cached resourceVersion (not retried here): a conflict means the
        # eviction handler or a user changed it; the informer event requeues us.
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": copy.deepcopy(pdb["metadata"]),
                "spec": pdb.get("spec") or {}, "status": status}
        body["metadata"].pop("managedFields", None)
        try:
            await self.client.update(API_VERSION, PLURAL, body, pdb["metadata"]["namespace"], sub="status")
        except ApiException as e:
            if e.status != 404:
                raise

    # -- expected scale -----------------------------------------------------------------------

    async def expected_scale(self, pods: list[dict]) -> tuple[int, list[str]]:
        """Sum of the scales of the pods' controllers (``getExpectedScale``), and the names
        of pods with no controller."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = cu.controller_ref(pod)
            if ref is None:
                unmanaged.append((pod.get("metadata") or {}).get("name", ""))
                continue
            if ref.get("uid") in scales:
                continue
            found = await self._controller_scale(ref, (pod.get("metadata") or {}).get("namespace", ""))
            if found is None:
                raise BudgetError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            uid, replicas = found
            scales[uid] = replicas
        return sum(scales.values()), unmanaged

    def _cached(self, group: str, kind: str, ref: dict, namespace: str) -> dict | None:
        obj = self.workload_informers[(group, kind)].lister.get(ref.get("name", ""), namespace)
        if obj is None or (obj.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return obj

    async def _controller_scale(self, ref: dict, namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` names; None if it is not found."""
        group, kind = _group(ref.get("apiVersion", "")), ref.get("kind", "")
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self._cached("apps", "ReplicaSet", ref, namespace)
            if rs is None:
                return None
            owner = cu.controller_ref(rs)
            if owner is not None and owner.get("kind") == "Deployment" and \
                    _group(owner.get("apiVersion", "")) in ("apps", "extensions"):
                # A Deployment's pods count against the Deployment's replicas, across its ReplicaSets.
                d = self._cached("apps", "Deployment", owner, namespace)
                return None if d is None else (d["metadata"]["uid"], _replicas(d))
            return rs["metadata"]["uid"], _replicas(rs)
        if kind == "StatefulSet" and group == "apps":
            ss = self._cached("apps", "StatefulSet", ref, namespace)
            return None if ss is None else (ss["metadata"]["uid"], _replicas(ss))
        if kind == "ReplicationController" and group == "":
            rc = self._cached("", "ReplicationController", ref, namespace)
            return None if rc is None else (rc["metadata"]["uid"], _replicas(rc))
        return await self._scale_subresource(ref, namespace)

    async def _scale_subresource(self, ref: dict, namespace: str) -> tuple[str, int] | None:
        """Any other owner: its ``/scale`` subresource, found through discovery."""
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        key = (api_version, kind)
        if key not in self._scale_plurals:
            self._scale_plurals[key] = await self._find_scale_plural(api_version, kind)
        plural = self._scale_plurals[key]
        if plural is None:
            raise BudgetError(f"{kind}.{_group(api_version)} does not implement the scale subresource")
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            scale = await self.client.request("GET", f"{base}/namespaces/{namespace}/{plural}/{ref['name']}/scale")
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        if (scale.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return ref["uid"], int((scale.get("spec") or {}).get("replicas") or 0)

    async def _find_scale_plural(self, api_version: str, kind: str) -> str | None:
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            doc = await self.client.request("GET", base)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        resources = doc.get("resources") or []
        names = {r.get("name") for r in resources}
        for r in resources:
            if r.get("kind") == kind and "/" not in r.get("name", "") and f"{r['name']}/scale" in names:
                return r["name"]
        return None

    # -- stale DisruptionTarget conditions ----------------------------------------------------------

    async def sync_stale_pod_disruption(self, key: str) -> None:
        namespace, name = split_key(key)
        pod = self.pod_lister.get(name, namespace)
        if pod is None:
            return
        has, after = stale_disruption_condition(pod, self.clock(), self.stale_timeout)
        if not has:
            return
        if after > 0:
            self.stale_queue.add_after(key, after)
            return
        body = copy.deepcopy(pod)
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Pod")
        now = format_time(self.clock())
        for c in (body.get("status") or {}).get("conditions") or []:
            if c.get("type") == DISRUPTION_TARGET:
                # UpdatePodCondition with only type and status: reason and message go.
                c.clear()
                c.update({"type": DISRUPTION_TARGET, "status": "False", "lastTransitionTime": now})
        try:
            await self.client.update("v1", "pods", body, namespace, sub="status")
        except ApiException as e:
            if e.status != 404:
                raise
        log.info("disruption: reset stale DisruptionTarget condition of pod %s to False", key)


__all__ = [
    "DELETION_TIMEOUT", "BudgetError", "DisruptionController", "build_disrupted_pod_map", "compute_status",
    "count_healthy", "expected_and_desired", "needs_scale", "pdb_selects", "scaled_value", "set_condition",
    "stale_disruption_condition", "update_disruption_allowed_condition",
]
