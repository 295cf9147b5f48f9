"""An asyncio wrapper around the ``runc`` binary, with a per-container reaper ("shim").

Getting a detached container's exit status: ``runc create`` forks the container's
init and exits, so init is re-parented to the nearest *child subreaper* -- or to
PID 1, and then nobody can learn its exit code. ``runc run`` in the foreground
would give us the status but destroys the container (and its cgroup, with the
OOM counter) the moment it exits, and has no create/start split. So we do what
containerd-shim does, in a few lines of Python: :meth:`Runc.create` starts
``python -m pinnace.kubelet.runtime.runc`` (the shim) in its own session; the shim
makes itself a subreaper (PR_SET_CHILD_SUBREAPER), runs ``runc create`` with the
container's stdio passed through to the log files (runc's "detached
pass-through" mode: no copying process, the container writes the files itself),
reports the init pid, then waits for init and writes ``exit.json`` (exit code,
signal, and whether the cgroup's ``oom_kill`` counter moved) before exiting.
The shim outlives the kubelet, so a restarted kubelet still finds the status.

With ``log_format="cri"`` the container's stdout/stderr are pipes instead, which the
shim copies into the log file(s) in the CRI log format (:mod:`pinnace.kubelet.crilog`)
until init has exited and the pipes are drained -- so logs keep flowing while no
kubelet runs. The price: a container writing after the shim was killed gets SIGPIPE
(as with containerd-shim).

State: runc's own under ``<data_dir>/runc/state`` (``--root``); the shims' under
``<data_dir>/runc/shims/<id>`` (init.pid, exit.json, runc.log). cgroups use the
cgroupfs driver (no ``--systemd-cgroup``), so ``cgroupsPath`` is a path on v1 and v2.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal as _signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

_ID_RE = re.compile(r"^[\w+.-]+$")  # runc's container id rule
_LOGFMT_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
PR_SET_CHILD_SUBREAPER = 36
UNKNOWN_EXIT_CODE = 255  # what containerd reports when the status was lost
DRAIN_TIMEOUT = 2.0  # after init exited, how long a stray holder of the log pipes may keep them
LogFormat = Literal["raw", "cri"]


class RuncError(Exception):
    """A runc command failed; ``stderr`` is what runc printed."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None,
                 command: tuple[str, ...] = ()):
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode
        self.command = command


class ContainerNotFoundError(RuncError):
    pass


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int           # 128+N when killed by signal N, as a shell reports it
    signal: int | None = None
    oom_killed: bool = False
    finished_at: float = 0.0  # unix time

    @property
    def reason(self) -> str:
        """Kubernetes' terminated reason."""
        if self.oom_killed:
            return "OOMKilled"
        return "Completed" if self.exit_code == 0 else "Error"


def cgroup_version() -> int:
    """2 on a unified (v2-only) host, 1 on legacy and hybrid hosts (runc uses v1 there)."""
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def cgroup_dirs(cgroups_path: str, pid: int | str = "self") -> list[Path]:
    """Where runc (cgroupfs driver) puts ``cgroups_path`` on disk: one directory per v1
    hierarchy, or one on v2. A relative path is under ``pid``'s own cgroup, as runc does."""
    own = _own_cgroups(pid)
    if cgroup_version() == 2:
        base = "/" if cgroups_path.startswith("/") else own.get("", "/")
        return [Path("/sys/fs/cgroup") / (base + "/" + cgroups_path).lstrip("/")]
    dirs = []
    for mount in sorted(Path("/sys/fs/cgroup").iterdir()):
        if mount.is_symlink() or not (mount / "cgroup.procs").exists():
            continue
        key = "" if mount.name == "unified" else mount.name  # hybrid: runc joins the v2 tree too
        base = "/" if cgroups_path.startswith("/") else own.get(key, "/")
        dirs.append(mount / (base + "/" + cgroups_path).lstrip("/"))
    return dirs


def _own_cgroups(pid: int | str) -> dict[str, str]:
    """/proc/PID/cgroup as {hierarchy dir name: path}; v2's entry is under ""."""
    out: dict[str, str] = {}
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            out[c.removeprefix("name=")] = path
        if controllers and "," in controllers:
            out[controllers] = path  # e.g. a "cpu,cpuacct" mount
    return out


def _oom_counter_file(pid: int) -> Path | None:
    """The file counting the OOM kills in ``pid``'s memory cgroup (read while it lives)."""
    cg = _own_cgroups(pid)
    if "memory" in cg:  # v1 (kernel >= 4.13 has oom_kill in memory.oom_control)
        return Path("/sys/fs/cgroup/memory") / cg["memory"].lstrip("/") / "memory.oom_control"
    if "" in cg and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup") / cg[""].lstrip("/") / "memory.events"
    return None


def _oom_kills(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _runc_message(stderr: str) -> str:
    """runc's last error line, from its logrus text (``msg="..."``) or JSON log output."""
    for line in reversed(stderr.strip().splitlines()):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", line))
            continue
        m = _LOGFMT_MSG.search(line)
        if m and ("level=error" in line or "level=fatal" in line):
            return m.group(1).replace('\\"', '"')
        if line.strip():
            return line.strip()
    return stderr.strip()


class Runc:
    """runc with state under ``data_dir``; every method is a coroutine except the helpers."""

    def __init__(self, data_dir: Path | str, binary: str = "runc", *, timeout: float = 60.0):
        self.binary = shutil.which(binary) or binary
        base = Path(data_dir) / "runc"
        self.root = base / "state"
        self.shims = base / "shims"
        self.timeout = timeout
        self.cgroup_version = cgroup_version()
        self._shim_procs: dict[str, asyncio.subprocess.Process] = {}

    def cgroups_path(self, *parts: str) -> str:
        """A ``cgroupsPath`` for the cgroupfs driver: an absolute path on v1 and v2 alike
        ("/pinnace/pod-uid/ctr"); the ``slice:prefix:name`` form is only for --systemd-cgroup."""
        if not parts or any(not p or "/" in p or p in (".", "..") for p in parts):
            raise ValueError(f"invalid cgroup path parts {parts!r}")
        return "/" + "/".join(parts)

    # ---- plumbing --------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    async def _run(self, *args: str) -> str:
        cmd = self._cmd(*args)
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            stderr = err.decode(errors="replace")
            message = _runc_message(stderr) or f"runc {args[0]} exited {proc.returncode}"
            cls = ContainerNotFoundError if "does not exist" in message else RuncError
            raise cls(f"runc {args[0]}: {message}", stderr=stderr, returncode=proc.returncode, command=tuple(cmd))
        return out.decode(errors="replace")

    @staticmethod
    def _check_id(container_id: str) -> str:
        if not isinstance(container_id, str) or not _ID_RE.match(container_id) or container_id in (".", ".."):
            raise ValueError(f"invalid container id {container_id!r}")
        return container_id

    def _shim_dir(self, container_id: str) -> Path:
        return self.shims / self._check_id(container_id)

    # ---- lifecycle ---------------------------------------------------------------------

    async def create(self, container_id: str, bundle: Path | str, stdout_path: Path | str,
                     stderr_path: Path | str, *, log_format: LogFormat = "raw") -> int:
        """``runc create`` through a shim; the container's stdout/stderr append to the two
        files (they may be the same): as written (``raw``) or as CRI log entries (``cri``).
        Returns the init pid; the process waits for start()."""
        if log_format not in ("raw", "cri"):
            raise ValueError(f"invalid log_format {log_format!r}")
        shim_dir = self._shim_dir(container_id)
        if shim_dir.exists() and await self._exists(container_id):
            raise RuncError(f"container {container_id} already exists")
        params = self._prepare(container_id, bundle, stdout_path, stderr_path)
        params["log_format"] = log_format
        shim_log = os.open(shim_dir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", __name__, json.dumps(params), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=shim_log, start_new_session=True)
        finally:
            os.close(shim_log)
        (shim_dir / "shim.pid").write_text(str(proc.pid))
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        try:
            report = json.loads(line) if line else {}
        except ValueError:
            report = {}
        if "pid" not in report:
            await proc.wait()
            log = (shim_dir / "shim.log").read_text(errors="replace")[-2000:]
            stderr = report.get("stderr") or log
            message = report.get("error") or f"shim exited {proc.returncode} without reporting: {log.strip()}"
            with contextlib.suppress(RuncError):  # a half-made container must not block a retry
                await self.delete(container_id, force=True)
            raise RuncError(f"runc create: {message}", stderr=stderr, returncode=proc.returncode)
        self._shim_procs[container_id] = proc
        return int(report["pid"])

    def _prepare(self, container_id: str, bundle: Path | str, stdout_path: Path | str,
                 stderr_path: Path | str) -> dict[str, str]:
        """The shim's parameters, after checking the bundle and making a fresh shim dir."""
        shim_dir = self._shim_dir(container_id)
        bundle = Path(bundle).resolve()
        try:
            config = json.loads((bundle / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise RuncError(f"bundle {bundle}: cannot read config.json: {e}") from None
        if config.get("process", {}).get("terminal"):
            raise RuncError("terminal (tty) containers need a console socket, which is not supported yet")
        shutil.rmtree(shim_dir, ignore_errors=True)  # leftovers of a deleted container with the same id
        shim_dir.mkdir(parents=True)
        self.root.mkdir(parents=True, exist_ok=True)
        return {"runc": self.binary, "root": str(self.root), "id": container_id, "bundle": str(bundle),
                "stdout": str(Path(stdout_path).resolve()), "stderr": str(Path(stderr_path).resolve()),
                "dir": str(shim_dir)}

    async def start(self, container_id: str) -> None:
        await self._run("start", self._check_id(container_id))

    async def state(self, container_id: str) -> dict[str, Any]:
        """runc's state: ``status`` (creating/created/running/paused/stopped), ``pid``, ``bundle``..."""
        return json.loads(await self._run("state", self._check_id(container_id)))

    async def _exists(self, container_id: str) -> bool:
        try:
            await self.state(container_id)
        except ContainerNotFoundError:
            return False
        return True

    async def kill(self, container_id: str, signal: int | str = _signal.SIGTERM, *,
                   all_processes: bool = False) -> None:
        """Signal the init process (``all_processes``: every process of the container, runc --all)."""
        sig = str(int(signal)) if isinstance(signal, int) else str(signal)
        await self._run("kill", *(["--all"] if all_processes else []), self._check_id(container_id), sig)

    async def delete(self, container_id: str, force: bool = False) -> None:
        """``runc delete`` (``force`` kills a running one first), then the shim's state.
        Read :meth:`wait`'s result first: the exit status goes with it."""
        self._check_id(container_id)
        try:
            await self._run("delete", *(["--force"] if force else []), container_id)
        except ContainerNotFoundError:
            pass  # already gone: still clean our side
        # The shim exits as soon as it has reaped init (which delete killed, if it still ran):
        # let it finish writing before its directory goes.
        proc = self._shim_procs.pop(container_id, None)
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), self.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        else:  # a shim started by an earlier kubelet: not our child, poll it
            for _ in range(int(self.timeout / 0.05)):
                if not self._shim_alive(container_id):
                    break
                await asyncio.sleep(0.05)
        shutil.rmtree(self._shim_dir(container_id), ignore_errors=True)

    async def list(self) -> list[dict[str, Any]]:
        out = await self._run("list", "--format", "json")
        return json.loads(out) or []  # runc prints "null" when there are none

    # ---- exit status ------------------------------------------------------------------

    def exit_status(self, container_id: str) -> ExitStatus | None:
        """The recorded exit status, or None while the container has not exited."""
        try:
            data = json.loads((self._shim_dir(container_id) / "exit.json").read_text())
        except (OSError, ValueError):
            return None
        return ExitStatus(**data)

    async def wait(self, container_id: str, poll: float = 0.2) -> ExitStatus:
        """Wait for the container's init to exit and return how it ended."""
        proc = self._shim_procs.get(container_id)
        if proc is not None:
            await proc.wait()
        while True:
            status = self.exit_status(container_id)
            if status is not None:
                return status
            if not self._shim_alive(container_id):
                # The shim died without a record (killed?), or the container was not created
                # through us: all that is left is runc's word that it stopped.
                state = await self.state(container_id)
                if state.get("status") == "stopped":
                    return ExitStatus(UNKNOWN_EXIT_CODE, finished_at=time.time())
            await asyncio.sleep(poll)

    async def wait_exit(self, container_id: str) -> int:
        """The exit code (137 = SIGKILL, e.g. the OOM killer: see :meth:`wait` for the reason)."""
        return (await self.wait(container_id)).exit_code

    def shim_alive(self, container_id: str) -> bool:
        """Whether the container's shim still runs (a cheap check: no runc process)."""
        return self._shim_alive(container_id)

    def _shim_alive(self, container_id: str) -> bool:
        try:
            pid = int((self._shim_dir(container_id) / "shim.pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True


# ---- the shim (runs as ``python -m pinnace.kubelet.runtime.runc '<json params>'``) ----------


def _shim(params: dict[str, str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _report({"error": f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}"})
        return 1
    shim_dir = Path(params["dir"])
    pid_file, log_file = shim_dir / "init.pid", shim_dir / "runc.log"
    for p in (params["stdout"], params["stderr"]):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    cri = params.get("log_format") == "cri"
    if cri:
        # The container writes pipes we copy into the log; the read ends are close-on-exec,
        # so only the container holds the write ends once runc create has exited.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdio = (out_w, err_w)
    else:  # pass-through: the container writes the files itself
        stdio = (os.open(params["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
                 os.open(params["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
    try:
        rc = subprocess.call(
            [params["runc"], "--root", params["root"], "--log", str(log_file), "--log-format", "json",
             "create", "--bundle", params["bundle"], "--pid-file", str(pid_file), params["id"]],
            stdin=subprocess.DEVNULL, stdout=stdio[0], stderr=stdio[1])
    finally:
        for fd in stdio:
            os.close(fd)
    if rc != 0:
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        _report({"error": _runc_message(log) or f"exited {rc}", "stderr": log})
        return 1
    init = int(pid_file.read_text())
    oom_file = _oom_counter_file(init)  # init is parked in runc's exec fifo, already in its cgroup
    oom_before = _oom_kills(oom_file)
    _report({"pid": init})
    if cri:
        status = asyncio.run(_log_until_exit(init, (out_r, params["stdout"], "stdout"),
                                             (err_r, params["stderr"], "stderr")))
    else:
        status = _reap(init)
    if status is None:
        result = ExitStatus(UNKNOWN_EXIT_CODE, finished_at=time.time())
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        result = ExitStatus(128 + sig, sig, _oom_kills(oom_file) > oom_before, time.time())
    else:
        result = ExitStatus(os.WEXITSTATUS(status), None, _oom_kills(oom_file) > oom_before, time.time())
    tmp = shim_dir / "exit.json.tmp"
    tmp.write_text(json.dumps(asdict(result)))
    tmp.rename(shim_dir / "exit.json")  # atomic: readers never see half a record
    return 0


def _reap(init: int) -> int | None:
    """Wait for ``init``; its wait status (None if it was somehow not our child)."""
    while True:
        try:
            pid, st = os.waitpid(-1, 0)  # reap init and any orphan re-parented to us
        except ChildProcessError:
            return None
        except InterruptedError:
            continue
        if pid == init:
            return st


async def _log_until_exit(init: int, *streams: tuple[int, str, str]) -> int | None:
    """Copy each (pipe fd, log path, stream name) into its log in CRI format while waiting
    for ``init``; init's wait status once it has exited and the pipes are drained."""
    from pinnace.kubelet import crilog  # only the CRI mode needs it: keeps the raw shim's start fast

    loop = asyncio.get_running_loop()

    async def pump(fd: int, path: str, stream: str) -> None:
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(fd, "rb", buffering=0))
        try:
            await crilog.pump(reader, Path(path), stream)
        finally:
            transport.close()

    pumps = [asyncio.create_task(pump(*s)) for s in streams]
    status = await asyncio.to_thread(_reap, init)
    # init's exit tears down its pid namespace, so the pipes close right away; something
    # outside it holding them (a host-pid container's daemon) must not delay the status forever.
    _, pending = await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
    return status


def _report(message: dict[str, Any]) -> None:
    """One line to the caller, then stdout goes to /dev/null so the pipe closes."""
    os.write(1, (json.dumps(message) + "\n").encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(_shim(json.loads(sys.argv[1])))
