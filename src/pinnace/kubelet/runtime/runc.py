"""An asyncio wrapper around the ``runc`` binary, with a per-container reaper ("shim").

Getting a detached container's exit status: ``runc create`` forks the container's
init and exits, so init is re-parented to the nearest *child subreaper* -- or to
PID 1, and then nobody can learn its exit code. ``runc run`` in the foreground
would give us the status but destroys the container (and its cgroup, with the
OOM counter) the moment it exits, and has no create/start split. So we do what
containerd-shim does, in a small Python program (:mod:`.shim`, stdlib only):
:meth:`Runc.create` starts it in its own session; the shim makes itself a
subreaper, runs ``runc create``, reports the init pid, copies the container's
output into its log, then waits for init and writes ``exit.json`` (exit code,
signal, and whether the cgroup's ``oom_kill`` counter moved) before exiting.
The shim outlives the kubelet, so a restarted kubelet still finds the status.

Start-up cost matters (one shim per container and per pod sandbox).  A shim is forked
by the *shim server* (``shim.py --serve``, one per :class:`Runc`, started on the first
create and gone when its control socket closes): a fork costs ~1 ms where a new
interpreter costs ~15 ms of CPU.  Without the server (``shim_server=False``, or when it
cannot be started) each shim is a program of its own, ``python -I -S shim.py`` -- by
path, isolated, without ``site``, builtin modules only: ~20 ms instead of the ~150 ms
of an interpreter that imports asyncio and the package.  Either way the shim is its own
session and outlives the kubelet.  Processes are started with ``subprocess.Popen``
(vfork) and awaited on pidfds: asyncio's subprocesses under uvloop fork the whole
agent, >10 ms of the event loop each.

With ``log_format="raw"`` the container's stdout/stderr are the log files themselves
(runc's "detached pass-through" mode: no copying process).  With ``log_format="cri"``
they are pipes, which the shim copies into the log file(s) in the CRI log format
until init has exited and the pipes are drained -- so logs keep flowing while no
kubelet runs, and :meth:`Runc.reopen_log` can make the shim reopen a rotated log
(``SIGUSR1``).  The price: a container writing after the shim was killed gets
SIGPIPE (as with containerd-shim).  ``stdin``: a FIFO (made by the caller) that the
shim opens read-write and gives the container as its stdin -- or, with ``stdin_once``,
reads itself and copies into a pipe that is the container's stdin, closed when the first
writer of the FIFO has gone or on :meth:`Runc.close_stdin` (the container reads EOF).

Terminals: a bundle with ``process.terminal`` runs on a new terminal (``runc create
--console-socket``); the shim gets its master, logs its output (as ``stdout``), copies the
stdin FIFO into it and sets its size on :meth:`Runc.resize`.  Both requests go to the
shim's control FIFO (see :mod:`.shim`).

State: runc's own under ``<data_dir>/runc/state`` (``--root``); the shims' under
``<data_dir>/runc/shims/<id>`` (shim.json: its parameters, shim.pid, init.pid, exit.json,
runc.log, shim.log).  :attr:`Runc.on_exit` hears of each exit of a shim this instance
started (pod lifecycle events for the kubelet).
cgroups use the cgroupfs driver (no ``--systemd-cgroup``), so ``cgroupsPath`` is a
path on v1 and v2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal as _signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pinnace.procs import ForeignProcess, LineReader, Process, pid_exists, run_process, wait_pid

from . import shim as _shim_module
from .shim import UNKNOWN_EXIT_CODE
from .shim import runc_message as _runc_message

_ID_RE = re.compile(r"^[\w+.-]+$")  # runc's container id rule
SHIM = Path(_shim_module.__file__).resolve()
LogFormat = Literal["raw", "cri"]
log = logging.getLogger(__name__)


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


ShimProcess = Process | ForeignProcess


class Runc:
    """runc with state under ``data_dir``; every method is a coroutine except the helpers."""

    def __init__(self, data_dir: Path | str, binary: str = "runc", *, timeout: float = 60.0,
                 shim_server: bool = True):
        """``shim_server``: fork the shims from one long-lived shim server (fast) rather than
        start each as a program of its own."""
        self.binary = shutil.which(binary) or binary
        base = Path(data_dir) / "runc"
        self.root = base / "state"
        self.shims = base / "shims"
        self.timeout = timeout
        self.cgroup_version = cgroup_version()
        self._shim_procs: dict[str, ShimProcess] = {}
        # One process forks the shims (see shim.serve), started on the first create.
        self.shim_server = shim_server
        self._server: Process | None = None
        self._control: socket.socket | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        # Called with the container id as soon as a shim this instance started exits (the exit
        # status is recorded by then): the kubelet's pod lifecycle events, without polling.
        self.on_exit: Callable[[str], None] | None = None

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
        rc, out, err = await run_process(cmd, self.timeout)
        if rc != 0:
            stderr = err.decode(errors="replace")
            message = _runc_message(stderr) or f"runc {args[0]} exited {rc}"
            cls = ContainerNotFoundError if "does not exist" in message else RuncError
            raise cls(f"runc {args[0]}: {message}", stderr=stderr, returncode=rc, command=tuple(cmd))
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
                     stderr_path: Path | str, *, log_format: LogFormat = "raw",
                     stdin: Path | str | None = None, stdin_once: bool = False) -> int:
        """``runc create`` through a shim; the container's stdout/stderr append to the two
        files (they may be the same): as written (``raw``) or as CRI log entries (``cri``).
        ``stdin``: a FIFO the caller made, which becomes the container's stdin (the shim
        opens it read-write: the container never reads EOF for want of a writer); with
        ``stdin_once`` the shim reads it and the container reads EOF once the first writer
        of the FIFO has closed it (or on :meth:`close_stdin`).  Without ``stdin``:
        /dev/null.  A bundle with ``process.terminal`` runs on a terminal (output: CRI
        entries, all ``stdout``, whatever ``log_format`` says).  Returns the init pid; the
        process waits for start()."""
        if log_format not in ("raw", "cri"):
            raise ValueError(f"invalid log_format {log_format!r}")
        shim_dir = self._shim_dir(container_id)
        if shim_dir.exists() and await self._exists(container_id):
            raise RuncError(f"container {container_id} already exists")
        params = self._prepare(container_id, bundle, stdout_path, stderr_path, stdin)
        params["log_format"] = log_format
        if stdin is not None and stdin_once:
            params["stdin_once"] = "1"
        (shim_dir / "shim.json").write_text(json.dumps(params))  # what the shim was told (reopen_log)
        proc, report = await self._start_shim(shim_dir, params)
        if "pid" not in report:
            rc = await proc.wait() if proc is not None else None
            log = (shim_dir / "shim.log").read_text(errors="replace")[-2000:]
            stderr = report.get("stderr") or log
            message = report.get("error") or f"shim exited {rc} without reporting: {log.strip()}"
            with contextlib.suppress(RuncError):  # a half-made container must not block a retry
                await self.delete(container_id, force=True)
            raise RuncError(f"runc create: {message}", stderr=stderr, returncode=rc)
        assert proc is not None
        self._shim_procs[container_id] = proc
        self._watch(container_id, proc)
        return int(report["pid"])

    async def _start_shim(self, shim_dir: Path, params: dict[str, str]) -> tuple[ShimProcess | None, dict[str, Any]]:
        """Start the shim -- forked by the shim server, else as a program of its own -- and
        read its report; (the shim, if it got as far as telling its pid, and the report)."""
        shim_log = os.open(shim_dir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            reader_fd, proc = self._fork_shim(params, shim_log), None
            if reader_fd is None:
                # -I: no PYTHON* variables, no user site, not the cwd on sys.path; -S: no site
                # (its .pth files cost more than the shim itself).  Parameters as key=value.
                proc = Process([sys.executable, "-I", "-S", str(SHIM), *(f"{k}={v}" for k, v in params.items())],
                               capture=(1,), stderr=shim_log, new_session=True)
                reader_fd = proc.pipes.pop(1)
                (shim_dir / "shim.pid").write_text(str(proc.pid))
        finally:
            os.close(shim_log)
        reader = LineReader(reader_fd)
        shim: ShimProcess | None = proc
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    line = await reader.readline()
                    try:
                        report = json.loads(line) if line else {}
                    except ValueError:
                        report = {"error": f"garbled report {line[:200]!r}"}
                    if "shim" in report and shim is None:  # the forked shim's first line: its pid
                        shim = ForeignProcess(int(report["shim"]))
                        (shim_dir / "shim.pid").write_text(str(shim.pid))
                        continue
                    return shim, report
        except BaseException:
            if shim is not None:
                shim.kill()
                await asyncio.shield(shim.wait())
            raise
        finally:
            os.close(reader_fd)  # the shim detaches from it after its report

    def _fork_shim(self, params: dict[str, str], shim_log: int) -> int | None:
        """Ask the shim server to fork a shim; our end of its report channel (non-blocking),
        or None when there is no working server (then the caller starts the shim itself)."""
        if not self.shim_server:
            return None
        payload = "\0".join(f"{k}={v}" for k, v in params.items()).encode()
        for _ in range(2):  # a server that died is started again, once
            ctl = self._server_socket()
            if ctl is None:
                return None
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                socket.send_fds(ctl, [payload], [theirs.fileno(), shim_log])
            except BlockingIOError:  # the server is swamped: do without it this time
                ours.close()
                return None
            except OSError as e:
                ours.close()
                log.warning("runc: the shim server is gone (%s); starting a new one", e)
                self._stop_server()
                continue
            finally:
                theirs.close()
            ours.setblocking(False)
            return ours.detach()
        return None

    def _server_socket(self) -> socket.socket | None:
        """The control socket of our shim server, which is started if it does not run."""
        if self._server is not None and self._server.alive() and self._control is not None:
            return self._control
        self._stop_server()
        self.shims.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server_log = os.open(self.shims.parent / "shim-server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._server = Process([sys.executable, "-I", "-S", str(SHIM), "--serve"], stdin=theirs.fileno(),
                                   stderr=server_log, new_session=True)
        except OSError as e:
            log.warning("runc: cannot start the shim server (%s); starting each shim on its own", e)
            ours.close()
            self.shim_server = False
            return None
        finally:
            theirs.close()
            os.close(server_log)
        ours.setblocking(False)
        self._control = ours
        return ours

    def _stop_server(self) -> None:
        """Let the shim server go (it exits once its control socket is closed; its shims stay)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        self._server = None

    def close(self) -> None:
        """Stop the shim server (the containers and their shims keep running)."""
        self._stop_server()

    def _watch(self, container_id: str, proc: ShimProcess) -> None:
        """Tell ``on_exit`` as soon as the shim has exited (its record is written by then)."""
        async def watch() -> None:
            await proc.wait()
            if self.on_exit is not None and self._shim_procs.get(container_id) is proc:
                try:
                    self.on_exit(container_id)
                except Exception:  # a listener's bug must not break the runtime
                    pass

        task = asyncio.get_running_loop().create_task(watch(), name=f"shim {container_id[:12]}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _prepare(self, container_id: str, bundle: Path | str, stdout_path: Path | str,
                 stderr_path: Path | str, stdin: Path | str | None = None) -> dict[str, str]:
        """The shim's parameters, after checking the bundle and making a fresh shim dir."""
        shim_dir = self._shim_dir(container_id)
        bundle = Path(bundle).resolve()
        try:
            config = json.loads((bundle / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise RuncError(f"bundle {bundle}: cannot read config.json: {e}") from None
        shutil.rmtree(shim_dir, ignore_errors=True)  # leftovers of a deleted container with the same id
        shim_dir.mkdir(parents=True)
        self.root.mkdir(parents=True, exist_ok=True)
        params = {"runc": self.binary, "root": str(self.root.resolve()), "id": container_id,
                  "bundle": str(bundle), "stdout": str(Path(stdout_path).resolve()),
                  "stderr": str(Path(stderr_path).resolve()), "dir": str(shim_dir.resolve())}
        if stdin is not None:
            params["stdin"] = str(Path(stdin).resolve())
        if config.get("process", {}).get("terminal"):
            params["tty"] = "1"
        return params

    def _request(self, container_id: str, line: str) -> None:
        """One request to the container's shim, on its control FIFO (see :mod:`.shim`)."""
        path = self._shim_dir(container_id) / _shim_module.CONTROL
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RuncError(f"container {container_id}: its shim takes no requests (no terminal, no "
                            "stdin relay)") from None
        except OSError as e:  # ENXIO: nobody reads it: the shim is gone
            raise RuncError(f"container {container_id}: its shim is not running ({e.strerror})") from None
        try:
            os.write(fd, (line + "\n").encode())  # one write below PIPE_BUF: never interleaved
        except OSError as e:  # EAGAIN: a shim swamped with requests
            raise RuncError(f"container {container_id}: request to the shim failed: {e.strerror}") from None
        finally:
            os.close(fd)

    def resize(self, container_id: str, width: int, height: int) -> None:
        """Set the size of the container's terminal (columns, rows); RuncError when it has
        none or its shim is gone."""
        self._request(container_id, f"resize {int(width)} {int(height)}")

    def close_stdin(self, container_id: str) -> None:
        """``stdin_once``: the container's stdin ends (EOF) once what its FIFO holds is read."""
        self._request(container_id, "close-stdin")

    def reopen_log(self, container_id: str) -> None:
        """Make the container's shim reopen its log file (CRI mode), which was renamed away
        (log rotation): it writes to a new file at the same path from then on.  Raises
        RuncError when no shim of ours copies the container's output."""
        shim_dir = self._shim_dir(container_id)
        if self.exit_status(container_id) is not None:  # its shim is finishing or gone
            raise RuncError(f"container {container_id}: not running (it has exited)")
        try:
            pid = int((shim_dir / "shim.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            raise RuncError(f"container {container_id}: its shim is not running") from None
        # Only a shim of this kind handles the signal (one started by an older kubelet would die of it).
        if not any(os.path.basename(a) == os.fsencode(SHIM.name) for a in cmdline):
            raise RuncError(f"container {container_id}: its shim (pid {pid}) cannot reopen logs")
        try:
            log_format = json.loads((shim_dir / "shim.json").read_text()).get("log_format")
        except (OSError, ValueError):
            log_format = None
        if log_format != "cri":
            raise RuncError(f"container {container_id}: its output goes to the log directly, not through the shim")
        try:
            os.kill(pid, _shim_module.REOPEN_SIGNAL)
        except ProcessLookupError:
            raise RuncError(f"container {container_id}: its shim is not running") from None

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
                async with asyncio.timeout(self.timeout):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        else:
            await self._await_foreign_shim(container_id, self.timeout)
        shutil.rmtree(self._shim_dir(container_id), ignore_errors=True)

    async def list(self) -> list[dict[str, Any]]:
        for attempt in range(3):
            try:
                out = await self._run("list", "--format", "json")
                break
            except RuncError as e:
                # runc reads its state dir, then each container's: one deleted in between
                # (``runc delete`` elsewhere) fails the whole listing.  Ask again.
                if "no such file or directory" not in e.stderr or attempt == 2:
                    raise
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
        while True:
            status = self.exit_status(container_id)
            if status is not None:
                return status
            proc = self._shim_procs.get(container_id)
            if proc is not None and proc.alive():
                await proc.wait()  # it records the exit before it exits
                continue
            if not self._shim_alive(container_id):
                status = self.exit_status(container_id)  # it may have recorded and exited just now
                if status is not None:
                    return status
                # The shim died without a record (killed?), or the container was not created
                # through us: all that is left is runc's word that it stopped.
                state = await self.state(container_id)
                if state.get("status") == "stopped":
                    return ExitStatus(UNKNOWN_EXIT_CODE, finished_at=time.time())
                await asyncio.sleep(poll)
            else:
                await self._await_foreign_shim(container_id, poll * 5)

    async def _await_foreign_shim(self, container_id: str, timeout: float) -> None:
        """Until a shim an earlier kubelet started (not our child: a pidfd tells when it is gone)
        has exited or recorded the exit -- or ``timeout`` (its pid may name another process by
        now)."""
        pid = self._shim_pid(container_id)
        if pid is None or self.exit_status(container_id) is not None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while pid_exists(pid) and self.exit_status(container_id) is None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):  # re-check the record now and then
                            await wait_pid(pid)

    async def wait_exit(self, container_id: str) -> int:
        """The exit code (137 = SIGKILL, e.g. the OOM killer: see :meth:`wait` for the reason)."""
        return (await self.wait(container_id)).exit_code

    def shim_alive(self, container_id: str) -> bool:
        """Whether the container's shim still runs (a cheap check: no runc process)."""
        return self._shim_alive(container_id)

    def _shim_pid(self, container_id: str) -> int | None:
        try:
            return int((self._shim_dir(container_id) / "shim.pid").read_text())
        except (OSError, ValueError):
            return None

    def _shim_alive(self, container_id: str) -> bool:
        pid = self._shim_pid(container_id)
        if pid is None:
            return False
        proc = self._shim_procs.get(container_id)
        if proc is not None:  # (our child: a zombie is not alive)
            return proc.alive()
        return pid_exists(pid)
