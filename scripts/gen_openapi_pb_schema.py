#!/usr/bin/env python3
"""Write src/pinnace/apiserver/openapi_v2_pb_schema.json: the message/field-number
table of gnostic's ``openapi.v2`` protobuf schema (openapiv2/OpenAPIv2.proto),
taken from the descriptor compiled into a real kubectl binary.

kubectl <= 1.27 reads ``/openapi/v2`` as a protobuf ``openapi.v2.Document``;
:mod:`pinnace.apiserver.openapi_pb` encodes that message from this table, so the
field numbers come from the wire schema kubectl actually uses, not from memory.

Usage::

    python scripts/gen_openapi_pb_schema.py [--kubectl PATH] [--out PATH]

Needs the ``protobuf`` package (a test dependency, never a runtime one).
The tests import :func:`find_kubectl` and :func:`extract_file_descriptor` from
here to check the encoder against the real descriptor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kubectl_binary import kubectl_home, kubectl_version
from kubectl_binary import varint as _varint

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "pinnace" / "apiserver" / "openapi_v2_pb_schema.json"
PACKAGE = "openapi.v2"
PROTO_NAME = "openapiv2/OpenAPIv2.proto"
GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"

# descriptor.proto FieldDescriptorProto.Type numbers -> the names the table uses;
# only these occur in OpenAPIv2.proto (the generator fails loudly on any other).
_TYPES = {1: "double", 3: "int64", 8: "bool", 9: "string", 11: "message"}
_LABEL_REPEATED = 3


def find_kubectl() -> Path | None:
    """kubectl 1.27 (the last release that reads /openapi/v2 as protobuf), else None."""
    env = os.environ.get("PINNACE_KUBECTL_127")
    if env:
        return Path(env) if Path(env).exists() else None
    home = kubectl_home()
    if home is None:
        return None
    candidate = home / "kubectl.1.27"
    return candidate if candidate.exists() else None



def _raw_descriptor_end(data: bytes, start: int) -> int:
    """End of a serialized FileDescriptorProto starting at ``start``.

    protobuf-go keeps descriptors uncompressed (``rawDesc``) and back to back
    with other data, so walk the top-level fields and stop at the first thing
    that cannot continue this message: an invalid field/wire type or a second
    ``name`` (field 1), which means the next descriptor has begun.
    """
    pos, seen_name = start, False
    while pos < len(data):
        try:
            key, p = _varint(data, pos)
        except ValueError:
            break
        number, wire = key >> 3, key & 7
        if not 1 <= number <= 14 or (number == 1 and seen_name):
            break
        seen_name = seen_name or number == 1
        if wire == 2:
            length, p = _varint(data, p)
            p += length
        elif wire == 0:
            _, p = _varint(data, p)
        else:
            break
        if p > len(data):
            break
        pos = p
    return pos


def extract_file_descriptor(binary: Path, package: str = PACKAGE) -> Any:
    """The ``FileDescriptorProto`` of ``package`` compiled into a Go ``binary``.

    Tries the uncompressed protobuf-go form first (gnostic-models), then the
    gzipped form older generators embed.
    """
    from google.protobuf import descriptor_pb2

    data = binary.read_bytes()
    needle = b"\x12" + bytes([len(package)]) + package.encode()  # field 2 (package)
    i = 0
    while (i := data.find(needle, i)) >= 0:
        # The file name (field 1) sits right before: 0x0a <len> <name>.
        for name_len in range(1, 128):
            start = i - name_len - 2
            if start >= 0 and data[start] == 0x0A and data[start + 1] == name_len:
                break
        else:
            i += 1
            continue
        raw = data[start:_raw_descriptor_end(data, start)]
        fd = descriptor_pb2.FileDescriptorProto()
        try:
            fd.ParseFromString(raw)
        except Exception:
            i += 1
            continue
        if fd.package == package and fd.message_type:
            return fd
        i += 1
    i = 0
    while (i := data.find(GZIP_MAGIC, i)) >= 0:
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:i + 2_000_000])
            fd = descriptor_pb2.FileDescriptorProto()
            fd.ParseFromString(raw)
            if fd.package == package and fd.message_type:
                return fd
        except Exception:
            pass
        i += 1
    raise LookupError(f"no {package} descriptor in {binary}")


def build_table(fd: Any) -> dict[str, Any]:
    """{message: {field_name: {number, type[, message][, repeated][, oneof]}}}."""
    messages: dict[str, Any] = {}
    prefix = "." + fd.package + "."
    for m in fd.message_type:
        fields: dict[str, Any] = {}
        for f in m.field:
            if f.type not in _TYPES:
                raise ValueError(f"{m.name}.{f.name}: unsupported field type {f.type}")
            entry: dict[str, Any] = {"number": f.number, "type": _TYPES[f.type]}
            if f.type == 11:
                # Only openapi.v2 messages are encoded; google.protobuf.Any (Any.value) is kept by name.
                entry["message"] = f.type_name.removeprefix(prefix)
            if f.label == _LABEL_REPEATED:
                entry["repeated"] = True
            if f.HasField("oneof_index"):
                entry["oneof"] = m.oneof_decl[f.oneof_index].name
            fields[f.name] = entry
        messages[m.name] = fields
    return messages


def render(doc: dict[str, Any]) -> str:
    """JSON with one line per field, so regenerating gives a readable diff."""
    lines = ["{"]
    for key in ("_generated", "source"):
        lines.append(f" {json.dumps(key)}: {json.dumps(doc[key])},")
    lines.append(' "messages": {')
    messages = list(doc["messages"].items())
    for i, (name, fields) in enumerate(messages):
        lines.append(f"  {json.dumps(name)}: {{")
        items = list(fields.items())
        for j, (fname, entry) in enumerate(items):
            lines.append(f"   {json.dumps(fname)}: {json.dumps(entry)}{',' if j < len(items) - 1 else ''}")
        lines.append("  }" + ("," if i < len(messages) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubectl", type=Path, default=None, help="kubectl binary (default: kubectl.1.27)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    binary = args.kubectl or find_kubectl()
    if binary is None:
        print("no kubectl.1.27 found; pass --kubectl", file=sys.stderr)
        return 1
    fd = extract_file_descriptor(binary)
    version = kubectl_version(binary)
    doc = {
        "_generated": (f"by scripts/gen_openapi_pb_schema.py from {fd.name} (package {fd.package}, "
                       f"{fd.syntax}) embedded in {binary.name} {version}; do not edit"),
        "source": {
            "binary": binary.name,
            "kubectl_version": version,
            "binary_sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
            "proto": fd.name,
            "package": fd.package,
            "syntax": fd.syntax,
        },
        "messages": build_table(fd),
    }
    args.out.write_text(render(doc))
    print(f"wrote {args.out} ({len(doc['messages'])} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
