"""Where the proxy's effects land: the current network namespace, or a named one.

The proxy normally programs the namespace it runs in (the agent is started
inside the node's namespace).  Tests and benchmarks keep the proxy in their own
process on the host's network and point it at a namespace they created instead:
commands then run through ``nsenter --net``, and the userspace mode makes its
sockets inside the namespace (a socket belongs to the namespace it was created
in, whichever thread uses it later), from one worker thread that entered the
namespace with setns(2) -- network namespaces are per thread, so the rest of
the process stays where it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import socket
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000


def netns_path(netns: str) -> str:
    """``/run/netns/NAME`` for a name made by ``ip netns add``; a path stays a path."""
    return netns if "/" in netns else f"/run/netns/{netns}"


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner:
    """Runs the netfilter and iproute2 tools, in ``netns`` if given."""

    def __init__(self, netns: str | None = None):
        self.netns = netns
        self._prefix = ["nsenter", f"--net={netns_path(netns)}", "--"] if netns else []

    def argv(self, *argv: str) -> list[str]:
        return [*self._prefix, *argv]

    async def run(self, *argv: str, input: str | None = None, timeout: float = 60.0) -> CommandResult:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*argv), stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(input.encode() if input is not None else None)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        return CommandResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def _enter(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class SocketFactory:
    """Makes sockets in the current namespace, or in ``netns`` (see the module doc)."""

    def __init__(self, netns: str | None = None):
        self.netns = netns
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if netns:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="netns", initializer=_enter, initargs=(netns_path(netns),))

    async def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        if self._pool is None:
            sock = socket.socket(family, type)
        else:
            sock = await asyncio.get_running_loop().run_in_executor(self._pool, socket.socket, family, type)
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


__all__ = ["CommandResult", "CommandRunner", "SocketFactory", "netns_path"]
