"""The per-container shim: the small process that owns one runc container's life.

:meth:`pinnace.kubelet.runtime.runc.Runc.create` has it forked by the shim server
(:func:`serve`, one long-lived ``python3 -I -S shim.py --serve`` per kubelet: a fork is
~1 ms), or starts it by path and without the site machinery as ``python3 -I -S shim.py
key=value ...``.  So that this starts in a few tens of milliseconds, the module imports
nothing but builtin modules (no asyncio, no pinnace, not even ``signal``, ``json`` or
``subprocess``, whose imports cost more than the rest of its start-up).  The shim:

1. makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so the container's
   init -- forked by ``runc create``, which exits -- is re-parented to it;
2. spawns ``runc create`` with the container's stdio: the log files themselves
   (``log_format=raw``, runc's pass-through mode: the container writes the files) or
   pipes that the shim copies into the log in the CRI format (``log_format=cri``);
   ``stdin``: a FIFO the runtime made, opened read-write so that the container never
   reads EOF just because no writer is attached -- else ``/dev/null``.  With
   ``stdin_once`` the shim holds the FIFO itself and copies it into a pipe that is the
   container's stdin (see *stdin relay* below);
   with ``tty=1`` (``process.terminal`` in the bundle) ``runc create`` gets a console
   socket in the shim dir, runc sends the new terminal's master over it (``SCM_RIGHTS``)
   and the container's stdio is the terminal: the shim copies the master's output into
   the log, all as ``stdout`` (as containerd logs a tty container), and the FIFO (if
   any) into the master;
3. reports ``{"pid": N}`` (or ``{"error": ...}``) as one line on stdout, then
   detaches from the pipe;
4. copies the output (CRI mode), reopening the log on ``SIGUSR1`` (the kubelet renamed
   it away: log rotation), until init has exited and the pipes are drained (at most
   ``DRAIN_TIMEOUT`` after the exit: a process outside the container's pid namespace
   may hold them);
5. writes ``exit.json`` (exit code, signal, whether the cgroup's ``oom_kill`` counter
   moved, finish time) atomically and exits.

*stdin relay* (``stdin_once``, or a terminal with ``stdin``): the shim reads the FIFO --
read-only for ``stdin_once`` (opening it needs no writer; it reads EOF once the first
writer that came has gone: the first attach session ended), else read-write (never EOF:
stdin stays open across attach sessions) -- and writes what comes into the container's
stdin (the pipe, or the terminal's master).  At the FIFO's EOF, or on ``close-stdin``, it
closes the pipe: the container reads EOF (``stdinOnce``); a terminal stays open (it has no
EOF to give, as with containerd), only the copying ends.

*control* (``<dir>/control``, a FIFO the shim makes and holds read-write when it relays
stdin or runs a terminal): one line per request, written in one ``write`` (atomic below
PIPE_BUF): ``resize W H`` sets the terminal's size (``TIOCSWINSZ``: the container's
foreground process group gets SIGWINCH), ``close-stdin`` ends the stdin relay (after
copying what the FIFO still holds).  No reader (ENXIO): the shim is gone.

It outlives the kubelet, so output keeps flowing into the logs and the exit status
is recorded while no kubelet runs.  The CRI log writer lives here (stdlib only) and
:mod:`pinnace.kubelet.crilog` re-exports it for the kubelet's own use.
"""

from __future__ import annotations

import _signal
import os
import select
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
UNKNOWN_EXIT_CODE = 255  # what containerd reports when the status was lost
DRAIN_TIMEOUT = 2.0  # after init exited, how long a stray holder of the log pipes may keep them
REOPEN_SIGNAL = _signal.SIGUSR1  # "the log file was rotated: reopen it"
CONTROL = "control"  # the control FIFO, in the shim dir
CONSOLE_SOCKET = "console.sock"  # where runc sends a terminal's master, in the shim dir
RELAY_LIMIT = 1 << 20  # stdin held for a container that does not read, before reading less
_RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD)
# Longer lines are split into partial entries (containerd's default max container log line).
MAX_LINE = 16 * 1024
_READ = 64 * 1024

# ---- the CRI log format ---------------------------------------------------------------------------


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, as containerd stamps CRI log entries."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def encode(stream: str, data: bytes, ns: int | None = None) -> bytes:
    """CRI entries for ``data``: one per line ending in ``\\n`` (tag F), the rest as partial (P)."""
    out = []
    stamp = timestamp(ns).encode()
    tag = stream.encode()
    # Only "\n" ends a line (as in containerd); bytes.splitlines() would also split at "\r",
    # turning every progress-bar update into a partial entry.
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        line = data[start:end]
        start = end
        while len(line) > MAX_LINE + (1 if line.endswith(b"\n") else 0):
            out.append(b"%s %s P %s\n" % (stamp, tag, line[:MAX_LINE]))
            line = line[MAX_LINE:]
        if line.endswith(b"\n"):
            out.append(b"%s %s F %s" % (stamp, tag, line))
        else:
            out.append(b"%s %s P %s\n" % (stamp, tag, line))
    return b"".join(out)


class LogWriter:
    """Appends to one CRI log file (O_APPEND: each write is whole entries, so the writers of
    stdout and stderr never interleave inside an entry); :meth:`reopen` after a rotation."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.fd, data):]

    def reopen(self) -> None:
        """Write to a (new) file at the path from now on: the old one was renamed away."""
        fd = self._open()
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class CriStream:
    """One output stream (stdout or stderr) copied into a CRI log.  An unfinished line is
    held back until its end comes (a line written in two pieces stays one entry), but never
    beyond MAX_LINE (then it goes out as partial entries)."""

    def __init__(self, writer: LogWriter, stream: str):
        self.writer, self.stream = writer, stream
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        complete, self.pending = data[:cut], data[cut:]
        if len(self.pending) >= MAX_LINE:
            complete, self.pending = data, b""
        if complete:
            self.writer.write(encode(self.stream, complete))

    def flush(self) -> None:
        """The held-back unfinished line, as a partial entry (the stream ended)."""
        if self.pending:
            data, self.pending = self.pending, b""
            self.writer.write(encode(self.stream, data))


# ---- cgroups: the OOM kill counter -------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def oom_counter_file(pid: int) -> str | None:
    """The file counting the OOM kills in ``pid``'s memory cgroup (read while it lives)."""
    v2 = None
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1 (kernel >= 4.13 has oom_kill in memory.oom_control)
            return "/sys/fs/cgroup/memory/" + path.lstrip("/") + "/memory.oom_control"
        if controllers == "":
            v2 = path
    if v2 is not None and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "/sys/fs/cgroup/" + v2.lstrip("/") + "/memory.events"
    return None


def oom_kills(path: str | None) -> int:
    if path is None:
        return 0
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


# ---- the shim ------------------------------------------------------------------------------------------


def _json_str(s: str) -> str:
    """A JSON string literal (json.dumps without importing json, which imports re)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _report(message: str) -> None:
    """One line (JSON) to the caller, then stdout goes to /dev/null so the pipe closes."""
    os.write(1, (message + "\n").encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _error(message: str, stderr: str = "") -> int:
    _report(f'{{"error": {_json_str(message)}, "stderr": {_json_str(stderr)}}}')
    return 1


def runc_message(stderr: str) -> str:
    """runc's last error line, from its logrus text (``msg="..."``) or JSON log output."""
    import json
    import re

    for line in reversed(stderr.strip().splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", line))
            continue
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        if m and ("level=error" in line or "level=fatal" in line):
            return m.group(1).replace('\\"', '"')
        if line.strip():
            return line.strip()
    return stderr.strip()


class Shim:
    def __init__(self, params: dict[str, str]):
        self.p = params
        self.dir = params["dir"]
        self.init = 0
        self.status: int | None = None  # init's wait status, once reaped
        self.reaped = False
        self.reopen = False
        self.streams: dict[int, CriStream] = {}
        self.tty = params.get("tty") == "1"
        self.once = params.get("stdin_once") == "1"
        # The stdin relay: the FIFO we read (src), where it goes (dst), what waits to go there.
        self.relay = bool(params.get("stdin")) and (self.tty or self.once)
        self.src = -1
        self.dst = -1
        self.pending = bytearray()
        self.closing = False  # close dst once pending is written (stdinOnce's EOF)
        self.master = -1  # the terminal's master (resize), with tty
        self.control = -1
        self.control_buf = b""

    # signals: the C-level handler writes to the wakeup pipe, so select() wakes at once
    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == REOPEN_SIGNAL:
            self.reopen = True

    def run(self) -> int:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return _error(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
        # From now on SIGUSR1 must never kill us (a rotation may ask for a reopen at any time).
        _signal.signal(REOPEN_SIGNAL, self._on_signal)
        os.chdir("/")  # hold no directory of whoever started us
        p = self.p
        for path in (p["stdout"], p["stderr"]):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        cri = p.get("log_format") == "cri" or self.tty
        pipes: list[tuple[int, str, str]] = []
        try:
            stdin = self._open_stdin()
        except OSError as e:
            return _error(f"stdin {p.get('stdin')}: {e.strerror}")
        if self.relay or self.tty:
            control = os.path.join(self.dir, CONTROL)
            os.mkfifo(control, 0o600)
            self.control = os.open(control, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        listener = None
        if self.tty:
            # The container's stdio is the terminal runc makes; runc's own is /dev/null.
            listener = self._console_socket()
            stdio = [stdin, os.open(os.devnull, os.O_WRONLY), os.open(os.devnull, os.O_WRONLY)]
        elif cri:
            # The container writes pipes we copy into the log; our read ends are close-on-exec,
            # so only the container holds the write ends once runc create has exited.
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdio = [stdin, out_w, err_w]
            pipes = [(out_r, p["stdout"], "stdout"), (err_r, p["stderr"], "stderr")]
        else:  # pass-through: the container writes the files itself
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            stdio = [stdin, os.open(p["stdout"], flags, 0o640), os.open(p["stderr"], flags, 0o640)]
        pid_file, log_file = os.path.join(self.dir, "init.pid"), os.path.join(self.dir, "runc.log")
        argv = [p["runc"], "--root", p["root"], "--log", log_file, "--log-format", "json",
                "create", "--bundle", p["bundle"], "--pid-file", pid_file, p["id"]]
        if listener is not None:
            # Through our cwd (the shim dir, see _console_socket; runc itself moves to the
            # bundle): a unix socket's path is limited to 107 bytes, which a data dir may exceed.
            argv[-1:-1] = ["--console-socket", f"/proc/{os.getpid()}/cwd/{CONSOLE_SOCKET}"]
        try:
            # Default dispositions for what Python (SIGPIPE) or the shim server (SIGCHLD) ignore:
            # ignored signals stay ignored across exec, down to the container's processes.
            pid = os.posix_spawnp(p["runc"], argv, os.environ, setsigdef=_RESET_SIGNALS,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)])
            _, st = os.waitpid(pid, 0)
            rc = os.waitstatus_to_exitcode(st)
        except OSError as e:
            rc, spawn_error = -1, f"{p['runc']}: {e.strerror}"
        else:
            spawn_error = ""
        finally:
            os.chdir("/")
            for fd in stdio:
                os.close(fd)
        if rc != 0:
            log = _read(log_file)
            return _error(spawn_error or runc_message(log) or f"exited {rc}", log)
        self.init = int(_read(pid_file))
        if listener is not None:
            try:
                master = self._receive_master(listener)
            except OSError as e:
                os.kill(self.init, _signal.SIGKILL)  # a terminal nobody can reach: undo the container
                return _error(f"receiving the terminal from runc: {e}")
            finally:
                listener.close()
                os.unlink(os.path.join(self.dir, CONSOLE_SOCKET))
            self.master = master
            pipes = [(os.dup(master), p["stdout"], "stdout")]  # a terminal is one stream: stdout
            if self.relay:
                self.dst = os.dup(master)
        oom_file = oom_counter_file(self.init)  # init is parked in runc's exec fifo, already in its cgroup
        oom_before = oom_kills(oom_file)
        _report(f'{{"pid": {self.init}}}')
        for fd, path, stream in pipes:
            self.streams[fd] = CriStream(LogWriter(path), stream)
        writers = [s.writer for s in self.streams.values()]
        self._loop(writers)
        for w in writers:
            w.close()
        self._record(oom_kills(oom_file) > oom_before)
        return 0

    def _open_stdin(self) -> int:
        """The container's stdin: the FIFO read-write (it never reads EOF: it is a writer
        itself), or with the relay a pipe we write (``stdin_once``; a terminal: /dev/null,
        runc gives the container the terminal), else /dev/null."""
        path = self.p.get("stdin")
        if not path:
            return os.open(os.devnull, os.O_RDONLY)
        if not self.relay:
            return os.open(path, os.O_RDWR)
        # stdin_once: read-only, so the EOF of the first writer's close shows (a FIFO's read end
        # opened without O_NONBLOCK would wait for a writer); otherwise never EOF.
        mode = os.O_RDONLY if self.once else os.O_RDWR
        self.src = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)
        if self.tty:
            return os.open(os.devnull, os.O_RDONLY)
        r, w = os.pipe()
        os.set_blocking(w, False)
        self.dst = w
        return r

    def _console_socket(self):  # -> socket.socket
        import socket

        os.chdir(self.dir)  # (back to / once runc create is done)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(CONSOLE_SOCKET)
        listener.listen(1)
        return listener

    def _receive_master(self, listener) -> int:  # listener: socket.socket
        """The terminal's master, which runc sent before ``runc create`` returned (a unix
        socket's connection and data wait in the listener's queue until accepted)."""
        import socket

        listener.setblocking(False)
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            raise OSError("runc did not connect to the console socket") from None
        with conn:
            conn.settimeout(5)
            _, fds, _, _ = socket.recv_fds(conn, 4096, 4, socket.MSG_CMSG_CLOEXEC)
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            raise OSError("no file descriptor came over the console socket")
        os.set_blocking(fds[0], False)
        return fds[0]

    def _reap(self) -> None:
        """Reap init and any orphan re-parented to us; note init's status."""
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if not self.reaped:  # init was somehow not our child: its status is lost
                    self.reaped = True
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.init:
                self.status, self.reaped = st, True

    # ---- the stdin relay and control requests ----

    def _read_src(self) -> None:
        """Take what the FIFO has (at most RELAY_LIMIT waiting); its EOF ends stdin (stdinOnce)."""
        while self.src >= 0 and len(self.pending) < RELAY_LIMIT:
            try:
                data = os.read(self.src, _READ)
            except BlockingIOError:
                return
            if not data:  # the first writer has gone (only a read-only FIFO ends)
                self._end_stdin()
                return
            self.pending += data

    def _write_dst(self) -> None:
        while self.pending and self.dst >= 0:
            try:
                n = os.write(self.dst, self.pending)
            except BlockingIOError:
                return
            except OSError:  # EPIPE: the container closed its stdin; EIO: the terminal is gone
                self.pending.clear()
                self.closing = True
                break
            del self.pending[:n]
        if self.closing and not self.pending and self.dst >= 0:
            os.close(self.dst)  # the container reads EOF (a terminal: only our copying ends)
            self.dst = -1

    def _end_stdin(self) -> None:
        """No more input: what the FIFO still holds is copied, then the container's stdin closes."""
        if self.src >= 0:
            src, self.src = self.src, -1
            try:
                while data := os.read(src, _READ):
                    self.pending += data
            except BlockingIOError:
                pass
            os.close(src)
        self.closing = True
        self._write_dst()

    def _read_control(self) -> None:
        try:
            self.control_buf += os.read(self.control, 4096)
        except BlockingIOError:
            return
        *lines, self.control_buf = self.control_buf.split(b"\n")
        for line in lines:
            words = line.split()
            if words[:1] == [b"resize"] and len(words) == 3 and self.master >= 0:
                try:
                    self._resize(int(words[1]), int(words[2]))
                except (ValueError, OSError):
                    pass
            elif words == [b"close-stdin"]:
                self._end_stdin()

    def _resize(self, width: int, height: int) -> None:
        import fcntl
        import struct
        import termios

        width, height = max(0, min(width, 0xFFFF)), max(0, min(height, 0xFFFF))
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def _loop(self, writers: list[LogWriter]) -> None:
        """Copy output (and stdin) while init lives; then drain the output for at most
        DRAIN_TIMEOUT."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, self._on_signal)
        self._reap()  # init may have gone before the handler was there
        deadline: float | None = None
        while True:
            if self.reopen:  # (checked first: the signal may have come before the wakeup fd was set)
                self.reopen = False
                for w in writers:
                    w.reopen()
            if self.reaped and deadline is None:
                deadline = time.monotonic() + DRAIN_TIMEOUT
            if self.reaped and not self.streams:
                break
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                for s in self.streams.values():
                    s.flush()
                break
            rlist = [wake_r, *self.streams]
            if self.control >= 0:
                rlist.append(self.control)
            if self.src >= 0 and len(self.pending) < RELAY_LIMIT:
                rlist.append(self.src)
            wlist = [self.dst] if self.pending and self.dst >= 0 else []
            ready, writable, _ = select.select(rlist, wlist, [], timeout)
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                self._reap()
            for fd in ready:
                if fd == wake_r:
                    continue
                if fd == self.control:
                    self._read_control()
                    continue
                if fd == self.src:
                    self._read_src()
                    continue
                if fd not in self.streams:
                    continue
                try:
                    data = os.read(fd, _READ)
                except BlockingIOError:  # (a terminal's master is non-blocking)
                    continue
                except OSError:  # EIO: every holder of the terminal's slave side has closed it
                    data = b""
                if data:
                    self.streams[fd].feed(data)
                else:
                    self.streams.pop(fd).flush()
                    os.close(fd)
            if writable or (self.closing and self.dst >= 0):
                self._write_dst()
        for fd in (self.src, self.dst, self.master, self.control):
            if fd >= 0:
                os.close(fd)
        self.src = self.dst = self.master = self.control = -1

    def _record(self, oom_killed: bool) -> None:
        st = self.status
        signal = "null"
        if st is None:
            code = UNKNOWN_EXIT_CODE
        elif os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            code, signal = 128 + sig, str(sig)
        else:
            code = os.WEXITSTATUS(st)
        oom = "true" if oom_killed else "false"
        record = f'{{"exit_code": {code}, "signal": {signal}, "oom_killed": {oom}, "finished_at": {time.time()!r}}}'
        tmp = os.path.join(self.dir, "exit.json.tmp")
        with open(tmp, "w") as f:
            f.write(record)
        os.rename(tmp, os.path.join(self.dir, "exit.json"))  # atomic: readers never see half a record


def serve(control: int = 0) -> int:
    """The shim server: one long-lived process per kubelet that forks a shim per container,
    so that a container's start costs a fork (~1 ms) instead of an interpreter (~15 ms of
    CPU).  Each message on the ``control`` socket (SOCK_SEQPACKET) is a shim's parameters
    (``key=value``, NUL-separated) with two descriptors: where the shim reports (its stdout;
    its first line is ``{"shim": PID}``) and its log (stderr).  The shims are their own
    sessions; the kernel reaps them (SIGCHLD ignored: nothing here waits).  The server
    exits when the control socket closes: the kubelet is gone (the shims stay)."""
    import ctypes  # noqa: F401  (loaded once here rather than in every shim)
    import socket

    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the kubelet's ^C is the kubelet's
    os.chdir("/")
    ctl = socket.socket(fileno=control)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 2)
        except InterruptedError:
            continue
        if not msg:
            return 0
        if len(fds) == 2 and os.fork() == 0:
            rc = 1
            try:
                ctl.close()
                os.setsid()
                for sig in (_signal.SIGCHLD, _signal.SIGINT):
                    _signal.signal(sig, _signal.SIG_DFL)
                os.dup2(fds[0], 1)
                os.dup2(fds[1], 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                for fd in (*fds, devnull):
                    os.close(fd)
                os.write(1, f'{{"shim": {os.getpid()}}}\n'.encode())
                rc = Shim(dict(a.partition("=")[::2] for a in msg.decode().split("\0"))).run()
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(rc)
        for fd in fds:
            os.close(fd)


def main(argv: list[str]) -> int:
    """``argv``: the parameters as key=value (runc, root, id, bundle, stdout, stderr, dir,
    log_format, and optionally stdin, stdin_once=1 and tty=1); or ``--serve``: the shim server."""
    if argv == ["--serve"]:
        return serve()
    params = dict(a.partition("=")[::2] for a in argv)
    return Shim(params).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
