"""Container log rotation in a real ``pinnace server`` (process runtime): a pod that writes
more than ``--container-log-max-size`` gets its log rotated as the kubelet does it
(``0.log.<timestamp>``, at most ``--container-log-max-files``), and ``kubectl logs``
still shows the lines across the rotated file and the new one.

Conformance: "Kubectl logs should be able to retrieve and filter logs".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import RunningServer, run_server
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]

# ~12 KiB of numbered lines per second, then the pod keeps running (only running containers rotate).
WRITER = ('i=0; while :; do j=0; while [ $j -lt 100 ]; do echo "line $i ........................................'
          '......................................................................"; i=$((i+1)); j=$((j+1)); '
          'done; sleep 1; done')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[Kubectl, RunningServer]]:
    data = tmp_path_factory.mktemp("log-rotation")
    with run_server(data, "--runtime", "process", "--node-ip", "127.0.0.1", "--kubelet-port", "0",
                    "--node-name", "rot-node", "--container-log-max-size", "16Ki", "--container-log-max-files", "3",
                    agent=True) as server:
        k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
        wait_until(lambda: k.json("get", "nodes")["items"], lambda n: len(n) == 1, what="node registered")
        yield k, server


def numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines()]


def test_a_growing_log_is_rotated_and_still_read(cluster):
    k, server = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chatty"},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", WRITER]}]}}
    k("apply", "-f", "-", input=json.dumps(pod))
    uid = wait_until(lambda: k.json("get", "pod", "chatty"), lambda p: p["status"].get("phase") == "Running",
                     what="Running")["metadata"]["uid"]
    log_dir = Path(server.data_dir) / "agent" / "pods-logs" / f"default_chatty_{uid}" / "main"

    def files() -> list[str]:
        return sorted(p.name for p in log_dir.iterdir()) if log_dir.exists() else []

    # Every 10 s the kubelet checks: two rotations, so the older rotated file is compressed too.
    names = wait_until(files, lambda f: any(n.endswith(".gz") for n in f), timeout=60, what="two rotations",
                       interval=0.5)
    assert names[0] == "0.log" and len(names) <= 3
    assert all(n.startswith("0.log.") and len(n.split(".")[2]) == len("20060102-150405") for n in names[1:])
    logged = numbers(k("logs", "chatty"))
    # The plain rotated file and the current one: contiguous lines, not from the start any more.
    assert logged and logged == list(range(logged[0], logged[0] + len(logged))) and logged[0] > 0
    tail = numbers(k("logs", "chatty", "--tail", "150"))
    assert len(tail) == 150 and tail == list(range(tail[0], tail[0] + 150))
    k("delete", "pod", "chatty", "--wait=true", timeout=60)
