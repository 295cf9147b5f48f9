"""The node's image service (CRI ImageService-shaped), for the kubelet and ``pinnace image``.

    svc = ImageService(data_dir, insecure_registries=["reg.local:5000"])
    img = await svc.ensure("busybox", "IfNotPresent", credentials=keyring_from_pull_secrets(secrets))
    await svc.unpack(img, rootfs_dir)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ImageNeverPullError, ImageNotFoundError
from .reference import DEFAULT_TAG, familiar, parse_reference
from .store import ImageStore, LocalImage

if TYPE_CHECKING:
    import aiohttp

    from . import oci
    from .credentials import BasicAuth, DockerKeyring
    from .registry import Progress, RegistryClient

    Credentials = DockerKeyring | Mapping[str, Any] | Iterable[BasicAuth] | None

# The registry client, credentials, archive import and unpacking (tarfile, gzip) are imported
# where used: a node whose images are present and unpacked never needs them.

PULL_ALWAYS = "Always"
PULL_IF_NOT_PRESENT = "IfNotPresent"
PULL_NEVER = "Never"


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` or untagged (and not pinned) images, else IfNotPresent."""
    ref = parse_reference(image, default_tag=False)
    if ref.digest is None and ref.tag in (None, DEFAULT_TAG):
        return PULL_ALWAYS
    return PULL_IF_NOT_PRESENT


def _credentials_for(credentials: Credentials, image: str) -> list[BasicAuth]:
    if credentials is None:
        return []
    from .credentials import DockerKeyring

    if isinstance(credentials, Mapping):  # a decoded .dockerconfigjson
        credentials = DockerKeyring().add(dict(credentials))
    if isinstance(credentials, DockerKeyring):
        return credentials.lookup(parse_reference(image))
    return list(credentials)


class ImageService:
    def __init__(self, data_dir: Path | str, *, insecure_registries: Iterable[str] = (),
                 platform: oci.Platform | None = None, timeout: float = 600.0):
        self.store = ImageStore(Path(data_dir) / "images", platform)
        self.insecure_registries = list(insecure_registries)
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self._pulls: dict[str, asyncio.Lock] = {}
        self._gc_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> ImageService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> RegistryClient:
        import aiohttp

        from .registry import RegistryClient

        if self._http is None:
            # sock_read bounds a stalled transfer; a big layer can legitimately take long overall.
            timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=self._timeout)
            self._http = aiohttp.ClientSession(timeout=timeout, trust_env=True)
        return RegistryClient(self.store, self._http, insecure_registries=self.insecure_registries)

    # ---- lookups -------------------------------------------------------------------------

    async def resolve(self, image: str) -> LocalImage | None:
        """The local image ``image`` names (``busybox`` finds ``docker.io/library/busybox:latest``)."""
        return await asyncio.to_thread(self.store.lookup, image)

    async def list(self) -> list[LocalImage]:
        return await asyncio.to_thread(self.store.list_images)

    # ---- pulling -------------------------------------------------------------------------

    async def pull(self, image: str, credentials: Credentials = None, progress: Progress | None = None) -> LocalImage:
        """Pull ``image`` and name it in the store; concurrent pulls of one reference share the work."""
        ref = parse_reference(image)
        key = str(ref)
        lock = self._pulls.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._pull_locked(ref, credentials, progress)

    async def _pull_locked(self, ref: Any, credentials: Credentials, progress: Progress | None) -> LocalImage:
        key = str(ref)
        previous = await self.resolve(key)
        lease = self.store.lease()
        try:
            digest, media_type = await self._client().pull(ref, _credentials_for(credentials, key), lease, progress)
            await asyncio.to_thread(self.store.tag, key, digest, media_type)
        finally:
            lease.release()
        if previous is not None and previous.digest != digest:
            await self.gc()  # the tag moved: the old content may now be garbage
        image = await self.resolve(key)
        if image is None:  # removed between tag and resolve by someone else
            raise ImageNotFoundError(f"{familiar(ref)} was removed while being pulled")
        return image

    async def ensure(self, image: str, pull_policy: str | None = None, credentials: Credentials = None,
                     progress: Progress | None = None) -> LocalImage:
        """Make ``image`` present per ``pull_policy`` (Always / IfNotPresent / Never) and return it."""
        policy = pull_policy or default_pull_policy(image)
        if policy == PULL_ALWAYS:
            return await self.pull(image, credentials, progress)
        found = await self.resolve(image)
        if found is not None:
            return found
        if policy == PULL_NEVER:
            raise ImageNeverPullError(f'Container image "{image}" is not present with pull policy of Never')
        if policy != PULL_IF_NOT_PRESENT:
            raise ValueError(f"unknown imagePullPolicy {policy!r}")
        lock = self._pulls.setdefault(str(parse_reference(image)), asyncio.Lock())
        async with lock:
            found = await self.resolve(image)  # another task may have pulled it meanwhile
            if found is not None:
                return found
            return await self._pull_locked(parse_reference(image), credentials, progress)

    # ---- import, remove, unpack ----------------------------------------------------------

    async def import_archive(self, path: Path | str, name: str | None = None) -> list[str]:
        from .importer import import_archive

        return await asyncio.to_thread(import_archive, self.store, path, name)

    async def remove(self, image: str) -> list[str]:
        async with self._gc_lock:
            return await asyncio.to_thread(self.store.remove, image)

    async def gc(self) -> tuple[int, int]:
        async with self._gc_lock:
            return await asyncio.to_thread(self.store.gc)

    async def unpack(self, image: LocalImage | str, dest: Path | str) -> Path:
        """Extract ``image`` (a LocalImage, reference or manifest digest) into ``dest`` as a rootfs."""
        if isinstance(image, str):
            found = await self.resolve(image)
            if found is None:
                raise ImageNotFoundError(f"image {image!r} is not present")
            image = found
        from .unpack import unpack_image

        return await asyncio.to_thread(unpack_image, self.store, image, dest)
