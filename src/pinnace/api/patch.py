"""The three Kubernetes PATCH flavours, applied to JSON objects (decoded dicts).

* ``json_patch``: RFC 6902 operations (``application/json-patch+json``).
* ``merge_patch``: RFC 7386 JSON merge patch (``application/merge-patch+json``).
* ``strategic_merge_patch``: Kubernetes strategic merge patch
  (``application/strategic-merge-patch+json``), driven by the patch strategies
  and merge keys of the real schemas (see ``pinnace.api.schema``).

The strategic merge follows the Go implementation in
``k8s.io/apimachinery/pkg/util/strategicpatch`` as the API server runs it
(parallel deletion lists merged, unmatched nulls ignored), including its list
ordering rules, so that what kubectl and client-go send lands the same way.

All functions are pure: inputs are never mutated, and results share no
mutable structure with the inputs, so callers may edit a result freely.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import jsonpatch
import jsonpointer

from pinnace.api.schema import Schema, definitions

__all__ = ["PatchError", "json_patch", "merge_patch", "strategic_merge_patch"]

JSON = Any


class PatchError(ValueError):
    """A patch that is malformed or does not apply; the message is for the API client."""


def _copy(value: JSON) -> JSON:
    """Deep copy of decoded JSON (much cheaper than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------- JSON patch


def json_patch(obj: dict[str, JSON], ops: list[JSON]) -> dict[str, JSON]:
    """Apply an RFC 6902 JSON patch to ``obj`` and return the patched copy."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc: JSON = _copy(obj)
    # One operation at a time, so errors can say which operation failed; the
    # ops are copied so that values they add are not shared with the caller.
    for i, op in enumerate(_copy(ops)):
        if not isinstance(op, dict):
            raise PatchError(f"json patch operation {i} is not a JSON object")
        name = op.get("op")
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed as e:
            raise PatchError(f"json patch operation {i} (test {op.get('path')!r}) failed: {e}") from e
        except jsonpatch.InvalidJsonPatch as e:
            raise PatchError(f"json patch operation {i} is invalid: {e}") from e
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
            where = f"{name} {op.get('path')!r}"
            raise PatchError(f"json patch operation {i} ({where}) does not apply: {e}") from e
        except (TypeError, KeyError, IndexError, AttributeError, ValueError) as e:
            # jsonpatch lets some malformed values through as plain Python errors.
            raise PatchError(f"json patch operation {i} is invalid: {e}") from e
    if not isinstance(doc, dict):
        raise PatchError("json patch result must be a JSON object")
    return doc


# --------------------------------------------------------------------------- merge patch


def merge_patch(obj: dict[str, JSON], patch: dict[str, JSON]) -> dict[str, JSON]:
    """Apply an RFC 7386 JSON merge patch: null deletes, objects merge, the rest replaces."""
    if not isinstance(patch, dict):
        raise PatchError("merge patch must be a JSON object")
    return _merge_rfc7386(_copy(obj), patch)


def _merge_rfc7386(target: JSON, patch: JSON) -> JSON:
    # ``target`` is owned (already a copy) and updated in place.
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_rfc7386(target.get(key), value)
    return target


# --------------------------------------------------------------------------- schema metadata

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList/"

_DELETED: Final = object()  # a map removed by ``$patch: delete``
_UNSET: Final = object()
_NO_KEY: Final = object()  # an element with no usable merge-key value


class _Shape:
    """The structure of one resolved schema; children are looked up lazily and memoised.

    Shapes of named definitions are shared (``_definition_shape``), so each
    definition is walked at most once per process, however many paths lead to it.
    """

    __slots__ = ("_children", "_items", "_schema")

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._children: dict[str, _Field | None] = {}
        self._items: _Field | object | None = _UNSET

    def child(self, key: str) -> _Field | None:
        """The field for a property, or a typed map's value (``additionalProperties``)."""
        try:
            return self._children[key]
        except KeyError:
            pass
        sub = (self._schema.get("properties") or {}).get(key)
        if sub is None:
            extra = self._schema.get("additionalProperties")
            sub = extra if isinstance(extra, dict) else None
        field = _field(sub) if sub is not None else None
        self._children[key] = field
        return field

    def items(self) -> _Field | None:
        if self._items is _UNSET:
            sub = self._schema.get("items")
            self._items = _field(sub) if isinstance(sub, dict) else None
        return self._items  # type: ignore[return-value]


class _Field:
    """Patch metadata of one property (read next to any ``$ref``) plus its value's shape."""

    __slots__ = ("merge_key", "shape", "strategy")

    def __init__(self, strategy: str, merge_key: str | None, shape: _Shape) -> None:
        self.strategy = strategy  # "merge", "replace" or "" (default)
        self.merge_key = merge_key
        self.shape = shape


def _field(schema: Schema) -> _Field:
    return _Field(
        _strategy(schema.get("x-kubernetes-patch-strategy") or ""),
        schema.get("x-kubernetes-patch-merge-key"),
        _shape(schema),
    )


@functools.cache
def _strategy(value: str) -> str:
    # "retainKeys" only tells clients to send ``$retainKeys``; the server just
    # honours the directive, so what matters here is merge vs replace.
    parts = [p.strip() for p in value.split(",") if p.strip() and p.strip() != "retainKeys"]
    return parts[0] if parts else ""


def _ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    if ref is None:
        all_of = schema.get("allOf")
        if all_of and len(all_of) == 1 and isinstance(all_of[0], dict):
            ref = all_of[0].get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _shape(schema: Schema) -> _Shape:
    name = _ref_name(schema)
    return _definition_shape(name) if name is not None else _Shape(schema)


@functools.cache
def _definition_shape(name: str) -> _Shape:
    return _shape(definitions()[name])


@functools.cache
def _root_shape(definition: str | None) -> _Shape | None:
    # Unknown definitions (and None, e.g. custom resources) get no schema:
    # maps merge, lists are replaced, i.e. merge-patch semantics.
    if definition is None or definition not in definitions():
        return None
    return _definition_shape(definition)


def _item_shape(field: _Field | None) -> _Shape | None:
    items = field.shape.items() if field is not None else None
    return items.shape if items is not None else None


# --------------------------------------------------------------------------- strategic merge patch


def strategic_merge_patch(
    obj: dict[str, JSON], patch: dict[str, JSON], definition: str | None
) -> dict[str, JSON]:
    """Apply a Kubernetes strategic merge patch to ``obj`` of schema ``definition``.

    ``definition`` names the root kind's schema (e.g. ``io.k8s.api.apps.v1.Deployment``);
    ``None`` or an unknown name gives plain merge-patch behaviour (directives are
    still honoured and stripped).
    """
    if not isinstance(obj, dict):
        raise PatchError("strategic merge patch target must be a JSON object")
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    result = _merge_map(_copy(obj), patch, _root_shape(definition))
    return {} if result is _DELETED else result


def _merge_map(orig: dict[str, JSON], patch: dict[str, JSON], shape: _Shape | None) -> JSON:
    """Merge ``patch`` into ``orig`` (owned, updated in place); may return ``_DELETED``."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            # The patch is the new value; it is still run through the merger
            # (on an empty map) so nested directives and nulls do not leak.
            return _merge_map({}, {k: v for k, v in patch.items() if k != _DIRECTIVE}, shape)
        if directive == "delete":
            return _DELETED
        if directive != "merge":  # "merge" is the default for maps: nothing to do
            raise PatchError(f"unknown {_DIRECTIVE} directive {directive!r} in map: {patch}")

    if _RETAIN_KEYS in patch:
        _retain_keys(orig, patch)

    # $setElementOrder merges its list first (like the Go code), then reorders it.
    ordered = _apply_element_orders(orig, patch, shape)

    deletions: list[tuple[str, JSON]] = []
    for key, value in patch.items():
        if key[:1] == "$":
            if key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(_SET_ORDER):
                continue
            if key.startswith(_DELETE_PRIMITIVES):
                deletions.append((key, value))
                continue
        if key in ordered:
            continue
        if value is None:
            orig.pop(key, None)
            continue
        field = shape.child(key) if shape is not None else None
        current = orig.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            if field is not None and field.strategy == "replace":
                merged = _merge_map({}, value, field.shape)
            else:
                merged = _merge_map(current, value, field.shape if field is not None else None)
        elif isinstance(current, list) and isinstance(value, list):
            merged = _merge_list(current, value, field)
        else:
            # Absent, scalar, or a change of type: the patch value replaces.
            merged = _from_patch(value, field)
        if merged is _DELETED:
            orig.pop(key, None)
        else:
            orig[key] = merged

    # Deletion lists go last so they also see elements the merge just placed.
    for key, value in deletions:
        _delete_from_primitive_list(orig, key, value)
    return orig


def _from_patch(value: JSON, field: _Field | None) -> JSON:
    """A patch value taken as is: a fresh copy with directives applied and nulls dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, field.shape if field is not None else None)
    if isinstance(value, list):
        return _merge_list([], value, field)
    return value


def _retain_keys(orig: dict[str, JSON], patch: dict[str, JSON]) -> None:
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise PatchError(f"{_RETAIN_KEYS} must be a list of field names, got {keep!r}")
    allowed = set(keep)
    for key, value in patch.items():
        if value is None or key in (_DIRECTIVE, _RETAIN_KEYS):
            continue
        if key.startswith((_SET_ORDER, _DELETE_PRIMITIVES)):
            continue
        if key not in allowed:
            raise PatchError(f"field {key!r} is set in the patch but missing from {_RETAIN_KEYS} {keep}")
    for key in [k for k in orig if k not in allowed]:
        del orig[key]


def _delete_from_primitive_list(orig: dict[str, JSON], key: str, value: JSON) -> None:
    name = key[len(_DELETE_PRIMITIVES) :]
    if not name:
        raise PatchError(f"{key!r} does not name a field")
    if not isinstance(value, list):
        raise PatchError(f"{key} must be a list, got {value!r}")
    current = orig.get(name)
    if not isinstance(current, list):
        return
    drop = {_hkey(v) for v in value}
    orig[name] = [el for el in current if _item_key(el, None) not in drop]


def _apply_element_orders(orig: dict[str, JSON], patch: dict[str, JSON], shape: _Shape | None) -> set[str]:
    """Handle every ``$setElementOrder/<field>``; returns the fields it merged."""
    done: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(_SET_ORDER):
            continue
        name = key[len(_SET_ORDER) :]
        if not name:
            raise PatchError(f"{key!r} does not name a field")
        if not isinstance(order, list):
            raise PatchError(f"{key} must be a list, got {order!r}")
        current = orig.get(name)
        if current is not None and not isinstance(current, list):
            raise PatchError(f"{key}: field {name!r} is not a list")
        in_patch = name in patch
        patch_list = patch.get(name)
        if in_patch and not isinstance(patch_list, list):
            raise PatchError(f"{key}: patch value of {name!r} must be a list when its order is set")
        if current is None and not in_patch:
            continue
        field = shape.child(name) if shape is not None else None
        merge_key = field.merge_key if field is not None else None
        if merge_key is not None:
            for el in order:
                if not isinstance(el, dict) or merge_key not in el:
                    raise PatchError(f"{key}: element {el!r} lacks the merge key {merge_key!r}")
        base = current if current is not None else []
        _check_order(patch_list or [], order, merge_key, key)
        merged = _merge_list(base, patch_list, field) if in_patch else base
        patch_items, server_only = _partition(merged, order, merge_key)
        orig[name] = _normalize(patch_items, server_only, order, base, merge_key)
        done.add(name)
    return done


def _check_order(patch_list: list[JSON], order: list[JSON], merge_key: str | None, key: str) -> None:
    """The patch list (directive elements aside) must follow the order list's relative order."""
    if not patch_list or not order:
        return
    items = [el for el in patch_list if not (isinstance(el, dict) and _DIRECTIVE in el)]
    if merge_key is None and any(isinstance(el, dict) for el in (*items, *order)):
        return  # objects without a known merge key cannot be matched up
    wanted = [_item_key(el, merge_key) for el in items]
    given = [_item_key(el, merge_key) for el in order]
    i = j = 0
    while i < len(wanted) and j < len(given):
        if wanted[i] is _NO_KEY:
            raise PatchError(f"{key}: patch element {items[i]!r} lacks the merge key {merge_key!r}")
        if wanted[i] == given[j]:
            i += 1
        j += 1
    if i < len(wanted):
        raise PatchError(f"the order of the patch list {patch_list} does not match {key} {order}")


def _merge_list(orig: list[JSON], patch: list[JSON], field: _Field | None) -> list[JSON]:
    """Merge a patch list into ``orig`` (owned) following the field's patch strategy."""
    if field is None or field.strategy != "merge":
        return _replace_list(patch, field)

    # Directive elements are maps even in lists of primitives, so pull them out first.
    plain: list[JSON] = []
    deletes: list[dict[str, JSON]] = []
    replace = False
    for el in patch:
        if not (isinstance(el, dict) and _DIRECTIVE in el):
            plain.append(el)
            continue
        directive = el[_DIRECTIVE]
        if directive == "delete":
            deletes.append(el)
        elif directive == "replace":
            replace = True  # keep going: later directive elements must still be pruned
        elif directive == "merge":  # merging is already the default; keep any content
            rest = {k: v for k, v in el.items() if k != _DIRECTIVE}
            if rest:
                plain.append(rest)
        else:
            raise PatchError(f"unknown {_DIRECTIVE} directive {directive!r} in list element: {el}")

    item_shape = _item_shape(field)
    if replace:
        return _replace_list(plain, field)

    kind = _element_kind(orig, plain)
    merge_key = field.merge_key
    if kind == "scalar" or (kind is None and merge_key is None):
        if deletes:
            raise PatchError(
                f"{_DIRECTIVE}: delete needs a list of objects with a merge key; "
                f"use {_DELETE_PRIMITIVES}<field> for lists of primitives"
            )
        merged = _dedupe([*orig, *plain])
        patch_items, server_only = _partition(merged, plain, None)
        return _normalize(patch_items, server_only, plain, orig, None)

    if merge_key is None:
        raise PatchError("cannot merge a list of objects without a patch merge key")
    base = orig
    for el in deletes:
        if merge_key not in el:
            raise PatchError(f"{_DIRECTIVE}: delete element {el} lacks the merge key {merge_key!r}")
        gone = _hkey(el[merge_key])
        base = [o for o in base if _item_key(o, merge_key) != gone]

    merged = list(base)
    index: dict[JSON, int] = {}
    for i, el in enumerate(merged):
        index.setdefault(_item_key(el, merge_key), i)
    for el in plain:
        if merge_key not in el:
            raise PatchError(f"list element {el} does not contain the merge key {merge_key!r}")
        k = _hkey(el[merge_key])
        i = index.get(k)
        if i is None:
            index[k] = len(merged)
            merged.append(_merge_map({}, el, item_shape))
        else:
            merged[i] = _merge_map(merged[i], el, item_shape)
    patch_items, server_only = _partition(merged, plain, merge_key)
    return _normalize(patch_items, server_only, plain, base, merge_key)


def _replace_list(patch: list[JSON], field: _Field | None) -> list[JSON]:
    """A list without merge strategy is replaced by a clean copy of the patch list."""
    item_field = field.shape.items() if field is not None else None
    out: list[JSON] = []
    for el in patch:
        if isinstance(el, dict):
            value = _merge_map({}, el, item_field.shape if item_field is not None else None)
            # Elements that were only directives (e.g. ``{$patch: replace}``) vanish.
            if value is _DELETED or (not value and _DIRECTIVE in el):
                continue
            out.append(value)
        else:
            out.append(_from_patch(el, item_field))
    return out


def _element_kind(*lists: list[JSON]) -> str | None:
    kind = None
    for items in lists:
        for el in items:
            if isinstance(el, list):
                raise PatchError("lists of lists cannot be merged")
            k = "map" if isinstance(el, dict) else "scalar"
            if kind is None:
                kind = k
            elif kind != k:
                raise PatchError("cannot merge a list that mixes objects and scalars")
    return kind


def _hkey(value: JSON) -> JSON:
    """A hashable identity for a scalar: JSON equality, with booleans apart from 1 and 0."""
    if isinstance(value, bool):
        return (bool, value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise PatchError(f"expected a scalar value, got {value!r}")


def _item_key(el: JSON, merge_key: str | None) -> JSON:
    """The identity of a list element: its merge-key value, or itself for scalars."""
    if merge_key is None:
        return _NO_KEY if isinstance(el, (dict, list)) else _hkey(el)
    if isinstance(el, dict) and merge_key in el:
        value = el[merge_key]
        return _NO_KEY if isinstance(value, (dict, list)) else _hkey(value)
    return _NO_KEY


def _dedupe(items: list[JSON]) -> list[JSON]:
    seen: set[JSON] = set()
    out = []
    for el in items:
        k = _hkey(el)
        if k not in seen:
            seen.add(k)
            out.append(el)
    return out


def _partition(items: list[JSON], by: list[JSON], merge_key: str | None) -> tuple[list[JSON], list[JSON]]:
    """Split ``items`` into those present in ``by`` and the rest (server-only)."""
    present = {_item_key(el, merge_key) for el in by}
    present.discard(_NO_KEY)
    inside: list[JSON] = []
    outside: list[JSON] = []
    for el in items:
        (inside if _item_key(el, merge_key) in present else outside).append(el)
    return inside, outside


def _positions(order: list[JSON], merge_key: str | None) -> dict[JSON, int]:
    pos: dict[JSON, int] = {}
    for i, el in enumerate(order):
        pos.setdefault(_item_key(el, merge_key), i)
    pos.pop(_NO_KEY, None)
    return pos


def _sort_by(items: list[JSON], pos: dict[JSON, int], merge_key: str | None) -> list[JSON]:
    # Stable; elements missing from the order keep their relative order, after the rest.
    n = len(pos)
    return sorted(items, key=lambda el: pos.get(_item_key(el, merge_key), n))


def _normalize(
    patch_items: list[JSON],
    server_only: list[JSON],
    patch_order: list[JSON],
    server_order: list[JSON],
    merge_key: str | None,
) -> list[JSON]:
    """Order a merged list as the Go implementation does.

    Patch items follow the patch (or ``$setElementOrder``) order, server-only
    items the live order; the two are then interleaved, a server-only item
    going first only when it came before the patch item in the live list.
    So new elements come before the server-only ones they are compared with,
    and untouched elements keep their place relative to the ones patched.
    """
    patch_items = _sort_by(patch_items, _positions(patch_order, merge_key), merge_key)
    live = _positions(server_order, merge_key)
    server_only = _sort_by(server_only, live, merge_key)
    out: list[JSON] = []
    i = j = 0
    while i < len(server_only) and j < len(patch_items):
        li = live.get(_item_key(server_only[i], merge_key))
        rj = live.get(_item_key(patch_items[j], merge_key))
        if li is not None and rj is not None and li < rj:
            out.append(server_only[i])
            i += 1
        else:
            out.append(patch_items[j])
            j += 1
    out.extend(server_only[i:])
    out.extend(patch_items[j:])
    return out
