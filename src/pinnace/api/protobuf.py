"""Decode Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl 1.32+ and client-go based controllers send built-in kinds as protobuf.
A body is ``b"k8s\\x00"`` + a ``runtime.Unknown`` message: ``typeMeta``
(apiVersion, kind) and ``raw``, the object encoded with its ``generated.proto``
message (``k8s.io.api.core.v1.Namespace``...).  :func:`decode_object` turns it
into the dict the object's JSON encoding would give, so the rest of the server
never sees protobuf.  Responses stay JSON.

The wire schema is ``protobuf_schema.json``, generated from the descriptors in a
real kubectl binary by ``scripts/gen_protobuf_schema.py`` (see its docstring
for the table format).  Pure Python, no protobuf library at run time.

JSON fidelity rules:

* Kubernetes' gogo marshalling writes every non-pointer field, even when zero,
  while JSON omits them (``omitempty``): zero scalars ("", 0, false, empty
  bytes) are dropped, except for Go pointer fields (``*int32`` replicas: 0,
  ``*bool`` optional: false, ``*string`` storageClassName: "" are meaningful)
  flagged ``p`` in the table (from ``gogoproto.nullable``), and ``KEEP_ZERO``.
* Nested messages are kept even when empty (``emptyDir: {}`` is a choice).
* Inline embedded structs (``Volume.volumeSource``, ``Probe.handler``) are
  merged into their parent, as ``json:",inline"`` does.
* Well-known messages take their JSON forms: Quantity → "100m", IntOrString →
  int or str, Time → "2024-01-02T03:04:05Z" (a zero Time, sent as an empty
  message, is left out: JSON would say null), MicroTime → "...05.000000Z",
  Duration → "1m30s", RawExtension / FieldsV1 → the embedded JSON, Verbs /
  ExtraValue → lists; bytes → base64 strings.
* Fields the table does not know (a newer client) are skipped.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["KEEP_ZERO", "MAGIC", "ProtobufError", "decode_message", "decode_object", "go_duration", "message_for"]

MAGIC = b"k8s\x00"
_SCHEMA = Path(__file__).with_name("protobuf_schema.json")

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_QUANTITY = ("k8s.io.apimachinery.pkg.api.resource.Quantity", "k8s.io.apimachinery.pkg.api.resource.QuantityValue")
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"

# Non-pointer fields the JSON encoding always writes (no omitempty) whose zero is a
# real value that readers index or display, so dropping it would change meaning
# ("Message.field", message short name).  Pointer fields need no entry: the table
# flags them from gogoproto.nullable (replicas, backoffLimit, terminationGracePeriodSeconds,
# optional, defaultMode, suspend, ...).  Required fields whose zero is invalid anyway
# (ServicePort.port, ContainerPort.containerPort) are not listed: absent reads as 0.
KEEP_ZERO = frozenset({
    "PriorityClass.value",  # json:"value": priority 0 is a valid, common choice
    "ContainerStatus.restartCount",  # json:"restartCount"
    "ContainerStatus.ready",  # json:"ready"
    "ReplicaSetStatus.replicas",  # json:"replicas"
    "StatefulSetStatus.replicas",  # json:"replicas"
    "ScaleStatus.replicas",  # json:"replicas" (the scale subresource)
    "DaemonSetStatus.currentNumberScheduled",
    "DaemonSetStatus.numberMisscheduled",
    "DaemonSetStatus.desiredNumberScheduled",
    "DaemonSetStatus.numberReady",
    "PodDisruptionBudgetStatus.disruptionsAllowed",
    "PodDisruptionBudgetStatus.currentHealthy",
    "PodDisruptionBudgetStatus.desiredHealthy",
    "PodDisruptionBudgetStatus.expectedPods",
    "HorizontalPodAutoscalerStatus.currentReplicas",  # autoscaling/v1: json:"currentReplicas"
    "HorizontalPodAutoscalerStatus.desiredReplicas",
})


class ProtobufError(ValueError):
    """The body is not a valid Kubernetes protobuf object this server can decode."""


# Field kinds, resolved once from the table's names.
_STRING, _BYTES, _MESSAGE, _MAP, _BOOL, _INT32, _INT64, _UINT, _SINT = range(9)
_FIXED32, _FIXED64, _SFIXED32, _SFIXED64, _DOUBLE, _FLOAT = range(9, 15)
_KINDS = {
    "string": _STRING, "bytes": _BYTES, "message": _MESSAGE, "map": _MAP, "bool": _BOOL,
    "int32": _INT32, "enum": _INT32, "int64": _INT64, "uint32": _UINT, "uint64": _UINT,
    "sint32": _SINT, "sint64": _SINT, "fixed32": _FIXED32, "fixed64": _FIXED64,
    "sfixed32": _SFIXED32, "sfixed64": _SFIXED64, "double": _DOUBLE, "float": _FLOAT,
}
_VARINT_KINDS = frozenset({_BOOL, _INT32, _INT64, _UINT, _SINT})
_I64_KINDS = frozenset({_FIXED64, _SFIXED64, _DOUBLE})
_I32_KINDS = frozenset({_FIXED32, _SFIXED32, _FLOAT})
_LEN_KINDS = frozenset({_STRING, _BYTES, _MESSAGE, _MAP})

# Returned by a well-known message decoder for "unset" (a zero Time, a nil RawExtension).
_ABSENT: Any = object()


class _Message:
    """One message of the table, compiled: field number → field tuple
    ``(json name, kind, sub, repeated, keep_zero, inline)``; ``sub`` is the
    _Message of a message field, ``(key kind, value kind, value _Message|None)``
    of a map field.  ``convert`` decodes a well-known message to its JSON form."""

    __slots__ = ("convert", "fields", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[int, tuple] = {}
        self.convert: Any = None


@functools.cache
def _schema() -> dict[str, Any]:
    with open(_SCHEMA, "rb") as f:
        return json.load(f)


@functools.cache
def _registry() -> dict[str, _Message]:
    table = _schema()["messages"]
    msgs = {name: _Message(name) for name in table}
    for name, fields in table.items():
        m = msgs[name]
        short = name.rsplit(".", 1)[-1]
        for number, (fname, kind, tname, flags) in fields.items():
            k = _KINDS[kind]
            sub: Any = None
            if k == _MESSAGE:
                sub = msgs[tname]
            elif k == _MAP:
                sub = (_KINDS[tname[0]], _KINDS[tname[1]], msgs[tname[2]] if tname[2] else None)
            keep = "p" in flags or f"{short}.{fname}" in KEEP_ZERO
            m.fields[int(number)] = (fname, k, sub, "r" in flags, keep, "i" in flags)
    for name in _QUANTITY:
        if name in msgs:
            msgs[name].convert = _quantity
    msgs[_INT_OR_STRING].convert = _int_or_string
    msgs[f"{_META}.Time"].convert = _time
    msgs[f"{_META}.MicroTime"].convert = _micro_time
    msgs[f"{_META}.Duration"].convert = _duration
    msgs[f"{_META}.FieldsV1"].convert = _raw_json
    msgs[_RAW_EXTENSION].convert = _raw_json
    for name in _schema()["lists"]:
        msgs[name].convert = _string_list
    return msgs


@functools.cache
def _packages() -> dict[tuple[str, str], str]:
    """(first label of the API group, version) → proto package, from the table:
    ``k8s.io.api.<g>.<v>`` serves group ``<g>`` or ``<g>.k8s.io`` (``rbac`` →
    rbac.authorization.k8s.io; ``core`` → the legacy "" group)."""
    out: dict[tuple[str, str], str] = {}
    for name in _schema()["messages"]:
        parts = name.split(".")
        if parts[:3] == ["k8s", "io", "api"] and len(parts) == 6:
            out[(parts[3], parts[4])] = ".".join(parts[:5])
    return out


def message_for(api_version: str, kind: str) -> str | None:
    """The proto message that encodes ``kind`` of ``api_version``, or None."""
    if not kind or "." in kind:
        return None
    group, _, version = api_version.rpartition("/")
    messages = _schema()["messages"]
    if group == "meta.k8s.io":
        name = f"{_META}.{kind}"
        return name if name in messages else None
    pkg = _packages().get((group.split(".", 1)[0] if group else "core", version))
    if pkg is not None and f"{pkg}.{kind}" in messages:
        return f"{pkg}.{kind}"
    # Kubernetes registers the options kinds (DeleteOptions, ...) and Status in every
    # group version, so client-go sends e.g. apps/v1 DeleteOptions.
    if pkg is not None and (kind.endswith("Options") or kind == "Status") and f"{_META}.{kind}" in messages:
        return f"{_META}.{kind}"
    return None


def decode_object(body: bytes) -> dict[str, Any]:
    """A ``k8s\\x00``-prefixed protobuf object → its JSON-shaped dict, with
    ``apiVersion`` and ``kind`` from the envelope's typeMeta."""
    buf = bytes(body)
    if not buf.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf object: missing the 'k8s\\x00' prefix")
    try:
        api_version, kind, start, end, encoding, content_type = _unknown(buf, len(MAGIC), len(buf))
    except IndexError:
        raise ProtobufError("truncated message") from None
    if encoding:
        raise ProtobufError(f"unsupported contentEncoding {encoding!r}")
    if not kind or not api_version:
        raise ProtobufError("the object has no apiVersion/kind")
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if content_type and "protobuf" not in content_type:
        if "json" not in content_type:
            raise ProtobufError(f"unsupported contentType {content_type!r}")
        obj = _json(buf[start:end])
        if not isinstance(obj, dict):
            raise ProtobufError("the embedded JSON is not an object")
        return {**obj, **out}
    name = message_for(api_version, kind)
    if name is None:
        raise ProtobufError(f"no protobuf schema for kind {kind!r} in apiVersion {api_version!r}")
    out.update(decode_message(buf[start:end], name))
    return out


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    """Bytes of one proto ``message`` (full name, e.g. ``k8s.io.api.core.v1.Pod``) → its JSON dict."""
    msg = _registry().get(message)
    if msg is None:
        raise ProtobufError(f"unknown message {message}")
    buf = bytes(data)
    try:
        return _decode(buf, 0, len(buf), msg)
    except IndexError:
        raise ProtobufError(f"truncated {message}") from None
    except RecursionError:
        raise ProtobufError(f"{message} is nested too deeply") from None


# -- wire format -------------------------------------------------------------


def _varint_tail(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``first`` (>= 0x80) was already read."""
    result, shift = first & 0x7F, 7
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _scan(buf: bytes, pos: int, end: int) -> dict[int, Any]:
    """Fields of a small message by number (last wins): varints as ints, fixed as raw
    bytes, length-delimited as bytes.  For the well-known messages."""
    out: dict[int, Any] = {}
    while pos < end:
        key = buf[pos]
        pos += 1
        if key >= 0x80:
            key, pos = _varint_tail(buf, pos, key)
        wt = key & 7
        if wt == 0:
            v = buf[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint_tail(buf, pos, v)
            out[key >> 3] = v
        elif wt == 2:
            n = buf[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint_tail(buf, pos, n)
            if pos + n > end:
                raise ProtobufError("truncated message")
            out[key >> 3] = buf[pos:pos + n]
            pos += n
        elif wt == 1 or wt == 5:
            n = 8 if wt == 1 else 4
            out[key >> 3] = buf[pos:pos + n]
            pos += n
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
    if pos != end:
        raise ProtobufError("truncated message")
    return out


def _unknown(buf: bytes, pos: int, end: int) -> tuple[str, str, int, int, str, str]:
    """runtime.Unknown: (apiVersion, kind, raw start, raw end, contentEncoding, contentType)."""
    api_version = kind = encoding = content_type = ""
    raw = (pos, pos)
    while pos < end:
        key = buf[pos]
        pos += 1
        if key >= 0x80:
            key, pos = _varint_tail(buf, pos, key)
        if key & 7 != 2:
            pos = _skip(buf, pos, end, key & 7)
            continue
        n = buf[pos]
        pos += 1
        if n >= 0x80:
            n, pos = _varint_tail(buf, pos, n)
        nxt = pos + n
        if nxt > end:
            raise ProtobufError("truncated message")
        number = key >> 3
        if number == 1:  # typeMeta {1 apiVersion, 2 kind}
            tm = _scan(buf, pos, nxt)
            api_version = _str(tm.get(1, b""))
            kind = _str(tm.get(2, b""))
        elif number == 2:
            raw = (pos, nxt)
        elif number == 3:
            encoding = _str(buf[pos:nxt])
        elif number == 4:
            content_type = _str(buf[pos:nxt])
        pos = nxt
    if pos != end:
        raise ProtobufError("truncated message")
    return api_version, kind, raw[0], raw[1], encoding, content_type


def _skip(buf: bytes, pos: int, end: int, wt: int) -> int:
    if wt == 0:
        while buf[pos] >= 0x80:
            pos += 1
        return pos + 1
    if wt == 1:
        return pos + 8
    if wt == 5:
        return pos + 4
    if wt == 2:
        n = buf[pos]
        pos += 1
        if n >= 0x80:
            n, pos = _varint_tail(buf, pos, n)
        return pos + n
    raise ProtobufError(f"unsupported wire type {wt}")


def _str(b: bytes) -> str:
    # Go's JSON encoder replaces invalid UTF-8 the same way.
    return b.decode("utf-8", "replace")


def _varint_value(v: int, kind: int) -> Any:
    if kind == _INT32:
        v &= 0xFFFFFFFF
        return v - 0x100000000 if v >= 0x80000000 else v
    if kind == _INT64:
        v &= 0xFFFFFFFFFFFFFFFF
        return v - 0x10000000000000000 if v >= 0x8000000000000000 else v
    if kind == _BOOL:
        return v != 0
    if kind == _SINT:
        return (v >> 1) ^ -(v & 1)
    return v  # _UINT


def _fixed_value(b: bytes, kind: int) -> Any:
    fmt = {_FIXED32: "<I", _FIXED64: "<Q", _SFIXED32: "<i", _SFIXED64: "<q", _DOUBLE: "<d", _FLOAT: "<f"}[kind]
    return struct.unpack(fmt, b)[0]


def _decode(buf: bytes, pos: int, end: int, msg: _Message) -> dict[str, Any]:
    """One message's fields in ``buf[pos:end]`` → a JSON dict (the hot loop)."""
    out: dict[str, Any] = {}
    fields = msg.fields
    while pos < end:
        key = buf[pos]
        pos += 1
        if key >= 0x80:
            key, pos = _varint_tail(buf, pos, key)
        wt = key & 7
        f = fields.get(key >> 3)
        if wt == 2:
            n = buf[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint_tail(buf, pos, n)
            nxt = pos + n
            if nxt > end:
                raise ProtobufError(f"truncated {msg.name}")
            if f is None:
                pos = nxt
                continue
            name, kind, sub, repeated, keep, inline = f
            if kind == _STRING:
                v: Any = _str(buf[pos:nxt])
            elif kind == _MESSAGE:
                v = _decode(buf, pos, nxt, sub) if sub.convert is None else sub.convert(buf, pos, nxt, sub)
                pos = nxt
                if v is _ABSENT:
                    if not repeated:
                        continue
                    v = None
                if inline:
                    out.update(v)
                elif repeated:
                    lst = out.get(name)
                    if lst is None:
                        out[name] = [v]
                    else:
                        lst.append(v)
                else:
                    out[name] = v  # kept even when empty: emptyDir: {}
                continue
            elif kind == _MAP:
                k, v = _map_entry(buf, pos, nxt, sub, msg, name)
                d = out.get(name)
                if d is None:
                    out[name] = {k: v}
                else:
                    d[k] = v
                pos = nxt
                continue
            elif kind == _BYTES:
                v = base64.b64encode(buf[pos:nxt]).decode("ascii")
            elif repeated:  # packed repeated scalars
                lst = out.get(name)
                if lst is None:
                    lst = out[name] = []
                lst.extend(_unpack(buf, pos, nxt, kind))
                pos = nxt
                continue
            else:
                raise ProtobufError(f"{msg.name}.{name}: unexpected length-delimited value")
            pos = nxt
        elif wt == 0:
            v = buf[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint_tail(buf, pos, v)
            if f is None:
                continue
            name, kind, sub, repeated, keep, inline = f
            if kind not in _VARINT_KINDS:
                raise ProtobufError(f"{msg.name}.{name}: unexpected varint")
            if kind != _UINT:
                v = _varint_value(v, kind)
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            raw = buf[pos:pos + size]
            pos += size
            if f is None:
                continue
            name, kind, sub, repeated, keep, inline = f
            if kind not in (_I64_KINDS if wt == 1 else _I32_KINDS):
                raise ProtobufError(f"{msg.name}.{name}: unexpected fixed-size value")
            if len(raw) != size:
                raise ProtobufError(f"truncated {msg.name}")
            v = _fixed_value(raw, kind)
        else:
            raise ProtobufError(f"{msg.name}: unsupported wire type {wt}")
        if repeated:
            lst = out.get(name)
            if lst is None:
                out[name] = [v]
            else:
                lst.append(v)
        elif v or keep:
            out[name] = v
    if pos != end:
        raise ProtobufError(f"truncated {msg.name}")
    return out


def _unpack(buf: bytes, pos: int, end: int, kind: int) -> list[Any]:
    out: list[Any] = []
    if kind in _VARINT_KINDS:
        while pos < end:
            v = buf[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint_tail(buf, pos, v)
            out.append(_varint_value(v, kind))
        if pos != end:
            raise ProtobufError("truncated packed field")
        return out
    size = 8 if kind in _I64_KINDS else 4
    if (end - pos) % size:
        raise ProtobufError("truncated packed field")
    for i in range(pos, end, size):
        out.append(_fixed_value(buf[i:i + size], kind))
    return out


def _map_entry(buf: bytes, pos: int, end: int, spec: tuple, msg: _Message, name: str) -> tuple[Any, Any]:
    """A map entry {1 key, 2 value}; a missing part is its type's zero value."""
    key_kind, value_kind, value_msg = spec
    key: Any = None
    value: Any = None
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint_tail(buf, pos, tag)
        number, wt = tag >> 3, tag & 7
        kind = key_kind if number == 1 else value_kind if number == 2 else None
        if kind is None:
            pos = _skip(buf, pos, end, wt)
            continue
        if wt == 2:
            n = buf[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint_tail(buf, pos, n)
            nxt = pos + n
            if nxt > end:
                raise ProtobufError(f"truncated {msg.name}.{name}")
            if kind == _STRING:
                v: Any = _str(buf[pos:nxt])
            elif kind == _BYTES:
                v = base64.b64encode(buf[pos:nxt]).decode("ascii")
            elif kind == _MESSAGE:
                v = (_decode(buf, pos, nxt, value_msg) if value_msg.convert is None
                     else value_msg.convert(buf, pos, nxt, value_msg))
            else:
                raise ProtobufError(f"{msg.name}.{name}: unexpected length-delimited map value")
            pos = nxt
        elif wt == 0 and kind in _VARINT_KINDS:
            v = buf[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint_tail(buf, pos, v)
            v = _varint_value(v, kind)
        elif (wt == 1 and kind in _I64_KINDS) or (wt == 5 and kind in _I32_KINDS):
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise ProtobufError(f"truncated {msg.name}.{name}")
            v = _fixed_value(buf[pos:pos + size], kind)
            pos += size
        else:
            raise ProtobufError(f"{msg.name}.{name}: unexpected wire type {wt} in a map entry")
        if number == 1:
            key = v
        else:
            value = v
    if pos != end:
        raise ProtobufError(f"truncated {msg.name}.{name}")
    if key is None:
        key = _zero(key_kind, None)
    if value is None:
        value = _zero(value_kind, value_msg)
    if value is _ABSENT:
        value = None
    return key, value


def _zero(kind: int, sub: _Message | None) -> Any:
    if kind in (_STRING, _BYTES):
        return ""
    if kind == _BOOL:
        return False
    if kind == _MESSAGE and sub is not None:
        return {} if sub.convert is None else sub.convert(b"", 0, 0, sub)
    return 0


# -- well-known messages -------------------------------------------------------


def _quantity(buf: bytes, pos: int, end: int, msg: _Message) -> str:
    # resource.Quantity {1 string}: its canonical string, which is its JSON form.
    return _str(_scan(buf, pos, end).get(1, b"")) or "0"


def _int_or_string(buf: bytes, pos: int, end: int, msg: _Message) -> int | str:
    # intstr.IntOrString {1 type (0 int, 1 string), 2 intVal, 3 strVal}; an int 0 is a value.
    f = _scan(buf, pos, end)
    if f.get(1, 0) == 1:
        return _str(f.get(3, b""))
    return _varint_value(f.get(2, 0), _INT32)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(buf: bytes, pos: int, end: int) -> tuple[datetime, int] | None:
    if pos == end:
        return None  # Go marshals the zero Time as an empty message
    f = _scan(buf, pos, end)
    seconds = _varint_value(f.get(1, 0), _INT64)
    nanos = _varint_value(f.get(2, 0), _INT32)
    try:
        return _EPOCH + timedelta(seconds=seconds), nanos
    except OverflowError:
        raise ProtobufError(f"time out of range: {seconds}s") from None


def _time(buf: bytes, pos: int, end: int, msg: _Message) -> Any:
    # meta.v1.Time {1 seconds, 2 nanos} → RFC 3339 in UTC, whole seconds (as Go's JSON).
    t = _datetime(buf, pos, end)
    if t is None:
        return _ABSENT
    d = t[0]
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


def _micro_time(buf: bytes, pos: int, end: int, msg: _Message) -> Any:
    # meta.v1.MicroTime: RFC 3339 with exactly 6 fractional digits.
    t = _datetime(buf, pos, end)
    if t is None:
        return _ABSENT
    d, nanos = t
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
            f".{nanos // 1000:06d}Z")


def _duration(buf: bytes, pos: int, end: int, msg: _Message) -> str:
    # meta.v1.Duration {1 duration (int64 ns)} → Go's time.Duration.String().
    return go_duration(_varint_value(_scan(buf, pos, end).get(1, 0), _INT64))


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: "0s", "1.5s", "5m0s", "1h0m0s", "250ms"."""
    if ns == 0:
        return "0s"
    u = -ns if ns < 0 else ns
    if u < 1_000_000_000:
        if u < 1_000:
            s = f"{u}ns"
        elif u < 1_000_000:
            s = _frac(u, 3) + "µs"
        else:
            s = _frac(u, 6) + "ms"
    else:
        secs = u // 1_000_000_000
        s = _frac(u, 9)
        s = f"{secs % 60}{s[len(str(secs)):]}s"
        minutes = secs // 60
        if minutes:
            s = f"{minutes % 60}m{s}"
            if minutes // 60:
                s = f"{minutes // 60}h{s}"
    return "-" + s if ns < 0 else s


def _frac(u: int, prec: int) -> str:
    """u / 10**prec with the fraction's trailing zeros (and a bare point) trimmed."""
    whole, frac = divmod(u, 10**prec)
    if not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{prec}d}".rstrip("0")


def _raw_json(buf: bytes, pos: int, end: int, msg: _Message) -> Any:
    # runtime.RawExtension {1 raw} and meta.v1.FieldsV1 {1 Raw}: the bytes are the
    # embedded JSON (or, from a protobuf client, possibly a nested protobuf object).
    raw = _scan(buf, pos, end).get(1)
    if raw is None:
        return _ABSENT  # nil Raw: JSON null
    if raw.startswith(MAGIC):
        return decode_object(raw)
    return _json(raw)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ProtobufError(f"embedded object is not JSON: {e}") from None


def _string_list(buf: bytes, pos: int, end: int, msg: _Message) -> list[str]:
    # Go named slices (type Verbs []string, ExtraValue): {repeated string items = 1} → the list.
    return _decode(buf, pos, end, msg).get("items", [])
