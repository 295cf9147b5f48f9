"""Process helpers shared by the image store, the container runtimes and the kubelet.

The kubelet starts hundreds of short processes (runc, shims, unshare).  asyncio's subprocess
API under uvloop forks, which for a ~50 MB agent takes >10 ms of the event loop per process;
subprocess.Popen uses vfork() (~1 ms).  So: Popen, pipes read through the event loop, and the
exit awaited on a pidfd (no thread per child, which asyncio's child watcher would use).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts; EPERM means it exists, not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def wait_pid(pid: int, reap: Callable[[], int | None] | None = None) -> int | None:
    """Wait until process ``pid`` has exited (any process, not only a child: a pidfd).
    ``reap`` (e.g. Popen.poll) is called each time the pidfd fires and its result returned
    once not None; without it, returns None when the process is gone."""
    check = reap or (lambda: None)
    result = check()
    if result is not None:
        return result
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return check()  # gone already (reaped, or never ours)
    except (AttributeError, OSError):  # no pidfds (Linux < 5.3): poll
        while pid_exists(pid) and (result := check()) is None:  # noqa: ASYNC110 (nothing to await)
            await asyncio.sleep(0.05)
        return result if result is not None else check()
    loop = asyncio.get_running_loop()
    try:
        while True:
            fired = loop.create_future()
            loop.add_reader(fd, lambda f=fired: f.done() or f.set_result(None))
            try:
                await fired
            finally:
                loop.remove_reader(fd)
            result = check()
            if result is not None or reap is None:
                return result
    finally:
        os.close(fd)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` (non-blocking) has data or EOF, through the event loop's readers
    (uvloop's pipe transports close descriptors they do not own, so none are used here)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def read_all(fd: int) -> bytes:
    """Everything from the non-blocking ``fd`` until EOF."""
    buf = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            await _readable(fd)
            continue
        if not chunk:
            return bytes(buf)
        buf += chunk


class LineReader:
    """Lines from a non-blocking descriptor (which it does not close)."""

    def __init__(self, fd: int):
        self.fd, self.buf = fd, b""

    async def readline(self) -> bytes:
        """The next line with its newline; at EOF what is left (b"" at the end)."""
        while b"\n" not in self.buf:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                await _readable(self.fd)
                continue
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


class Process:
    """A child process: started with :class:`subprocess.Popen` (vfork), awaited on a pidfd.
    ``capture``: the standard streams (1 stdout, 2 stderr) to read through pipes (our
    non-blocking read ends in ``pipes``)."""

    def __init__(self, argv: list[str], *, capture: tuple[int, ...] = (), stderr: int | None = None,
                 stdin: int | None = None, new_session: bool = False):
        self.pipes: dict[int, int] = {}  # stream -> our (non-blocking) read end
        ends: dict[int, int] = {}
        try:
            for stream in capture:
                self.pipes[stream], ends[stream] = os.pipe()
                os.set_blocking(self.pipes[stream], False)
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
                                          stdout=ends.get(1), stderr=ends.get(2, stderr),
                                          start_new_session=new_session)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in ends.values():
                os.close(fd)
        self.pid = self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def alive(self) -> bool:
        return self.popen.poll() is None  # (reaps it once it has exited: no zombie)

    async def wait(self) -> int | None:
        return await wait_pid(self.pid, self.popen.poll)

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()

    async def read(self, stream: int) -> bytes:
        """What the child writes to ``stream`` until EOF, without blocking the event loop."""
        return await read_all(self.pipes[stream])

    def close(self, *streams: int) -> None:
        """Close our ends of the pipes (all by default)."""
        for stream in streams or list(self.pipes):
            fd = self.pipes.pop(stream, None)
            if fd is not None:
                os.close(fd)


class ForeignProcess:
    """A process that is not our child (a shim the shim server forked): watched on a pidfd."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None  # not ours to learn

    def alive(self) -> bool:
        return pid_exists(self.pid)

    async def wait(self) -> None:
        await wait_pid(self.pid)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


async def run_process(argv: list[str], timeout: float, *, kill_on_cancel: bool = True) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to its end: (exit code, stdout, stderr).  Killed on timeout, and on
    cancellation unless ``kill_on_cancel`` is false (e.g. an ``umount`` should finish even
    when the kubelet shuts down meanwhile)."""
    proc = Process(argv, capture=(1, 2))
    try:
        async with asyncio.timeout(timeout):
            out, err = await asyncio.gather(proc.read(1), proc.read(2))
            rc = await proc.wait()
            assert rc is not None
    except BaseException as e:
        if kill_on_cancel or not isinstance(e, asyncio.CancelledError):
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    finally:
        proc.close()
    return rc, out, err
