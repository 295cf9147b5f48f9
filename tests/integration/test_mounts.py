"""Mounts and pinned namespaces (pinnace.kubelet.mounts), on the real kernel.  Needs root
and util-linux's unshare; skipped otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pinnace.kubelet import mounts

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare")


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _ns_of(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


async def test_pinned_namespaces_live_without_a_process_and_go_with_unpin(tmp_path: Path) -> None:
    paths = {"ipc": tmp_path / "ns" / "ipc", "uts": tmp_path / "ns" / "uts"}
    await mounts.pin_namespaces(paths)
    try:
        assert all(mounts.is_pinned(p) for p in paths.values())
        assert not mounts.is_pinned(tmp_path / "ns")
        # New namespaces, not ours; a process can join them by the files (what runc does).
        inode = {kind: f"{kind}:[{os.stat(p).st_ino}]" for kind, p in paths.items()}
        assert inode["ipc"] != _ns_of("self", "ipc") and inode["uts"] != _ns_of("self", "uts")
        out = _run("nsenter", f"--ipc={paths['ipc']}", f"--uts={paths['uts']}", "sh", "-c",
                   "hostname pinned-test && readlink /proc/self/ns/ipc /proc/self/ns/uts").split()
        assert out == [inode["ipc"], inode["uts"]]
        # The hostname set there stays in the pinned namespace, not the host's.
        again = _run("nsenter", f"--uts={paths['uts']}", "hostname").strip()
        assert again == "pinned-test" and os.uname().nodename != "pinned-test"
        assert sorted(mounts.mounts_under(tmp_path)) == sorted(map(str, paths.values()))
    finally:
        for p in paths.values():
            mounts.unpin(p)
    assert not any(p.exists() for p in paths.values())
    assert mounts.mounts_under(tmp_path) == []
    mounts.unpin(paths["ipc"])  # idempotent


async def test_pin_refuses_unknown_kinds_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await mounts.pin_namespaces({"pid": tmp_path / "pid"})
    # A path whose parent is a file: unshare cannot bind-mount there; nothing stays pinned.
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        await mounts.pin_namespaces({"ipc": tmp_path / "ok", "uts": tmp_path / "file" / "uts"})
    assert mounts.mounts_under(tmp_path) == []


def test_mount_and_unmount_a_tmpfs(tmp_path: Path) -> None:
    target = tmp_path / "mem"
    target.mkdir()
    mounts.mount("tmpfs", target, "tmpfs", "mode=700,size=1m")
    try:
        assert mounts.mounts_under(tmp_path) == [str(target)]
        assert os.statvfs(target).f_blocks * os.statvfs(target).f_frsize == 1024 * 1024
        with pytest.raises(OSError, match="mount"):
            mounts.mount("none", tmp_path / "missing", "tmpfs")
    finally:
        mounts.unmount(target)
    assert mounts.mounts_under(tmp_path) == []
    mounts.unmount(target)  # not a mount point any more: nothing to do
    mounts.unmount(tmp_path / "never-made")
