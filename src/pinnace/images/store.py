"""The node's content-addressed image store under ``DATA_DIR/images/``.

Layout::

    blobs/sha256/<hex>   manifests, indexes, configs and layers, named by their digest
    index.json           normalised reference -> target descriptor (manifest or index)
    ingest/              temp files being written (renamed into blobs/ once verified)
    leases/<pid>-<id>    digests an operation in flight uses, so GC leaves them alone
    lock                 flock: exclusive for index writes and GC, shared for blob commits

Blobs are written to a temp file, hashed while written, fsynced and renamed into place only
when the digest matches: a crash never leaves a corrupt blob under its name. index.json is
replaced atomically, so readers in other processes never see a torn file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pinnace.procs import pid_exists

from . import oci
from .errors import DigestMismatchError, ImageError, ImageNotFoundError, InvalidReferenceError
from .reference import normalize

_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]+)$")
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_CHUNK = 1 << 20


def parse_digest(digest: str) -> tuple[str, str]:
    m = _DIGEST_RE.match(digest or "")
    if not m or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise ImageError(f"invalid or unsupported digest {digest!r}")
    return m.group(1), m.group(2)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class LocalImage:
    """An image present in the store, as the kubelet and ``image ls`` see it."""

    ref: str                      # normalised, e.g. docker.io/library/busybox:latest
    digest: str                   # what the ref points at (index or manifest)
    media_type: str
    manifest_digest: str          # the manifest for this platform
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]
    size: int                     # config + layers as stored (compressed)
    created: str = ""
    extra_refs: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The image ID, as in ``crictl images``: the config digest."""
        return self.config_digest

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers", []))

    @property
    def repo_digest(self) -> str:
        """``name@digest``: what Kubernetes reports as a container's imageID."""
        name = self.ref.split("@", 1)[0]
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name = name[:colon]
        return f"{name}@{self.digest}"


class BlobWriter:
    """Streams one blob into the store: write() chunks, then commit() verifies and renames."""

    def __init__(self, store: ImageStore, expected: str | None, size: int | None, algorithm: str = "sha256"):
        self.store = store
        self.expected = expected
        self.expected_size = size
        alg = parse_digest(expected)[0] if expected else algorithm
        self._hash = hashlib.new(alg)
        self._alg = alg
        self.written = 0
        self.tmp = store.ingest_dir / f"{os.getpid()}-{secrets.token_hex(8)}.tmp"
        self._file: BinaryIO | None = open(self.tmp, "wb")  # closed in commit/abort

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._hash.update(chunk)
        self.written += len(chunk)
        if self.expected_size is not None and self.written > self.expected_size:
            self.abort()
            raise DigestMismatchError(f"{self.expected}: more than the announced {self.expected_size} bytes")

    def commit(self, lease: Lease | None = None) -> str:
        """Verify and move into place; returns the digest. Blocking (fsync): run it off the event loop."""
        assert self._file is not None, "writer already closed"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        actual = f"{self._alg}:{self._hash.hexdigest()}"
        try:
            if self.expected and actual != self.expected:
                raise DigestMismatchError(f"content digest {actual} does not match expected {self.expected}")
            if self.expected_size is not None and self.written != self.expected_size:
                raise DigestMismatchError(f"{actual}: {self.written} bytes, expected {self.expected_size}")
            if lease is not None:
                lease.add(actual)
            self.store._commit_file(self.tmp, actual)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
        return actual

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class Lease:
    """Protects the digests an in-flight pull/import uses from a concurrent GC (any process).

    A file ``leases/<pid>-<id>`` lists them; GC ignores files whose process is gone.
    """

    def __init__(self, store: ImageStore):
        self.path = store.leases_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.digests: set[str] = set()
        self._fh = open(self.path, "a")  # closed in release()

    def add(self, digest: str) -> None:
        if digest not in self.digests:
            self.digests.add(digest)
            self._fh.write(digest + "\n")
            self._fh.flush()

    def release(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ImageStore:
    """Synchronous, thread- and process-safe store. ``ImageService`` wraps it for asyncio."""

    def __init__(self, root: Path | str, platform: oci.Platform | None = None):
        self.root = Path(root)
        self.platform = platform or oci.host_platform()
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"
        self.leases_dir = self.root / "leases"
        self.index_path = self.root / "index.json"
        for d in (self.blobs_dir, self.ingest_dir, self.leases_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()

    # ---- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, exclusive: bool) -> Iterator[None]:
        with open(self.root / "lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._thread_lock, self._flock(True):
            yield

    def lease(self) -> Lease:
        return Lease(self)

    # ---- blobs ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        alg, hexd = parse_digest(digest)
        return self.blobs_dir / alg / hexd

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def claim(self, digest: str, lease: Lease) -> bool:
        """Lease ``digest``, then say whether it is present. Atomic against GC (shared lock): a
        concurrent GC either already sees the lease or has finished deleting. Blocking."""
        lease.add(digest)
        with self._flock(False):
            return self.has_blob(digest)

    def blob_size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFoundError(f"blob {digest} is not in the store") from None

    def read_json(self, digest: str) -> dict[str, Any]:
        try:
            doc = json.loads(self.read_blob(digest))
        except ValueError as e:
            raise ImageError(f"blob {digest} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ImageError(f"blob {digest} is not a JSON object")
        return doc

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageNotFoundError(f"blob {digest} is not in the store") from None

    def writer(self, expected: str | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def write_blob(self, data: bytes, expected: str | None = None, lease: Lease | None = None) -> str:
        w = self.writer(expected, len(data) if expected else None)
        with w:
            w.write(data)
            return w.commit(lease)

    def ingest(self, fileobj: BinaryIO, expected: str | None = None, size: int | None = None,
               lease: Lease | None = None) -> str:
        """Copy a file object into the store, verifying ``expected`` when given."""
        with self.writer(expected, size) as w:
            while chunk := fileobj.read(_CHUNK):
                w.write(chunk)
            return w.commit(lease)

    def _commit_file(self, tmp: Path, digest: str) -> None:
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Shared lock: a GC (exclusive) never sweeps between our lease entry and this rename.
        with self._flock(False):
            if dest.exists():  # same digest, same content: keep the existing file
                return
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        _fsync_dir(dest.parent)

    # ---- index ---------------------------------------------------------------------------

    def read_index(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.index_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise ImageError(f"{self.index_path} is corrupt: {e}") from None
        return dict(doc.get("images", {}))

    def _write_index(self, images: dict[str, dict[str, Any]]) -> None:
        tmp = self.root / f".index.json.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            with open(tmp, "w") as fh:
                json.dump({"schemaVersion": 1, "images": dict(sorted(images.items()))}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.index_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(self.root)

    def tag(self, ref: str, digest: str, media_type: str | None = None) -> str:
        """Point ``ref`` (normalised here) at a manifest or index already in the store."""
        ref = normalize(ref)
        if not self.has_blob(digest):
            raise ImageNotFoundError(f"cannot tag {ref}: {digest} is not in the store")
        media_type = media_type or oci.media_type_of(self.read_json(digest))
        with self._exclusive():
            images = self.read_index()
            images[ref] = {"digest": digest, "mediaType": media_type, "size": self.blob_size(digest),
                           "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self._write_index(images)
        return ref

    def untag(self, ref: str) -> bool:
        ref = normalize(ref)
        with self._exclusive():
            images = self.read_index()
            if images.pop(ref, None) is None:
                return False
            self._write_index(images)
        return True

    # ---- images --------------------------------------------------------------------------

    def lookup(self, text: str) -> LocalImage | None:
        """Resolve an image string: a reference (normalised), ``name@digest``, or an image ID."""
        images = self.read_index()
        try:
            ref = normalize(text)
        except InvalidReferenceError:
            ref = None
        if ref is not None and ref in images:
            return self._load(ref, images[ref])
        if ref is not None and "@" in ref:
            # Pinned by digest: any stored name of that repository with that content.
            name, digest = ref.split("@", 1)
            for r, entry in images.items():
                if entry["digest"] == digest and _repo_of(r) == _repo_of(name):
                    return self._load(ref, entry)
            if self.has_blob(digest):
                with contextlib.suppress(ImageError):
                    mt = oci.media_type_of(self.read_json(digest))
                    return self._load(ref, {"digest": digest, "mediaType": mt})
            return None
        if _DIGEST_RE.match(text) and self.has_blob(text):
            # A manifest/index digest (e.g. what the kubelet recorded as the image it started).
            with contextlib.suppress(ImageError, UnicodeDecodeError):
                doc = self.read_json(text)
                mt = oci.media_type_of(doc)
                if mt in oci.INDEX_TYPES or mt in oci.MANIFEST_TYPES:
                    names = [r for r, e in images.items() if e["digest"] == text]
                    return self._load(names[0] if names else text, {"digest": text, "mediaType": mt})
        return self._lookup_id(text, images)

    def _lookup_id(self, text: str, images: dict[str, dict[str, Any]]) -> LocalImage | None:
        hexpart = text.removeprefix("sha256:")
        if not re.fullmatch(r"[a-f0-9]{6,64}", hexpart):
            return None
        found = [img for r, e in images.items() if (img := self._try_load(r, e))
                 and img.config_digest.removeprefix("sha256:").startswith(hexpart)]
        if not found:
            return None
        if len({i.config_digest for i in found}) > 1:
            raise ImageError(f"image ID prefix {text!r} is ambiguous")
        found[0].extra_refs = [i.ref for i in found[1:]]
        return found[0]

    def list_images(self) -> list[LocalImage]:
        return [img for r, e in sorted(self.read_index().items()) if (img := self._try_load(r, e))]

    def load(self, ref: str, digest: str, media_type: str | None = None) -> LocalImage:
        """The image ``digest`` would be under ``ref`` (not tagged): raises if it is not usable here."""
        return self._load(ref, {"digest": digest, "mediaType": media_type})

    def _try_load(self, ref: str, entry: dict[str, Any]) -> LocalImage | None:
        try:
            return self._load(ref, entry)
        except ImageError:
            return None  # e.g. a half-deleted image: not usable, not listed

    def _load(self, ref: str, entry: dict[str, Any]) -> LocalImage:
        digest = entry["digest"]
        doc = self.read_json(digest)
        media_type = oci.media_type_of(doc, entry.get("mediaType"))
        manifest_digest, manifest = digest, doc
        if media_type in oci.INDEX_TYPES:
            desc = oci.select_manifest(doc, self.platform)
            manifest_digest = desc["digest"]
            manifest = self.read_json(manifest_digest)
        config_digest = manifest["config"]["digest"]
        config = self.read_json(config_digest)
        size = int(manifest["config"].get("size", 0)) + sum(int(x.get("size", 0)) for x in manifest.get("layers", []))
        return LocalImage(ref=ref, digest=digest, media_type=media_type, manifest_digest=manifest_digest,
                          manifest=manifest, config_digest=config_digest, config=config, size=size,
                          created=entry.get("created", ""))

    def remove(self, text: str) -> list[str]:
        """Remove a reference (or, given an image ID, every reference to it) and GC; returns the refs removed."""
        images = self.read_index()
        refs: list[str] = []
        with contextlib.suppress(InvalidReferenceError):
            ref = normalize(text)
            if ref in images:
                refs = [ref]
        if not refs:
            img = self._lookup_id(text, images)
            if img is None:
                raise ImageNotFoundError(f"image {text!r} is not present")
            refs = [img.ref, *img.extra_refs]
        for r in refs:
            self.untag(r)
        self.gc()
        return refs

    # ---- garbage collection --------------------------------------------------------------

    def _referenced(self, images: dict[str, dict[str, Any]]) -> set[str]:
        keep: set[str] = set()
        todo = [e["digest"] for e in images.values()]
        while todo:
            d = todo.pop()
            if d in keep:
                continue
            keep.add(d)
            if not self.has_blob(d):
                continue
            try:
                doc = self.read_json(d)
                mt = oci.media_type_of(doc)
            except (ImageError, UnicodeDecodeError):
                continue
            if mt in oci.INDEX_TYPES:
                todo.extend(m["digest"] for m in doc.get("manifests", []) if "digest" in m)
            elif mt in oci.MANIFEST_TYPES:
                keep.add(doc["config"]["digest"])
                keep.update(x["digest"] for x in doc.get("layers", []))
        return keep

    def _leased(self) -> set[str]:
        held: set[str] = set()
        for f in self.leases_dir.iterdir():
            pid = int(f.name.split("-", 1)[0]) if f.name.split("-", 1)[0].isdigit() else 0
            if not pid_exists(pid):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                continue
            with contextlib.suppress(FileNotFoundError):
                held.update(line.strip() for line in f.read_text().splitlines() if line.strip())
        return held

    def gc(self) -> tuple[int, int]:
        """Delete blobs no reference or live lease needs; returns (blobs, bytes) removed."""
        removed = freed = 0
        with self._exclusive():
            keep = self._referenced(self.read_index()) | self._leased()
            for alg_dir in self.blobs_dir.iterdir():
                for blob in alg_dir.iterdir():
                    if f"{alg_dir.name}:{blob.name}" in keep:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        size = blob.stat().st_size
                        blob.unlink()
                        removed += 1
                        freed += size
            # Temp files of crashed writers.
            for tmp in self.ingest_dir.iterdir():
                pid = tmp.name.split("-", 1)[0]
                if not (pid.isdigit() and pid_exists(int(pid))):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
        return removed, freed


def _repo_of(ref: str) -> str:
    name = ref.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name
