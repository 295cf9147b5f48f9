"""ControllerRevision helpers (Kubernetes' ``pkg/controller/history``), shared by the
StatefulSet and DaemonSet controllers.

A ControllerRevision is an immutable snapshot of a parent's pod template, stored as
a strategic-merge patch in ``data`` (for both workload kinds
``{"spec": {"template": {..., "$patch": "replace"}}}``) with a monotonically
increasing ``revision`` number.  It is named ``<parent>-<hash of data>`` and labelled
with that hash; ``collisionCount`` (kept in the parent's status) perturbs the hash
so a name clash with a foreign revision can be escaped.

Stable API (do not change signatures; other controllers import these):

Data
    :data:`HASH_LABEL`, :func:`template_patch`, :func:`apply_template_patch`.
Building and comparing
    :func:`hash_revision`, :func:`revision_name`, :func:`new_revision`,
    :func:`sort_revisions`, :func:`equal_revision`, :func:`find_equal_revisions`,
    :func:`next_revision`.
Ownership
    :func:`owned_revisions` (``realHistory.ListControllerRevisions``),
    :func:`claim_revisions` (``ControllerRevisionControllerRefManager``).
Writes
    :func:`create_revision` (with collision handling), :func:`update_revision_number`,
    :func:`delete_revision`, :func:`revisions_to_truncate`, :func:`truncate_history`.

Revisions and parents are the plain API dicts informers hold; nothing here mutates
its arguments.  Parents must carry ``apiVersion`` and ``kind`` (for ownerReferences).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from ..api.selectors import LabelSelector, from_label_selector_object, matches_labels
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu

API_VERSION, PLURAL, KIND = "apps/v1", "controllerrevisions", "ControllerRevision"
HASH_LABEL = "controller.kubernetes.io/hash"
# Names are DNS subdomains (253); upstream keeps 223 characters of the parent's name.
MAX_PREFIX = 223
# rand.SafeEncodeString's alphabet: no vowels (no words) and no look-alikes.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Go's encoding/json escapes these; do the same so equal data hashes as upstream would.
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


# -- data -------------------------------------------------------------------------------


def template_patch(parent: dict) -> dict:
    """The revision data for ``parent``'s pod template (StatefulSet/DaemonSet ``getPatch``):
    ``{"spec": {"template": {<template>, "$patch": "replace"}}}``."""
    template = copy.deepcopy((parent.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def apply_template_patch(parent: dict, revision: dict) -> dict:
    """A copy of ``parent`` as it was at ``revision`` (``ApplyRevision``): its template is
    replaced by the revision's.  With the ``$patch: replace`` data this is what the
    strategic merge amounts to; other keys under ``spec`` are merged shallowly."""
    out = copy.deepcopy(parent)
    data = _data(revision)
    spec = out.setdefault("spec", {})
    for k, v in (data.get("spec") or {}).items():
        if k == "template":
            tpl = copy.deepcopy(v or {})
            tpl.pop("$patch", None)
            spec["template"] = tpl
        else:
            spec[k] = copy.deepcopy(v)
    return out


def _data(revision: dict) -> dict:
    data = revision.get("data")
    if isinstance(data, (bytes, str)):
        # Raw JSON (as the API would hand over a RawExtension).
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {}
    return data if isinstance(data, dict) else {}


def _raw(data: Any) -> bytes:
    """Data as Go's json.Marshal of a map would write it: compact, keys sorted."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    for a, b in _GO_ESCAPES:
        raw = raw.replace(a, b)
    return raw


# -- building and comparing ---------------------------------------------------------------


def _fnv32(data: bytes) -> int:
    # FNV-1 (not 1a), as upstream's hash/fnv.New32.
    h = 0x811C9DC5
    for b in data:
        h = ((h * 0x01000193) & 0xFFFFFFFF) ^ b
    return h


def _safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def hash_revision(data: Any, collision_count: int | None = None) -> str:
    """``HashControllerRevision``: FNV-32 of the data's JSON, then of the decimal
    ``collision_count`` (if not None), safe-encoded."""
    raw = _raw(data)
    if collision_count is not None:
        raw += str(int(collision_count)).encode()
    return _safe_encode(str(_fnv32(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    """``<prefix>-<hash>``, the prefix cut to keep the name a valid DNS subdomain."""
    return f"{prefix[:MAX_PREFIX]}-{hash_}"


def new_revision(parent: dict, data: dict, revision: int, collision_count: int | None = None,
                 labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    """A ControllerRevision (not yet created) of ``parent`` holding ``data``
    (``NewControllerRevision``): ``labels`` (typically the template's) plus the hash
    label, a controller ownerReference, named ``<parent>-<hash>``."""
    meta = parent.get("metadata") or {}
    h = hash_revision(data, collision_count)
    rmeta: dict[str, Any] = {"name": revision_name(meta.get("name", ""), h),
                             "namespace": meta.get("namespace", ""),
                             "labels": {**(labels or {}), HASH_LABEL: h},
                             "ownerReferences": [cu.new_controller_ref(parent)]}
    if annotations:
        rmeta["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": rmeta,
            "data": copy.deepcopy(data), "revision": int(revision)}


def _created(rev: dict) -> str:
    return (rev.get("metadata") or {}).get("creationTimestamp") or ""


def sort_revisions(revisions: Iterable[dict]) -> list[dict]:
    """Oldest first: by ``revision``, then creation time, then name."""
    return sorted(revisions, key=lambda r: (int(r.get("revision") or 0), _created(r),
                                            (r.get("metadata") or {}).get("name", "")))


def equal_revision(a: dict | None, b: dict | None) -> bool:
    """Whether two revisions hold the same data (``EqualRevision``)."""
    if a is None or b is None:
        return a is b
    # Hash labels may come from different collision counts, so they prove nothing:
    # compare the data itself, parsed (JSON formatting is irrelevant).
    return _data(a) == _data(b)


def find_equal_revisions(revisions: Iterable[dict], needle: dict) -> list[dict]:
    """The revisions whose data equals ``needle``'s, in the given order."""
    return [r for r in revisions if equal_revision(r, needle)]


def next_revision(revisions: Iterable[dict]) -> int:
    """One more than the highest ``revision`` (1 for an empty history)."""
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


# -- ownership ---------------------------------------------------------------------------


def _selector(selector: LabelSelector | dict | None) -> LabelSelector | None:
    return from_label_selector_object(selector) if isinstance(selector, dict) or selector is None else selector


def owned_revisions(parent: dict, selector: LabelSelector | dict | None, revisions: Iterable[dict]) -> list[dict]:
    """Of ``revisions`` (e.g. a lister's list for the parent's namespace), those matching
    ``selector`` that ``parent`` controls or that have no controller (adoptable)."""
    sel = _selector(selector)
    pmeta = parent.get("metadata") or {}
    out = []
    for r in revisions:
        rmeta = r.get("metadata") or {}
        if rmeta.get("namespace", "") != pmeta.get("namespace", ""):
            continue
        if not sel or not matches_labels(sel, rmeta.get("labels")):
            continue
        ref = cu.controller_ref(r)
        if ref is None or ref.get("uid") == pmeta.get("uid"):
            out.append(r)
    return out


async def claim_revisions(client: RestClient, parent: dict, selector: LabelSelector | dict | None,
                          revisions: Iterable[dict], can_adopt: Callable[[], Awaitable[bool]]) -> list[dict]:
    """Adopt matching orphans, release owned non-matching ones, keep the rest
    (``ClaimControllerRevisions``); returns the claimed revisions."""
    return await cu.claim_objects(client, parent, _selector(selector), revisions, can_adopt,
                                  cu.new_controller_ref(parent), API_VERSION, PLURAL)


# -- writes ----------------------------------------------------------------------------------


async def create_revision(client: RestClient, parent: dict, revision: dict, collision_count: int
                          ) -> tuple[dict, int]:
    """Create ``revision`` for ``parent`` (``CreateControllerRevision``), returning the
    stored revision and the collision count in effect.

    The name is ``<parent>-<hash(data, collision_count)>``.  On AlreadyExists: if the
    existing revision holds the same data (ours, created earlier), it is returned;
    otherwise the collision count is bumped and the next name tried.  The caller
    should persist the returned count in the parent's ``status.collisionCount``."""
    pmeta = parent.get("metadata") or {}
    ns = pmeta.get("namespace", "")
    count = int(collision_count or 0)
    while True:
        h = hash_revision(revision.get("data"), count)
        body = copy.deepcopy(revision)
        meta = body.setdefault("metadata", {})
        meta["name"] = revision_name(pmeta.get("name", ""), h)
        meta["namespace"] = ns
        meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: h}
        for k in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(k, None)
        try:
            return await client.create(API_VERSION, PLURAL, body, ns), count
        except ApiException as e:
            if e.status != 409 or e.reason != "AlreadyExists":
                raise
        existing = await client.get(API_VERSION, PLURAL, meta["name"], ns)
        if _data(existing) == _data(body):
            return existing, count
        count += 1


async def update_revision_number(client: RestClient, revision: dict, number: int, retries: int = 5) -> dict:
    """Set ``revision.revision`` to ``number`` (used to roll back to an earlier template:
    the old revision becomes the newest), retrying conflicts on a fresh copy."""
    cur = revision
    for attempt in range(retries + 1):
        if int(cur.get("revision") or 0) == number:
            return cur
        body = copy.deepcopy(cur)
        body["revision"] = int(number)
        meta = cur["metadata"]
        try:
            return await client.update(API_VERSION, PLURAL, body, meta.get("namespace", ""))
        except ApiException as e:
            if e.status != 409 or attempt == retries:
                raise
        cur = await client.get(API_VERSION, PLURAL, meta["name"], meta.get("namespace", ""))
    return cur


async def delete_revision(client: RestClient, revision: dict) -> None:
    """Delete ``revision`` (uid precondition: never a same-named successor); gone is fine."""
    meta = revision.get("metadata") or {}
    options = {"preconditions": {"uid": meta["uid"]}} if meta.get("uid") else {}
    try:
        await client.delete(API_VERSION, PLURAL, meta.get("name", ""), meta.get("namespace", ""), **options)
    except ApiException as e:
        if e.status not in (404, 409):
            raise


def revisions_to_truncate(revisions: Iterable[dict], live_names: Iterable[str], limit: int) -> list[dict]:
    """The oldest non-live revisions beyond ``limit`` (``truncateHistory``): live ones
    (the current and update revisions, any a pod still runs) are never chosen."""
    live = set(live_names)
    history = [r for r in sort_revisions(revisions) if (r.get("metadata") or {}).get("name") not in live]
    excess = len(history) - max(int(limit), 0)
    return history[:excess] if excess > 0 else []


async def truncate_history(client: RestClient, revisions: Iterable[dict], live_names: Iterable[str],
                           limit: int) -> list[dict]:
    """Delete :func:`revisions_to_truncate`; returns what was deleted."""
    victims = revisions_to_truncate(revisions, live_names, limit)
    for r in victims:
        await delete_revision(client, r)
    return victims


__all__ = [
    "API_VERSION", "HASH_LABEL", "KIND", "PLURAL", "apply_template_patch", "claim_revisions", "create_revision",
    "delete_revision", "equal_revision", "find_equal_revisions", "hash_revision", "new_revision", "next_revision",
    "owned_revisions", "revision_name", "revisions_to_truncate", "sort_revisions", "template_patch",
    "truncate_history", "update_revision_number",
]
