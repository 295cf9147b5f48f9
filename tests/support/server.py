"""Run a real ``pinnace server`` / ``pinnace apiserver`` process for a test, and stop it after."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .processes import free_port, stop_process


@dataclass
class RunningServer:
    proc: subprocess.Popen
    data_dir: Path
    port: int
    log_path: Path

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.crt"))
        ctx.load_cert_chain(str(self.data_dir / "tls" / "admin.crt"), str(self.data_dir / "tls" / "admin.key"))
        return ctx


def wait_ready(data_dir: Path, port: int, proc: subprocess.Popen, timeout: float = 30.0) -> float:
    """Poll /readyz until 200; returns seconds waited."""
    start = time.monotonic()
    ctx = None
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        ca = data_dir / "tls" / "ca.crt"
        if ctx is None and ca.exists():
            with contextlib.suppress(ssl.SSLError, OSError):
                ctx = ssl.create_default_context(cafile=str(ca))
        if ctx is not None:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200 and (data_dir / "kubeconfig").exists():
                        return time.monotonic() - start
            except OSError:
                pass
        if time.monotonic() - start > timeout:
            raise RuntimeError("server did not become ready")
        time.sleep(0.05)


@contextlib.contextmanager
def run_server(data_dir: Path, *extra: str, command: str = "server", port: int | None = None,
               agent: bool = False) -> Iterator[RunningServer]:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{command}.log"
    args = [sys.executable, "-m", "pinnace.cli", command, "--data-dir", str(data_dir), "--https-port", str(port)]
    if command == "server" and not agent:
        args.append("--no-agent")
    if command == "server" and agent:
        # Tests run on the host's network: its agent must not make bridges, routes or rules there.
        args += [flag for flag, value in (("--pod-network", "host"), ("--proxy-mode", "none"))
                 if flag not in extra for flag in (flag, value)]
    if command == "server" and "--cluster-dns-port" not in extra:
        args += ["--cluster-dns-port", "0"]  # many test servers at once: each DNS on a free loopback port
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*args, *extra], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(data_dir, port, proc)
        yield RunningServer(proc, data_dir, port, log_path)
    finally:
        stop_process(proc)


@contextlib.contextmanager
def run_controller_manager(kubeconfig: Path) -> Iterator[subprocess.Popen]:
    log_path = kubeconfig.parent / "controller-manager.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pinnace.cli", "controller-manager", "--kubeconfig",
                                 str(kubeconfig)], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


