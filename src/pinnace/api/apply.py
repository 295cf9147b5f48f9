"""Server-side apply and ``metadata.managedFields`` tracking.

A pure-Python rendering of what the Kubernetes API server does with
structured-merge-diff (SMD) and its field-manager chain:

* ``apply`` merges an applied configuration into the live object (maps merged,
  list-maps merged by key, sets unioned, atomic values replaced), removes what
  the manager applied last time but omits now (unless someone else owns it),
  detects conflicts with other managers and records the manager's ``Apply``
  entry.
* ``track_update`` attributes the fields a create/update/patch changed to the
  writing manager (operation ``Update``) and takes them away from everybody
  else.

Field sets are kept internally as flat Python sets of paths; a path is a tuple
of FieldsV1 path elements (``"f:spec"``, ``'k:{"name":"nginx"}'``, ``'v:"a"'``,
``"i:0"``). A path in the set means its manager owns that node: a leaf, a list
element (``".": {}`` in FieldsV1), or a whole atomic value.

Everything here is pure: inputs are never mutated, except ``track_update``'s
``new`` whose ``metadata.managedFields`` it rewrites by design.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pinnace.api.schema import Schema, definitions, resolve, types_of

Path = tuple[str, ...]
FieldSet = set[Path]

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# Owner of everything an object held before its first apply, if it had no managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"
# Bucket the oldest Update managers are folded into past MAX_UPDATE_MANAGERS.
ANCIENT_CHANGES = "ancient-changes"
MAX_UPDATE_MANAGERS = 10

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# metadata fields never attributed to a manager (Kubernetes' stripMetaManager).
_SYSTEM_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "clusterName",
    }
)
# metadata fields the server owns: an applied configuration never sets them.
_SERVER_META = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)
# Paths that exist in every object and must survive pruning.
_ALWAYS_KEPT: FieldSet = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
}
_STRIPPED: FieldSet = {("f:apiVersion",), ("f:kind",), ("f:metadata",)} | {
    ("f:metadata", "f:" + k) for k in _SYSTEM_META
}


class ApplyInvalid(ValueError):
    """The applied configuration can't be interpreted (missing list keys, duplicates...)."""


class ApplyConflict(Exception):
    """Fields the applier would change are owned by other managers.

    ``conflicts`` is ``[(manager, path string)]``; ``descriptions`` runs
    parallel to it with each manager as Kubernetes prints it (``"kubectl-edit"
    using apps/v1``).
    """

    def __init__(self, conflicts: list[tuple[str, str]], descriptions: list[str] | None = None) -> None:
        self.conflicts = list(conflicts)
        self.descriptions = (
            list(descriptions) if descriptions is not None else [json.dumps(m) for m, _ in self.conflicts]
        )
        super().__init__(self.message())

    def message(self) -> str:
        n = len(self.conflicts)
        if n == 1:
            desc, path = self.descriptions[0], self.conflicts[0][1]
            return f"Apply failed with 1 conflict: conflict with {desc}: {path}"
        grouped: dict[str, list[str]] = {}
        for desc, (_, path) in zip(self.descriptions, self.conflicts, strict=True):
            grouped.setdefault(desc, []).append(path)
        lines: list[str] = []
        for desc, paths in grouped.items():
            lines.append(f"conflict with {desc}:")
            lines.extend(f"- {p}" for p in paths)
        return f"Apply failed with {n} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [
            {"type": "FieldManagerConflict", "message": f"conflict with {desc}", "field": path}
            for desc, (_, path) in zip(self.descriptions, self.conflicts, strict=True)
        ]

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body the API server answers with (HTTP 409)."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": "Conflict",
            "details": {"causes": self.causes()},
            "code": 409,
        }


# --------------------------------------------------------------------------
# Schema shapes


_SCALAR, _MAP, _LIST = "scalar", "map", "list"
_MISSING: Any = object()  # an absent key, as opposed to an explicit null


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str
    atomic: bool = False
    props: Mapping[str, Schema] | None = None  # struct fields; None: a plain map
    elem: Schema | None = None  # map values / list items; None: deduced
    list_type: str = "atomic"  # "atomic" | "set" | "map"
    keys: tuple[str, ...] = ()
    key_defaults: Mapping[str, Any] = field(default_factory=dict)
    required: frozenset[str] = frozenset()  # struct fields serialized even when unset

    def child(self, key: str) -> tuple[Schema | None, bool]:
        """Schema of a map entry and whether it is a named (struct) field."""
        if self.props is not None:
            if key in self.props:
                return self.props[key], True
            if self.elem is not None:
                return self.elem, False
            return None, True
        return self.elem, False


_DEDUCED = {
    _MAP: _Shape(_MAP),
    _LIST: _Shape(_LIST, atomic=True),
    _SCALAR: _Shape(_SCALAR),
}
_shape_cache: dict[tuple[int, str | None], tuple[Schema, _Shape]] = {}


def _vkind(v: Any) -> str | None:
    if isinstance(v, dict):
        return _MAP
    if isinstance(v, list):
        return _LIST
    if v is _MISSING or v is None:
        return None
    return _SCALAR


def _shape(schema: Schema | None, value: Any = _MISSING) -> _Shape:
    vk = _vkind(value)
    if schema is None:
        return _DEDUCED[vk or _SCALAR]
    key = (id(schema), vk)
    hit = _shape_cache.get(key)
    if hit is None:
        hit = _shape_cache[key] = (schema, _build_shape(schema, vk))
    return hit[1]


def _build_shape(schema: Schema, vk: str | None) -> _Shape:
    inner = resolve(schema)

    def ext(name: str) -> Any:
        return schema.get(name, inner.get(name))

    types = types_of(inner) | types_of(schema)
    kinds: list[str] = []
    if "object" in types or "properties" in inner or "additionalProperties" in inner:
        kinds.append(_MAP)
    if "array" in types or "items" in inner:
        kinds.append(_LIST)
    if types - {"object", "array"} or "oneOf" in inner or "anyOf" in inner:
        kinds.append(_SCALAR)
    if not kinds:  # untyped (e.g. apiextensions JSON): deduce from the value
        return _DEDUCED[vk or _SCALAR]
    kind = vk if vk in kinds else (kinds[0] if vk is None else None)
    if kind is None:  # value doesn't fit the schema: deduce rather than fail
        return _DEDUCED[vk or _SCALAR]
    if kind == _SCALAR:
        return _DEDUCED[_SCALAR]
    if kind == _MAP:
        props = inner.get("properties")
        addl = inner.get("additionalProperties")
        elem = addl if isinstance(addl, dict) else None
        atomic = ext("x-kubernetes-map-type") == "atomic"
        props = props if isinstance(props, dict) else None
        required = frozenset(inner.get("required") or ())
        return _Shape(_MAP, atomic=atomic, props=props, elem=elem, required=required)
    items = inner.get("items") if isinstance(inner.get("items"), dict) else None
    list_type = ext("x-kubernetes-list-type")
    keys: tuple[str, ...] = ()
    if list_type == "map":
        keys = tuple(ext("x-kubernetes-list-map-keys") or ())
    elif list_type is None:
        # No list type: fall back on the strategic-merge-patch strategy, as Kubernetes does.
        if ext("x-kubernetes-patch-strategy") in ("merge", "merge,retainKeys"):
            merge_key = ext("x-kubernetes-patch-merge-key")
            list_type, keys = ("map", (merge_key,)) if merge_key else ("set", ())
        else:
            list_type = "atomic"
    if list_type not in ("set", "map") or (list_type == "map" and not keys):
        return _Shape(_LIST, atomic=True, elem=items)
    defaults: dict[str, Any] = {}
    item_props = resolve(items).get("properties", {}) if items else {}
    for k in keys:
        prop = item_props.get(k)
        if isinstance(prop, dict) and "default" in prop:
            defaults[k] = prop["default"]
        elif k == "protocol":  # ports: "Defaults to TCP" (the schema only says so in prose)
            defaults[k] = "TCP"
    return _Shape(_LIST, elem=items, list_type=list_type, keys=keys, key_defaults=defaults)


@functools.cache
def _unknown_root() -> Schema:
    # Unknown kinds (CRDs): typed metadata, everything else deduced.
    return {
        "type": ["object"],
        "properties": {
            "apiVersion": {"type": ["string"]},
            "kind": {"type": ["string"]},
            "metadata": {"$ref": f"#/$defs/{_OBJECT_META}"},
        },
    }


def _root_schema(definition: str | None) -> Schema:
    if definition:
        schema = definitions().get(definition)
        if schema is not None:
            return schema
    return _unknown_root()


# --------------------------------------------------------------------------
# Path elements


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _item_pe(sh: _Shape, item: Any, strict: bool, path: Path, index: int) -> str | None:
    """The path element of a list-map or set element (None if it has none)."""
    problem: str
    if sh.list_type == "map":
        if isinstance(item, dict):
            kv: dict[str, Any] = {}
            for k in sh.keys:
                v = item.get(k)
                if v is None:
                    if k not in sh.key_defaults:
                        problem = (
                            f'associative list with keys has an element that omits key field "{k}" '
                            "(and doesn't have default value)"
                        )
                        break
                    v = sh.key_defaults[k]
                kv[k] = v
            else:
                return "k:" + _dumps(kv)  # Kubernetes sorts the key fields by name
        else:
            problem = "associative list with keys may not have non-map elements"
    elif item is None or isinstance(item, (dict, list)):
        problem = "associative list without keys has an element that's a map, list or null"
    else:
        return "v:" + _dumps(item)
    if strict:
        raise ApplyInvalid(f"{path_string(path) or '.'}: element {index}: {problem}")
    return None


def _keyed(sh: _Shape, items: list[Any], strict: bool, path: Path) -> list[tuple[str | None, Any]]:
    """Pair each element with its path element; unkeyable or repeated elements get None."""
    out: list[tuple[str | None, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        pe = _item_pe(sh, item, strict, path, i)
        if pe is not None:
            if pe in seen:
                if strict:
                    raise ApplyInvalid(f"{path_string(path)}: duplicate entries for key {path_string((pe,))}")
                pe = None
            else:
                seen.add(pe)
        out.append((pe, item))
    return out


def path_string(path: Iterable[str]) -> str:
    """Render a path as Kubernetes does in conflicts: ``.spec.containers[name="nginx"].image``."""
    parts: list[str] = []
    for pe in path:
        kind, body = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + body)
        elif kind == "k:":
            keys = json.loads(body)
            parts.append("[" + ",".join(f"{k}={_go_string(v)}" for k, v in keys.items()) + "]")
        elif kind == "v:":
            parts.append("[=" + _go_string(json.loads(body)) + "]")
        elif kind == "i:":
            parts.append(f"[{body}]")
        else:
            parts.append(pe)
    return "".join(parts)


def _go_string(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _pe_order(pe: str) -> tuple[int, Any]:
    rank = {"f": 0, "k": 1, "v": 2, "i": 3}.get(pe[:1], 4)
    if rank == 3:
        try:
            return rank, int(pe[2:])
        except ValueError:
            pass
    return rank, pe[2:] if rank < 4 else pe


# --------------------------------------------------------------------------
# FieldsV1 <-> flat sets


def _from_v1(node: Any, prefix: Path = (), out: FieldSet | None = None) -> FieldSet:
    out = set() if out is None else out
    if not isinstance(node, dict):
        return out
    for key, child in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, _canonical(key))
        if not child:
            out.add(path)
        else:
            _from_v1(child, path, out)
    return out


def _canonical(key: str) -> str:
    if key[:2] in ("k:", "v:"):
        try:
            return key[:2] + _dumps(json.loads(key[2:]))
        except ValueError:
            return key
    return key


def _tree(paths: Iterable[Path]) -> dict[str, list[Any]]:
    """Nested ``{element: [is_member, children]}``."""
    root: dict[str, list[Any]] = {}
    for p in paths:
        node = root
        for i, pe in enumerate(p):
            entry = node.get(pe)
            if entry is None:
                entry = node[pe] = [False, {}]
            if i == len(p) - 1:
                entry[0] = True
            node = entry[1]
    return root


def _render(node: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pe in sorted(node, key=_pe_order):
        member, children = node[pe]
        if children:
            sub = _render(children)
            out[pe] = {".": {}, **sub} if member else sub
        else:
            out[pe] = {}
    return out


def _to_v1(paths: Iterable[Path]) -> dict[str, Any]:
    return _render(_tree(paths))


def _ordered(paths: Iterable[Path]) -> Iterator[Path]:
    """Paths in SMD's iteration order: a node's members first, then its children."""

    def walk(node: dict[str, list[Any]], prefix: Path) -> Iterator[Path]:
        order = sorted(node, key=_pe_order)
        for pe in order:
            if node[pe][0]:
                yield (*prefix, pe)
        for pe in order:
            if node[pe][1]:
                yield from walk(node[pe][1], (*prefix, pe))

    return walk(_tree(paths), ())


def _prefixes(paths: Iterable[Path]) -> FieldSet:
    return {p[:i] for p in paths for i in range(1, len(p))}


# --------------------------------------------------------------------------
# Value helpers


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_eq, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _empty(v: Any) -> bool:
    """Missing, null, {} or [] (SMD treats a pair of these as a leaf)."""
    return v is _MISSING or v is None or (isinstance(v, (dict, list)) and not v)


# --------------------------------------------------------------------------
# The four SMD operations: to-field-set, compare, merge, prune


def _value_set(value: Any, schema: Schema | None, path: Path, out: FieldSet, strict: bool) -> None:
    """The fields a value sets (SMD ToFieldSet)."""
    sh = _shape(schema, value)
    if sh.kind == _SCALAR or sh.atomic:
        if path:
            out.add(path)
        return
    if sh.kind == _MAP:
        if not value and sh.props is not None:
            # A null or empty struct (emptyDir: {}) is owned, so dropping it later prunes it.
            if path:
                out.add(path)
        elif isinstance(value, dict):
            for k, v in value.items():
                child_schema, named = sh.child(k)
                child = (*path, "f:" + k)
                _value_set(v, child_schema, child, out, strict)
                if not named:  # map entries (unlike struct fields) are members themselves
                    out.add(child)
        return
    if isinstance(value, list):
        for pe, item in _keyed(sh, value, strict, path):
            if pe is None:
                continue
            child = (*path, pe)
            out.add(child)
            if sh.list_type == "map":
                _value_set(item, sh.elem, child, out, strict)


@dataclass
class _Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)


def _compare(lv: Any, rv: Any, schema: Schema | None, path: Path, struct_field: int, c: _Comparison) -> None:
    """Record what changed from lv to rv (SMD Compare).

    ``struct_field``: 0 for map entries and list elements, 1 for struct fields,
    2 for required struct fields.
    """
    if lv is not _MISSING and (lv is rv or (lv == rv and _eq(lv, rv))):
        return  # identical subtrees hold no changes (the common case in updates)
    sh = _shape(schema, rv if _vkind(rv) else lv)
    lk, rk = _vkind(lv), _vkind(rv)
    if sh.kind == _SCALAR or sh.atomic or (_empty(lv) and _empty(rv)) or (lk and rk and lk != rk):
        if not path:
            return
        if lv is _MISSING:
            c.added.add(path)
        elif rv is _MISSING:
            c.removed.add(path)
        elif not _eq(lv, rv):
            c.modified.add(path)
        return
    if sh.kind == _MAP:
        lm = lv if isinstance(lv, dict) else {}
        rm = rv if isinstance(rv, dict) else {}
        for k in [*lm, *(k for k in rm if k not in lm)]:
            child_schema, named = sh.child(k)
            kind = (2 if k in sh.required else 1) if named else 0
            _compare(lm.get(k, _MISSING), rm.get(k, _MISSING), child_schema, (*path, "f:" + k), kind, c)
    else:
        ll = _keyed(sh, lv, False, path) if isinstance(lv, list) else []
        rl = _keyed(sh, rv, False, path) if isinstance(rv, list) else []
        lidx = {pe: item for pe, item in ll if pe is not None}
        ridx = {pe: item for pe, item in rl if pe is not None}
        for pe, item in ridx.items():
            _compare(lidx.get(pe, _MISSING), item, sh.elem, (*path, pe), 0, c)
        for pe, item in lidx.items():
            if pe not in ridx:
                _compare(item, _MISSING, sh.elem, (*path, pe), 0, c)
    if not path:
        return
    if lv is _MISSING:
        # A new non-leaf node is owned too, except where Kubernetes' Go types hold
        # a value before anything is set: structs, and required (non-omitempty) fields.
        if struct_field == 0 or (struct_field == 1 and (sh.kind == _LIST or sh.props is None)):
            c.added.add(path)
    elif rv is _MISSING:
        c.removed.add(path)


def _merge(lv: Any, rv: Any, schema: Schema | None, path: Path) -> Any:
    """Merge the applied value rv into the live value lv (SMD Merge, rv wins)."""
    sh = _shape(schema, rv)
    if sh.kind == _SCALAR or sh.atomic or (_empty(lv) and _empty(rv)):
        return _copy(rv)
    if sh.kind == _MAP:
        if not isinstance(rv, dict):
            return _copy(rv)
        lm = lv if isinstance(lv, dict) else {}
        out: dict[str, Any] = {}
        for k, x in lm.items():
            if k not in rv:
                out[k] = _copy(x)
                continue
            child_schema, _ = sh.child(k)
            y = rv[k]
            if y is None:
                # null unsets a scalar or atomic value; a granular map or list survives it
                csh = _shape(child_schema, x)
                if csh.kind != _SCALAR and not csh.atomic and not _empty(x):
                    out[k] = _copy(x)
                continue
            out[k] = _merge(x, y, child_schema, (*path, "f:" + k))
        for k, y in rv.items():
            if k not in lm and y is not None:
                out[k] = _merge(_MISSING, y, sh.child(k)[0], (*path, "f:" + k))
        return out
    if not isinstance(rv, list):
        return _copy(rv)
    return _merge_list(lv if isinstance(lv, list) else [], rv, sh, path)


def _merge_list(lhs: list[Any], rhs: list[Any], sh: _Shape, path: Path) -> list[Any]:
    """Merge keyed lists: the applier's elements keep its order, the others stay put."""
    rkeyed = _keyed(sh, rhs, True, path)
    ridx = {pe: item for pe, item in rkeyed if pe is not None}
    rorder = [pe for pe, _ in rkeyed if pe is not None]
    lorder: list[Any] = []
    lidx: dict[Any, Any] = {}
    for pe, item in _keyed(sh, lhs, False, path):
        key = pe if pe is not None else object()  # unkeyable live elements are kept as they are
        lidx[key] = item
        lorder.append(key)
    shared = iter([pe for pe in rorder if pe in lidx])
    next_shared = next(shared, None)
    out: list[Any] = []

    def merged(pe: str) -> Any:
        return _merge(lidx.get(pe, _MISSING), ridx[pe], sh.elem, (*path, pe))

    li = ri = 0
    while li < len(lorder) or ri < len(rorder):
        if li < len(lorder) and ri < len(rorder):
            lpe = lorder[li]
            if lpe == rorder[ri]:
                out.append(merged(lpe))
                li, ri = li + 1, ri + 1
                next_shared = next(shared, None)
                continue
            if lpe in ridx and next_shared is not None and next_shared != lpe:
                li += 1  # a shared element, placed when the applier's order reaches it
                continue
        if li < len(lorder):
            lpe = lorder[li]
            if lpe not in ridx:
                out.append(_copy(lidx[lpe]))
                li += 1
                continue
        if ri < len(rorder):
            rpe = rorder[ri]
            out.append(merged(rpe))
            ri += 1
            if rpe == next_shared:
                next_shared = next(shared, None)
            continue
        li += 1  # shared element already placed (defensive: guarantees progress)
    return out


@dataclass
class _Pruning:
    last: FieldSet
    last_prefixes: FieldSet
    managed: FieldSet
    managed_prefixes: FieldSet

    def removable(self, path: Path, named: bool) -> bool:
        # Named struct fields count as owned when anything below them is.
        in_last = path in self.last or (named and path in self.last_prefixes)
        in_managed = path in self.managed or (named and path in self.managed_prefixes)
        return in_last and not in_managed


def _prune(
    value: Any, schema: Schema | None, path: Path, p: _Pruning, keep: frozenset[str] = frozenset()
) -> None:
    """Remove, in place, what the applier owned last time and nobody owns now."""
    sh = _shape(schema, value)
    if sh.kind == _SCALAR or sh.atomic:
        return
    if sh.kind == _MAP and isinstance(value, dict):
        for k in list(value):
            if k in keep:
                continue
            child_schema, named = sh.child(k)
            child = (*path, "f:" + k)
            if p.removable(child, named):
                del value[k]
            elif child in p.last_prefixes:
                v = value[k]
                had_content = isinstance(v, (dict, list)) and bool(v)
                _prune(v, child_schema, child, p)
                if had_content and not v:  # emptied by pruning: unset it
                    del value[k]
    elif sh.kind == _LIST and isinstance(value, list):
        kept: list[Any] = []
        for pe, item in _keyed(sh, value, False, path):
            if pe is not None:
                child = (*path, pe)
                if p.removable(child, False):
                    continue
                if child in p.last_prefixes and sh.list_type == "map":
                    _prune(item, sh.elem, child, p, frozenset(sh.keys))
            kept.append(item)
        value[:] = kept


# --------------------------------------------------------------------------
# managedFields entries


@dataclass
class _Entry:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str
    fields: FieldSet

    @property
    def key(self) -> tuple[str, str, str, str]:
        # Appliers are one manager whatever version they apply (BuildManagerIdentifier).
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def identity(self) -> str:
        d = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply" and self.api_version:
            d["apiVersion"] = self.api_version
        if self.subresource:
            d["subresource"] = self.subresource
        return json.dumps(d, separators=(",", ":"))

    def describe(self) -> str:
        s = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            s += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            s += f" using {self.api_version}"
        return s


def _decode(raw: Any) -> dict[tuple[str, str, str, str], _Entry]:
    entries: dict[tuple[str, str, str, str], _Entry] = {}
    if not isinstance(raw, list):
        return entries
    for e in raw:
        if not isinstance(e, dict) or e.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        entry = _Entry(
            manager=str(e.get("manager") or ""),
            operation=str(e.get("operation") or ""),
            api_version=str(e.get("apiVersion") or ""),
            time=e.get("time"),
            subresource=str(e.get("subresource") or ""),
            fields=_from_v1(e.get("fieldsV1")),
        )
        if not entry.fields:
            continue
        prev = entries.get(entry.key)
        if prev is not None:
            prev.fields |= entry.fields
        else:
            entries[entry.key] = entry
    return entries


def _timestamp(t: str | None) -> float:
    if not t:
        return 0.0
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _encode(entries: Mapping[Any, _Entry]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    order = sorted(
        entries.values(),
        key=lambda e: (e.operation, _timestamp(e.time), e.manager, e.api_version, e.subresource),
    )
    for e in order:
        d: dict[str, Any] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
        if e.time:
            d["time"] = e.time
        d["fieldsType"] = "FieldsV1"
        d["fieldsV1"] = _to_v1(e.fields)
        if e.subresource:
            d["subresource"] = e.subresource
        out.append(d)
    return out


def _drop_empty(entries: dict[Any, _Entry]) -> None:
    for key in [k for k, e in entries.items() if not e.fields]:
        del entries[key]


def _cap_updaters(entries: dict[Any, _Entry]) -> None:
    """Fold the oldest Update managers into "ancient-changes" buckets (one per version)."""
    updaters = [e for e in entries.values() if e.operation == "Update"]
    updaters.sort(key=lambda e: _timestamp(e.time))
    count = len(updaters)
    first: dict[str, _Entry] = {}
    for e in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        if e.api_version not in first:
            first[e.api_version] = e
            continue
        bucket_key = (ANCIENT_CHANGES, "Update", e.api_version, "")
        bucket = entries.get(bucket_key)
        if bucket is None:
            head = first[e.api_version]
            del entries[head.key]
            bucket = entries[bucket_key] = _Entry(
                ANCIENT_CHANGES, "Update", e.api_version, head.time, "", set(head.fields)
            )
        bucket.fields |= e.fields
        bucket.time = e.time
        del entries[e.key]
        count -= 1


# --------------------------------------------------------------------------
# Object views


def _ignored(obj: Mapping[str, Any], subresource: str, status_subresource: bool) -> frozenset[str]:
    """Top-level fields a write through this endpoint doesn't touch (reset fields)."""
    if subresource == "status":
        return frozenset(k for k in obj if k not in ("apiVersion", "kind", "metadata", "status"))
    if status_subresource:
        return frozenset({"status"})
    return frozenset()


def _view(obj: Mapping[str, Any], ignored: frozenset[str]) -> dict[str, Any]:
    """The part of an object field management looks at (shallow)."""
    out = {k: v for k, v in obj.items() if k not in ignored and k not in ("apiVersion", "kind")}
    meta = obj.get("metadata")
    out.pop("metadata", None)
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in _SYSTEM_META}
        if meta:
            out["metadata"] = meta
    return out


def _fields_of(view: Mapping[str, Any], schema: Schema, strict: bool) -> FieldSet:
    out: FieldSet = set()
    _value_set(view, schema, (), out, strict)
    return out - _STRIPPED


def _comparison(old_view: Any, new_view: Any, schema: Schema) -> _Comparison:
    c = _Comparison()
    _compare(old_view, new_view, schema, (), 1, c)
    c.added -= _STRIPPED
    c.modified -= _STRIPPED
    c.removed -= _STRIPPED
    return c


def _record_update(
    entries: dict[Any, _Entry],
    old_view: Mapping[str, Any],
    new_view: Mapping[str, Any],
    schema: Schema,
    manager: str,
    api_version: str,
    now: str,
    subresource: str,
) -> None:
    c = _comparison(old_view, new_view, schema)
    touched = c.added | c.modified
    for e in entries.values():
        e.fields -= touched
        e.fields -= c.removed
    if touched:
        key = (manager, "Update", api_version, subresource)
        mine = entries.get(key)
        if mine is None:
            entries[key] = _Entry(manager, "Update", api_version, now, subresource, set(touched))
        else:
            mine.fields |= touched
            mine.time = now
    _drop_empty(entries)


# --------------------------------------------------------------------------
# Public API


def fieldset(obj: Mapping[str, Any], definition: str | None, include_status: bool = False) -> dict[str, Any]:
    """The FieldsV1 set of everything ``obj`` sets (as an applied configuration would own it)."""
    ignored = frozenset() if include_status else frozenset({"status"})
    return _to_v1(_fields_of(_view(obj, ignored), _root_schema(definition), strict=False))


def apply(
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    manager: str,
    definition: str | None,
    force: bool,
    now: str,
    subresource: str = "",
    *,
    status_subresource: bool = True,
) -> dict[str, Any]:
    """Server-side apply ``config`` onto ``live`` (None: create) as ``manager``.

    Returns the new object with its ``metadata.managedFields``. Raises
    ``ApplyConflict`` unless ``force``, ``ApplyInvalid`` for a malformed
    configuration. ``status_subresource`` says whether the kind has a status
    subresource (then the main resource ignores ``status``, and vice versa).
    """
    if not isinstance(config, Mapping):
        raise ApplyInvalid("the applied configuration must be an object")
    config_meta = config.get("metadata")
    if isinstance(config_meta, Mapping) and config_meta.get("managedFields") is not None:
        raise ApplyInvalid("metadata.managedFields must be nil")
    schema = _root_schema(definition)
    base: dict[str, Any] = _copy(dict(live)) if live is not None else {}
    base_meta = base.get("metadata")
    entries = _decode(base_meta.pop("managedFields", None) if isinstance(base_meta, dict) else None)
    ignored = _ignored(base, subresource, status_subresource)
    ignored |= _ignored(config, subresource, status_subresource)
    api_version = str(config.get("apiVersion") or base.get("apiVersion") or "")
    live_view = _view(base, ignored)

    if live is not None and not entries:
        # Whatever an untracked object holds belongs to "before-first-apply".
        live_version = str(base.get("apiVersion") or api_version)
        _record_update(entries, {}, live_view, schema, BEFORE_FIRST_APPLY, live_version, now, "")

    cfg = {k: _copy(v) for k, v in config.items() if k not in ignored}
    if isinstance(cfg.get("metadata"), dict):
        cfg["metadata"] = {k: v for k, v in cfg["metadata"].items() if k not in _SERVER_META}
    applied = _fields_of(_view(cfg, frozenset()), schema, strict=True)
    merged = _merge(base, cfg, schema, ())

    key = (manager, "Apply", "", subresource)
    last = entries.pop(key, None)
    if last is not None and last.fields:
        managed = applied | _ALWAYS_KEPT
        for e in entries.values():
            managed |= e.fields
        _prune(merged, schema, (), _Pruning(last.fields, _prefixes(last.fields), managed, _prefixes(managed)))

    c = _comparison(live_view, _view(merged, ignored), schema)
    changed_paths = c.added | c.modified
    conflicts = [(e, p) for e in entries.values() for p in _ordered(e.fields & changed_paths)]
    if conflicts and not force:
        if manager == "kubectl":
            # Upgrading from client-side apply: fields the last-applied annotation
            # set to their live values are kubectl's to take.
            allowed = _allowed_from_last_applied(base, live_view, schema, ignored)
            conflicts = [(e, p) for e, p in conflicts if p not in allowed]
        if conflicts:
            conflicts.sort(key=lambda ep: ep[0].identity())
            raise ApplyConflict(
                [(e.manager, path_string(p)) for e, p in conflicts], [e.describe() for e, _ in conflicts]
            )
    for e in entries.values():
        e.fields -= changed_paths
        e.fields -= c.removed

    changed = not _eq(base, merged)
    time = now if changed or last is None else last.time
    entries[key] = _Entry(manager, "Apply", api_version, time, subresource, applied)
    _drop_empty(entries)
    _cap_updaters(entries)

    if manager == "kubectl":
        # kubectl's server-side apply keeps an existing client-side annotation in sync.
        annotations = (merged.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations:
            annotations[LAST_APPLIED_ANNOTATION] = _last_applied(config)

    encoded = _encode(entries)
    if encoded:
        meta = merged.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["managedFields"] = encoded
    return merged


def _allowed_from_last_applied(
    live: Mapping[str, Any], live_view: Mapping[str, Any], schema: Schema, ignored: frozenset[str]
) -> FieldSet:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(raw, str) or not raw:
        return set()
    try:
        last = json.loads(raw)
    except ValueError:
        return set()
    if not isinstance(last, dict):
        return set()
    last_view = _view(last, ignored)
    try:
        fields = _fields_of(last_view, schema, strict=False)
    except ApplyInvalid:
        return set()
    c = _comparison(last_view, live_view, schema)
    return fields - c.modified - c.added - c.removed


def _last_applied(config: Mapping[str, Any]) -> str:
    obj = _copy(dict(config))
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    return _dumps(obj) + "\n"


def _is_reset(raw: Any) -> bool:
    # [] or [{}] in a write clears managedFields (then nothing is tracked).
    return isinstance(raw, list) and (not raw or (len(raw) == 1 and raw[0] == {}))


def track_update(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    definition: str | None,
    now: str,
    subresource: str = "",
    *,
    status_subresource: bool = True,
) -> None:
    """Attribute what a create (old None), update or patch changed to ``manager``.

    Rewrites ``new["metadata"]["managedFields"]`` in place. managedFields the
    writer sent are honoured (a main-resource write may edit or reset them);
    otherwise those of ``old`` are carried on. An existing object without
    managedFields stays untracked, as in Kubernetes.
    """
    meta = new.get("metadata")
    supplied = meta.pop("managedFields", None) if isinstance(meta, dict) else None
    old_meta = (old or {}).get("metadata")
    old_raw = old_meta.get("managedFields") if isinstance(old_meta, Mapping) else None
    if subresource:
        entries = _decode(old_raw)
    elif _is_reset(supplied):
        entries = {}
    else:
        entries = _decode(supplied) or _decode(old_raw)
    if old is not None and not entries:
        return
    schema = _root_schema(definition)
    api_version = str(new.get("apiVersion") or (old or {}).get("apiVersion") or "")
    ignored = _ignored(new, subresource, status_subresource)
    ignored |= _ignored(old or {}, subresource, status_subresource)
    old_view, new_view = _view(old or {}, ignored), _view(new, ignored)
    _record_update(entries, old_view, new_view, schema, manager, api_version, now, subresource)
    _cap_updaters(entries)
    encoded = _encode(entries)
    if encoded:
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        meta["managedFields"] = encoded
