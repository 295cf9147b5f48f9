"""Importing docker-archives, OCI layouts and OCI archives into the store (archives built here with tarfile).

The builders at the top are shared by the other test_image_* modules.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pinnace.images import (
    DigestMismatchError,
    ImageNeverPullError,
    ImageService,
    ImageStore,
    ImportArchiveError,
    oci,
)
from pinnace.images.importer import import_archive

# ---- builders --------------------------------------------------------------------------------

Entry = tuple[str, str, Any]  # (name, kind, payload): kind file/dir/symlink/hardlink


def make_layer(entries: list[Entry]) -> bytes:
    """An uncompressed layer tar: ("etc/x", "file", b"data"), ("d", "dir", None), ("l", "symlink", "target")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(payload))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            tf.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_config(layers: list[bytes]) -> bytes:
    cfg = {"architecture": oci.host_platform().architecture, "os": "linux",
           "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
           "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]}}
    return json.dumps(cfg).encode()


def make_docker_archive(path: Path, layers: list[bytes], repo_tags: list[str], gzip_layers: bool = False) -> Path:
    config = make_config(layers)
    with tarfile.open(path, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        config_name = sha(config).split(":")[1] + ".json"
        add(config_name, config)
        names = []
        for i, layer in enumerate(layers):
            names.append(f"layer{i}/layer.tar")
            add(names[-1], gzip.compress(layer) if gzip_layers else layer)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": repo_tags, "Layers": names}]).encode())
        add("repositories", b"{}")
    return path


def make_oci_layout(root: Path, layers: list[bytes], annotations: dict[str, str] | None = None,
                    gzip_layers: bool = True, with_index: bool = False) -> dict[str, Any]:
    """Write an OCI layout dir; returns the index.json descriptor (manifest, or an index if with_index)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    config = make_config(layers)
    layer_descs = []
    for layer in layers:
        data = gzip.compress(layer) if gzip_layers else layer
        layer_descs.append(oci.descriptor(oci.OCI_LAYER_GZIP if gzip_layers else oci.OCI_LAYER, put(data), len(data)))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": oci.descriptor(oci.OCI_CONFIG, put(config), len(config)),
                           "layers": layer_descs}).encode()
    desc = oci.descriptor(oci.OCI_MANIFEST, put(manifest), len(manifest))
    if with_index:
        host = oci.host_platform()
        other = oci.descriptor(oci.OCI_MANIFEST, "sha256:" + "f" * 64, 123,
                               platform={"os": "linux", "architecture": "s390x" if host.architecture != "s390x"
                                         else "amd64"})
        mine = {**desc, "platform": {"os": "linux", "architecture": host.architecture}}
        index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [other, mine]}).encode()
        desc = oci.descriptor(oci.OCI_INDEX, put(index), len(index))
    if annotations:
        desc["annotations"] = annotations
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return desc


def tar_dir(src: Path, dest: Path, compress: bool = False) -> Path:
    with tarfile.open(dest, "w:gz" if compress else "w") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)
    return dest


LAYER_A = make_layer([("bin", "dir", None), ("bin/hello", "file", b"#!/bin/sh\necho hi\n"),
                      ("etc", "dir", None), ("etc/os-release", "file", b"ID=test\n")])
LAYER_B = make_layer([("etc/motd", "file", b"welcome\n")])


# ---- docker-archive ----------------------------------------------------------------------------

async def test_docker_archive_import_and_resolve(tmp_path: Path) -> None:
    archive = make_docker_archive(tmp_path / "bars.tar", [LAYER_A, LAYER_B], ["bars:latest", "bars:v1"])
    async with ImageService(tmp_path / "data") as svc:
        refs = await svc.import_archive(archive)
        assert refs == ["docker.io/library/bars:latest", "docker.io/library/bars:v1"]
        img = await svc.resolve("bars")
        assert img is not None and img.ref == "docker.io/library/bars:latest"
        assert img.manifest["mediaType"] == oci.OCI_MANIFEST  # converted
        assert [layer["digest"] for layer in img.layers] == [sha(LAYER_A), sha(LAYER_B)]
        assert img.config["config"]["Cmd"] == ["/bin/sh"]
        assert (await svc.resolve("docker.io/library/bars:v1")).id == img.id
        # imagePullPolicy: Never resolves the imported image, and refuses a missing one.
        assert (await svc.ensure("bars", "Never")).id == img.id
        assert (await svc.ensure("bars:v1", "IfNotPresent")).id == img.id
        with pytest.raises(ImageNeverPullError, match="not present with pull policy of Never"):
            await svc.ensure("nope:1", "Never")
        root = await svc.unpack("bars", tmp_path / "rootfs")
        assert (root / "bin/hello").read_bytes().startswith(b"#!/bin/sh")
        assert (root / "etc/motd").read_text() == "welcome\n"


def test_docker_archive_gzip_layers_and_name_override(tmp_path: Path) -> None:
    archive = make_docker_archive(tmp_path / "a.tar", [LAYER_A], ["ignored:1"], gzip_layers=True)
    store = ImageStore(tmp_path / "images")
    assert import_archive(store, archive, name="localhost:5000/mine:2") == ["localhost:5000/mine:2"]
    img = store.lookup("localhost:5000/mine:2")
    assert img is not None and img.layers[0]["mediaType"] == oci.OCI_LAYER_GZIP
    assert store.lookup("ignored:1") is None


def test_docker_archive_without_tags_needs_name(tmp_path: Path) -> None:
    archive = make_docker_archive(tmp_path / "a.tar", [LAYER_A], [])
    with pytest.raises(ImportArchiveError, match="--name"):
        import_archive(ImageStore(tmp_path / "images"), archive)


# ---- OCI layout / archive -----------------------------------------------------------------------

@pytest.mark.parametrize("annotations,name,expected", [
    ({oci.ANNOTATION_REF_NAME: "bars"}, None, "docker.io/library/bars:latest"),
    ({oci.ANNOTATION_REF_NAME: "quay.io/o/bars:2"}, None, "quay.io/o/bars:2"),
    ({oci.ANNOTATION_REF_NAME: "latest", oci.ANNOTATION_CONTAINERD_NAME: "docker.io/library/x:latest"}, None,
     "docker.io/library/x:latest"),
    ({oci.ANNOTATION_REF_NAME: "v1"}, "myrepo", "docker.io/library/myrepo:v1"),  # base name + tag
    ({oci.ANNOTATION_REF_NAME: "v1"}, "myrepo:9", "docker.io/library/myrepo:9"),
    (None, "bars", "docker.io/library/bars:latest"),
])
def test_oci_layout_naming(tmp_path: Path, annotations: dict[str, str] | None, name: str | None,
                           expected: str) -> None:
    make_oci_layout(tmp_path / "layout", [LAYER_A], annotations)
    store = ImageStore(tmp_path / "images")
    assert import_archive(store, tmp_path / "layout", name=name) == [expected]


@pytest.mark.parametrize("annotations", [{oci.ANNOTATION_REF_NAME: "latest"}, {oci.ANNOTATION_REF_NAME: "1.2"}, None])
def test_oci_layout_tag_only_or_unnamed_needs_name(tmp_path: Path, annotations: dict[str, str] | None) -> None:
    make_oci_layout(tmp_path / "layout", [LAYER_A], annotations)
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImportArchiveError, match="--name"):
        import_archive(store, tmp_path / "layout")
    assert store.list_images() == []


@pytest.mark.parametrize("compress", [False, True])
async def test_oci_archive_with_index(tmp_path: Path, compress: bool) -> None:
    desc = make_oci_layout(tmp_path / "layout", [LAYER_A, LAYER_B], {oci.ANNOTATION_REF_NAME: "bars"},
                           with_index=True)
    archive = tar_dir(tmp_path / "layout", tmp_path / "bars.tar", compress)
    async with ImageService(tmp_path / "data") as svc:
        assert await svc.import_archive(archive) == ["docker.io/library/bars:latest"]
        img = await svc.resolve("bars")
        assert img is not None
        assert img.digest == desc["digest"] and img.media_type == oci.OCI_INDEX
        assert img.manifest_digest != img.digest  # this platform's manifest, picked from the index
        root = await svc.unpack(img.manifest_digest, tmp_path / "rootfs")  # by manifest digest too
        assert (root / "etc/os-release").read_text() == "ID=test\n"


def test_oci_layout_corrupt_blob_is_rejected(tmp_path: Path) -> None:
    desc = make_oci_layout(tmp_path / "layout", [LAYER_A], {oci.ANNOTATION_REF_NAME: "bars"}, gzip_layers=False)
    manifest = json.loads((tmp_path / "layout/blobs/sha256" / desc["digest"].split(":")[1]).read_bytes())
    layer_file = tmp_path / "layout/blobs/sha256" / manifest["layers"][0]["digest"].split(":")[1]
    layer_file.write_bytes(layer_file.read_bytes()[:-1] + b"X")  # same size, wrong content
    store = ImageStore(tmp_path / "images")
    with pytest.raises(DigestMismatchError):
        import_archive(store, tmp_path / "layout")
    assert store.list_images() == []
    assert not store.has_blob(manifest["layers"][0]["digest"])
    assert list(store.ingest_dir.iterdir()) == []


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello")
    (tmp_path / "emptydir").mkdir()
    store = ImageStore(tmp_path / "images")
    for p in ("junk", "emptydir", "missing"):
        with pytest.raises(ImportArchiveError):
            import_archive(store, tmp_path / p)
