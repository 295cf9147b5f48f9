"""OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3``, one document per
group-version) built from the real Kubernetes schemas, so ``kubectl explain``,
kubectl's field-validation check and client-side tooling work.

The schemas come in JSON-schema form (:mod:`pinnace.api.schema`); this module
rewrites them into OpenAPI's dialect (single ``type``, ``#/definitions`` or
``#/components/schemas`` references) and adds the paths of every served
resource with the ``x-kubernetes-*`` extensions clients look for.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from ..api import schema
from ..api.resources import ResourceRegistry, ResourceType

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
COMMON_DEFS = [META + n for n in ("Status", "DeleteOptions", "WatchEvent", "Patch", "APIResourceList")]


def _convert(node: Any, ref_base: str) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "$ref":
                out["$ref"] = ref_base + v.rsplit("/", 1)[-1]
            elif k == "type" and isinstance(v, list):
                types = [t for t in v if t != "null"]
                if len(types) == 1:
                    out["type"] = types[0]
                elif types:
                    out["type"] = types[0]
            elif k == "properties" and isinstance(v, dict):
                out[k] = {name: _convert(p, ref_base) for name, p in v.items()}
            else:
                out[k] = _convert(v, ref_base)
        return out
    if isinstance(node, list):
        return [_convert(v, ref_base) for v in node]
    return node


def _definition(name: str, ref_base: str) -> dict[str, Any]:
    if name == INT_OR_STRING:
        return {"type": "string", "format": "int-or-string"}
    if name == QUANTITY:
        return {"type": "string", "description": "Quantity is a fixed-point representation of a number."}
    return _convert(schema.definitions()[name], ref_base)


def _referenced(roots: list[str]) -> list[str]:
    """The definitions reachable from ``roots`` through ``$ref``."""
    defs = schema.definitions()
    seen: set[str] = set()
    stack = [r for r in roots if r in defs]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                stack.append(ref.rsplit("/", 1)[-1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        walk(defs[name])
    return sorted(seen)


# -- paths ---------------------------------------------------------------------------

_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request "
                       "containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    "force": "Force is going to \"force\" Apply requests.",
    "labelSelector": "A selector to restrict the list of returned objects by their labels.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields.",
    "limit": "limit is a maximum number of responses to return for a list call.",
    "continue": "The continue option should be set when retrieving more results from the server.",
    "resourceVersion": "resourceVersion sets a constraint on what resource versions a request may be served from.",
    "watch": "Watch for changes to the described resources.",
}


def _param(name: str, v3: bool, location: str = "query", required: bool = False) -> dict[str, Any]:
    typ = "boolean" if name in ("force", "watch") else "integer" if name == "limit" else "string"
    p: dict[str, Any] = {"name": name, "in": location, "uniqueItems": True}
    if name in _QUERY:
        p["description"] = _QUERY[name]
    if required:
        p["required"] = True
    if v3:
        p["schema"] = {"type": typ, "uniqueItems": True}
    else:
        p["type"] = typ
    return p


def _op(t: ResourceType, action: str, op_id: str, response: str, params: list[str], v3: bool,
        ref_base: str, sub: str = "") -> dict[str, Any]:
    ref = {"$ref": ref_base + response} if response else {"type": "object"}
    resp = {"description": "OK"}
    if v3:
        resp["content"] = {"application/json": {"schema": ref}}
    else:
        resp["schema"] = ref
    op: dict[str, Any] = {
        "operationId": op_id,
        "parameters": [_param(p, v3) for p in params],
        "responses": {"200": resp, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
        "tags": [t.group.replace(".", "_") + "_" + t.version if t.group else "core_" + t.version],
    }
    if action in ("put", "patch", "post"):
        if v3:
            op["requestBody"] = {"content": {"application/json": {"schema": ref}}, "required": True}
        else:
            op["parameters"].insert(0, {"name": "body", "in": "body", "required": True, "schema": ref})
    if action == "patch":
        kinds = ["application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
        if v3:
            op["requestBody"] = {"content": {k: {"schema": {"$ref": ref_base + META + "Patch"}} for k in kinds},
                                 "required": True}
        else:
            op["consumes"] = kinds
    return op


def _paths(t: ResourceType, v3: bool, ref_base: str) -> dict[str, Any]:
    root = f"/apis/{t.group}/{t.version}" if t.group else f"/api/{t.version}"
    coll = f"{root}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{root}/{t.plural}"
    item = coll + "/{name}"
    camel = (t.group.split(".")[0].capitalize() if t.group else "Core") + t.version.capitalize()
    defn = t.definition or ""
    list_def = schema.definition_for(t.group, t.version, t.list_kind) or ""
    scope = "Namespaced" if t.namespaced else ""
    write = ["dryRun", "fieldManager", "fieldValidation"]
    out: dict[str, Any] = {}
    ops: dict[str, Any] = {}
    if "list" in t.verbs:
        ops["get"] = _op(t, "list", f"list{camel}{scope}{t.kind}", list_def,
                         ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"], v3,
                         ref_base)
    if "create" in t.verbs:
        ops["post"] = _op(t, "post", f"create{camel}{scope}{t.kind}", defn, write, v3, ref_base)
    if "deletecollection" in t.verbs:
        ops["delete"] = _op(t, "deletecollection", f"deleteCollection{camel}{scope}{t.kind}", META + "Status",
                            ["labelSelector", "fieldSelector", "dryRun"], v3, ref_base)
    if ops:
        out[coll] = ops
    ops = {}
    if "get" in t.verbs:
        ops["get"] = _op(t, "get", f"read{camel}{scope}{t.kind}", defn, [], v3, ref_base)
    if "update" in t.verbs:
        ops["put"] = _op(t, "put", f"replace{camel}{scope}{t.kind}", defn, write, v3, ref_base)
    if "patch" in t.verbs:
        ops["patch"] = _op(t, "patch", f"patch{camel}{scope}{t.kind}", defn, [*write, "force"], v3, ref_base)
    if "delete" in t.verbs:
        ops["delete"] = _op(t, "delete", f"delete{camel}{scope}{t.kind}", META + "Status", ["dryRun"], v3,
                            ref_base)
    if ops:
        out[item] = ops
    if t.namespaced and "list" in t.verbs:
        out[f"{root}/{t.plural}"] = {"get": _op(t, "list", f"list{camel}{t.kind}ForAllNamespaces", list_def,
                                                ["labelSelector", "fieldSelector", "limit", "continue",
                                                 "resourceVersion", "watch"], v3, ref_base)}
    if "status" in t.subresources:
        out[item + "/status"] = {
            "get": _op(t, "get", f"read{camel}{scope}{t.kind}Status", defn, [], v3, ref_base),
            "put": _op(t, "put", f"replace{camel}{scope}{t.kind}Status", defn, write, v3, ref_base),
            "patch": _op(t, "patch", f"patch{camel}{scope}{t.kind}Status", defn, [*write, "force"], v3, ref_base),
        }
    return out


def _path_params(paths: dict[str, Any], v3: bool) -> None:
    for path, ops in paths.items():
        params = [_param(n, v3, "path", True) for n in ("name", "namespace") if "{" + n + "}" in path]
        for op in ops.values():
            op["parameters"] = [p for p in op["parameters"] if p.get("in") != "path"]
        ops["parameters"] = params


# -- documents -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _v2(generation: int, resources: ResourceRegistry) -> bytes:
    ref_base = "#/definitions/"
    paths: dict[str, Any] = {}
    for t in resources.all():
        paths.update(_paths(t, False, ref_base))
    _path_params(paths, False)
    defs = {name: _definition(name, ref_base) for name in schema.definitions()}
    doc = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }
    return orjson.dumps(doc)


def openapi_v2(resources: ResourceRegistry) -> bytes:
    return _v2(resources.generation, resources)


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.lru_cache(maxsize=128)
def _v3_doc(generation: int, resources: ResourceRegistry, group: str, version: str) -> bytes:
    ref_base = "#/components/schemas/"
    types = resources.in_group_version(group, version)
    paths: dict[str, Any] = {}
    roots = list(COMMON_DEFS)
    for t in types:
        paths.update(_paths(t, True, ref_base))
        if t.definition:
            roots.append(t.definition)
        list_def = schema.definition_for(t.group, t.version, t.list_kind)
        if list_def:
            roots.append(list_def)
    _path_params(paths, True)
    schemas = {name: _definition(name, ref_base) for name in _referenced(roots)}
    for t in types:  # custom resources carry their own schema
        if t.extra.get("openapi"):
            schemas[t.extra["openapi_name"]] = t.extra["openapi"]
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                            "name": "authorization", "in": "header"}}},
    }
    return orjson.dumps(doc)


def openapi_v3_doc(resources: ResourceRegistry, path: str) -> bytes | None:
    """The document for ``api/v1`` or ``apis/<group>/<version>``."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    if not resources.in_group_version(group, version):
        return None
    return _v3_doc(resources.generation, resources, group, version)


def openapi_v3_index(resources: ResourceRegistry) -> dict[str, Any]:
    paths = {}
    for group, versions in resources.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            # The hash only has to change when the document does: it is built
            # from the resource table's generation, without building the document.
            seed = f"{schema.KUBERNETES_VERSION}/{resources.generation}/{gv}/{id(resources)}"
            digest = hashlib.sha512(seed.encode()).hexdigest()[:64].upper()
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}
