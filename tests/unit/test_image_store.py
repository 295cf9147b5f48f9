"""The content-addressed store: digest verification, atomic writes, references, rm + GC, leases."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinnace.images import DigestMismatchError, ImageNotFoundError, ImageService, ImageStore
from pinnace.images.importer import import_archive
from tests.unit.test_image_import import LAYER_A, LAYER_B, make_docker_archive, make_layer, sha


def _blobs(store: ImageStore) -> set[str]:
    return {f"sha256:{p.name}" for p in (store.blobs_dir / "sha256").iterdir()} if (
        store.blobs_dir / "sha256").exists() else set()


def test_write_blob_verifies_digest(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    d = store.write_blob(b"hello", sha(b"hello"))
    assert d == sha(b"hello") and store.read_blob(d) == b"hello"
    assert store.blob_path(d) == tmp_path / "blobs/sha256" / d.split(":")[1]
    with pytest.raises(DigestMismatchError):
        store.write_blob(b"evil", sha(b"other"))
    assert not store.has_blob(sha(b"other")) and not store.has_blob(sha(b"evil"))
    assert list(store.ingest_dir.iterdir()) == []  # the temp file went too
    # Unannounced digest: computed; rewriting identical content is a no-op.
    assert store.write_blob(b"hello") == d
    with pytest.raises(DigestMismatchError):  # right digest, wrong announced size
        w = store.writer(sha(b"abc"), 2)
        w.write(b"abc")


def test_interrupted_write_leaves_no_blob(tmp_path: Path) -> None:
    """A crash mid-download: content only ever appears under its name complete and verified."""
    store = ImageStore(tmp_path)
    data = os.urandom(3 << 20)
    w = store.writer(sha(data), len(data))
    w.write(data[: 1 << 20])
    assert not store.has_blob(sha(data))  # partial content lives only in ingest/
    assert len(list(store.ingest_dir.iterdir())) == 1
    w.abort()
    assert list(store.ingest_dir.iterdir()) == []
    # Temp files of a dead process (pid far above pid_max) are swept by GC; ours are not.
    stale = store.ingest_dir / "999999999-dead.tmp"
    stale.write_bytes(b"partial")
    live = store.writer(sha(data), len(data))
    live.write(b"x")
    store.gc()
    assert not stale.exists() and live.tmp.exists()
    live.abort()


def test_crash_during_index_write_keeps_old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path)
    d = store.write_blob(b'{"schemaVersion":2,"manifests":[]}')
    store.tag("a", d, "application/vnd.oci.image.index.v1+json")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.tag("b", d, "application/vnd.oci.image.index.v1+json")
    monkeypatch.undo()
    assert list(store.read_index()) == ["docker.io/library/a:latest"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".index")] == []


def test_tag_requires_content(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        ImageStore(tmp_path).tag("x", sha(b"missing"), "application/vnd.oci.image.manifest.v1+json")


def test_rm_garbage_collects_unshared_blobs(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    import_archive(store, make_docker_archive(tmp_path / "one.tar", [LAYER_A, LAYER_B], ["one:1"]))
    only_two = make_layer([("two", "file", b"2")])
    import_archive(store, make_docker_archive(tmp_path / "two.tar", [LAYER_A, only_two], ["two:1", "two:alias"]))
    one, two = store.lookup("one:1"), store.lookup("two:1")
    assert one and two and {sha(LAYER_A), sha(LAYER_B), sha(only_two)} <= _blobs(store)

    assert store.remove("one:1") == ["docker.io/library/one:1"]
    left = _blobs(store)
    assert sha(LAYER_A) in left  # still used by two
    assert sha(LAYER_B) not in left and one.manifest_digest not in left and one.config_digest not in left
    assert store.lookup("one:1") is None

    # By image ID prefix: every reference to it goes, then everything is garbage.
    assert sorted(store.remove(two.id.split(":")[1][:12])) == ["docker.io/library/two:1", "docker.io/library/two:alias"]
    assert _blobs(store) == set() and store.list_images() == []
    with pytest.raises(ImageNotFoundError):
        store.remove("two:1")


def test_lease_protects_inflight_content(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with store.lease() as lease:
        d = store.write_blob(b"in flight", lease=lease)
        store.gc()
        assert store.has_blob(d)
    store.gc()
    assert not store.has_blob(d)
    # A lease file of a dead process protects nothing and is cleaned up.
    (store.leases_dir / "999999999-x").write_text(store.write_blob(b"orphan") + "\n")
    store.gc()
    assert _blobs(store) == set() and list(store.leases_dir.iterdir()) == []


def test_list_and_lookup(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    import_archive(store, make_docker_archive(tmp_path / "a.tar", [LAYER_A], ["bars:latest"]))
    [img] = store.list_images()
    assert img.ref == "docker.io/library/bars:latest"
    assert img.size == len(LAYER_A) + store.blob_size(img.config_digest)
    assert img.repo_digest == f"docker.io/library/bars@{img.digest}"
    for text in ("bars", "bars:latest", "docker.io/library/bars", img.id, img.id[7:19],
                 f"bars@{img.digest}", img.digest):
        found = store.lookup(text)
        assert found is not None and found.id == img.id, text
    assert store.lookup("bars:other") is None and store.lookup("abcdef123456") is None


async def test_concurrent_tagging_in_one_process(tmp_path: Path) -> None:
    """Index read-modify-writes from many tasks (threads underneath) lose nothing."""
    svc = ImageService(tmp_path)
    d = svc.store.write_blob(b'{"schemaVersion":2,"manifests":[]}')
    await asyncio.gather(*(asyncio.to_thread(svc.store.tag, f"img{i}", d, "application/vnd.oci.image.index.v1+json")
                           for i in range(40)))
    assert len(svc.store.read_index()) == 40
    await svc.close()


def test_other_processes_read_and_write_safely(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    import_archive(store, make_docker_archive(tmp_path / "a.tar", [LAYER_A], ["bars:latest"]))
    script = (
        "import sys; from pinnace.images import ImageStore\n"
        "s = ImageStore(sys.argv[1]); d = s.lookup('bars').digest\n"
        "for i in range(25): s.tag(f'p{sys.argv[2]}-{i}', d, None)\n"
        "print(len(s.list_images()) >= 26)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store.root), str(n)], stdout=subprocess.PIPE,
                              text=True) for n in range(3)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["True"] * 3
    assert len(json.loads(store.index_path.read_text())["images"]) == 1 + 75
