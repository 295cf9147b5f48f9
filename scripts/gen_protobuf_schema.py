#!/usr/bin/env python3
"""Write src/pinnace/api/protobuf_schema.json: the wire schema of the Kubernetes
protobuf encoding (``application/vnd.kubernetes.protobuf``), taken from the
``k8s.io/.../generated.proto`` descriptors compiled into a real kubectl binary.

:mod:`pinnace.api.protobuf` decodes request bodies with this table, so field
numbers and types come from the schema clients actually use, not from memory.

Usage::

    python scripts/gen_protobuf_schema.py [KUBECTL] [--out PATH]

``KUBECTL`` defaults to the newest ``kubectl.1.*`` beside the ``kubectl`` on
PATH.  Needs the ``protobuf`` package (a test dependency, never a runtime one).
The tests import :func:`find_kubectl` and :func:`extract_descriptors` from here
to encode test vectors with the very same descriptors.

Where the data comes from
-------------------------
Go binaries register every generated ``.proto`` as a gzipped, serialized
``FileDescriptorProto``.  Kubernetes generates its protobuf code with gogo, and
the embedded descriptors keep the gogoproto field options; three facts the
JSON form needs are recovered from the binary:

* Go pointer fields: go-to-protobuf marks every non-pointer field with
  ``(gogoproto.nullable) = false``, so a scalar field *without* it is a Go
  pointer (``*int32``, ``*bool``, ``*string``).  gogo marshals non-pointer
  scalars even when zero while JSON omits them (omitempty), but a pointer's
  explicit zero (``replicas: 0``) is meaningful: flag ``p``.
* Inline embedded structs (``json:",inline"``, e.g. ``Volume.volumeSource``,
  ``Probe.handler``, ``ConfigMapKeySelector.localObjectReference``) are a
  separate proto field but flat in JSON.  The descriptor cannot tell them apart
  from named embedded structs (``ObjectMeta`` is ``metadata``), but the Go
  struct tags are in the binary too: ``json:",inline" protobuf:"bytes,2,opt,
  name=volumeSource"`` names the proto field: flag ``i``.
* JSON names: a proto field is named after its JSON key, except a few
  (``aPIGroup`` for ``apiGroup``, ``uID``, ``Webhooks``, ``Expression``); the
  struct tags (``json:"apiGroup,omitempty" protobuf:"...,name=aPIGroup"``) give
  the JSON key.

Table format
------------
::

    {"_generated": "...", "kubectl": "v1.33.1", "files": [...], "lists": [...],
     "messages": {"k8s.io.api.core.v1.Pod": {"1": ["metadata", "message",
                   "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", ""], ...}, ...}}

``messages`` maps a message's full name (no leading dot) to its fields, keyed
by field number as a string; each field is ``[name, kind, type, flags]``:

* ``name``: the JSON key (the proto field name, corrected from the Go tags);
* ``kind``: a protobuf scalar type (``string``, ``bytes``, ``bool``, ``int32``,
  ``int64``, ``uint32``, ``uint64``, ``sint32``, ``sint64``, ``fixed32``,
  ``fixed64``, ``sfixed32``, ``sfixed64``, ``double``, ``float``, ``enum``),
  ``message``, or ``map``;
* ``type``: for ``message`` the message's full name; for ``map``
  ``[key kind, value kind, value message name or null]`` (map entry messages are
  folded into this and not listed); otherwise null;
* ``flags``: ``r`` repeated, ``p`` Go pointer scalar (keep explicit zeros),
  ``i`` inline (merge the sub-object's keys into the parent); often ``""``.

``lists`` names the messages that stand for a Go named slice (``type Verbs
[]string``, ``ExtraValue``): a message with one repeated field ``items`` and a
custom Go String method (``(gogoproto.goproto_stringer) = false``); JSON has
the bare list.

Only the API groups Pinnace serves (``FILES``) are included, without comments
or options, to keep the table small.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kubectl_binary import kubectl_home, kubectl_version
from kubectl_binary import varint as _varint

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "pinnace" / "api" / "protobuf_schema.json"
GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"

_API = ("core/v1 apps/v1 batch/v1 networking/v1 coordination/v1 discovery/v1 events/v1 rbac/v1 storage/v1 "
        "policy/v1 autoscaling/v1 autoscaling/v2 scheduling/v1 certificates/v1 authentication/v1 "
        "authorization/v1 admissionregistration/v1").split()
FILES = [f"k8s.io/api/{gv}/generated.proto" for gv in _API] + [
    f"k8s.io/apimachinery/pkg/{p}/generated.proto"
    for p in ("apis/meta/v1", "runtime", "util/intstr", "api/resource")
]

# descriptor.proto FieldDescriptorProto.Type numbers (10 = group: never in Kubernetes).
_TYPES = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
          8: "bool", 9: "string", 11: "message", 12: "bytes", 13: "uint32", 14: "enum", 15: "sfixed32",
          16: "sfixed64", 17: "sint32", 18: "sint64"}
_LABEL_REPEATED = 3
_GOGO_NULLABLE = 65001  # extension number of (gogoproto.nullable) in FieldOptions
_GOGO_GOPROTO_STRINGER = 64003  # ... of (gogoproto.goproto_stringer) in MessageOptions

# The json and protobuf keys of one Go struct tag (other keys, e.g. patchStrategy, may sit between).
_TAG = re.compile(rb'json:"([^"]*)"(?: \w+:"[^"]*")* protobuf:"\w+,(\d+),([^"]*)"')


def find_kubectl() -> Path | None:
    """The newest ``kubectl.1.N`` beside the ``kubectl`` on PATH (else that kubectl), or None."""
    env = os.environ.get("PINNACE_KUBECTL_PROTO")
    if env:
        return Path(env)
    home = kubectl_home()
    if home is None:
        return None
    versioned = [p for p in home.glob("kubectl.1.*") if p.suffix[1:].isdigit()]
    if versioned:
        return max(versioned, key=lambda p: int(p.suffix[1:]))
    return home / "kubectl"


def extract_descriptors(binary: Path, names: list[str] | None = None) -> dict[str, Any]:
    """``{file name: FileDescriptorProto}`` of the ``k8s.io/`` protos embedded in a Go binary
    (only ``names`` if given)."""
    from google.protobuf import descriptor_pb2

    data = binary.read_bytes()
    found: dict[str, Any] = {}
    i = 0
    while (i := data.find(GZIP_MAGIC, i)) >= 0:
        try:
            # A gzip stream ends by itself; the slice only bounds the work on false hits.
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:i + 4_000_000])
            fd = descriptor_pb2.FileDescriptorProto()
            fd.ParseFromString(raw)
        except Exception:
            i += 1
            continue
        if fd.name.startswith("k8s.io/") and (names is None or fd.name in names):
            found.setdefault(fd.name, fd)
        i += 1
    return found


class GoTags:
    """What the Go struct tags in a binary say about proto fields, by (number, proto name).

    Tags are deduplicated strings, not tied to their struct, so a proto field is
    matched by (number, name):

    * ``json_name``: the JSON key.  The proto name is usually the JSON key, but
      not always (``aPIGroup`` → ``apiGroup``, ``uID`` → ``uid``, ``Webhooks``
      → ``webhooks``).
    * ``inline``: ``json:",inline"`` embedded structs.  One such tag has no name
      (``EphemeralContainerCommon``: ``protobuf:"bytes,1,req"``); a field matches
      it by number only if its name is the embedded type's (lowerCamel) and no
      named tag uses it.
    """

    def __init__(self, binary: Path) -> None:
        self.inline_named: set[tuple[int, str]] = set()
        self.inline_unnamed: set[int] = set()
        self.json: dict[tuple[int, str], set[str]] = {}
        for m in _TAG.finditer(binary.read_bytes()):
            number = int(m.group(2))
            names = [p[5:] for p in m.group(3).decode().split(",") if p.startswith("name=")]
            json_name = m.group(1).decode().split(",")[0]
            if m.group(1) == b",inline":
                if names:
                    self.inline_named.add((number, names[0]))
                else:
                    self.inline_unnamed.add(number)
            elif names:
                self.json.setdefault((number, names[0]), set()).add(json_name)

    def inline(self, number: int, name: str, type_name: str) -> bool:
        if (number, name) in self.inline_named:
            if (number, name) in self.json:
                raise ValueError(f"proto field {number} {name!r} is inline in one Go struct, named in another")
            return True
        short = type_name.rsplit(".", 1)[-1]
        return (number in self.inline_unnamed and (number, name) not in self.json
                and name == short[:1].lower() + short[1:])

    def json_name(self, number: int, name: str, where: str) -> str:
        keys = self.json.get((number, name), set()) - {"", "-"}
        if not keys or keys == {name}:
            return name
        if len(keys) == 1:
            return keys.pop()
        raise ValueError(f"{where}: proto field {number} {name!r} has JSON names {sorted(keys)}")


def _option_varint(options: bytes, number: int) -> int | None:
    """The value of varint field ``number`` in serialized options (extensions stay unknown fields)."""
    pos, n = 0, len(options)
    found = None
    while pos < n:
        key, pos = _varint(options, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(options, pos)
            if key >> 3 == number:
                found = value
        elif wire == 2:
            length, pos = _varint(options, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire} in field options")
    return found



def build_table(fds: dict[str, Any], tags: GoTags) -> tuple[dict[str, Any], list[str]]:
    """(messages, list wrapper message names); see the module docstring."""
    messages: dict[str, Any] = {}
    lists: list[str] = []
    maps: dict[str, Any] = {}  # map entry message name -> [key kind, value kind, value type]

    def walk(prefix: str, msgs: Any, out: list) -> None:
        for m in msgs:
            full = f"{prefix}.{m.name}"
            if m.options.map_entry:
                key, value = sorted(m.field, key=lambda f: f.number)
                maps[full] = [_TYPES[key.type], _TYPES[value.type],
                              value.type_name.lstrip(".") if value.type == 11 else None]
            else:
                out.append((full, m))
            walk(full, m.nested_type, out)

    all_msgs: list = []
    for name in FILES:
        fd = fds[name]
        walk(fd.package, fd.message_type, all_msgs)
    for full, m in all_msgs:
        fields: dict[str, Any] = {}
        for f in sorted(m.field, key=lambda f: f.number):
            if f.type not in _TYPES:
                raise ValueError(f"{full}.{f.name}: unsupported field type {f.type}")
            kind, tname = _TYPES[f.type], f.type_name.lstrip(".") or None
            flags = ""
            if tname in maps:
                kind, tname = "map", maps[tname]
            elif f.label == _LABEL_REPEATED:
                flags += "r"
            elif kind == "message":
                if tags.inline(f.number, f.name, tname):
                    flags += "i"
            elif kind != "bytes" and _option_varint(f.options.SerializeToString(), _GOGO_NULLABLE) != 0:
                # ([]byte is nil-able either way; gogo ignores nullable there.)
                flags += "p"
            fields[str(f.number)] = [tags.json_name(f.number, f.name, full), kind, tname, flags]
        messages[full] = fields
        if (len(m.field) == 1 and m.field[0].name == "items" and m.field[0].label == _LABEL_REPEATED
                and _option_varint(m.options.SerializeToString(), _GOGO_GOPROTO_STRINGER) == 0):
            lists.append(full)
    # Every referenced message must be in the table (the file list is closed under imports).
    for full, fields in messages.items():
        for name, kind, tname, _ in fields.values():
            ref = tname[2] if kind == "map" else tname if kind == "message" else None
            if ref is not None and ref not in messages:
                raise ValueError(f"{full}.{name} refers to {ref}, which is not in the table")
    return messages, lists



def render(doc: dict[str, Any]) -> str:
    """Compact JSON, one message per line so diffs between releases stay readable."""
    head = {k: v for k, v in doc.items() if k != "messages"}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"messages":{']
    items = list(doc["messages"].items())
    for i, (name, fields) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        lines.append(json.dumps(name) + ":" + json.dumps(fields, separators=(",", ":")) + sep)
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kubectl", type=Path, nargs="?", default=None,
                        help="kubectl binary (default: the newest kubectl.1.* beside kubectl on PATH)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    binary = args.kubectl or find_kubectl()
    if binary is None:
        print("no kubectl found; pass its path", file=sys.stderr)
        return 1
    fds = extract_descriptors(binary, FILES)
    missing = [f for f in FILES if f not in fds]
    if missing:
        print(f"{binary}: no descriptor for {', '.join(missing)}", file=sys.stderr)
        return 1
    version = kubectl_version(binary)
    messages, lists = build_table(fds, GoTags(binary))
    doc = {
        "_generated": (f"by scripts/gen_protobuf_schema.py from the generated.proto descriptors in "
                       f"kubectl {version} ({binary.name}); do not edit"),
        "kubectl": version,
        "files": FILES,
        "lists": lists,
        "messages": messages,
    }
    args.out.write_text(render(doc))
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(messages)} messages, {size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
