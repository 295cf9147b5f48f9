"""StatefulSet controller (Kubernetes' ``pkg/controller/statefulset``): pods with a
stable identity ``<set>-<ordinal>``, their own PersistentVolumeClaims, ordered (or
parallel) scaling and revision-based rolling updates.

Informers on apps/v1 statefulsets, v1 pods, apps/v1 controllerrevisions and v1
persistentvolumeclaims feed a work queue of set keys; :meth:`StatefulSetController.sync`
then, level-triggered:

1. claims ControllerRevisions and pods (only pods named ``<set>-<n>`` are adopted);
2. works out the *current* revision (``status.currentRevision``) and the *update*
   revision (the set's template now): an equal earlier revision is reused — a rollback
   bumps its number — otherwise a new one is created (collisions escape through
   ``status.collisionCount``);
3. walks the ordinals ``[start, start+replicas)``: failed/succeeded pods are deleted
   and recreated, missing ones created (claims first), in OrderedReady mode one at a
   time and only once every lower ordinal is Running, Ready and available; then
   deletes pods out of range, highest first (one at a time, only while the rest are
   healthy, unless Parallel);
4. RollingUpdate: deletes the highest pod >= partition not at the update revision,
   once the ones above it are healthy again (recreation picks the new template);
   OnDelete leaves that to the user;
5. writes status through ``/status`` and prunes revisions beyond
   ``revisionHistoryLimit``.

No expectations are needed (unlike ReplicaSets): pod names are deterministic, so a
create from a stale cache fails with AlreadyExists and a delete carries a uid
precondition.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.selectors import SelectorError, from_label_selector_object
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import history
from . import statefulset_util as su
from .base import QueueController
from .statefulset_util import API_VERSION, GROUP, KIND

log = logging.getLogger(__name__)

WORKERS = 5
STATUS_UPDATE_RETRIES = 1


class _Stop(Exception):
    """Internal: this pass cannot make further progress (waiting on a pod)."""


class StatefulSetController(QueueController):
    """``StatefulSetController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")``.  Pass ``recorder=None`` to have it own (start and stop)
    an :class:`EventRecorder` of its own (as ``statefulset-controller``)."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS):
        super().__init__(client, factory, recorder, component="statefulset-controller", queue="statefulset",
                         workers=workers)
        self.set_informer = self.informer(API_VERSION, "statefulsets")
        self.pod_informer = self.informer("v1", "pods")
        self.rev_informer = self.informer(history.API_VERSION, history.PLURAL)
        self.pvc_informer = self.informer("v1", "persistentvolumeclaims")
        self.set_lister, self.pod_lister = self.set_informer.lister, self.pod_informer.lister
        self.rev_lister, self.pvc_lister = self.rev_informer.lister, self.pvc_informer.lister
        self.owner_lister = self.set_lister
        self.set_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                            on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=self.enqueue_owner)
        # A pod waiting for a previous incarnation's claim to be collected resumes when it goes.
        self.pvc_informer.add_event_handler(on_delete=self._claim_deleted)

    # -- event handlers --------------------------------------------------------------------

    def owners_selecting(self, pod: dict) -> list[dict]:
        # Only pods named after the set can ever be adopted by it.
        return [s for s in super().owners_selecting(pod) if su.is_member_of(s, pod)]

    def _pod_added(self, pod: dict) -> None:
        if cu.is_being_deleted(pod):
            self.enqueue_owner(pod)
            return
        self.enqueue_owners_of_added(pod)

    def _pod_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (cur.get("metadata") or {}).get("resourceVersion"):
            return
        self.enqueue_owners_of_updated(old, cur, su.min_ready_seconds)

    def _claim_deleted(self, claim: dict) -> None:
        meta = claim.get("metadata") or {}
        name = meta.get("name", "")
        for s in self.set_lister.list(meta.get("namespace", "")):
            sname = (s.get("metadata") or {}).get("name", "")
            for t in (s.get("spec") or {}).get("volumeClaimTemplates") or ():
                prefix = f"{(t.get('metadata') or {}).get('name', '')}-{sname}-"
                if name.startswith(prefix) and name[len(prefix):].isdigit():
                    self.enqueue(s)

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one StatefulSet ("ns/name"); raises on API errors (retried with backoff)."""
        namespace, name = split_key(key)
        s = self.set_lister.get(name, namespace)
        if s is None:
            return
        s = copy.deepcopy(s)
        s.setdefault("kind", KIND)
        s.setdefault("apiVersion", API_VERSION)
        spec = s.get("spec") or {}
        try:
            selector = from_label_selector_object(spec.get("selector"))
        except SelectorError as e:
            log.error("statefulset %s has an invalid selector: %s", key, e)
            return
        if not selector:
            log.error("statefulset %s has no selector; ignoring it", key)
            return

        async def can_adopt() -> bool:
            return await cu.can_adopt(self.client, s, API_VERSION, "statefulsets")

        # Revisions first: adopting pods whose revision label names an orphaned
        # revision must find that revision ours.
        revisions = await history.claim_revisions(self.client, s, selector,
                                                  self.rev_lister.list(namespace), can_adopt)
        candidates = [p for p in self.pod_lister.list(namespace) if su.is_member_of(s, p)]
        pods = await cu.claim_pods(self.client, s, selector, candidates, can_adopt,
                                   cu.new_controller_ref(s, API_VERSION, KIND))
        await self._update_stateful_set(s, pods, history.sort_revisions(revisions))

    async def _update_stateful_set(self, s: dict, pods: list[dict], revisions: list[dict]) -> None:
        """``UpdateStatefulSet``: revisions, the pods, status, then history clean-up."""
        current, update, collision_count = await self._revisions(s, revisions)
        done: dict[str, Any] = {}
        error: Exception | None = None
        try:
            done = await self._update_pods(s, pods, current, update, collision_count)
        except _Stop:
            pass  # waiting on a pod: its next event brings us back
        except Exception as e:
            error = e  # status is still written (as upstream), then the error re-raised
        status = self._status(s, pods, current, update, collision_count, done)
        await self._update_status(s, status)
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live.update(su.pod_revision(p) for p in pods)
        await history.truncate_history(self.client, revisions, live, su.revision_history_limit(s))
        if error is not None:
            raise error
        min_ready = su.min_ready_seconds(s)
        if min_ready > 0 and status.get("availableReplicas", 0) != su.replicas(s):
            # Pods become available with time alone.
            self.enqueue(s, after=float(min_ready))

    async def _revisions(self, s: dict, revisions: list[dict]) -> tuple[dict, dict, int]:
        """``getStatefulSetRevisions``: (current, update, collisionCount)."""
        collision_count = int((s.get("status") or {}).get("collisionCount") or 0)
        wanted = su.new_revision(s, history.next_revision(revisions), collision_count)
        equal = history.find_equal_revisions(revisions, wanted)
        if equal and revisions and history.equal_revision(revisions[-1], equal[-1]):
            update = revisions[-1]  # the newest revision is the template: nothing changed
        elif equal:
            # A template changed back to an earlier revision: a rollback, that revision
            # becomes the newest rather than a new one being made.
            update = await history.update_revision_number(self.client, equal[-1], wanted["revision"])
        else:
            update, collision_count = await history.create_revision(self.client, s, wanted, collision_count)
        cur_name = (s.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == cur_name), None) or update
        return current, update, collision_count

    def _status(self, s: dict, pods: list[dict], current: dict, update: dict, collision_count: int,
                done: dict[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = {
            "observedGeneration": (s.get("metadata") or {}).get("generation", 0),
            "currentRevision": current["metadata"]["name"], "updateRevision": update["metadata"]["name"],
            "collisionCount": collision_count,
            **su.replica_status(pods, su.min_ready_seconds(s), current["metadata"]["name"],
                                update["metadata"]["name"]),
        }
        if done.get("deletedForUpdate"):
            # Pods just deleted for the update are still in the cache as current ones.
            status["currentReplicas"] = max(status["currentReplicas"] - done["deletedForUpdate"], 0)
        su.complete_rolling_update(s, status)
        return status

    async def _update_pods(self, s: dict, pods: list[dict], current: dict, update: dict,
                           collision_count: int) -> dict[str, Any]:
        """``updateStatefulSet``: create, recreate, delete pods; raises :class:`_Stop` when
        a pass must end early (OrderedReady waiting on a pod).  Returns bookkeeping the
        status calculation needs."""
        current_set = history.apply_template_patch(s, current)
        update_set = history.apply_template_patch(s, update)
        cur_name, upd_name = current["metadata"]["name"], update["metadata"]["name"]
        start, count = su.start_ordinal(s), su.replicas(s)
        min_ready = su.min_ready_seconds(s)
        current_replicas = int((s.get("status") or {}).get("currentReplicas") or 0)

        slots: list[dict | None] = [None] * max(count, 0)
        condemned: list[dict] = []
        for p in pods:
            ord_ = su.ordinal(p)
            if su.in_ordinal_range(p, s):
                slots[ord_ - start] = p
            elif ord_ >= 0:
                condemned.append(p)
        replicas: list[dict] = [
            p if p is not None else su.new_versioned_pod(current_set, update_set, cur_name, upd_name, start + i,
                                                         current_replicas)
            for i, p in enumerate(slots)]
        condemned.sort(key=su.ordinal, reverse=True)
        first_unavailable = next((p for p in replicas if su.is_unavailable(p, min_ready)), None)
        if first_unavailable is None:
            first_unavailable = next((p for p in reversed(condemned) if su.is_unavailable(p, min_ready)), None)

        if cu.is_being_deleted(s):
            return {}
        monotonic = not su.allows_burst(s)

        async def process_replica(i: int) -> bool:
            return await self._process_replica(s, update_set, current_set, cur_name, upd_name, monotonic,
                                               replicas, i, current_replicas)

        await _run_for_all(len(replicas), process_replica, monotonic)

        async def fix_claims(i: int) -> bool:
            await self._fix_claims(update_set, condemned[i])
            return False

        await _run_for_all(len(condemned), fix_claims, monotonic)

        async def process_condemned(i: int) -> bool:
            return await self._process_condemned(s, first_unavailable, monotonic, condemned[i], min_ready)

        await _run_for_all(len(condemned), process_condemned, monotonic)

        if su.strategy_type(s) == su.ON_DELETE:
            return {}
        return await self._rolling_update(s, replicas, upd_name, min_ready)

    async def _process_replica(self, s: dict, update_set: dict, current_set: dict, cur_name: str, upd_name: str,
                               monotonic: bool, replicas: list[dict], i: int, current_replicas: int) -> bool:
        """One in-range ordinal; True stops the pass (OrderedReady)."""
        pod = replicas[i]
        name = pod["metadata"]["name"]
        if su.is_failed(pod) or su.is_succeeded(pod):
            if not su.is_terminating(pod):
                if su.is_failed(pod):
                    self.recorder.event(s, "Warning", "RecreatingFailedPod",
                                        f"StatefulSet {_nsname(s)} is recreating failed Pod {name}")
                else:
                    self.recorder.event(s, "Normal", "RecreatingTerminatedPod",
                                        f"StatefulSet {_nsname(s)} is recreating terminated Pod {name}")
                await self._delete_pod(s, pod)
            # Recreated once the old one is gone (the name is taken until then).
            replicas[i] = pod = su.new_versioned_pod(current_set, update_set, cur_name, upd_name,
                                                     su.ordinal(pod), current_replicas)
        if not su.is_created(pod):
            if self._claims_stale(s, pod):
                return True  # an earlier pod's claims are still being collected
            await self._create_pod(s, pod)
            return monotonic
        if su.is_pending(pod):
            # Claims deleted under a pending pod (e.g. by hand) are made again.
            await self._create_claims(s, pod)
        if monotonic and (su.is_terminating(pod) or not su.is_running_and_ready(pod)
                          or not su.is_running_and_available(pod, su.min_ready_seconds(s))):
            return True
        await self._fix_claims(update_set, pod)
        if not su.identity_matches(s, pod):
            await self._fix_identity(s, pod)
        if not su.storage_matches(s, pod):
            # Pod volumes are immutable; at least make sure the claims exist.
            await self._create_claims(s, pod)
        return False

    async def _process_condemned(self, s: dict, first_unavailable: dict | None, monotonic: bool, pod: dict,
                                 min_ready: int) -> bool:
        if su.is_terminating(pod):
            return monotonic  # OrderedReady waits for it to be gone
        if monotonic and pod is not first_unavailable and (
                not su.is_running_and_ready(pod) or not su.is_running_and_available(pod, min_ready)):
            return True  # scale down only while everything else is healthy
        await self._delete_pod(s, pod)
        return True

    async def _rolling_update(self, s: dict, replicas: list[dict], upd_name: str, min_ready: int
                              ) -> dict[str, Any]:
        """Delete pods not at the update revision, highest ordinal first, down to the
        partition: one at a time (waiting for the one above to be available), or up to
        maxUnavailable at once."""
        update_min = su.partition(s)
        max_unavailable = su.max_unavailable(s)
        deleted = 0
        if max_unavailable is None:
            for target in range(len(replicas) - 1, update_min - 1, -1):
                pod = replicas[target]
                if su.pod_revision(pod) != upd_name and not su.is_terminating(pod) and su.is_created(pod):
                    await self._delete_pod(s, pod)
                    return {"deletedForUpdate": 1}
                if su.is_unavailable(pod, min_ready):
                    return {}
            return {}
        unavailable = sum(1 for p in replicas if su.is_unavailable(p, min_ready))
        budget = max_unavailable - unavailable
        for target in range(len(replicas) - 1, update_min - 1, -1):
            if deleted >= budget:
                break
            pod = replicas[target]
            if su.pod_revision(pod) != upd_name and not su.is_terminating(pod) and su.is_created(pod):
                await self._delete_pod(s, pod)
                deleted += 1
        return {"deletedForUpdate": deleted}

    # -- pod and claim writes -------------------------------------------------------------------

    def _claims_stale(self, s: dict, pod: dict) -> bool:
        if su.retention_policy(s)[1] == su.RETAIN:
            return False  # kept claims are meant to be reused
        for claim in su.claims_for(s, su.ordinal(pod)).values():
            existing = self.pvc_lister.get(claim["metadata"]["name"], claim["metadata"]["namespace"])
            if existing is not None and su.has_stale_owner_ref(existing, pod):
                return True
        return False

    async def _create_claims(self, s: dict, pod: dict) -> None:
        errors: list[Exception] = []
        for claim in su.claims_for(s, su.ordinal(pod)).values():
            cmeta = claim["metadata"]
            existing = self.pvc_lister.get(cmeta["name"], cmeta["namespace"])
            if existing is not None:
                if cu.is_being_deleted(existing):
                    errors.append(RuntimeError(f"pvc {cmeta['name']} is being deleted"))
                continue
            try:
                await self.client.create("v1", "persistentvolumeclaims", claim, cmeta["namespace"])
            except ApiException as e:
                if e.status == 409 and e.reason == "AlreadyExists":
                    continue  # our cache lags; it exists
                self.recorder.event(s, "Warning", "FailedCreate",
                                    f"create Claim {cmeta['name']} for Pod {pod['metadata']['name']} in "
                                    f"StatefulSet {s['metadata']['name']} failed error: {e.message or e}")
                errors.append(e)
                continue
            self.recorder.event(s, "Normal", "SuccessfulCreate",
                                f"create Claim {cmeta['name']} Pod {pod['metadata']['name']} in "
                                f"StatefulSet {s['metadata']['name']} success")
        if errors:
            raise errors[0]

    async def _create_pod(self, s: dict, pod: dict) -> None:
        """``CreateStatefulPod``: claims first, then the pod, then claim ownership."""
        name, sname = pod["metadata"]["name"], s["metadata"]["name"]
        try:
            await self._create_claims(s, pod)
        except Exception as e:
            self.recorder.event(s, "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {sname} failed error: {e}")
            raise
        try:
            created = await self.client.create("v1", "pods", pod, s["metadata"]["namespace"])
        except ApiException as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                if self.pod_lister.get(name, s["metadata"]["namespace"]) is None:
                    # Our cache lags: stop this pass; the pod's watch events bring us back.
                    raise _Stop() from e
                # The previous pod of that name is still going (or a foreign one squats
                # the name): retry with backoff, without an event (as upstream).
                raise
            self.recorder.event(s, "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {sname} failed error: {e.message or e}")
            raise
        self.recorder.event(s, "Normal", "SuccessfulCreate", f"create Pod {name} in StatefulSet {sname} successful")
        await self._fix_claims(s, created)

    async def _delete_pod(self, s: dict, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            # The uid precondition keeps a stale cache from deleting a same-named successor.
            await self.client.delete("v1", "pods", meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid")})
        except ApiException as e:
            if e.status in (404, 409):
                return
            self.recorder.event(s, "Warning", "FailedDelete",
                                f"delete Pod {meta['name']} in StatefulSet {s['metadata']['name']} failed "
                                f"error: {e.message or e}")
            raise
        self.recorder.event(s, "Normal", "SuccessfulDelete",
                            f"delete Pod {meta['name']} in StatefulSet {s['metadata']['name']} successful")

    async def _fix_identity(self, s: dict, pod: dict) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"labels": su.identity_labels(pod), "uid": meta.get("uid")}}
        try:
            await self.client.patch("v1", "pods", meta["name"], patch, namespace=meta["namespace"],
                                    patch_type="strategic")
        except ApiException as e:
            if e.status not in (404, 409):
                raise
            return
        self.recorder.event(s, "Normal", "SuccessfulUpdate",
                            f"update Pod {meta['name']} in StatefulSet {s['metadata']['name']} successful")

    async def _fix_claims(self, s: dict, pod: dict) -> None:
        """Bring the pod's claims' ownerReferences in line with the retention policy."""
        if not (s.get("spec") or {}).get("volumeClaimTemplates") or not pod["metadata"].get("uid"):
            return
        for claim in su.claims_for(s, su.ordinal(pod)).values():
            cmeta = claim["metadata"]
            existing = self.pvc_lister.get(cmeta["name"], cmeta["namespace"])
            if existing is None:
                continue  # picked up on a later pass
            refs = su.wanted_claim_owner_refs(existing, s, pod)
            if refs is None:
                continue
            body = {"metadata": {"ownerReferences": refs,
                                 "resourceVersion": existing["metadata"].get("resourceVersion")}}
            try:
                # Merge patch replaces the whole list; resourceVersion guards concurrent edits.
                await self.client.patch("v1", "persistentvolumeclaims", cmeta["name"], body,
                                        namespace=cmeta["namespace"])
            except ApiException as e:
                if e.status not in (404, 409):
                    raise

    # -- status -----------------------------------------------------------------------------

    async def _update_status(self, s: dict, status: dict[str, Any]) -> None:
        cur = s
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            if not su.inconsistent_status(cur, status):
                return
            body = copy.deepcopy(cur)
            body["status"] = {**(cur.get("status") or {}), **status}
            try:
                await self.client.update(API_VERSION, "statefulsets", body, cur["metadata"]["namespace"],
                                         sub="status")
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status != 409 or attempt == STATUS_UPDATE_RETRIES:
                    raise
            cur = await self.client.get(API_VERSION, "statefulsets", s["metadata"]["name"],
                                        s["metadata"]["namespace"])


async def _run_for_all(n: int, fn: Callable[[int], Awaitable[bool]], monotonic: bool) -> None:
    """``runForAll``: in order, stopping (raising :class:`_Stop`) at the first ``fn`` that
    asks to; or, in burst mode, all in slow-start batches, raising the first error."""
    if monotonic:
        for i in range(n):
            if await fn(i):
                raise _Stop()
        return
    it = iter(range(n))

    async def one() -> None:
        await fn(next(it))

    _, err = await cu.slow_start_batch(n, cu.SLOW_START_INITIAL_BATCH_SIZE, one)
    if err is not None:
        raise err


def _nsname(s: dict) -> str:
    return f"{s['metadata'].get('namespace', '')}/{s['metadata'].get('name', '')}"


__all__ = ["StatefulSetController"]
