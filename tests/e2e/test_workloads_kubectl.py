"""StatefulSets, DaemonSets, Jobs, CronJobs, PodDisruptionBudgets and drain,
driven through the real kubectl against a real ``pinnace server --simulate-nodes 3``
(every controller as the server runs it, not wired up by the test).

Conformance: "StatefulSet Basic StatefulSet functionality should perform rolling
updates and roll backs of template modifications", "Daemon set should run and stop
simple daemon", "Jobs should run a job to completion when tasks succeed",
"CronJob should support CronJob API operations", "DisruptionController should block
an eviction until the PDB is updated to allow it".
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import run_server
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory) -> Iterator[Kubectl]:
    data = tmp_path_factory.mktemp("workloads-e2e")
    with run_server(data, "--simulate-nodes", "3") as server:
        k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
        wait_until(lambda: k.json("get", "nodes")["items"], lambda n: len(n) == 3, what="3 simulated nodes")
        yield k


def apply(k: Kubectl, obj: dict) -> None:
    k("apply", "-f", "-", input=json.dumps(obj))


def template(app: str, **annotations: str) -> dict:
    return {"metadata": {"labels": {"app": app}, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_statefulset_rollout_and_undo(kubectl):
    k = kubectl
    apply(k, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
              "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}})
    apply(k, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
              "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                       "template": template("db")}})
    out = k("rollout", "status", "statefulset/db", "--timeout=60s", timeout=90)
    assert "roll out complete: 3 new pods have been updated" in out, out
    pods = wait_until(lambda: k.json("get", "pods", "-l", "app=db")["items"],
                      lambda ps: len(ps) == 3 and all(p["status"].get("phase") == "Running" for p in ps))
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1", "db-2"]
    assert {p["spec"]["hostname"] for p in pods} == {"db-0", "db-1", "db-2"}
    assert {p["spec"]["subdomain"] for p in pods} == {"db"}

    k("set", "image", "statefulset/db", "c=busybox:2")
    k("rollout", "status", "statefulset/db", "--timeout=60s", timeout=90)
    assert all(p["spec"]["containers"][0]["image"] == "busybox:2"
               for p in k.json("get", "pods", "-l", "app=db")["items"])
    assert "rolled back" in k("rollout", "undo", "statefulset/db")
    k("rollout", "status", "statefulset/db", "--timeout=60s", timeout=90)
    wait_until(lambda: k.json("get", "pods", "-l", "app=db")["items"], lambda ps: len(ps) == 3 and all(
        p["spec"]["containers"][0]["image"] == "busybox" for p in ps), what="template rolled back")
    history = k("rollout", "history", "statefulset/db")
    assert len([line for line in history.splitlines()[2:] if line.strip()]) >= 2, history


def test_daemonset_runs_one_pod_per_node(kubectl):
    k = kubectl
    apply(k, {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
              "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}})
    k("rollout", "status", "daemonset/agent", "--timeout=60s", timeout=90)
    pods = k.json("get", "pods", "-l", "app=agent")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["sim-node-0", "sim-node-1", "sim-node-2"]
    ds = k.json("get", "daemonset", "agent")
    assert ds["status"]["desiredNumberScheduled"] == ds["status"]["numberReady"] == 3


def test_job_completes_and_cronjob_spawns_a_job(kubectl):
    k = kubectl
    apply(k, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
              "spec": {"completions": 3, "parallelism": 2, "template": {
                  "metadata": {"annotations": {"sim.pinnace.io/exit-after": "0.3"}},
                  "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    out = k("wait", "--for=condition=complete", "job/once", "--timeout=60s", timeout=90)
    assert "condition met" in out
    job = k.json("get", "job", "once")
    assert job["status"]["succeeded"] == 3 and job["status"].get("completionTime")

    apply(k, {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
              "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {
                  "metadata": {"annotations": {"sim.pinnace.io/exit-after": "0.3"}},
                  "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    k("create", "job", "manual-run", "--from=cronjob/nightly")
    k("wait", "--for=condition=complete", "job/manual-run", "--timeout=60s", timeout=90)
    job = k.json("get", "job", "manual-run")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"


def test_drain_waits_for_the_disruption_budget(kubectl):
    k = kubectl
    k("create", "deployment", "guarded", "--image=nginx:1", "--replicas=2")
    k("rollout", "status", "deployment/guarded", "--timeout=60s", timeout=90)
    apply(k, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded"},
              "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})
    wait_until(lambda: k.json("get", "pdb", "guarded").get("status", {}), lambda s: s.get("disruptionsAllowed") == 1,
               what="PDB status")
    node = k.json("get", "pods", "-l", "app=guarded")["items"][0]["spec"]["nodeName"]
    try:
        out = k("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s", timeout=90)
        assert "drained" in out, out
        pods = wait_until(lambda: k.json("get", "pods", "-l", "app=guarded")["items"], lambda ps: len(ps) == 2 and all(
            p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp") for p in ps),
            what="replacements running")
        assert node not in {p["spec"]["nodeName"] for p in pods}
        assert k.json("get", "node", node)["spec"]["unschedulable"] is True
    finally:
        k("uncordon", node)
