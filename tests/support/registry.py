"""Debian's docker-registry (the distribution registry) for tests: started on a free loopback
port with filesystem storage, optionally with htpasswd basic auth."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, stop_process


def htpasswd_line(user: str, password: str) -> str | None:
    """A bcrypt htpasswd entry (the only hash the distribution registry takes), or None if we cannot hash."""
    try:
        import bcrypt  # type: ignore[import-not-found]

        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}"
    except ImportError:
        pass
    with warnings.catch_warnings():  # glibc/libxcrypt's crypt(3) does bcrypt too (module gone in 3.13)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
        except (ImportError, AttributeError, OSError):
            return None
    return f"{user}:{hashed}" if hashed and hashed.startswith("$2") else None


@contextlib.contextmanager
def run_registry(root: Path, htpasswd: str | None = None) -> Iterator[str]:
    """Start docker-registry with filesystem storage under ``root``; yields ``127.0.0.1:PORT``."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = [
        "version: 0.1",
        "log: {level: error, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: '127.0.0.1:{port}'}}",
    ]
    if htpasswd:
        (root / "htpasswd").write_text(htpasswd + "\n")
        config.append(f"auth: {{htpasswd: {{realm: basic-realm, path: {root / 'htpasswd'}}}}}")
    (root / "config.yml").write_text("\n".join(config) + "\n")
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # 401: up, and wants credentials
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, 10)
        log.close()
