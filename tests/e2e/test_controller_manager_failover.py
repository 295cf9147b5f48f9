"""Two ``pinnace controller-manager`` processes against one API server: the
leader is killed with SIGKILL (no lease release), the standby takes over once
the lease runs out, and the work continues — a Deployment scaled after the
kill gets its pods.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import run_server, stop_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]

LEASE = ["--leader-elect-lease-duration=2s", "--leader-elect-renew-deadline=1500ms",
         "--leader-elect-retry-period=300ms"]


def start(kubeconfig: Path, name: str, *args: str) -> subprocess.Popen:
    with open(kubeconfig.parent / f"{name}.log", "ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-m", "pinnace.cli", *args, "--kubeconfig", str(kubeconfig)],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def cluster(tmp_path) -> Iterator[tuple[Kubectl, Path]]:
    with run_server(tmp_path / "data", command="apiserver") as server:
        procs = [start(server.kubeconfig, "nodes", "simulate-nodes", "--count", "2", "--start-delay", "0.1"),
                 start(server.kubeconfig, "scheduler", "scheduler", "--no-leader-elect")]
        try:
            yield Kubectl(kubectl_versions()["default"], server.kubeconfig), server.kubeconfig
        finally:
            for p in procs:
                stop_process(p)


def holder(k: Kubectl) -> str:
    proc = k.run("get", "lease", "-n", "kube-system", "kube-controller-manager", "-o", "json", check=False)
    return json.loads(proc.stdout)["spec"].get("holderIdentity") or "" if proc.returncode == 0 else ""


def test_standby_takes_over_after_the_leader_is_killed(cluster):
    k, kubeconfig = cluster
    leader = start(kubeconfig, "cm-a", "controller-manager", *LEASE)
    standby = None
    try:
        first = wait_until(lambda: holder(k), bool, what="a leader")
        standby = start(kubeconfig, "cm-b", "controller-manager", *LEASE)
        k("create", "deployment", "web", "--image=nginx:1", "--replicas=2")
        out = k("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert "successfully rolled out" in out
        assert holder(k) == first  # the standby waited

        os.kill(leader.pid, signal.SIGKILL)
        leader.wait()
        killed_at = time.monotonic()
        k("scale", "deployment/web", "--replicas=4")
        second = wait_until(lambda: holder(k), lambda h: h and h != first, timeout=20, what="the standby leads")
        took_over_after = time.monotonic() - killed_at
        out = k("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert "successfully rolled out" in out
        pods = [p for p in k.json("get", "pods", "-l", "app=web")["items"] if p["status"].get("phase") == "Running"]
        assert len(pods) == 4
        lease = k.json("get", "lease", "-n", "kube-system", "kube-controller-manager")
        assert lease["spec"]["holderIdentity"] == second and lease["spec"]["leaseTransitions"] >= 1
        # The lease had to run out first: the killed leader never released it.
        assert took_over_after > 1.0, took_over_after
    finally:
        for p in (leader, standby):
            if p is not None:
                stop_process(p)
