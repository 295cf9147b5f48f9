"""The ``process`` container runtime, with real host processes (sh, sleep, cat)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pinnace.kubelet import crilog
from pinnace.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerStatus,
    RuntimeError_,
    Sandbox,
    SandboxConfig,
)
from pinnace.kubelet.runtime.process import ProcessRuntime

pytestmark = pytest.mark.timeout(30)

NODE_IP = "192.0.2.10"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")


def exists(path: Path) -> bool:
    return path.exists()


async def eventually(check, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Pod:
    """A runtime with one sandbox, and helpers to run containers in it."""

    def __init__(self, runtime: ProcessRuntime, sandbox: Sandbox, tmp: Path):
        self.runtime, self.sandbox, self.tmp = runtime, sandbox, tmp
        self.n = 0

    def config(self, *args: str, env: dict[str, str] | None = None, **kw) -> ContainerConfig:
        self.n += 1
        name = kw.pop("name", f"c{self.n}")
        return ContainerConfig(name=name, image="busybox", args=list(args), env=env or {},
                               log_path=self.tmp / "logs" / f"{name}.log",
                               labels={LABEL_POD_UID: "uid-1", LABEL_CONTAINER_NAME: name}, **kw)

    async def run(self, *args: str, **kw) -> tuple[str, ContainerConfig]:
        config = self.config(*args, **kw)
        cid = await self.runtime.create_container(self.sandbox, config)
        await self.runtime.start_container(cid)
        return cid, config

    async def wait_exited(self, cid: str, timeout: float = 3.0, runtime: ProcessRuntime | None = None
                          ) -> ContainerStatus:
        rt = runtime or self.runtime
        deadline = time.monotonic() + timeout
        while (status := await rt.container_status(cid)).state != "exited":
            assert time.monotonic() < deadline, f"container still {status.state}"
            await asyncio.sleep(0.02)
        return status

    async def wait_log(self, config: ContainerConfig, text: bytes) -> None:
        await eventually(lambda: text in log_text(config))


def log_text(config: ContainerConfig) -> bytes:
    return b"".join(e.content for e in crilog.read_entries(config.log_path))


@pytest.fixture
async def pod(tmp_path) -> AsyncIterator[Pod]:
    runtime = ProcessRuntime(tmp_path / "state", NODE_IP)
    sandbox = await runtime.run_pod_sandbox(SandboxConfig(pod_uid="uid-1", name="p", namespace="default",
                                                          hostname="p"))
    p = Pod(runtime, sandbox, tmp_path)
    yield p
    await p.runtime.stop_pod_sandbox(sandbox)  # no stray processes, whatever the test did
    await p.runtime.close()


async def test_sandbox_is_a_directory_with_the_node_ip(pod, caplog):
    assert pod.sandbox.ip == NODE_IP and pod.sandbox.netns_path is None
    assert (pod.tmp / "state" / "sandboxes" / pod.sandbox.id).is_dir()
    with caplog.at_level("WARNING"):
        ProcessRuntime(pod.tmp / "other", NODE_IP)
    assert "process runtime: containers are host processes without isolation" in caplog.text


async def test_exit_codes_and_reasons(pod):
    ok, _ = await pod.run("sh", "-c", "exit 0")
    bad, _ = await pod.run("sh", "-c", "exit 3")
    status = await pod.wait_exited(ok)
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert status.created_at <= status.started_at <= status.finished_at and status.pid is None
    status = await pod.wait_exited(bad)
    assert (status.exit_code, status.reason) == (3, "Error")
    assert status.labels == {LABEL_POD_UID: "uid-1", LABEL_CONTAINER_NAME: "c2"}


async def test_created_container_is_not_started(pod):
    cid = await pod.runtime.create_container(pod.sandbox, pod.config("sh", "-c", "exit 0"))
    assert (await pod.runtime.container_status(cid)).state == "created"
    await pod.runtime.start_container(cid)
    with pytest.raises(RuntimeError_):
        await pod.runtime.start_container(cid)  # only once
    with pytest.raises(RuntimeError_, match="not found"):
        await pod.runtime.container_status("nope")


async def test_argv_and_exact_env_reach_the_process(pod, monkeypatch):
    monkeypatch.setenv("PINNACE_HOST_ONLY", "leak")
    cid, config = await pod.run("sh", "-c", 'echo "[$FOO] [$0] [$1]"; env', "zero", "one  two",
                                env={"FOO": "bar baz"})
    await pod.wait_exited(cid)
    out = log_text(config).decode()
    assert "[bar baz] [zero] [one  two]" in out
    names = {line.split("=", 1)[0] for line in out.splitlines()[1:]}
    assert names <= {"FOO", "PATH", "PWD"}  # sh adds PWD; nothing else of the host's
    assert f"PATH={os.environ['PATH']}" in out

    cid, config = await pod.run("sh", "-c", 'echo "$PATH"', env={"PATH": "/bin:/usr/bin"})
    await pod.wait_exited(cid)
    assert log_text(config) == b"/bin:/usr/bin\n"


async def test_logs_are_cri_format_with_both_streams(pod):
    cid, config = await pod.run("sh", "-c", "echo out1; echo err1 >&2; printf 'no newline'")
    await pod.wait_exited(cid)
    raw = config.log_path.read_bytes().splitlines()
    assert all(crilog.parse_line(line) is not None for line in raw)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert any(re.fullmatch(rb"%s stdout F out1" % stamp.encode(), line) for line in raw)
    entries = sorted((e.stream, e.partial, e.content) for e in crilog.read_entries(config.log_path))
    assert entries == [("stderr", False, b"err1\n"), ("stdout", False, b"out1\n"), ("stdout", True, b"no newline")]


async def test_tty_runs_on_a_terminal_and_logs_it_as_stdout(pod):
    """``tty``: a new pty, the process' controlling terminal (``TERM`` set); its output,
    stderr included, is logged as stdout ("\n" goes out as "\r\n" on a terminal), and
    resize_container sets its size."""
    cid, config = await pod.run("sh", "-c", "tty; echo term=$TERM; sleep 0.5; echo size=$(stty size) >&2",
                                tty=True)
    pod.runtime.resize_container(cid, 120, 40)
    await pod.wait_exited(cid)
    entries = [(e.stream, e.content) for e in crilog.read_entries(config.log_path)]
    assert re.fullmatch(rb"/dev/pts/\d+\r\n", entries[0][1]), entries
    assert entries[1:] == [("stdout", b"term=xterm\r\n"), ("stdout", b"size=40 120\r\n")]
    assert (await pod.runtime.container_status(cid)).exit_code == 0


async def test_working_dir(pod, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    cid, config = await pod.run("pwd", working_dir=str(wd))
    await pod.wait_exited(cid)
    assert log_text(config) == f"{wd}\n".encode()
    # Absent on the host: a per-container directory in the sandbox's.
    cid, config = await pod.run("pwd", working_dir="/no/such/dir")
    await pod.wait_exited(cid)
    own = Path(log_text(config).decode().strip())
    assert own.parent == tmp_path / "state" / "sandboxes" / pod.sandbox.id
    await pod.runtime.remove_container(cid)
    assert not exists(own)
    assert wd.exists()  # not ours to remove


async def test_missing_binary_is_a_start_error(pod):
    config = pod.config("no-such-binary-pinnace")
    cid = await pod.runtime.create_container(pod.sandbox, config)
    with pytest.raises(RuntimeError_, match=r'exec: "no-such-binary-pinnace": executable file not found in \$PATH'):
        await pod.runtime.start_container(cid)
    status = await pod.runtime.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == ("exited", 128, "StartError")
    assert "executable file not found" in status.message
    data = pod.tmp / "data.txt"
    data.write_text("not a program\n")
    data.chmod(0o644)
    cid = await pod.runtime.create_container(pod.sandbox, pod.config(str(data)))
    with pytest.raises(RuntimeError_, match=f'exec: "{data}": permission denied'):
        await pod.runtime.start_container(cid)


async def test_stop_sends_sigterm(pod):
    cid, _ = await pod.run("sleep", "100")
    started = time.monotonic()
    await pod.runtime.stop_container(cid, 5)
    assert time.monotonic() - started < 2
    status = await pod.runtime.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == ("exited", 143, "Error")


async def test_stop_falls_back_to_sigkill(pod):
    cid, config = await pod.run("sh", "-c", "trap '' TERM; echo ready; sleep 100")
    await pod.wait_log(config, b"ready")
    started = time.monotonic()
    await pod.runtime.stop_container(cid, 0.5)
    assert 0.5 <= time.monotonic() - started < 2.5
    assert (await pod.runtime.container_status(cid)).exit_code == 137
    await pod.runtime.stop_container(cid, 1)  # stopping again is a no-op


async def test_child_dies_with_the_container(pod):
    # Stopped: the whole process group gets the signals.
    cid, config = await pod.run("sh", "-c", "sleep 100 & echo $!; wait")
    await pod.wait_log(config, b"\n")
    child = int(log_text(config))
    assert alive(child)
    await pod.runtime.stop_container(cid, 5)
    await eventually(lambda: not alive(child))
    # Exited: what it left behind is killed, as when a pid namespace's init exits.
    cid, config = await pod.run("sh", "-c", "sleep 100 & echo $!")
    started = time.monotonic()
    status = await pod.wait_exited(cid)
    assert status.exit_code == 0 and time.monotonic() - started < 1.5  # no wait for the log pipe
    child = int(log_text(config))
    await eventually(lambda: not alive(child))


async def test_stdin(pod):
    closed, _ = await pod.run("cat")  # /dev/null: ends at once
    assert (await pod.wait_exited(closed)).exit_code == 0
    held, _ = await pod.run("cat", stdin=True)  # a pipe kept open: cat waits
    await asyncio.sleep(0.2)
    assert (await pod.runtime.container_status(held)).state == "running"


async def test_exec_sync(pod, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    cid, _ = await pod.run("sleep", "100", env={"FOO": "bar"}, working_dir=str(wd))
    result = await pod.runtime.exec_sync(cid, ["sh", "-c", "echo $FOO; pwd; echo oops >&2; exit 4"], 5)
    assert (result.exit_code, result.stdout, result.stderr) == (4, f"bar\n{wd}\n".encode(), b"oops\n")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await pod.runtime.exec_sync(cid, ["sh", "-c", "echo $$ > exec.pid; exec sleep 100"], 0.3)
    assert time.monotonic() - started < 2
    await eventually(lambda: not alive(int((wd / "exec.pid").read_text())))

    with pytest.raises(RuntimeError_, match="executable file not found"):
        await pod.runtime.exec_sync(cid, ["no-such-binary-pinnace"], 5)
    await pod.runtime.stop_container(cid, 0)
    with pytest.raises(RuntimeError_, match="not running"):
        await pod.runtime.exec_sync(cid, ["true"], 5)


async def test_state_survives_a_new_runtime_instance(pod, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    running, running_cfg = await pod.run(
        "sh", "-c", "echo one; while [ ! -e go ]; do sleep 0.02; done; echo two; sleep 100", working_dir=str(wd))
    exited, _ = await pod.run("sh", "-c", "exit 7")
    lost, lost_cfg = await pod.run("sh", "-c", "echo up; while [ ! -e bye ]; do sleep 0.02; done", working_dir=str(wd))
    created = await pod.runtime.create_container(pod.sandbox, pod.config("true"))
    await pod.wait_exited(exited)
    await pod.wait_log(running_cfg, b"one")
    await pod.wait_log(lost_cfg, b"up")
    pid = (await pod.runtime.container_status(running)).pid
    lost_pid = (await pod.runtime.container_status(lost)).pid
    await pod.runtime.close()  # the kubelet goes away; its containers stay

    (wd / "bye").touch()  # `lost` exits while nobody watches
    await eventually(lambda: not alive(lost_pid))
    restarted = ProcessRuntime(tmp_path / "state", NODE_IP)
    try:
        statuses = {s.id: s for s in await restarted.list_containers()}
        assert set(statuses) == {running, exited, lost, created}
        assert (statuses[running].state, statuses[running].pid) == ("running", pid)
        assert statuses[running].labels[LABEL_CONTAINER_NAME] == running_cfg.name
        assert (statuses[exited].state, statuses[exited].exit_code, statuses[exited].reason) == ("exited", 7, "Error")
        assert (statuses[lost].state, statuses[lost].exit_code, statuses[lost].reason) == ("exited", 255, "Unknown")
        assert statuses[created].state == "created"

        # Output written after the restart reaches the log (and does not kill the process).
        (wd / "go").touch()
        await pod.wait_log(running_cfg, b"two")
        assert (await restarted.container_status(running)).state == "running"
        result = await restarted.exec_sync(running, ["pwd"], 5)
        assert result.stdout == f"{wd}\n".encode()

        await restarted.stop_container(running, 5)
        status = await restarted.container_status(running)
        assert (status.state, status.exit_code) == ("exited", 143)
        assert "inferred from the signal sent (SIGTERM)" in status.message  # not its parent: not observed
        assert not alive(pid)
    finally:
        await restarted.close()


async def test_stop_pod_sandbox_kills_everything(pod):
    cids = [(await pod.run("sleep", "100"))[0],
            (await pod.run("sh", "-c", "trap '' TERM; sleep 100"))[0],
            (await pod.run("sh", "-c", "sleep 100 & wait"))[0]]
    pids = [(await pod.runtime.container_status(cid)).pid for cid in cids]
    started = time.monotonic()
    await pod.runtime.stop_pod_sandbox(pod.sandbox)
    assert time.monotonic() - started < 2  # grace 0
    for cid, pid in zip(cids, pids, strict=True):
        status = await pod.runtime.container_status(cid)
        assert (status.state, status.exit_code) == ("exited", 137)
        assert not alive(pid)


async def test_remove(pod):
    cid, _ = await pod.run("sleep", "100")
    pid = (await pod.runtime.container_status(cid)).pid
    await pod.runtime.remove_container(cid)
    assert not alive(pid)
    assert [s.id for s in await pod.runtime.list_containers()] == []
    await pod.runtime.remove_container(cid)  # idempotent
    await pod.runtime.stop_container(cid, 1)

    await pod.run("sleep", "100")
    await pod.runtime.remove_pod_sandbox(pod.sandbox)
    assert await pod.runtime.list_containers() == []
    assert not (pod.tmp / "state" / "sandboxes" / pod.sandbox.id).exists()
    with pytest.raises(RuntimeError_, match="sandbox"):
        await pod.runtime.create_container(pod.sandbox, pod.config("true"))
