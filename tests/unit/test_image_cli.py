"""``pinnace image import/ls/rm`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.unit.test_image_import import LAYER_A, LAYER_B, make_docker_archive, make_oci_layout, tar_dir


def pinnace(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PINNACE_DATA_DIR": str(data_dir / "unused-default")}
    return subprocess.run([sys.executable, "-m", "pinnace.cli", "image", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60, env=env)


def test_image_import_ls_rm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    archive = make_docker_archive(tmp_path / "bars.tar", [LAYER_A, LAYER_B], ["bars:latest"])
    r = pinnace("import", str(archive), data_dir=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "imported docker.io/library/bars:latest"

    make_oci_layout(tmp_path / "layout", [LAYER_A], {"org.opencontainers.image.ref.name": "v2"})
    r = pinnace("import", str(tar_dir(tmp_path / "layout", tmp_path / "oci.tar")), "--name", "localhost:5000/app",
                data_dir=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "imported localhost:5000/app:v2"

    r = pinnace("ls", data_dir=data)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REF", "IMAGE", "ID", "SIZE"]
    assert lines[1].split()[2] == "20.77kB"  # crictl-style: decimal units, 4 significant digits
    assert [line.split()[0] for line in lines[1:]] == ["docker.io/library/bars:latest", "localhost:5000/app:v2"]
    assert all(len(line.split()[1]) == 13 and line.split()[2].endswith("B") for line in lines[1:])

    r = pinnace("ls", "-o", "json", data_dir=data)
    rows = json.loads(r.stdout)
    assert rows[0]["ref"] == "docker.io/library/bars:latest" and rows[0]["id"].startswith("sha256:")
    assert rows[0]["size"] > len(LAYER_A)

    r = pinnace("rm", "bars", data_dir=data)
    assert r.returncode == 0 and r.stdout.strip() == "deleted docker.io/library/bars:latest", r.stderr
    r = pinnace("rm", "bars", data_dir=data)
    assert r.returncode == 1 and "not present" in r.stderr
    r = pinnace("rm", "localhost:5000/app:v2", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert pinnace("ls", "-o", "json", data_dir=data).stdout.strip() == "[]"
    assert list((data / "images/blobs/sha256").iterdir()) == []  # garbage collected
    assert not (data / "unused-default").exists()


def test_image_errors(tmp_path: Path) -> None:
    r = pinnace("import", str(tmp_path / "missing.tar"), data_dir=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error:")
    r = pinnace("pull", "Not/A/Valid/Ref", data_dir=tmp_path)
    assert r.returncode == 1 and "error:" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pinnace.cli", "image"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
