"""A TCP forwarder from host loopback into a network namespace, for tests.

Binds ``--listen`` in the namespace it was started in (the host's), then moves the
whole (still single-threaded) process into ``--netns`` with setns(2): the listening
socket stays on the host, while every socket opened from then on -- the connections
to ``--connect`` -- lives in the test namespace.  So the test process reaches a server
inside a test network without a single link or route on the host.

    python -m tests.support.nsforward --netns /run/netns/X --listen 127.0.0.1:P --connect 10.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def serve(listener: socket.socket, host: str, port: int) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(host, port)
        except OSError:
            w.close()
            return
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--netns", required=True)
    ap.add_argument("--listen", required=True, help="HOST:PORT on the host")
    ap.add_argument("--connect", required=True, help="HOST:PORT inside the namespace")
    args = ap.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    chost, cport = args.connect.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((lhost, int(lport)))
    listener.listen(128)
    enter_netns(args.netns)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(listener, chost, int(cport)))


if __name__ == "__main__":
    main()
