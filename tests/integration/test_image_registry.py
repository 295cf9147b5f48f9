"""Real tools end to end: an image built with umoci from Debian's busybox-static, pushed with skopeo
to Debian's docker-registry (the distribution registry, started here on a free loopback port), then
pulled by the store, unpacked and run. scripts/test installs the packages; elsewhere this skips."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pinnace.images import (
    BasicAuth,
    ImageNotFoundError,
    ImageService,
    UnauthorizedError,
)
from tests.support.registry import htpasswd_line, run_registry

pytestmark = pytest.mark.slow

BUSYBOX = "/bin/busybox"
TOOLS = {"umoci": "umoci", "skopeo": "skopeo", "docker-registry": "docker-registry"}
_missing = [pkg for pkg, binary in TOOLS.items() if shutil.which(binary) is None]
if not Path(BUSYBOX).is_file():
    _missing.append("busybox-static")
if _missing:
    pytest.skip(f"needs {', '.join(_missing)} (apt-get install {' '.join(_missing)}; scripts/test does)",
                allow_module_level=True)


def run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)} failed: {r.stderr}"
    return r.stdout


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinnace.cli", "image", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with image ``bb``: busybox-static at /bin/busybox, plus /bin/sh -> busybox."""
    d = tmp_path_factory.mktemp("umoci")
    image = f"{d / 'oci'}:bb"  # umoci's PATH:TAG
    run("umoci", "init", "--layout", str(d / "oci"))
    run("umoci", "new", "--image", image)
    bundle = d / "bundle"
    run("umoci", "unpack", *([] if os.geteuid() == 0 else ["--rootless"]), "--image", image, str(bundle))
    (bundle / "rootfs/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bundle / "rootfs/bin/busybox")
    (bundle / "rootfs/bin/sh").symlink_to("busybox")
    run("umoci", "repack", "--image", image, str(bundle))
    run("umoci", "config", "--image", image, "--config.cmd", "/bin/sh")
    return d / "oci"


def push(layout: Path, registry: str, repo: str, creds: str | None = None) -> None:
    run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
        *(["--dest-creds", creds] if creds else []), f"oci:{layout}:bb", f"docker://{registry}/{repo}")


def check_rootfs(root: Path) -> None:
    busybox = root / "bin/busybox"
    assert busybox.is_file() and os.access(busybox, os.X_OK)
    assert os.readlink(root / "bin/sh") == "busybox"
    out = subprocess.run([str(busybox), "echo", "hello from the image"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "hello from the image"


async def test_push_pull_unpack(layout: Path, tmp_path: Path) -> None:
    with run_registry(tmp_path / "registry") as reg:
        push(layout, reg, "test/busybox:1.0")
        async with ImageService(tmp_path / "node") as svc:
            img = await svc.pull(f"{reg}/test/busybox:1.0")
            assert img.ref == f"{reg}/test/busybox:1.0"
            assert img.config["config"]["Cmd"] == ["/bin/sh"]
            check_rootfs(await svc.unpack(img, tmp_path / "rootfs"))

            with pytest.raises(ImageNotFoundError):
                await svc.pull(f"{reg}/test/busybox:no-such-tag")
            with pytest.raises(ImageNotFoundError):
                await svc.pull(f"{reg}/no/such-repo:1")

            # The same image imported from the umoci layout is the same content, found by its short name.
            assert await svc.import_archive(layout) == ["docker.io/library/bb:latest"]
            local = await svc.ensure("bb", "Never")
            assert local.id == img.id

        # The CLI, with progress per layer on stderr.
        data = tmp_path / "cli"
        r = await asyncio.to_thread(cli, "pull", f"{reg}/test/busybox:1.0", "--insecure-registry", reg,
                                    "--data-dir", str(data))
        assert r.returncode == 0, r.stderr
        assert "done" in r.stderr and r.stdout.startswith(f"{reg}/test/busybox:1.0 sha256:")
        r = await asyncio.to_thread(cli, "pull", f"{reg}/test/nope:1", "--data-dir", str(data))
        assert r.returncode == 1 and "not found" in r.stderr


async def test_basic_auth(layout: Path, tmp_path: Path) -> None:
    line = htpasswd_line("alice", "s3cret")
    if line is None:
        pytest.skip("cannot make a bcrypt htpasswd entry: pip install bcrypt (or a Python with the crypt module)")
    with run_registry(tmp_path / "registry", htpasswd=line) as reg:
        push(layout, reg, "private/busybox:1.0", creds="alice:s3cret")
        ref = f"{reg}/private/busybox:1.0"
        async with ImageService(tmp_path / "node") as svc:
            with pytest.raises(UnauthorizedError, match="anonymously"):
                await svc.pull(ref)
            with pytest.raises(UnauthorizedError, match="'alice'"):
                await svc.pull(ref, [BasicAuth("alice", "wrong")])
            assert await svc.list() == []
            pull_secret = {"auths": {reg: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}
            img = await svc.ensure(ref, "IfNotPresent", pull_secret)
            check_rootfs(await svc.unpack(img, tmp_path / "rootfs"))
