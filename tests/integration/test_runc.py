"""Real containers through runc: exit codes, signals, OOM kills, shared pod namespaces, cleanup;
the shim's CRI logs, stdin FIFO, log reopening (rotation) and exit notification.

Needs root, the runc binary, busybox-static and a writable cgroup fs; skipped cleanly
otherwise. Every container has its own network namespace (loopback only) or joins
another test container's: the host's network is never touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pinnace.images.oci import host_platform
from pinnace.images.service import ImageService
from pinnace.kubelet import crilog
from pinnace.kubelet.runtime.ocispec import build_spec
from pinnace.kubelet.runtime.runc import (
    SHIM,
    ContainerNotFoundError,
    LogFormat,
    Runc,
    RuncError,
    cgroup_dirs,
    cgroup_version,
)
from tests.support.runc import BUSYBOX, RUNC, memory_controller, runc_skip_reason

_SKIP = runc_skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP))


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal rootfs: a static busybox and its applets as symlinks."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir()
    _probe(root)
    return root


def _probe(rootfs: Path) -> None:
    """Skip (not fail) where runc cannot run a memory-limited container at all, e.g. a cgroup
    v2 namespace whose root holds processes and so cannot delegate controllers."""
    base = rootfs.parent
    cid = f"pinnace-probe-{uuid.uuid4().hex[:8]}"
    path = ("/" if cgroup_version() == 2 else "") + cid
    spec = build_spec({"command": ["true"], "resources": {"limits": {"memory": "32Mi"}}}, rootfs=str(rootfs),
                      cgroups_path=path)
    (base / "probe").mkdir()
    (base / "probe/config.json").write_text(json.dumps(spec))
    assert RUNC is not None
    run = subprocess.run([RUNC, "--root", str(base / "probe-state"), "run", "--bundle", str(base / "probe"), cid],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        pytest.skip(f"runc cannot run a container here: {run.stderr.strip()[-300:]}")


class Pod:
    """Containers for one test: bundles, logs, unique ids and cgroups, and cleanup checks."""

    def __init__(self, runc: Runc, base: Path, rootfs: Path):
        self.runc, self.base, self.rootfs = runc, base, rootfs
        self.tag = uuid.uuid4().hex[:8]
        self.ids: list[str] = []
        self.cgroups: list[str] = []

    def cgroup(self, name: str) -> str:
        # v1: relative, so the test containers nest under our own cgroups (and their limits);
        # v2 forbids children of a cgroup that holds processes, so use a top-level one there.
        path = f"pinnace-test-{self.tag}-{name}"
        return "/" + path if cgroup_version() == 2 else path

    async def create(self, name: str, command: list[str], *, log_format: LogFormat = "raw",
                     stdin: Path | None = None, stdin_once: bool = False, **kw: Any) -> tuple[str, int]:
        cid = f"t-{self.tag}-{name}"
        bundle = self.base / name
        bundle.mkdir()
        cgroups_path = self.cgroup(name)
        container = {"name": name, "command": command, **kw.pop("container", {})}
        spec = build_spec(container, rootfs=str(self.rootfs), cgroups_path=cgroups_path, **kw)
        (bundle / "config.json").write_text(json.dumps(spec))
        self.cgroups.append(cgroups_path)  # checked even when create fails
        pid = await self.runc.create(cid, bundle, self.log(name), self.log(name), log_format=log_format,
                                     stdin=stdin, stdin_once=stdin_once)
        self.ids.append(cid)
        return cid, pid

    async def run(self, name: str, command: list[str], **kw: Any) -> str:
        cid, _ = await self.create(name, command, **kw)
        await self.runc.start(cid)
        return cid

    def log(self, name: str) -> Path:
        return self.base / f"{name}.log"

    async def cleanup(self) -> None:
        for cid in reversed(self.ids):
            try:
                await self.runc.delete(cid, force=True)
            except ContainerNotFoundError:
                pass

    async def assert_nothing_left(self) -> None:
        assert await self.runc.list() == []
        assert not any(self.runc.root.iterdir()), "runc state left behind"
        assert not any(self.runc.shims.iterdir()), "shim state left behind"
        for path in self.cgroups:
            left = [d for d in cgroup_dirs(path) if d.exists()]
            assert not left, f"cgroups left behind: {left}"


@pytest.fixture
async def pod(tmp_path: Path, rootfs: Path) -> AsyncIterator[Pod]:
    p = Pod(Runc(tmp_path / "data"), tmp_path, rootfs)
    try:
        yield p
    finally:
        await p.cleanup()
    await p.assert_nothing_left()


async def wait(pod: Pod, cid: str, timeout: float = 30) -> Any:
    return await asyncio.wait_for(pod.runc.wait(cid), timeout)


async def wait_for_log(pod: Pod, name: str, text: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in (pod.log(name).read_text() if pod.log(name).exists() else ""):
        assert loop.time() < deadline, f"{text!r} never appeared in {name}'s log"
        await asyncio.sleep(0.05)


async def test_echo_and_exit_zero(pod: Pod) -> None:
    cid, pid = await pod.create("echo", ["sh", "-c", "echo hello $(WHO); echo oops >&2"], env={"WHO": "runc"})
    state = await pod.runc.state(cid)
    assert state["status"] == "created" and state["pid"] == pid
    assert [c["id"] for c in await pod.runc.list()] == [cid]
    await pod.runc.start(cid)
    status = await wait(pod, cid)
    assert (status.exit_code, status.signal, status.oom_killed, status.reason) == (0, None, False, "Completed")
    assert await pod.runc.wait_exit(cid) == 0
    assert (await pod.runc.state(cid))["status"] == "stopped"
    assert pod.log("echo").read_text() == "hello runc\noops\n"
    await pod.runc.delete(cid)
    with pytest.raises(ContainerNotFoundError):
        await pod.runc.state(cid)


async def test_exit_code(pod: Pod) -> None:
    cid = await pod.run("three", ["sh", "-c", "exit 3"])
    status = await wait(pod, cid)
    assert (status.exit_code, status.reason) == (3, "Error")


async def test_sigterm_kills_a_process_in_a_shared_pid_namespace(pod: Pod) -> None:
    # As with shareProcessNamespace: the sandbox is PID 1, the app is an ordinary process and
    # SIGTERM's default action kills it.
    sandbox, sandbox_pid = await pod.create("sandbox", ["sleep", "3600"])
    await pod.runc.start(sandbox)
    app = await pod.run("app", ["sleep", "3600"], pid_path=f"/proc/{sandbox_pid}/ns/pid",
                        netns_path=f"/proc/{sandbox_pid}/ns/net")
    assert (await pod.runc.state(app))["status"] == "running"
    await pod.runc.kill(app, signal.SIGTERM)
    status = await wait(pod, app)
    assert (status.exit_code, status.signal, status.oom_killed) == (143, signal.SIGTERM, False)
    await pod.runc.kill(sandbox, "KILL")
    assert (await wait(pod, sandbox)).exit_code == 137


async def test_sigterm_handled_by_pid1_and_ignored_without_handler(pod: Pod) -> None:
    handles = await pod.run("handles", ["sh", "-c", "trap 'echo bye; exit 143' TERM; echo ready; "
                                                    "while :; do sleep 0.1; done"])
    ignores = await pod.run("ignores", ["sh", "-c", "echo ready; while :; do sleep 0.1; done"])
    await wait_for_log(pod, "handles", "ready")
    await wait_for_log(pod, "ignores", "ready")
    await pod.runc.kill(handles, signal.SIGTERM)
    await pod.runc.kill(ignores, signal.SIGTERM)
    status = await wait(pod, handles)
    assert (status.exit_code, status.signal) == (143, None)
    assert pod.log("handles").read_text() == "ready\nbye\n"
    await asyncio.sleep(0.5)  # PID 1 without a handler: the kernel drops SIGTERM
    assert (await pod.runc.state(ignores))["status"] == "running"
    await pod.runc.kill(ignores, signal.SIGKILL)  # what the kubelet does after the grace period
    status = await wait(pod, ignores)
    assert (status.exit_code, status.signal, status.oom_killed, status.reason) == (137, 9, False, "Error")


@pytest.mark.skipif(not memory_controller(), reason="the cgroup memory controller is not available here")
async def test_oom_killed(pod: Pod) -> None:
    # busybox tail looks for the last newline of /dev/zero forever, buffering it all.
    cid = await pod.run("hog", ["tail", "/dev/zero"], container={"resources": {"limits": {"memory": "16Mi"}}})
    status = await wait(pod, cid)
    assert (status.exit_code, status.signal, status.oom_killed, status.reason) == (137, 9, True, "OOMKilled")


async def test_memory_limit_is_applied(pod: Pod) -> None:
    cid = await pod.run("limits", ["sh", "-c", "cat /proc/self/cgroup"],
                        container={"resources": {"limits": {"memory": "20Mi", "cpu": "250m"}}}, pids_limit=64)
    assert (await wait(pod, cid)).exit_code == 0
    assert "pinnace-test-" in pod.log("limits").read_text()


async def test_containers_share_network_ipc_uts(pod: Pod) -> None:
    first, first_pid = await pod.create("first", ["sleep", "3600"], hostname="pod-a")
    await pod.runc.start(first)
    ns = {kind: f"/proc/{first_pid}/ns/{kind}" for kind in ("net", "ipc", "uts")}
    second = await pod.run("second", ["sh", "-c", "hostname; for n in net ipc uts; do readlink /proc/self/ns/$n; done; "
                                                  "cat /proc/net/dev"],
                           netns_path=ns["net"], ipc_path=ns["ipc"], uts_path=ns["uts"])
    assert (await wait(pod, second)).exit_code == 0
    lines = pod.log("second").read_text().splitlines()
    assert lines[0] == "pod-a"
    assert lines[1:4] == [os.readlink(ns[k]) for k in ("net", "ipc", "uts")]
    assert lines[1] != os.readlink("/proc/self/ns/net")  # not the host's network
    devices = [line.split(":")[0].strip() for line in lines[4:] if ":" in line]
    assert devices == ["lo"]
    await pod.runc.kill(first, signal.SIGKILL)
    await wait(pod, first)


async def test_status_survives_a_new_runc_instance(pod: Pod) -> None:
    # A restarted kubelet has no handle on the shim: it finds the recorded status.
    cid = await pod.run("later", ["sh", "-c", "sleep 0.3; exit 7"])
    fresh = Runc(pod.runc.root.parent.parent)
    assert fresh.exit_status(cid) is None
    status = await asyncio.wait_for(fresh.wait(cid), 30)
    assert status.exit_code == 7
    await fresh.delete(cid)


async def test_errors_carry_runc_stderr(pod: Pod) -> None:
    with pytest.raises(ContainerNotFoundError) as info:
        await pod.runc.state("t-nope")
    assert "does not exist" in info.value.stderr
    with pytest.raises(RuncError) as err:
        await pod.create("missing", ["/no/such/binary"])
    assert "/no/such/binary" in str(err.value)
    with pytest.raises(RuncError, match=r"not stopped|running"):
        cid = await pod.run("busy", ["sleep", "3600"])
        await pod.runc.delete(cid)
    with pytest.raises(ValueError):
        await pod.runc.start("../escape")


def _busybox_image(path: Path) -> Path:
    """A docker-archive image: one layer with busybox, a config with Entrypoint/Cmd/Env/User."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        for d in ("bin", "work"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        data = Path(BUSYBOX).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        for applet in ("sh", "echo", "id", "pwd"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(info)
    layer_bytes = layer.getvalue()
    config = json.dumps({
        "architecture": host_platform().architecture, "os": "linux",
        "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo from image"], "Env": ["PATH=/bin", "FROM_IMAGE=yes"],
                   "WorkingDir": "/work", "User": "1000:1000"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]},
    }).encode()
    manifest = [{"Config": "config.json", "RepoTags": ["pinnace.test/busybox:1"], "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as tf:
        for name, data in (("config.json", config), ("layer.tar", layer_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


async def test_container_from_an_image(pod: Pod) -> None:
    # The image's Entrypoint stays, args replace its Cmd; $(GREETING) is Kubernetes' expansion,
    # $(pwd) is not a defined variable so the shell gets it; cwd and user come from the image.
    async with ImageService(pod.base / "data") as images:
        await images.import_archive(_busybox_image(pod.base / "image.tar"))
        image = await images.resolve("pinnace.test/busybox:1")
        assert image is not None
        rootfs = await images.unpack(image, pod.base / "image-rootfs")
    bundle = pod.base / "img"
    bundle.mkdir()
    spec = build_spec({"name": "img", "args": ['echo "$FROM_IMAGE $(GREETING) $(pwd) $(id -u):$(id -g)"']},
                      image_config=image.config, env={"GREETING": "hi"}, rootfs=str(rootfs),
                      cgroups_path=pod.cgroup("img"))
    (bundle / "config.json").write_text(json.dumps(spec))
    pod.cgroups.append(spec["linux"]["cgroupsPath"])
    cid = f"t-{pod.tag}-img"
    await pod.runc.create(cid, bundle, pod.log("img"), pod.log("img"))
    pod.ids.append(cid)
    await pod.runc.start(cid)
    assert (await wait(pod, cid)).exit_code == 0
    assert pod.log("img").read_text() == "yes hi /work 1000:1000\n"


# ---- the shim: CRI logs, stdin, reopen, exit events ------------------------------------------


def cri_lines(path: Path) -> list[tuple[str, str]]:
    return [(e.stream, e.content.decode()) for e in crilog.read_entries(path) if not e.partial]


def shim_cmdline(pod: Pod, cid: str) -> list[bytes]:
    shim_pid = int((pod.runc.shims / cid / "shim.pid").read_text())
    return Path(f"/proc/{shim_pid}/cmdline").read_bytes().split(b"\0")


async def eventually(check: Any, timeout: float = 10, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        assert loop.time() < deadline, f"{what} not met in time"
        await asyncio.sleep(0.05)
    return result


@pytest.mark.parametrize("server", [True, False], ids=["forked-by-the-shim-server", "own-program"])
async def test_shim_copies_cri_logs_and_records_the_exit(pod: Pod, server: bool) -> None:
    """The isolated shim (python -I -S shim.py, no package on its path; forked by the shim
    server, or a program of its own) copies both streams into the CRI log and records the exit
    code; Runc.on_exit fires once it is recorded.  Signals Python ignores (SIGPIPE) are not
    ignored in the container."""
    pod.runc.shim_server = server
    exited: list[str] = []
    pod.runc.on_exit = lambda cid: exited.append(cid) if pod.runc.exit_status(cid) else None
    cid, _ = await pod.create("cri", ["sh", "-c", "echo out; echo err >&2; grep SigIgn /proc/self/status >&2; "
                                                  "printf partial; exit 3"], log_format="cri")
    argv = shim_cmdline(pod, cid)
    assert argv[1:4] == [b"-I", b"-S", os.fsencode(SHIM)]
    assert (b"--serve" in argv) == server and (b"log_format=cri" in argv) == (not server)
    await pod.runc.start(cid)
    status = await wait(pod, cid)
    assert (status.exit_code, status.reason) == (3, "Error")
    entries = [(e.stream, e.partial, e.content) for e in crilog.read_entries(pod.log("cri"))]
    ignored = next(c for _, _, c in entries if c.startswith(b"SigIgn:"))
    entries.remove(("stderr", False, ignored))
    assert sorted(entries) == [("stderr", False, b"err\n"), ("stdout", False, b"out\n"),
                               ("stdout", True, b"partial")]
    assert not int(ignored.split()[1], 16) & (1 << (signal.SIGPIPE - 1)), "SIGPIPE ignored in the container"

    await eventually(lambda: exited == [cid], what="on_exit")


async def test_stdin_fifo_never_reads_eof(pod: Pod) -> None:
    """``stdin``: the shim holds the FIFO read-write for the container, so it keeps reading
    whatever writers come and go (kubectl attach sessions) and never sees EOF."""
    fifo = pod.base / "stdin"
    os.mkfifo(fifo, 0o600)
    cid, _ = await pod.create("reader", ["sh", "-c", "while read line; do echo got $line; done; echo eof"],
                              log_format="cri", stdin=fifo)
    await pod.runc.start(cid)
    for word in ("one", "two"):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader holds it: opens at once
        os.write(fd, f"{word}\n".encode())
        os.close(fd)  # the writer goes, as an attach session ends
        await eventually(lambda w=word: ("stdout", f"got {w}\n") in cri_lines(pod.log("reader")), what=word)
    await asyncio.sleep(0.3)
    assert ("stdout", "eof\n") not in cri_lines(pod.log("reader"))
    assert (await pod.runc.state(cid))["status"] == "running"
    await pod.runc.kill(cid, signal.SIGKILL)
    assert (await wait(pod, cid)).exit_code == 137


async def test_stdin_once_reads_eof_when_the_writers_are_gone(pod: Pod) -> None:
    """``stdin_once``: the container holds only a read end; the caller's write end (held from
    before create) and the attached writer closed, it reads EOF (``stdinOnce``)."""
    fifo = pod.base / "stdin"
    os.mkfifo(fifo, 0o600)
    held = os.open(fifo, os.O_RDWR)  # the runtime's write end, taken before create
    try:
        cid, _ = await pod.create("once", ["sh", "-c", "while read line; do echo got $line; done; echo eof"],
                                  log_format="cri", stdin=fifo, stdin_once=True)
        await pod.runc.start(cid)
        os.write(held, b"hello\n")
    finally:
        os.close(held)
    status = await wait(pod, cid)
    assert status.exit_code == 0
    assert cri_lines(pod.log("once")) == [("stdout", "got hello\n"), ("stdout", "eof\n")]


async def test_stdin_once_eof_after_the_first_writer_without_a_held_end(pod: Pod) -> None:
    """``stdinOnce`` as an attach session gives it: nobody holds the FIFO before the session;
    the session writes, closes, and the container reads EOF (after all it wrote)."""
    fifo = pod.base / "stdin"
    os.mkfifo(fifo, 0o600)
    cid, _ = await pod.create("once", ["sh", "-c", "while read line; do echo got $line; done; echo eof"],
                              log_format="cri", stdin=fifo, stdin_once=True)
    await pod.runc.start(cid)
    await asyncio.sleep(0.3)  # no writer yet: no EOF either
    assert (await pod.runc.state(cid))["status"] == "running"
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the shim reads it: opens at once
    os.write(fd, b"".join(b"line%d\n" % i for i in range(2000)))  # more than a pipe holds at once
    os.close(fd)
    assert (await wait(pod, cid)).exit_code == 0
    lines = cri_lines(pod.log("once"))
    assert lines == [("stdout", f"got line{i}\n") for i in range(2000)] + [("stdout", "eof\n")]


async def test_close_stdin_request_ends_stdin_once(pod: Pod) -> None:
    """``close_stdin`` (the kubelet's stdinOnce at the end of a session): what the FIFO holds
    is still read, then EOF -- even while a writer keeps the FIFO open."""
    fifo = pod.base / "stdin"
    os.mkfifo(fifo, 0o600)
    cid, _ = await pod.create("once", ["sh", "-c", "while read line; do echo got $line; done; echo eof"],
                              log_format="cri", stdin=fifo, stdin_once=True)
    await pod.runc.start(cid)
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"last\n")
        pod.runc.close_stdin(cid)
        assert (await wait(pod, cid)).exit_code == 0
    finally:
        os.close(fd)
    assert cri_lines(pod.log("once")) == [("stdout", "got last\n"), ("stdout", "eof\n")]
    with pytest.raises(RuncError, match="not running"):
        pod.runc.close_stdin(cid)  # the shim is gone


async def test_terminal_container(pod: Pod) -> None:
    """``process.terminal``: the container runs on a terminal (a pty, its controlling one)
    whose output is logged as stdout, its input copied from the stdin FIFO; resize reaches
    it (``stty size``); stdin stays open across writers."""
    fifo = pod.base / "stdin"
    os.mkfifo(fifo, 0o600)
    script = "tty; while read line; do echo got:$line; echo size=$(stty size) >&2; done; echo eof"
    cid, _ = await pod.create("tty", ["sh", "-c", script], log_format="cri", stdin=fifo,
                              container={"tty": True})
    await pod.runc.start(cid)
    await eventually(lambda: any(t.startswith("/dev/pts/") for _, t in cri_lines(pod.log("tty"))), what="tty")
    pod.runc.resize(cid, 123, 45)
    for word in ("one", "two"):  # two writers in turn, as two attach sessions
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, f"{word}\n".encode())
        os.close(fd)
        await eventually(lambda w=word: ("stdout", f"got:{w}\r\n") in cri_lines(pod.log("tty")), what=word)
    lines = cri_lines(pod.log("tty"))
    assert ("stdout", "size=45 123\r\n") in lines  # stderr too: one stream, the terminal's
    assert {stream for stream, _ in lines} == {"stdout"}
    assert ("stdout", "eof\r\n") not in lines
    await pod.runc.kill(cid, signal.SIGKILL)
    assert (await wait(pod, cid)).exit_code == 137
    with pytest.raises(RuncError):
        pod.runc.resize(cid, 80, 24)


async def test_terminal_container_without_stdin_and_a_long_data_dir(tmp_path: Path, rootfs: Path) -> None:
    """A terminal without stdin; the console socket's path is relative to the shim dir, so a
    data dir deeper than a unix socket's 107 bytes works."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    p = Pod(Runc(deep / "data"), tmp_path, rootfs)
    try:
        cid = await p.run("tty", ["sh", "-c", "tty; echo out; echo err >&2"], log_format="cri",
                          container={"tty": True})
        assert (await wait(p, cid)).exit_code == 0
        lines = cri_lines(p.log("tty"))
        assert lines[0][1].startswith("/dev/pts/") and lines[1:] == [("stdout", "out\r\n"), ("stdout", "err\r\n")]
    finally:
        await p.cleanup()
    await p.assert_nothing_left()


async def test_reopen_log_after_rotation_loses_nothing(pod: Pod) -> None:
    """Log rotation: the log is renamed away, the shim reopens it on request (SIGUSR1) and the
    lines go on in a new file at the same path, none lost or doubled."""
    cid, _ = await pod.create("counter", ["sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done"],
                              log_format="cri")
    await pod.runc.start(cid)
    log = pod.log("counter")
    await eventually(lambda: len(cri_lines(log)) >= 5, what="first lines")
    rotated = log.with_name(log.name + ".20260101-000000")
    os.rename(log, rotated)
    pod.runc.reopen_log(cid)
    await eventually(lambda: log.exists() and len(cri_lines(log)) >= 5, what="lines in the new file")
    pod.runc.reopen_log(cid)  # again, with nothing renamed: the same file goes on
    await asyncio.sleep(0.1)
    await pod.runc.kill(cid, signal.SIGKILL)
    assert (await wait(pod, cid)).exit_code == 137
    numbers = [int(text) for path in (rotated, log) for _, text in cri_lines(path)]
    assert numbers == list(range(len(numbers))) and len(cri_lines(log)) >= 5


async def test_reopen_log_needs_a_copying_shim(pod: Pod) -> None:
    cid = await pod.run("raw", ["sleep", "3600"])
    with pytest.raises(RuncError, match="directly"):
        pod.runc.reopen_log(cid)  # raw mode: the container writes the file itself
    await pod.runc.kill(cid, signal.SIGKILL)
    await wait(pod, cid)
    with pytest.raises(RuncError, match="not running"):
        pod.runc.reopen_log(cid)
