"""``pods/log``, ``pods/exec``, ``pods/attach`` and ``pods/portforward``: the API server
finds the pod's node and relays the kubelet's ``/containerLogs`` (streamed chunk by
chunk, so ``kubectl logs -f`` follows), ``/exec``, ``/attach`` and ``/portForward``
(WebSockets, message by message, in the subprotocol the kubelet picked from those the
client offered;
port-forward's is ``SPDY/3.1+portforward.k8s.io``, SPDY frames tunnelled in binary
messages as kubectl 1.31+ sends them).  It calls the kubelet over HTTPS
with its kubelet-client certificate and checks the kubelet's serving certificate
against the cluster CA."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from . import errors
from .registry import Registry

log = logging.getLogger(__name__)

DEFAULT_KUBELET_PORT = 10250
SUBRESOURCES = ("log", "exec", "attach", "portforward")
# PodExecOptions / PodAttachOptions query parameters passed on (the kubelet also takes the old names).
STREAM_FLAGS = ("stdin", "stdout", "stderr", "tty", "input", "output", "error")
# PodLogOptions query parameters passed on to the kubelet, which takes the same names.
FORWARDED = ("follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes", "stream")
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}


def _names(containers: list[dict]) -> str:
    return " ".join(c.get("name", "") for c in containers)


def choose_container(pod: dict, name: str, requested: str) -> str:
    """The container to read, with Kubernetes' messages (pkg/registry/core/pod LogLocation)."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    init = spec.get("initContainers") or []
    if not requested:
        if len(containers) == 1:
            return containers[0].get("name", "")
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        msg = f"a container name must be specified for pod {name}, choose one of: [{_names(containers)}]"
        if init:
            msg += f" or one of the init containers: [{_names(init)}]"
        raise errors.bad_request(msg)
    every = containers + init + (spec.get("ephemeralContainers") or [])
    if not any(c.get("name") == requested for c in every):
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def kubelet_address(node: dict) -> tuple[str, int]:
    """Where the node's kubelet listens: InternalIP (else Hostname) and the advertised port."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = ""
    for kind in ("InternalIP", "Hostname"):
        host = next((a.get("address", "") for a in addresses if a.get("type") == kind and a.get("address")), "")
        if host:
            break
    port = (((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
            or DEFAULT_KUBELET_PORT)
    if not host:
        name = (node.get("metadata") or {}).get("name", "")
        raise errors.ApiError(500, "InternalError", f'no preferred addresses found; known addresses: {addresses}'
                              if addresses else f'node "{name}" has no addresses')
    return host, int(port)


def validate_query(q: Any, pod_name: str) -> None:
    """PodLogOptions validation (422, as Kubernetes answers)."""
    causes = []
    for field, minimum in (("tailLines", 0), ("limitBytes", 1), ("sinceSeconds", 1)):
        raw = q.get(field, "")
        if raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None
        if value < minimum:
            causes.append({"reason": "FieldValueInvalid", "field": field,
                           "message": f"Invalid value: {value}: must be greater than or equal to {minimum}"})
    if q.get("sinceSeconds") and q.get("sinceTime"):
        causes.append({"reason": "FieldValueForbidden", "field": "",
                       "message": "at most one of `sinceTime` or `sinceSeconds` may be specified"})
    if causes:
        raise errors.invalid("PodLogOptions", "", pod_name, causes)


class PodProxy:
    """Streams pod subresources served by kubelets.  Unconfigured (no client certificate),
    it answers 503."""

    def __init__(self, registry: Registry, client_cert: Path | None = None, client_key: Path | None = None,
                 kubelet_ca: Path | None = None):
        self.registry = registry
        self.client_cert, self.client_key, self.kubelet_ca = client_cert, client_key, kubelet_ca
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[bool, ssl.SSLContext] = {}
        self._closing = asyncio.Event()

    @property
    def configured(self) -> bool:
        return bool(self.client_cert and self.client_key)

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        # Without --kubelet-certificate-authority the kubelet's serving certificate is not
        # checked, as kube-apiserver does: joined nodes serve self-signed certificates.
        verify = verify and self.kubelet_ca is not None
        if verify not in self._ssl:
            ctx = ssl.create_default_context(cafile=str(self.kubelet_ca) if self.kubelet_ca else None)
            if not verify:  # insecureSkipTLSVerifyBackend: the kubelet's identity is not checked
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
            self._ssl[verify] = ctx
        return self._ssl[verify]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No total timeout: followed logs stream for as long as the client stays.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), auto_decompress=False)
        return self._session

    async def close(self) -> None:
        """Ends open streams (at their next check) and the kubelet connections."""
        self._closing.set()
        if self._session is not None:
            await self._session.close()

    async def serve(self, request: web.Request, subresource: str, namespace: str, name: str) -> web.StreamResponse:
        if subresource == "log":
            if request.method != "GET":
                raise errors.method_not_allowed("only GET is allowed on pods/log")
            return await self.logs(request, namespace, name)
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(f"only GET and POST are allowed on pods/{subresource}")
        if subresource == "portforward":
            return await self.port_forward(request, namespace, name)
        if subresource == "attach":
            return await self.attach(request, namespace, name)
        return await self.exec(request, namespace, name)

    async def _locate(self, namespace: str, name: str, requested: str | None) -> tuple[dict, str, str]:
        """The pod, the container (None: none wanted), and the kubelet's base URL."""
        pods = self.registry.resources.get("", "v1", "pods")
        nodes = self.registry.resources.get("", "v1", "nodes")
        assert pods is not None and nodes is not None
        pod = await self.registry.get(pods, namespace, name)
        container = choose_container(pod, name, requested) if requested is not None else ""
        node_name = (pod.get("spec") or {}).get("nodeName", "")
        if not node_name:
            raise errors.bad_request(f'pod "{name}" is not scheduled to a node yet')
        if not self.configured:
            raise errors.ApiError(503, "ServiceUnavailable", "kubelet client certificate not configured")
        node = await self.registry.get(nodes, "", node_name)
        host, port = kubelet_address(node)
        if _is_ipv6(host):
            host = f"[{host}]"
        return pod, container, f"https://{host}:{port}"

    async def logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        q = request.query
        validate_query(q, name)
        _, container, base = await self._locate(namespace, name, q.get("container", ""))
        params = {k: q[k] for k in FORWARDED if q.get(k, "") != ""}
        url = f"{base}/containerLogs/{_path(namespace, name, container)}"
        verify = q.get("insecureSkipTLSVerifyBackend", "").lower() not in ("true", "1")
        return await self._proxy(request, url, params, verify, name)

    async def exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            raise errors.bad_request("you must specify at least 1 command")
        return await self._remote_command(request, namespace, name, "exec", command)

    async def attach(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        return await self._remote_command(request, namespace, name, "attach", [])

    async def _remote_command(self, request: web.Request, namespace: str, name: str, what: str,
                              command: list[str]) -> web.StreamResponse:
        """pods/exec and pods/attach: the same options and protocols (v5/v4.channel.k8s.io)."""
        q = request.query
        pod, container, base = await self._locate(namespace, name, q.get("container", ""))
        phase = (pod.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            doing = "exec into" if what == "exec" else "attach"
            raise errors.bad_request(f"cannot {doing} a container in a completed pod; current phase is {phase}")
        if not web.WebSocketResponse().can_prepare(request).ok:
            # kubectl tries a WebSocket first and falls back to SPDY, which is not served here.
            raise errors.bad_request(f"Upgrade request required: pods/{what} is served over WebSocket "
                                     "(v5.channel.k8s.io, v4.channel.k8s.io)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        params = [(k, v) for k in STREAM_FLAGS for v in q.getall(k, [])] + [("command", c) for c in command]
        url = f"{base.replace('https://', 'wss://', 1)}/{what}/{_path(namespace, name, container)}"
        return await self._relay_websocket(request, url, params, offered, what)

    async def port_forward(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod, _, base = await self._locate(namespace, name, None)
        phase = (pod.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            raise errors.bad_request(f"cannot port-forward to a completed pod; current phase is {phase}")
        if not web.WebSocketResponse().can_prepare(request).ok:
            # kubectl 1.31+ tries this WebSocket first; older ones (and a failed WebSocket) use a SPDY upgrade.
            raise errors.bad_request("Upgrade request required: pods/portforward is served over WebSocket "
                                     "(SPDY/3.1+portforward.k8s.io)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        params = [("port", v) for v in request.query.getall("ports", [])]
        url = f"{base.replace('https://', 'wss://', 1)}/portForward/{_path(namespace, name)}"
        return await self._relay_websocket(request, url, params, offered, "port-forward")

    async def _relay_websocket(self, request: web.Request, url: str, params: list[tuple[str, str]],
                               offered: list[str], what: str) -> web.StreamResponse:
        try:
            kws = await self._client().ws_connect(url, params=params, protocols=offered, ssl=self._ssl_context(True),
                                                  heartbeat=None, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as e:
            raise errors.ApiError(e.status if e.status in _REASONS else 500, _REASONS.get(e.status, "InternalError"),
                                  f"the kubelet refused the {what} upgrade: {e.message}") from None
        except (aiohttp.ClientError, ssl.SSLError, OSError) as e:
            raise errors.ApiError(500, "InternalError", f'Get "{url}": {e}') from None
        async with kws:
            # Answer the client with the subprotocol the kubelet chose from the client's offer.
            ws = web.WebSocketResponse(protocols=(kws.protocol,) if kws.protocol else (), heartbeat=None,
                                       max_msg_size=0)
            await ws.prepare(request)
            await _relay(ws, kws, self._closing)
        return ws

    async def _proxy(self, request: web.Request, url: str, params: dict[str, str], verify: bool,
                     name: str) -> web.StreamResponse:
        try:
            kresp = await self._client().get(url, params=params, ssl=self._ssl_context(verify))
        except (aiohttp.ClientError, ssl.SSLError, OSError) as e:
            # As Kubernetes reports a failed kubelet dial: the Go-style request line and the cause.
            raise errors.ApiError(500, "InternalError", f'Get "{url}": {e}') from None
        async with kresp:
            if kresp.status != 200:
                raise _kubelet_error(kresp.status, await kresp.content.read(64 * 1024), name)
            resp = web.StreamResponse(headers={"Content-Type": kresp.headers.get("Content-Type", "text/plain")})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                while True:
                    try:
                        async with asyncio.timeout(1.0):  # wake up to notice a departed client
                            chunk = await kresp.content.readany()
                    except TimeoutError:
                        transport = request.transport
                        if self._closing.is_set() or transport is None or transport.is_closing():
                            break
                        continue
                    if not chunk:
                        await resp.write_eof()
                        break
                    await resp.write(chunk)
            return resp


def _path(*parts: str) -> str:
    return "/".join(quote(s, safe="") for s in parts)


async def _relay(client: web.WebSocketResponse, kubelet: aiohttp.ClientWebSocketResponse,
                 closing: asyncio.Event) -> None:
    """Messages both ways until either side closes; then the other is closed too."""

    async def up() -> None:
        async for msg in client:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await kubelet.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await kubelet.send_str(msg.data)

    async def down() -> None:
        async for msg in kubelet:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_str(msg.data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down()), asyncio.create_task(closing.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await kubelet.close()
            await client.close()


def _kubelet_error(code: int, body: bytes, name: str) -> errors.ApiError:
    """A kubelet refusal as a Status: its own Status if it sent one, else its text."""
    try:
        status = orjson.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return errors.ApiError(code, status.get("reason") or _REASONS.get(code, "InternalError"),
                                   status.get("message", ""), status.get("details"))
    except orjson.JSONDecodeError:
        pass
    message = body.decode(errors="replace").strip() or f"the kubelet answered {code} ( pods/log {name})"
    return errors.ApiError(code if code in _REASONS else 500, _REASONS.get(code, "InternalError"), message)


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


__all__ = ["SUBRESOURCES", "PodProxy", "choose_container", "kubelet_address", "validate_query"]
