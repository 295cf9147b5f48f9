"""The controller manager driven through the real kubectl against a real
``pinnace server --simulate-nodes 3`` process: Deployment rollouts (status,
history, undo, restart, set image, scale), a stuck rollout, cordon, events in
``kubectl describe``, cascading deletes, namespace deletion, and a node that
stops heartbeating.

Conformance: "Deployment should run the lifecycle of a Deployment",
"RollingUpdateDeployment should delete old pods and create new ones",
"Namespaces should ensure that all pods are removed when a namespace is deleted",
"Garbage collector should orphan RS created by deployment when deleteOptions.PropagationPolicy is Orphan",
"Garbage collector should keep the rc around until all its pods are deleted if the deleteOptions says so"
(foreground), "Taints NoExecute evicts pods that do not tolerate the taint".
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

GRACE = 2  # --node-monitor-grace-period of the server under test


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory) -> Iterator[Kubectl]:
    data = tmp_path_factory.mktemp("controllers-e2e")
    with run_server(data, "--simulate-nodes", "3", "--node-monitor-grace-period", str(GRACE)) as server:
        k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
        wait_until(lambda: k.json("get", "nodes")["items"], lambda n: len(n) == 3, what="3 simulated nodes")
        yield k


def pods(k: Kubectl, selector: str, namespace: str = "default") -> list[dict]:
    """Live (not terminating) pods matching ``selector``."""
    items = k.json("get", "pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running_ready(p: dict) -> bool:
    return p["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])


def rollout_ok(k: Kubectl, kind_name: str, namespace: str = "default") -> None:
    out = k("rollout", "status", kind_name, "-n", namespace, "--timeout=60s", timeout=90)
    assert "successfully rolled out" in out, out


def test_deployment_rollout_scale_set_image_history_undo_restart(kubectl):
    k = kubectl
    k("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
    rollout_ok(k, "deployment/web")
    assert len([p for p in pods(k, "app=web") if running_ready(p)]) == 3

    k("scale", "deployment/web", "--replicas=5")
    rollout_ok(k, "deployment/web")
    assert len(pods(k, "app=web")) == 5
    k("scale", "deployment/web", "--replicas=2")
    wait_until(lambda: pods(k, "app=web"), lambda p: len(p) == 2, what="scaled down to 2")

    k("set", "image", "deployment/web", "nginx=nginx:1.26")
    rollout_ok(k, "deployment/web")
    wait_until(lambda: pods(k, "app=web"), lambda ps: len(ps) == 2 and all(
        p["spec"]["containers"][0]["image"] == "nginx:1.26" for p in ps), what="new image everywhere")
    history = k("rollout", "history", "deployment/web")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"], history

    assert "rolled back" in k("rollout", "undo", "deployment/web")
    rollout_ok(k, "deployment/web")
    d = k.json("get", "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    wait_until(lambda: pods(k, "app=web"), lambda ps: len(ps) == 2 and all(
        p["spec"]["containers"][0]["image"] == "nginx:1.25" for p in ps), what="old image back")

    assert "restarted" in k("rollout", "restart", "deployment/web")
    rollout_ok(k, "deployment/web")
    assert json.loads(k("get", "rs", "-l", "app=web", "-o", "json"))["items"].__len__() == 3

    # The story of the rollout, as kubectl tells it.
    describe = k("describe", "deployment", "web")
    assert "ScalingReplicaSet" in describe and "Scaled up replica set web-" in describe, describe
    assert "Scaled down replica set web-" in describe, describe
    events = k.json("get", "events")["items"]
    reasons = {(e["source"].get("component"), e["reason"]) for e in events}
    assert ("deployment-controller", "ScalingReplicaSet") in reasons
    assert ("replicaset-controller", "SuccessfulCreate") in reasons
    assert ("replicaset-controller", "SuccessfulDelete") in reasons
    assert any(reason == "Scheduled" for _, reason in reasons), reasons
    k("delete", "deployment", "web")
    wait_until(lambda: pods(k, "app=web"), lambda p: not p, what="pods gone with the deployment")


def test_stuck_rollout_reports_deadline_and_undo_recovers(kubectl):
    k = kubectl
    k("create", "deployment", "stuck", "--image=nginx:1", "--replicas=2")
    rollout_ok(k, "deployment/stuck")
    patch = {"spec": {"progressDeadlineSeconds": 3, "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                      "template": {"metadata": {"annotations": {"sim.pinnace.io/ready": "false"}}}}}
    k("patch", "deployment", "stuck", "--type=merge", "-p", json.dumps(patch))
    proc = k.run("rollout", "status", "deployment/stuck", "--timeout=30s", check=False, timeout=60)
    assert proc.returncode != 0 and 'deployment "stuck" exceeded its progress deadline' in proc.stderr + proc.stdout
    d = k.json("get", "deployment", "stuck")
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert d["status"]["availableReplicas"] == 2  # maxUnavailable 0: the old pods kept serving

    k("rollout", "undo", "deployment/stuck")
    rollout_ok(k, "deployment/stuck")
    assert "sim.pinnace.io/ready" not in json.dumps(k.json("get", "deployment", "stuck")["spec"]["template"])
    k("delete", "deployment", "stuck")


def test_cordoned_node_gets_no_new_pods(kubectl):
    k = kubectl
    k("cordon", "sim-node-0")
    try:
        assert "SchedulingDisabled" in k("get", "node", "sim-node-0")
        k("create", "deployment", "spread", "--image=nginx:1", "--replicas=6")
        rollout_ok(k, "deployment/spread")
        nodes = {p["spec"]["nodeName"] for p in pods(k, "app=spread")}
        assert nodes and "sim-node-0" not in nodes, nodes
        node = k.json("get", "node", "sim-node-0")
        assert node["spec"]["unschedulable"] is True
        # Cordoning is not a health problem: no NoExecute taint, nothing evicted.
        assert all(t["effect"] != "NoExecute" for t in node["spec"].get("taints") or [])
    finally:
        k("uncordon", "sim-node-0")
    assert "SchedulingDisabled" not in k("get", "node", "sim-node-0")
    k("delete", "deployment", "spread")


def test_cascading_delete_orphan_and_foreground(kubectl):
    k = kubectl
    k("create", "deployment", "orphans", "--image=nginx:1", "--replicas=2")
    rollout_ok(k, "deployment/orphans")
    k("delete", "deployment", "orphans", "--cascade=orphan")
    rs = wait_until(lambda: k.json("get", "rs", "-l", "app=orphans")["items"],
                    lambda items: len(items) == 1 and not items[0]["metadata"].get("ownerReferences"),
                    what="replica set released")
    assert len(pods(k, "app=orphans")) == 2

    k("delete", "rs", rs[0]["metadata"]["name"], "--cascade=foreground", "--wait=true", "--timeout=60s",
      timeout=90)
    # Foreground: the owner is gone only after its pods are.
    assert pods(k, "app=orphans") == []


def test_namespace_deletion_removes_everything(kubectl):
    k = kubectl
    k("create", "namespace", "doomed")
    k("create", "deployment", "app", "--image=nginx:1", "--replicas=2", "-n", "doomed")
    k("create", "configmap", "settings", "--from-literal=a=b", "-n", "doomed")
    rollout_ok(k, "deployment/app", "doomed")
    wait_until(lambda: k.json("get", "serviceaccounts", "-n", "doomed")["items"],
               lambda items: any(sa["metadata"]["name"] == "default" for sa in items), what="default SA")
    k("delete", "namespace", "doomed", "--timeout=60s", timeout=90)
    proc = k.run("get", "namespace", "doomed", check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr, proc.stderr
    assert k.json("get", "pods", "-A", "--field-selector", "metadata.namespace=doomed")["items"] == []


def test_silent_node_is_tainted_and_its_pods_move(kubectl):
    k = kubectl
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "movers"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "movers"}},
                 "template": {"metadata": {"labels": {"app": "movers"}}, "spec": {
                     "containers": [{"name": "c", "image": "nginx:1"}],
                     "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                      "effect": "NoExecute", "tolerationSeconds": 1}]}}}}
    k("apply", "-f", "-", input=json.dumps(manifest))
    rollout_ok(k, "deployment/movers")
    victim = pods(k, "app=movers")[0]["spec"]["nodeName"]
    k("annotate", "node", victim, "sim.pinnace.io/heartbeat=stop")
    try:
        node = wait_until(lambda: k.json("get", "node", victim), lambda n: any(
            t["key"] == "node.kubernetes.io/unreachable" and t["effect"] == "NoExecute"
            for t in n["spec"].get("taints") or []), timeout=GRACE + 10, what="unreachable taint")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "Unknown"
        # Evicted after tolerationSeconds, replaced on the healthy nodes.
        wait_until(lambda: pods(k, "app=movers"), lambda ps: len(ps) == 6 and all(
            p["spec"].get("nodeName") not in (None, victim) and running_ready(p) for p in ps),
            timeout=GRACE + 1 + 20, what="all replicas on healthy nodes")
        assert "TaintManagerEviction" in {e["reason"] for e in k.json("get", "events")["items"]}
    finally:
        k("annotate", "node", victim, "sim.pinnace.io/heartbeat-")
    wait_until(lambda: k.json("get", "node", victim), lambda n: not n["spec"].get("taints"),
               what="taints removed once the node is back")
    k("delete", "deployment", "movers")
