"""The kubelet with the ``process`` runtime, inside a real ``pinnace server``,
driven through the real kubectl: logs, exec, restarts with CrashLoopBackOff,
probes, init containers, env from ConfigMaps and Secrets, graceful
termination; and a second node joining by token.

Everything listens on loopback (``--node-ip 127.0.0.1``).

Conformance: "Pods should get a host IP", "Pods should be submitted and removed",
"Container Runtime blackbox test when starting a container that exits should run
with the expected status", "Probing container should be restarted with a exec
\"cat /tmp/health\" liveness probe", "Probing container with readiness probe should
not be ready before initial delay and never restart", "InitContainer should invoke
init containers on a RestartNever pod", "Kubectl exec should support exec",
"Kubectl logs should be able to retrieve and filter logs",
"ConfigMap should be consumable via environment variable",
"Secrets should be consumable from pods in env vars".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import RunningServer, run_server, stop_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[Kubectl, RunningServer]]:
    data = tmp_path_factory.mktemp("kubelet-e2e")
    with run_server(data, "--runtime", "process", "--node-ip", "127.0.0.1", "--kubelet-port", "0",
                    "--node-name", "node-a", agent=True) as server:
        k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
        wait_until(lambda: k.json("get", "nodes")["items"], lambda n: len(n) == 1 and any(
            c["type"] == "Ready" and c["status"] == "True" for c in n[0]["status"]["conditions"]), what="node Ready")
        yield k, server


@pytest.fixture
def kubectl(cluster) -> Kubectl:
    return cluster[0]


def apply(k: Kubectl, *objs: dict) -> None:
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def pod(name: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script], **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], **spec}}


def get(k: Kubectl, name: str) -> dict:
    return k.json("get", "pod", name)


def container_status(p: dict, index: int = 0) -> dict:
    return ((p.get("status") or {}).get("containerStatuses") or [{}])[index]


def test_a_finished_pod_reports_its_exit_and_logs(kubectl):
    k = kubectl
    apply(k, pod("hello", "echo hello; echo oops >&2; exit 0", restartPolicy="Never"),
          pod("failing", "echo bad; exit 3", restartPolicy="Never"))
    done = wait_until(lambda: get(k, "hello"), lambda p: p["status"].get("phase") == "Succeeded", what="Succeeded")
    term = container_status(done)["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert done["status"]["hostIP"] == "127.0.0.1" and done["status"]["podIP"]
    # stdout and stderr are two pipes: their relative order is not kept (nor is it in Kubernetes).
    assert sorted(k("logs", "hello").splitlines()) == ["hello", "oops"]
    stamped = k("logs", "hello", "--timestamps").splitlines()
    assert len(stamped) == 2 and all(line[:4].isdigit() for line in stamped)
    assert sorted(line.split(" ", 1)[1] for line in stamped) == ["hello", "oops"]
    failed = wait_until(lambda: get(k, "failing"), lambda p: p["status"].get("phase") == "Failed", what="Failed")
    term = container_status(failed)["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    wait_until(lambda: k("get", "events", "--field-selector", "involvedObject.name=hello"),
               lambda events: "Created container main" in events and "Started container main" in events,
               what="Created and Started events")


def test_exec_returns_output_and_exit_code(kubectl):
    k = kubectl
    apply(k, pod("shell", "sleep 3600", terminationGracePeriodSeconds=1))
    wait_until(lambda: get(k, "shell"), lambda p: container_status(p).get("ready") is True, what="ready")
    assert k("exec", "shell", "--", "sh", "-c", "echo from-exec").strip() == "from-exec"
    proc = k.run("exec", "shell", "--", "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7, proc.stderr
    proc = k.run("exec", "-i", "shell", "--", "cat", input="piped\n", check=False)
    assert proc.stdout == "piped\n"
    k("delete", "pod", "shell", "--wait=true", timeout=30)


def test_crash_loop_backs_off(kubectl):
    k = kubectl
    apply(k, pod("crasher", "echo attempt; exit 1", terminationGracePeriodSeconds=0))
    p = wait_until(lambda: get(k, "crasher"), lambda p: container_status(p).get("restartCount", 0) >= 1 and (
        container_status(p).get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"),
        timeout=40, what="CrashLoopBackOff")
    status = container_status(p)
    assert "back-off 10s restarting failed container=main" in status["state"]["waiting"]["message"]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert k("logs", "crasher", "--previous").strip() == "attempt"
    wait_until(lambda: k("get", "events", "--field-selector", "involvedObject.name=crasher"),
               lambda events: "BackOff" in events, what="BackOff event")
    k("delete", "pod", "crasher", "--wait=false")


def test_liveness_failure_restarts_and_readiness_toggles(kubectl, tmp_path):
    k = kubectl
    health, ready = tmp_path / "healthy", tmp_path / "ready"
    health.touch()
    spec = {"container": {
        "livenessProbe": {"exec": {"command": ["test", "-f", str(health)]}, "periodSeconds": 1,
                          "failureThreshold": 1},
        "readinessProbe": {"exec": {"command": ["test", "-f", str(ready)]}, "periodSeconds": 1}},
        "terminationGracePeriodSeconds": 1}
    apply(k, pod("probed", "sleep 3600", **spec))
    p = wait_until(lambda: get(k, "probed"), lambda p: container_status(p).get("state", {}).get("running"),
                   what="running")
    assert container_status(p)["ready"] is False  # readiness starts as failure
    ready.touch()
    wait_until(lambda: get(k, "probed"), lambda p: container_status(p).get("ready") is True, what="ready")
    ready.unlink()
    wait_until(lambda: get(k, "probed"), lambda p: container_status(p).get("ready") is False, what="unready")
    health.unlink()
    p = wait_until(lambda: get(k, "probed"), lambda p: container_status(p).get("restartCount", 0) >= 1,
                   timeout=30, what="restart after liveness failure")
    wait_until(lambda: k("get", "events", "--field-selector", "involvedObject.name=probed"),
               lambda events: "Liveness probe failed" in events
               and "failed liveness probe, will be restarted" in events,
               what="liveness events")
    k("delete", "pod", "probed", "--wait=false")


def test_init_containers_run_in_order_with_env_from_configmap_and_secret(kubectl, tmp_path):
    k = kubectl
    trail = tmp_path / "trail"
    apply(k, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"color": "blue"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t"}})
    spec = pod("ordered", f"echo main $COLOR $PASSWORD $POD_NAME >> {trail}", restartPolicy="Never",
               initContainers=[{"name": f"init-{i}", "image": "busybox",
                                "command": ["sh", "-c", f"echo init-{i} >> {trail}"]} for i in (1, 2)])
    spec["spec"]["containers"][0]["env"] = [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    apply(k, spec)
    p = wait_until(lambda: get(k, "ordered"), lambda p: p["status"].get("phase") == "Succeeded", what="Succeeded")
    assert trail.read_text().splitlines() == ["init-1", "init-2", "main blue s3cr3t ordered"]
    assert [s["state"]["terminated"]["reason"] for s in p["status"]["initContainerStatuses"]] == ["Completed"] * 2


def test_missing_configmap_key_is_a_config_error(kubectl):
    k = kubectl
    spec = pod("misconfigured", "sleep 3600")
    spec["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]
    apply(k, spec)
    p = wait_until(lambda: get(k, "misconfigured"), lambda p: container_status(p).get("state", {}).get(
        "waiting", {}).get("reason") == "CreateContainerConfigError", what="CreateContainerConfigError")
    assert 'configmap "nope" not found' in container_status(p)["state"]["waiting"]["message"]
    k("delete", "pod", "misconfigured", "--wait=false")


def test_graceful_termination_delivers_sigterm(kubectl, tmp_path):
    k = kubectl
    marker = tmp_path / "terminated"
    apply(k, pod("graceful", f"trap 'echo got-TERM > {marker}; exit 0' TERM; while :; do sleep 0.1; done",
                 terminationGracePeriodSeconds=10))
    wait_until(lambda: get(k, "graceful"), lambda p: container_status(p).get("ready") is True, what="ready")
    started = time.monotonic()
    k("delete", "pod", "graceful", "--wait=true", timeout=30)
    assert marker.read_text().strip() == "got-TERM"
    assert time.monotonic() - started < 8  # it exited on SIGTERM, not after the grace period


def test_agent_joins_with_a_token_and_a_bad_token_is_refused(cluster, tmp_path):
    k, server = cluster
    token = subprocess.run([sys.executable, "-m", "pinnace.cli", "token", "create", "--ttl", "10m", "--data-dir",
                            str(server.data_dir)], capture_output=True, text=True, check=True).stdout.strip()
    assert token.startswith("K10") and "::" in token
    base = [sys.executable, "-m", "pinnace.cli", "agent", "--server", server.url, "--runtime", "process",
            "--node-ip", "127.0.0.1", "--kubelet-port", "0", "--proxy-mode", "none"]
    bad = subprocess.run([*base, "--token", token.rsplit(".", 1)[0] + ".0000000000000000", "--node-name", "intruder",
                          "--data-dir", str(tmp_path / "bad")], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "refused the bootstrap token" in bad.stderr, bad.stderr
    log = open(tmp_path / "agent.log", "wb")  # the agent process writes to it; closed below
    agent = subprocess.Popen([*base, "--token", token, "--node-name", "node-b", "--data-dir", str(tmp_path / "b")],
                             stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        node = wait_until(lambda: k.run("get", "node", "node-b", "-o", "json", check=False), lambda r: r.returncode == 0
                          and any(c["type"] == "Ready" and c["status"] == "True"
                                  for c in json.loads(r.stdout)["status"]["conditions"]), timeout=60,
                          what="node-b Ready")
        assert json.loads(node.stdout)["metadata"]["labels"]["kubernetes.io/hostname"] == "node-b"
        apply(k, pod("on-b", "echo running on b", restartPolicy="Never", nodeName="node-b"))
        wait_until(lambda: get(k, "on-b"), lambda p: p["status"].get("phase") == "Succeeded", what="pod on node-b")
        assert k("logs", "on-b").strip() == "running on b"
        assert Path(tmp_path / "b" / "kubelet.kubeconfig").exists()
    finally:
        stop_process(agent)
        log.close()
