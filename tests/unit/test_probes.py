"""The kubelet's prober (run_probe, ProbeWorker thresholds, ProbeManager) and lifecycle hooks,
against a fake runtime for exec and real loopback servers for httpGet/tcpSocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pinnace.kubelet.hooks import format_pod, remaining_grace, run_hook
from pinnace.kubelet.probes import (
    PROBE_USER_AGENT,
    Outcome,
    ProbeManager,
    ProbeResult,
    ProbeWorker,
    resolve_port,
    run_probe,
)
from pinnace.kubelet.runtime.base import ExecResult

pytestmark = pytest.mark.timeout(10)

# ---------------------------------------------------------------------------- fakes and servers


@dataclass
class FakeRuntime:
    """exec_sync from scripts: per command name (argv[0]) a list of exit codes, the last one
    repeating; an exit code of None sleeps past the timeout, "error" raises (exec impossible)."""

    scripts: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, float]] = field(default_factory=list)  # (container_id, argv[0], clock time)
    clock: Callable[[], float] = time.monotonic
    output: bytes = b""
    timeouts: list[float] = field(default_factory=list)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> ExecResult:
        self.calls.append((container_id, cmd[0], self.clock()))
        self.timeouts.append(timeout)
        script = self.scripts.get(cmd[0], [0])
        n = sum(1 for c in self.calls if c[1] == cmd[0]) - 1
        code = script[min(n, len(script) - 1)]
        if code is None:
            await asyncio.sleep(timeout)
            raise TimeoutError
        if code == "error":
            raise RuntimeError("container is not running")
        return ExecResult(code, self.output, b"err" if code else b"")

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c[1] == name)


class ScaledTime:
    """A clock running ``factor`` times faster than real time: periodSeconds 1 is 10 ms."""

    def __init__(self, factor: float = 100) -> None:
        self.factor = factor
        self.t0 = time.monotonic()

    def clock(self) -> float:
        return (time.monotonic() - self.t0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.factor)


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    # Polling: the conditions are about fakes' counters, not anything with an event to wait on.
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


@dataclass
class Server:
    port: int
    requests: list[web.Request]


async def _serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # don't wait for /slow handlers
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def _app(requests: list[web.Request]) -> web.Application:
    async def status(request: web.Request) -> web.Response:
        requests.append(request)
        return web.Response(status=int(request.match_info["code"]), text=f"body {request.match_info['code']}")

    async def redirect(request: web.Request) -> web.Response:
        requests.append(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        requests.append(request)
        raise web.HTTPFound("/loop")

    async def slow(request: web.Request) -> web.Response:
        requests.append(request)
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        requests.append(request)
        return web.Response(body=b"x" * 100_000)

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    requests: list[web.Request] = []
    async for port in _serve(_app(requests)):
        yield Server(port, requests)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[Server]:
    # A self-signed certificate: the kubelet does not verify probe targets' certificates.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-pod")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    requests: list[web.Request] = []
    async for port in _serve(_app(requests), ctx):
        yield Server(port, requests)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def probe(spec: dict[str, Any], *, runtime: Any = None, ports: list[dict[str, Any]] | None = None) -> ProbeResult:
    return await run_probe(spec, runtime=runtime or FakeRuntime(), container_id="c1", pod_ip="127.0.0.1",
                           container_ports=ports)


# ---------------------------------------------------------------------------- run_probe: exec


async def test_exec_probe_exit_codes_and_output() -> None:
    rt = FakeRuntime({"check": [0, 1]}, output=b"out ")
    ok = await probe({"exec": {"command": ["check", "-x"]}}, runtime=rt)
    assert ok.outcome is Outcome.SUCCESS and ok.message == "out "
    bad = await probe({"exec": {"command": ["check"]}}, runtime=rt)
    assert bad.outcome is Outcome.FAILURE and bad.message == "out err"  # stdout then stderr
    assert rt.calls[0][:2] == ("c1", "check") and rt.timeouts[0] == 1  # timeoutSeconds defaults to 1


async def test_exec_probe_timeout_is_failure_and_runtime_error_unknown() -> None:
    rt = FakeRuntime({"hang": [None], "gone": ["error"]})
    t0 = time.monotonic()
    timed_out = await probe({"exec": {"command": ["hang", "arg"]}, "timeoutSeconds": 1}, runtime=rt)
    assert time.monotonic() - t0 < 2.5
    assert timed_out.outcome is Outcome.FAILURE and timed_out.message == 'command "hang arg" timed out'
    gone = await probe({"exec": {"command": ["gone"]}}, runtime=rt)
    assert gone.outcome is Outcome.UNKNOWN and "not running" in gone.message


async def test_exec_probe_output_capped_at_10k() -> None:
    rt = FakeRuntime(output=b"y" * 50_000)
    assert len((await probe({"exec": {"command": ["x"]}}, runtime=rt)).message) == 10 * 1024


# ---------------------------------------------------------------------------- run_probe: httpGet


@pytest.mark.parametrize(("code", "outcome"), [(200, "success"), (204, "success"), (399, "success"),
                                               (400, "failure"), (404, "failure"), (500, "failure")])
async def test_http_probe_status_codes(server: Server, code: int, outcome: str) -> None:
    result = await probe({"httpGet": {"path": f"/status/{code}", "port": server.port}})
    assert result.outcome == outcome
    if outcome == "failure":
        assert result.message == f"HTTP probe failed with statuscode: {code}"  # never the body


async def test_http_probe_headers_host_and_named_port(server: Server) -> None:
    ports = [{"name": "web", "containerPort": server.port, "protocol": "TCP"}]
    spec = {"httpGet": {"path": "status/200?q=1", "port": "web", "scheme": "HTTP",
                        "httpHeaders": [{"name": "X-Custom", "value": "a"}, {"name": "X-Custom", "value": "b"},
                                        {"name": "Host", "value": "example.test"}]}}
    result = await probe(spec, ports=ports)
    assert result.ok and result.message == "body 200"
    req = server.requests[-1]
    assert req.path == "/status/200" and req.query_string == "q=1"
    assert req.headers["User-Agent"] == PROBE_USER_AGENT == "kube-probe/1.32"
    assert req.headers["Accept"] == "*/*"
    assert req.headers.getall("X-Custom") == ["a", "b"]
    assert req.headers["Host"] == "example.test"


async def test_http_probe_overrides_user_agent_and_accept(server: Server) -> None:
    spec = {"httpGet": {"path": "/status/200", "port": server.port,
                        "httpHeaders": [{"name": "user-agent", "value": "mine"}, {"name": "Accept", "value": ""}]}}
    assert (await probe(spec)).ok
    req = server.requests[-1]
    assert req.headers["User-Agent"] == "mine" and "Accept" not in req.headers


async def test_http_probe_unknown_named_port_is_unknown() -> None:
    result = await probe({"httpGet": {"path": "/", "port": "nope"}}, ports=[{"name": "web", "containerPort": 80}])
    assert result.outcome is Outcome.UNKNOWN and result.message == "port nope not found"


async def test_http_probe_redirects(server: Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    # Same host: followed, the final status counts.
    assert (await probe({"httpGet": {"path": "/redirect?to=/status/200", "port": server.port}})).ok
    failed = await probe({"httpGet": {"path": f"/redirect?to={base}/status/503", "port": server.port}})
    assert failed.message == "HTTP probe failed with statuscode: 503"
    # Another host: not followed; the redirect itself is a success with a warning.
    away = await probe({"httpGet": {"path": "/redirect?to=http://127.0.0.2:1/x", "port": server.port}})
    assert away.ok and away.warning and away.message.startswith("Probe terminated redirects, Response body:")
    # A loop: Go's client gives up after 10 redirects.
    loop = await probe({"httpGet": {"path": "/loop", "port": server.port}})
    assert loop.outcome is Outcome.FAILURE and "stopped after 10 redirects" in loop.message
    assert sum(r.path == "/loop" for r in server.requests) == 11


async def test_http_probe_timeout_and_refused(server: Server) -> None:
    t0 = time.monotonic()
    slow = await probe({"httpGet": {"path": "/slow", "port": server.port}, "timeoutSeconds": 1})
    assert 0.9 < time.monotonic() - t0 < 2.5
    assert slow.outcome is Outcome.FAILURE and "context deadline exceeded" in slow.message
    refused = await probe({"httpGet": {"path": "/", "port": closed_port()}})
    assert refused.outcome is Outcome.FAILURE and refused.message.startswith('Get "http://127.0.0.1:')


async def test_http_probe_body_capped(server: Server) -> None:
    result = await probe({"httpGet": {"path": "/big", "port": server.port}})
    assert result.ok and len(result.message) == 10 * 1024


async def test_https_probe_skips_certificate_verification(tls_server: Server) -> None:
    result = await probe({"httpGet": {"path": "/status/200", "port": tls_server.port, "scheme": "HTTPS"}})
    assert result.ok, result.message


# ---------------------------------------------------------------------------- run_probe: tcp, grpc, ports


async def test_tcp_probe_open_and_closed_port() -> None:
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        port = srv.sockets[0].getsockname()[1]
        assert (await probe({"tcpSocket": {"port": port}})).ok
        named = await probe({"tcpSocket": {"port": "db"}}, ports=[{"name": "db", "containerPort": port}])
        assert named.ok
    finally:
        srv.close()
        await srv.wait_closed()
    closed = await probe({"tcpSocket": {"port": closed_port()}})
    assert closed.outcome is Outcome.FAILURE and "connection refused" in closed.message


async def test_grpc_and_missing_handler() -> None:
    grpc = await probe({"grpc": {"port": 9000}})
    assert grpc.outcome is Outcome.FAILURE and grpc.message == "grpc probes are not supported"
    assert (await probe({"periodSeconds": 3})).outcome is Outcome.UNKNOWN


def test_resolve_port() -> None:
    ports = [{"name": "http", "containerPort": 8080}, {"name": "9090", "containerPort": 1}]
    assert resolve_port(80, ports) == 80
    assert resolve_port("http", ports) == 8080
    assert resolve_port("9090", ports) == 1  # probes: the name first
    assert resolve_port("9090", ports, numeric_strings_first=True) == 9090  # hooks: the number first
    assert resolve_port("7070", []) == 7070
    with pytest.raises(Exception, match="invalid port number: 0"):
        resolve_port(0, ports)


# ---------------------------------------------------------------------------- workers


@dataclass
class Recorder:
    results: list[tuple[str, str, bool, str, int]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    manager: ProbeManager | None = None
    runtime: FakeRuntime | None = None

    def on_result(self, kind: str, name: str, ok: bool, message: str) -> None:
        # Remember how many probes of that kind had run when the state changed.
        n = self.runtime.count(kind) if self.runtime else -1
        self.results.append((kind, name, ok, message, n))

    def on_event(self, reason: str, name: str, message: str) -> None:
        self.events.append((reason, name, message))


def _container(**probes: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "busybox"}
    for kind, spec in probes.items():
        c[f"{kind}Probe"] = {"exec": {"command": [kind]}, "periodSeconds": 1, **spec}
    return c


def _manager(rt: FakeRuntime, rec: Recorder, t: ScaledTime) -> ProbeManager:
    rec.runtime = rt
    rt.clock = t.clock
    m = ProbeManager(rt, on_result=rec.on_result, on_event=rec.on_event, pod_ip="127.0.0.1",
                     clock=t.clock, sleep=t.sleep)
    rec.manager = m
    return m


async def test_readiness_thresholds() -> None:
    rt, rec, t = FakeRuntime({"readiness": [1, 0, 0, 1, 0, 1, 1, 0, 0]}), Recorder(), ScaledTime()
    m = _manager(rt, rec, t)
    m.start_container(_container(readiness={"successThreshold": 2, "failureThreshold": 2}), "c1")
    assert m.is_ready("app") is False and m.is_started("app") is True  # not ready until it succeeds
    await wait_for(lambda: rt.count("readiness") >= 9)
    await m.close()
    # F S S(ready) F S F F(not ready) S S(ready): only changes of the thresholded state are reported.
    assert [(ok, n) for _, _, ok, _, n in rec.results[:3]] == [(True, 3), (False, 7), (True, 9)]
    assert ("Unhealthy", "app", "Readiness probe failed: err") in rec.events


async def test_liveness_failure_reported_once_then_worker_stops() -> None:
    rt, rec, t = FakeRuntime({"liveness": [0, 1, 1, 0, 1, 1, 1, 0]}), Recorder(), ScaledTime()
    m = _manager(rt, rec, t)
    m.start_container(_container(liveness={"failureThreshold": 3}), "c1")
    await wait_for(lambda: rec.results != [])
    assert rec.results == [("liveness", "app", False, "err", 7)]
    await asyncio.sleep(0.1)  # ~10 periods: the worker is on hold until a new container
    assert rt.count("liveness") == 7 and m.worker("app", "liveness").done  # type: ignore[union-attr]
    # The kubelet restarts the container: new id, new worker starting from success.
    m.start_container(_container(liveness={"failureThreshold": 3}), "c2")
    await wait_for(lambda: any(c[0] == "c2" for c in rt.calls))
    assert m.worker("app", "liveness").state is True  # type: ignore[union-attr]
    await m.close()


async def test_startup_gates_liveness_and_readiness() -> None:
    rt, rec, t = FakeRuntime({"startup": [1, 1, 0], "liveness": [0], "readiness": [0]}), Recorder(), ScaledTime()
    m = _manager(rt, rec, t)
    m.start_container(_container(startup={"failureThreshold": 5}, liveness={}, readiness={}), "c1")
    assert not m.is_started("app") and not m.is_ready("app")
    await wait_for(lambda: m.is_ready("app"))
    first_other = min(c[2] for c in rt.calls if c[1] != "startup")
    startup_success = [c[2] for c in rt.calls if c[1] == "startup"][2]
    assert first_other >= startup_success  # nothing but startup ran before it succeeded
    assert [r[:3] for r in rec.results] == [("startup", "app", True), ("readiness", "app", True)]
    await asyncio.sleep(0.05)
    assert rt.count("startup") == 3  # startup probing ends once the container has started
    await m.close()


async def test_startup_failure_kills_before_liveness() -> None:
    rt, rec, t = FakeRuntime({"startup": [1]}), Recorder(), ScaledTime()
    m = _manager(rt, rec, t)
    m.start_container(_container(startup={"failureThreshold": 3}, liveness={}), "c1")
    await wait_for(lambda: rec.results != [])
    await asyncio.sleep(0.05)
    assert [(*r[:3], r[4]) for r in rec.results] == [("startup", "app", False, 3)]
    assert rt.count("liveness") == 0 and not m.is_started("app")
    await m.close()


async def test_initial_delay_counts_from_container_start() -> None:
    rt, rec, t = FakeRuntime(), Recorder(), ScaledTime()
    m = _manager(rt, rec, t)
    start = t.clock()
    m.start_container(_container(readiness={"initialDelaySeconds": 5}), "c1")
    await wait_for(lambda: rt.count("readiness") >= 1)
    assert rt.calls[0][2] - start >= 5
    await m.close()
    # A container that started long ago (a restarted kubelet) is probed at once.
    rt2, rec2, t2 = FakeRuntime(), Recorder(), ScaledTime(factor=1)
    m2 = _manager(rt2, rec2, t2)
    m2.start_container(_container(readiness={"initialDelaySeconds": 30}), "c1",
                       started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    await wait_for(lambda: m2.is_ready("app"), timeout=1)
    await m2.close()


async def test_unknown_results_are_retried_and_ignored() -> None:
    rt, rec, t = FakeRuntime({"readiness": ["error", "error", "error", "error", "error", "error", 0]}), Recorder(), \
        ScaledTime()
    m = _manager(rt, rec, t)
    m.start_container(_container(readiness={}), "c1")
    await wait_for(lambda: rec.results != [])
    # Two probes of three attempts each were thrown away; the third probe's first attempt succeeded.
    assert rec.results[0][2] is True and rec.results[0][4] == 7 and rec.events == []
    await m.close()


async def test_worker_rejects_success_threshold_for_liveness() -> None:
    async def prober(_: Any) -> ProbeResult:
        return ProbeResult(Outcome.SUCCESS)

    for kind in ("liveness", "startup"):
        with pytest.raises(ValueError, match="successThreshold must be 1"):
            ProbeWorker(kind, "app", {"exec": {"command": ["x"]}, "successThreshold": 2},  # type: ignore[arg-type]
                        prober, lambda *a: None, asyncio.Event(), 0.0)


async def test_stop_and_close_cancel_cleanly_during_a_probe() -> None:
    rt, rec, t = FakeRuntime({"liveness": [None], "readiness": [None]}), Recorder(), ScaledTime(factor=1)
    m = _manager(rt, rec, t)
    m.start_container(_container(liveness={"timeoutSeconds": 30}, readiness={"timeoutSeconds": 30}), "c1")
    await wait_for(lambda: len(rt.calls) == 2)  # both are inside a 30 s exec now
    tasks = [m.worker("app", k)._task for k in ("liveness", "readiness")]  # type: ignore[union-attr]
    t0 = time.monotonic()
    m.stop_liveness_and_startup()
    assert m.has("app") and m.worker("app", "liveness") is None
    m.stop_container("app")  # non-blocking, as the pod worker calls it
    assert not m.has("app") and not m.is_ready("app") and not m.is_started("app")
    await m.close()  # waits for the cancelled workers
    assert all(task.done() for task in tasks) and time.monotonic() - t0 < 0.5  # type: ignore[union-attr]
    assert rec.results == []


async def test_cancelling_the_caller_is_not_swallowed() -> None:
    rt, rec, t = FakeRuntime({"readiness": [None]}), Recorder(), ScaledTime(factor=1)
    m = _manager(rt, rec, t)
    m.start_container(_container(readiness={"timeoutSeconds": 30}), "c1")
    await wait_for(lambda: len(rt.calls) == 1)
    closer = asyncio.create_task(m.close())
    await asyncio.sleep(0)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    worker = m.worker("app", "readiness")
    assert worker is None  # retired already


# ---------------------------------------------------------------------------- hooks

POD = format_pod("web", "default", "uid-1")
CONTAINER = {"name": "app", "ports": [{"name": "http", "containerPort": 0}]}


async def hook(handler: dict[str, Any], *, kind: str = "postStart", runtime: Any = None, **kw: Any) -> Any:
    return await run_hook(handler, hook=kind, runtime=runtime or FakeRuntime(),  # type: ignore[arg-type]
                          container_id="c1", container=kw.pop("container", CONTAINER), pod=POD,
                          pod_ip="127.0.0.1", **kw)


async def test_exec_hook_success_and_failure_messages() -> None:
    rt = FakeRuntime({"fail": [3]}, output=b"oops ")
    assert (await hook({"exec": {"command": ["ok"]}}, runtime=rt)).ok
    assert rt.timeouts == [0]  # postStart without a deadline: no exec timeout (CRI's 0)
    res = await hook({"exec": {"command": ["fail", "now"]}}, runtime=rt)
    assert not res.ok and not res.timed_out
    assert res.message == ('Exec lifecycle hook ([fail now]) for Container "app" in Pod "web_default(uid-1)" failed'
                           ' - error: command \'fail now\' exited with 3: err, message: "oops err"')
    assert (res.event_reason, res.event_message) == ("FailedPostStartHook", "PostStartHook failed")


async def test_prestop_exec_bounded_by_deadline() -> None:
    rt = FakeRuntime({"drain": [None]})
    t0 = time.monotonic()
    res = await hook({"exec": {"command": ["drain"]}}, kind="preStop", runtime=rt, deadline=t0 + 0.2)
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert res.timed_out and (res.event_reason, res.event_message) == ("FailedPreStopHook", "PreStopHook failed")
    assert 'command "drain" timed out' in res.message
    # The grace period is used up: the hook is not run at all, stop gets the 2 s minimum.
    late = await hook({"exec": {"command": ["drain"]}}, kind="preStop", runtime=rt, deadline=time.monotonic() - 1)
    assert late.timed_out and rt.count("drain") == 1
    assert remaining_grace(time.monotonic() - 1) == 2.0


async def test_http_hook_ignores_status_and_reports_transport_errors(server: Server) -> None:
    container = {"name": "app", "ports": [{"name": "http", "containerPort": server.port}]}
    res = await hook({"httpGet": {"path": "/status/500", "port": "http"}}, container=container)
    assert res.ok  # handlers.go only fails on a failed request
    assert server.requests[-1].headers["User-Agent"] == "kube-lifecycle/1.32"
    refused = await hook({"httpGet": {"path": "/stop", "port": closed_port()}}, kind="preStop")
    assert not refused.ok and refused.message.startswith(
        'HTTP lifecycle hook (/stop) for Container "app" in Pod "web_default(uid-1)" failed - error: Get "http://')


async def test_http_hook_https_falls_back_to_http_and_deadline(server: Server) -> None:
    res = await hook({"httpGet": {"path": "/status/200", "port": server.port, "scheme": "HTTPS",
                                  "httpHeaders": [{"name": "Authorization", "value": "secret"}]}})
    assert res.ok
    assert server.requests[-1].scheme == "http" and "Authorization" not in server.requests[-1].headers
    t0 = time.monotonic()
    slow = await hook({"httpGet": {"path": "/slow", "port": server.port}}, kind="preStop", deadline=t0 + 0.2)
    assert slow.timed_out and time.monotonic() - t0 < 1.0


async def test_sleep_hook() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    assert (await hook({"sleep": {"seconds": 7}}, kind="preStop", sleep=fake_sleep)).ok
    assert slept == [7]
    t0 = time.monotonic()
    cut = await hook({"sleep": {"seconds": 30}}, kind="preStop", deadline=t0 + 0.1)
    assert time.monotonic() - t0 < 1.0 and cut.timed_out
    assert cut.message == ('Sleep lifecycle hook (30) for Container "app" in Pod "web_default(uid-1)" failed'
                           " - error: container terminated before sleep hook finished")


async def test_invalid_handler() -> None:
    res = await hook({"tcpSocket": {"port": 80}})
    assert not res.ok and res.message.startswith("Cannot run handler: invalid handler:")
