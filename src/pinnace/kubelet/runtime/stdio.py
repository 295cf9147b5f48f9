"""The streams of ``kubectl exec`` and ``kubectl attach`` as the kubelet's server drives
them: :class:`ExecProcess` (what a runtime's ``exec_process`` returns), pseudo-terminals
and FIFOs from asyncio.

With a terminal (``tty``) the command's stdin, stdout and stderr are all the slave side
of one pty; the kubelet holds the master: what it reads from the master is the output
(channel 1; there is no separate stderr), what it writes is typed input, and the
window size is set on it (``TIOCSWINSZ``; the kernel sends the foreground process
group SIGWINCH).  Reading the master fails with ``EIO`` once every holder of the slave
has closed it: that is the terminal's end of file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class Writer(Protocol):
    """What the server writes a command's stdin with (asyncio.StreamWriter is one)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...

    async def wait_closed(self) -> None: ...


@dataclass
class ExecProcess:
    """A command started in a container for ``kubectl exec``: its streams (None for those
    not asked for; with ``tty`` the output is all on ``stdout`` and ``stderr`` is None), its
    exit code, terminal resize, kill (the command itself, not a helper around it) and
    ``close`` (release what is left, e.g. the pty master, once the session is over)."""

    stdin: Writer | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    wait: Callable[[], Awaitable[int]]
    resize: Callable[[int, int], None] | None = None  # (width, height)
    kill: Callable[[], None] | None = None
    close: Callable[[], None] | None = None
    tty: bool = False

    @classmethod
    def from_process(cls, proc: asyncio.subprocess.Process) -> ExecProcess:
        """A process started with pipes (no terminal)."""

        def kill() -> None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        async def wait() -> int:
            code = await proc.wait()
            return code if code >= 0 else 128 - code  # killed by signal N: 128+N, as a shell says

        return cls(proc.stdin, proc.stdout, proc.stderr, wait, None, kill)


# -- terminals ------------------------------------------------------------------------------------------


def set_winsize(fd: int, width: int, height: int) -> None:
    """Set a terminal's size in columns and rows (on the master or the slave side)."""
    width, height = max(0, min(width, 0xFFFF)), max(0, min(height, 0xFFFF))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    """A terminal's (width, height)."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows


def set_controlling_terminal() -> None:
    """In a child after ``setsid()`` (``start_new_session``) whose stdin is a pty slave:
    make it the session's controlling terminal, so job control and ``^C`` work (a
    ``preexec_fn``; it only makes one system call)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _TerminalReader(asyncio.StreamReaderProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None  # every holder of the slave closed it: the terminal's end of file
        super().connection_lost(exc)


async def read_stream(fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """An asyncio reader of ``fd`` (a pty master, a FIFO or a pipe): its transport reads a
    duplicate, which it closes at the end of file or when closed; ``fd`` stays the
    caller's.  Reading pauses while the reader's buffer is full (a slow client slows the
    command down rather than filling memory)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: _TerminalReader(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    return reader, transport


class FdWriter:
    """Writes to a file descriptor (a pty master or a FIFO) from asyncio, with the
    ``write``/``drain``/``close`` of a StreamWriter.  The descriptor is made non-blocking;
    with ``owned`` it is closed by :meth:`close`."""

    def __init__(self, fd: int, *, owned: bool = True):
        os.set_blocking(fd, False)
        self.fd, self.owned = fd, owned
        self._buf = bytearray()
        self._closed = False
        self._waiting: asyncio.Future[None] | None = None  # drain() waiting for room

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("the stream is closed")
        self._buf += data

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._buf:
            if self._closed:
                raise ConnectionResetError("the stream is closed")
            try:
                n = os.write(self.fd, self._buf)
            except BlockingIOError:
                n = 0
            except OSError as e:  # EIO: the terminal is gone; EPIPE: the FIFO has no reader
                self._buf.clear()
                raise ConnectionResetError(str(e)) from e
            del self._buf[:n]
            if n == 0:  # full: wait for room (or for close())
                self._waiting = ready = loop.create_future()
                loop.add_writer(self.fd, _resolve, ready)
                try:
                    await ready
                finally:
                    self._waiting = None
                    if not self._closed:
                        loop.remove_writer(self.fd)
                if self._closed:
                    raise ConnectionResetError("the stream was closed before its data was written")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._buf.clear()
            if self._waiting is not None:  # wake drain(): it raises
                self._waiting.get_loop().remove_writer(self.fd)
                _resolve(self._waiting)
            if self.owned:
                with contextlib.suppress(OSError):
                    os.close(self.fd)

    def is_closing(self) -> bool:
        return self._closed

    async def wait_closed(self) -> None:
        return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def terminal_process(master: int, wait: Callable[[], Awaitable[int]], *, stdin: bool,
                           kill: Callable[[], None] | None, cleanup: Callable[[], None] | None = None
                           ) -> ExecProcess:
    """An :class:`ExecProcess` for a command whose terminal's master side is ``master``
    (taken over: its ``close`` closes it, then runs ``cleanup``)."""
    try:
        reader, transport = await read_stream(master)
    except BaseException:
        os.close(master)
        raise
    writer = FdWriter(os.dup(master)) if stdin else None
    closed = False

    def resize(width: int, height: int) -> None:
        if not closed:
            with contextlib.suppress(OSError):
                set_winsize(master, width, height)

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if writer is not None:
            writer.close()
        transport.close()  # the last holder of the master: the terminal hangs up (SIGHUP)
        with contextlib.suppress(OSError):
            os.close(master)
        if cleanup is not None:
            cleanup()

    return ExecProcess(writer, reader, None, wait, resize, kill, close, tty=True)


async def wait_readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, _resolve, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def receive_fd(listener: socket.socket) -> int:
    """The file descriptor the first client of a (non-blocking) unix socket sends with
    ``SCM_RIGHTS``, as runc sends a terminal's master to a console socket."""
    conn, _ = await asyncio.get_running_loop().sock_accept(listener)
    with conn:
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 4, socket.MSG_CMSG_CLOEXEC)
                break
            except BlockingIOError:
                await wait_readable(conn.fileno())
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        raise ConnectionError("no file descriptor came over the console socket")
    return fds[0]


# -- FIFOs ------------------------------------------------------------------------------------------------


def open_fifo_writer(path: str | os.PathLike[str]) -> FdWriter | None:
    """A writer into a container's stdin FIFO; None when nothing reads it any more (the
    container is gone) or it is not there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENOENT, or ENXIO: no reader
        return None
    return FdWriter(fd)


__all__ = ["ExecProcess", "FdWriter", "Writer", "get_winsize", "open_fifo_writer", "read_stream", "receive_fd",
           "set_controlling_terminal", "set_winsize", "terminal_process", "wait_readable"]
