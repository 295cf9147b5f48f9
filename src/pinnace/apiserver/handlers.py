"""HTTP handlers: routing of Kubernetes REST paths onto the generic registry,
content negotiation (JSON, YAML, Table, PartialObjectMetadata) and watch streams."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import platform
import time
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from .. import __version__
from ..api import schema, tables
from ..api.resources import ResourceType
from ..api.selectors import label_selector_string
from ..storage.base import RevisionMismatch
from . import discovery, errors, eviction, openapi, podproxy, reviews
from .authn import USER, Authenticator
from .registry import DeleteOptions, ListOptions, Registry, RequestContext, encode_for_storage, now_rfc3339
from .watchcache import CachedObject, TooOld

log = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": None,
}
DEFAULT_WATCH_TIMEOUT = 1800
BOOKMARK_INTERVAL = 5.0  # seconds between bookmarks on watches that asked for them


@dataclass
class Target:
    rtype: ResourceType
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    legacy_watch: bool = False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = JSON) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, headers={"Content-Type": content_type, **(headers or {})})


def status_success(rtype: ResourceType, obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    details: dict[str, Any] = {"name": meta.get("name", ""), "kind": rtype.plural, "uid": meta.get("uid", "")}
    if rtype.group:
        details["group"] = rtype.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


class ApiHandlers:
    def __init__(self, registry: Registry, server_address: str, version_info: dict[str, Any],
                 authenticator: Authenticator | None = None):
        self.registry = registry
        self.authenticator = authenticator or Authenticator()
        self.resources = registry.resources
        self.server_address = server_address
        self.version_info = version_info
        self.ready = False
        self.bookmark_interval = BOOKMARK_INTERVAL
        self.pod_proxy = podproxy.PodProxy(registry)  # the server replaces it with a configured one

    # -- entry point -------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except errors.ApiError as e:
            return json_response(e.status(), e.code, e.headers)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug: answer 500 with a Status, keep serving
            log.exception("internal error serving %s %s", request.method, request.path)
            err = errors.internal(str(e))
            return json_response(err.status(), 500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        method = request.method
        if not segs:
            return json_response({"paths": sorted(self._root_paths())})
        head = segs[0]
        if head in ("healthz", "livez", "readyz"):
            ok = self.ready or head != "readyz"
            return web.Response(text="ok" if ok else "not ready", status=200 if ok else 503)
        if head == "version" and len(segs) == 1:
            return json_response(self.version_info)
        if head == "openapi":
            return self._openapi(segs, request)
        if head == "api":
            if len(segs) == 1:
                return self._discovery_root(request, legacy=True)
            if len(segs) == 2:
                return self._resource_list("", segs[1])
            return await self._resource(request, method, "", segs[1], segs[2:])
        if head == "apis":
            if len(segs) == 1:
                return self._discovery_root(request, legacy=False)
            if len(segs) == 2:
                doc = discovery.api_group(self.resources, segs[1])
                if doc is None:
                    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
                return json_response(doc)
            if len(segs) == 3:
                return self._resource_list(segs[1], segs[2])
            return await self._resource(request, method, segs[1], segs[2], segs[3:])
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")

    def _root_paths(self) -> list[str]:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi/v2",
                 "/openapi/v3"]
        if self.authenticator.service_accounts is not None:  # OIDC discovery of the token issuer
            paths += ["/.well-known/openid-configuration", "/openid/v1/jwks"]
        for group, versions in self.resources.group_versions().items():
            if group:
                paths.append(f"/apis/{group}")
                paths.extend(f"/apis/{group}/{v}" for v in versions)
        return paths

    # -- discovery and OpenAPI ---------------------------------------------------------

    def _discovery_root(self, request: web.Request, legacy: bool) -> web.Response:
        agg = discovery.wants_aggregated(request.headers.get("Accept", ""))
        if agg:
            ctype = discovery.AGGREGATED_V2 if agg == "v2" else discovery.AGGREGATED_V2BETA1
            return json_response(discovery.aggregated(self.resources, legacy, agg), content_type=ctype)
        if legacy:
            return json_response(discovery.api_versions(self.server_address))
        return json_response(discovery.api_group_list(self.resources))

    def _resource_list(self, group: str, version: str) -> web.Response:
        if not self.resources.in_group_version(group, version):
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(discovery.api_resource_list(self.resources, group, version))

    def _openapi(self, segs: list[str], request: web.Request) -> web.Response:
        if segs == ["openapi", "v2"]:
            from . import openapi_pb  # kubectl <= 1.27 reads /openapi/v2 only as gnostic protobuf

            if openapi_pb.wants_protobuf(request.headers.get("Accept", "")):
                body = openapi_pb.openapi_v2_protobuf(self.resources)
                return json_response(body, content_type=openapi_pb.CONTENT_TYPE)
            if "protobuf" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
                raise errors.ApiError(406, "NotAcceptable", "only application/json is served for /openapi/v2")
            return json_response(openapi.openapi_v2(self.resources))
        if segs == ["openapi", "v3"]:
            return json_response(openapi.openapi_v3_index(self.resources))
        if segs[:2] == ["openapi", "v3"]:
            doc = openapi.openapi_v3_doc(self.resources, "/".join(segs[2:]))
            if doc is not None:
                return json_response(doc, headers={"Cache-Control": "public, immutable"})
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")

    # -- resources -----------------------------------------------------------------------

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        legacy_watch = False
        if rest[0] == "watch":  # the deprecated /watch/ path form
            legacy_watch, rest = True, rest[1:]
        namespace = ""
        if rest and rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype = self.resources.get(group, version, rest[0])
        if rtype is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace and not rtype.namespaced:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (sub and sub not in discovery.served_subresources(rtype)):
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rtype, namespace, name, sub, legacy_watch)

    async def _resource(
        self, request: web.Request, method: str, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        t = self._target(group, version, rest)
        q = request.query
        ctx = self._context(request)
        if not t.name:
            if method == "GET":
                if t.legacy_watch or q.get("watch") in ("true", "1"):
                    return await self._watch(request, t)
                return await self._list(request, t)
            if method == "POST":
                self._require_verb(t, "create")
                if t.rtype.namespaced and not t.namespace:
                    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
                body = await self._body(request)
                if reviews.is_review(t.rtype):
                    return reviews.respond(await reviews.review(t.rtype, t.namespace, body,
                                                                request.get(USER) or {}, self.authenticator))
                if t.rtype.plural == "bindings":
                    return await self._bind(request, t, body, ctx)
                obj = await self.registry.create(t.rtype, t.namespace, body, ctx)
                return self._object_response(request, t, obj, 201, ctx)
            if method == "DELETE":
                self._require_verb(t, "deletecollection")
                opts = await self._delete_options(request)
                items, rev = await self.registry.delete_collection(t.rtype, t.namespace, self._list_options(q),
                                                                   opts, ctx)
                body = {"kind": t.rtype.list_kind, "apiVersion": t.rtype.api_version,
                        "metadata": {"resourceVersion": str(rev)}, "items": items}
                return json_response(body, headers=self._warning_headers(ctx))
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        if t.rtype.namespaced and not t.namespace:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if t.subresource == "scale":
            return await self._scale(request, method, t, ctx)
        if t.subresource == "binding":
            if method != "POST":
                raise errors.method_not_allowed("only POST is allowed on pods/binding")
            return await self._bind(request, t, await self._body(request), ctx)
        if t.subresource == "eviction":
            if method != "POST":
                raise errors.method_not_allowed("only POST is allowed on pods/eviction")
            status = await eviction.evict(self.registry, t.namespace, t.name, await self._body(request), ctx)
            return json_response(status, 201, self._warning_headers(ctx))
        if t.subresource == "token" and t.rtype.plural == "serviceaccounts":
            tokens = self.authenticator.service_accounts
            if tokens is None:  # this server signs no tokens: no TokenRequest API, as upstream
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            if method != "POST":
                raise errors.method_not_allowed("only POST is allowed on serviceaccounts/token")
            out = await tokens.token_request(t.namespace, t.name, await self._body(request), ctx)
            return json_response(out, 201)
        if t.subresource in podproxy.SUBRESOURCES:  # served by the pod's kubelet
            return await self.pod_proxy.serve(request, t.subresource, t.namespace, t.name)
        sub = "status" if t.subresource in ("status", "approval", "finalize") else ""
        if method == "GET":
            if t.legacy_watch or q.get("watch") in ("true", "1"):
                return await self._watch(request, t)
            self._require_verb(t, "get")
            obj = await self.registry.get(t.rtype, t.namespace, t.name, q.get("resourceVersion", ""))
            return self._object_response(request, t, obj, 200, ctx)
        if method == "PUT":
            self._require_verb(t, "update")
            body = await self._body(request)
            if t.subresource == "finalize":
                return await self._finalize(request, t, body, ctx)
            obj, created = await self.registry.update(t.rtype, t.namespace, t.name, body, ctx, sub)
            return self._object_response(request, t, obj, 201 if created else 200, ctx)
        if method == "PATCH":
            self._require_verb(t, "patch")
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None:
                raise errors.unsupported_media_type(ctype)
            body = await self._body(request, yaml_ok=patch_type == "apply")
            if patch_type == "apply" and not q.get("fieldManager"):
                raise errors.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                         "is required for apply patch")
            force = q.get("force") in ("true", "1")
            obj, created = await self.registry.patch(t.rtype, t.namespace, t.name, patch_type, body, ctx, sub,
                                                     force)
            return self._object_response(request, t, obj, 201 if created else 200, ctx)
        if method == "DELETE":
            self._require_verb(t, "delete")
            opts = await self._delete_options(request)
            obj, deleted = await self.registry.delete(t.rtype, t.namespace, t.name, opts, ctx)
            if deleted and t.rtype.plural not in ("pods", "namespaces"):
                return json_response(status_success(t.rtype, obj), headers=self._warning_headers(ctx))
            # Kubernetes answers 200 even when the deletion is still pending (finalizers,
            # a grace period); 202 only when the client set orphanDependents=false.
            pending_cascade = not deleted and opts.orphan_dependents is False
            return self._object_response(request, t, obj, 202 if pending_cascade else 200, ctx)
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")

    def _require_verb(self, t: Target, verb: str) -> None:
        if verb not in t.rtype.verbs:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")

    # -- request decoding --------------------------------------------------------------

    def _context(self, request: web.Request) -> RequestContext:
        q = request.query
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
        validation = q.get("fieldValidation", "Warn") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f'fieldValidation: Unsupported value: "{validation}": supported values: '
                                     '"Ignore", "Strict", "Warn"')
        manager = q.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0][:128]
        user = request.get(USER) or {}
        return RequestContext(user=user.get("name", ""), groups=tuple(user.get("groups", ())),
                              dry_run=bool(dry), field_manager=manager, field_validation=validation)

    async def _body(self, request: web.Request, yaml_ok: bool = True) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise errors.too_large()
        data = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            data.extend(chunk)
            if len(data) > MAX_BODY:
                raise errors.too_large()
        if not data:
            raise errors.bad_request("the request body is empty")
        ctype = request.headers.get("Content-Type", JSON).split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            from ..api import protobuf

            try:
                return protobuf.decode_object(bytes(data))
            except protobuf.ProtobufError as e:
                raise errors.bad_request(f"unable to decode protobuf body: {e}") from None
        if "protobuf" in ctype or "cbor" in ctype:
            raise errors.unsupported_media_type(ctype)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            if "yaml" in ctype and yaml_ok:
                try:
                    return yaml.safe_load(bytes(data))
                except yaml.YAMLError as ye:
                    raise errors.bad_request(f"error converting YAML to JSON: {ye}") from None
            raise errors.bad_request(f"Object 'Kind' is missing in '{data[:200].decode(errors='replace')}': "
                                     f"invalid JSON: {e}") from None

    def _list_options(self, q: Any) -> ListOptions:
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request(f"limit: Invalid value: {q.get('limit')!r}: must be an integer") from None
        return ListOptions(
            label_selector=q.get("labelSelector", ""),
            field_selector=q.get("fieldSelector", ""),
            limit=limit,
            continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""),
        )

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        q = request.query
        body: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    raise errors.bad_request(f"invalid DeleteOptions: {e}") from None
                if not isinstance(body, dict):
                    raise errors.bad_request("DeleteOptions must be an object")
        grace = body.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in q:
            try:
                grace = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
        policy = body.get("propagationPolicy") or q.get("propagationPolicy")
        orphan = body.get("orphanDependents", q.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan in (True, "true") else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                                     '"Foreground", "Background", "Orphan"')
        orphan_flag = None if orphan is None else orphan in (True, "true")
        return DeleteOptions(grace, policy, body.get("preconditions") or {}, orphan_flag)

    # -- response encoding --------------------------------------------------------------

    def _warning_headers(self, ctx: RequestContext) -> dict[str, str]:
        if not ctx.warnings:
            return {}
        return {"Warning": ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in ctx.warnings)}

    def _convert(self, t: Target, obj: dict) -> dict:
        if obj.get("apiVersion") not in (None, t.rtype.api_version):
            return self.registry.strategy(t.rtype).to_version(obj, t.rtype.api_version)
        return obj

    def _object_response(self, request: web.Request, t: Target, obj: dict, status: int,
                         ctx: RequestContext) -> web.Response:
        obj = self._convert(t, obj)
        accept = request.headers.get("Accept", "")
        headers = self._warning_headers(ctx)
        if "as=Table" in accept:
            table = self._table(t.rtype, [obj], str((obj.get("metadata") or {}).get("resourceVersion", "")),
                                request.query.get("includeObject", "Metadata"))
            return json_response(table, status, headers)
        if "as=PartialObjectMetadata" in accept:
            return json_response(partial_metadata(obj), status, headers)
        if _wants_yaml(accept):
            return web.Response(text=yaml.safe_dump(obj, sort_keys=False), status=status,
                                headers={"Content-Type": "application/yaml", **headers})
        return json_response(obj, status, headers)

    def _table(self, rtype: ResourceType, objs: list[dict], rv: str, include: str,
               with_columns: bool = True) -> dict:
        now = dt.datetime.now(dt.UTC)
        rows = []
        for obj in objs:
            row: dict[str, Any] = {"cells": tables.row_cells(rtype.group, rtype.kind, obj, now)}
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = partial_metadata(obj)
            rows.append(row)
        table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
                                 "rows": rows}
        table["columnDefinitions"] = tables.column_definitions(rtype.group, rtype.kind) if with_columns else []
        return table

    async def _list(self, request: web.Request, t: Target) -> web.Response:
        self._require_verb(t, "list")
        opts = self._list_options(request.query)
        result = await self.registry.list(t.rtype, t.namespace, opts)
        accept = request.headers.get("Accept", "")
        meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        if "as=Table" in accept:
            table = self._table(t.rtype, [self._convert(t, o.obj) for o in result.items], str(result.revision),
                                request.query.get("includeObject", "Metadata"))
            table["metadata"].update(meta)
            return json_response(table)
        if "as=PartialObjectMetadataList" in accept:
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": meta, "items": [partial_metadata(o.obj) for o in result.items]})
        head = orjson.dumps({"kind": t.rtype.list_kind, "apiVersion": t.rtype.api_version, "metadata": meta})
        items = b",".join(self._raw(t, o) for o in result.items)
        # Splice the pre-encoded items into the list envelope.
        return web.Response(body=head[:-1] + b',"items":[' + items + b"]}", headers={"Content-Type": JSON})

    def _raw(self, t: Target, o: CachedObject) -> bytes:
        if o.obj.get("apiVersion") not in (None, t.rtype.api_version):
            return orjson.dumps(self._convert(t, o.obj))
        return o.raw

    # -- watch ---------------------------------------------------------------------------

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        self._require_verb(t, "watch")
        q = request.query
        field_selector = q.get("fieldSelector", "")
        if t.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={t.name}"]))
        match = self.registry.matcher(t.rtype, t.namespace, q.get("labelSelector", ""), field_selector)
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise errors.invalid("ListOptions", "meta.k8s.io", "", [{
                "reason": "FieldValueForbidden", "field": "resourceVersionMatch",
                "message": "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"}])
        cache = self.registry.cache
        initial: list[CachedObject] = []
        if rv == "" or (rv == "0" and not send_initial) or send_initial:
            if rv == "":
                await cache.wait_fresh()
            elif rv not in ("", "0"):
                await cache.wait_until(_int_rv(rv))
            initial = cache.list(t.rtype.storage_prefix, t.rtype.namespace_prefix(t.namespace), match)
            from_rev = cache.revision
        else:
            from_rev = _int_rv(rv)
            if from_rev > cache.revision:
                await cache.wait_until(from_rev)
        table = "as=Table" in request.headers.get("Accept", "")
        include = q.get("includeObject", "Metadata")

        resp = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        columns_sent = False

        def encode(kind: str, o: CachedObject | dict) -> bytes:
            nonlocal columns_sent
            if isinstance(o, dict):
                body = orjson.dumps(o)
            elif table:
                obj = self._convert(t, o.obj)
                body = orjson.dumps(self._table(t.rtype, [obj], obj["metadata"].get("resourceVersion", ""),
                                                include, not columns_sent))
                columns_sent = True
            else:
                body = self._raw(t, o)
            return b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n"

        try:
            watcher = cache.watch(t.rtype.storage_prefix, from_rev, match)
        except TooOld as e:
            err = errors.gone(str(e)).status()
            await resp.write(encode("ERROR", err))
            return resp
        try:
            if initial:
                await resp.write(b"".join(encode("ADDED", o) for o in initial))
            if send_initial:
                await resp.write(encode("BOOKMARK", self._bookmark(t, cache.revision, initial_end=True)))
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline, next_bookmark if bookmarks else deadline, now + 1) - now
                try:
                    async with asyncio.timeout(max(wait, 0.01)):  # wait_for can swallow cancellation on 3.11
                        item = await watcher.queue.get()
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if bookmarks and time.monotonic() >= next_bookmark:
                        await resp.write(encode("BOOKMARK", self._bookmark(t, cache.revision)))
                        next_bookmark = time.monotonic() + self.bookmark_interval
                    continue
                if item is None:
                    break
                chunk = [encode(*item)]
                while not watcher.queue.empty() and len(chunk) < 500:
                    nxt = watcher.queue.get_nowait()
                    if nxt is None:
                        watcher.queue.put_nowait(None)
                        break
                    chunk.append(encode(*nxt))
                await resp.write(b"".join(chunk))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            cache.unwatch(watcher)
        return resp

    def _bookmark(self, t: Target, revision: int, initial_end: bool = False) -> dict:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": t.rtype.kind, "apiVersion": t.rtype.api_version, "metadata": meta}

    # -- subresources with their own shapes ------------------------------------------------

    async def _scale(self, request: web.Request, method: str, t: Target, ctx: RequestContext) -> web.Response:
        if method == "GET":
            obj = await self.registry.get(t.rtype, t.namespace, t.name)
            return json_response(to_scale(obj))
        if method == "PUT":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("the request body must be a Scale object")
            replicas = (body.get("spec") or {}).get("replicas")
            rv = (body.get("metadata") or {}).get("resourceVersion", "")
        elif method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None or patch_type == "apply":
                raise errors.unsupported_media_type(ctype)
            current = await self.registry.get(t.rtype, t.namespace, t.name)
            patched = self.registry.apply_patch(t.rtype, to_scale(current), patch_type,
                                                 await self._body(request), ctx, False, "")
            replicas = (patched.get("spec") or {}).get("replicas")
            rv = ""
        else:
            raise errors.method_not_allowed("scale supports GET, PUT and PATCH")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", t.name, [{
                "reason": "FieldValueInvalid", "field": "spec.replicas",
                "message": f"Invalid value: {replicas!r}: must be greater than or equal to 0"}])
        patch = {"spec": {"replicas": replicas}}
        if rv:
            patch["metadata"] = {"resourceVersion": rv}
        obj, _ = await self.registry.patch(t.rtype, t.namespace, t.name, "merge", patch, ctx)
        return json_response(to_scale(obj), headers=self._warning_headers(ctx))

    async def _bind(self, request: web.Request, t: Target, body: Any, ctx: RequestContext) -> web.Response:
        if not isinstance(body, dict) or not (body.get("target") or {}).get("name"):
            raise errors.invalid("Binding", "", "", [{"reason": "FieldValueRequired", "field": "target.name",
                                                      "message": "Required value"}])
        pod_name = t.name or (body.get("metadata") or {}).get("name", "")
        node = body["target"]["name"]
        pods = self.resources.get("", "v1", "pods")
        assert pods is not None
        for _ in range(5):
            pod, rev = await self.registry.read(pods, t.namespace, pod_name)
            spec = pod.setdefault("spec", {})
            if spec.get("nodeName"):
                raise errors.conflict("pods", "", pod_name, f"pod {pod_name} is already assigned to node "
                                                            f'"{spec["nodeName"]}"')
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", "", pod_name, "pod is being deleted, cannot be assigned to a host")
            spec["nodeName"] = node
            conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339()})
            pod.setdefault("status", {})["conditions"] = conds
            for k, v in ((body.get("metadata") or {}).get("annotations") or {}).items():
                pod["metadata"].setdefault("annotations", {})[k] = v
            if ctx.dry_run:
                break
            try:
                await self.registry.store.update(pods.key(t.namespace, pod_name), encode_for_storage(pod), rev)
                break
            except RevisionMismatch:
                continue
        else:
            raise errors.conflict("pods", "", pod_name, "the object has been modified")
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "code": 201}, 201)

    async def _finalize(self, request: web.Request, t: Target, body: Any, ctx: RequestContext) -> web.Response:
        """namespaces/{name}/finalize: only spec.finalizers change."""
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a Namespace")
        current, _ = await self.registry.read(t.rtype, "", t.name)
        current["spec"] = {**(current.get("spec") or {}), "finalizers": (body.get("spec") or {}).get("finalizers")
                           or []}
        obj, _ = await self.registry.update(t.rtype, "", t.name, current, ctx)
        return self._object_response(request, t, obj, 200, ctx)


def to_scale(obj: dict) -> dict:
    meta = obj["metadata"]
    status = obj.get("status") or {}
    selector = (obj.get("spec") or {}).get("selector") or {}
    sel = label_selector_string(selector) if "matchLabels" in selector or "matchExpressions" in selector else \
        ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": sel},
    }


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def _wants_yaml(accept: str) -> bool:
    first = accept.split(",")[0].strip().split(";")[0]
    return first in ("application/yaml", "application/x-yaml")


def _int_rv(rv: str) -> int:
    try:
        return int(rv)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {rv!r}") from None


def version_info() -> dict[str, Any]:
    major, minor, _ = schema.KUBERNETES_VERSION.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{schema.KUBERNETES_VERSION}+pinnace",
        "gitCommit": __version__,
        "gitTreeState": "clean",
        "buildDate": "2026-11-23T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{'amd64' if platform.machine() == 'x86_64' else platform.machine()}",
    }
