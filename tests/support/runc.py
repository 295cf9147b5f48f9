"""Leave no containers behind: runc containers outlive the kubelet that started them
(as with containerd's shims), so tests that run a node agent on runc clean up after it."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path


def remove_runc_containers(data_dir: Path) -> None:
    """Force-delete every runc container whose state lives under ``data_dir`` and unmount
    what their rootfs left mounted there."""
    runc = shutil.which("runc")
    if runc is None:
        return
    for root in data_dir.rglob("state"):
        if not root.is_dir() or root.parent.name != "runc":
            continue
        listed = subprocess.run([runc, "--root", str(root), "list", "--format", "json"], capture_output=True,
                                text=True)
        for container in json.loads(listed.stdout or "null") or []:
            subprocess.run([runc, "--root", str(root), "delete", "--force", container["id"]], capture_output=True)
    prefix = str(data_dir.resolve())
    with open("/proc/self/mounts") as f:
        mounted = [line.split()[1] for line in f]
    for target in sorted((m for m in mounted if m.startswith(prefix)), key=len, reverse=True):
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", target], capture_output=True)
