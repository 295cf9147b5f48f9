"""Container probes (liveness, readiness, startup) as the kubelet's prober runs them.

Two layers:

* :func:`run_probe` runs one probe once (exec, httpGet, tcpSocket; grpc is not supported)
  and says success, failure or unknown, with the output the kubelet puts in events.
* :class:`ProbeWorker` / :class:`ProbeManager` run probes periodically for the containers of
  one pod and apply ``initialDelaySeconds``, ``periodSeconds``, ``successThreshold`` and
  ``failureThreshold`` like ``pkg/kubelet/prober/worker.go``:

  - readiness starts as failure (not ready), liveness as success, startup as unknown;
  - liveness and readiness do not probe until the startup probe has succeeded;
  - a result counts only after ``threshold`` equal results in a row; ``unknown`` results
    (the prober itself failed, e.g. a named port that does not exist) are thrown away;
  - a liveness or startup failure is reported once, then the worker stops: the kubelet
    restarts the container and starts new workers for the new container id;
  - a startup success is reported once, then the startup worker stops.

What is left to the kubelet's pod worker (it knows which containers run):

  - a running container without a readiness probe is ready once started
    (:meth:`ProbeManager.is_ready` implements the rule; a container without a startup
    probe is started once running);
  - on ``on_result("liveness"|"startup", name, False, msg)`` kill the container with reason
    "Unhealthy" and restart it per restartPolicy (the event the kubelet records is
    ``Killing``: "Container <name> failed liveness probe, will be restarted");
  - a stopped container is not ready: call :meth:`ProbeManager.stop_container` and recompute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from pinnace.kubelet.runtime.base import ContainerRuntime

log = logging.getLogger(__name__)

# The Kubernetes version the kubelet claims to be in User-Agent headers.
KUBE_VERSION = "1.32"
PROBE_USER_AGENT = f"kube-probe/{KUBE_VERSION}"

# Probe output (HTTP body, exec stdout+stderr) beyond this is dropped, as the kubelet does.
MAX_OUTPUT = 10 * 1024
MAX_REDIRECTS = 10  # Go's http.Client default, which the kubelet keeps for same-host redirects
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The kubelet retries a probe whose *prober* failed (result unknown) this many times in a row.
MAX_PROBE_RETRIES = 3
# exec_sync is given the probe timeout; this bounds a runtime that does not honour it.
EXEC_TIMEOUT_SLACK = 1.0

ProbeKind = Literal["liveness", "readiness", "startup"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("startup", "liveness", "readiness")
_SPEC_FIELD: dict[ProbeKind, str] = {
    "liveness": "livenessProbe", "readiness": "readinessProbe", "startup": "startupProbe"}


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"  # the probe could not be run; the kubelet ignores such results


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    message: str = ""
    # A success the kubelet reports with a ProbeWarning event (an HTTP redirect not followed).
    warning: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCESS


def _success(message: str = "", warning: bool = False) -> ProbeResult:
    return ProbeResult(Outcome.SUCCESS, message, warning)


def _failure(message: str) -> ProbeResult:
    return ProbeResult(Outcome.FAILURE, message)


def _unknown(message: str) -> ProbeResult:
    return ProbeResult(Outcome.UNKNOWN, message)


class ProbeError(Exception):
    """The probe or hook cannot be run as specified (no such port, no pod IP)."""


# ---------------------------------------------------------------------------- shared helpers


def resolve_port(port: Any, container_ports: Iterable[Mapping[str, Any]] | None, *,
                 numeric_strings_first: bool = False) -> int:
    """An IntOrString port as a number: an int as is, a string as a named container port.

    Probes look the name up first and fall back to parsing it as a number
    (``probe.ResolveContainerPort``); lifecycle hooks parse first (``numeric_strings_first``).
    """
    if isinstance(port, bool):
        raise ProbeError(f"invalid port: {port!r}")
    if isinstance(port, int):
        number = port
    elif isinstance(port, str):
        by_name = next((p.get("containerPort") for p in container_ports or () if p.get("name") == port), None)
        numeric = int(port) if port.isdigit() else None
        found = (numeric if numeric is not None else by_name) if numeric_strings_first else \
            (by_name if by_name is not None else numeric)
        if found is None:
            raise ProbeError(f"port {port} not found")
        number = int(found)
    else:
        raise ProbeError(f"invalid port: {port!r}")
    if not 0 < number < 65536:
        raise ProbeError(f"invalid port number: {number}")
    return number


def join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def http_url(action: Mapping[str, Any], *, pod_ip: str | None,
             container_ports: Iterable[Mapping[str, Any]] | None, numeric_strings_first: bool = False) -> URL:
    """The URL an HTTPGetAction asks for; the host defaults to the pod IP."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    if scheme not in ("http", "https"):
        raise ProbeError(f"unsupported scheme: {action.get('scheme')}")
    host = action.get("host") or pod_ip
    if not host:
        raise ProbeError("the pod has no IP address")
    port = resolve_port(action.get("port"), container_ports, numeric_strings_first=numeric_strings_first)
    path = str(action.get("path") or "")
    if not path.startswith("/"):
        path = "/" + path  # Go's url.URL.String() adds the slash between host and a relative path
    return URL(f"{scheme}://{join_host_port(host, port)}{path}")


def http_headers(action: Mapping[str, Any], user_agent: str) -> CIMultiDict[str]:
    """httpHeaders in order (repeats allowed), with the kubelet's User-Agent and Accept defaults."""
    headers: CIMultiDict[str] = CIMultiDict()
    for h in action.get("httpHeaders") or ():
        headers.add(str(h.get("name", "")), str(h.get("value", "")))
    headers.setdefault("User-Agent", user_agent)
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif not headers.get("Accept"):
        del headers["Accept"]  # explicitly emptied: send none (pkg/probe/http/request.go)
    return headers


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    # Only the first ``limit`` bytes matter; the connection is closed afterwards anyway.
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def http_get(url: URL, headers: CIMultiDict[str]) -> tuple[int, bytes]:
    """GET ``url`` like the kubelet's probe client: no certificate verification, no keep-alive,
    redirects followed only while they stay on the same host name (at most 10); a redirect
    elsewhere is returned as it is.  The caller bounds the time.  Raises aiohttp/OS errors and
    ProbeError("stopped after 10 redirects")."""
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)
    skip = ["Accept"] if "Accept" not in headers else []
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=skip,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        current = url
        current_headers = headers
        for hop in range(MAX_REDIRECTS + 1):
            async with session.get(current, headers=current_headers, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status not in REDIRECT_STATUSES or not location:
                    return resp.status, await _read_at_most(resp, MAX_OUTPUT)
                target = URL(location)
                following = current.join(target)
                if following.host != url.host:  # ErrUseLastResponse: report the redirect itself
                    return resp.status, await _read_at_most(resp, MAX_OUTPUT)
                if hop == MAX_REDIRECTS:
                    raise ProbeError(f"stopped after {MAX_REDIRECTS} redirects")
            if target.is_absolute() and "Host" in current_headers:
                # Go keeps a custom Host header only across relative redirects.
                current_headers = current_headers.copy()
                del current_headers["Host"]
            current = following
    raise AssertionError("unreachable")


def _os_error_text(e: OSError) -> str:
    # asyncio says "Connect call failed (...)"; Go says what errno says ("connection refused").
    return os.strerror(e.errno).lower() if e.errno else (str(e) or type(e).__name__)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ClientSSLError):
        return f"dial tcp {join_host_port(exc.host, exc.port)}: connect: {_os_error_text(exc.os_error)}"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------- one probe


async def run_probe(probe: Mapping[str, Any], *, runtime: ContainerRuntime, container_id: str, pod_ip: str | None,
                    container_ports: Iterable[Mapping[str, Any]] | None = None,
                    user_agent: str = PROBE_USER_AGENT) -> ProbeResult:
    """Run ``probe`` (a v1.Probe as a dict) once against a container."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if (action := probe.get("exec")) is not None:
            return await _exec_probe(runtime, container_id, list(action.get("command") or []), timeout)
        if (action := probe.get("httpGet")) is not None:
            url = http_url(action, pod_ip=pod_ip, container_ports=container_ports)
            return await _http_probe(url, http_headers(action, user_agent), timeout)
        if (action := probe.get("tcpSocket")) is not None:
            host = action.get("host") or pod_ip
            if not host:
                raise ProbeError("the pod has no IP address")
            return await _tcp_probe(host, resolve_port(action.get("port"), container_ports), timeout)
        if probe.get("grpc") is not None:
            # The standard grpc.health.v1 check needs an HTTP/2 client Pinnace does not ship.
            return _failure("grpc probes are not supported")
    except ProbeError as e:
        return _unknown(str(e))
    return _unknown("missing probe handler")


async def _exec_probe(runtime: ContainerRuntime, container_id: str, cmd: list[str], timeout: float) -> ProbeResult:
    if not cmd:
        return _unknown("exec probe has no command")
    try:
        async with asyncio.timeout(timeout + EXEC_TIMEOUT_SLACK):
            result = await runtime.exec_sync(container_id, cmd, timeout)
    except TimeoutError:
        # The kubelet's wording (remote_runtime.go); a timeout is a failure, not unknown.
        return _failure(f'command "{" ".join(cmd)}" timed out')
    except Exception as e:  # the runtime could not exec at all: the probe's result is unknown
        return _unknown(f"exec failed: {e}")
    output = (result.stdout + result.stderr)[:MAX_OUTPUT].decode(errors="replace")
    return _success(output) if result.exit_code == 0 else _failure(output)


async def _http_probe(url: URL, headers: CIMultiDict[str], timeout: float) -> ProbeResult:
    try:
        async with asyncio.timeout(timeout):
            status, body = await http_get(url, headers)
    except TimeoutError:
        return _failure(f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
    except (aiohttp.ClientError, OSError, ProbeError) as e:
        return _failure(f'Get "{url}": {_describe_error(e)}')
    text = body.decode(errors="replace")
    if 200 <= status < 300:
        return _success(text)
    if 300 <= status < 400:  # a redirect to another host, not followed: success with a warning
        return _success(f"Probe terminated redirects, Response body: {text}", warning=True)
    # The body is left out on purpose (kubernetes#99425: it may hold secrets).
    return _failure(f"HTTP probe failed with statuscode: {status}")


async def _tcp_probe(host: str, port: int, timeout: float) -> ProbeResult:
    address = join_host_port(host, port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return _failure(f"dial tcp {address}: i/o timeout")
    except OSError as e:
        return _failure(f"dial tcp {address}: connect: {_os_error_text(e)}")
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        pass  # the connect succeeded; how the close goes does not matter
    return _success()


# ---------------------------------------------------------------------------- periodic probing

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
Prober = Callable[[Mapping[str, Any]], Awaitable[ProbeResult]]
# on_result(kind, container_name, result, message): called on every change of the thresholded
# state.  Must not block (it runs inside the worker task): record it and wake the pod worker.
ResultCallback = Callable[[ProbeKind, str, bool, str], None]
# on_event(reason, container_name, message): the Warning events the kubelet records per probe
# ("Unhealthy": "Liveness probe failed: ...", "ProbeWarning": "Readiness probe warning: ...").
EventCallback = Callable[[str, str, str], None]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_probe(cls, probe: Mapping[str, Any], kind: ProbeKind) -> ProbeTiming:
        def get(key: str, default: int) -> int:
            value = probe.get(key)
            return default if value in (None, 0) else int(value)  # zero means unset (int32 fields)

        timing = cls(initial_delay=max(0, int(probe.get("initialDelaySeconds") or 0)),
                     period=get("periodSeconds", 10), timeout=get("timeoutSeconds", 1),
                     success_threshold=get("successThreshold", 1), failure_threshold=get("failureThreshold", 3))
        if min(timing.period, timing.timeout, timing.success_threshold, timing.failure_threshold) < 1:
            raise ValueError(f"{kind} probe: periodSeconds, timeoutSeconds and thresholds must be >= 1")
        if kind != "readiness" and timing.success_threshold != 1:
            # API validation rejects this too ("must be 1"); never guess what was meant.
            raise ValueError(f"{kind} probe: successThreshold must be 1")
        return timing


@dataclass
class ProbeWorker:
    """Probes one container periodically for one kind of probe; see the module docstring.

    ``state`` is the thresholded result: True/False, or None for a startup probe that has not
    decided yet.  ``started`` is the container's "startup succeeded" gate: liveness and readiness
    workers wait for it, the startup worker sets it.
    """

    kind: ProbeKind
    container_name: str
    probe: Mapping[str, Any]
    prober: Prober
    on_result: ResultCallback
    started: asyncio.Event
    started_at: float  # when the container started, in ``clock`` time (initialDelaySeconds counts from it)
    on_event: EventCallback | None = None
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    timing: ProbeTiming = field(init=False)
    state: bool | None = field(init=False)
    message: str = field(init=False, default="")
    probes_run: int = field(init=False, default=0)
    done: bool = field(init=False, default=False)
    _last: bool | None = field(init=False, default=None)
    _run: int = field(init=False, default=0)
    _task: asyncio.Task[None] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.timing = ProbeTiming.from_probe(self.probe, self.kind)
        self.state = {"readiness": False, "liveness": True, "startup": None}[self.kind]

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            name = f"probe-{self.kind}-{self.container_name}"
            self._task = asyncio.get_running_loop().create_task(self.run(), name=name)
        return self._task

    async def stop(self) -> None:
        """Cancel the worker and wait until it has stopped; safe to call more than once."""
        if self._task is not None:
            await _cancel_all([self._task])

    async def run(self) -> None:
        try:
            if self.kind != "startup":
                await self.started.wait()  # no liveness/readiness before the startup probe passes
            delay = self.started_at + self.timing.initial_delay - self.clock()
            if delay > 0:
                await self.sleep(delay)
            next_at = self.clock()
            while not self.done:
                await self.probe_once()
                if self.done:
                    break
                # Like the kubelet's ticker: a fixed cadence, ticks missed by a slow probe are dropped.
                now = self.clock()
                next_at += self.timing.period
                while next_at <= now:
                    next_at += self.timing.period
                await self.sleep(next_at - now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s probe worker for container %s crashed", self.kind, self.container_name)

    async def probe_once(self) -> None:
        """Run the probe (retrying an unknown result) and apply the thresholds."""
        result = _unknown("not run")
        for _ in range(MAX_PROBE_RETRIES):
            result = await self.prober(self.probe)
            if result.outcome is not Outcome.UNKNOWN:
                break
        self.probes_run += 1
        if result.outcome is Outcome.UNKNOWN:
            log.info("%s probe for container %s errored: %s", self.kind, self.container_name, result.message)
            return  # a prober error: the kubelet throws the result away
        self._emit_event(result)
        ok = result.ok
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        threshold = self.timing.success_threshold if ok else self.timing.failure_threshold
        if self._run < threshold:
            return  # below threshold: the state stays as it is
        self.message = result.message
        if self.state != ok:
            self.state = ok
            self._deliver(ok, result.message)
        if self.kind == "startup" and ok:
            self.started.set()
            self.done = True  # started: this container's startup probe is finished
        elif self.kind != "readiness" and not ok:
            self.done = True  # the container gets restarted; the next one gets new workers

    def _emit_event(self, result: ProbeResult) -> None:
        if self.on_event is None or (result.ok and not result.warning):
            return
        reason, verb = ("ProbeWarning", "warning") if result.ok else ("Unhealthy", "failed")
        try:
            self.on_event(reason, self.container_name, f"{self.kind.capitalize()} probe {verb}: {result.message}")
        except Exception:
            log.exception("probe event callback failed")

    def _deliver(self, ok: bool, message: str) -> None:
        try:
            self.on_result(self.kind, self.container_name, ok, message)
        except Exception:
            log.exception("probe result callback failed for container %s", self.container_name)


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    tasks = [t for t in tasks if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        # Our own cancellation still propagates out of gather; the tasks' results do not.
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class _ContainerProbes:
    container_id: str
    started: asyncio.Event
    workers: dict[ProbeKind, ProbeWorker]


class ProbeManager:
    """The probe workers of one pod's containers.

    The pod worker calls :meth:`start_container` when a container has started (with its id;
    from inside the event loop), :meth:`stop_container` when it has exited or is being killed,
    :meth:`stop_liveness_and_startup` when the pod starts terminating, :meth:`close` when the
    pod is removed.  It reads :meth:`is_started` / :meth:`is_ready` for the container statuses
    after any ``on_result``.  ``pod_ip`` may be set later (probes read it each time).
    ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(self, runtime: ContainerRuntime, *, on_result: ResultCallback,
                 on_event: EventCallback | None = None, pod_ip: str | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.runtime = runtime
        self.on_result = on_result
        self.on_event = on_event
        self.pod_ip = pod_ip
        self.clock = clock
        self.sleep = sleep
        self._containers: dict[str, _ContainerProbes] = {}
        self._retired: set[asyncio.Task[None]] = set()  # cancelled, not yet awaited

    def start_container(self, container: Mapping[str, Any], container_id: str, *,
                        started_at: float | dt.datetime | None = None) -> None:
        """Start the workers for a container that is now running (replacing those of an
        earlier instance of it).  ``started_at``: when it started, in ``clock`` time or as an
        aware datetime (a restarted kubelet), default now."""
        name = str(container["name"])
        self._retire(name)
        if started_at is None:
            start = self.clock()
        elif isinstance(started_at, dt.datetime):
            start = self.clock() - max(0.0, (dt.datetime.now(dt.UTC) - started_at).total_seconds())
        else:
            start = float(started_at)
        ports = list(container.get("ports") or [])

        async def prober(probe: Mapping[str, Any]) -> ProbeResult:
            return await run_probe(probe, runtime=self.runtime, container_id=container_id, pod_ip=self.pod_ip,
                                   container_ports=ports)

        started = asyncio.Event()
        if not container.get("startupProbe"):
            started.set()
        workers: dict[ProbeKind, ProbeWorker] = {}
        for kind in PROBE_KINDS:
            probe = container.get(_SPEC_FIELD[kind])
            if probe:
                workers[kind] = ProbeWorker(kind, name, probe, prober, self.on_result, started, start,
                                            on_event=self.on_event, clock=self.clock, sleep=self.sleep)
        self._containers[name] = _ContainerProbes(container_id, started, workers)
        for w in workers.values():
            w.start()

    def stop_container(self, name: str) -> None:
        """The container exited (or is being killed): stop probing it; it is neither started nor
        ready any more.  Non-blocking (the workers are cancelled; :meth:`close` waits for them)."""
        self._retire(name)

    def stop_liveness_and_startup(self) -> None:
        """The pod is terminating: no more restarts from probes (readiness keeps running)."""
        for entry in self._containers.values():
            for kind in ("liveness", "startup"):
                if (w := entry.workers.pop(kind, None)) is not None:
                    self._cancel(w)

    async def close(self) -> None:
        """The pod is gone: stop every worker and wait until all have finished."""
        for name in list(self._containers):
            self._retire(name)
        tasks, self._retired = list(self._retired), set()
        await _cancel_all(tasks)

    def has(self, name: str) -> bool:
        """Whether the container is being probed (it has at least one probe and is running)."""
        entry = self._containers.get(name)
        return entry is not None and bool(entry.workers)

    def worker(self, name: str, kind: ProbeKind) -> ProbeWorker | None:
        entry = self._containers.get(name)
        return entry.workers.get(kind) if entry else None

    def is_started(self, name: str) -> bool:
        """containerStatuses[].started for a running container: its startup probe has succeeded
        (or it has none).  False for a container the manager does not track (not running)."""
        entry = self._containers.get(name)
        return entry is not None and entry.started.is_set()

    def is_ready(self, name: str) -> bool:
        """containerStatuses[].ready for a running container: started, and its readiness probe's
        state (a container without one is ready once started)."""
        entry = self._containers.get(name)
        if entry is None or not entry.started.is_set():
            return False
        w = entry.workers.get("readiness")
        return True if w is None else bool(w.state)

    def _retire(self, name: str) -> None:
        entry = self._containers.pop(name, None)
        if entry is None:
            return
        for w in entry.workers.values():
            self._cancel(w)

    def _cancel(self, w: ProbeWorker) -> None:
        if w._task is not None and not w._task.done():
            w._task.cancel()
            self._retired.add(w._task)
            w._task.add_done_callback(self._retired.discard)


__all__ = ["KUBE_VERSION", "MAX_OUTPUT", "PROBE_KINDS", "PROBE_USER_AGENT", "EventCallback", "Outcome",
           "ProbeError", "ProbeKind", "ProbeManager", "ProbeResult", "ProbeTiming", "ProbeWorker", "ResultCallback",
           "http_get", "http_headers", "http_url", "join_host_port", "resolve_port", "run_probe"]
