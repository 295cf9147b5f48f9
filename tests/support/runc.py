"""Leave no containers behind: runc containers outlive the kubelet that started them
(as with containerd's shims), so tests that run a node agent on runc clean up after it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from pinnace.kubelet.runtime.runc import cgroup_dirs, cgroup_version

RUNC = shutil.which("runc")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def cgroup_problem() -> str | None:
    """Why runc could not manage cgroups here (None: it can)."""
    dirs = cgroup_dirs(f"pinnace-probe-{uuid.uuid4().hex[:8]}")
    if not dirs:
        return "no cgroup hierarchy is mounted"
    made = []
    try:
        for d in dirs:
            d.mkdir()
            made.append(d)
    except OSError as e:
        return f"cannot create cgroups ({e})"
    finally:
        for d in reversed(made):
            d.rmdir()
    return None


def runc_skip_reason() -> str | None:
    """Why real runc containers cannot run here (None: they can)."""
    if RUNC is None:
        return "runc is not installed (apt-get install runc)"
    if os.geteuid() != 0:
        return "runc containers need root"
    if not Path(BUSYBOX).exists():
        return "busybox is not installed (apt-get install busybox-static)"
    return cgroup_problem()


def memory_controller() -> bool:
    if cgroup_version() == 2:
        return "memory" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    return Path("/sys/fs/cgroup/memory/cgroup.procs").exists()


def remove_runc_containers(data_dir: Path) -> None:
    """Force-delete every runc container whose state lives under ``data_dir``, remove the pod
    cgroups the runtime made for them (runc removes only each container's own), and unmount
    what their rootfs and pinned namespaces left mounted there."""
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
    for record in data_dir.rglob("sandboxes/*/sandbox.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, AttributeError):
            pod_cgroup = json.loads(record.read_text())["cgroups_path"].rsplit("/", 1)[0]
            for d in cgroup_dirs(pod_cgroup):
                for sub in sorted(d.glob("*/"), reverse=True) if d.is_dir() else []:
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    d.rmdir()
    prefix = str(data_dir.resolve())
    with open("/proc/self/mounts") as f:
        mounted = [line.split()[1] for line in f]
    for target in sorted((m for m in mounted if m.startswith(prefix)), key=len, reverse=True):
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", target], capture_output=True)
