"""Apply image layers, in order, onto a rootfs directory (what the runc runtime starts from).

Honours OCI whiteouts (``.wh.NAME`` deletes NAME from lower layers, ``.wh..wh..opq`` hides a
directory's lower contents) and never writes outside the root: member names with ``..`` are
refused, and every parent directory is resolved *inside* the root, so a symlink planted by an
earlier layer (``etc -> /etc``) cannot redirect a later write to the host.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DigestMismatchError, UnpackError, UnsupportedImageError
from .store import ImageStore, LocalImage

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
_MAX_SYMLINKS = 255
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _HashingReader:
    """Hashes what tarfile reads, to check the layer's diff_id (digest of the uncompressed tar)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return f"sha256:{self.hash.hexdigest()}"


def _decompressed(fh: BinaryIO) -> Any:
    magic = fh.read(4)
    fh.seek(0)
    if magic[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard  # optional: zstd layers are still rare
        except ImportError:
            raise UnsupportedImageError("layer is zstd-compressed: install the 'zstandard' package") from None
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    return fh


def _clean_name(name: str) -> list[str]:
    """Member name -> path components relative to the root; refuses ``..``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(f"layer entry {name!r} escapes the root filesystem")
    return parts


def resolve_in_root(root: str, parts: list[str]) -> str:
    """Resolve ``parts`` under ``root`` following symlinks *as if root were /* (never leaving it)."""
    current: list[str] = []
    pending = list(parts)
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        full = os.path.join(root, *current, part)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            current.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise UnpackError(f"too many levels of symbolic links under {root}")
            target = os.readlink(full)
            if target.startswith("/"):
                current = []
            pending = target.split("/") + pending
            continue
        current.append(part)
    return os.path.join(root, *current)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _prune_opaque(dirpath: str, created: set[str]) -> None:
    """Drop what lower layers put in an opaque dir, keeping what this layer already added."""
    if not os.path.isdir(dirpath) or os.path.islink(dirpath):
        return
    for entry in os.scandir(dirpath):
        if entry.path in created:
            if entry.is_dir(follow_symlinks=False):
                _prune_opaque(entry.path, created)
        else:
            _remove(entry.path)


class _LayerApplier:
    def __init__(self, root: Path):
        self.root = str(root)
        self.privileged = os.geteuid() == 0
        self.created: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    def _parent(self, parts: list[str]) -> str:
        parent = resolve_in_root(self.root, parts[:-1])
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UnpackError(f"cannot create {'/'.join(parts)}: a parent is not a directory") from None
        return parent

    def apply(self, tf: tarfile.TarFile) -> None:
        for m in tf:
            parts = _clean_name(m.name)
            if not parts:
                continue  # the root itself
            base = parts[-1]
            if base == OPAQUE_WHITEOUT:
                _prune_opaque(resolve_in_root(self.root, parts[:-1]), self.created)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                    continue  # other aufs metadata (.wh..wh.plnk...): nothing to apply
                name = base[len(WHITEOUT_PREFIX):]
                if name in ("", ".", ".."):
                    raise UnpackError(f"invalid whiteout entry {m.name!r}")
                victim = os.path.join(resolve_in_root(self.root, parts[:-1]), name)
                # Whiteouts only hide lower layers, never entries of their own layer.
                if victim not in self.created:
                    _remove(victim)
                continue
            path = os.path.join(self._parent(parts), base)
            self._extract(tf, m, path)
            self.created.add(path)
        # Directory modes last (deepest first), so read-only dirs do not block their own content.
        for path, m in reversed(self.dirs):
            self._finish(path, m)

    def _extract(self, tf: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        existing = None
        with contextlib.suppress(FileNotFoundError):
            existing = os.lstat(path)
        if m.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(path)
                existing = None
            if existing is None:
                os.mkdir(path, 0o700)
            self.dirs.append((path, m))
            return
        if existing is not None:
            _remove(path)
        if m.isreg():
            src = tf.extractfile(m)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                if src is not None:
                    shutil.copyfileobj(src, out, 1 << 20)
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            target_parts = _clean_name(m.linkname)
            if not target_parts:
                raise UnpackError(f"hard link {m.name!r} points at the root")
            target = os.path.join(resolve_in_root(self.root, target_parts[:-1]), target_parts[-1])
            try:
                if stat.S_ISDIR(os.lstat(target).st_mode):
                    raise UnpackError(f"hard link {m.name!r} points at a directory")
            except FileNotFoundError:
                raise UnpackError(f"hard link {m.name!r} -> {m.linkname!r}: target missing") from None
            os.link(target, path, follow_symlinks=False)
            return  # shares the target's inode: metadata already set
        elif m.isfifo():
            os.mkfifo(path, m.mode & 0o7777)
        elif m.ischr() or m.isblk():
            if not self.privileged:
                return  # device nodes need root; a rootless unpack goes without them
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        else:
            return  # unknown member types (e.g. GNU sparse leftovers): skip
        self._finish(path, m)

    def _finish(self, path: str, m: tarfile.TarInfo) -> None:
        if self.privileged:
            os.lchown(path, m.uid, m.gid)  # before chmod: chown clears setuid bits
        if not m.issym():
            mode = m.mode & 0o7777
            if m.isdir() and not self.privileged:
                mode |= 0o700  # rootless: later layers must still be able to write here
            os.chmod(path, mode)
        with contextlib.suppress(OSError):
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def apply_layer(blob: BinaryIO, root: Path | str, diff_id: str | None = None) -> str:
    """Apply one layer (gzip, zstd or plain tar) to ``root``; returns its diff_id, checked if given."""
    root = Path(root)
    reader = _HashingReader(_decompressed(blob))
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tf:  # type: ignore[call-overload]
            _LayerApplier(root).apply(tf)
    except (tarfile.TarError, EOFError, OSError) as e:  # corrupt data, or a path we could not create
        raise UnpackError(f"cannot apply layer: {e}") from e
    actual = reader.drain()
    if diff_id and actual != diff_id:
        raise DigestMismatchError(f"layer content {actual} does not match its diff_id {diff_id}")
    return actual


def unpack_image(store: ImageStore, image: LocalImage, dest: Path | str) -> Path:
    """Extract every layer of ``image`` in order into ``dest`` (created; must be empty)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise UnpackError(f"{dest} is not empty")
    diff_ids = image.config.get("rootfs", {}).get("diff_ids", [])
    layers = image.layers
    check = len(diff_ids) == len(layers)
    for i, layer in enumerate(layers):
        with store.open_blob(layer["digest"]) as fh:
            apply_layer(fh, dest, diff_ids[i] if check else None)
    return dest
