"""Deployment controller (Kubernetes' ``pkg/controller/deployment``).

A Deployment owns ReplicaSets named ``<deployment>-<pod-template-hash>``; the
one whose template equals the Deployment's is the *new* RS, all others are
*old*.  Each sync (informer → work queue → :meth:`DeploymentController.sync`)
reads the Deployment and its ReplicaSets from the informer caches and moves
one step:

* paused, or only ``replicas`` changed → resize proportionally, no rollout;
* ``RollingUpdate`` → grow the new RS within ``maxSurge``, shrink old ones
  within ``maxUnavailable``;
* ``Recreate`` → old RSes to 0, wait for their pods to be gone, then the new RS.

The revision annotations, the status counts and the Available/Progressing
conditions follow Kubernetes exactly, so ``kubectl rollout status|undo|pause|
resume|restart|history`` work unchanged.  Rollback needs nothing special:
kubectl writes the old template back, the old RS then *is* the new RS and gets
the next revision.  All writes carry the cached resourceVersion: a stale cache
earns a 409 and a retry, never a wrong step.  The rollout arithmetic lives in
:mod:`.deployment_util`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ..api.selectors import SelectorError, from_label_selector_object, matches_labels
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from . import deployment_util as du
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION = "apps/v1"
KIND = "Deployment"
RS_KIND = "ReplicaSet"
GROUP = "apps"
WORKERS = 5
# Integer status fields Kubernetes omits when zero (omitempty).
_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")


class CollisionError(Exception):
    """A ReplicaSet with the computed name exists but is not ours: collisionCount was bumped."""


class DeploymentController(QueueController):
    """Informers on deployments, replicasets and pods → queue of ``ns/name`` → :meth:`sync`."""

    owner_kind, owner_group = KIND, GROUP

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS):
        super().__init__(client, factory, recorder, component="deployment-controller", queue="deployment",
                         workers=workers)
        self.d_informer = self.informer(API_VERSION, "deployments")
        self.rs_informer = self.informer(API_VERSION, "replicasets")
        self.pod_informer = self.informer("v1", "pods")
        self.d_lister, self.rs_lister = self.d_informer.lister, self.rs_informer.lister
        self.pod_lister = self.pod_informer.lister
        self.owner_lister = self.d_lister
        self.d_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                          on_delete=self.enqueue)
        self.rs_informer.add_event_handler(on_add=self._rs_added, on_update=self._rs_updated,
                                           on_delete=self.enqueue_owner)
        self.pod_informer.add_event_handler(on_delete=self._pod_deleted)

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    # -- event handlers (quick: they only enqueue) ----------------------------------------

    def _rs_added(self, rs: dict) -> None:
        if cu.is_being_deleted(rs):
            self.enqueue_owner(rs)
            return
        self.enqueue_owners_of_added(rs)  # an orphan: any Deployment selecting it may adopt it

    def _rs_updated(self, old: dict, cur: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (cur.get("metadata") or {}).get("resourceVersion"):
            return
        self.enqueue_owners_of_updated(old, cur)

    def _pod_deleted(self, pod: dict) -> None:
        # Recreate waits for the old pods to be gone: their deletion is its cue.
        ns = (pod.get("metadata") or {}).get("namespace", "")
        rs = cu.resolve_controller_ref(cu.controller_ref(pod), ns, RS_KIND, GROUP, self.rs_lister.get)
        if rs is None:
            return
        d = self.owner_of(rs)
        if d is not None and not du.is_rolling_update(d):
            self.enqueue(d)

    # -- sync -----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Reconcile one Deployment ("ns/name"); raises on API errors (the worker retries)."""
        namespace, name = split_key(key)
        cached = self.d_lister.get(name, namespace)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        d.setdefault("apiVersion", API_VERSION)
        d["kind"] = KIND
        d.setdefault("status", {})
        selector = (d.get("spec") or {}).get("selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            if int(d["status"].get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                await self._write_status(d, {**d["status"], "observedGeneration": d["metadata"]["generation"]})
            return
        try:
            rs_list = await self._claim_replica_sets(d)
        except SelectorError as e:
            log.error("deployment %s has an invalid selector: %s", key, e)
            return  # retrying cannot help; an update of the object enqueues it again
        if cu.is_being_deleted(d):
            new_rs, old = await self._get_all(d, rs_list, create=False)
            await self._sync_status(d, [*old, new_rs], new_rs)
            return
        await self._check_paused_conditions(d)
        if d["spec"].get("paused"):
            await self._sync_scale(d, rs_list)
            return
        if await self._is_scaling_event(d, rs_list):
            await self._sync_scale(d, rs_list)
            return
        if du.is_rolling_update(d):
            await self._rollout_rolling(d, rs_list)
        else:
            await self._rollout_recreate(d, rs_list)

    # -- owning ReplicaSets ------------------------------------------------------------------

    async def _claim_replica_sets(self, d: dict) -> list[dict]:
        """Our ReplicaSets (``ReplicaSetControllerRefManager.ClaimReplicaSets``): owned and
        matching ones, plus matching orphans adopted; owned ones no longer matching released."""
        meta = d["metadata"]
        sel = from_label_selector_object(d["spec"]["selector"])
        uid = meta.get("uid", "")
        can_adopt: bool | None = None
        out: list[dict] = []
        for rs in self.rs_lister.list(meta["namespace"]):
            rmeta = rs["metadata"]
            matches = matches_labels(sel, rmeta.get("labels"))
            ref = cu.controller_ref(rs)
            try:
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue
                    if matches:
                        out.append(rs)
                    elif not cu.is_being_deleted(d):
                        await self.client.patch(API_VERSION, "replicasets", rmeta["name"],
                                                cu.release_patch(uid, rmeta["uid"]), meta["namespace"],
                                                patch_type="strategic")
                    continue
                if not matches or cu.is_being_deleted(d) or cu.is_being_deleted(rs):
                    continue
                if can_adopt is None:
                    can_adopt = await cu.can_adopt(self.client, d, API_VERSION, "deployments")
                if can_adopt:
                    out.append(await self.client.patch(
                        API_VERSION, "replicasets", rmeta["name"],
                        cu.adopt_patch(cu.new_controller_ref(d, API_VERSION, KIND), rmeta["uid"]),
                        meta["namespace"], patch_type="strategic"))
            except ApiException as e:
                if e.status not in (404, 409, 422):
                    raise
        return out

    async def _get_all(self, d: dict, rs_list: list[dict], create: bool) -> tuple[dict | None, list[dict]]:
        """(new RS, old RSes), syncing the new RS's revision (and creating it if asked)."""
        existing = du.find_new_replica_set(d, rs_list)
        old = [rs for rs in rs_list if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_rs = await self._get_new_rs(d, rs_list, old, existing, create)
        return new_rs, old

    async def _get_new_rs(self, d: dict, rs_list: list[dict], old: list[dict], existing: dict | None,
                          create: bool) -> dict | None:
        new_revision = du.max_revision(old) + 1
        ns = d["metadata"]["namespace"]
        min_ready = int(d["spec"].get("minReadySeconds") or 0)
        if existing is not None:
            anns = du.new_rs_annotations(d, du.annotations(existing), new_revision, exists=True)
            if anns != du.annotations(existing) or int(existing["spec"].get("minReadySeconds") or 0) != min_ready:
                # Also the rollback path: an old template came back, so its RS gets the newest revision.
                body = copy.deepcopy(existing)
                body["metadata"]["annotations"] = anns
                body["spec"]["minReadySeconds"] = min_ready
                existing = await self.client.update(API_VERSION, "replicasets", body, ns)
            await self._set_revision(d, du.annotations(existing).get(du.REVISION, ""))
            if du.has_progress_deadline(d) and du.get_condition(d["status"], du.PROGRESSING) is None:
                name = existing["metadata"]["name"]
                status = copy.deepcopy(d["status"])
                du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.FOUND_NEW_RS,
                                                          f'Found new replica set "{name}"'))
                await self._write_status(d, status)
            return existing
        if not create:
            return None
        collisions = d["status"].get("collisionCount")
        pod_hash = du.compute_hash(d["spec"]["template"], collisions)
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[du.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[du.HASH_LABEL] = pod_hash
        rs: dict[str, Any] = {
            "apiVersion": API_VERSION, "kind": RS_KIND,
            "metadata": {"name": f"{d['metadata']['name']}-{pod_hash}", "namespace": ns,
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [cu.new_controller_ref(d, API_VERSION, KIND)]},
            "spec": {"replicas": 0, "minReadySeconds": min_ready, "selector": selector, "template": template},
        }
        replicas = du.new_rs_new_replicas(d, [*old, rs], rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["annotations"] = du.new_rs_annotations(d, {}, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create(API_VERSION, "replicasets", rs, ns)
        except ApiException as e:
            if e.status != 409:
                raise
            found = await self.client.get(API_VERSION, "replicasets", rs["metadata"]["name"], ns)
            if cu.is_controlled_by(found, d) and du.equal_ignore_hash(found["spec"].get("template"),
                                                                        d["spec"]["template"]):
                created, already_exists = found, True  # ours; the cache just had not seen it yet
            else:
                # A foreign RS holds the name: perturb the hash and try again.
                await self._write_status(d, {**d["status"], "collisionCount": int(collisions or 0) + 1})
                raise CollisionError(f"replica set {rs['metadata']['name']} exists and is not ours") from e
        name = created["metadata"]["name"]
        if not already_exists and replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas} from 0")
        await self._set_revision(d, str(new_revision))
        if not already_exists and du.has_progress_deadline(d):
            status = copy.deepcopy(d["status"])
            du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_CREATED,
                                                      f'Created new replica set "{name}"'))
            await self._write_status(d, status)
        return created

    async def _set_revision(self, d: dict, rev: str) -> None:
        """Put ``rev`` on the Deployment's revision annotation.  Kubernetes writes it with
        the status; our /status ignores metadata, so it is a metadata patch here."""
        if not rev or du.annotations(d).get(du.REVISION) == rev:
            return
        meta = d["metadata"]
        updated = await self.client.patch(API_VERSION, "deployments", meta["name"],
                                          {"metadata": {"annotations": {du.REVISION: rev},
                                                        "resourceVersion": meta["resourceVersion"]}},
                                          meta["namespace"])
        d["metadata"] = updated["metadata"]

    # -- scaling ---------------------------------------------------------------------------

    async def _scale_rs(self, rs: dict, size: int, d: dict) -> tuple[bool, dict]:
        """Set ``rs`` to ``size`` replicas (and its replica annotations); records the event.
        Returns (size changed, the RS as now stored)."""
        current = du.spec_replicas(rs)
        size_changed = current != size
        if not size_changed and not du.replicas_annotations_need_update(rs, d):
            return False, rs
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = size
        body["metadata"]["annotations"] = {**du.annotations(rs), **du.replicas_annotations(d)}
        updated = await self.client.update(API_VERSION, "replicasets", body, rs["metadata"]["namespace"])
        if size_changed:
            op = "up" if size > current else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {rs['metadata']['name']} to {size} from {current}")
        return size_changed, updated

    async def _sync_scale(self, d: dict, rs_list: list[dict]) -> None:
        """Paused or only resized: scale proportionally, no rollout step (``dc.sync``)."""
        new_rs, old = await self._get_all(d, rs_list, create=False)
        sizes = du.proportional_sizes(d, new_rs, old)
        by_name = {rs["metadata"]["name"]: rs for rs in [*old, *([new_rs] if new_rs else [])]}
        for name, size in sizes.items():
            _, updated = await self._scale_rs(by_name[name], size, d)
            by_name[name] = updated
        new_rs = by_name[new_rs["metadata"]["name"]] if new_rs else None
        old = [by_name[rs["metadata"]["name"]] for rs in old]
        if d["spec"].get("paused"):
            await self._cleanup(d, old)
        await self._sync_status(d, [*old, new_rs], new_rs)

    async def _is_scaling_event(self, d: dict, rs_list: list[dict]) -> bool:
        """Active ReplicaSets annotated with another desired size: only replicas changed."""
        new_rs, old = await self._get_all(d, rs_list, create=False)
        for rs in du.active([new_rs, *old]):
            desired = du.annotations(rs).get(du.DESIRED_REPLICAS)
            if desired is not None and desired.isdigit() and int(desired) != du.spec_replicas(d):
                return True
        return False

    async def _check_paused_conditions(self, d: dict) -> None:
        if not du.has_progress_deadline(d):
            return
        cond = du.get_condition(d["status"], du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return  # a timed-out rollout keeps saying so
        paused_shown = cond is not None and cond.get("reason") == du.PAUSED
        status = copy.deepcopy(d["status"])
        if d["spec"].get("paused") and not paused_shown:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED, "Deployment is paused"))
        elif not d["spec"].get("paused") and paused_shown:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED,
                                                      "Deployment is resumed"))
        else:
            return
        await self._write_status(d, status)

    # -- strategies ------------------------------------------------------------------------

    async def _rollout_rolling(self, d: dict, rs_list: list[dict]) -> None:
        new_rs, old = await self._get_all(d, rs_list, create=True)
        assert new_rs is not None
        all_rses = [*old, new_rs]
        # Scale up first: surge capacity comes before taking anything away.
        want = du.spec_replicas(d)
        if du.spec_replicas(new_rs) != want:
            target = want if du.spec_replicas(new_rs) > want else du.new_rs_new_replicas(d, all_rses, new_rs)
            scaled, new_rs = await self._scale_rs(new_rs, target, d)
            all_rses = [*old, new_rs]
            if scaled:
                await self._sync_rollout_status(d, all_rses, new_rs)
                return
        sizes = du.old_rs_scale_down(d, all_rses, old, new_rs)
        if sizes:
            by_name = {rs["metadata"]["name"]: rs for rs in old}
            for name, size in sizes.items():
                _, by_name[name] = await self._scale_rs(by_name[name], size, d)
            old = [by_name[rs["metadata"]["name"]] for rs in old]
            await self._sync_rollout_status(d, [*old, new_rs], new_rs)
            return
        if du.deployment_complete(d, d["status"]):
            await self._cleanup(d, old)
        await self._sync_rollout_status(d, all_rses, new_rs)

    async def _rollout_recreate(self, d: dict, rs_list: list[dict]) -> None:
        new_rs, old = await self._get_all(d, rs_list, create=False)
        scaled_down = False
        fresh_old = []
        for rs in old:
            if du.spec_replicas(rs) > 0:
                scaled, rs = await self._scale_rs(rs, 0, d)
                scaled_down = scaled_down or scaled
            fresh_old.append(rs)
        old = fresh_old
        if scaled_down:
            await self._sync_rollout_status(d, [*old, new_rs], new_rs)
            return
        if self._old_pods_running(old):
            # No new pod may start before every old one is gone.
            await self._sync_rollout_status(d, [*old, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old = await self._get_all(d, rs_list, create=True)
            assert new_rs is not None
        _, new_rs = await self._scale_rs(new_rs, du.spec_replicas(d), d)
        if du.deployment_complete(d, d["status"]):
            await self._cleanup(d, old)
        await self._sync_rollout_status(d, [*old, new_rs], new_rs)

    def _old_pods_running(self, old: list[dict]) -> bool:
        if du.total_status(old, "replicas") > 0:
            return True
        uids = {rs["metadata"]["uid"] for rs in old}
        for rs in old:
            ns = rs["metadata"]["namespace"]
            for pod in self.pod_lister.list(ns):
                ref = cu.controller_ref(pod)
                if ref is None or ref.get("uid") not in uids:
                    continue
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                return True
            break  # all old RSes share the namespace: one pass is enough
        return False

    async def _cleanup(self, d: dict, old: list[dict]) -> None:
        """Delete old ReplicaSets beyond revisionHistoryLimit (only empty ones)."""
        for rs in du.history_to_delete(d, old):
            meta = rs["metadata"]
            try:
                await self.client.delete(API_VERSION, "replicasets", meta["name"], meta["namespace"],
                                         preconditions={"uid": meta["uid"]})
            except ApiException as e:
                if e.status not in (404, 409):
                    raise

    # -- status ----------------------------------------------------------------------------

    async def _sync_status(self, d: dict, all_rses: list[dict | None], new_rs: dict | None) -> None:
        rses = [rs for rs in all_rses if rs is not None]
        await self._write_status(d, du.calculate_status(d, rses, new_rs))

    async def _sync_rollout_status(self, d: dict, all_rses: list[dict | None], new_rs: dict | None) -> None:
        rses = [rs for rs in all_rses if rs is not None]
        before = copy.deepcopy(d)
        status = du.rollout_status(d, rses, new_rs)
        await self._write_status(d, status)
        # A stalled rollout gets no more events: come back when its deadline passes.
        after = du.seconds_until_deadline(before, status)
        if after is not None:
            self.enqueue(d, after=after)

    async def _write_status(self, d: dict, status: dict) -> None:
        """PUT ``status`` to /status unless it equals what is stored; ``d`` follows."""
        clean = _normalize(status)
        if clean == _normalize(d.get("status") or {}):
            return
        body = {**d, "status": clean}
        try:
            updated = await self.client.update(API_VERSION, "deployments", body, d["metadata"]["namespace"],
                                               sub="status")
        except ApiException as e:
            if e.status == 404:
                return
            raise  # 409: our cache was stale; the retry reads the newer object
        d["metadata"] = updated["metadata"]
        d["status"] = updated.get("status") or clean


def _normalize(status: dict) -> dict:
    out = {k: v for k, v in status.items() if v not in (None, [], {})}
    for k in _COUNTS:
        if not out.get(k):
            out.pop(k, None)  # Kubernetes omits zero counts
    return out


__all__ = ["CollisionError", "DeploymentController"]
