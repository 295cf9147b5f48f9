"""The DaemonSet controller with a scheduler, pod GC and simulated nodes, against an
in-process API server (and, where installed, the real ``kubectl``).

Conformance (/work/shared/reference/conformance.yaml):
"[sig-apps] Daemon set [Serial] should run and stop simple daemon [Conformance]" (DaemonSet-Creation),
"... should run and stop complex daemon [Conformance]" (DaemonSet-NodeSelection),
"... should retry creating failed daemon pods [Conformance]" (DaemonSet-FailedPodCreation),
"... should update pod when spec was updated and update strategy is RollingUpdate [Conformance]"
(DaemonSet-RollingUpdate), "... should rollback without unnecessary restarts [Conformance]"
(DaemonSet-Rollback), "... should verify changes to a daemon set status [Conformance]" and
"[sig-apps] ControllerRevision [Serial] should manage the lifecycle of a ControllerRevision
[Conformance]" (the revisions a DaemonSet keeps).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pinnace.client.rest import RestClient
from pinnace.controllers import controller_utils as cu
from pinnace.controllers import history
from pinnace.controllers.daemonset import DaemonSetController
from pinnace.controllers.daemonset_util import HASH_LABEL
from pinnace.controllers.podgc import PodGCController
from tests.support.cluster import Cluster, PodSamples, kubectl, running
from tests.support.waiting import eventually, get_ok

DSES = "/apis/apps/v1/namespaces/default/daemonsets"
REVS = "/apis/apps/v1/namespaces/default/controllerrevisions"
PODS = "/api/v1/namespaces/default/pods"
NODES = "/api/v1/nodes"
MERGE = "application/merge-patch+json"


def daemon_set(name: str, image: str = "busybox:1", strategy: dict | None = None, **spec: Any) -> dict:
    pod_spec = {"containers": [{"name": "c", "image": image}], **spec.pop("pod_spec", {})}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
                     **({"updateStrategy": strategy} if strategy else {}), **spec}}


async def live_pods(api, app: str) -> list[dict]:
    return [p for p in (await get_ok(api, f"{PODS}?labelSelector=app%3D{app}"))["items"]
            if not p["metadata"].get("deletionTimestamp")]


def node_of(pod: dict) -> str:
    return pod["spec"].get("nodeName", "")


async def pods_by_node(api, app: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in await live_pods(api, app):
        out.setdefault(node_of(p), []).append(p)
    return out


def running_everywhere(nodes: set[str]) -> Callable[[dict[str, list[dict]]], bool]:
    """Exactly one running, ready pod on each of ``nodes`` and none elsewhere."""
    def ok(by_node: dict[str, list[dict]]) -> bool:
        return set(by_node) == nodes and all(
            len(ps) == 1 and ps[0]["status"].get("phase") == "Running" and cu.is_pod_ready(ps[0])
            for ps in by_node.values())
    return ok


def settled(ds: dict, desired: int) -> bool:
    s = ds.get("status") or {}
    return (s.get("observedGeneration", 0) >= ds["metadata"]["generation"]
            and s.get("desiredNumberScheduled") == desired and s.get("currentNumberScheduled") == desired
            and s.get("updatedNumberScheduled", 0) == desired and s.get("numberAvailable", 0) == desired
            and s.get("numberMisscheduled") == 0)


# Simulated nodes finish graceful deletions quickly.
NODE = {"delete_grace_cap": 0.1}


def cluster(api, nodes: int = 3, **kw: Any) -> AbstractAsyncContextManager[Cluster]:
    """``nodes`` simulated nodes (sim-node-N; ``kw`` for their simulator), the DaemonSet
    controller, pod GC and the scheduler; ``Cluster.add_nodes`` starts more."""
    return running(api, nodes=nodes, component="daemonset-controller", simulator_kwargs={**NODE, **kw},
                   controllers=(DaemonSetController, lambda c, f, r: PodGCController(c, f, r, gc_period=0.3)))


async def revisions(api, ds: dict) -> list[dict]:
    items = (await get_ok(api, REVS))["items"]
    ours = [r for r in items if (cu.controller_ref(r) or {}).get("uid") == ds["metadata"]["uid"]]
    return sorted(ours, key=lambda r: r["revision"])


async def events(api, reason: str) -> list[dict]:
    return (await get_ok(api, f"/api/v1/namespaces/default/events?fieldSelector=reason%3D{reason}"))["items"]


# -- placement -----------------------------------------------------------------------------------


async def test_daemon_set_follows_nodes_added_and_removed(api):
    """DaemonSet-Creation: one pod per node, placed by the scheduler through matchFields
    node affinity; new nodes get one, deleted nodes lose it, a deleted pod is replaced."""
    async with cluster(api) as c:
        status, created = await api.call("POST", DSES, daemon_set("web"))
        assert status == 201, created
        first = {"sim-node-0", "sim-node-1", "sim-node-2"}
        by_node = await eventually(lambda: pods_by_node(api, "web"), running_everywhere(first))
        ds = await eventually(lambda: get_ok(api, f"{DSES}/web"), lambda d: settled(d, 3))
        [rev] = await revisions(api, ds)
        for name, [p] in by_node.items():
            assert p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                        "values": [name]}]}]}
            assert p["metadata"]["labels"][HASH_LABEL] == rev["metadata"]["labels"][HASH_LABEL]
            ref = cu.controller_ref(p)
            assert ref == {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "uid": ds["metadata"]["uid"],
                           "controller": True, "blockOwnerDeletion": True}
            assert p["metadata"]["generateName"] == "web-"

        added = await c.add_nodes(2, name_prefix="extra-", **NODE)
        everyone = first | set(added)
        await eventually(lambda: pods_by_node(api, "web"), running_everywhere(everyone))
        await eventually(lambda: get_ok(api, f"{DSES}/web"), lambda d: settled(d, 5))

        status, _ = await api.call("DELETE", f"{NODES}/extra-0")
        assert status == 200
        # Pod GC collects the pod of the vanished node; the desired count drops with the node.
        await eventually(lambda: pods_by_node(api, "web"), running_everywhere(everyone - {"extra-0"}))
        await eventually(lambda: get_ok(api, f"{DSES}/web"), lambda d: settled(d, 4))

        # A deleted daemon pod is replaced on its node.
        victim = by_node["sim-node-1"][0]
        await api.call("DELETE", f"{PODS}/{victim['metadata']['name']}")
        after = await eventually(lambda: pods_by_node(api, "web"), lambda b: running_everywhere(
            everyone - {"extra-0"})(b) and b["sim-node-1"][0]["metadata"]["uid"] != victim["metadata"]["uid"])
        assert after["sim-node-1"][0]["metadata"]["labels"][HASH_LABEL] == rev["metadata"]["labels"][HASH_LABEL]
        created_msgs = {e["message"] for e in await events(api, "SuccessfulCreate")}
        assert len(created_msgs) >= 6 and all(m.startswith("Created pod: web-") for m in created_msgs)


async def test_node_selector_labels_and_taints(api):
    """DaemonSet-NodeSelection: nodeSelector picks nodes and relabelling moves the daemon; a
    tainted node gets no pod unless tolerated; the automatic tolerations are on every pod."""
    async with cluster(api, nodes=2, labels={"color": "blue"}) as c:
        [plain] = await c.add_nodes(1, name_prefix="plain-", **NODE)
        [tainted] = await c.add_nodes(1, name_prefix="tainted-", **NODE, taints=[
            {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
        blue = {"sim-node-0", "sim-node-1"}
        await api.call("POST", DSES, daemon_set("sel", pod_spec={"nodeSelector": {"color": "blue"}}))
        await eventually(lambda: pods_by_node(api, "sel"), running_everywhere(blue))
        await eventually(lambda: get_ok(api, f"{DSES}/sel"), lambda d: settled(d, 2))

        # Label the plain node blue: it gets a pod; turn a blue node green: it loses its pod.
        await api.call("PATCH", f"{NODES}/{plain}", {"metadata": {"labels": {"color": "blue"}}}, content_type=MERGE)
        await eventually(lambda: pods_by_node(api, "sel"), running_everywhere(blue | {plain}))
        await api.call("PATCH", f"{NODES}/sim-node-0", {"metadata": {"labels": {"color": "green"}}},
                       content_type=MERGE)
        await eventually(lambda: pods_by_node(api, "sel"), running_everywhere({"sim-node-1", plain}))
        ds = await eventually(lambda: get_ok(api, f"{DSES}/sel"), lambda d: settled(d, 2))
        assert ds["status"]["numberMisscheduled"] == 0

        # Without a toleration the tainted node is left out (and not counted as desired).
        await api.call("POST", DSES, daemon_set("all"))
        everywhere = {"sim-node-0", "sim-node-1", plain}
        by_node = await eventually(lambda: pods_by_node(api, "all"), running_everywhere(everywhere))
        ds = await eventually(lambda: get_ok(api, f"{DSES}/all"), lambda d: settled(d, 3))
        tolerations = by_node[plain][0]["spec"]["tolerations"]
        for key, effect in (("not-ready", "NoExecute"), ("unreachable", "NoExecute"), ("disk-pressure", "NoSchedule"),
                            ("memory-pressure", "NoSchedule"), ("pid-pressure", "NoSchedule"),
                            ("unschedulable", "NoSchedule")):
            assert {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": effect} in tolerations
        assert not any(t["key"] == "node.kubernetes.io/network-unavailable" for t in tolerations)  # not hostNetwork
        assert "tolerations" not in ds["spec"]["template"]["spec"]  # added to pods, not to the DaemonSet

        # Tolerate the taint: the tainted node gets its pod.
        ds["spec"]["template"]["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Equal",
                                                          "value": "infra", "effect": "NoSchedule"}]
        status, body = await api.call("PUT", f"{DSES}/all", ds)
        assert status == 200, body
        await eventually(lambda: pods_by_node(api, "all"), lambda b: running_everywhere(everywhere | {tainted})(b)
                         and all(p[0]["spec"].get("tolerations", [])[0]["key"] == "dedicated" for p in b.values()))
        await eventually(lambda: get_ok(api, f"{DSES}/all"), lambda d: settled(d, 4))

        # A NoExecute taint the pods do not tolerate evicts the daemon from that node.
        await api.call("PATCH", f"{NODES}/{plain}", {"spec": {"taints": [
            {"key": "maintenance", "effect": "NoExecute"}]}}, content_type=MERGE)
        await eventually(lambda: pods_by_node(api, "all"),
                         running_everywhere({"sim-node-0", "sim-node-1", tainted}))
        await eventually(lambda: get_ok(api, f"{DSES}/all"), lambda d: settled(d, 3))


async def test_status_counts_with_min_ready_seconds_and_unready_pods(api):
    """DaemonSet status as Kubernetes reports it: ready vs available (minReadySeconds),
    numberUnavailable, misscheduled pods on a node that no longer fits."""
    async with cluster(api):
        await api.call("POST", DSES, daemon_set("st", minReadySeconds=2))
        # Right after the pods turn ready they are not yet available.
        ds = await eventually(lambda: get_ok(api, f"{DSES}/st"),
                              lambda d: (d.get("status") or {}).get("numberReady") == 3)
        assert ds["status"].get("numberAvailable", 0) < 3
        assert ds["status"]["numberUnavailable"] == 3 - ds["status"].get("numberAvailable", 0)
        ds = await eventually(lambda: get_ok(api, f"{DSES}/st"), lambda d: settled(d, 3))
        assert ds["status"] == {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3,
                                "numberReady": 3, "observedGeneration": 1, "updatedNumberScheduled": 3,
                                "numberAvailable": 3}

        # A pod that stops being ready: counted, but not ready or available.
        [victim] = (await pods_by_node(api, "st"))["sim-node-2"]
        await api.call("PATCH", f"{PODS}/{victim['metadata']['name']}",
                       {"metadata": {"annotations": {"sim.pinnace.io/ready": "false"}}}, content_type=MERGE)
        ds = await eventually(lambda: get_ok(api, f"{DSES}/st"), lambda d: d["status"].get("numberReady") == 2)
        assert (ds["status"]["currentNumberScheduled"], ds["status"]["numberAvailable"],
                ds["status"]["numberUnavailable"]) == (3, 2, 1)

        # A NoSchedule taint: no longer desired there, but the pod may stay → misscheduled.
        await api.call("PATCH", f"{NODES}/sim-node-0", {"spec": {"taints": [
            {"key": "dedicated", "effect": "NoSchedule"}]}}, content_type=MERGE)
        ds = await eventually(lambda: get_ok(api, f"{DSES}/st"), lambda d: d["status"].get("numberMisscheduled") == 1)
        assert ds["status"]["desiredNumberScheduled"] == 2 and ds["status"]["currentNumberScheduled"] == 2
        assert "sim-node-0" in await pods_by_node(api, "st")


async def test_failed_daemon_pod_is_deleted_and_recreated(api):
    """DaemonSet-FailedPodCreation: a pod whose phase turns Failed is deleted (event
    FailedDaemonPod) and a new one created on the same node."""
    async with cluster(api):
        await api.call("POST", DSES, daemon_set("fail"))
        by_node = await eventually(lambda: pods_by_node(api, "fail"),
                                   running_everywhere({"sim-node-0", "sim-node-1", "sim-node-2"}))
        [victim] = by_node["sim-node-1"]
        name = victim["metadata"]["name"]
        status, body = await api.call("PATCH", f"{PODS}/{name}/status", {"status": {"phase": "Failed"}},
                                      content_type=MERGE)
        assert status == 200, body
        after = await eventually(lambda: pods_by_node(api, "fail"), lambda b: running_everywhere(
            {"sim-node-0", "sim-node-1", "sim-node-2"})(b) and b["sim-node-1"][0]["metadata"]["name"] != name)
        assert after["sim-node-1"][0]["metadata"]["name"] != name
        msgs = [e["message"] for e in await events(api, "FailedDaemonPod")]
        assert f"Found failed daemon pod default/{name} on node sim-node-1, will try to kill it" in msgs
        assert any(e["message"] == f"Deleted pod: {name}" for e in await events(api, "SuccessfulDelete"))


# -- updates -------------------------------------------------------------------------------------


class NodeWatch(PodSamples):
    """Every committed state of one app's pods; each sample records, per eligible node,
    how many live pods it has and whether one of them is available (ready, not deleting)."""

    samples: list[dict[str, tuple[int, bool]]]

    def __init__(self, client: RestClient, app: str, pod_list: dict, nodes: set[str]):
        self.nodes = nodes
        super().__init__(client, app, pod_list)

    def sample(self) -> dict[str, tuple[int, bool]]:
        out: dict[str, tuple[int, bool]] = {n: (0, False) for n in self.nodes}
        for p in self.pods.values():
            node = p["spec"].get("nodeName")
            if node not in out or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            count, available = out[node]
            alive = not p["metadata"].get("deletionTimestamp")
            out[node] = (count + 1, available or (alive and cu.is_pod_ready(p)))
        return out

    def max_nodes_without_available_pod(self) -> int:
        return max(sum(1 for _, ok in s.values() if not ok) for s in self.samples)

    def max_pods_on_a_node(self) -> int:
        return max(max(c for c, _ in s.values()) for s in self.samples)


async def _roll(api, c: Cluster, name: str, strategy: dict, nodes: set[str]) -> tuple[NodeWatch, dict]:
    await api.call("POST", DSES, daemon_set(name, strategy=strategy))
    await eventually(lambda: pods_by_node(api, name), running_everywhere(nodes))
    ds = await eventually(lambda: get_ok(api, f"{DSES}/{name}"), lambda d: settled(d, len(nodes)))
    watch = NodeWatch(c.client, name, await get_ok(api, PODS), nodes)
    try:
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
        status, body = await api.call("PUT", f"{DSES}/{name}", ds)
        assert status == 200, body
        ds = await eventually(lambda: get_ok(api, f"{DSES}/{name}"),
                              lambda d: d["metadata"]["generation"] == 2 and settled(d, len(nodes)))
        await eventually(lambda: pods_by_node(api, name), lambda b: running_everywhere(nodes)(b) and all(
            p[0]["spec"]["containers"][0]["image"] == "busybox:2" for p in b.values()))
    finally:
        await watch.stop()
    return watch, ds


async def test_rolling_update_max_unavailable_one(api):
    """DaemonSet-RollingUpdate with maxUnavailable 1: never more than one node without an
    available daemon pod, never two pods on a node, and a second ControllerRevision."""
    nodes = {f"sim-node-{i}" for i in range(4)}
    async with cluster(api, nodes=4) as c:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
        watch, ds = await _roll(api, c, "ru", strategy, nodes)
        assert watch.max_nodes_without_available_pod() == 1, watch.samples  # the budget was used, not exceeded
        assert watch.max_pods_on_a_node() == 1, watch.samples
        old, new = await revisions(api, ds)
        assert (old["revision"], new["revision"]) == (1, 2)
        assert new["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"
        assert new["data"]["spec"]["template"]["$patch"] == "replace"
        assert new["metadata"]["name"] == f"ru-{new['metadata']['labels'][HASH_LABEL]}"
        assert all(p["metadata"]["labels"][HASH_LABEL] == new["metadata"]["labels"][HASH_LABEL]
                   for p in await live_pods(api, "ru"))


async def test_rolling_update_with_max_surge(api):
    """RollingUpdate with maxSurge 1 (maxUnavailable 0): the new pod starts next to the old
    one and the old one goes only once the new one is available — no node is ever without
    an available daemon pod."""
    nodes = {f"sim-node-{i}" for i in range(3)}
    async with cluster(api, nodes=3) as c:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        watch, _ = await _roll(api, c, "surge", strategy, nodes)
        assert watch.max_nodes_without_available_pod() == 0, watch.samples
        assert watch.max_pods_on_a_node() == 2, watch.samples  # surged
        for sample in watch.samples:
            assert all(count <= 2 for count, _ in sample.values()), sample


async def test_on_delete_and_revision_history_limit(api):
    """OnDelete: a new template replaces nothing until a pod is deleted; the replacement runs
    the new template.  revisionHistoryLimit keeps the revisions pods still run."""
    async with cluster(api):
        await api.call("POST", DSES, daemon_set("od", strategy={"type": "OnDelete"}, revisionHistoryLimit=1))
        nodes = {"sim-node-0", "sim-node-1", "sim-node-2"}
        before = await eventually(lambda: pods_by_node(api, "od"), running_everywhere(nodes))
        ds = await eventually(lambda: get_ok(api, f"{DSES}/od"), lambda d: settled(d, 3))
        for version in (2, 3, 4):
            ds["spec"]["template"]["spec"]["containers"][0]["image"] = f"busybox:{version}"
            status, body = await api.call("PUT", f"{DSES}/od", ds)
            assert status == 200, body
            ds = await eventually(lambda: get_ok(api, f"{DSES}/od"),
                                  lambda d, v=version: d["status"].get("observedGeneration") == v)
        assert ds["status"].get("updatedNumberScheduled", 0) == 0 and ds["status"]["numberAvailable"] == 3
        # Revisions 2 and 3 went; 1 stays because every pod still runs it.
        revs = await eventually(lambda: revisions(api, ds), lambda r: len(r) == 2)
        assert [r["revision"] for r in revs] == [1, 4]
        assert {p[0]["metadata"]["uid"] for p in (await pods_by_node(api, "od")).values()} == {
            p[0]["metadata"]["uid"] for p in before.values()}

        victim = before["sim-node-0"][0]
        await api.call("DELETE", f"{PODS}/{victim['metadata']['name']}")
        after = await eventually(lambda: pods_by_node(api, "od"), lambda b: running_everywhere(nodes)(b) and
                                 b["sim-node-0"][0]["metadata"]["uid"] != victim["metadata"]["uid"])
        assert after["sim-node-0"][0]["spec"]["containers"][0]["image"] == "busybox:4"
        assert after["sim-node-0"][0]["metadata"]["labels"][HASH_LABEL] == revs[1]["metadata"]["labels"][HASH_LABEL]
        assert after["sim-node-1"][0]["spec"]["containers"][0]["image"] == "busybox:1"
        await eventually(lambda: get_ok(api, f"{DSES}/od"), lambda d: d["status"].get("updatedNumberScheduled") == 1)


# -- kubectl -------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_rollout_status_history_and_undo(api):
    """DaemonSet-Rollback with the real kubectl: ``rollout status`` waits for the rollout,
    ``rollout history`` lists the ControllerRevisions, ``rollout undo`` of a stuck update
    restores the old template and replaces only the pod that had been updated."""
    async with cluster(api):
        await api.call("POST", DSES, daemon_set("kc"))
        rc, out = await kubectl(api, "rollout", "status", "daemonset/kc", "--timeout=20s")
        assert rc == 0 and 'daemon set "kc" successfully rolled out' in out, out
        good = await pods_by_node(api, "kc")

        # An update whose pods never become ready: the rollout stalls after one node.
        patch = {"spec": {"template": {"metadata": {"annotations": {"sim.pinnace.io/ready": "false"}},
                                       "spec": {"containers": [{"name": "c", "image": "busybox:bad"}]}}}}
        await api.call("PATCH", f"{DSES}/kc", patch, content_type="application/strategic-merge-patch+json")
        await eventually(lambda: get_ok(api, f"{DSES}/kc"), lambda d: d["status"].get("observedGeneration") == 2
                         and d["status"].get("updatedNumberScheduled") == 1)
        rc, out = await kubectl(api, "rollout", "status", "daemonset/kc", "--timeout=1s")
        assert rc != 0 and 'Waiting for daemon set "kc" rollout to finish: 1 out of 3 new pods have been updated' \
            in out, out
        rc, out = await kubectl(api, "rollout", "history", "daemonset/kc")
        assert rc == 0 and re.search(r"^1\s", out, re.M) and re.search(r"^2\s", out, re.M), out
        rc, out = await kubectl(api, "rollout", "history", "daemonset/kc", "--revision=2")
        assert rc == 0 and "busybox:bad" in out, out

        rc, out = await kubectl(api, "rollout", "undo", "daemonset/kc")
        assert rc == 0 and "rolled back" in out, out
        rc, out = await kubectl(api, "rollout", "status", "daemonset/kc", "--timeout=20s")
        assert rc == 0 and 'daemon set "kc" successfully rolled out' in out, out
        ds = await get_ok(api, f"{DSES}/kc")
        assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
        after = await eventually(lambda: pods_by_node(api, "kc"), running_everywhere(set(good)))
        kept = [n for n in good if after[n][0]["metadata"]["uid"] == good[n][0]["metadata"]["uid"]]
        assert len(kept) == 2, (good, after)  # only the one updated pod was replaced
        revs = await revisions(api, ds)
        assert [r["revision"] for r in revs] == [2, 3]  # revision 1 came back as 3
        assert revs[1]["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
        rc, out = await kubectl(api, "rollout", "history", "daemonset/kc")
        assert rc == 0 and re.search(r"^3\s", out, re.M) and not re.search(r"^1\s", out, re.M), out


async def test_revision_name_collision_bumps_collision_count(api):
    """A foreign ControllerRevision holding the name the DaemonSet's revision would get:
    status.collisionCount is raised and the revision takes the next name."""
    async with cluster(api):
        status, dry = await api.call("POST", f"{DSES}?dryRun=All", daemon_set("col"))
        assert status == 201, dry
        taken = history.revision_name("col", history.hash_revision(history.template_patch(dry), None))
        status, body = await api.call("POST", REVS, {"metadata": {"name": taken, "labels": {"other": "x"}},
                                                     "data": {"foreign": True}, "revision": 1})
        assert status == 201, body
        await api.call("POST", DSES, daemon_set("col"))
        await eventually(lambda: pods_by_node(api, "col"),
                         running_everywhere({"sim-node-0", "sim-node-1", "sim-node-2"}))
        ds = await eventually(lambda: get_ok(api, f"{DSES}/col"), lambda d: settled(d, 3))
        assert ds["status"]["collisionCount"] == 1
        [rev] = await revisions(api, ds)
        want = history.hash_revision(history.template_patch(ds), 1)
        assert rev["metadata"]["name"] == f"col-{want}" != taken
        assert rev["metadata"]["labels"][HASH_LABEL] == want
        foreign = await get_ok(api, f"{REVS}/{taken}")
        assert foreign["data"] == {"foreign": True} and not foreign["metadata"].get("ownerReferences")
