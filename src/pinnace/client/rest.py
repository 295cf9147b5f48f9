"""Async REST client for the Kubernetes API (the client-go analogue's lowest layer).

Configured from a kubeconfig or, inside a pod, from the service-account files
(:meth:`ClientConfig.load` picks); answers errors as :class:`ApiException`
carrying the Status ``reason``; retries 429/5xx and connection loss with backoff
for idempotent requests.  One :class:`RestClient` owns one aiohttp session (one
connection pool) and is meant to be shared by every informer and controller of
a process.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import yaml

log = logging.getLogger(__name__)


class ApiException(Exception):
    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.body = status, reason, message, body or {}


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(Exception):
    """No usable client configuration (no kubeconfig and not inside a pod)."""


@dataclass
class ClientConfig:
    server: str
    ssl: ssl.SSLContext | bool
    token: str | None = None
    # A file holding the bearer token; re-read whenever it changes, because the
    # kubelet rotates projected service-account tokens (they expire in ~1h).
    token_file: Path | None = None
    # The pod's own namespace when configured in-cluster.
    namespace: str | None = None

    def __post_init__(self) -> None:
        self._token_mtime: float | None = None

    def bearer_token(self) -> str | None:
        if self.token_file is None:
            return self.token
        try:
            mtime = self.token_file.stat().st_mtime
            if mtime != self._token_mtime:
                self.token = self.token_file.read_text().strip()
                self._token_mtime = mtime
        except OSError as e:
            # Keep using the token we have; the file may be mid-rotation.
            log.warning("cannot read token file %s: %s", self.token_file, e)
        return self.token

    @classmethod
    def in_cluster(cls, sa_dir: str | Path = SERVICE_ACCOUNT_DIR,
                   environ: dict[str, str] | None = None) -> ClientConfig:
        """Configuration for a process running in a pod: the API server address from
        ``KUBERNETES_SERVICE_HOST``/``_PORT``, trust from ``ca.crt``, identity from ``token``."""
        env = os.environ if environ is None else environ
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        sa = Path(sa_dir)
        if not host or not port:
            raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                              "must be set")
        if not (sa / "token").is_file():
            raise ConfigError(f"not running in a cluster: {sa / 'token'} does not exist")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 service address
        sslctx = ssl.create_default_context()
        if (sa / "ca.crt").is_file():
            sslctx.load_verify_locations(str(sa / "ca.crt"))
        ns_file = sa / "namespace"
        namespace = ns_file.read_text().strip() if ns_file.is_file() else None
        cfg = cls(server=f"https://{host}:{port}", ssl=sslctx, token_file=sa / "token", namespace=namespace)
        cfg.bearer_token()
        return cfg

    @classmethod
    def load(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> ClientConfig:
        """The usual resolution order: an explicit kubeconfig, then ``$KUBECONFIG``
        (its first entry), then in-cluster service-account configuration."""
        if kubeconfig:
            return cls.from_kubeconfig(kubeconfig, context)
        env = os.environ.get("KUBECONFIG", "")
        first = next((p for p in env.split(os.pathsep) if p), "")
        if first:
            return cls.from_kubeconfig(first, context)
        return cls.in_cluster()

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> ClientConfig:
        cfg = yaml.safe_load(Path(path).read_text())
        ctx_name = context or cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        sslctx: ssl.SSLContext | bool = True
        if cluster["server"].startswith("https"):
            sslctx = ssl.create_default_context()
            if cluster.get("certificate-authority-data"):
                sslctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
            elif cluster.get("certificate-authority"):
                sslctx.load_verify_locations(cluster["certificate-authority"])
            if cluster.get("insecure-skip-tls-verify"):
                sslctx.check_hostname = False
                sslctx.verify_mode = ssl.CERT_NONE
            cert, key = user.get("client-certificate-data"), user.get("client-key-data")
            if cert and key:
                # ssl only loads key pairs from files: write them to a private temp dir.
                tmp = Path(tempfile.mkdtemp(prefix="pinnace-client-"))
                (tmp / "c.crt").write_bytes(base64.b64decode(cert))
                (tmp / "c.key").write_bytes(base64.b64decode(key))
                (tmp / "c.key").chmod(0o600)
                sslctx.load_cert_chain(str(tmp / "c.crt"), str(tmp / "c.key"))
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()
            elif user.get("client-certificate") and user.get("client-key"):
                sslctx.load_cert_chain(user["client-certificate"], user["client-key"])
        token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
        return cls(server=cluster["server"].rstrip("/"), ssl=sslctx, token=user.get("token"), token_file=token_file)


def resource_path(api_version: str, plural: str, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    path = base + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    if sub:
        path += f"/{sub}"
    return path


def _query(params: dict[str, Any]) -> str:
    # Booleans as the API spells them ("true", not Python's "True"); unset values dropped.
    clean = {k: (("true" if v else "false") if isinstance(v, bool) else v)
             for k, v in params.items() if v is not None and v != ""}
    return urlencode(clean)


class RestClient:
    """The API client.  Safe to share: all callers (every informer's list and
    long-running watch, every controller's writes) use its two connection pools.

    Requests share a small pool (``max_connections``): over HTTP/1.1 a burst of
    concurrent requests queues for those connections instead of opening (and
    TLS-handshaking, ~2 ms of CPU on each side) one per request.  Each open watch
    holds its connection for its lifetime, so watches get a pool of their own
    without a limit, and can never starve requests or each other."""

    RETRIES = 5

    def __init__(self, config: ClientConfig, user_agent: str = "pinnace", max_connections: int = 16):
        self.config = config
        self.user_agent = user_agent
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, user_agent: str = "pinnace") -> RestClient:
        return cls(ClientConfig.from_kubeconfig(path), user_agent)

    @classmethod
    def load(cls, kubeconfig: str | Path | None = None, user_agent: str = "pinnace") -> RestClient:
        return cls(ClientConfig.load(kubeconfig), user_agent)

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        conn = aiohttp.TCPConnector(ssl=self.config.ssl, limit=limit)
        return aiohttp.ClientSession(headers=headers, connector=conn)

    # Both created lazily so they bind to the running loop; no await between the
    # check and the assignment, so concurrent first users share one session.
    @property
    def session(self) -> aiohttp.ClientSession:
        """The session for requests (a bounded pool)."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(self.max_connections)
        return self._session

    @property
    def watch_session(self) -> aiohttp.ClientSession:
        """The session for watches and other long-lived streams (no limit: see the class)."""
        if self._watch_session is None or self._watch_session.closed:
            self._watch_session = self._new_session(0)
        return self._watch_session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        # Per request rather than per session, so a rotated token takes effect at once.
        headers = {}
        token = self.config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        url = self.config.server + path
        if params:
            url += "?" + _query(params)
        data = None if body is None else orjson.dumps(body)
        idempotent = method in ("GET", "PUT", "DELETE")
        for attempt in range(self.RETRIES):
            try:
                async with self.session.request(method, url, data=data,
                                                headers=self._headers(content_type)) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        return orjson.loads(raw) if raw else None
                    err = _exception(resp.status, raw)
                    retry = resp.status == 429 or (resp.status >= 500 and idempotent)
                    if not retry or attempt == self.RETRIES - 1:
                        raise err
                    delay = float(resp.headers.get("Retry-After", 0) or 0) or _backoff(attempt)
            except (TimeoutError, aiohttp.ClientConnectionError):
                if attempt == self.RETRIES - 1:
                    raise
                delay = _backoff(attempt)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- verbs ---------------------------------------------------------------------------

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        return await self.request("GET", resource_path(api_version, plural, namespace, name))

    async def list(self, api_version: str, plural: str, namespace: str = "", **params: Any) -> dict:
        return await self.request("GET", resource_path(api_version, plural, namespace), params=params)

    async def create(self, api_version: str, plural: str, obj: dict, namespace: str = "") -> dict:
        return await self.request("POST", resource_path(api_version, plural, namespace), body=obj)

    async def update(self, api_version: str, plural: str, obj: dict, namespace: str = "", sub: str = "") -> dict:
        name = obj["metadata"]["name"]
        return await self.request("PUT", resource_path(api_version, plural, namespace, name, sub), body=obj)

    async def patch(self, api_version: str, plural: str, name: str, patch: Any, namespace: str = "",
                    patch_type: str = "merge", sub: str = "") -> dict:
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return await self.request("PATCH", resource_path(api_version, plural, namespace, name, sub), body=patch,
                                  content_type=ctype)

    async def delete(self, api_version: str, plural: str, name: str, namespace: str = "",
                     **options: Any) -> dict:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
        return await self.request("DELETE", resource_path(api_version, plural, namespace, name), body=body)

    async def delete_collection(self, api_version: str, plural: str, namespace: str = "", **params: Any) -> dict:
        return await self.request("DELETE", resource_path(api_version, plural, namespace), params=params)

    async def watch(self, api_version: str, plural: str, namespace: str = "", **params: Any
                    ) -> AsyncIterator[dict]:
        """Yield watch events ({"type", "object"}) until the server closes the stream.

        BOOKMARK events (with ``allowWatchBookmarks=True``) are yielded like any
        other; their object carries only ``metadata.resourceVersion``.  An ERROR
        event carrying a 410 Status (the requested resourceVersion is older than
        the server's history) raises ``ApiException(410, "Expired", ...)`` so the
        caller relists; other ERROR events are yielded.
        """
        params = {**params, "watch": True}
        url = self.config.server + resource_path(api_version, plural, namespace) + "?" + _query(params)
        # The server ends the watch after timeoutSeconds; allow a margin beyond that
        # so a silently dead connection cannot hang the caller forever.
        try:
            total: float | None = float(params["timeoutSeconds"]) + 30.0 if params.get("timeoutSeconds") else None
        except (TypeError, ValueError):
            total = None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=30.0, sock_read=None)
        async with self.watch_session.get(url, timeout=timeout, headers=self._headers()) as resp:
            if resp.status >= 400:
                raise _exception(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event = orjson.loads(line)
                        _raise_expired(event)
                        yield event
            if buf.strip():
                event = orjson.loads(buf)
                _raise_expired(event)
                yield event


def _raise_expired(event: dict) -> None:
    if event.get("type") != "ERROR":
        return
    status = event.get("object") or {}
    if status.get("code") == 410:
        raise ApiException(410, status.get("reason") or "Expired", status.get("message", ""), status)


def _exception(status: int, raw: bytes) -> ApiException:
    try:
        body = orjson.loads(raw)
        return ApiException(status, body.get("reason", ""), body.get("message", ""), body)
    except (orjson.JSONDecodeError, AttributeError):
        return ApiException(status, "", raw[:500].decode(errors="replace"))


def _backoff(attempt: int) -> float:
    return min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
