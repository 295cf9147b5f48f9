"""The generic REST store: create, get, list, update, patch and delete for every kind.

One implementation serves all resources (Kubernetes' ``registry/generic``);
what differs per kind comes from its :class:`~.strategies.Strategy`.  The
write path is: decode → admission (mutating) → defaulting → strategy →
validation → managed fields → storage.  Reads of lists come from the watch
cache; single gets and paginated lists read storage.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..api import apply as ssa
from ..api import defaults, patch, validation
from ..api.resources import ResourceRegistry, ResourceType
from ..api.selectors import (
    LabelSelector,
    SelectorError,
    field_matcher,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from ..storage.base import Compacted, FutureRevision, KeyExists, KeyNotFound, RevisionMismatch, Store
from . import errors
from .admission import Admission, ClusterConfig
from .strategies import Strategy, strategy_for
from .watchcache import CachedObject, WatchCache, decode

CONFLICT_MESSAGE = "the object has been modified; please apply your changes to the latest version and try again"
PATCH_RETRIES = 5


_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps (whole seconds, UTC).
    Formatted once per second: writes ask for it several times each."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp[1]


@dataclass
class RequestContext:
    user: str = ""
    groups: tuple[str, ...] = ()
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class ListResult:
    items: list[CachedObject]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions: dict[str, str] = field(default_factory=dict)
    # Only an explicit orphanDependents=false makes a pending deletion answer 202.
    orphan_dependents: bool | None = None


def encode_for_storage(obj: dict) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


def with_revision(obj: dict, revision: int) -> dict:
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


class Registry:
    def __init__(self, store: Store, cache: WatchCache, resources: ResourceRegistry,
                 config: ClusterConfig | None = None):
        self.store = store
        self.cache = cache
        self.resources = resources
        self.admission = Admission(self, config)
        self._strategies: dict[tuple[str, str, str], Strategy] = {}

    def strategy(self, rtype: ResourceType) -> Strategy:
        key = (rtype.group, rtype.version, rtype.plural)
        s = self._strategies.get(key)
        if s is None or s.rtype is not rtype:
            s = self._strategies[key] = strategy_for(rtype)
        return s

    # -- reads -------------------------------------------------------------------

    async def read(self, rtype: ResourceType, namespace: str, name: str) -> tuple[dict, int]:
        """The current object (a private copy) and its revision, from storage."""
        kv = await self.store.get(rtype.key(namespace, name))
        if kv is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        obj = decode(kv).obj
        return self.strategy(rtype).to_version(obj, rtype.api_version), kv.mod_revision

    async def get(self, rtype: ResourceType, namespace: str, name: str, resource_version: str = "") -> dict:
        if resource_version == "0":
            cached = self.cache.get(rtype.key(namespace, name))
            if cached is None:
                raise errors.not_found(rtype.plural, rtype.group, name)
            return self.strategy(rtype).to_version(cached.obj, rtype.api_version)
        obj, _ = await self.read(rtype, namespace, name)
        return obj

    def matcher(self, rtype: ResourceType, namespace: str, label_selector: str, field_selector: str):
        """A predicate on objects for selectors (400 on a bad selector)."""
        try:
            labels: LabelSelector = parse_label_selector(label_selector)
            fields = field_matcher(parse_field_selector(field_selector), self.strategy(rtype).field_getters)
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None
        ns_filter = namespace if rtype.namespaced else ""

        def match(obj: dict) -> bool:
            meta = obj.get("metadata") or {}
            if ns_filter and meta.get("namespace") != ns_filter:
                return False
            return (not labels or matches_labels(labels, meta.get("labels"))) and fields(obj)

        return match

    async def list(self, rtype: ResourceType, namespace: str, opts: ListOptions) -> ListResult:
        match = self.matcher(rtype, namespace, opts.label_selector, opts.field_selector)
        prefix = rtype.namespace_prefix(namespace)
        if opts.limit <= 0 and not opts.continue_token:
            return await self._list_from_cache(rtype, prefix, match, opts)
        return await self._list_from_store(rtype, prefix, match, opts)

    async def _list_from_cache(self, rtype: ResourceType, prefix: str, match, opts: ListOptions) -> ListResult:
        rv = opts.resource_version
        if rv not in ("", "0"):
            try:
                wanted = int(rv)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv!r}") from None
            if opts.resource_version_match == "Exact":
                return await self._list_from_store(rtype, prefix, match, opts)
            if not await self.cache.wait_until(wanted):
                raise errors.ApiError(
                    504, "Timeout", f"Too large resource version: {wanted}, current: {self.cache.revision}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1},
                )
        elif rv == "":
            await self.cache.wait_fresh()
        return ListResult(self.cache.list(rtype.storage_prefix, prefix, match), self.cache.revision)

    async def _list_from_store(self, rtype: ResourceType, prefix: str, match, opts: ListOptions) -> ListResult:
        start_after, revision = "", 0
        if opts.continue_token:
            start_after, revision = self._decode_continue(opts.continue_token, prefix)
        elif opts.resource_version not in ("", "0"):
            try:
                revision = int(opts.resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {opts.resource_version!r}") from None
        limit = opts.limit if opts.limit > 0 else 0
        items: list[CachedObject] = []
        more = False
        try:
            # With selectors a page may match fewer than `limit`: keep reading.
            while True:
                page = await self.store.range(prefix, start_after=start_after, limit=limit, revision=revision)
                revision = page.revision
                consumed = 0
                for kv in page.kvs:
                    if limit and len(items) == limit:
                        break
                    consumed += 1
                    start_after = kv.key
                    obj = decode(kv)
                    if match(obj.obj):
                        items.append(obj)
                if limit and len(items) == limit:
                    more = consumed < len(page.kvs) or page.more
                    break
                if not page.more:
                    break
        except Compacted:
            raise errors.gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            ) from None
        except FutureRevision as e:
            raise errors.ApiError(504, "Timeout", f"Too large resource version: {e.requested}, current: {e.current}",
                                  {"retryAfterSeconds": 1}) from None
        token, remaining = "", None
        if more:
            token = self._encode_continue(start_after, prefix, revision)
            if not opts.label_selector and not opts.field_selector:
                rest = await self.store.range(prefix, start_after=start_after, revision=revision)
                remaining = len(rest.kvs)
        return ListResult(items, revision, token, remaining)

    @staticmethod
    def _encode_continue(last_key: str, prefix: str, revision: int) -> str:
        body = {"v": "meta.k8s.io/v1", "rv": revision, "start": last_key[len(prefix):] + "\x00"}
        return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str, prefix: str) -> tuple[str, int]:
        try:
            body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            start, rv = body["start"], int(body["rv"])
        except Exception:
            raise errors.bad_request("continue key is not valid: malformed continue token") from None
        if not start.endswith("\x00") or "/.." in start:
            raise errors.bad_request("continue key is not valid: malformed start key")
        return prefix + start[:-1], rv

    # -- writes --------------------------------------------------------------------

    def _check_identity(self, rtype: ResourceType, obj: Any, namespace: str, name: str | None) -> dict:
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be an object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rtype.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        if api_version and api_version != rtype.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version})"
            )
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        elif meta.get("namespace"):
            meta.pop("namespace")
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
        return meta

    def _validate(self, rtype: ResourceType, obj: dict, old: dict | None, ctx: RequestContext) -> None:
        strategy = self.strategy(rtype)
        meta = obj["metadata"]
        problems = validation.validate_object_meta(meta, rtype.namespaced, strategy.name_rule)
        unknown: list[str] = []
        if rtype.definition:
            schema_errors, unknown = validation.compile_schema(rtype.definition)(obj)
            problems += schema_errors
        elif rtype.extra.get("validator"):
            schema_errors, unknown = rtype.extra["validator"](obj)
            problems += schema_errors
        if not problems:
            problems += validation.validate_kind(rtype.group, rtype.kind, obj, old)
        if unknown and ctx.field_validation == "Strict":
            fields = ", ".join(f'unknown field "{u.lstrip(".")}"' for u in unknown)
            raise errors.bad_request(f"{rtype.kind} in version \"{rtype.version}\" cannot be handled as a "
                                     f"{rtype.kind}: strict decoding error: {fields}")
        if unknown and ctx.field_validation == "Warn":
            ctx.warnings.extend(f'unknown field "{u.lstrip(".")}"' for u in unknown)
        for path in unknown:  # Kubernetes drops what its schema does not know
            prune_field(obj, path)
        if problems:
            causes = [{"reason": p.type, "message": p.message, "field": p.field} for p in problems]
            raise errors.invalid(rtype.kind, rtype.group, meta.get("name") or meta.get("generateName", ""), causes)

    def _manager(self, ctx: RequestContext) -> str:
        return ctx.field_manager or "unknown"

    async def create(
        self, rtype: ResourceType, namespace: str, obj: Any, ctx: RequestContext,
        applied_fields: list | None = None,
    ) -> dict:
        """POST.  ``applied_fields``: the managedFields of a server-side apply that creates."""
        meta = self._check_identity(rtype, obj, namespace, None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = generate_name(meta["generateName"])
            else:
                raise errors.invalid(rtype.kind, rtype.group, "", [
                    {"reason": "FieldValueRequired", "message": "Required value: name or generateName is required",
                     "field": "metadata.name"}])
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if "spec" in obj or rtype.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
            meta["generation"] = 1
        strategy = self.strategy(rtype)
        defaults.apply_defaults(rtype.group, rtype.kind, obj)
        strategy.prepare_create(obj)
        await self.admission.mutate(rtype, obj, None, ctx)
        self._validate(rtype, obj, None, ctx)
        if applied_fields is not None:
            meta["managedFields"] = applied_fields
        else:
            ssa.track_update(None, obj, self._manager(ctx), rtype.definition, now_rfc3339())
        await self.admission.validate(rtype, obj, None, ctx)
        if ctx.dry_run:
            return obj
        try:
            rev = await self.store.create(rtype.key(namespace, meta["name"]), encode_for_storage(obj))
        except KeyExists:
            await self.admission.rollback(rtype, obj, None)
            raise errors.already_exists(rtype.plural, rtype.group, meta["name"]) from None
        return with_revision(obj, rev)

    async def update(
        self, rtype: ResourceType, namespace: str, name: str, obj: Any, ctx: RequestContext, subresource: str = ""
    ) -> tuple[dict, bool]:
        """PUT.  Returns (object, created)."""
        self._check_identity(rtype, obj, namespace, name)
        try:
            old, rev = await self.read(rtype, namespace, name)
        except errors.ApiError as e:
            if e.code == 404 and self.strategy(rtype).allow_create_on_update and not subresource:
                return await self.create(rtype, namespace, obj, ctx), True
            raise
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != str(rev):
            raise errors.conflict(rtype.plural, rtype.group, name, CONFLICT_MESSAGE)
        return await self._write_update(rtype, namespace, name, obj, old, rev, ctx, subresource), False

    async def _write_update(
        self, rtype: ResourceType, namespace: str, name: str, obj: dict, old: dict, rev: int,
        ctx: RequestContext, subresource: str,
    ) -> dict:
        strategy = self.strategy(rtype)
        old_meta, meta = old["metadata"], obj["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise errors.conflict(rtype.plural, rtype.group, name,
                                  f"Precondition failed: UID in precondition: {meta['uid']}, "
                                  f"UID in object meta: {old_meta.get('uid')}")
        if subresource == "status":
            obj = strategy.prepare_status_update(obj, old)
            meta = obj["metadata"] = dict(old_meta)
        else:
            # System-owned metadata cannot be changed by a client.
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            meta.pop("selfLink", None)
            defaults.apply_defaults(rtype.group, rtype.kind, obj)
            strategy.prepare_update(obj, old)
            if "generation" in old_meta and strategy.generation_changed(obj, old):
                meta["generation"] = old_meta["generation"] + 1
        await self.admission.mutate(rtype, obj, old, ctx)
        self._validate(rtype, obj, old, ctx)
        if "managedFields" not in meta and old_meta.get("managedFields"):
            meta["managedFields"] = old_meta["managedFields"]
        ssa.track_update(old, obj, self._manager(ctx), rtype.definition, now_rfc3339(), subresource)
        await self.admission.validate(rtype, obj, old, ctx)

        if (meta.get("deletionTimestamp") and not meta.get("finalizers") and _finalized(rtype, obj)
                and not meta.get("deletionGracePeriodSeconds")):
            # The last finalizer is gone and no grace period runs (a pod's kubelet
            # ends that with its own delete): the pending deletion completes now.
            if ctx.dry_run:
                return obj
            return await self._remove(rtype, namespace, name, rev, obj)
        meta["resourceVersion"] = str(rev)
        if _same_object(obj, old):
            return old  # a no-op write changes nothing and bumps no revision
        if ctx.dry_run:
            return obj
        try:
            new_rev = await self.store.update(rtype.key(namespace, name), encode_for_storage(obj), rev)
        except RevisionMismatch:
            raise errors.conflict(rtype.plural, rtype.group, name, CONFLICT_MESSAGE) from None
        except KeyNotFound:
            raise errors.not_found(rtype.plural, rtype.group, name) from None
        await self.admission.after_update(rtype, obj, old)
        return with_revision(obj, new_rev)

    async def patch(
        self, rtype: ResourceType, namespace: str, name: str, patch_type: str, body: Any, ctx: RequestContext,
        subresource: str = "", force: bool = False,
    ) -> tuple[dict, bool]:
        """PATCH with any of the four patch types; retried on write conflicts."""
        for attempt in range(PATCH_RETRIES):
            try:
                old, rev = await self.read(rtype, namespace, name)
            except errors.ApiError as e:
                if e.code == 404 and patch_type == "apply" and not subresource:
                    return await self._apply_create(rtype, namespace, name, body, ctx, force), True
                raise
            new = self.apply_patch(rtype, old, patch_type, body, ctx, force, subresource)
            self._check_identity(rtype, new, namespace, name)
            wanted = new["metadata"].get("resourceVersion")
            if wanted and wanted != str(rev):
                raise errors.conflict(rtype.plural, rtype.group, name, CONFLICT_MESSAGE)
            try:
                return await self._write_update(rtype, namespace, name, new, old, rev, ctx, subresource), False
            except errors.ApiError as e:
                # Another writer slipped in: patches are re-applied to the new state,
                # unless the patch made the resourceVersion a precondition.
                if (e.code == 409 and e.reason == "Conflict" and attempt < PATCH_RETRIES - 1
                        and not _sets_resource_version(patch_type, body)):
                    continue
                raise
        raise AssertionError("unreachable")

    def apply_patch(
        self, rtype: ResourceType, old: dict, patch_type: str, body: Any, ctx: RequestContext, force: bool,
        subresource: str,
    ) -> dict:
        # Patches see the whole stored object, resourceVersion included: a patch that
        # sets it makes it a precondition (kubectl's managed-fields migration does).
        base = copy.deepcopy(old)
        try:
            if patch_type == "json":
                if not isinstance(body, list):
                    raise errors.bad_request("json patch must be a list of operations")
                return patch.json_patch(base, body)
            if not isinstance(body, dict):
                raise errors.bad_request("patch body must be an object")
            if patch_type == "merge":
                return patch.merge_patch(base, body)
            if patch_type == "strategic":
                if rtype.definition is None:
                    raise errors.ApiError(
                        415, "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use a json or merge patch")
                return patch.strategic_merge_patch(base, body, rtype.definition)
            if patch_type == "apply":
                self._check_apply_body(rtype, body)
                return ssa.apply(base, body, self._manager(ctx), rtype.definition, force, now_rfc3339(),
                                 subresource)
        except (patch.PatchError, ssa.ApplyInvalid) as e:
            raise errors.ApiError(422, "Invalid", str(e)) from None
        except ssa.ApplyConflict as e:
            status = e.status()
            raise errors.ApiError(409, "Conflict", status["message"], status.get("details")) from None
        raise errors.ApiError(415, "UnsupportedMediaType", f"unknown patch type {patch_type!r}")

    def _check_apply_body(self, rtype: ResourceType, body: dict) -> None:
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")

    async def _apply_create(
        self, rtype: ResourceType, namespace: str, name: str, body: Any, ctx: RequestContext, force: bool
    ) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request("patch body must be an object")
        self._check_apply_body(rtype, body)
        self._check_identity(rtype, copy.deepcopy(body), namespace, name)
        try:
            obj = ssa.apply(None, body, self._manager(ctx), rtype.definition, force, now_rfc3339())
        except ssa.ApplyInvalid as e:
            raise errors.ApiError(422, "Invalid", str(e)) from None
        obj["metadata"]["name"] = name
        return await self.create(rtype, namespace, obj, ctx, obj["metadata"].pop("managedFields", None) or [])

    # -- delete --------------------------------------------------------------------

    async def delete(
        self, rtype: ResourceType, namespace: str, name: str, opts: DeleteOptions, ctx: RequestContext
    ) -> tuple[dict, bool]:
        """Returns (object, deleted_now).  Objects with finalizers or a grace period
        get a deletionTimestamp and stay until those are done."""
        for _ in range(PATCH_RETRIES):
            obj, rev = await self.read(rtype, namespace, name)
            meta = obj["metadata"]
            pre = opts.preconditions
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(rtype.plural, rtype.group, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != str(rev):
                raise errors.conflict(rtype.plural, rtype.group, name,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: {rev}")
            await self.admission.before_delete(rtype, obj, ctx)
            finalizers = list(meta.get("finalizers") or [])
            policy = opts.propagation_policy
            if policy is not None:
                # A policy replaces an earlier one (Kubernetes' deletionFinalizersForGarbageCollection):
                # Background leaves neither garbage-collector finalizer.
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
                if policy == "Orphan":
                    finalizers.append("orphan")
                elif policy == "Foreground":
                    finalizers.append("foregroundDeletion")
            grace = self.strategy(rtype).grace_period(obj, opts.grace_period_seconds)
            pending = bool(finalizers) or not _finalized(rtype, obj) or grace > 0
            if not pending:
                if ctx.dry_run:
                    return obj, True
                try:
                    return await self._remove(rtype, namespace, name, rev, obj), True
                except errors.ApiError as e:
                    if e.code == 409:
                        continue
                    raise
            # Graceful or finalizer-blocked deletion: mark it and let its owners finish.
            changed = False
            if not meta.get("deletionTimestamp"):
                when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
                meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["deletionGracePeriodSeconds"] = grace
                changed = True
            elif grace < (meta.get("deletionGracePeriodSeconds") or 0):
                # A shorter grace period on a second delete brings the deadline forward.
                when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
                meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["deletionGracePeriodSeconds"] = grace
                changed = True
            if finalizers != list(meta.get("finalizers") or []):
                meta["finalizers"] = finalizers
                changed = True
            if rtype.plural == "namespaces" and (obj.get("status") or {}).get("phase") != "Terminating":
                obj.setdefault("status", {})["phase"] = "Terminating"
                changed = True
            if rtype.plural == "pods" and grace == 0 and not finalizers:
                # Force deletion (grace 0) of a running pod removes it at once.
                if ctx.dry_run:
                    return obj, True
                return await self._remove(rtype, namespace, name, rev, obj), True
            if not changed or ctx.dry_run:
                return obj, False
            try:
                new_rev = await self.store.update(rtype.key(namespace, name), encode_for_storage(obj), rev)
            except (RevisionMismatch, KeyNotFound):
                continue
            return with_revision(obj, new_rev), False
        raise errors.conflict(rtype.plural, rtype.group, name, CONFLICT_MESSAGE)

    async def _remove(self, rtype: ResourceType, namespace: str, name: str, rev: int, obj: dict) -> dict:
        try:
            new_rev, _ = await self.store.delete(rtype.key(namespace, name), rev)
        except RevisionMismatch:
            raise errors.conflict(rtype.plural, rtype.group, name, CONFLICT_MESSAGE) from None
        except KeyNotFound:
            raise errors.not_found(rtype.plural, rtype.group, name) from None
        await self.admission.after_delete(rtype, obj)
        return with_revision(obj, new_rev)

    async def delete_collection(
        self, rtype: ResourceType, namespace: str, list_opts: ListOptions, opts: DeleteOptions,
        ctx: RequestContext,
    ) -> tuple[list[dict], int]:
        listed = await self.list(rtype, namespace, list_opts)
        out = []
        for item in listed.items:
            meta = item.obj["metadata"]
            try:
                obj, _ = await self.delete(rtype, meta.get("namespace", ""), meta["name"], opts, ctx)
            except errors.ApiError as e:
                if e.code == 404:
                    continue
                raise
            out.append(obj)
        return out, listed.revision


def _sets_resource_version(patch_type: str, body: Any) -> bool:
    if patch_type == "json":
        return any(isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body)
    return isinstance(body, dict) and "resourceVersion" in (body.get("metadata") or {})


def _finalized(rtype: ResourceType, obj: dict) -> bool:
    """Namespaces also wait for their spec.finalizers (the namespace controller's)."""
    if rtype.plural == "namespaces":
        return not (obj.get("spec") or {}).get("finalizers")
    return True


def _same_object(new: dict, old: dict) -> bool:
    def strip(o: dict) -> dict:
        meta = {k: v for k, v in o["metadata"].items() if k not in ("managedFields", "resourceVersion")}
        return {**o, "metadata": meta}

    return strip(new) == strip(old)


_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def prune_field(obj: Any, path: str) -> None:
    """Remove the field at ``.spec.containers[0].bogus`` from ``obj``, if there."""
    parts = [(m.group(1), m.group(2)) for m in _PATH_PART.finditer(path)]
    cur = obj
    for i, (key, index) in enumerate(parts):
        last = i == len(parts) - 1
        if key is not None:
            if not isinstance(cur, dict) or key not in cur:
                return
            if last:
                del cur[key]
                return
            cur = cur[key]
        else:
            idx = int(index)
            if not isinstance(cur, list) or idx >= len(cur):
                return
            if last:
                del cur[idx]
                return
            cur = cur[idx]


_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(base: str) -> str:
    """``generateName`` plus five random characters, as Kubernetes does."""
    return base[:58] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
