"""The ``process`` container runtime: containers are plain host processes.

For machines without root or runc (development, macOS, quick tests).  There is **no
isolation**: no namespaces, no cgroups, no rootfs, no users.  What that means:

- Network: the host's.  A sandbox's IP is the node IP (as for ``hostNetwork`` pods);
  the hostname is the host's.
- Filesystem: the host's.  Mounts are *not* applied (binding needs root): a process
  sees host paths, so ``ContainerConfig.mounts`` are only recorded, and the kubelet
  should give this runtime host paths (e.g. ``$(VOLUME_PATH)`` style env or args
  pointing at the host directory) rather than rely on ``container_path``.  ``readOnly``
  is not enforced.  ``image``/``image_ref`` are ignored: ``args[0]`` is a host binary.
- Working directory: ``config.working_dir`` when it exists on the host, else a fresh
  per-container directory under the sandbox directory (a restarted container gets a
  new one, like a fresh writable layer).
- Environment: exactly ``config.env``, plus the host's ``PATH`` if it sets none
  (``args[0]`` is looked up in that ``PATH``).
- Processes: each container is its own session and process group.  Stopping sends
  SIGTERM to the *group* (not only the main process, unlike runc) and SIGKILL after
  the grace period; when the main process exits, whatever is left of its group is
  killed, as the kernel does when a pid namespace's init exits.  Processes that
  leave the group (``setsid``) escape.
- security_context and resources are ignored.
- ``tty``: the process runs on a new pty (``os.openpty``), its controlling terminal; this
  runtime holds the master, logs its output (all as ``stdout``), copies the stdin FIFO into
  it and sets its size (:meth:`ProcessRuntime.resize_container`).  The master lives in the
  kubelet: when the kubelet goes, the terminal hangs up (SIGHUP), and a restarted kubelet
  has no terminal output to log.  ``kubectl exec -t`` gets a new pty too.

stdout/stderr go through FIFOs in the container's state directory, which the child
holds open read-write: if the kubelet dies the container does not get SIGPIPE, its
output waits in the FIFO (64 KiB, then writes block) until a restarted kubelet
re-attaches and pumps it into the CRI log (:func:`pinnace.kubelet.crilog.pump`).
stdin is /dev/null, or with ``config.stdin`` the FIFO ``<id>/stdin`` that ``kubectl
attach`` writes into (:meth:`ProcessRuntime.stdin_path`).  The process holds it
read-write, so it never reads EOF; with ``stdin_once`` it holds only a read end and this
runtime the write end, which :meth:`ProcessRuntime.close_stdin` closes after the first
attach session: then it reads EOF (and so it does when the kubelet dies).

State survives a kubelet restart: ``<state_dir>/containers/<id>/state.json`` holds the
config, pid and (once seen) the exit status.  A restarted kubelet sees a live process
(checked by pid, process start time and boot id) as running and re-attaches its
logs; a container that exited while the kubelet was down is reported as containerd
reports a lost status: exit code 255, reason ``Unknown`` -- or 128+N when the
restarted kubelet itself sent it signal N (then the code is inferred, not observed).

Exec failures at start (binary missing, not executable) end the container with exit
code 128 and reason ``StartError``, the message in runc's wording, and
``start_container`` raises :class:`RuntimeError_` -- as containerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnace.kubelet import crilog
from pinnace.kubelet.runtime.base import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    Mount,
    RuntimeError_,
    Sandbox,
    SandboxConfig,
    State,
)
from pinnace.kubelet.runtime.stdio import (
    ExecProcess,
    FdWriter,
    read_stream,
    set_controlling_terminal,
    set_winsize,
    terminal_process,
)
from pinnace.procs import pid_exists, wait_pid

log = logging.getLogger(__name__)

START_ERROR_EXIT_CODE = 128  # what Kubernetes shows for a runc exec failure ("StartError")
UNKNOWN_EXIT_CODE = 255  # containerd's code for a lost exit status
DRAIN_TIMEOUT = 2.0  # how long logs may still flow after the main process exited
_ADOPTED_POLL = 1.0  # liveness checks of processes this instance did not start
_STOPPING_POLL = 0.05
_HAVE_PROC = os.path.isdir("/proc/self")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


_BOOT_ID = _boot_id()


def _proc_start(pid: int) -> int | None:
    """The process' start time (clock ticks since boot): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def _pid_alive(pid: int, proc_start: int | None, boot_id: str | None) -> bool:
    """Whether ``pid`` is still the process we started (not a zombie, not a reused pid)."""
    if boot_id is not None and _BOOT_ID is not None and boot_id != _BOOT_ID:
        return False
    if not _HAVE_PROC:  # macOS: a live pid is all we can check
        return pid_exists(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return False
    return proc_start is None or int(fields[19]) == proc_start


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exit_code(returncode: int) -> int:
    # Killed by signal N: 128+N, as a shell and Kubernetes show it (137 SIGKILL, 143 SIGTERM).
    return returncode if returncode >= 0 else 128 - returncode


def _exec_error(arg0: str, err: OSError) -> str:
    """runc's wording for an exec failure (what users search for)."""
    if isinstance(err, FileNotFoundError) and "/" not in arg0:
        detail = "executable file not found in $PATH"
    else:
        detail = (err.strerror or str(err)).lower()
    return f'unable to start container process: exec: "{arg0}": {detail}'


def _open_reader(fifo: Path) -> io.FileIO:
    # Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    return open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)


def _workdir(config: ContainerConfig, own: Path) -> tuple[str, bool]:
    """``config.working_dir`` if the host has it, else ``own`` (created); whether it is ours."""
    if config.working_dir and os.path.isdir(config.working_dir):
        return config.working_dir, False
    own.mkdir(parents=True)
    return str(own), True


def _utc(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)  # atomic: a crash never leaves half a state file


@dataclass
class _Record:
    """A container's persistent state (``state.json``)."""

    id: str
    sandbox_id: str
    config: ContainerConfig
    workdir: str
    own_workdir: bool  # created by us (removed with the container)
    env: dict[str, str]
    state: State = "created"
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    proc_start: int | None = None
    boot_id: str | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    signal_sent: int | None = None  # the last signal we sent (to infer a lost exit code)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config"]["log_path"] = str(self.config.log_path)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Record:
        c = dict(d["config"])
        c["log_path"] = Path(c["log_path"])
        c["mounts"] = [Mount(**m) for m in c.get("mounts", [])]
        names = {f.name for f in dataclasses.fields(ContainerConfig)}
        d = {**d, "config": ContainerConfig(**{k: v for k, v in c.items() if k in names})}
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id, state=self.state, exit_code=self.exit_code, reason=self.reason, message=self.message,
            created_at=_utc(self.created_at), started_at=_utc(self.started_at), finished_at=_utc(self.finished_at),
            pid=self.pid if self.state == "running" else None, labels=dict(self.config.labels),
            sandbox_id=self.sandbox_id)


class _TerminalChild:
    """A process started on a terminal with :class:`subprocess.Popen`, which makes the terminal
    its controlling one *after* giving it its stdio (uvloop's subprocesses run a preexec_fn
    before that, where TIOCSCTTY fails); awaited on a pidfd.  The parts of
    asyncio.subprocess.Process this runtime uses."""

    def __init__(self, popen: subprocess.Popen[bytes]):
        self.popen, self.pid = popen, popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        code = await wait_pid(self.pid, self.popen.poll)
        return UNKNOWN_EXIT_CODE if code is None else code


def _spawn_on_terminal(argv: list[str], cwd: str, env: dict[str, str], slave: int) -> _TerminalChild:
    """``argv`` in a session of its own whose controlling terminal is the pty ``slave``."""
    return _TerminalChild(subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                           start_new_session=True, preexec_fn=set_controlling_terminal))


@dataclass
class _Live:
    """What this runtime instance watches of a running container."""

    # None: adopted after a restart, not our child
    proc: asyncio.subprocess.Process | _TerminalChild | None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    waiter: asyncio.Task[None] | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    stdin_writer: int | None = None  # with stdin_once: the FIFO's write end, until close_stdin
    master: int | None = None  # with tty: the terminal's master (resize)
    relay: asyncio.Task[None] | None = None  # with tty and stdin: the FIFO copied into the master


class ProcessRuntime:
    """A :class:`~pinnace.kubelet.runtime.base.ContainerRuntime` running host processes."""

    name = "process"

    def __init__(self, state_dir: Path | str, node_ip: str):
        self.state_dir = Path(state_dir)
        self.node_ip = node_ip
        self._sandboxes = self.state_dir / "sandboxes"
        self._containers = self.state_dir / "containers"
        self._sandboxes.mkdir(parents=True, exist_ok=True)
        self._containers.mkdir(parents=True, exist_ok=True)
        self._live: dict[str, _Live] = {}
        log.warning("process runtime: containers are host processes without isolation (state in %s)",
                    self.state_dir)

    # ---- state files -------------------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise RuntimeError_(f"invalid container id {container_id!r}")
        return self._containers / container_id

    def _load(self, container_id: str) -> _Record | None:
        try:
            return _Record.from_json(json.loads((self._dir(container_id) / "state.json").read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as e:
            raise RuntimeError_(f"container {container_id}: corrupt state: {e}") from e

    def _save(self, rec: _Record) -> None:
        d = self._dir(rec.id)
        if d.is_dir():  # never resurrect a removed container
            _write_json(d / "state.json", rec.to_json())

    def _must_load(self, container_id: str) -> _Record:
        rec = self._load(container_id)
        if rec is None:
            raise RuntimeError_(f"container {container_id} not found")
        return rec

    def _all_ids(self) -> list[str]:
        return sorted(p.parent.name for p in self._containers.glob("*/state.json"))

    # ---- sandboxes ---------------------------------------------------------------------

    async def run_pod_sandbox(self, config: SandboxConfig) -> Sandbox:
        created = time.time()
        sandbox = Sandbox(id=secrets.token_hex(32), config=config, ip=self.node_ip, created_at=_utc(created))
        d = self._sandboxes / sandbox.id
        d.mkdir(parents=True)
        _write_json(d / "sandbox.json", {"id": sandbox.id, "config": dataclasses.asdict(config),
                                         "ip": sandbox.ip, "created_at": created})
        return sandbox

    async def list_pod_sandboxes(self) -> list[Sandbox]:
        """Every sandbox dir, rebuilt from its ``sandbox.json`` (one without a usable record
        is listed with an empty pod uid, so that it can be removed).  A sandbox here holds no
        namespaces: it is always ready."""
        out = []
        for d in sorted(p for p in self._sandboxes.iterdir() if p.is_dir()):
            try:
                record = json.loads((d / "sandbox.json").read_text())
                raw = dict(record["config"])
                names = {f.name for f in dataclasses.fields(SandboxConfig)}
                config = SandboxConfig(**{k: v for k, v in raw.items() if k in names})
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("process runtime: sandbox %s has no usable sandbox.json (%s)", d.name[:12], e)
                record, config = {}, SandboxConfig(pod_uid="", name="", namespace="", hostname="")
            out.append(Sandbox(id=d.name, config=config, ip=record.get("ip") or self.node_ip,
                               created_at=_utc(record.get("created_at"))))
        out.sort(key=lambda s: s.created_at or dt.datetime.min.replace(tzinfo=dt.UTC))
        return out

    def _sandbox_containers(self, sandbox_id: str) -> list[str]:
        out = []
        for cid in self._all_ids():
            with contextlib.suppress(RuntimeError_):
                rec = self._load(cid)
                if rec is not None and rec.sandbox_id == sandbox_id:
                    out.append(cid)
        return out

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        await asyncio.gather(*(self.stop_container(cid, 0) for cid in self._sandbox_containers(sandbox.id)))

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        await asyncio.gather(*(self.remove_container(cid) for cid in self._sandbox_containers(sandbox.id)))
        shutil.rmtree(self._sandboxes / sandbox.id, ignore_errors=True)

    # ---- containers --------------------------------------------------------------------

    async def create_container(self, sandbox: Sandbox, config: ContainerConfig) -> str:
        sandbox_dir = self._sandboxes / sandbox.id
        if not sandbox_dir.is_dir():
            raise RuntimeError_(f"pod sandbox {sandbox.id} not found")
        cid = secrets.token_hex(32)
        workdir, own = _workdir(config, sandbox_dir / f"{config.name}-{cid[:12]}")
        if any(m.host_path != m.container_path for m in config.mounts):
            log.info("process runtime: container %s sees host paths, not its mount paths (%s)", config.name,
                     ", ".join(f"{m.container_path} is {m.host_path}" for m in config.mounts))
        env = dict(config.env)
        env.setdefault("PATH", os.environ.get("PATH", os.defpath))
        d = self._dir(cid)
        d.mkdir(mode=0o700)  # state.json holds the env, which may carry Secrets
        for stream in ("stdout", "stderr", *(("stdin",) if config.stdin else ())):
            os.mkfifo(d / stream, 0o600)
        self._save(_Record(id=cid, sandbox_id=sandbox.id, config=config, workdir=workdir, own_workdir=own,
                           env=env, created_at=time.time()))
        return cid

    async def start_container(self, container_id: str) -> None:
        rec = self._must_load(container_id)
        if rec.state != "created" or container_id in self._live:
            raise RuntimeError_(f"container {container_id} is {rec.state}, not created")
        cfg = rec.config
        cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        d = self._dir(container_id)
        live = _Live(proc=None)
        # Our read ends first (non-blocking open of a FIFO without writers succeeds); the
        # child gets read-write ends, so it never sees a reader-less FIFO (SIGPIPE) even
        # when the kubelet is gone.
        if cfg.tty:
            return await self._start_on_terminal(rec, live)
        live.pumps = [await self._pump(d / "stdout", cfg.log_path, "stdout"),
                      await self._pump(d / "stderr", cfg.log_path, "stderr")]
        out_fd = os.open(d / "stdout", os.O_RDWR)
        err_fd = os.open(d / "stderr", os.O_RDWR)
        in_fd: int | None = None
        if cfg.stdin:
            if cfg.stdin_once:  # our write end first: opening the read end then does not block
                live.stdin_writer = os.open(d / "stdin", os.O_RDWR | os.O_CLOEXEC)
            in_fd = os.open(d / "stdin", os.O_RDONLY if cfg.stdin_once else os.O_RDWR)
        try:
            if not cfg.args:
                raise RuntimeError_("no command specified")
            live.proc = await asyncio.create_subprocess_exec(
                *cfg.args, cwd=rec.workdir, env=rec.env, start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL if in_fd is None else in_fd, stdout=out_fd, stderr=err_fd)
        except (OSError, RuntimeError_) as e:
            message = _exec_error(cfg.args[0], e) if isinstance(e, OSError) else str(e)
            for t in live.pumps:
                t.cancel()
            await asyncio.gather(*live.pumps, return_exceptions=True)
            rec.state, rec.exit_code, rec.reason, rec.message = "exited", START_ERROR_EXIT_CODE, "StartError", message
            rec.started_at = rec.finished_at = time.time()
            self._save(rec)
            raise RuntimeError_(message) from e
        finally:
            os.close(out_fd)
            os.close(err_fd)
            if in_fd is not None:
                os.close(in_fd)
            if live.proc is None:
                _close_stdin(live)
        self._started(rec, live)

    async def _start_on_terminal(self, rec: _Record, live: _Live) -> None:
        """``tty``: the process on a new pty, whose master we log (as ``stdout``) and copy the
        stdin FIFO into: read-only with ``stdin_once`` (its EOF, when the first attach session
        has gone, ends the copying: a terminal has no EOF to give), else read-write."""
        cfg = rec.config
        master, slave = os.openpty()
        try:
            if not cfg.args:
                raise RuntimeError_("no command specified")
            live.proc = _spawn_on_terminal(cfg.args, rec.workdir, {"TERM": "xterm", **rec.env}, slave)
        except (OSError, RuntimeError_) as e:
            os.close(master)
            message = _exec_error(cfg.args[0], e) if isinstance(e, OSError) else str(e)
            rec.state, rec.exit_code, rec.reason, rec.message = "exited", START_ERROR_EXIT_CODE, "StartError", message
            rec.started_at = rec.finished_at = time.time()
            self._save(rec)
            raise RuntimeError_(message) from e
        finally:
            os.close(slave)  # the process' now: the master reads EIO once it (and its children) closed it
        live.master = master
        reader, transport = await read_stream(master)

        async def log_output() -> None:
            try:
                await crilog.pump(reader, cfg.log_path, "stdout")
            finally:
                transport.close()

        live.pumps = [asyncio.create_task(log_output(), name=f"log tty {rec.id[:12]}")]
        if cfg.stdin:
            mode = os.O_RDONLY if cfg.stdin_once else os.O_RDWR
            fifo = os.open(self._dir(rec.id) / "stdin", mode | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                source, source_transport = await read_stream(fifo)
            finally:
                os.close(fifo)
            live.relay = asyncio.create_task(_relay(source, source_transport, FdWriter(os.dup(master))),
                                             name=f"stdin tty {rec.id[:12]}")
        self._started(rec, live)

    def _started(self, rec: _Record, live: _Live) -> None:
        assert live.proc is not None
        container_id = rec.id
        rec.state, rec.started_at = "running", time.time()
        rec.pid, rec.proc_start, rec.boot_id = live.proc.pid, _proc_start(live.proc.pid), _BOOT_ID
        self._save(rec)  # before the reaper can record the exit
        self._live[container_id] = live
        live.waiter = asyncio.create_task(self._reap(container_id, live), name=f"reap {container_id[:12]}")

    async def _pump(self, fifo: Path, log_path: Path, stream: str) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = _open_reader(fifo)  # the transport closes it
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)

        async def run() -> None:
            try:
                await crilog.pump(reader, log_path, stream)
            finally:
                transport.close()

        return asyncio.create_task(run(), name=f"log {stream} {fifo.parent.name[:12]}")

    async def _reap(self, container_id: str, live: _Live) -> None:
        """Wait for our child to exit, then record how it ended."""
        assert live.proc is not None
        try:
            returncode = await live.proc.wait()
            finished = time.time()
            # The rest of the container dies with its main process, as in a pid namespace.
            _killpg(live.proc.pid, signal.SIGKILL)
            _close_stdin(live)
            if live.relay is not None:
                live.relay.cancel()
            await _drain(live.pumps)  # the log is complete before the status says exited
            if live.master is not None:
                os.close(live.master)
                live.master = None
            rec = self._load(container_id)
            if rec is not None:
                code = _exit_code(returncode)
                rec.state, rec.exit_code, rec.finished_at = "exited", code, finished
                rec.reason, rec.message = ("Completed" if code == 0 else "Error"), ""
                self._save(rec)
        finally:
            self._live.pop(container_id, None)
            live.exited.set()

    def _adopt(self, rec: _Record) -> _Record:
        """A running container this instance did not start (the kubelet restarted): watch it
        by pid and re-attach its logs; or record that it exited unobserved."""
        if rec.state != "running" or rec.id in self._live or rec.pid is None:
            return rec
        if not _pid_alive(rec.pid, rec.proc_start, rec.boot_id):
            return self._record_lost(rec.id, time.time()) or rec
        live = _Live(proc=None)
        self._live[rec.id] = live
        live.waiter = asyncio.create_task(self._watch_adopted(rec, live), name=f"watch {rec.id[:12]}")
        return rec

    async def _watch_adopted(self, rec: _Record, live: _Live) -> None:
        assert rec.pid is not None
        try:
            d = self._dir(rec.id)
            live.pumps = [await self._pump(d / "stdout", rec.config.log_path, "stdout")]
            if not rec.config.tty:
                live.pumps.append(await self._pump(d / "stderr", rec.config.log_path, "stderr"))
            while _pid_alive(rec.pid, rec.proc_start, rec.boot_id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.wake.wait(), _STOPPING_POLL if live.stopping else _ADOPTED_POLL)
                live.wake.clear()
            finished = time.time()
            _killpg(rec.pid, signal.SIGKILL)
            await _drain(live.pumps)
            self._record_lost(rec.id, finished)
        finally:
            self._live.pop(rec.id, None)
            live.exited.set()

    def _record_lost(self, container_id: str, finished: float) -> _Record | None:
        """The process is gone and nobody saw its exit status (it was not our child)."""
        rec = self._load(container_id)
        if rec is None or rec.state != "running":  # its parent (an older instance) recorded it
            return rec
        rec.state, rec.finished_at = "exited", finished
        if rec.signal_sent is not None:
            rec.exit_code, rec.reason = 128 + rec.signal_sent, "Error"
            rec.message = (f"exit status not observed (the process was started before the kubelet restarted); "
                           f"inferred from the signal sent ({signal.Signals(rec.signal_sent).name})")
        else:
            rec.exit_code, rec.reason = UNKNOWN_EXIT_CODE, "Unknown"
            rec.message = "the process exited while the kubelet was not watching it; its exit status is lost"
        self._save(rec)
        return rec

    def _signal(self, rec: _Record, sig: int) -> None:
        live = self._live.get(rec.id)
        if rec.pid is None or live is None:
            return
        if live.proc is None:  # adopted: make sure the pid is still that process
            if not _pid_alive(rec.pid, rec.proc_start, rec.boot_id):
                live.wake.set()
                return
            rec.signal_sent = sig
            self._save(rec)
            live.stopping = True
            live.wake.set()
        _killpg(rec.pid, sig)  # the group: pgid == pid (start_new_session)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        rec = self._load(container_id)
        if rec is None:
            return  # CRI: stopping a removed container is not an error
        rec = self._adopt(rec)
        live = self._live.get(container_id)
        if rec.state != "running" or live is None:
            return
        if timeout > 0:
            self._signal(rec, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.exited.wait(), timeout)
                return
        self._signal(self._load(container_id) or rec, signal.SIGKILL)
        await live.exited.wait()

    async def remove_container(self, container_id: str) -> None:
        rec = self._load(container_id)
        if rec is None:
            return  # already removed
        await self.stop_container(container_id, 0)
        live = self._live.pop(container_id, None)
        if live is not None and live.waiter is not None:
            live.waiter.cancel()
        shutil.rmtree(self._dir(container_id), ignore_errors=True)
        if rec.own_workdir:
            shutil.rmtree(rec.workdir, ignore_errors=True)
        # The log file is the kubelet's to remove (as with CRI runtimes).

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._adopt(self._must_load(container_id)).status()

    async def list_containers(self) -> list[ContainerStatus]:
        out = []
        for cid in self._all_ids():
            try:
                rec = self._load(cid)
            except RuntimeError_ as e:
                log.warning("process runtime: skipping container %s: %s", cid, e)
                continue
            if rec is not None:
                out.append(self._adopt(rec).status())
        return out

    def _running(self, container_id: str, cmd: list[str]) -> _Record:
        """The record of a running container to exec ``cmd`` in (errors as the runtime reports them)."""
        rec = self._adopt(self._must_load(container_id))
        if rec.state != "running":
            raise RuntimeError_(f"container {container_id} is not running")
        if not cmd:
            raise RuntimeError_("no command specified")
        return rec

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> ExecResult:
        """Run ``cmd`` beside the container's process (same env and working dir).
        ``timeout <= 0`` waits forever (CRI's ExecSync)."""
        rec = self._running(container_id, cmd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=rec.workdir, env=rec.env, start_new_session=True, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise RuntimeError_(_exec_error(cmd[0], e)) from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout if timeout > 0 else None)
        except (TimeoutError, asyncio.CancelledError) as e:
            _killpg(proc.pid, signal.SIGKILL)  # with whatever it started
            await proc.wait()
            if isinstance(e, TimeoutError):
                raise TimeoutError(f"command {cmd!r} timed out after {timeout}s") from None
            raise
        assert proc.returncode is not None
        return ExecResult(exit_code=_exit_code(proc.returncode), stdout=out, stderr=err)

    async def exec_process(self, container_id: str, cmd: list[str], *, tty: bool = False,
                           stdin: bool = False) -> ExecProcess:
        """``kubectl exec``: ``cmd`` beside the container's process, in a session of its own,
        with pipes -- or with ``tty`` on a new pty that is its controlling terminal (``TERM``
        set as containerd does).  ``kill`` kills its process group."""
        rec = self._running(container_id, cmd)
        if not tty:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *cmd, cwd=rec.workdir, env=rec.env, start_new_session=True,
                    stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            except OSError as e:
                raise RuntimeError_(_exec_error(cmd[0], e)) from e
            handle = ExecProcess.from_process(proc)
            handle.kill = lambda: _kill_group(proc)
            return handle
        master, slave = os.openpty()
        try:
            proc = _spawn_on_terminal(cmd, rec.workdir, {**rec.env, "TERM": "xterm"}, slave)
        except OSError as e:
            os.close(master)
            raise RuntimeError_(_exec_error(cmd[0], e)) from e
        finally:
            os.close(slave)  # the command's now: its end of file is when it (and its children) close it

        async def wait() -> int:
            return _exit_code(await proc.wait())

        return await terminal_process(master, wait, stdin=stdin, kill=lambda: _kill_group(proc))

    def stdin_path(self, container_id: str) -> Path | None:
        """The FIFO that is the container's stdin, for ``kubectl attach`` to write into; None
        when it has none (``stdin`` unset in its spec) or it was closed (``stdinOnce``)."""
        path = self._dir(container_id) / "stdin"
        return path if path.exists() else None

    async def close_stdin(self, container_id: str) -> None:
        """``stdinOnce``: the first attach session ended.  The container reads EOF (once the
        session's own write end is closed too); later attach sessions get no stdin."""
        (self._dir(container_id) / "stdin").unlink(missing_ok=True)
        live = self._live.get(container_id)
        if live is not None:
            _close_stdin(live)

    def resize_container(self, container_id: str, width: int, height: int) -> None:
        """Set the size of a ``tty`` container's terminal (``kubectl attach -t`` resizes)."""
        live = self._live.get(container_id)
        if live is None or live.master is None:
            raise RuntimeError_(f"container {container_id} has no terminal here")
        set_winsize(live.master, width, height)

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI's ReopenContainerLog (log rotation): the log pumps write a new file at the path."""
        rec = self._must_load(container_id)
        if container_id not in self._live or not crilog.reopen(rec.config.log_path):
            raise RuntimeError_(f"container {container_id} is not running: no log to reopen")

    async def close(self) -> None:
        """Stop watching (the kubelet shuts down); the containers keep running and a new
        instance over the same ``state_dir`` picks them up."""
        lives = list(self._live.values())
        self._live.clear()
        tasks = [t for live in lives for t in (live.waiter, live.relay, *live.pumps) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for live in lives:  # (a terminal's master: the process sees its terminal hang up)
            if live.master is not None:
                os.close(live.master)
                live.master = None


def _close_stdin(live: _Live) -> None:
    if live.stdin_writer is not None:
        os.close(live.stdin_writer)
        live.stdin_writer = None


async def _relay(source: asyncio.StreamReader, transport: asyncio.ReadTransport, dest: FdWriter) -> None:
    """Copy a stdin FIFO into a terminal's master until the FIFO's EOF."""
    try:
        while chunk := await source.read(64 * 1024):
            dest.write(chunk)
            await dest.drain()
    except ConnectionError:  # the terminal is gone
        pass
    finally:
        transport.close()
        dest.close()


def _kill_group(proc: asyncio.subprocess.Process | _TerminalChild) -> None:
    """SIGKILL an exec'd command and what it started (its own process group)."""
    if proc.returncode is None:
        _killpg(proc.pid, signal.SIGKILL)


async def _drain(pumps: list[asyncio.Task[None]]) -> None:
    """Let the log pumps reach EOF; give up after DRAIN_TIMEOUT (a process that left the
    container's group can hold the pipe open forever)."""
    if not pumps:
        return
    _, pending = await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


__all__ = ["START_ERROR_EXIT_CODE", "UNKNOWN_EXIT_CODE", "ProcessRuntime"]
