"""OCI Distribution API v2 client: pull a manifest (or index), its config and layers into the store.

Auth follows the Docker registry token spec: a 401 with ``WWW-Authenticate: Bearer realm=...,
service=...`` sends us to the token endpoint with ``scope=repository:NAME:pull`` (with Basic
credentials when we have some); ``WWW-Authenticate: Basic`` means send them directly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import oci
from .credentials import BasicAuth
from .errors import (
    DigestMismatchError,
    ImageError,
    ImageNotFoundError,
    RegistryUnavailableError,
    UnauthorizedError,
)
from .reference import Reference, familiar
from .store import ImageStore, Lease, digest_bytes

# (event, digest, bytes done, bytes total); events: "exists", "downloading", "done".
Progress = Callable[[str, str, int, int], None]

_MAX_MANIFEST = 4 << 20
_CHUNK = 1 << 20
_PARALLEL_LAYERS = 3
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth",service="reg"`` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def _is_loopback(host: str) -> bool:
    h = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return h in _LOOPBACK or h.startswith("127.")


@dataclass
class _Session:
    """Auth state for one repository on one registry during a pull."""

    ref: Reference
    base: str
    credential: BasicAuth | None
    authorization: str | None = None
    attempted: set[str] = field(default_factory=set)


class RegistryClient:
    def __init__(self, store: ImageStore, http: aiohttp.ClientSession, *,
                 insecure_registries: Iterable[str] = (), platform: oci.Platform | None = None):
        self.store = store
        self.http = http
        self.insecure = {h.removeprefix("http://").removeprefix("https://").rstrip("/") for h in insecure_registries}
        self.platform = platform or store.platform

    def base_url(self, ref: Reference) -> str:
        host = ref.api_host
        # Plain HTTP only for registries declared insecure and for loopback (like containerd).
        scheme = "http" if host in self.insecure or ref.registry in self.insecure or _is_loopback(host) else "https"
        return f"{scheme}://{host}/v2/{ref.repository}"

    # ---- pull ----------------------------------------------------------------------------

    async def pull(self, ref: Reference, credentials: list[BasicAuth] | None = None, lease: Lease | None = None,
                   progress: Progress | None = None) -> tuple[str, str]:
        """Fetch ``ref`` into the store (not tagged: the caller does); returns (digest, mediaType).

        Each credential is tried in turn (the kubelet passes every matching pull secret), then
        the last error is raised; with none, the pull is anonymous.
        """
        last: UnauthorizedError | None = None
        for cred in credentials or [None]:
            try:
                return await self._pull(_Session(ref, self.base_url(ref), cred), lease, progress)
            except UnauthorizedError as e:
                last = e
        assert last is not None
        raise last

    async def _pull(self, s: _Session, lease: Lease | None, progress: Progress | None) -> tuple[str, str]:
        digest, media_type, top, doc = await self._manifest(s, s.ref.object, s.ref.digest, lease)
        if media_type in oci.INDEX_TYPES:
            desc = oci.select_manifest(doc, self.platform)
            child_digest, child_type, body, doc = await self._manifest(s, desc["digest"], desc["digest"], lease)
            if child_type not in oci.MANIFEST_TYPES:
                raise ImageError(f"{familiar(s.ref)}: nested index for {self.platform} is not supported")
            await asyncio.to_thread(self.store.write_blob, body, child_digest, lease)
        blobs = [doc["config"], *doc.get("layers", [])]
        sem = asyncio.Semaphore(_PARALLEL_LAYERS)

        async def fetch(desc: dict[str, Any]) -> None:
            async with sem:
                await self._blob(s, desc["digest"], int(desc.get("size", -1)), lease, progress)

        await asyncio.gather(*(fetch(b) for b in blobs))
        # The top manifest/index goes in last: it only ever names content that is present.
        await asyncio.to_thread(self.store.write_blob, top, digest, lease)
        return digest, media_type

    async def _manifest(self, s: _Session, obj: str, expected: str | None,
                        lease: Lease | None) -> tuple[str, str, bytes, dict[str, Any]]:
        """GET a manifest or index; returns (digest, mediaType, raw body, parsed), digest verified."""
        async with await self._get(s, f"{s.base}/manifests/{obj}", {"Accept": oci.MANIFEST_ACCEPT}) as resp:
            body = await resp.content.read(_MAX_MANIFEST + 1)
            content_type = resp.headers.get("Content-Type")
            header_digest = resp.headers.get("Docker-Content-Digest")
        if len(body) > _MAX_MANIFEST:
            raise ImageError(f"{familiar(s.ref)}: manifest larger than {_MAX_MANIFEST} bytes")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ImageError(f"{familiar(s.ref)}: registry returned a manifest that is not JSON") from None
        if not isinstance(doc, dict):
            raise ImageError(f"{familiar(s.ref)}: registry returned a manifest that is not a JSON object")
        media_type = oci.media_type_of(doc, content_type)
        oci.check_supported(media_type)
        want = expected or header_digest
        alg = want.split(":", 1)[0] if want else "sha256"
        if alg not in ("sha256", "sha384", "sha512"):
            raise DigestMismatchError(f"{familiar(s.ref)}: unsupported digest algorithm in {want!r}")
        digest = digest_bytes(body, alg)
        if want and digest != want:
            raise DigestMismatchError(f"{familiar(s.ref)}: manifest digest {digest} does not match {want}")
        if lease is not None:
            lease.add(digest)
        return digest, media_type, body, doc

    async def _blob(self, s: _Session, digest: str, size: int, lease: Lease | None, progress: Progress | None) -> None:
        present = (await asyncio.to_thread(self.store.claim, digest, lease) if lease is not None
                   else self.store.has_blob(digest))
        if present:
            if progress:
                progress("exists", digest, size, size)
            return
        writer = self.store.writer(digest, size if size >= 0 else None)
        try:
            async with await self._get(s, f"{s.base}/blobs/{digest}", {}) as resp:
                total = int(resp.headers.get("Content-Length", size))
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    writer.write(chunk)
                    if progress:
                        progress("downloading", digest, writer.written, total)
            await asyncio.to_thread(writer.commit, lease)
            if progress:
                progress("done", digest, writer.written, total)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
            raise RegistryUnavailableError(f"{familiar(s.ref)}: downloading {digest}: {e or type(e).__name__}") from e
        finally:
            writer.abort()

    # ---- HTTP and auth -------------------------------------------------------------------

    async def _get(self, s: _Session, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET with auth; returns an OK response (caller closes it) or raises a typed error."""
        for _ in range(3):
            hdrs = dict(headers)
            if s.authorization:
                hdrs["Authorization"] = s.authorization
            try:
                resp = await self.http.get(url, headers=hdrs)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                raise RegistryUnavailableError(f"{familiar(s.ref)}: cannot reach {s.ref.api_host}: "
                                               f"{e or type(e).__name__}") from e
            if resp.status == 401 and "WWW-Authenticate" in resp.headers:
                challenge = resp.headers["WWW-Authenticate"]
                resp.release()
                if not await self._authenticate(s, challenge):
                    raise UnauthorizedError(self._unauthorized_message(s))
                continue
            if resp.status < 300:
                return resp
            await self._raise_for(s, resp)
        raise UnauthorizedError(self._unauthorized_message(s))

    def _unauthorized_message(self, s: _Session) -> str:
        who = f"as {s.credential.username!r}" if s.credential else "anonymously"
        return (f"pull access denied for {familiar(s.ref)} ({who}): the repository does not exist "
                "or requires authorization")

    async def _authenticate(self, s: _Session, challenge: str) -> bool:
        """Act on a challenge; False when retrying cannot help (nothing new to try)."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if s.credential is None or "basic" in s.attempted:
                return False
            s.attempted.add("basic")
            s.authorization = _basic(s.credential)
            return True
        if scheme != "bearer" or "realm" not in params:
            raise UnauthorizedError(f"{familiar(s.ref)}: unsupported auth challenge {challenge!r}")
        scope = f"repository:{s.ref.repository}:pull"
        key = f"bearer {params['realm']} {scope}"
        if key in s.attempted:
            return False  # a fresh token was refused: retrying will not help
        s.attempted.add(key)
        query = {"scope": scope}
        if "service" in params:
            query["service"] = params["service"]
        hdrs = {"Authorization": _basic(s.credential)} if s.credential else {}
        try:
            async with self.http.get(params["realm"], params=query, headers=hdrs) as resp:
                if resp.status in (401, 403):
                    raise UnauthorizedError(f"{familiar(s.ref)}: token request refused by {params['realm']}"
                                            + (f" for user {s.credential.username!r}" if s.credential else ""))
                if resp.status >= 300:
                    raise RegistryUnavailableError(f"{familiar(s.ref)}: token endpoint {params['realm']} "
                                                   f"answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            raise RegistryUnavailableError(f"{familiar(s.ref)}: cannot reach token endpoint "
                                           f"{params['realm']}: {e or type(e).__name__}") from e
        except ValueError:
            raise RegistryUnavailableError(f"{familiar(s.ref)}: token endpoint answered non-JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise UnauthorizedError(f"{familiar(s.ref)}: token endpoint returned no token")
        s.authorization = f"Bearer {token}"
        return True

    async def _raise_for(self, s: _Session, resp: aiohttp.ClientResponse) -> None:
        try:
            text = (await resp.content.read(64 << 10)).decode(errors="replace")
        finally:
            resp.release()
        detail = _error_detail(text) or f"HTTP {resp.status}"
        where = f"{familiar(s.ref)}"
        if resp.status == 404:
            raise ImageNotFoundError(f"{where}: not found: {detail}")
        if resp.status in (401, 403):
            raise UnauthorizedError(f"{self._unauthorized_message(s)}: {detail}")
        if resp.status == 429:
            raise RegistryUnavailableError(f"{where}: too many requests (registry rate limit): {detail}")
        if resp.status >= 500:
            raise RegistryUnavailableError(f"{where}: registry error: {detail}")
        raise ImageError(f"{where}: unexpected answer from registry: {detail}")


def _basic(cred: BasicAuth | None) -> str:
    assert cred is not None
    return "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()


def _error_detail(text: str) -> str:
    """The registry's ``{"errors": [{"code", "message"}]}`` body, as one line."""
    try:
        errors = json.loads(text).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError):
        return text.strip()[:200]
