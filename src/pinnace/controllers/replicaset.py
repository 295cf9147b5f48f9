"""ReplicaSet controller (Kubernetes' ``pkg/controller/replicaset``): keeps
``spec.replicas`` active pods matching a ReplicaSet's selector.

Informers on apps/v1 replicasets and v1 pods feed a work queue of ReplicaSet
keys; :meth:`ReplicaSetController.sync` then, level-triggered:

1. claims pods — keeps the ones it controls and still selects, adopts matching
   orphans, releases controlled pods whose labels stopped matching;
2. if its expectations are satisfied (every create/delete it issued earlier
   has been seen by the pod informer), creates pods from the template in
   slow-start batches or deletes the least valuable ones;
3. writes ``status`` through the ``/status`` subresource.

Expectations are what make a burst of events safe: until the informer has seen
the pods we created, the cache under-counts them and a sync would create them
again.  ``/scale`` writes only change ``spec.replicas``, so they are ordinary
updates here.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any

from ..api.selectors import SelectorError, from_label_selector_object
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION, GROUP, KIND = "apps/v1", "apps", "ReplicaSet"
# At most this many creates or deletes per sync (Kubernetes' burstReplicas).
BURST_REPLICAS = 500
WORKERS = 5
STATUS_UPDATE_RETRIES = 1


class ReplicaSetController(QueueController):
    """``ReplicaSetController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  Pass ``recorder=None`` to have it own (start and stop)
    an :class:`EventRecorder` of its own."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, burst_replicas: int = BURST_REPLICAS):
        super().__init__(client, factory, recorder, component="replicaset-controller", queue="replicaset",
                         workers=workers)
        self.burst_replicas = burst_replicas
        self.rs_informer = self.informer(API_VERSION, "replicasets")
        self.pod_informer = self.informer("v1", "pods")
        self.rs_lister, self.pod_lister = self.rs_informer.lister, self.pod_informer.lister
        self.owner_lister = self.rs_lister
        self.expectations = cu.UIDTrackingControllerExpectations()
        self.rs_informer.add_event_handler(on_add=self.enqueue, on_update=self._rs_updated,
                                           on_delete=self._rs_deleted)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=self._pod_deleted)

    # -- event handlers (quick: they only enqueue and count) -----------------------------

    def _rs_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("uid") != (cur.get("metadata") or {}).get("uid"):
            # Deleted and recreated under one name between two events: forget the old one first.
            self._rs_deleted(old)
        self.enqueue(cur)

    def _rs_deleted(self, rs: dict) -> None:
        self.expectations.delete_expectations(self.key(rs))
        self.enqueue(rs)

    def _pod_added(self, pod: dict) -> None:
        if cu.is_being_deleted(pod):
            # Seen for the first time already going (e.g. after a relist): a deletion.
            self._pod_deleted(pod)
            return
        # Its ReplicaSet, or (an orphan) every ReplicaSet that selects it and may adopt it.
        rs = self.enqueue_owners_of_added(pod)
        if rs is not None:
            self.expectations.creation_observed(self.key(rs))

    def _pod_updated(self, old: dict, cur: dict) -> None:
        ometa, cmeta = old.get("metadata") or {}, cur.get("metadata") or {}
        if ometa.get("resourceVersion") == cmeta.get("resourceVersion"):
            return  # a resync: nothing changed
        if cu.is_being_deleted(cur):
            # Graceful deletion starts: count the pod gone now, so a replacement is made
            # without waiting out its grace period.
            self._pod_deleted(cur)
            if ometa.get("labels") != cmeta.get("labels"):
                self._pod_deleted(old)
            return
        self.enqueue_owners_of_updated(old, cur, _min_ready_seconds)

    def _pod_deleted(self, pod: dict) -> None:
        rs = self.enqueue_owner(pod)  # orphans' deletions concern no ReplicaSet
        if rs is not None:
            self.expectations.deletion_observed(self.key(rs), cu.pod_key(pod))

    # -- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one ReplicaSet ("ns/name").  Raises on API errors (the worker retries
        with backoff)."""
        namespace, name = split_key(key)
        rs = self.rs_lister.get(name, namespace)
        if rs is None:
            self.expectations.delete_expectations(key)
            return
        rs = _self_describing(rs)
        spec = rs.get("spec") or {}
        try:
            selector = from_label_selector_object(spec.get("selector"))
        except SelectorError as e:
            log.error("replicaset %s has an invalid selector: %s", key, e)
            return  # retrying cannot help; an update of the object will enqueue it again
        if not selector:
            # Validation forbids it; without one we would own nothing and create forever.
            log.error("replicaset %s has no selector; ignoring it", key)
            return
        needs_sync = self.expectations.satisfied_expectations(key)
        active = cu.filter_active_pods(self.pod_lister.list(namespace))
        pods = await cu.claim_pods(self.client, rs, selector, active,
                                   lambda: cu.can_adopt(self.client, rs, API_VERSION, "replicasets"),
                                   cu.new_controller_ref(rs, API_VERSION, KIND))
        manage_error: Exception | None = None
        if needs_sync and not cu.is_being_deleted(rs):
            manage_error = await self._manage_replicas(pods, rs, key)
        status, requeue_after = calculate_status(rs, pods, manage_error)
        await self._update_status(rs, status)
        if manage_error is not None:
            raise manage_error
        if requeue_after is not None:
            # Pods turn available with time alone: come back exactly when the next one does.
            self.enqueue(rs, after=requeue_after)

    async def _manage_replicas(self, pods: list[dict], rs: dict, key: str) -> Exception | None:
        spec = rs.get("spec") or {}
        want = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        diff = len(pods) - want
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            # Expect before creating: the informer may report the new pods before POST returns.
            self.expectations.expect_creations(key, count)
            successes, err = await cu.slow_start_batch(count, cu.SLOW_START_INITIAL_BATCH_SIZE,
                                                       lambda: self._create_pod(rs))
            skipped = count - successes
            if skipped > 0:
                # Pods never created will never be observed.
                log.info("replicaset %s: %d creations skipped after an error", key, skipped)
                self.expectations.lower_expectations(key, add=skipped)
            return err
        if diff > 0:
            count = min(diff, self.burst_replicas)
            victims = cu.pods_to_delete(pods, count)
            self.expectations.expect_pod_deletions(key, (cu.pod_key(p) for p in victims))
            results = await asyncio.gather(*(self._delete_pod(rs, key, p) for p in victims),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, asyncio.CancelledError):
                    raise r
            return next((r for r in results if isinstance(r, Exception)), None)
        return None

    async def _create_pod(self, rs: dict) -> None:
        pod = cu.pod_from_template((rs.get("spec") or {}).get("template") or {}, rs,
                                   cu.new_controller_ref(rs, API_VERSION, KIND))
        await cu.create_pod(self.client, self.recorder, rs, pod)

    async def _delete_pod(self, rs: dict, key: str, pod: dict) -> None:
        await cu.delete_pod(self.client, self.recorder, rs, pod,
                            on_failure=lambda: self.expectations.deletion_observed(key, cu.pod_key(pod)))

    async def _update_status(self, rs: dict, status: dict) -> dict:
        """PUT ``status`` to ``/status`` unless nothing changed; returns the status in effect."""
        cur = rs
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            old = cur.get("status") or {}
            if _same_status(old, status) and old.get("observedGeneration") == status.get("observedGeneration"):
                return old
            body = copy.deepcopy(cur)
            body["status"] = status
            try:
                return (await self.client.update(API_VERSION, "replicasets", body, cur["metadata"]["namespace"],
                                                 sub="status")).get("status") or status
            except ApiException as e:
                if e.status == 404:
                    return status
                if e.status != 409 or attempt == STATUS_UPDATE_RETRIES:
                    raise
            # Conflict: our cached copy is stale; retry on the server's.
            cur = await self.client.get(API_VERSION, "replicasets", rs["metadata"]["name"],
                                        rs["metadata"]["namespace"])
        return status


# -- status ---------------------------------------------------------------------------------

_COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def _same_status(a: dict, b: dict) -> bool:
    return (all((a.get(k) or 0) == (b.get(k) or 0) for k in _COUNTS)
            and _strip_times(a.get("conditions")) == _strip_times(b.get("conditions")))


def _strip_times(conds: list[dict] | None) -> list[tuple]:
    return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds or ())


def calculate_status(rs: dict, pods: list[dict], manage_error: Exception | None,
                     now: dt.datetime | None = None) -> tuple[dict[str, Any], float | None]:
    """The status ``rs`` should have given its claimed active ``pods``; plus, when some
    ready pod is not yet available, the seconds until the first becomes so."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = now or dt.datetime.now(dt.UTC)
    fully_labeled = ready = available = 0
    next_available: float | None = None
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if not cu.is_pod_ready(pod):
            continue
        ready += 1
        if cu.is_pod_available(pod, min_ready, now):
            available += 1
        else:
            left = cu.seconds_until_available(pod, min_ready, now) or 0.0
            # Timestamps have one-second resolution and availability is strict: a margin.
            left += 0.5
            next_available = left if next_available is None else min(next_available, left)
    old = rs.get("status") or {}
    conditions = [dict(c) for c in old.get("conditions") or ()]
    failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None and failure is None:
        want = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        reason = "FailedCreate" if len(pods) < want else "FailedDelete"
        message = manage_error.message if isinstance(manage_error, ApiException) else str(manage_error)
        conditions.append({"type": "ReplicaFailure", "status": "True", "reason": reason, "message": message,
                           "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
    elif manage_error is None and failure is not None:
        conditions.remove(failure)
    status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": fully_labeled,
                              "readyReplicas": ready, "availableReplicas": available,
                              "observedGeneration": (rs.get("metadata") or {}).get("generation", 0)}
    if conditions:
        status["conditions"] = conditions
    return status, next_available


def _min_ready_seconds(rs: dict) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


def _self_describing(rs: dict) -> dict:
    # Events and ownerReferences need kind/apiVersion, which some list items lack.
    if rs.get("kind") == KIND and rs.get("apiVersion") == API_VERSION:
        return rs
    return {**rs, "kind": KIND, "apiVersion": API_VERSION}


__all__ = ["BURST_REPLICAS", "ReplicaSetController", "calculate_status"]
