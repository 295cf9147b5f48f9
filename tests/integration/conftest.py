"""An in-process API server on a temp SQLite file, and an HTTPS client for it."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from pinnace.apiserver.server import ApiServer, ApiServerConfig
from pinnace.pki import server_pki, write_kubeconfig


@dataclass
class Api:
    server: ApiServer
    session: aiohttp.ClientSession
    base: str
    kubeconfig: Path

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   content_type: str = "application/json", headers: dict[str, str] | None = None
                   ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        hdrs = {"Content-Type": content_type, **(headers or {})}
        async with self.session.request(method, self.base + path, data=data, headers=hdrs) as resp:
            text = await resp.read()
            try:
                return resp.status, orjson.loads(text)
            except orjson.JSONDecodeError:
                return resp.status, text.decode(errors="replace")


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    server_pki(d, "10.43.0.1")
    return d


@contextlib.asynccontextmanager
async def serve_api(tmp_path: Path, pki_dir: Path, **config: Any) -> AsyncIterator[Api]:
    """An API server on ``tmp_path/state.db`` with the session PKI (``config``: more
    ApiServerConfig fields) and an admin HTTPS session to it."""
    pki = server_pki(pki_dir, "10.43.0.1")
    server = ApiServer(ApiServerConfig(
        storage=f"sqlite://{tmp_path}/state.db", port=0, tls_cert=pki.serving.cert, tls_key=pki.serving.key,
        client_ca=pki.ca.cert_path, kubelet_client_cert=pki.kubelet_client.cert if pki.kubelet_client else None,
        kubelet_client_key=pki.kubelet_client.key if pki.kubelet_client else None, **config))
    await server.start()
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    ctx.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{server.port}", pki.ca.pem,
                                  pki.admin.cert, pki.admin.key)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
    try:
        yield Api(server, session, f"https://127.0.0.1:{server.port}", kubeconfig)
    finally:
        await session.close()
        await server.stop()


@pytest.fixture
async def api(tmp_path, pki_dir) -> AsyncIterator[Api]:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text('secret-token,alice,1001,"devs,qa"\n')
    async with serve_api(tmp_path, pki_dir, token_auth_file=token_file) as api:
        yield api
