"""DaemonSet controller (Kubernetes' ``pkg/controller/daemon``): one daemon pod on
every node a DaemonSet's template fits.

Informers on apps/v1 daemonsets and controllerrevisions and v1 pods and nodes
feed a work queue of DaemonSet keys; :meth:`DaemonSetController.sync` then,
level-triggered:

1. constructs the history: the ControllerRevision holding the current template
   (created if missing, renumbered to the newest revision after a rollback) and
   the old ones; its ``controller-revision-hash`` labels new pods;
2. if its expectations are satisfied, *manages*: claims pods, creates a pod on
   each eligible node lacking one, deletes pods on nodes that must not keep them,
   failed pods (with per-node backoff) and excess pods;
3. if still satisfied, takes one RollingUpdate step within maxUnavailable /
   maxSurge (OnDelete: nothing), and trims old revisions beyond
   revisionHistoryLimit;
4. writes ``status`` through ``/status``.

Pods are not bound here: since Kubernetes 1.12 a daemon pod carries required node
affinity ``matchFields metadata.name In [node]`` and the scheduler binds it (a pod
that does not fit stays Pending, like any other).  Eligibility and rollout
arithmetic are pure functions in :mod:`.daemonset_util`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.selectors import SelectorError, from_label_selector_object
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import daemonset_util as dsu
from . import history
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION, GROUP, KIND = "apps/v1", "apps", "DaemonSet"
# At most this many creates or deletes per sync (Kubernetes' BurstReplicas).
BURST_REPLICAS = 250
WORKERS = 2
STATUS_UPDATE_RETRIES = 1
BACKOFF_GC_INTERVAL = 60.0


class StaleCollisionCount(Exception):
    """The collisionCount used for a revision name was stale: retry once the cache catches up."""


class DaemonSetController(QueueController):
    """``DaemonSetController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  Pass ``recorder=None`` to have it own (start and stop) an
    :class:`EventRecorder` of its own, recording as ``daemonset-controller``."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, burst_replicas: int = BURST_REPLICAS,
                 failed_pods_backoff: dsu.FailedPodsBackoff | None = None):
        super().__init__(client, factory, recorder, component="daemonset-controller", queue="daemonset",
                         workers=workers)
        self.burst_replicas = burst_replicas
        self.failed_pods_backoff = failed_pods_backoff or dsu.FailedPodsBackoff()
        self.ds_informer = self.informer(API_VERSION, "daemonsets")
        self.history_informer = self.informer(API_VERSION, "controllerrevisions")
        self.pod_informer = self.informer("v1", "pods")
        self.node_informer = self.informer("v1", "nodes")
        self.ds_lister, self.history_lister = self.ds_informer.lister, self.history_informer.lister
        self.pod_lister, self.node_lister = self.pod_informer.lister, self.node_informer.lister
        self.owner_lister = self.ds_lister
        self.expectations = cu.UIDTrackingControllerExpectations()
        self.ds_informer.add_event_handler(on_add=self.enqueue, on_update=self._ds_updated,
                                           on_delete=self._ds_deleted)
        self.history_informer.add_event_handler(on_add=self._history_added, on_update=self._history_updated,
                                                on_delete=self.enqueue_owner)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=self._pod_deleted)
        self.node_informer.add_event_handler(on_add=self._node_added, on_update=self._node_updated,
                                             on_delete=self._node_deleted)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self._tasks.append(asyncio.create_task(self._backoff_gc(), name="daemonset-backoff-gc"))

    async def _backoff_gc(self) -> None:
        while True:
            await asyncio.sleep(BACKOFF_GC_INTERVAL)
            self.failed_pods_backoff.gc()

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, StaleCollisionCount) or (isinstance(e, ApiException) and e.status == 409)

    # -- event handlers (quick: they only enqueue and count) -----------------------------

    def _ds_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("uid") != (cur.get("metadata") or {}).get("uid"):
            self._ds_deleted(old)  # deleted and recreated under one name between two events
        self.enqueue(cur)

    def _ds_deleted(self, ds: dict) -> None:
        # A DaemonSet recreated under this name must start with clean expectations.
        self.expectations.delete_expectations(self.key(ds))
        self.enqueue(ds)

    def _history_added(self, rev: dict) -> None:
        if cu.is_being_deleted(rev):
            self.enqueue_owner(rev)
        elif cu.controller_ref(rev) is None:  # creating a revision is our own doing: nothing to react to
            self.enqueue_owners_of_added(rev)

    def _history_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (cur.get("metadata") or {}).get("resourceVersion"):
            return
        self.enqueue_owners_of_updated(old, cur)

    def _pod_added(self, pod: dict) -> None:
        if cu.is_being_deleted(pod):
            self._pod_deleted(pod)  # seen for the first time already going: not a creation
            return
        ds = self.enqueue_owners_of_added(pod)
        if ds is not None:
            self.expectations.creation_observed(self.key(ds))

    def _pod_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (cur.get("metadata") or {}).get("resourceVersion"):
            return
        if cu.is_being_deleted(cur):
            # Graceful deletion starts: count the pod gone now, so the node gets its
            # replacement without waiting out the grace period.
            self._pod_deleted(cur)
            return
        self.enqueue_owners_of_updated(old, cur, dsu.min_ready_seconds)

    def _pod_deleted(self, pod: dict) -> None:
        ds = self.enqueue_owner(pod)
        if ds is not None:
            self.expectations.deletion_observed(self.key(ds), cu.pod_key(pod))

    def _node_added(self, node: dict) -> None:
        for ds in self.ds_lister.list():
            if dsu.node_should_run_daemon_pod(node, ds)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: dict, cur: dict) -> None:
        # Only labels and taints decide eligibility; heartbeats (most node updates) are ignored.
        if ((old.get("metadata") or {}).get("labels") == (cur.get("metadata") or {}).get("labels")
                and (old.get("spec") or {}).get("taints") == (cur.get("spec") or {}).get("taints")):
            return
        for ds in self.ds_lister.list():
            if dsu.node_should_run_daemon_pod(old, ds) != dsu.node_should_run_daemon_pod(cur, ds):
                self.enqueue(ds)

    def _node_deleted(self, node: dict) -> None:
        # Its pods are pod GC's to delete, but the desired count drops now.
        for ds in self.ds_lister.list():
            if any(dsu.node_should_run_daemon_pod(node, ds)):
                self.enqueue(ds)

    # -- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one DaemonSet ("ns/name").  Raises on API errors (the worker retries
        with backoff)."""
        namespace, name = split_key(key)
        cached = self.ds_lister.get(name, namespace)
        if cached is None:
            self.expectations.delete_expectations(key)
            return
        ds = copy.deepcopy(cached)
        ds["apiVersion"], ds["kind"] = API_VERSION, KIND
        nodes = self.node_lister.list()
        selector = (ds.get("spec") or {}).get("selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self.recorder.event(ds, "Warning", dsu.SELECTING_ALL,
                                "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        try:
            from_label_selector_object(selector)
        except SelectorError as e:
            log.error("daemonset %s has an invalid selector: %s", key, e)
            return  # retrying cannot help; an update of the object enqueues it again
        if cu.is_being_deleted(ds):
            # Its revisions may already be gone or orphaned: no status can be trusted now.
            return
        cur, old = await self._construct_history(ds)
        hash_ = (cur["metadata"].get("labels") or {}).get(dsu.HASH_LABEL) or ""
        if not self.expectations.satisfied_expectations(key):
            # Only the counts: observedGeneration waits until this generation is acted upon.
            await self._update_status(ds, nodes, hash_, observe_generation=False)
            return
        error: Exception | None = None
        try:
            await self._update_daemon_set(ds, nodes, hash_, key, old)
        except (ApiException, StaleCollisionCount) as e:
            error = e
        try:
            await self._update_status(ds, nodes, hash_, observe_generation=True)
        except ApiException as e:
            if error is None:
                raise
            log.warning("daemonset %s: status update failed too: %s", key, e)
        if error is not None:
            raise error

    async def _update_daemon_set(self, ds: dict, nodes: list[dict], hash_: str, key: str, old: list[dict]) -> None:
        await self._manage(ds, nodes, hash_, key)
        if self.expectations.satisfied_expectations(key) and dsu.strategy_type(ds) == "RollingUpdate":
            await self._rolling_update(ds, nodes, hash_, key)
        await self._cleanup_history(ds, old)

    # -- pods --------------------------------------------------------------------------

    async def _can_adopt(self, ds: dict) -> bool:
        return await cu.can_adopt(self.client, ds, API_VERSION, "daemonsets")

    async def _daemon_pods(self, ds: dict) -> list[dict]:
        """Pods ``ds`` controls, after adopting matching orphans and releasing pods whose
        labels stopped matching (``getDaemonPods``).  All pods, terminal ones included:
        failed daemon pods are for this controller to delete."""
        ns = ds["metadata"]["namespace"]
        return await cu.claim_pods(self.client, ds, ds["spec"]["selector"], self.pod_lister.list(ns),
                                   lambda: self._can_adopt(ds), cu.new_controller_ref(ds, API_VERSION, KIND))

    async def _nodes_to_daemon_pods(self, ds: dict, include_deleted_terminal: bool = False) -> dict[str, list[dict]]:
        return dsu.group_by_node(await self._daemon_pods(ds), include_deleted_terminal)

    def _failed_backoff(self, ds: dict) -> Callable[[str], float | None]:
        uid = ds["metadata"].get("uid", "")
        generation = (ds.get("status") or {}).get("observedGeneration") or 0

        def check(node_name: str) -> float | None:
            backoff_key = f"{uid}/{generation}/{node_name}"
            left = self.failed_pods_backoff.in_backoff(backoff_key)
            if left is not None:
                return left
            self.failed_pods_backoff.next(backoff_key)
            return None

        return check

    async def _manage(self, ds: dict, nodes: list[dict], hash_: str, key: str) -> None:
        """Create daemon pods where they are missing, delete them where they must go."""
        node_to_pods = await self._nodes_to_daemon_pods(ds)
        pred = dsu.DaemonPodPredicate.for_daemon_set(ds)
        failed_backoff = self._failed_backoff(ds)
        to_create: list[str] = []
        to_delete: list[dict] = []
        retry_after: float | None = None
        for node in nodes:
            node_name = node["metadata"]["name"]
            plan = dsu.pods_should_be_on_node(node, node_to_pods.get(node_name), ds, hash_, pred, failed_backoff)
            if plan.create:
                to_create.append(node_name)
            to_delete.extend(plan.delete)
            for pod in plan.failed:
                self.recorder.event(ds, "Warning", dsu.FAILED_DAEMON_POD,
                                    f"Found failed daemon pod {pod['metadata']['namespace']}/"
                                    f"{pod['metadata']['name']} on node {node_name}, will try to kill it")
            for pod in plan.succeeded:
                self.recorder.event(ds, "Normal", dsu.SUCCEEDED_DAEMON_POD,
                                    f"Found succeeded daemon pod {pod['metadata']['namespace']}/"
                                    f"{pod['metadata']['name']} on node {node_name}, will try to delete it")
            if plan.backoff is not None:
                retry_after = plan.backoff if retry_after is None else min(retry_after, plan.backoff)
        to_delete.extend(dsu.unscheduled_pods_without_node(nodes, node_to_pods))
        if retry_after is not None:
            self.enqueue(ds, after=retry_after)
        await self._sync_nodes(ds, key, to_delete, to_create, hash_)

    async def _sync_nodes(self, ds: dict, key: str, to_delete: list[dict], to_create: list[str], hash_: str) -> None:
        """Delete ``to_delete`` and create a pod on each node of ``to_create`` (``syncNodes``),
        at most ``burst_replicas`` of each; raises the first error after trying them all."""
        creates = to_create[:self.burst_replicas]
        deletes = to_delete[:self.burst_replicas]
        # Expect before acting: the informer may report the pods before the calls return.
        self.expectations.expect_pod_deletions(key, (cu.pod_key(p) for p in deletes))
        self.expectations.raise_expectations(key, add=len(creates))
        errors: list[Exception] = []
        if creates:
            it = iter(creates)
            attempted = 0

            def create_next() -> Awaitable[None]:
                nonlocal attempted
                attempted += 1
                return self._create_pod(ds, key, hash_, next(it))

            _, err = await cu.slow_start_batch(len(creates), cu.SLOW_START_INITIAL_BATCH_SIZE, create_next)
            skipped = len(creates) - attempted
            if skipped > 0:
                # Pods never attempted will never be observed.
                self.expectations.lower_expectations(key, add=skipped)
            if err is not None:
                errors.append(err)
        if deletes:
            results = await asyncio.gather(*(self._delete_pod(ds, key, p) for p in deletes), return_exceptions=True)
            for r in results:
                if isinstance(r, asyncio.CancelledError):
                    raise r
                if isinstance(r, Exception):
                    errors.append(r)
        if errors:
            raise errors[0]

    async def _create_pod(self, ds: dict, key: str, hash_: str, node_name: str) -> None:
        pod = cu.pod_from_template(dsu.daemon_pod_template(ds, hash_, node_name), ds,
                                   cu.new_controller_ref(ds, API_VERSION, KIND))
        # A pod that is not created is never observed: stop waiting for it then.
        await cu.create_pod(self.client, self.recorder, ds, pod,
                            on_failure=lambda: self.expectations.creation_observed(key))

    async def _delete_pod(self, ds: dict, key: str, pod: dict) -> None:
        await cu.delete_pod(self.client, self.recorder, ds, pod,
                            on_failure=lambda: self.expectations.deletion_observed(key, cu.pod_key(pod)))

    # -- rolling update ------------------------------------------------------------------

    async def _rolling_update(self, ds: dict, nodes: list[dict], hash_: str, key: str) -> None:
        node_to_pods = await self._nodes_to_daemon_pods(ds)
        delete_names, create_nodes = dsu.plan_rolling_update(ds, nodes, node_to_pods, hash_)
        by_name = {p["metadata"]["name"]: p for pods in node_to_pods.values() for p in pods}
        to_delete = [by_name[n] for n in delete_names if n in by_name]
        await self._sync_nodes(ds, key, to_delete, create_nodes, hash_)

    # -- history -------------------------------------------------------------------------

    async def _controlled_histories(self, ds: dict) -> list[dict]:
        ns = ds["metadata"]["namespace"]
        return await history.claim_revisions(self.client, ds, ds["spec"]["selector"], self.history_lister.list(ns),
                                             lambda: self._can_adopt(ds))

    async def _construct_history(self, ds: dict) -> tuple[dict, list[dict]]:
        """(the current revision, the old ones) (``constructHistory``)."""
        ns = ds["metadata"]["namespace"]
        current: list[dict] = []
        old: list[dict] = []
        for rev in await self._controlled_histories(ds):
            if dsu.HASH_LABEL not in (rev["metadata"].get("labels") or {}):
                # Revisions from elsewhere: label them by name, which is as unique as a hash.
                body = copy.deepcopy(rev)
                body["metadata"].setdefault("labels", {})[dsu.HASH_LABEL] = rev["metadata"]["name"]
                rev = await self.client.update(history.API_VERSION, history.PLURAL, body, ns)
            (current if dsu.revision_matches(ds, rev) else old).append(rev)
        next_number = history.next_revision(old)
        if not current:
            return await self._snapshot(ds, next_number), old
        cur = await self._dedup_current(ds, current)
        if int(cur.get("revision") or 0) < next_number:
            # A rollback: the old template is current again and becomes the newest revision.
            cur = await history.update_revision_number(self.client, cur, next_number)
        return cur, old

    async def _snapshot(self, ds: dict, number: int) -> dict:
        """Create the revision of the current template (``snapshot``).  A same-named revision
        with other data is a hash collision: bump status.collisionCount and retry."""
        meta = ds["metadata"]
        ns = meta["namespace"]
        collision_count = (ds.get("status") or {}).get("collisionCount")
        data = dsu.revision_data(ds)
        hash_ = history.hash_revision(data, collision_count)
        template_labels = ((ds["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        rev: dict[str, Any] = {
            "apiVersion": history.API_VERSION, "kind": history.KIND,
            "metadata": {"name": history.revision_name(meta["name"], hash_), "namespace": ns,
                         "labels": {**template_labels, dsu.HASH_LABEL: hash_},
                         "ownerReferences": [cu.new_controller_ref(ds, API_VERSION, KIND)]},
            "data": data, "revision": number,
        }
        if meta.get("annotations"):
            rev["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            return await self.client.create(history.API_VERSION, history.PLURAL, rev, ns)
        except ApiException as e:
            if e.status != 409:
                raise
            existing = await self.client.get(history.API_VERSION, history.PLURAL, rev["metadata"]["name"], ns)
            if dsu.revision_matches(ds, existing):
                return existing  # ours, the cache had just not seen it
            fresh = await self.client.get(API_VERSION, "daemonsets", meta["name"], ns)
            if (fresh.get("status") or {}).get("collisionCount") != collision_count:
                raise StaleCollisionCount(f"daemonset {ns}/{meta['name']}: stale collisionCount") from e
            fresh.setdefault("status", {})["collisionCount"] = int(collision_count or 0) + 1
            await self.client.update(API_VERSION, "daemonsets", fresh, ns, sub="status")
            log.info("daemonset %s/%s: hash collision, collisionCount now %d", ns, meta["name"],
                     fresh["status"]["collisionCount"])
            raise StaleCollisionCount(f"daemonset {ns}/{meta['name']}: revision name collision") from e

    async def _dedup_current(self, ds: dict, current: list[dict]) -> dict:
        """Several revisions hold the current template (a collision retry raced): keep the
        newest, move pods labelled with the others' hashes over to it, delete the others."""
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: int(r.get("revision") or 0))
        keep_hash = (keep["metadata"].get("labels") or {}).get(dsu.HASH_LABEL)
        ns = ds["metadata"]["namespace"]
        for rev in current:
            if rev["metadata"]["name"] == keep["metadata"]["name"]:
                continue
            dup_hash = (rev["metadata"].get("labels") or {}).get(dsu.HASH_LABEL)
            for pod in await self._daemon_pods(ds):
                if (pod["metadata"].get("labels") or {}).get(dsu.HASH_LABEL) == dup_hash:
                    try:
                        await self.client.patch("v1", "pods", pod["metadata"]["name"],
                                                {"metadata": {"labels": {dsu.HASH_LABEL: keep_hash}}}, ns)
                    except ApiException as e:
                        if e.status != 404:
                            raise
            await history.delete_revision(self.client, rev)
        return keep

    async def _cleanup_history(self, ds: dict, old: list[dict]) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        if len(old) <= limit:
            return
        live = {(p["metadata"].get("labels") or {}).get(dsu.HASH_LABEL)
                for pods in (await self._nodes_to_daemon_pods(ds, include_deleted_terminal=True)).values()
                for p in pods}
        for rev in dsu.revisions_to_clean(old, (h for h in live if h), limit):
            await history.delete_revision(self.client, rev)

    # -- status --------------------------------------------------------------------------

    async def _update_status(self, ds: dict, nodes: list[dict], hash_: str, observe_generation: bool) -> None:
        node_to_pods = await self._nodes_to_daemon_pods(ds)
        now = dt.datetime.now(dt.UTC)
        counts = dsu.calculate_status(ds, nodes, node_to_pods, hash_, now)
        generation = int(ds["metadata"].get("generation") or 0)
        cur = ds
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            old = cur.get("status") or {}
            if dsu.status_counts(old) == counts and int(old.get("observedGeneration") or 0) >= generation:
                break
            status = dsu.render_status(old, counts, generation if observe_generation else old.get("observedGeneration"))
            if status == old:
                break  # only observedGeneration lags, and this sync may not raise it
            body = {**cur, "status": status}
            try:
                await self.client.update(API_VERSION, "daemonsets", body, cur["metadata"]["namespace"], sub="status")
                break
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status != 409 or attempt == STATUS_UPDATE_RETRIES:
                    raise
            # Conflict: our cached copy is stale; retry on the server's.
            cur = await self.client.get(API_VERSION, "daemonsets", ds["metadata"]["name"], ds["metadata"]["namespace"])
            cur["apiVersion"], cur["kind"] = API_VERSION, KIND
        # Ready pods become available with time alone: come back exactly when the next one does.
        mrs = dsu.min_ready_seconds(ds)
        if mrs > 0 and counts["numberReady"] != counts["numberAvailable"]:
            waits = [cu.seconds_until_available(p, mrs, now) for pods in node_to_pods.values() for p in pods]
            pending = [w for w in waits if w]
            # Timestamps have one-second resolution and availability is strict: a margin.
            self.enqueue(ds, after=(min(pending) if pending else float(mrs)) + 0.5)


__all__ = ["BURST_REPLICAS", "DaemonSetController", "StaleCollisionCount"]
