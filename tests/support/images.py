"""Test images made from the host's static busybox (Debian's busybox-static)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from pinnace.images.oci import host_platform

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
IMAGE = "pinnace.test/busybox:1"
IMAGE_APP_USER = "pinnace.test/busybox:app"  # User "app" (1234:1234), resolved from /etc/passwd


def busybox_archive(path: Path, tags: tuple[str, str] = (IMAGE, IMAGE_APP_USER)) -> Path:
    """A docker-archive with two images over one layer (busybox with every applet, an /etc/passwd):
    ``tags[0]`` runs as root, ``tags[1]`` as user ``app`` (1234:1234)."""
    layer = io.BytesIO()
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        def add(name: str, data: bytes | None = None, mode: int = 0o644, link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            if data is None and link is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
            else:
                info.size, info.mode = len(data or b""), mode
            tf.addfile(info, io.BytesIO(data) if data is not None else None)

        for d in ("bin", "etc", "tmp", "work"):
            add(d)
        add("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", link="busybox")
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/work:/bin/sh\n")
        add("etc/group", b"root:x:0:\napp:x:1234:\n")
    layer_bytes = layer.getvalue()

    def config(user: str) -> bytes:
        return json.dumps({
            "architecture": host_platform().architecture, "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/work", "User": user},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]},
        }).encode()

    manifest = [{"Config": "root.json", "RepoTags": [tags[0]], "Layers": ["layer.tar"]},
                {"Config": "app.json", "RepoTags": [tags[1]], "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as tf:
        for name, data in (("root.json", config("")), ("app.json", config("app")), ("layer.tar", layer_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path
