"""Pulling against an in-process fake registry: Bearer token auth, platform selection, typed errors."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from pinnace.images import (
    BasicAuth,
    DigestMismatchError,
    ImageNotFoundError,
    ImageService,
    RegistryUnavailableError,
    UnauthorizedError,
    oci,
)
from tests.support.processes import free_port
from tests.unit.test_image_import import LAYER_A, LAYER_B, make_config, sha


@dataclass
class FakeRegistry:
    host: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    hits: Counter[str] = field(default_factory=Counter)
    fail_blobs_with: int | None = None

    def put_blob(self, data: bytes) -> dict[str, object]:
        self.blobs[sha(data)] = data
        return {"digest": sha(data), "size": len(data)}

    def put_image(self, repo: str, tag: str, layers: list[bytes]) -> str:
        """A Docker v2 manifest list: another platform's entry plus ours; returns the list digest."""
        config = self.put_blob(make_config(layers))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST,
            "config": {"mediaType": oci.DOCKER_CONFIG, **config},
            "layers": [{"mediaType": oci.DOCKER_LAYER_GZIP, **self.put_blob(gzip.compress(x))} for x in layers],
        }).encode()
        self.manifests[(repo, sha(manifest))] = (manifest, oci.DOCKER_MANIFEST)
        host = oci.host_platform()
        lst = json.dumps({"schemaVersion": 2, "mediaType": oci.DOCKER_LIST, "manifests": [
            {"mediaType": oci.DOCKER_MANIFEST, "digest": "sha256:" + "e" * 64, "size": 1,
             "platform": {"os": "windows", "architecture": host.architecture}},
            {"mediaType": oci.DOCKER_MANIFEST, "digest": sha(manifest), "size": len(manifest),
             "platform": {"os": "linux", "architecture": host.architecture}},
        ]}).encode()
        self.manifests[(repo, tag)] = self.manifests[(repo, sha(lst))] = (lst, oci.DOCKER_LIST)
        return sha(lst)

    def _authorized(self, request: web.Request, repo: str) -> bool:
        token = request.headers.get("Authorization", "")
        return token == "Bearer tok-alice" or (repo not in self.private and token == "Bearer tok-anon")

    def _challenge(self, repo: str) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, status=401,
            headers={"WWW-Authenticate": f'Bearer realm="http://{self.host}/token",service="fake",'
                                         f'scope="repository:{repo}:pull"'})

    async def token(self, request: web.Request) -> web.Response:
        self.hits["token"] += 1
        assert request.query["service"] == "fake" and request.query["scope"].endswith(":pull")
        auth = request.headers.get("Authorization")
        if auth is None:
            return web.json_response({"token": "tok-anon"})
        if auth == "Basic " + base64.b64encode(b"alice:pw").decode():
            return web.json_response({"access_token": "tok-alice"})
        return web.json_response({"details": "bad credentials"}, status=401)

    async def manifest(self, request: web.Request) -> web.Response:
        repo, ref = request.match_info["name"], request.match_info["ref"]
        if not self._authorized(request, repo):
            return self._challenge(repo)
        self.hits[f"manifest {ref}"] += 1  # authorized requests only
        if (repo, ref) not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                     status=404)
        body, ctype = self.manifests[(repo, ref)]
        return web.Response(body=body, headers={"Content-Type": ctype, "Docker-Content-Digest": sha(body)})

    async def blob(self, request: web.Request) -> web.Response:
        repo, digest = request.match_info["name"], request.match_info["digest"]
        self.hits["blob"] += 1
        if not self._authorized(request, repo):
            return self._challenge(repo)
        if self.fail_blobs_with:
            return web.Response(status=self.fail_blobs_with, text="boom")
        return web.Response(body=self.blobs[digest])


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    reg = FakeRegistry()
    app = web.Application()
    app.router.add_get("/token", reg.token)
    app.router.add_get(r"/v2/{name:.+}/manifests/{ref}", reg.manifest)
    app.router.add_get(r"/v2/{name:.+}/blobs/{digest}", reg.blob)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    reg.host = f"127.0.0.1:{port}"
    yield reg
    await runner.cleanup()


async def test_pull_picks_platform_with_anonymous_token(registry: FakeRegistry, tmp_path: Path) -> None:
    list_digest = registry.put_image("library/app", "1", [LAYER_A, LAYER_B])
    events: list[str] = []
    async with ImageService(tmp_path) as svc:
        img = await svc.pull(f"{registry.host}/library/app:1", progress=lambda e, d, done, total: events.append(e))
        assert img.digest == list_digest and img.media_type == oci.DOCKER_LIST
        assert img.ref == f"{registry.host}/library/app:1"
        assert registry.hits["manifest sha256:" + "e" * 64] == 0  # other platforms are never fetched
        assert events.count("done") == 3  # config + 2 layers
        root = await svc.unpack(img, tmp_path / "rootfs")
        assert (root / "etc/motd").read_text() == "welcome\n"
        # Again: the blobs are present, only manifests travel.
        blob_gets = registry.hits["blob"]
        events.clear()
        await svc.pull(f"{registry.host}/library/app:1", progress=lambda e, d, done, total: events.append(e))
        assert registry.hits["blob"] == blob_gets and events == ["exists"] * 3
        # By digest.
        pinned = await svc.pull(f"{registry.host}/library/app@{list_digest}")
        assert pinned.id == img.id


async def test_private_repository_credentials(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.put_image("team/secret", "1", [LAYER_A])
    registry.private.add("team/secret")
    ref = f"{registry.host}/team/secret:1"
    async with ImageService(tmp_path) as svc:
        with pytest.raises(UnauthorizedError, match="anonymously"):
            await svc.pull(ref)
        with pytest.raises(UnauthorizedError, match="'bob'"):
            await svc.pull(ref, [BasicAuth("bob", "nope")])
        # A decoded .dockerconfigjson, as from an imagePullSecret; wrong credentials first are skipped.
        cfg = {"auths": {registry.host: {"auth": base64.b64encode(b"alice:pw").decode()}}}
        img = await svc.pull(ref, cfg)
        assert img.ref == ref
        assert (await svc.pull(ref, [BasicAuth("bob", "x"), BasicAuth("alice", "pw")])).id == img.id


async def test_typed_errors(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.put_image("library/app", "1", [LAYER_A])
    async with ImageService(tmp_path) as svc:
        with pytest.raises(ImageNotFoundError, match="MANIFEST_UNKNOWN"):
            await svc.pull(f"{registry.host}/library/app:nope")
        registry.fail_blobs_with = 503
        with pytest.raises(RegistryUnavailableError, match="registry error"):
            await svc.pull(f"{registry.host}/library/app:1")
        registry.fail_blobs_with = None
        # Corrupt content from the registry is refused and never named.
        for digest in list(registry.blobs):
            registry.blobs[digest] = registry.blobs[digest][:-1] + b"\0"
        with pytest.raises(DigestMismatchError):
            await svc.pull(f"{registry.host}/library/app:1")
        assert await svc.list() == []
        closed = free_port()
        with pytest.raises(RegistryUnavailableError, match="cannot reach"):
            await svc.pull(f"127.0.0.1:{closed}/x:1")


async def test_ensure_policies_share_one_pull(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.put_image("library/app", "1", [LAYER_A])
    ref = f"{registry.host}/library/app:1"
    async with ImageService(tmp_path) as svc:
        images = await asyncio.gather(*(svc.ensure(ref, "IfNotPresent") for _ in range(5)))
        assert len({i.id for i in images}) == 1
        assert registry.hits["manifest 1"] == 1
        await svc.ensure(ref, "IfNotPresent")
        assert registry.hits["manifest 1"] == 1  # present: no pull
        await svc.ensure(ref, "Always")
        assert registry.hits["manifest 1"] == 2
