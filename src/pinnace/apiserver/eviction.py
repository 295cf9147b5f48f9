"""The ``pods/eviction`` subresource (Kubernetes' ``registry/core/pod/storage/eviction.go``).

``POST /api/v1/namespaces/{ns}/pods/{name}/eviction`` with a policy/v1 (or
v1beta1) ``Eviction`` deletes the pod if its PodDisruptionBudget allows it:

* a pod that is Pending, Succeeded, Failed or already terminating is deleted
  with no budget check (its disruption has already happened);
* more than one matching PDB → 500 (unsupported, as upstream);
* the PDB's ``disruptionsAllowed`` 0 → 429 TooManyRequests with a
  ``DisruptionBudget`` cause (``kubectl drain`` retries on that);
* otherwise ``disruptionsAllowed`` is decremented and the pod entered in
  ``status.disruptedPods`` with a resourceVersion-guarded status write,
  retried on conflict, so two concurrent evictions cannot both spend the last
  disruption;
* an unready pod is deleted without spending the budget when the application
  is already healthy enough (``IfHealthyBudget``, the default) or always
  (``AlwaysAllow``), guarded by the pod's resourceVersion so it cannot become
  ready in between.

Before deleting, the pod gets a ``DisruptionTarget`` condition (reason
``EvictionByEvictionAPI``).  The deletion honours the eviction's
``deleteOptions`` (grace period, preconditions, propagation) and ``dryRun``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from ..controllers.disruption import pdb_selects, update_disruption_allowed_condition
from . import errors
from .registry import DeleteOptions, ListOptions, Registry, RequestContext, now_rfc3339

log = logging.getLogger(__name__)

EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")
# Upstream's EvictionsRetry: up to 20 attempts on write conflicts.
CONFLICT_RETRIES = 20
# More approved-but-unobserved evictions than this means the controller is not keeping up.
MAX_DISRUPTED_POD_SIZE = 2000
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
TOO_MANY_REQUESTS_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


class _StatusError(errors.ApiError):
    """An error Status whose reason may be empty (then omitted, as Go's omitempty does)."""

    def status(self) -> dict[str, Any]:
        out = super().status()
        if not out.get("reason"):
            out.pop("reason", None)
        return out


def too_many_requests(causes_message: str, retry_after: int = 0) -> errors.ApiError:
    details: dict[str, Any] = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": causes_message}]}
    headers = {}
    if retry_after > 0:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return errors.ApiError(429, "TooManyRequests", TOO_MANY_REQUESTS_MESSAGE, details, headers)


def still_processing(pdb_name: str) -> errors.ApiError:
    return too_many_requests(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


def success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# -- request decoding -----------------------------------------------------------------------


def parse_eviction(body: Any, namespace: str, name: str, ctx: RequestContext) -> tuple[DeleteOptions, bool]:
    """The delete options and dry-run flag of an Eviction body (400 when it is not one)."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an Eviction object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", "Eviction"):
        raise errors.bad_request(f'not a Eviction object: kind "{kind}"')
    if api_version not in (None, "", *EVICTION_VERSIONS):
        raise errors.bad_request(f"the API version in the data ({api_version}) is not an Eviction version "
                                 f"(policy/v1, policy/v1beta1)")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
    if meta.get("name", "") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    raw = body.get("deleteOptions") or {}
    if not isinstance(raw, dict):
        raise errors.bad_request("deleteOptions must be an object")
    grace = raw.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("deleteOptions.gracePeriodSeconds must be an integer")
    policy = raw.get("propagationPolicy")
    orphan = raw.get("orphanDependents")
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                                 '"Foreground", "Background", "Orphan"')
    body_dry = list(raw.get("dryRun") or [])
    for d in body_dry:
        if d != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
    query_dry = ["All"] if ctx.dry_run else []
    if body_dry and query_dry and body_dry != query_dry:
        raise errors.bad_request(f"Non-matching dry-run options in request and content: {query_dry} and {body_dry}")
    pre = raw.get("preconditions") or {}
    preconditions = {k: str(pre[k]) for k in ("uid", "resourceVersion") if pre.get(k)}
    opts = DeleteOptions(grace, policy, preconditions, None if orphan is None else bool(orphan))
    return opts, bool(body_dry or query_dry)


# -- the eviction -------------------------------------------------------------------------------


def _can_ignore_pdb(pod: dict) -> bool:
    """A pod that is not running, or already going, disrupts nothing more by being evicted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _should_enforce_resource_version(pod: dict) -> bool:
    # A Pending pod may start (and become ready) between our read and the delete.
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _with_rv(opts: DeleteOptions, rv: str) -> DeleteOptions:
    return DeleteOptions(opts.grace_period_seconds, opts.propagation_policy,
                         {**opts.preconditions, "resourceVersion": rv}, opts.orphan_dependents)


class Evictor:
    """Runs one eviction against the generic store."""

    def __init__(self, registry: Registry):
        self.registry = registry
        pods = registry.resources.get("", "v1", "pods")
        pdbs = registry.resources.get("policy", "v1", "poddisruptionbudgets")
        assert pods is not None and pdbs is not None
        self.pods, self.pdbs = pods, pdbs

    async def evict(self, namespace: str, name: str, body: Any, ctx: RequestContext) -> dict[str, Any]:
        opts, dry_run = parse_eviction(body, namespace, name, ctx)
        dctx = RequestContext(user=ctx.user, groups=ctx.groups, dry_run=dry_run, field_manager=ctx.field_manager,
                              field_validation=ctx.field_validation, warnings=ctx.warnings)
        rv_given = bool(opts.preconditions.get("resourceVersion"))

        # 1. Pods whose budget does not matter are deleted at once (retried on conflicts,
        #    unless the client made the resourceVersion a precondition).
        pod: dict = {}
        pod_rev = 0
        for attempt in range(CONFLICT_RETRIES):
            pod, pod_rev = await self.registry.read(self.pods, namespace, name)
            if not _can_ignore_pdb(pod):
                break
            delete_opts = opts
            if _should_enforce_resource_version(pod) and not rv_given:
                delete_opts = _with_rv(opts, str(pod_rev))
            try:
                await self._add_condition_and_delete(namespace, name, delete_opts, dctx)
            except errors.ApiError as e:
                if e.code == 409 and not rv_given and attempt < CONFLICT_RETRIES - 1:
                    continue
                raise
            return success()

        # 2. The budget.
        pdbs = await self._pdbs_for(pod)
        if len(pdbs) > 1:
            raise _StatusError(500, "", "This pod has more than one PodDisruptionBudget, which the eviction "
                                        "subresource does not support.")
        pdb_name = ""
        unhealthy_ok = False
        if pdbs:
            pdb = pdbs[0]
            pdb_name = pdb["metadata"]["name"]
            spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
            if not _is_ready(pod):
                # An unready pod does not count as healthy: deleting it costs the budget nothing
                # if the application is healthy enough anyway (or the policy says always).
                if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
                    unhealthy_ok = True
                elif (status.get("currentHealthy") or 0) >= (status.get("desiredHealthy") or 0) > 0:
                    unhealthy_ok = True
            if not unhealthy_ok:
                await self._check_and_decrement(namespace, name, pdb_name, dry_run, dctx)

        # 3. The deletion.
        delete_opts = _with_rv(opts, str(pod_rev)) if unhealthy_ok else opts
        try:
            await self._add_condition_and_delete(namespace, name, delete_opts, dctx)
        except errors.ApiError as e:
            if e.code == 409 and unhealthy_ok and not rv_given:
                # The pod changed (perhaps became ready) since we looked: let the client retry.
                raise still_processing(pdb_name) from None
            raise
        return success()

    async def _pdbs_for(self, pod: dict) -> list[dict]:
        ns = pod["metadata"].get("namespace", "")
        listed = await self.registry.list(self.pdbs, ns, ListOptions())
        return [o.obj for o in listed.items if pdb_selects(o.obj, pod)]

    async def _check_and_decrement(self, namespace: str, pod_name: str, pdb_name: str, dry_run: bool,
                                   ctx: RequestContext) -> None:
        """Spend one disruption of the PDB, or raise 429 if none is left."""
        for _ in range(CONFLICT_RETRIES):
            pdb, rev = await self.registry.read(self.pdbs, namespace, pdb_name)
            meta, status = pdb["metadata"], dict(pdb.get("status") or {})
            allowed = status.get("disruptionsAllowed") or 0
            if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
                raise still_processing(pdb_name)
            if allowed < 0:
                raise errors.forbidden("poddisruptionbudget", "policy", pdb_name,
                                       "pdb disruptions allowed is negative")
            if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
                raise errors.forbidden("poddisruptionbudget", "policy", pdb_name,
                                       "DisruptedPods map too big - too many evictions not confirmed by PDB "
                                       "controller")
            if allowed == 0:
                raise too_many_requests(
                    f"The disruption budget {pdb_name} needs {status.get('desiredHealthy') or 0} healthy pods "
                    f"and has {status.get('currentHealthy') or 0} currently")
            status["disruptionsAllowed"] = allowed - 1
            if status["disruptionsAllowed"] == 0:
                update_disruption_allowed_condition(status, dt.datetime.now(dt.UTC))
            if dry_run:
                return
            # Tell the controller this pod is about to go, so it stops counting it as healthy
            # before the deletion shows up.
            status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now_rfc3339()}
            pdb["status"] = status
            meta["resourceVersion"] = str(rev)
            try:
                await self.registry.update(self.pdbs, namespace, pdb_name, pdb, ctx, "status")
                return
            except errors.ApiError as e:
                if e.code != 409:
                    raise
                log.debug("eviction of %s/%s: PDB %s changed, retrying", namespace, pod_name, pdb_name)
        raise errors.ApiError(504, "Timeout",
                              f'Timeout: couldn\'t update PodDisruptionBudget "{pdb_name}" due to conflicts',
                              {"retryAfterSeconds": 10}, {"Retry-After": "10"})

    async def _add_condition_and_delete(self, namespace: str, name: str, opts: DeleteOptions,
                                        ctx: RequestContext) -> None:
        if not ctx.dry_run:
            new_rev = await self._add_disruption_condition(namespace, name, opts, ctx)
            if opts.preconditions.get("resourceVersion"):
                # Our own condition write moved the resourceVersion the caller checked.
                opts = _with_rv(opts, new_rev)
        await self.registry.delete(self.pods, namespace, name, opts, ctx)

    async def _add_disruption_condition(self, namespace: str, name: str, opts: DeleteOptions,
                                        ctx: RequestContext) -> str:
        """Mark the pod DisruptionTarget (EvictionByEvictionAPI); returns its new resourceVersion.
        The preconditions are checked against the latest pod on every attempt."""
        for _ in range(CONFLICT_RETRIES):
            pod, rev = await self.registry.read(self.pods, namespace, name)
            uid, rv = opts.preconditions.get("uid"), opts.preconditions.get("resourceVersion")
            if uid and uid != pod["metadata"].get("uid"):
                raise errors.conflict("Pod", "", name, f"the UID in the precondition ({uid}) does not match the "
                                      f"UID in record ({pod['metadata'].get('uid')}). The object might have been "
                                      "deleted and then recreated")
            if rv and rv != str(rev):
                raise errors.conflict("Pod", "", name, f"the ResourceVersion in the precondition ({rv}) does not "
                                      f"match the ResourceVersion in record ({rev}). The object might have been "
                                      "modified")
            status = pod.setdefault("status", {})
            conds = list(status.get("conditions") or [])
            old = next((c for c in conds if c.get("type") == "DisruptionTarget"), None)
            new = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                   "message": "Eviction API: evicting", "lastProbeTime": None,
                   "lastTransitionTime": old.get("lastTransitionTime") if old and old.get("status") == "True"
                   else now_rfc3339()}
            status["conditions"] = [new if c is old else c for c in conds] if old else [*conds, new]
            pod["metadata"]["resourceVersion"] = str(rev)
            try:
                updated, _ = await self.registry.update(self.pods, namespace, name, pod, ctx, "status")
            except errors.ApiError as e:
                if e.code == 409:
                    continue  # another writer: re-read, re-check the preconditions, retry
                raise
            return str(updated["metadata"].get("resourceVersion", rev))
        raise errors.conflict("pods", "", name, "the object has been modified; please apply your changes to the "
                              "latest version and try again")


async def evict(registry: Registry, namespace: str, name: str, body: Any, ctx: RequestContext) -> dict[str, Any]:
    """Evict pod ``namespace/name``; returns the success Status (raises ApiError otherwise)."""
    return await Evictor(registry).evict(namespace, name, body, ctx)
