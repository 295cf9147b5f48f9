"""``/openapi/v2`` as protobuf: gnostic's ``openapi.v2.Document``.

kubectl up to 1.27 asks for ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``
and ``proto.Unmarshal``s the body into gnostic's ``openapi_v2.Document`` (for
``explain``, client-side validation, strategic merge patches and the
``fieldValidation`` support check). This module encodes the JSON swagger
document of :mod:`.openapi` into that message without any protobuf library,
mapping it the way gnostic's compiler does:

* JSON keys become the snake_case fields (``$ref`` is ``_ref``);
* ``x-…`` keys become ``vendor_extension`` entries: ``NamedAny{name, Any{yaml}}``,
  where ``yaml`` is the value's text (JSON, which YAML readers accept);
  ``default``/``enum``/``example`` values are ``Any{yaml}`` too;
* JSON objects used as maps (``paths``, ``definitions``, ``properties``,
  ``responses``…) become repeated ``Named*`` entries in the document's key order;
* ``type``, ``items``, ``additionalProperties``, parameters (by ``in``), responses
  and security definitions go through gnostic's wrapper/oneof messages.

The field numbers come from ``openapi_v2_pb_schema.json``, generated from the
descriptor compiled into kubectl by ``scripts/gen_openapi_pb_schema.py``.
Encoding is proto3: scalars at their default value are left out, except inside
a oneof, where presence is the value.
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..api.resources import ResourceRegistry
from . import openapi

# kubectl asks for the "@v1.0" form, but answering with it breaks kubectl: Go's
# mime.ParseMediaType rejects the '@' ("unexpected content after media subtype").
# kube-apiserver answers with the dotted form and accepts both.
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
ACCEPT_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", CONTENT_TYPE)
SCHEMA_PATH = Path(__file__).with_name("openapi_v2_pb_schema.json")

_WIRE_TYPES = {"string": 2, "message": 2, "bool": 0, "int64": 0, "double": 1}

# Lengths and small numbers are almost always below this; precomputing them
# keeps the hot path free of the varint loop.
_SMALL = 1 << 14


def _varint_slow(n: int) -> bytes:
    if n < 0:  # int64 on the wire: two's complement, ten bytes
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [_varint_slow(i) for i in range(_SMALL)]


def _varint(n: int) -> bytes:
    return _VARINTS[n] if 0 <= n < _SMALL else _varint_slow(n)


# Characters JSON leaves raw but YAML 1.1 (go-yaml v2, what kubectl parses
# ``Any.yaml`` with) rejects or reads as line breaks inside a quoted scalar.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml_text(value: Any) -> str:
    """``value`` as YAML text: JSON flow style with spaces after ``:``/``,``,
    which is valid YAML for go-yaml (kubectl) as well as for PyYAML."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isascii():
        text = _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def wants_protobuf(accept: str) -> bool:
    """Whether an Accept header prefers the protobuf document to JSON (the
    highest-q clause naming either wins; earlier clauses win ties, as in kube-openapi)."""
    best: tuple[float, bool] | None = None
    for clause in accept.split(","):
        media, _, params = clause.strip().partition(";")
        media = media.strip()
        if media in ACCEPT_TYPES:
            proto = True
        elif media in ("application/json", "application/*", "*/*"):
            proto = False
        else:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or q > best[0]):
            best = (q, proto)
    return best is not None and best[1]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: str  # string | bool | int64 | double | message
    message: str | None
    repeated: bool
    oneof: bool
    tag: bytes  # the encoded key: (number << 3) | wire type


def _camel(snake: str) -> str:
    if snake == "_ref":
        return "$ref"
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class _Encoder:
    """JSON swagger → ``openapi.v2`` messages, driven by the generated field table."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.fields: dict[str, dict[str, _Field]] = {}
        self.by_json: dict[str, dict[str, _Field]] = {}
        for mname, fields in table["messages"].items():
            parsed = {
                name: _Field(name, f["type"], f.get("message"), bool(f.get("repeated")), "oneof" in f,
                             _varint(f["number"] << 3 | _WIRE_TYPES[f["type"]]))
                for name, f in fields.items()
            }
            self.fields[mname] = parsed
            self.by_json[mname] = {_camel(n): f for n, f in parsed.items() if n != "vendor_extension"}
        self.special: dict[str, Callable[[Any], bytes | None]] = {
            "Any": self._any,
            "TypeItem": lambda v: self._with("TypeItem", "value", v if isinstance(v, list) else [v]),
            "ItemsItem": lambda v: self._with("ItemsItem", "schema", v if isinstance(v, list) else [v]),
            "StringArray": lambda v: self._with("StringArray", "value", v if isinstance(v, list) else [v]),
            "AdditionalPropertiesItem": self._additional_properties,
            "Paths": lambda v: self._mapping("Paths", "path", v),
            "Responses": lambda v: self._mapping("Responses", "response_code", v),
            "ResponseValue": lambda v: self._ref_or("ResponseValue", "response", v),
            "ParametersItem": lambda v: self._ref_or("ParametersItem", "parameter", v),
            "SchemaItem": self._schema_item,
            "Parameter": self._parameter,
            "NonBodyParameter": self._non_body_parameter,
            "SecurityDefinitionsItem": self._security_definition,
        }
        # Messages that are nothing but a map: {additional_properties: repeated Named*}.
        for mname, fields in self.fields.items():
            if list(fields) == ["additional_properties"] and fields["additional_properties"].repeated:
                self.special[mname] = functools.partial(self._mapping, mname, "additional_properties")

    # -- generic ------------------------------------------------------------------------

    def message(self, mname: str, value: Any) -> bytes | None:
        """The body of message ``mname`` for JSON ``value`` (None: nothing to encode)."""
        special = self.special.get(mname)
        if special is not None:
            return special(value)
        if not isinstance(value, dict):
            return None
        fields = self.by_json[mname]
        ext = self.fields[mname].get("vendor_extension")
        parts: list[bytes] = []
        for key, v in value.items():
            f = fields.get(key)
            if f is not None:
                self._put(parts, f, v)
            elif ext is not None and key.startswith("x-"):
                self._put_named(parts, ext, key, v)
            # Anything else is not part of Swagger 2.0 (gnostic would reject it): dropped.
        return b"".join(parts)

    def _put(self, parts: list[bytes], f: _Field, v: Any) -> None:
        if f.repeated:
            for item in v if isinstance(v, list) else [v]:
                self._single(parts, f, item, True)
        else:
            self._single(parts, f, v, f.oneof)

    def _single(self, parts: list[bytes], f: _Field, v: Any, keep_default: bool) -> None:
        kind = f.kind
        if kind == "message":
            body = self.message(f.message, v)  # type: ignore[arg-type]
            if body is not None:
                parts += (f.tag, _varint(len(body)), body)
        elif kind == "string":
            if isinstance(v, str) and (v or keep_default):
                b = v.encode()
                parts += (f.tag, _varint(len(b)), b)
        elif kind == "bool":
            if isinstance(v, bool) and (v or keep_default):
                parts += (f.tag, b"\x01" if v else b"\x00")
        elif isinstance(v, bool):
            return  # JSON true/false where a number belongs: not this field
        elif kind == "int64":
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, int) and (v or keep_default):
                parts += (f.tag, _varint(v))
        elif kind == "double":
            if isinstance(v, int | float) and (v or keep_default):
                parts += (f.tag, struct.pack("<d", v))

    def _put_named(self, parts: list[bytes], f: _Field, name: str, value: Any) -> None:
        """One entry of a map: ``Named*{name: name, value: value}`` in repeated field ``f``."""
        named = self.fields[f.message]  # type: ignore[index]
        body: list[bytes] = []
        self._single(body, named["name"], name, False)
        self._single(body, named["value"], value, False)
        b = b"".join(body)
        parts += (f.tag, _varint(len(b)), b)

    def _with(self, mname: str, field: str, value: Any) -> bytes:
        """A message with just ``field`` set (a oneof member or a wrapper's one field)."""
        parts: list[bytes] = []
        self._put(parts, self.fields[mname][field], value)
        return b"".join(parts)

    # -- gnostic's special shapes -------------------------------------------------------

    def _any(self, value: Any) -> bytes:
        return self._with("Any", "yaml", yaml_text(value))

    def _mapping(self, mname: str, field: str, value: Any) -> bytes | None:
        """A JSON object whose keys are names: each becomes a Named* entry, in order;
        ``x-…`` keys are vendor extensions where the message has them."""
        if not isinstance(value, dict):
            return None
        f = self.fields[mname][field]
        ext = self.fields[mname].get("vendor_extension")
        parts: list[bytes] = []
        for key, v in value.items():
            if ext is not None and key.startswith("x-"):
                self._put_named(parts, ext, key, v)
            else:
                self._put_named(parts, f, key, v)
        return b"".join(parts)

    def _additional_properties(self, value: Any) -> bytes | None:
        if isinstance(value, bool):
            return self._with("AdditionalPropertiesItem", "boolean", value)
        if isinstance(value, dict):
            return self._with("AdditionalPropertiesItem", "schema", value)
        return None

    def _ref_or(self, mname: str, field: str, value: Any) -> bytes | None:
        """``{"$ref": …}`` is a JsonReference; anything else the inline ``field``."""
        if not isinstance(value, dict):
            return None
        return self._with(mname, "json_reference" if "$ref" in value else field, value)

    def _schema_item(self, value: Any) -> bytes | None:
        if not isinstance(value, dict):
            return None
        return self._with("SchemaItem", "file_schema" if value.get("type") == "file" else "schema", value)

    def _parameter(self, value: Any) -> bytes | None:
        if not isinstance(value, dict):
            return None
        return self._with("Parameter", "body_parameter" if value.get("in") == "body" else "non_body_parameter",
                          value)

    _NON_BODY = {"header": "header_parameter_sub_schema", "formData": "form_data_parameter_sub_schema",
                 "query": "query_parameter_sub_schema", "path": "path_parameter_sub_schema"}

    def _non_body_parameter(self, value: Any) -> bytes | None:
        field = self._NON_BODY.get(value.get("in")) if isinstance(value, dict) else None
        return None if field is None else self._with("NonBodyParameter", field, value)

    _OAUTH2_FLOWS = {"implicit": "oauth2_implicit_security", "password": "oauth2_password_security",
                     "application": "oauth2_application_security", "accessCode": "oauth2_access_code_security"}

    def _security_definition(self, value: Any) -> bytes | None:
        if not isinstance(value, dict):
            return None
        kind = value.get("type")
        if kind == "basic":
            field = "basic_authentication_security"
        elif kind == "apiKey":
            field = "api_key_security"
        elif kind == "oauth2" and value.get("flow") in self._OAUTH2_FLOWS:
            field = self._OAUTH2_FLOWS[value["flow"]]
        else:
            return None
        return self._with("SecurityDefinitionsItem", field, value)


@functools.cache
def _encoder() -> _Encoder:
    return _Encoder(json.loads(SCHEMA_PATH.read_text()))


def encode_openapi_v2(doc: dict[str, Any]) -> bytes:
    """The swagger 2.0 document ``doc`` (parsed JSON) as ``openapi.v2.Document`` bytes."""
    body = _encoder().message("Document", doc)
    return body or b""


@functools.lru_cache(maxsize=4)
def _v2_protobuf(generation: int, resources: ResourceRegistry) -> bytes:
    return encode_openapi_v2(orjson.loads(openapi.openapi_v2(resources)))


def openapi_v2_protobuf(resources: ResourceRegistry) -> bytes:
    """``/openapi/v2`` for ``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``;
    built once per resource-table generation (~1.2 MB, ~0.1 s) and cached."""
    return _v2_protobuf(resources.generation, resources)
