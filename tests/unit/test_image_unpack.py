"""Layer application: order, OCI whiteouts, compression, diff_id checks, and no writes outside the root."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from pinnace.images import DigestMismatchError, UnpackError
from pinnace.images.unpack import apply_layer
from tests.unit.test_image_import import make_layer


def apply(root: Path, layer: bytes, diff_id: str | None = None) -> str:
    return apply_layer(io.BytesIO(layer), root, diff_id)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_layers_stack_and_override(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    apply(root, make_layer([("etc", "dir", None), ("etc/a", "file", b"1"), ("etc/link", "symlink", "a"),
                            ("etc/hard", "hardlink", "etc/a"), ("etc/sub", "dir", None), ("x", "file", b"file")]))
    apply(root, make_layer([("etc/a", "file", b"2"), ("x", "dir", None), ("x/y", "file", b"y")]))
    assert (root / "etc/a").read_text() == "2"
    assert os.readlink(root / "etc/link") == "a"
    assert (root / "etc/hard").read_text() == "1"  # hard link to the first etc/a, replaced since
    assert (root / "x").is_dir() and (root / "x/y").read_text() == "y"  # file replaced by a dir


def test_whiteouts(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    apply(root, make_layer([
        ("etc", "dir", None), ("etc/keep", "file", b"k"), ("etc/gone", "file", b"g"),
        ("var", "dir", None), ("var/lib", "dir", None), ("var/lib/old", "file", b"o"),
        ("opq", "dir", None), ("opq/lower", "file", b"l"), ("opq/sub", "dir", None), ("opq/sub/deep", "file", b"d"),
        ("tree", "dir", None), ("tree/in", "file", b"i"),
    ]))
    apply(root, make_layer([
        ("etc/.wh.gone", "file", b""),            # deletes a file
        ("var/.wh.lib", "file", b""),             # deletes a directory recursively
        ("opq/new-before", "file", b"n"),         # same layer, before the marker: kept
        ("opq/sub", "dir", None),
        ("opq/sub/mine", "file", b"m"),
        ("opq/.wh..wh..opq", "file", b""),        # hides lower opq/* only
        ("opq/new-after", "file", b"n"),
        ("tree/in2", "file", b"x"),
        ("tree/.wh.in2", "file", b""),            # whiteouts never hide their own layer's entries
        ("etc/.wh.never-existed", "file", b""),
    ]))
    t = tree(root)
    assert "etc/keep" in t and "etc/gone" not in t
    assert "var" in t and "var/lib" not in t
    assert sorted(x for x in t if x.startswith("opq/")) == ["opq/new-after", "opq/new-before", "opq/sub",
                                                            "opq/sub/mine"]
    assert "tree/in" in t and "tree/in2" in t
    assert not any(".wh." in x for x in t)


def test_bare_whiteout_cannot_delete_its_directory(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    apply(root, make_layer([("etc", "dir", None), ("etc/keep", "file", b"k")]))
    with pytest.raises(UnpackError, match="invalid whiteout"):
        apply(root, make_layer([("etc/.wh.", "file", b"")]))
    assert (root / "etc/keep").exists()


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../escape"])
def test_dotdot_entries_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(UnpackError, match="escapes"):
        apply(root, make_layer([(name, "file", b"x")]))
    assert not (tmp_path / "escape").exists()


def test_symlink_tricks_stay_inside_root(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    root = tmp_path / "rootfs"
    root.mkdir()
    apply(root, make_layer([("abs", "symlink", str(outside)), ("rel", "symlink", "../../host"),
                            ("slash", "symlink", "/")]))
    apply(root, make_layer([("abs/p1", "file", b"1"), ("rel/p2", "file", b"2"), ("slash/p3", "file", b"3"),
                            ("/absolute-name", "file", b"4")]))
    assert list(outside.iterdir()) == []
    # Links are followed as if root were "/": the writes land inside the rootfs.
    assert (root / str(outside).lstrip("/") / "p1").read_text() == "1"
    assert (root / "host/p2").read_text() == "2"
    assert (root / "p3").read_text() == "3" and (root / "absolute-name").read_text() == "4"
    # A whiteout through a symlink cannot delete host files either.
    (outside / "precious").write_text("keep")
    apply(root, make_layer([("abs/.wh.precious", "file", b"")]))
    assert (outside / "precious").exists()
    with pytest.raises(UnpackError):
        apply(root, make_layer([("evil", "hardlink", "../host/precious")]))


def test_compression_and_diff_id(tmp_path: Path) -> None:
    layer = make_layer([("f", "file", b"data")])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    for i, blob in enumerate([layer, gzip.compress(layer)]):
        root = tmp_path / f"r{i}"
        root.mkdir()
        assert apply(root, blob, diff_id) == diff_id
        assert (root / "f").read_text() == "data"
    root = tmp_path / "bad"
    root.mkdir()
    with pytest.raises(DigestMismatchError):
        apply(root, gzip.compress(layer), "sha256:" + "0" * 64)


def test_zstd_layer(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard", reason="zstd layers are optional (pip install zstandard)")
    layer = make_layer([("z", "file", b"zstd!")])
    root = tmp_path / "r"
    root.mkdir()
    apply(root, zstandard.ZstdCompressor().compress(layer))
    assert (root / "z").read_text() == "zstd!"


def test_modes_and_readonly_dirs(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        d = tarfile.TarInfo("ro")
        d.type, d.mode = tarfile.DIRTYPE, 0o555
        tf.addfile(d)
        f = tarfile.TarInfo("ro/exe")
        f.mode, f.size = 0o755, 2
        tf.addfile(f, io.BytesIO(b"#!"))
    root = tmp_path / "r"
    root.mkdir()
    apply(root, buf.getvalue())
    assert os.access(root / "ro/exe", os.X_OK)
    apply(root, make_layer([("ro/later", "file", b"ok")]))  # a read-only dir still takes later layers
    assert (root / "ro/later").read_text() == "ok"


def test_corrupt_layer(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    with pytest.raises(UnpackError):
        apply(root, gzip.compress(make_layer([("f", "file", b"x" * 5000)]))[:-200])
