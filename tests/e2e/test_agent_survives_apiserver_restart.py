"""A node agent keeps its pods running while the API server is down, and picks up
where it left off when the server returns (same data dir and port).

Separate processes: ``pinnace server --no-agent`` and ``pinnace agent`` joined by
token, on the process runtime, everything on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.processes import free_port
from tests.support.server import run_server, stop_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]


def lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_pods_keep_running_while_the_api_server_restarts(tmp_path):
    data, ticks = tmp_path / "server", tmp_path / "ticks"
    port = free_port()
    agent = None
    log = open(tmp_path / "agent.log", "wb")  # the agent process writes to it; closed below
    try:
        with run_server(data, port=port) as server:
            k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
            token = subprocess.run([sys.executable, "-m", "pinnace.cli", "token", "create", "--data-dir", str(data)],
                                   capture_output=True, text=True, check=True).stdout.strip()
            agent = subprocess.Popen(
                [sys.executable, "-m", "pinnace.cli", "agent", "--server", server.url, "--token", token,
                 "--runtime", "process", "--node-ip", "127.0.0.1", "--kubelet-port", "0", "--node-name", "steady",
                 "--proxy-mode", "none",  # the host's network: no Service addresses on its loopback
                 "--data-dir", str(tmp_path / "agent")],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            wait_until(lambda: k.run("get", "node", "steady", check=False).returncode, lambda rc: rc == 0,
                       timeout=60, what="node registered")
            k("run", "ticker", "--image=busybox", "--restart=Always", "--command", "--",
              "sh", "-c", f"while :; do echo tick >> {ticks}; echo tick; sleep 0.2; done")
            wait_until(lambda: k.json("get", "pod", "ticker")["status"].get("phase"), lambda p: p == "Running",
                       what="Running")
            uid = k.json("get", "pod", "ticker")["metadata"]["uid"]
        # The API server is gone: the pod keeps running.
        before = lines(ticks)
        time.sleep(2)
        assert lines(ticks) > before + 5
        assert agent.poll() is None, "the agent must survive an API server outage"
        with run_server(data, port=port) as server:
            k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
            pod = wait_until(lambda: k.json("get", "pod", "ticker"), lambda p: p["status"].get("phase") == "Running",
                             what="still Running")
            assert pod["metadata"]["uid"] == uid
            assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
            wait_until(lambda: k.json("get", "node", "steady")["status"]["conditions"], lambda conds: any(
                c["type"] == "Ready" and c["status"] == "True" for c in conds), what="node Ready again")
            assert "tick" in k("logs", "ticker", "--tail=1")
            k("delete", "pod", "ticker", "--wait=true", "--timeout=30s", timeout=60)
            stopped = lines(ticks)
            time.sleep(0.6)
            assert lines(ticks) == stopped  # deleted means stopped
    finally:
        if agent is not None:
            stop_process(agent)
        log.close()
