"""The ``pinnace`` processes themselves: crash safety, restart, the kubectl wrapper."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request

import pytest

from tests.support.processes import free_port
from tests.support.server import run_server

pytestmark = pytest.mark.slow


def api(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    ctx: ssl.SSLContext = server.ssl_context()
    req = urllib.request.Request(server.url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_acknowledged_writes_survive_kill_9(tmp_path):
    """Every write the server acknowledged is there after kill -9 and a restart."""
    data = tmp_path / "data"
    port = free_port()
    acked = []
    with run_server(data, port=port) as server:
        for i in range(200):
            status, obj = api(server, "POST", "/api/v1/namespaces/default/configmaps",
                              {"metadata": {"name": f"durable-{i}"}, "data": {"i": str(i)}})
            assert status == 201
            acked.append((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
        status, obj = api(server, "PUT", "/api/v1/namespaces/default/configmaps/durable-0",
                          {"metadata": {"name": "durable-0"}, "data": {"i": "changed"}})
        assert status == 200
        last_rv = obj["metadata"]["resourceVersion"]
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
    with run_server(data, port=port) as server:
        status, listed = api(server, "GET", "/api/v1/namespaces/default/configmaps")
        names = {i["metadata"]["name"] for i in listed["items"]}
        assert {n for n, _ in acked} <= names
        status, obj = api(server, "GET", "/api/v1/namespaces/default/configmaps/durable-0")
        assert obj["data"] == {"i": "changed"} and obj["metadata"]["resourceVersion"] == last_rv
        # Revisions keep increasing after the restart.
        status, new = api(server, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "after"}})
        assert int(new["metadata"]["resourceVersion"]) > int(last_rv)


def test_clean_shutdown_on_sigterm(tmp_path):
    with run_server(tmp_path / "data") as server:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) == 0
    assert "Shutting down" in server.log()


def test_pinnace_kubectl_wrapper_uses_the_cluster_kubeconfig(tmp_path):
    with run_server(tmp_path / "data") as server:
        out = subprocess.run([sys.executable, "-m", "pinnace.cli", "kubectl", "--data-dir", str(server.data_dir),
                              "get", "namespaces", "-o", "name"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "namespace/kube-system" in out.stdout.split()
    missing = subprocess.run([sys.executable, "-m", "pinnace.cli", "kubectl", "get", "pods"], capture_output=True,
                             text=True, env={**os.environ, "PATH": "/nonexistent"}, timeout=30)
    assert missing.returncode == 127 and "kubectl is not installed" in missing.stderr
