"""Import images from an OCI layout directory, an OCI archive (tar of a layout) or a docker-archive.

Naming, in order (containerd-like):
- ``name`` (``--name``): a full reference names the image; a bare repository (``--name bars``)
  is combined with a tag-only annotation (``v1`` -> ``bars:v1``), like ``ctr import --base-name``;
- the ``io.containerd.image.name`` annotation (docker >= 25 and containerd write the full name);
- ``org.opencontainers.image.ref.name``: a full reference is used as-is; a bare word is taken as a
  repository name (``skopeo copy ... oci:dir:bars`` -> ``docker.io/library/bars:latest``), except
  words that can only be tags (``latest``, ``1.2``, ``v1``...), which need ``--name``;
- docker-archive ``RepoTags``.
Every name is normalised, so ``bars`` is found as ``docker.io/library/bars:latest``.
"""

from __future__ import annotations

import contextlib
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import oci
from .errors import ImageError, ImportArchiveError, InvalidReferenceError
from .reference import is_valid_tag, normalize, parse_reference
from .store import ImageStore, Lease

_TAG_ONLY = re.compile(r"^(latest|v?[0-9][\w.-]*)$")


class _Source:
    """Files of a layout/archive, by path relative to its root."""

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def read_json(self, name: str) -> Any:
        with self.open(name) as fh:
            try:
                return json.load(fh)
            except ValueError as e:
                raise ImportArchiveError(f"{name} in the archive is not valid JSON: {e}") from None


class _DirSource(_Source):
    def __init__(self, root: Path):
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        p = (self.root / name).resolve()
        if not p.is_relative_to(self.root):
            raise ImportArchiveError(f"archive path {name!r} escapes the layout")
        return p

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ImportArchiveError(f"{name} is missing from {self.root}") from None


class _TarSource(_Source):
    def __init__(self, tf: tarfile.TarFile):
        self.tf = tf
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tf.getmembers():
            if m.isfile() or m.issym() or m.islnk():
                self.members[_norm(m.name)] = m

    def exists(self, name: str) -> bool:
        return _norm(name) in self.members

    def open(self, name: str) -> BinaryIO:
        m = self.members.get(_norm(name))
        fh = self.tf.extractfile(m) if m is not None else None
        if fh is None:
            raise ImportArchiveError(f"{name} is missing from the archive")
        return fh  # type: ignore[return-value]


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield _DirSource(path)
        return
    if not path.is_file():
        raise ImportArchiveError(f"{path}: no such file or directory")
    try:
        tf = tarfile.open(path, "r:*")
    except tarfile.TarError as e:
        raise ImportArchiveError(f"{path} is not a tar archive or an OCI layout directory: {e}") from None
    with tf:
        yield _TarSource(tf)


def import_archive(store: ImageStore, path: Path | str, name: str | None = None) -> list[str]:
    """Import every image in ``path``; returns the normalised references created."""
    path = Path(path)
    with _open_source(path) as src, store.lease() as lease:
        if src.exists("index.json") and src.exists("oci-layout"):
            tagged = _import_oci(store, src, name, lease)
        elif src.exists("manifest.json"):
            tagged = _import_docker(store, src, name, lease)
        else:
            raise ImportArchiveError(f"{path}: neither an OCI layout (oci-layout, index.json) "
                                     "nor a docker-archive (manifest.json)")
        names = [ref for ref, _, _ in tagged]
        if len(set(names)) != len(names):
            raise ImportArchiveError(f"several images in the archive would be named the same: {sorted(names)}")
        for ref, digest, media_type in tagged:
            # Usable on this node (a manifest for our platform, config present)? Check before naming it.
            store.load(ref, digest, media_type)
        return [store.tag(ref, digest, media_type) for ref, digest, media_type in tagged]


# ---- OCI layout ---------------------------------------------------------------------------------

def _blob_name(digest: str) -> str:
    alg, _, hexd = digest.partition(":")
    if not alg or not re.fullmatch(r"[a-f0-9]+", hexd):
        raise ImportArchiveError(f"invalid digest {digest!r} in the archive")
    return f"blobs/{alg}/{hexd}"


def _copy_blob(store: ImageStore, src: _Source, desc: dict[str, Any], lease: Lease) -> None:
    digest = desc["digest"]
    if store.claim(digest, lease):
        return
    with src.open(_blob_name(digest)) as fh:
        store.ingest(fh, digest, int(desc["size"]) if "size" in desc else None, lease)


def _copy_tree(store: ImageStore, src: _Source, desc: dict[str, Any], lease: Lease) -> str:
    """Copy a manifest/index and what it references; returns its media type."""
    _copy_blob(store, src, desc, lease)
    doc = store.read_json(desc["digest"])
    media_type = oci.media_type_of(doc, desc.get("mediaType"))
    oci.check_supported(media_type)
    if media_type in oci.INDEX_TYPES:
        for child in doc.get("manifests", []):
            # Layouts often hold just some platforms of an index: copy what is there.
            if src.exists(_blob_name(child["digest"])):
                _copy_tree(store, src, child, lease)
    else:
        for blob in [doc["config"], *doc.get("layers", [])]:
            _copy_blob(store, src, blob, lease)
    return media_type


def _oci_name(desc: dict[str, Any], name: str | None) -> str | None:
    ann = desc.get("annotations") or {}
    ref_name = ann.get(oci.ANNOTATION_REF_NAME, "")
    tag_only = bool(ref_name) and not any(c in ref_name for c in "/:@") and is_valid_tag(ref_name)
    if name:
        base = parse_reference(name, default_tag=False)
        if base.tag is None and base.digest is None and tag_only:
            return str(base.with_tag(ref_name))
        return str(parse_reference(name))
    if ann.get(oci.ANNOTATION_CONTAINERD_NAME):
        return normalize(ann[oci.ANNOTATION_CONTAINERD_NAME])
    if not ref_name:
        return None
    if tag_only and _TAG_ONLY.match(ref_name):
        raise ImportArchiveError(f"the archive names its image only by the tag {ref_name!r}: "
                                 "pass --name REPOSITORY to name it")
    try:
        return normalize(ref_name)
    except InvalidReferenceError:
        raise ImportArchiveError(f"the archive's image name {ref_name!r} is not a valid reference: "
                                 "pass --name") from None


def _import_oci(store: ImageStore, src: _Source, name: str | None, lease: Lease) -> list[tuple[str, str, str]]:
    index = src.read_json("index.json")
    descs = index.get("manifests") or []
    if not descs:
        raise ImportArchiveError("the OCI layout's index.json lists no images")
    out = []
    for desc in descs:
        media_type = _copy_tree(store, src, desc, lease)
        ref = _oci_name(desc, name)
        if ref is None:
            raise ImportArchiveError(f"image {desc['digest']} in the archive has no name: pass --name")
        out.append((ref, desc["digest"], media_type))
    return out


# ---- docker-archive (docker save) ---------------------------------------------------------------

def _import_docker(store: ImageStore, src: _Source, name: str | None, lease: Lease) -> list[tuple[str, str, str]]:
    entries = src.read_json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ImportArchiveError("manifest.json of the docker-archive lists no images")
    if name and len(entries) > 1:
        raise ImportArchiveError(f"--name {name!r} is ambiguous: the archive holds {len(entries)} images")
    out = []
    for entry in entries:
        with src.open(entry["Config"]) as fh:
            config_digest = store.ingest(fh, lease=lease)
        config = store.read_json(config_digest)
        layers = []
        for layer_path in entry.get("Layers") or []:
            with src.open(layer_path) as fh:
                magic = fh.read(4)
            media_type = {b"\x1f\x8b": oci.OCI_LAYER_GZIP}.get(magic[:2], oci.OCI_LAYER)
            if magic == b"\x28\xb5\x2f\xfd":
                media_type = oci.OCI_LAYER_ZSTD
            with src.open(layer_path) as fh:
                digest = store.ingest(fh, lease=lease)
            layers.append(oci.descriptor(media_type, digest, store.blob_size(digest)))
        if len(layers) != len(config.get("rootfs", {}).get("diff_ids", [])):
            raise ImportArchiveError(f"{entry['Config']}: {len(layers)} layers but "
                                     f"{len(config.get('rootfs', {}).get('diff_ids', []))} diff_ids")
        # Convert to an OCI manifest: the store (and unpack) then only deal with one format.
        manifest = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": oci.descriptor(oci.OCI_CONFIG, config_digest, store.blob_size(config_digest)),
            "layers": layers,
        }
        manifest_digest = store.write_blob(json.dumps(manifest, separators=(",", ":")).encode(), lease=lease)
        tags = [name] if name else list(entry.get("RepoTags") or [])
        if not tags:
            raise ImportArchiveError(f"image {config_digest} in the docker-archive has no RepoTags: pass --name")
        for tag in tags:
            try:
                out.append((normalize(tag), manifest_digest, oci.OCI_MANIFEST))
            except InvalidReferenceError as e:
                raise ImageError(f"docker-archive tag {tag!r}: {e}") from None
    return out
