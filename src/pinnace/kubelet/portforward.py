"""The kubelet side of ``portforward.k8s.io`` (v1) over SPDY/3.1.

The client (client-go's port forwarder, behind ``kubectl port-forward``) opens, for
every connection it accepts locally, two SPDY streams carrying the headers
``streamType`` (``error`` or ``data``), ``port`` and ``requestID`` (which pairs
them).  It half-closes the error stream at once and reads it to its end: anything
on it is an error message.  The data stream carries the connection's bytes both
ways; the client's FIN on it is the local side's EOF.

For every pair this connects to the pod's port (``connect``), copies bytes both
ways, and once the pod's side has ended - or failed - ends the data stream and
the error stream (with the error text, if any), as the upstream kubelet does.

The transport under SPDY is up to the caller: ``send`` gets whole frames (one
WebSocket message each for the ``SPDY/3.1+portforward.k8s.io`` tunnelling
subprotocol of KEP-4006) and :meth:`PortForwardSession.feed` takes the bytes the
client sent, in pieces of any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import spdy

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
# KEP-4006: the WebSocket subprotocol that tunnels the SPDY connection's bytes.
WEBSOCKET_PROTOCOL = "SPDY/3.1+" + PROTOCOL
READ_CHUNK = 32 * 1024
MAX_BUFFERED = 4 * 1024 * 1024  # client bytes held for a slow pod port before reading stops

# port -> (reader, writer) connected to that port of the pod; raises OSError when it cannot.
Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Send = Callable[[bytes], Awaitable[None]]


@dataclass
class _Pair:
    request_id: str
    port: int = 0
    data_id: int = 0
    error_id: int = 0
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)  # None: client's EOF
    buffered: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    writer: asyncio.StreamWriter | None = None

    def __post_init__(self) -> None:
        self.drained.set()


class PortForwardSession:
    """One SPDY connection of ``portforward.k8s.io``: any number of stream pairs."""

    def __init__(self, send: Send, connect: Connect, describe: str = "pod"):
        self._send_raw, self._connect, self._describe = send, connect, describe
        self._framer = spdy.Framer()
        self._lock = asyncio.Lock()  # frames leave whole and in compression order
        self._pairs: dict[str, _Pair] = {}
        self._streams: dict[int, _Pair] = {}
        self._closed = False
        self._last_stream = 0

    async def _send(self, *frames: bytes) -> None:
        if self._closed:
            return
        async with self._lock:
            for f in frames:
                await self._send_raw(f)

    # -- frames from the client ------------------------------------------------------------------

    async def feed(self, data: bytes) -> bool:
        """Handles what the client sent; False once the connection is over (GOAWAY)."""
        for frame in self._framer.feed(data):
            if not await self._frame(frame):
                return False
        return True

    async def _frame(self, f: spdy.Frame) -> bool:
        if f.type == spdy.SYN_STREAM:
            await self._syn_stream(f)
        elif f.type == 0:
            pair = self._streams.get(f.stream_id)
            if pair is None or f.stream_id != pair.data_id:
                return True  # the error stream carries nothing from the client; unknown: dropped
            if f.data:
                pair.inbound.put_nowait(f.data)
                pair.buffered += len(f.data)
                if pair.buffered > MAX_BUFFERED:
                    pair.drained.clear()
                    await pair.drained.wait()  # backpressure: stop reading until the pod caught up
            if f.fin:
                pair.inbound.put_nowait(None)
        elif f.type == spdy.RST_STREAM:
            pair = self._streams.get(f.stream_id)
            if pair is not None:
                self._end(pair)
        elif f.type == spdy.PING:
            await self._send(self._framer.ping(f.ping_id))  # echoed: the client measures round trips
        elif f.type == spdy.GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do

    async def _syn_stream(self, f: spdy.Frame) -> None:
        h = {k: v[0] if v else "" for k, v in f.headers.items()}
        self._last_stream = max(self._last_stream, f.stream_id)
        kind = h.get("streamtype", "")
        request_id = h.get("requestid", "")
        if not request_id:  # clients before requestID: the error stream is created first, right before data
            request_id = str(f.stream_id if kind == "error" else f.stream_id - 2)
        if kind not in ("data", "error"):
            await self._send(self._framer.rst_stream(f.stream_id, spdy.PROTOCOL_ERROR))
            return
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id)
        await self._send(self._framer.syn_reply(f.stream_id))
        self._streams[f.stream_id] = pair
        if kind == "data":
            pair.data_id = f.stream_id
            if f.fin:
                pair.inbound.put_nowait(None)
        else:
            pair.error_id = f.stream_id
        try:
            pair.port = int(h.get("port", ""))
            if not 0 < pair.port < 65536:
                raise ValueError
        except ValueError:
            pair.port = -1
        if pair.data_id and pair.error_id and pair.task is None:
            pair.task = asyncio.create_task(self._forward(pair, h.get("port", "")))

    # -- one forwarded connection ----------------------------------------------------------------

    async def _forward(self, pair: _Pair, raw_port: str) -> None:
        error = ""
        try:
            if pair.port < 0:
                error = f'invalid port header "{raw_port}"' if raw_port else "port header is required"
                return
            try:
                reader, writer = await self._connect(pair.port)
            except (OSError, TimeoutError) as e:
                error = (f"error forwarding port {pair.port} to {self._describe}: failed to connect to port "
                         f"{pair.port}: {e}")
                return
            pair.writer = writer
            to_pod = asyncio.create_task(self._to_pod(pair, writer))
            try:
                while chunk := await reader.read(READ_CHUNK):
                    await self._send(*self._framer.data(pair.data_id, chunk))
            except (ConnectionError, OSError) as e:
                error = f"error forwarding port {pair.port} to {self._describe}: {e}"
            finally:
                to_pod.cancel()
                await asyncio.gather(to_pod, return_exceptions=True)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(*self._framer.data(pair.data_id, fin=True))
                await self._send(*self._framer.data(pair.error_id, error.encode(), fin=True))
            self._forget(pair)

    async def _to_pod(self, pair: _Pair, writer: asyncio.StreamWriter) -> None:
        while (chunk := await pair.inbound.get()) is not None:
            pair.buffered -= len(chunk)
            try:
                writer.write(chunk)
                await writer.drain()
            finally:
                if pair.buffered <= MAX_BUFFERED // 2:
                    pair.drained.set()
        if writer.can_write_eof():  # the client's EOF, passed on as a half-close
            with contextlib.suppress(OSError):
                writer.write_eof()

    def _end(self, pair: _Pair) -> None:
        """The client reset a stream of the pair: the connection to the pod goes."""
        pair.drained.set()
        if pair.task is not None:
            pair.task.cancel()
        else:
            self._forget(pair)

    def _forget(self, pair: _Pair) -> None:
        pair.drained.set()
        self._pairs.pop(pair.request_id, None)
        for sid in (pair.data_id, pair.error_id):
            self._streams.pop(sid, None)

    async def close(self) -> None:
        """The connection is gone: every forwarded connection ends."""
        tasks = [p.task for p in self._pairs.values() if p.task is not None]
        self._closed = True
        for p in list(self._pairs.values()):
            p.drained.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pairs.clear()
        self._streams.clear()


async def open_tcp(host: str, port: int, timeout: float = 10.0, *, netns: str | None = None
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port`` as seen from the network namespace at ``netns`` (None:
    ours) -- a pod's own localhost, as the kubelet's port-forward connects."""
    async with asyncio.timeout(timeout):
        if netns is None:
            return await asyncio.open_connection(host, port)
        return await asyncio.open_connection(sock=await _connect_in_netns(netns, host, port, timeout))


_CLONE_NEWNET = 0x40000000


async def _connect_in_netns(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """Connect from inside ``netns``.  setns(2) moves only the calling thread and a socket keeps
    the namespace it was made in, so a thread of its own enters the namespace, connects and
    ends: no pooled thread is ever left in a pod's namespace."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket | None, error: BaseException | None) -> None:
        if done.done():  # the caller gave up (timeout): nobody will close it
            if sock is not None:
                sock.close()
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(sock)  # type: ignore[arg-type]

    def connect() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"cannot enter the pod's network namespace {netns}")
            finally:
                os.close(fd)
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setblocking(False)
        except BaseException as e:  # handed to the awaiting task
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, sock, None)

    threading.Thread(target=connect, name="port-forward-connect", daemon=True).start()
    return await done


__all__ = ["PROTOCOL", "WEBSOCKET_PROTOCOL", "PortForwardSession", "open_tcp"]
