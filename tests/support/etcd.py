"""Start a real etcd (Debian's ``etcd-server``) on loopback for a test, and stop it after."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

from .processes import free_port, stop_process


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@contextlib.contextmanager
def run_etcd() -> Iterator[str]:
    """Yield ``host:port`` of a fresh single-member etcd; remove its data after."""
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
    data = tempfile.mkdtemp(prefix="pinnace-etcd-")
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--name", "test",
            "--data-dir", data,
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("etcd did not become healthy")
            time.sleep(0.1)
        yield f"127.0.0.1:{client}"
    finally:
        stop_process(proc, 10)
        shutil.rmtree(data, ignore_errors=True)
