"""The Deployment controller with the ReplicaSet controller, a scheduler and
simulated nodes, against an in-process API server.

Conformance: "Deployment should run the lifecycle of a Deployment",
"RollingUpdateDeployment should delete old pods and create new ones",
"RecreateDeployment should delete old pods and create new ones",
"deployment should support rollover", "deployment should support proportional scaling",
"Deployment should have a working scale subresource" behaviours.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import re
import shutil
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pinnace.controllers import controller_utils as cu
from pinnace.controllers.deployment import DeploymentController
from pinnace.controllers.deployment_util import REVISION
from pinnace.controllers.replicaset import ReplicaSetController
from tests.support import waiting
from tests.support.cluster import Cluster, PodSamples, kubectl, running
from tests.support.waiting import get_ok

DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
RSES = "/apis/apps/v1/namespaces/default/replicasets"
PODS = "/api/v1/namespaces/default/pods"


def deployment(name: str, replicas: int = 3, image: str = "nginx:1", **spec: Any) -> dict:
    template_meta = spec.pop("template_meta", {})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, **template_meta},
                                  "spec": {"containers": [{"name": "c", "image": image,
                                                           "resources": {"requests": {"cpu": "10m"}}}]}},
                     **spec}}


# Rollouts take a while: a longer wait than the shared default.
eventually = functools.partial(waiting.eventually, timeout=15)


def cond(d: dict, ctype: str) -> dict:
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def complete(d: dict, replicas: int | None = None) -> bool:
    want = d["spec"]["replicas"] if replicas is None else replicas
    s = d.get("status") or {}
    return (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas", 0) == want
            and s.get("replicas", 0) == want and s.get("availableReplicas", 0) == want
            and cond(d, "Progressing").get("reason") == "NewReplicaSetAvailable")


def cluster(api) -> AbstractAsyncContextManager[Cluster]:
    return running(api, controllers=(ReplicaSetController, DeploymentController), component="deployment-controller",
                   simulator_kwargs={"cpu": "8", "delete_grace_cap": 0.1})


async def owned_rses(api, d: dict) -> list[dict]:
    items = (await get_ok(api, RSES))["items"]
    ours = [rs for rs in items if (cu.controller_ref(rs) or {}).get("uid") == d["metadata"]["uid"]]
    return sorted(ours, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))


async def live_pods(api, app: str) -> list[dict]:
    return [p for p in (await get_ok(api, f"{PODS}?labelSelector=app%3D{app}"))["items"]
            if not p["metadata"].get("deletionTimestamp")]


async def test_deployment_runs_scales_and_reports(api):
    async with cluster(api):
        status, created = await api.call("POST", DEPLOYS, deployment("web"))
        assert status == 201, created
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/web"), complete)
        assert cond(d, "Available") == {**cond(d, "Available"), "status": "True", "reason": "MinimumReplicasAvailable",
                                        "message": "Deployment has minimum availability."}
        assert d["status"]["readyReplicas"] == 3 and "unavailableReplicas" not in d["status"]
        assert d["metadata"]["annotations"][REVISION] == "1"
        [rs] = await owned_rses(api, d)
        pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{pod_hash}" and len(pod_hash) == 10
        assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == pod_hash
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"
        pods = await live_pods(api, "web")
        assert len(pods) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods)
        assert all(p["status"]["phase"] == "Running" for p in pods)
        assert cond(d, "Progressing")["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'

        # Scale up, then down, through the scale subresource.
        await api.call("PATCH", f"{DEPLOYS}/web/scale", {"spec": {"replicas": 5}},
                       content_type="application/merge-patch+json")
        await eventually(lambda: get_ok(api, f"{DEPLOYS}/web"), lambda x: complete(x, 5))
        assert len(await live_pods(api, "web")) == 5
        await api.call("PATCH", f"{DEPLOYS}/web", {"spec": {"replicas": 2}},
                       content_type="application/merge-patch+json")
        await eventually(lambda: get_ok(api, f"{DEPLOYS}/web"), lambda x: complete(x, 2))
        await eventually(lambda: live_pods(api, "web"), lambda p: len(p) == 2)
        [rs] = await owned_rses(api, d)
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "2"

        events = (await get_ok(api, "/api/v1/namespaces/default/events?fieldSelector=reason%3DScalingReplicaSet")
                  )["items"]
        messages = {e["message"] for e in events}
        assert f"Scaled up replica set web-{pod_hash} to 3 from 0" in messages
        assert f"Scaled up replica set web-{pod_hash} to 5 from 3" in messages
        assert f"Scaled down replica set web-{pod_hash} to 2 from 5" in messages


class PodWatch(PodSamples):
    """Every pod state of one app, in the order the API server committed them; each sample is
    (available, total, pods per pod-template-hash)."""

    samples: list[tuple[int, int, dict[str, int]]]

    def sample(self) -> tuple[int, int, dict[str, int]]:
        alive = [p for p in self.pods.values() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        # Terminating pods no longer count as replicas (Kubernetes' view too), but they
        # are still present for Recreate's "old pods gone" guarantee.
        active = [p for p in alive if not p["metadata"].get("deletionTimestamp")]
        available = sum(1 for p in active if cu.is_pod_ready(p))
        hashes: dict[str, int] = {}
        for p in alive:
            h = p["metadata"]["labels"].get("pod-template-hash", "")
            hashes[h] = hashes.get(h, 0) + 1
        return available, len(active), hashes


async def test_rolling_update_respects_surge_and_unavailability(api):
    async with cluster(api) as c:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
        await api.call("POST", DEPLOYS, deployment("roll", replicas=4, strategy=strategy))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/roll"), complete)
        pods = await get_ok(api, PODS)
        watch = PodWatch(c.client, "roll", pods)
        try:
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
            status, body = await api.call("PUT", f"{DEPLOYS}/roll", d)
            assert status == 200, body
            d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/roll"),
                                 lambda x: x["metadata"]["generation"] == 2 and complete(x), timeout=20)
            await asyncio.sleep(0.3)
        finally:
            await watch.stop()
        assert watch.samples, "no pod events seen"
        for available, total, _ in watch.samples:
            assert available >= 4 - 1, watch.samples
            assert total <= 4 + 1, watch.samples
        assert any(total == 5 for _, total, _ in watch.samples)  # the surge was used
        assert any(len(hashes) == 2 for _, _, hashes in watch.samples)  # old and new side by side
        assert d["metadata"]["annotations"][REVISION] == "2"
        old, new = await owned_rses(api, d)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)
        assert new["metadata"]["annotations"][REVISION] == "2"
        assert all(p["spec"]["containers"][0]["image"] == "nginx:2" for p in await live_pods(api, "roll"))


async def test_stuck_rollout_times_out_and_rollback_reuses_the_old_replica_set(api):
    async with cluster(api):
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        await api.call("POST", DEPLOYS, deployment("stuck", replicas=2, strategy=strategy, progressDeadlineSeconds=3))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/stuck"), complete)
        good_template = copy.deepcopy(d["spec"]["template"])
        [good] = await owned_rses(api, d)
        d["spec"]["template"]["metadata"]["annotations"] = {"sim.pinnace.io/ready": "false"}
        await api.call("PUT", f"{DEPLOYS}/stuck", d)
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/stuck"),
                             lambda x: cond(x, "Progressing").get("reason") == "ProgressDeadlineExceeded", timeout=15)
        _, bad = await owned_rses(api, d)
        progressing = cond(d, "Progressing")
        assert progressing["status"] == "False"
        assert progressing["message"] == f'ReplicaSet "{bad["metadata"]["name"]}" has timed out progressing.'
        assert cond(d, "Available")["status"] == "True"  # maxUnavailable 0: the old pods kept serving
        assert d["status"]["updatedReplicas"] == 1 and d["status"]["unavailableReplicas"] == 1
        if shutil.which("kubectl"):
            rc, out = await kubectl(api, "rollout", "status", "deployment/stuck", "--timeout=10s")
            assert rc != 0 and 'deployment "stuck" exceeded its progress deadline' in out, out
        # Roll back the way `kubectl rollout undo` does: put the old template back.
        d["spec"]["template"] = good_template
        await api.call("PUT", f"{DEPLOYS}/stuck", d)
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/stuck"),
                             lambda x: x["metadata"]["generation"] == 3 and complete(x))
        rses = await owned_rses(api, d)
        assert [rs["metadata"]["name"] for rs in rses] == [bad["metadata"]["name"], good["metadata"]["name"]]
        reused = rses[-1]
        assert reused["metadata"]["uid"] == good["metadata"]["uid"]
        assert reused["metadata"]["annotations"][REVISION] == "3"
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        assert d["metadata"]["annotations"][REVISION] == "3"
        assert rses[0]["spec"]["replicas"] == 0
        await eventually(lambda: live_pods(api, "stuck"), lambda p: len(p) == 2 and all(
            x["metadata"]["labels"]["pod-template-hash"] == good["metadata"]["labels"]["pod-template-hash"] for x in p))


async def test_recreate_never_runs_old_and_new_pods_together(api):
    async with cluster(api) as c:
        await api.call("POST", DEPLOYS, deployment("rec", replicas=3, strategy={"type": "Recreate"}))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/rec"), complete)
        watch = PodWatch(c.client, "rec", await get_ok(api, PODS))
        try:
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
            await api.call("PUT", f"{DEPLOYS}/rec", d)
            d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/rec"),
                                 lambda x: x["metadata"]["generation"] == 2 and complete(x), timeout=20)
        finally:
            await watch.stop()
        assert any(total == 0 for _, total, _ in watch.samples)  # everything went down first
        for _, _, hashes in watch.samples:
            assert len(hashes) <= 1, watch.samples
        old, new = await owned_rses(api, d)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)


async def test_revision_history_limit_prunes_old_replica_sets(api):
    async with cluster(api):
        await api.call("POST", DEPLOYS, deployment("hist", replicas=1, revisionHistoryLimit=1))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/hist"), complete)
        for version in (2, 3, 4):
            d["spec"]["template"]["spec"]["containers"][0]["image"] = f"nginx:{version}"
            await api.call("PUT", f"{DEPLOYS}/hist", d)
            d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/hist"),
                                 lambda x, v=version: x["metadata"]["generation"] == v and complete(x))
        rses = await eventually(lambda: owned_rses(api, d), lambda r: len(r) == 2)
        assert [rs["metadata"]["annotations"][REVISION] for rs in rses] == ["3", "4"]
        assert d["metadata"]["annotations"][REVISION] == "4"


async def test_paused_deployment_scales_but_does_not_roll_out(api):
    async with cluster(api):
        await api.call("POST", DEPLOYS, deployment("pz", replicas=2))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/pz"), complete)
        merge = "application/merge-patch+json"
        await api.call("PATCH", f"{DEPLOYS}/pz", {"spec": {"paused": True}}, content_type=merge)
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/pz"),
                             lambda x: cond(x, "Progressing").get("reason") == "DeploymentPaused")
        assert cond(d, "Progressing")["status"] == "Unknown"
        assert cond(d, "Progressing")["message"] == "Deployment is paused"
        await api.call("PATCH", f"{DEPLOYS}/pz", {"spec": {"replicas": 4, "template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, content_type=merge)
        await eventually(lambda: get_ok(api, f"{DEPLOYS}/pz"),
                         lambda x: x["status"].get("observedGeneration") == x["metadata"]["generation"]
                         and x["status"].get("availableReplicas") == 4)
        assert len(await owned_rses(api, d)) == 1  # no rollout while paused
        assert all(p["spec"]["containers"][0]["image"] == "nginx:1" for p in await live_pods(api, "pz"))
        await api.call("PATCH", f"{DEPLOYS}/pz", {"spec": {"paused": False}}, content_type=merge)
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/pz"), lambda x: complete(x, 4), timeout=20)
        assert len(await owned_rses(api, d)) == 2
        await eventually(lambda: live_pods(api, "pz"),
                         lambda p: len(p) == 4 and all(x["spec"]["containers"][0]["image"] == "nginx:2" for x in p))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_rollout_status_restart_pause_resume_undo(api):
    async with cluster(api):
        await api.call("POST", DEPLOYS, deployment("kc", replicas=2))
        rc, out = await kubectl(api, "rollout", "status", "deployment/kc", "--timeout=20s")
        assert rc == 0 and 'deployment "kc" successfully rolled out' in out, out

        rc, out = await kubectl(api, "rollout", "restart", "deployment/kc")
        assert rc == 0, out
        rc, out = await kubectl(api, "rollout", "status", "deployment/kc", "--timeout=20s")
        assert rc == 0 and 'deployment "kc" successfully rolled out' in out, out
        d = await get_ok(api, f"{DEPLOYS}/kc")
        assert d["metadata"]["annotations"][REVISION] == "2"
        assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]

        rc, out = await kubectl(api, "rollout", "pause", "deployment/kc")
        assert rc == 0 and "paused" in out, out
        await eventually(lambda: get_ok(api, f"{DEPLOYS}/kc"),
                         lambda x: cond(x, "Progressing").get("reason") == "DeploymentPaused")
        rc, out = await kubectl(api, "rollout", "resume", "deployment/kc")
        assert rc == 0 and "resumed" in out, out
        await eventually(lambda: get_ok(api, f"{DEPLOYS}/kc"),
                         lambda x: cond(x, "Progressing").get("reason") in ("DeploymentResumed",
                                                                            "NewReplicaSetAvailable"))

        rc, out = await kubectl(api, "rollout", "history", "deployment/kc")
        assert rc == 0 and re.search(r"^1\s", out, re.M) and re.search(r"^2\s", out, re.M), out
        rc, out = await kubectl(api, "rollout", "undo", "deployment/kc")
        assert rc == 0 and "rolled back" in out, out
        rc, out = await kubectl(api, "rollout", "status", "deployment/kc", "--timeout=20s")
        assert rc == 0 and 'deployment "kc" successfully rolled out' in out, out
        d = await get_ok(api, f"{DEPLOYS}/kc")
        assert d["metadata"]["annotations"][REVISION] == "3"
        assert "restartedAt" not in str(d["spec"]["template"])
        rses = await owned_rses(api, d)
        assert len(rses) == 2 and rses[-1]["metadata"]["annotations"].get(
            "deployment.kubernetes.io/revision-history") == "1"


async def test_resizing_mid_rollout_scales_replica_sets_proportionally(api):
    async with cluster(api):
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}
        await api.call("POST", DEPLOYS, deployment("prop", replicas=10, strategy=strategy))
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/prop"), complete)
        # A rollout that cannot finish: the new pods never become ready.
        d["spec"]["template"]["metadata"]["annotations"] = {"sim.pinnace.io/ready": "false"}
        await api.call("PUT", f"{DEPLOYS}/prop", d)
        await eventually(lambda: owned_rses(api, d), lambda r: len(r) == 2 and r[1]["spec"]["replicas"] == 3
                         and (r[1].get("status") or {}).get("replicas") == 3)
        await api.call("PATCH", f"{DEPLOYS}/prop", {"spec": {"replicas": 20}},
                       content_type="application/merge-patch+json")
        # 20 + 3 surge = 23 allowed, 13 running: 10 more shared 10:3 → old +8, new +2.
        old, new = await eventually(lambda: owned_rses(api, d),
                                    lambda r: r[0]["spec"]["replicas"] + r[1]["spec"]["replicas"] == 23)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (18, 5)
        for rs in (old, new):
            assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"
            assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "23"


async def test_orphaned_replica_set_is_adopted_and_reused(api):
    async with cluster(api):
        d = deployment("adopt", replicas=2)
        template = copy.deepcopy(d["spec"]["template"])
        template["metadata"]["labels"]["pod-template-hash"] = "orphan"
        status, orphan = await api.call("POST", RSES, {
            "metadata": {"name": "adopt-orphan", "labels": template["metadata"]["labels"]},
            "spec": {"replicas": 1, "selector": {"matchLabels": template["metadata"]["labels"]},
                     "template": template}})
        assert status == 201, orphan
        await api.call("POST", DEPLOYS, d)
        d = await eventually(lambda: get_ok(api, f"{DEPLOYS}/adopt"), complete)
        [rs] = await owned_rses(api, d)
        assert rs["metadata"]["uid"] == orphan["metadata"]["uid"]  # adopted, not replaced
        assert rs["spec"]["replicas"] == 2 and rs["metadata"]["annotations"][REVISION] == "1"
