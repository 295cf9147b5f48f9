"""The kubelet's HTTPS API (port 10250): ``/containerLogs``, ``/exec`` and ``/attach``
(WebSocket), ``/portForward`` (SPDY tunnelled in a WebSocket) and ``/healthz``.

Only the API server calls it (``kubectl logs`` is proxied through ``pods/log``),
so every request but ``/healthz`` must carry a client certificate signed by
``client_ca``; the certificate's subject must be the API server's kubelet-client
identity (or a ``system:masters`` member) - as a kubelet with webhook authorization
would decide for ``kube-apiserver-kubelet-client``.

Logs are read from CRI log files (see :mod:`.crilog`) with PodLogOptions
semantics: partial entries reassembled into lines, ``tailLines``,
``sinceSeconds``/``sinceTime``, ``timestamps`` (RFC 3339 with trimmed
nanoseconds, as Go's RFC3339Nano prints), ``limitBytes``, ``previous``, and
``follow`` (polls the file; survives rotation to ``<file>.1``).

``/exec`` speaks the WebSocket remote-command protocols ``v5.channel.k8s.io`` and
``v4.channel.k8s.io``: every binary message starts with its channel (0 stdin,
1 stdout, 2 stderr, 3 the final Status as JSON, 4 terminal resize); v5 adds
channel 255, ``[255, n]`` closing channel n (stdin: the client's EOF).  With ``tty``
the command runs on a new terminal (see :mod:`.runtime.stdio`): its output, stderr
included, comes on channel 1, and resize messages (``{"Width": W, "Height": H}``)
set the terminal's size.

``/attach/{namespace}/{pod}/{container}`` speaks the same protocols: the container's
output from now on (its CRI log followed from the current end, each entry on the
channel of its stream) and, for a container with ``stdin: true``, channel 0 written
into its stdin FIFO; with ``stdinOnce`` the runtime closes that stdin when the first
session that attached it ends.  The session ends with a Success status once the
container has stopped.  A container with ``tty: true`` runs on a terminal: its log is all
``stdout`` (channel 1), channel 0 is what is typed, and resize messages on channel 4 set
its terminal's size (``AttachTarget.resize``).

``/portForward/{namespace}/{pod}`` speaks ``portforward.k8s.io`` over SPDY/3.1
carried in WebSocket binary messages (subprotocol ``SPDY/3.1+portforward.k8s.io``,
KEP-4006; see :mod:`.portforward`).  Each forwarded connection goes to
``port_forward_target(namespace, pod, port)``: the pod's own localhost and port, inside its
network namespace (none: the node's, for pods on the node's network).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import inspect
import json
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import WSMsgType, web

from ..pki import peer_subject
from . import portforward
from .crilog import Entry, parse_line, rotated_logs
from .runtime.stdio import ExecProcess, open_fifo_writer

log = logging.getLogger(__name__)

# (namespace, pod, container, previous) -> the CRI log file of the current (or previous)
# container instance, or None when there is none.  May be a coroutine function.
LogSource = Callable[[str, str, str, bool], "Path | Awaitable[Path | None] | None"]
# (namespace, pod, container) -> whether the container still runs (follow stops once it does not).
IsRunning = Callable[[str, str, str], bool]
# (namespace, pod, port) -> where that port of the pod is reached, or None when the pod is not
# here.  May be a coroutine function.
#: (namespace, pod, port) -> (host, port, network namespace path or None), None if no such pod here.
PortForwardAddress = "tuple[str, int, str | None]"
PortForwardTarget = Callable[[str, str, int], "PortForwardAddress | Awaitable[PortForwardAddress | None] | None"]

KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
POLL_INTERVAL = 0.1  # seconds between looks at a followed file (no inotify in the stdlib)
READ_CHUNK = 256 * 1024
_BLOCK = 64 * 1024


# -- time ------------------------------------------------------------------------------------------

_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$")


def parse_time_ns(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction length, Z or offset)."""
    m = _TIME.match(value.strip())
    if not m:
        raise ValueError(f"invalid RFC 3339 time {value!r}")
    secs = calendar.timegm(tuple(int(m[i]) for i in range(1, 7)))  # type: ignore[arg-type]
    frac = int((m[7] or "")[:9].ljust(9, "0"))
    if m[9]:
        offset = int(m[10]) * 3600 + int(m[11]) * 60
        secs -= offset if m[9] == "+" else -offset
    return secs * 1_000_000_000 + frac


def rfc3339nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


# -- options ---------------------------------------------------------------------------------------


class LogOptionsError(ValueError):
    pass


@dataclass
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None  # lines older than this are skipped
    stream: str | None = None  # "stdout" or "stderr"; None for both

    @classmethod
    def from_query(cls, q: Mapping[str, str], now_ns: int | None = None) -> LogOptions:
        def flag(name: str) -> bool:
            return q.get(name, "").lower() in ("true", "1")

        def number(name: str, minimum: int) -> int | None:
            raw = q.get(name, "")
            if raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                raise LogOptionsError(f"{name}: Invalid value: {raw!r}: must be an integer") from None
            if value < minimum:
                raise LogOptionsError(f"{name}: Invalid value: {value}: must be greater than or equal to {minimum}")
            return value

        since_seconds = number("sinceSeconds", 1)
        since_time = q.get("sinceTime", "")
        if since_seconds is not None and since_time:
            raise LogOptionsError("at most one of `sinceTime` or `sinceSeconds` may be specified")
        since_ns = None
        if since_seconds is not None:
            since_ns = (time.time_ns() if now_ns is None else now_ns) - since_seconds * 1_000_000_000
        elif since_time:
            try:
                since_ns = parse_time_ns(since_time)
            except ValueError as e:
                raise LogOptionsError(f"sinceTime: {e}") from None
        stream = q.get("stream", "") or None
        if stream not in (None, "All", "Stdout", "Stderr"):
            raise LogOptionsError(f'stream: Unsupported value: "{stream}": supported values: "All", "Stderr", '
                                  '"Stdout"')
        return cls(follow=flag("follow"), previous=flag("previous"), timestamps=flag("timestamps"),
                   tail_lines=number("tailLines", 0), limit_bytes=number("limitBytes", 1), since_ns=since_ns,
                   stream=None if stream in (None, "All") else stream.lower())


# -- reading CRI files -----------------------------------------------------------------------------


@dataclass
class Line:
    """One logical log line: partial entries joined; time and stream of its first entry."""

    time: str
    stream: str
    content: bytes


class Assembler:
    """Joins partial (``P``) entries with the rest of their line, per stream (stdout and
    stderr interleave in one file)."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, bytearray]] = {}

    def feed(self, entry: Entry) -> Line | None:
        held = self.pending.get(entry.stream)
        if entry.partial:
            if held is None:
                self.pending[entry.stream] = (entry.time, bytearray(entry.content))
            else:
                held[1].extend(entry.content)
            return None
        if held is None:
            return Line(entry.time, entry.stream, entry.content)
        del self.pending[entry.stream]
        return Line(held[0], entry.stream, bytes(held[1]) + entry.content)

    def flush(self) -> list[Line]:
        """Unfinished lines as they are (the container has not ended them, or it died)."""
        lines = [Line(t, s, bytes(buf)) for s, (t, buf) in self.pending.items()]
        self.pending.clear()
        return lines


class Renderer:
    """Filters (stream, since) and formats (timestamps) lines; enforces ``limitBytes``."""

    def __init__(self, opts: LogOptions):
        self.opts = opts
        self.remaining = opts.limit_bytes

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def render(self, lines: list[Line]) -> bytes:
        out = bytearray()
        for line in lines:
            if self.done:
                break
            if self.opts.stream and line.stream != self.opts.stream:
                continue
            ns: int | None = None
            if self.opts.since_ns is not None or self.opts.timestamps:
                try:
                    ns = parse_time_ns(line.time)
                except ValueError:
                    ns = None
            if self.opts.since_ns is not None and ns is not None and ns < self.opts.since_ns:
                continue
            data = line.content
            if self.opts.timestamps:
                data = (rfc3339nano(ns) if ns is not None else line.time).encode() + b" " + data
            if self.remaining is not None:
                data = data[:self.remaining]  # cut mid-line, as Kubernetes' LimitWriter does
                self.remaining -= len(data)
            out += data
        return bytes(out)


def rotated(path: Path) -> Path:
    """Where the previous generation of a log file lives after rotation."""
    return path.with_name(path.name + ".1")


def _tag(raw: bytes) -> bytes | None:
    parts = raw.split(b" ", 3)
    return parts[2] if len(parts) >= 3 and parts[2] in (b"F", b"P") else None


def _reverse_lines(f: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """Lines of ``f[:end]`` from the last to the first, with their offsets."""
    pos, buf = end, b""
    while True:
        hi = len(buf)
        idx = buf.rfind(b"\n", 0, hi - 1)
        while idx >= 0:
            yield pos + idx + 1, buf[idx + 1:hi]
            hi = idx + 1
            idx = buf.rfind(b"\n", 0, hi - 1)
        buf = buf[:hi]
        if pos == 0:
            if buf:
                yield 0, buf
            return
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf


def tail_start(path: Path, n: int) -> tuple[int, int]:
    """The offset in ``path`` where its last ``n`` logical lines begin, and how many lines were
    found (fewer than ``n`` when the file has fewer).  A line ends with a full (``F``) entry; an
    unfinished line at the end counts too.  Reads backwards, so a long file costs little."""
    if n == 0:
        return (path.stat().st_size if path.exists() else 0), 0
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return 0, 0
    with f:
        size = os.fstat(f.fileno()).st_size
        count, seen_last = 0, False
        for start, raw in _reverse_lines(f, size):
            if not raw.endswith(b"\n"):
                continue  # an entry being written right now; read forwards later
            tag = _tag(raw)
            if tag is None:
                continue
            if not seen_last:
                seen_last = True
                if tag == b"P":
                    count = 1
            if tag == b"F":
                if count == n:
                    return start + len(raw), count
                count += 1
        return 0, count


class LogFile:
    """Reads whole CRI entries from a file from an offset on, as the file grows."""

    def __init__(self, path: Path, offset: int = 0):
        self.path = path
        self.f: BinaryIO | None = None
        self.buf = b""
        self.offset = offset
        self._open(offset)

    def _open(self, offset: int) -> None:
        try:
            self.f = open(self.path, "rb")  # kept open while following
        except FileNotFoundError:
            self.f = None
            return
        self.f.seek(offset)
        self.offset, self.buf = offset, b""

    def read(self, final: bool = False) -> list[Entry]:
        """Entries written since the last call (at most READ_CHUNK bytes' worth); with ``final``,
        also an unterminated last line."""
        if self.f is None:
            return []
        chunk = self.f.read(READ_CHUNK)
        self.offset += len(chunk)
        data = self.buf + chunk
        cut = data.rfind(b"\n") + 1
        lines, self.buf = data[:cut], data[cut:]
        if final and not chunk and self.buf:
            lines, self.buf = lines + self.buf, b""
        entries = []
        for raw in lines.splitlines(keepends=True):
            entry = parse_line(raw)
            if entry is not None:
                entries.append(entry)
        return entries

    def replaced(self) -> bool:
        """Whether the path now names another file (rotated away) or was truncated (copytruncate)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # rotated but not recreated yet: keep reading what we have
        if self.f is None:
            return True
        own = os.fstat(self.f.fileno())
        return (st.st_ino, st.st_dev) != (own.st_ino, own.st_dev) or st.st_size < self.offset

    def reopen(self) -> None:
        self.close()
        self._open(0)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def open_logs(path: Path, tail_lines: int | None) -> list[LogFile]:
    """The files to read, oldest first, positioned for ``tail_lines``: the rotated generations
    still in plain text (``crilog.rotated_logs``: ``<file>.<timestamp>`` as the log manager
    names them) too, as far back as the newer files have fewer lines than asked for."""
    olds = rotated_logs(path)
    if tail_lines is None:
        return [*(LogFile(old) for old in olds), LogFile(path)]
    offset, found = tail_start(path, tail_lines)
    files = [LogFile(path, offset)]
    for old in reversed(olds):
        if found >= tail_lines or offset != 0:
            break
        offset, more = tail_start(old, tail_lines - found)
        found += more
        files.insert(0, LogFile(old, offset))
    return files


def read_logs(path: Path, opts: LogOptions) -> bytes:
    """Everything ``GET /containerLogs`` without ``follow`` answers (for tests and tools)."""
    renderer, assembler = Renderer(opts), Assembler()
    out = bytearray()
    for lf in open_logs(path, opts.tail_lines):
        try:
            while entries := lf.read(final=True):
                out += renderer.render([ln for e in entries if (ln := assembler.feed(e)) is not None])
        finally:
            lf.close()
    out += renderer.render(assembler.flush())
    return bytes(out)


# -- exec --------------------------------------------------------------------------------------------


@dataclass
class ExecRequest:
    namespace: str
    pod: str
    container: str
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


# ExecRequest -> the started command, or None when the container is not there (may be async;
# may raise to report why it could not start).
ExecSource = Callable[[ExecRequest], "ExecProcess | Awaitable[ExecProcess | None] | None"]


@dataclass
class AttachRequest:
    namespace: str
    pod: str
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


@dataclass
class AttachTarget:
    """A running container to attach to, as the kubelet finds it."""

    log_path: Path  # its current CRI log file: the output, from its end on
    running: Callable[[], bool]  # False once it stopped (or was replaced by a restart): the session ends
    stdin: Path | None = None  # its stdin FIFO; None when it has no stdin (or it was closed)
    stdin_once: bool = False
    close_stdin: Callable[[], Awaitable[None]] | None = None  # stdinOnce: after the first session with stdin
    tty: bool = False  # it runs with ``tty: true`` (on a terminal)
    resize: Callable[[int, int], None] | None = None  # (width, height) of its terminal


# AttachRequest -> the container, or None when it is not running here (may be async; may raise).
AttachSource = Callable[[AttachRequest], "AttachTarget | Awaitable[AttachTarget | None] | None"]


def exec_status(command: list[str], code: int | None, error: str = "") -> dict:
    """The Status sent on the error channel when the command ends, as the kubelet sends it:
    kubectl takes its exit code from the ExitCode cause."""
    if error:
        return {"metadata": {}, "status": "Failure", "message": error, "reason": "InternalError", "code": 500}
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


# -- the server --------------------------------------------------------------------------------------


class KubeletServer:
    """The kubelet's HTTPS endpoint.  ``log_source`` maps a container to its CRI log file;
    ``is_running`` (optional) tells ``follow`` when a container has ended so the stream can
    close as Kubernetes' does; without it, following lasts until the client goes away."""

    def __init__(self, log_source: LogSource, *, host: str = "0.0.0.0", port: int = 10250,
                 cert: Path | str, key: Path | str, client_ca: Path | str,
                 is_running: IsRunning | None = None, exec_source: ExecSource | None = None,
                 attach_source: AttachSource | None = None,
                 port_forward_target: PortForwardTarget | None = None,
                 allowed_users: Collection[str] = (KUBELET_CLIENT_CN,),
                 allowed_groups: Collection[str] = ("system:masters",)):
        self.log_source = log_source
        self.is_running = is_running
        self.exec_source = exec_source
        self.attach_source = attach_source
        self.port_forward_target = port_forward_target
        self.host, self.port = host, port
        self.cert, self.key, self.client_ca = Path(cert), Path(key), Path(client_ca)
        self.allowed_users, self.allowed_groups = set(allowed_users), set(allowed_groups)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.active_streams = 0  # log responses being served (tests check followers end)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.load_verify_locations(str(self.client_ca))
        # Optional at the TLS layer so that a missing certificate gets an HTTP 401 rather than
        # a handshake failure; a certificate from another CA still fails the handshake.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_route("*", "/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_route("*", "/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_route("*", "/portForward/{namespace}/{pod}/{uid}", self._port_forward)
        return app

    async def start(self) -> None:
        self._stopping.clear()
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context(), reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None and server.sockets  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("kubelet API listening on https://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        self._stopping.set()  # ends follow streams at their next poll, so cleanup does not wait
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- auth ----------------------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport else None
        if not peercert:
            return web.Response(status=401, text="Unauthorized")
        cn, orgs = peer_subject(peercert)
        if cn not in self.allowed_users and not self.allowed_groups.intersection(orgs):
            resource = request.path.strip("/").split("/")[0]
            return web.Response(status=403, text=f"Forbidden (user={cn}, verb=get, resource=nodes, "
                                                 f"subresource(s)=[{resource}])")
        return await handler(request)

    # -- handlers ------------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            opts = LogOptions.from_query(request.query)
        except LogOptionsError as e:
            return web.Response(status=400, text=str(e))
        found = self.log_source(ns, pod, container, opts.previous)
        path = await found if inspect.isawaitable(found) else found
        if path is None:
            if opts.previous:
                msg = f'previous terminated container "{container}" in pod "{pod}" not found'
            else:
                msg = f'container "{container}" in pod "{pod}" is not available'
            return web.Response(status=404, text=msg)
        running: Callable[[], bool] | None = None
        if opts.follow and self.is_running is not None and not opts.previous:
            is_running = self.is_running
            running = lambda: is_running(ns, pod, container)  # noqa: E731
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self.active_streams += 1
        try:
            with contextlib.suppress(ConnectionResetError):
                await self._stream(request, resp, Path(path), opts, running)
                await resp.write_eof()
        finally:
            self.active_streams -= 1
        return resp

    async def _stream(self, request: web.Request, resp: web.StreamResponse, path: Path, opts: LogOptions,
                      running: Callable[[], bool] | None) -> None:
        renderer, assembler = Renderer(opts), Assembler()
        files = open_logs(path, opts.tail_lines)

        async def emit(entries: list[Entry]) -> None:
            data = renderer.render([ln for e in entries if (ln := assembler.feed(e)) is not None])
            if data:
                await resp.write(data)  # waits while the client is slow (backpressure)

        try:
            for lf in files[:-1]:  # the rotated generation, read to its end
                while not renderer.done and (entries := lf.read(final=True)):
                    await emit(entries)
            current = files[-1]
            while not renderer.done:
                entries = current.read(final=not opts.follow)
                if entries:
                    await emit(entries)
                    await asyncio.sleep(0)  # let others run while a long file streams
                    continue
                if current.f is not None and current.buf == b"" and current.offset < _size(current):
                    continue  # more came in since the read
                if not opts.follow:
                    break
                if current.replaced():
                    while entries := current.read(final=True):  # the rest of the old file first
                        await emit(entries)
                    current.reopen()
                    continue
                transport = request.transport
                if self._stopping.is_set() or transport is None or transport.is_closing():
                    break
                if running is not None and not running():
                    while entries := current.read(final=True):
                        await emit(entries)
                    break
                await asyncio.sleep(POLL_INTERVAL)
            if not renderer.done:
                tail = renderer.render(assembler.flush())
                if tail:
                    await resp.write(tail)
        finally:
            for lf in files:
                lf.close()


    async def _upgrade(self, request: web.Request, command: list[str]) -> web.WebSocketResponse | web.Response:
        """The WebSocket of an exec or attach session, or the refusal (an HTTP error, or the
        Status on channel 3 when no subprotocol fits)."""
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, heartbeat=None, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text=f"WebSocket upgrade ({', '.join(EXEC_PROTOCOLS)}) required; "
                                                 "SPDY is not supported")
        await ws.prepare(request)
        if ws.ws_protocol is None:
            await _fail(ws, command, f"none of the offered subprotocols is supported; use one of "
                                     f"{list(EXEC_PROTOCOLS)}")
        return ws

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405, text="only GET and POST are allowed")
        if self.exec_source is None:
            return web.Response(status=404, text="exec is not supported by this kubelet")
        q = request.query
        command = q.getall("command", [])
        if not command:
            return web.Response(status=400, text="you must specify at least 1 command")
        req = ExecRequest(request.match_info["namespace"], request.match_info["pod"],
                          request.match_info["container"], command, *_stream_flags(q))
        if not (req.stdin or req.stdout or req.stderr):
            return web.Response(status=400, text="you must specify at least one of stdin, stdout, stderr")
        ws = await self._upgrade(request, command)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        # Kubernetes' stream server announces readiness with an empty frame on the first output channel.
        await ws.send_bytes(bytes([STDOUT if req.stdout else STDERR if req.stderr else ERROR]))
        try:
            started = self.exec_source(req)
            proc = await started if inspect.isawaitable(started) else started
        except Exception as e:  # the runtime could not start it: say why on the error channel
            proc, error = None, str(e) or type(e).__name__
        else:
            error = "" if proc is not None else (f'container "{req.container}" in pod "{req.pod}" is not '
                                                 "available")
        if proc is None:
            await _fail(ws, command, error)
            return ws
        await self._run_exec(ws, req, proc)
        return ws

    async def _run_exec(self, ws: web.WebSocketResponse, req: ExecRequest, proc: ExecProcess) -> None:
        async def pump(reader: asyncio.StreamReader, channel: int) -> None:
            while chunk := await reader.read(32 * 1024):
                await ws.send_bytes(bytes([channel]) + chunk)

        async def close_stdin() -> None:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.wait_closed()

        async def from_client() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel == STDIN and proc.stdin is not None and data:
                    with contextlib.suppress(ConnectionError):
                        proc.stdin.write(data)
                        await proc.stdin.drain()
                elif channel == RESIZE and proc.resize is not None:
                    size = _terminal_size(data)
                    if size is not None:
                        proc.resize(*size)
                elif channel == CLOSE and data[:1] == bytes([STDIN]):
                    # With a terminal only our writing ends: the command gets no EOF (as with
                    # containerd), the terminal stays until the command is done.
                    await close_stdin()
            # The client is gone (or closed): stdin ends; a command still running is killed.
            await close_stdin()
            if proc.kill is not None:
                proc.kill()

        outputs = [asyncio.create_task(pump(r, ch)) for r, ch in ((proc.stdout, STDOUT), (proc.stderr, STDERR))
                   if r is not None]
        reader = asyncio.create_task(from_client())
        try:
            code = await proc.wait()
            with contextlib.suppress(ConnectionError):
                await asyncio.gather(*outputs)  # the rest of the output before the status
                status = exec_status(req.command, code)
                await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        finally:
            for t in (*outputs, reader):
                t.cancel()
            await asyncio.gather(*outputs, reader, return_exceptions=True)
            if proc.kill is not None:
                proc.kill()
            if proc.close is not None:
                proc.close()
            await ws.close()

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405, text="only GET and POST are allowed")
        if self.attach_source is None:
            return web.Response(status=404, text="attach is not supported by this kubelet")
        req = AttachRequest(request.match_info["namespace"], request.match_info["pod"],
                            request.match_info["container"], *_stream_flags(request.query))
        if not (req.stdin or req.stdout or req.stderr):
            return web.Response(status=400, text="you must specify at least one of stdin, stdout, stderr")
        ws = await self._upgrade(request, [])
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        await ws.send_bytes(bytes([STDOUT if req.stdout else STDERR if req.stderr else ERROR]))
        error = ""
        try:
            found = self.attach_source(req)
            target = await found if inspect.isawaitable(found) else found
        except Exception as e:
            target, error = None, str(e) or type(e).__name__
        if target is None:
            error = error or f'container "{req.container}" in pod "{req.pod}" is not running'
        if target is None or error:
            await _fail(ws, [], error)
            return ws
        self.active_streams += 1
        try:
            await self._run_attach(request, ws, req, target)
        finally:
            self.active_streams -= 1
        return ws

    async def _run_attach(self, request: web.Request, ws: web.WebSocketResponse, req: AttachRequest,
                          target: AttachTarget) -> None:
        stdin = open_fifo_writer(target.stdin) if req.stdin and target.stdin is not None else None
        once = stdin is not None and target.stdin_once and target.close_stdin is not None

        async def end_stdin() -> None:
            """This session's input is over; with stdinOnce so is the container's (as
            containerd closes it at the attach stream's EOF)."""
            nonlocal stdin, once
            if stdin is not None:
                stdin.close()
                stdin = None
            if once:
                once = False
                assert target.close_stdin is not None
                try:
                    await target.close_stdin()
                except Exception as e:  # the container may be gone already
                    log.debug("attach %s/%s/%s: closing stdin: %s", req.namespace, req.pod, req.container, e)

        async def from_client() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel == STDIN and stdin is not None and data:
                    try:
                        stdin.write(data)
                        await stdin.drain()
                    except ConnectionError:  # nothing reads it any more: the container is gone
                        await end_stdin()
                elif channel == CLOSE and data[:1] == bytes([STDIN]):
                    await end_stdin()
                elif channel == RESIZE and target.resize is not None:
                    size = _terminal_size(data)
                    if size is not None:
                        try:
                            target.resize(*size)
                        except Exception as e:  # the container (or its terminal) is gone
                            log.debug("attach %s/%s/%s: resize: %s", req.namespace, req.pod, req.container, e)

        async def to_client() -> None:
            lf = LogFile(target.log_path, _file_size(target.log_path))
            try:
                while True:
                    entries = lf.read()
                    if not entries:
                        if lf.replaced():  # rotated: the rest of the old file, then the new one
                            await _send_entries(ws, req, lf.read(final=True))
                            lf.reopen()
                            continue
                        transport = request.transport
                        if self._stopping.is_set() or transport is None or transport.is_closing():
                            return  # (a client gone while its input waits for the container to read)
                        if not target.running():
                            await _send_entries(ws, req, lf.read(final=True))
                            return
                        await asyncio.sleep(POLL_INTERVAL)
                        continue
                    await _send_entries(ws, req, entries)
            finally:
                lf.close()

        output = asyncio.create_task(to_client())
        reader = asyncio.create_task(from_client())
        try:
            await asyncio.wait((output, reader), return_when=asyncio.FIRST_COMPLETED)
            if output.done() and output.exception() is None and not self._stopping.is_set():
                with contextlib.suppress(ConnectionError):  # the container ended: so does the session
                    await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status([], 0)).encode())
        finally:
            for t in (output, reader):
                t.cancel()
            await asyncio.gather(output, reader, return_exceptions=True)
            await end_stdin()
            await ws.close()

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405, text="only GET and POST are allowed")
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        ws = web.WebSocketResponse(protocols=(portforward.WEBSOCKET_PROTOCOL,), heartbeat=None, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text=f"WebSocket upgrade ({portforward.WEBSOCKET_PROTOCOL}) "
                                                 "required; plain SPDY upgrades are not supported")
        await ws.prepare(request)
        if ws.ws_protocol is None:
            await ws.close(code=1002, message=f"use subprotocol {portforward.WEBSOCKET_PROTOCOL}".encode())
            return ws
        target = self.port_forward_target

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            if target is None:
                address: tuple[str, int, str | None] | None = ("127.0.0.1", port, None)
            else:
                found = target(ns, pod, port)
                address = await found if inspect.isawaitable(found) else found
            if address is None:
                raise OSError(f'pod "{pod}" in namespace "{ns}" is not running on this node')
            host, to_port, netns = address
            return await portforward.open_tcp(host, to_port, netns=netns)

        session = portforward.PortForwardSession(ws.send_bytes, connect, f"pod {pod}_{ns}")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and not await session.feed(msg.data):
                    break
                if self._stopping.is_set():
                    break
        except portforward.spdy.ProtocolError as e:
            log.warning("port-forward to %s/%s: %s", ns, pod, e)
        finally:
            await session.close()
            await ws.close()
        return ws


def _stream_flags(q: Mapping[str, str]) -> tuple[bool, bool, bool, bool]:
    """(stdin, stdout, stderr, tty) of an exec or attach request (kubectl's and the client
    libraries' names for them)."""

    def flag(name: str) -> bool:
        return q.get(name, "").lower() in ("true", "1")

    return (flag("input") or flag("stdin"), flag("output") or flag("stdout"), flag("error") or flag("stderr"),
            flag("tty"))


def _terminal_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message (``{"Width": W, "Height": H}``); None if it is not one."""
    try:
        size = json.loads(data)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None


async def _fail(ws: web.WebSocketResponse, command: list[str], error: str) -> None:
    with contextlib.suppress(ConnectionError):
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status(command, None, error)).encode())
    await ws.close()


async def _send_entries(ws: web.WebSocketResponse, req: AttachRequest, entries: list[Entry]) -> None:
    """Log entries as the output of an attach session: each on its stream's channel, as the
    container wrote it (partial entries included)."""
    out, err = req.stdout, req.stderr
    chunks: list[tuple[int, bytearray]] = []
    for e in entries:
        channel = STDOUT if e.stream == "stdout" else STDERR
        if not (out if channel == STDOUT else err) or not e.content:
            continue
        if chunks and chunks[-1][0] == channel:
            chunks[-1][1].extend(e.content)  # one message for a run of one stream
        else:
            chunks.append((channel, bytearray(e.content)))
    for channel, data in chunks:
        await ws.send_bytes(bytes([channel]) + data)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _size(lf: LogFile) -> int:
    assert lf.f is not None
    return os.fstat(lf.f.fileno()).st_size


__all__ = ["EXEC_PROTOCOLS", "Assembler", "AttachRequest", "AttachSource", "AttachTarget", "ExecProcess",
           "ExecRequest", "ExecSource", "IsRunning",
           "KubeletServer", "Line", "LogOptions", "LogOptionsError", "LogSource", "PortForwardTarget", "Renderer",
           "exec_status", "parse_time_ns", "read_logs", "rfc3339nano", "rotated", "tail_start"]
