"""Mounts and pinned namespaces on the node.

Mounting and unmounting go straight to the syscalls: the kubelet makes several mounts per
pod (the container's overlay, a tmpfs per memory-backed volume), and a ``mount`` process for
each would cost more than the mount.

A *pinned* namespace is an nsfs bind mount of a namespace on a file the kubelet owns: the
namespace lives as long as the mount, with no process holding it (``ip netns add`` and
containerd pin a pod's network namespace that way; the runc runtime pins IPC and UTS too,
so a pod needs no pause process).  ``unshare --net=PATH --ipc=PATH ... true`` makes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from pinnace.procs import run_process

log = logging.getLogger(__name__)

MNT_DETACH = 2
NAMESPACE_KINDS = ("net", "ipc", "uts")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_points() -> list[str]:
    """Every mount point in our mount namespace, in order (from /proc/self/mountinfo)."""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]
    return []


def mounts_under(path: str | Path) -> list[str]:
    """Mount points at or below ``path``."""
    prefix = os.path.realpath(path)
    return [point for point in mount_points() if point == prefix or point.startswith(prefix.rstrip("/") + "/")]


def mount(source: str, target: str | Path, fstype: str, options: str = "", flags: int = 0) -> None:
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags, options.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def unmount(target: str | Path) -> None:
    """Unmount ``target``; nothing if it is not a mount point (or not there); lazily if
    something still uses it (a stray process)."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more), or no such path
        return
    if err == errno.EBUSY:
        log.warning("%s is busy, detaching it", target)
        if _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def is_pinned(path: str | Path) -> bool:
    """Whether ``path`` is a pinned (bind-mounted) namespace in our mount namespace: a stat
    shows it on nsfs, whose one superblock every namespace file shares (cheaper than reading
    mountinfo, which grows with every pod)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


async def pin_namespaces(paths: Mapping[str, str | Path]) -> None:
    """Pin new namespaces, one per kind ("net", "ipc", "uts") at its path: ``unshare`` makes
    a child in new namespaces and bind-mounts each onto its (empty) file.  All or none: on
    failure nothing stays pinned."""
    if not paths or not set(paths) <= set(NAMESPACE_KINDS):
        raise ValueError(f"namespace kinds must be among {NAMESPACE_KINDS}: {sorted(paths)}")
    _make_files(paths.values())
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    true = shutil.which("true") or "/bin/true"
    rc, _, err = await run_process([unshare, *(f"--{kind}={p}" for kind, p in paths.items()), true], timeout=30)
    if rc != 0 or not all(is_pinned(p) for p in paths.values()):
        for p in paths.values():
            unpin(p)
        raise OSError(errno.EIO, f"cannot create namespaces {dict(paths)}: {err.decode(errors='replace').strip()}")


def _make_files(paths: Iterable[str | Path]) -> None:
    """The empty files namespaces are bind-mounted on."""
    for p in map(Path, paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch(mode=0o444, exist_ok=True)


def unpin(path: str | Path) -> None:
    """Unmount (lazily: a process may still be in the namespace) and delete a pinned
    namespace file."""
    p = Path(path)
    while is_pinned(p):  # stacked mounts: unmount each
        if _libc.umount2(os.fsencode(str(p)), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):  # not a mount point, or gone
                break
            raise OSError(err, f"unmount {p}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        p.unlink()


__all__ = ["MNT_DETACH", "NAMESPACE_KINDS", "is_pinned", "mount", "mount_points", "mounts_under",
           "pin_namespaces", "unmount", "unpin"]
