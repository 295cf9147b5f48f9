"""The real Kubernetes schemas, as shipped by the ``kubernetes-validate`` package.

``definitions()`` is the ``$defs`` table of one Kubernetes release's OpenAPI
schemas in JSON-schema form (types are lists such as ``["string", "null"]``,
references are ``#/$defs/<name>``), carrying the ``x-kubernetes-*``
extensions: group-version-kind, patch strategies and merge keys, list types.
Everything schema-driven (validation, strategic merge patch, server-side
apply, OpenAPI documents, ``kubectl explain``) reads it from here.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import orjson

# The Kubernetes release whose API Pinnace serves.
KUBERNETES_VERSION = "1.32.0"

Schema = dict[str, Any]


@functools.cache
def definitions() -> dict[str, Schema]:
    import kubernetes_validate

    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    path = os.path.join(base, f"v{KUBERNETES_VERSION}-local", "_definitions.json")
    with open(path, "rb") as f:
        return orjson.loads(f.read())["$defs"]


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) → definition name, for every top-level kind."""
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_for(group: str, version: str, kind: str) -> str | None:
    return gvk_index().get((group, version, kind))


def resolve(schema: Schema) -> Schema:
    """Follow a ``$ref`` (possibly through ``allOf`` wrappers) to its definition."""
    while True:
        ref = schema.get("$ref")
        if ref is None:
            all_of = schema.get("allOf")
            if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
                ref = all_of[0]["$ref"]
            else:
                return schema
        schema = definitions()[ref.rsplit("/", 1)[-1]]


def types_of(schema: Schema) -> set[str]:
    """The JSON types a schema admits, without ``null``."""
    t = schema.get("type")
    if t is None:
        return set()
    if isinstance(t, str):
        return {t}
    return {x for x in t if x != "null"}
