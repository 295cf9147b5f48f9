"""Async REST client for the Kubernetes API (the client-go analogue's lowest layer).

Configured from a kubeconfig; answers errors as :class:`ApiException` carrying
the Status ``reason``; retries 429/5xx and connection loss with backoff for
idempotent requests.
"""

from __future__ import annotations

import asyncio
import base64
import logging
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


@dataclass
class ClientConfig:
    server: str
    ssl: ssl.SSLContext | bool
    token: str | None = None

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
        return cls(server=cluster["server"].rstrip("/"), ssl=sslctx, token=user.get("token"))


def resource_path(api_version: str, plural: str, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    path = base + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    if sub:
        path += f"/{sub}"
    return path


class RestClient:
    RETRIES = 5

    def __init__(self, config: ClientConfig, user_agent: str = "pinnace"):
        self.config = config
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, user_agent: str = "pinnace") -> RestClient:
        return cls(ClientConfig.from_kubeconfig(path), user_agent)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            conn = aiohttp.TCPConnector(ssl=self.config.ssl, limit=100)
            self._session = aiohttp.ClientSession(headers=headers, connector=conn)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        url = self.config.server + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None and v != ""})
        data = None if body is None else orjson.dumps(body)
        idempotent = method in ("GET", "PUT", "DELETE")
        for attempt in range(self.RETRIES):
            try:
                async with self.session.request(method, url, data=data,
                                                headers={"Content-Type": content_type}) as resp:
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
        """Yield watch events ({"type", "object"}) until the server closes the stream."""
        params = {**params, "watch": "true"}
        url = self.config.server + resource_path(api_version, plural, namespace) + "?" + urlencode(params)
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status >= 400:
                raise _exception(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield orjson.loads(line)


def _exception(status: int, raw: bytes) -> ApiException:
    try:
        body = orjson.loads(raw)
        return ApiException(status, body.get("reason", ""), body.get("message", ""), body)
    except (orjson.JSONDecodeError, AttributeError):
        return ApiException(status, "", raw[:500].decode(errors="replace"))


def _backoff(attempt: int) -> float:
    return min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
