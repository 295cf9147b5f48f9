"""The kubelet's HTTPS API (port 10250): ``/containerLogs``, ``/exec`` (WebSocket),
``/portForward`` (SPDY tunnelled in a WebSocket) and ``/healthz``.

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
channel 255, ``[255, n]`` closing channel n (stdin: the client's EOF).

``/portForward/{namespace}/{pod}`` speaks ``portforward.k8s.io`` over SPDY/3.1
carried in WebSocket binary messages (subprotocol ``SPDY/3.1+portforward.k8s.io``,
KEP-4006; see :mod:`.portforward`).  Each forwarded connection goes to
``port_forward_target(namespace, pod, port)`` - by default 127.0.0.1 and the port
itself, as pods share the node's network.
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
from .crilog import Entry, parse_line

log = logging.getLogger(__name__)

# (namespace, pod, container, previous) -> the CRI log file of the current (or previous)
# container instance, or None when there is none.  May be a coroutine function.
LogSource = Callable[[str, str, str, bool], "Path | Awaitable[Path | None] | None"]
# (namespace, pod, container) -> whether the container still runs (follow stops once it does not).
IsRunning = Callable[[str, str, str], bool]
# (namespace, pod, port) -> where that port of the pod is reached, or None when the pod is not
# here.  May be a coroutine function.
PortForwardTarget = Callable[[str, str, int], "tuple[str, int] | Awaitable[tuple[str, int] | None] | None"]

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
    """The files to read, oldest first, positioned for ``tail_lines``: the rotated ``.1``
    generation too when the current file alone has fewer lines than asked for."""
    old = rotated(path)
    if tail_lines is None:
        return [LogFile(old), LogFile(path)] if old.exists() else [LogFile(path)]
    offset, found = tail_start(path, tail_lines)
    if found < tail_lines and offset == 0 and old.exists():
        old_offset, _ = tail_start(old, tail_lines - found)
        return [LogFile(old, old_offset), LogFile(path)]
    return [LogFile(path, offset)]


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


@dataclass
class ExecProcess:
    """A command started in a container, as the server drives it: pipes (None for streams
    not asked for; with a TTY, stderr is merged into stdout), its exit code, and optional
    terminal resize and kill."""

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    wait: Callable[[], Awaitable[int]]
    resize: Callable[[int, int], None] | None = None  # (width, height)
    kill: Callable[[], None] | None = None

    @classmethod
    def from_process(cls, proc: asyncio.subprocess.Process) -> ExecProcess:
        def kill() -> None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        return cls(proc.stdin, proc.stdout, proc.stderr, proc.wait, None, kill)


# ExecRequest -> the started command, or None when the container is not there (may be async;
# may raise to report why it could not start).
ExecSource = Callable[[ExecRequest], "ExecProcess | Awaitable[ExecProcess | None] | None"]


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
                 port_forward_target: PortForwardTarget | None = None,
                 allowed_users: Collection[str] = (KUBELET_CLIENT_CN,),
                 allowed_groups: Collection[str] = ("system:masters",)):
        self.log_source = log_source
        self.is_running = is_running
        self.exec_source = exec_source
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


    async def _exec(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405, text="only GET and POST are allowed")
        if self.exec_source is None:
            return web.Response(status=404, text="exec is not supported by this kubelet")
        q = request.query

        def flag(name: str) -> bool:
            return q.get(name, "").lower() in ("true", "1")

        command = q.getall("command", [])
        if not command:
            return web.Response(status=400, text="you must specify at least 1 command")
        req = ExecRequest(request.match_info["namespace"], request.match_info["pod"],
                          request.match_info["container"], command, flag("input") or flag("stdin"),
                          flag("output") or flag("stdout"), flag("error") or flag("stderr"), flag("tty"))
        if not (req.stdin or req.stdout or req.stderr):
            return web.Response(status=400, text="you must specify at least one of stdin, stdout, stderr")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, heartbeat=None, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text=f"WebSocket upgrade ({', '.join(EXEC_PROTOCOLS)}) required; "
                                                 "SPDY is not supported")
        await ws.prepare(request)
        if ws.ws_protocol is None:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status(command, None, (
                f"none of the offered subprotocols is supported; use one of {list(EXEC_PROTOCOLS)}"))).encode())
            await ws.close()
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
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status(command, None, error)).encode())
            await ws.close()
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
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        size = json.loads(data)
                        proc.resize(int(size["Width"]), int(size["Height"]))
                elif channel == CLOSE and data[:1] == bytes([STDIN]):
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
                host_port: tuple[str, int] | None = ("127.0.0.1", port)
            else:
                found = target(ns, pod, port)
                host_port = await found if inspect.isawaitable(found) else found
            if host_port is None:
                raise OSError(f'pod "{pod}" in namespace "{ns}" is not running on this node')
            return await portforward.open_tcp(*host_port)

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


def _size(lf: LogFile) -> int:
    assert lf.f is not None
    return os.fstat(lf.f.fileno()).st_size


__all__ = ["EXEC_PROTOCOLS", "Assembler", "ExecProcess", "ExecRequest", "ExecSource", "IsRunning",
           "KubeletServer", "Line", "LogOptions", "LogOptionsError", "LogSource", "PortForwardTarget", "Renderer",
           "exec_status", "parse_time_ns", "read_logs", "rfc3339nano", "rotated", "tail_start"]
