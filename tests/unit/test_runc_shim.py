"""The runc shim's own parts without runc: its start in isolation, the shim server, its CRI
log writer (reopen after rotation), its JSON output, the OOM counter parsing, and the
runtime's process helpers (vfork-started children awaited on pidfds).  The shim with real runc
containers (exit codes, OOM, CRI logs, stdin FIFO, reopen) is in
tests/integration/test_runc.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinnace.kubelet import crilog
from pinnace.kubelet.runtime import shim
from pinnace.kubelet.runtime.runc import SHIM
from pinnace.procs import LineReader, Process, run_process, wait_pid

pytestmark = pytest.mark.timeout(30)


def run_shim(*params: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    """The shim as Runc.create starts it: by path, isolated, without site."""
    extra = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, "-I", "-S", *extra, str(SHIM), *params], capture_output=True, text=True,
                          timeout=20, env={"PATH": os.environ.get("PATH", "")})


def test_shim_starts_isolated_and_imports_only_builtin_modules(tmp_path):
    """The fast start the shim exists for: no asyncio, no package, no json/re/subprocess/signal
    (their imports cost more than the rest of the shim).  With a runc that does not exist it
    reports the failure as one JSON line, which Runc.create raises."""
    out = tmp_path / "out.log"
    proc = run_shim("runc=/nonexistent/runc", "root=/nonexistent/state", "id=c1", "bundle=/nonexistent",
                    f"stdout={out}", f"stderr={out}", f"dir={tmp_path}", "log_format=cri", importtime=True)
    assert proc.returncode == 1
    report = json.loads(proc.stdout.splitlines()[0])
    assert "/nonexistent/runc" in report["error"] and "No such file" in report["error"]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ctypes" in imported  # the one non-trivial module it needs (prctl)
    heavy = {m for m in imported if m.split(".")[0] in ("asyncio", "pinnace", "json", "re", "subprocess",
                                                          "signal", "pathlib", "site", "enum")}
    assert heavy == set()


def test_shim_error_report_is_json_whatever_the_message():
    for text in ['plain', 'quo"te and back\\slash', "new\nline\ttab\x00nul\x1b", "naïve ✓ 雪", "\udcff lone"]:
        assert json.loads(shim._json_str(text)) == text


def test_log_writer_reopens_a_rotated_file(tmp_path):
    path = tmp_path / "0.log"
    writer = shim.LogWriter(path)
    out = shim.CriStream(writer, "stdout")
    out.feed(b"one\ntw")
    os.rename(path, tmp_path / "0.log.20260101-000000")
    out.feed(b"o\n")  # still the renamed file: nobody asked for a reopen yet
    writer.reopen()
    out.feed(b"three\nunfinished")
    out.flush()
    writer.close()
    old = [(e.partial, e.content) for e in crilog.read_entries(tmp_path / "0.log.20260101-000000")]
    new = [(e.partial, e.content) for e in crilog.read_entries(path)]
    assert old == [(False, b"one\n"), (False, b"two\n")]
    assert new == [(False, b"three\n"), (True, b"unfinished")]


def test_cri_stream_never_holds_back_more_than_max_line(tmp_path):
    writer = shim.LogWriter(tmp_path / "log")
    out = shim.CriStream(writer, "stderr")
    out.feed(b"x" * (shim.MAX_LINE + 3))
    writer.close()
    entries = list(crilog.read_entries(tmp_path / "log"))
    assert [(e.stream, e.partial, len(e.content)) for e in entries] == [("stderr", True, shim.MAX_LINE),
                                                                         ("stderr", True, 3)]
    assert out.pending == b""


def test_timestamps_match_containerd_format():
    assert shim.timestamp(1_475_713_029_669_794_202) == "2016-10-06T00:17:09.669794202Z"
    assert crilog.timestamp is shim.timestamp and crilog.encode is shim.encode


def test_oom_kill_counters(tmp_path):
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert (shim.oom_kills(str(v2)), shim.oom_kills(str(v1))) == (2, 1)
    assert shim.oom_kills(None) == 0 and shim.oom_kills(str(tmp_path / "gone")) == 0
    own = shim.oom_counter_file(os.getpid())
    assert own is None or own.endswith(("memory.events", "memory.oom_control"))


async def test_run_process_captures_output_and_exit_code():
    rc, out, err = await run_process(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=10)
    assert (rc, out, err) == (7, b"out\n", b"err\n")
    rc, out, _ = await run_process(["sh", "-c", "head -c 300000 /dev/zero"], timeout=10)
    assert rc == 0 and len(out) == 300000  # more than a pipe buffer: read while it runs


async def test_run_process_kills_on_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await run_process(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left as a zombie


async def test_run_process_can_let_a_command_finish_when_cancelled(tmp_path):
    """A cancelled caller (the kubelet shutting down) kills runc commands, but lets an umount
    finish (``kill_on_cancel=False``)."""
    for kill, expect in ((True, False), (False, True)):
        done = tmp_path / f"done-{kill}"
        task = asyncio.create_task(run_process(["sh", "-c", f"sleep 0.3; touch {done}"], timeout=10,
                                               kill_on_cancel=kill))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.6)
        assert done.exists() == expect


async def test_line_reader_keeps_what_follows_a_line():
    proc = Process(["sh", "-c", "printf 'one\\ntwo\\n'; sleep 0.1; printf 'three'"], capture=(1,))
    reader = LineReader(proc.pipes[1])
    assert [await reader.readline() for _ in range(4)] == [b"one\n", b"two\n", b"three", b""]
    proc.close()
    assert await proc.wait() == 0


async def test_shim_server_forks_shims_and_exits_with_its_control_socket(tmp_path):
    """The shim server forks a shim per message; the shim says its pid first, then reports
    (here: runc missing).  Closing the control socket (the kubelet is gone) ends the server."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = Process([sys.executable, "-I", "-S", str(SHIM), "--serve"], stdin=theirs.fileno())
    theirs.close()
    try:
        for n in range(2):
            report_r, report_w = socket.socketpair()
            log = os.open(tmp_path / f"shim{n}.log", os.O_WRONLY | os.O_CREAT, 0o600)
            params = {"runc": "/nonexistent/runc", "root": str(tmp_path), "id": f"c{n}", "bundle": str(tmp_path),
                      "stdout": str(tmp_path / "out"), "stderr": str(tmp_path / "out"), "dir": str(tmp_path)}
            socket.send_fds(ours, ["\0".join(f"{k}={v}" for k, v in params.items()).encode()],
                            [report_w.fileno(), log])
            os.close(log)
            report_w.close()
            report_r.settimeout(10)
            lines = report_r.makefile("rb").read().splitlines()
            report_r.close()
            first, second = (json.loads(line) for line in lines)
            assert first["shim"] not in (server.pid, os.getpid())
            assert "/nonexistent/runc" in second["error"]
        assert server.alive()
    finally:
        ours.close()
    assert await asyncio.wait_for(server.wait(), 10) == 0


async def test_wait_pid_waits_for_a_process_that_is_not_our_child():
    # The shell's background sleep is its child, not ours (as a shim an earlier kubelet started).
    rc, out, _ = await run_process(["sh", "-c", "sleep 0.5 >/dev/null 2>&1 & echo $!"], timeout=10)
    pid = int(out)
    started = time.monotonic()
    assert await asyncio.wait_for(wait_pid(pid), 10) is None
    assert 0.2 < time.monotonic() - started < 5
    assert await wait_pid(pid) is None  # gone already: at once


def test_rotated_logs_lists_plain_generations_oldest_first(tmp_path):
    log = tmp_path / "0.log"
    for name in ("0.log", "0.log.20260101-000001.gz", "0.log.20260101-000002", "0.log.20260101-000002.gz",
                 "0.log.20260101-000003.gz.tmp", "0.log.20260101-000004", "0.log.20260101-000003", "10.log.x"):
        (tmp_path / name).write_text("")
    # ...002 is compressed already (a compression cut short before the original went).
    assert crilog.rotated_logs(log) == [tmp_path / "0.log.20260101-000003", tmp_path / "0.log.20260101-000004"]
    assert crilog.log_files(log)[-1] == log
    assert crilog.rotated_logs(tmp_path / "missing" / "0.log") == []


def test_shim_path_is_a_file_of_the_package():
    assert SHIM.name == "shim.py" and SHIM.is_file() and Path(shim.__file__).resolve() == SHIM


def _relay_shim(tmp_path: Path, fifo: Path, *, once: bool) -> shim.Shim:
    params = {"dir": str(tmp_path), "stdin": str(fifo)}
    if once:
        params["stdin_once"] = "1"
    return shim.Shim(params)


def test_stdin_once_relay_copies_the_fifo_and_closes_at_the_first_writers_end(tmp_path):
    """stdin_once without a terminal: the container's stdin is a pipe the shim writes; it
    reads what the FIFO's first writer wrote, then EOF once that writer has gone."""
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    s = _relay_shim(tmp_path, fifo, once=True)
    container_stdin = s._open_stdin()  # the pipe's read end, as runc would get it
    try:
        # No writer yet: the FIFO does not show as readable, so the shim's loop sees no EOF
        # (it reads the FIFO only when select says so).
        assert select.select([s.src], [], [], 0.1)[0] == []
        w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, b"hello\n")
        os.close(w)
        s._read_src()  # the data, then the writer's end
        s._write_dst()
        assert s.src == -1 and s.dst == -1  # the pipe closed after the data went in
        assert os.read(container_stdin, 100) == b"hello\n"
        assert os.read(container_stdin, 100) == b""  # EOF
    finally:
        os.close(container_stdin)


def test_relay_holds_input_a_container_does_not_read_yet(tmp_path):
    """More than a pipe holds: the rest waits in the shim (nothing is lost, the shim never
    blocks), and goes in as the container reads."""
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    s = _relay_shim(tmp_path, fifo, once=True)
    container_stdin = s._open_stdin()
    w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    data = os.urandom(200_000)
    os.write(w, data[:65536])  # the FIFO's capacity
    data_sent_first = 65536
    got = bytearray()
    os.set_blocking(container_stdin, False)
    try:
        sent = data_sent_first
        s._read_src()
        s._write_dst()  # fills the pipe
        sent += os.write(w, data[sent:sent + 65536])
        s._read_src()
        s._write_dst()
        assert len(s.pending) > 0  # the pipe is full: the rest waits in the shim
        while True:
            if sent < len(data):
                with contextlib.suppress(BlockingIOError):
                    sent += os.write(w, data[sent:sent + 4096])
                if sent == len(data):
                    os.close(w)
            s._read_src()
            s._write_dst()
            try:
                chunk = os.read(container_stdin, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            got += chunk
        assert bytes(got) == data and s.dst == -1
    finally:
        os.close(container_stdin)


def test_control_close_stdin_copies_what_the_fifo_holds_first(tmp_path):
    """``close-stdin`` on the control FIFO (the kubelet's stdinOnce) while a writer still
    holds the FIFO: what it wrote goes in, then EOF; other lines are ignored."""
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    s = _relay_shim(tmp_path, fifo, once=True)
    container_stdin = s._open_stdin()
    r, control = os.pipe()
    os.set_blocking(r, False)
    s.control = r
    w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(w, b"last words\n")
        os.write(control, b"nonsense\nresize 80 24\nclose-")  # (no terminal: resize does nothing)
        s._read_control()
        assert s.src >= 0
        os.write(control, b"stdin\n")
        s._read_control()
        assert s.src == -1 and s.dst == -1
        assert os.read(container_stdin, 100) == b"last words\n"
        assert os.read(container_stdin, 100) == b""
    finally:
        for fd in (w, r, control, container_stdin):
            os.close(fd)


def test_stdin_without_once_or_terminal_is_the_fifo_itself(tmp_path):
    """Plain ``stdin``: the container holds the FIFO read-write (never EOF across attach
    sessions); the shim relays nothing."""
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    s = _relay_shim(tmp_path, fifo, once=False)
    fd = s._open_stdin()
    try:
        assert not s.relay and s.src == -1 and s.dst == -1
        os.write(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), b"x")  # (a reader holds it: opens at once)
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)


def test_resize_sets_the_terminal_size(tmp_path):
    master, slave = os.openpty()
    s = shim.Shim({"dir": str(tmp_path), "tty": "1"})
    s.master = master
    r, control = os.pipe()
    os.set_blocking(r, False)
    s.control = r
    try:
        os.write(control, b"resize 132 43\n")
        s._read_control()
        from pinnace.kubelet.runtime.stdio import get_winsize

        assert get_winsize(slave) == (132, 43)
    finally:
        for fd in (master, slave, r, control):
            os.close(fd)
