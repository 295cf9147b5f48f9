"""What the protobuf schema generators share: finding the kubectl binaries on this
machine, asking one its version, and reading protobuf varints from its bytes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


def kubectl_home() -> Path | None:
    """The directory of the real kubectl (where the pinned ``kubectl.1.N`` live)."""
    default = shutil.which("kubectl")
    return Path(os.path.realpath(default)).parent if default else None


def kubectl_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return json.loads(out)["clientVersion"]["gitVersion"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return "unknown"


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos
