"""Container log rotation (the kubelet's container log manager) with real files and a real
process-runtime container writing a lot, and ``kubectl logs`` reading across the rotated
files.  The runc shim's side of a rotation (reopen on SIGUSR1) is in
tests/integration/test_runc.py."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pinnace.kubelet import crilog
from pinnace.kubelet.logrotation import ContainerLogManager, parse_max_size
from pinnace.kubelet.runtime.base import ContainerConfig, RuntimeError_, SandboxConfig
from pinnace.kubelet.runtime.process import ProcessRuntime
from pinnace.kubelet.server import LogOptions, read_logs

pytestmark = pytest.mark.timeout(60)

# One numbered line after another, as fast as the shell goes: ~100 KB/s and more.
COUNTER = ["sh", "-c", 'i=0; while :; do echo "line $i ................................................"; '
                       "i=$((i+1)); done"]


class Clock:
    """Rotation names files by the second: a test rotating faster moves time on itself."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1
        return self.now


class Node:
    def __init__(self, runtime: ProcessRuntime, tmp: Path):
        self.runtime, self.tmp = runtime, tmp
        self.running: dict[str, Path] = {}

    async def run(self, name: str, args: list[str]) -> tuple[str, Path]:
        sandbox = await self.runtime.run_pod_sandbox(SandboxConfig(pod_uid=f"uid-{name}", name=name,
                                                                   namespace="default", hostname=name))
        log = self.tmp / "pods" / name / "c" / "0.log"
        cid = await self.runtime.create_container(sandbox, ContainerConfig(name="c", image="busybox", args=args,
                                                                           env={}, log_path=log))
        await self.runtime.start_container(cid)
        self.running[cid] = log
        return cid, log

    def manager(self, **kw) -> ContainerLogManager:
        return ContainerLogManager(self.runtime, lambda: list(self.running.items()), clock=Clock(), **kw)


@pytest.fixture
async def node(tmp_path) -> AsyncIterator[Node]:
    runtime = ProcessRuntime(tmp_path / "state", "192.0.2.10")
    n = Node(runtime, tmp_path)
    try:
        yield n
    finally:
        for sandbox in await runtime.list_pod_sandboxes():
            await runtime.stop_pod_sandbox(sandbox)
        await runtime.close()


def numbers(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.decode().splitlines()]


def entries_of(path: Path) -> bytes:
    """The log text of one file, plain or gzipped."""
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return b"".join(e.content for e in (crilog.parse_line(ln) for ln in raw.splitlines(keepends=True)) if e)


def size_of(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


async def grow(path: Path, size: int) -> None:
    deadline = time.monotonic() + 20
    while size_of(path) < size:
        assert time.monotonic() < deadline, f"{path} did not reach {size} bytes"
        await asyncio.sleep(0.02)


async def test_rotation_keeps_max_files_compresses_and_loses_nothing_in_between(node: Node):
    """Rotated as the kubelet does: ``N.log.<timestamp>``, the older ones gzipped, at most
    max-files files; every line of the kept files is there, in order, once."""
    cid, log = await node.run("busy", COUNTER)
    manager = node.manager(max_size="32Ki", max_files=4)
    for _ in range(6):
        await grow(log, 32 * 1024)
        assert await manager.rotate_container(cid, log)
    await grow(log, 1024)
    await node.runtime.stop_container(cid, 0)
    files = sorted(p.name for p in log.parent.iterdir())
    assert len(files) == 4  # max-files: the current log, one plain rotated, two compressed
    assert files[0] == "0.log"
    compressed, plain = files[1:3], files[3]
    assert all(name.startswith("0.log.") and name.endswith(".gz") for name in compressed)
    assert plain.startswith("0.log.") and len(plain) == len("0.log.20060102-150405")
    kept = [entries_of(log.parent / name) for name in (*compressed, plain, "0.log")]
    assert all(len(part) > 0 for part in kept)
    seq = [n for part in kept for n in numbers(part)]
    assert seq == list(range(seq[0], seq[0] + len(seq)))  # contiguous: nothing lost at a rotation
    assert seq[0] > 0  # the oldest rotated files were removed
    # What `kubectl logs` reads: the plain rotated file, then the current one.
    assert crilog.log_files(log) == [log.parent / plain, log]


async def test_kubectl_logs_reads_across_the_rotated_file(node: Node):
    """--tail and a plain read span the rotated (uncompressed) generation and the new file."""
    cid, log = await node.run("tail", ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo \"line $i\"; i=$((i+1)); "
                                                   "done; sleep 3600"])
    await grow(log, 400 * 40)  # all 400 lines written (each entry is ~40 bytes)
    manager = node.manager(max_size="1Ki", max_files=5)
    assert await manager.rotate_container(cid, log)
    await node.runtime.stop_container(cid, 0)
    assert not log.exists() or entries_of(log) == b""
    log.write_bytes(crilog.encode("stdout", b"line 400\nline 401\n"))  # what came after the rotation
    everything = read_logs(log, LogOptions.from_query({}))
    assert numbers(everything) == list(range(402))
    tail = read_logs(log, LogOptions.from_query({"tailLines": "5"}))
    assert numbers(tail) == [397, 398, 399, 400, 401]
    only_new = read_logs(log, LogOptions.from_query({"tailLines": "2"}))
    assert numbers(only_new) == [400, 401]


async def test_small_logs_are_left_alone_and_a_deleted_log_is_reopened(node: Node):
    cid, log = await node.run("quiet", ["sh", "-c", "echo first; read x; while :; do echo again; sleep 0.05; done"])
    await grow(log, 10)
    manager = node.manager(max_size="10Mi", max_files=5)
    assert not await manager.rotate_container(cid, log)
    assert sorted(p.name for p in log.parent.iterdir()) == ["0.log"]
    log.unlink()  # removed by hand: the container would write into a deleted file forever
    await manager.rotate_logs()
    assert log.exists()
    await node.runtime.stop_container(cid, 0)


async def test_failed_reopen_puts_the_log_back(node: Node):
    """A container that is not running cannot reopen: the rename is undone, to retry later."""
    cid, log = await node.run("done", ["sh", "-c", "echo bye"])
    deadline = time.monotonic() + 10
    while (await node.runtime.container_status(cid)).state != "exited":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    manager = node.manager(max_size="1", max_files=2)
    with pytest.raises(RuntimeError_):
        await manager.rotate_container(cid, log)
    assert sorted(p.name for p in log.parent.iterdir()) == ["0.log"]
    assert entries_of(log) == b"bye\n"
    await manager.rotate_logs()  # the periodic pass logs the failure and goes on
    assert sorted(p.name for p in log.parent.iterdir()) == ["0.log"]


async def test_periodic_rotation_runs_on_its_own(node: Node):
    cid, log = await node.run("loop", COUNTER)
    manager = node.manager(max_size="16Ki", max_files=3, period=0.05)
    manager.start()
    try:
        deadline = time.monotonic() + 20
        while not any(p.name.endswith(".gz") for p in log.parent.iterdir()):
            assert time.monotonic() < deadline, "no rotation happened"
            await asyncio.sleep(0.05)
    finally:
        await manager.stop()
    await node.runtime.stop_container(cid, 0)
    assert len(list(log.parent.iterdir())) <= 3


def test_leftovers_of_an_interrupted_rotation_are_cleaned(tmp_path):
    """A ``.tmp`` (compression cut short) and a plain file whose ``.gz`` exists go first."""
    log = tmp_path / "0.log"
    log.write_bytes(b"")
    (tmp_path / "0.log.20260101-000001.gz.tmp").write_bytes(b"half")
    (tmp_path / "0.log.20260101-000002").write_bytes(crilog.encode("stdout", b"two\n"))
    (tmp_path / "0.log.20260101-000002.gz").write_bytes(gzip.compress(crilog.encode("stdout", b"two\n")))
    (tmp_path / "0.log.20260101-000003").write_bytes(crilog.encode("stdout", b"three\n"))
    ContainerLogManager(None, list, max_files=5)._make_room(log)
    assert sorted(os.listdir(tmp_path)) == ["0.log", "0.log.20260101-000002.gz", "0.log.20260101-000003.gz"]
    assert entries_of(tmp_path / "0.log.20260101-000003.gz") == b"three\n"


def test_policy_values():
    assert parse_max_size("10Mi") == 10 * 1024 * 1024
    assert parse_max_size("1k") == 1000 and parse_max_size(2048) == 2048
    assert parse_max_size("-1") == -1
    with pytest.raises(ValueError):
        parse_max_size("ten")
    with pytest.raises(ValueError):
        ContainerLogManager(None, list, max_files=1)  # as the kubelet: max files must be > 1
    disabled = ContainerLogManager(None, list, max_size="-1")
    assert not disabled.enabled
