"""The disruption controller with simulated nodes, the scheduler and the ReplicaSet and
Deployment controllers, against an in-process API server.

Conformance (shared/reference/conformance.yaml):
"PodDisruptionBudget: Status updates" ([sig-apps] DisruptionController should observe
PodDisruptionBudget status updated) — disruptionsAllowed and the counts follow the pods;
"PodDisruptionBudget: block an eviction until the PDB is updated to allow it"
([sig-apps] DisruptionController should block an eviction until the PDB is updated to
allow it); "PodDisruptionBudget: create, update, patch, and delete object" and
"PodDisruptionBudget: update and patch status" — the controller follows spec updates
(observedGeneration) and its status writes coexist with the eviction handler's.
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from typing import Any

from pinnace.controllers.deployment import DeploymentController
from pinnace.controllers.disruption import DisruptionController
from pinnace.controllers.replicaset import ReplicaSetController
from tests.support.cluster import Cluster, ControllerFactory, running
from tests.support.waiting import eventually, get_ok

DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
PODS = "/api/v1/namespaces/default/pods"
MERGE = "application/merge-patch+json"


def deployment(name: str, replicas: int = 3, pod_spec: dict | None = None, **spec: Any) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1",
                                                           "resources": {"requests": {"cpu": "10m"}}}],
                                           **(pod_spec or {})}},
                     **spec}}


def pdb_body(name: str, labels: dict[str, str], **spec: Any) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, **spec}}


async def live_pods(api, app: str) -> list[dict]:
    return [p for p in (await get_ok(api, f"{PODS}?labelSelector=app%3D{app}"))["items"]
            if not p["metadata"].get("deletionTimestamp")]


def cluster(api, deployment_controllers: bool = True, **disruption_kw: Any) -> AbstractAsyncContextManager[Cluster]:
    """Three simulated nodes, the scheduler, the disruption controller (``disruption_kw``)
    and, unless ``deployment_controllers`` is false, the ReplicaSet and Deployment controllers."""
    controllers: list[ControllerFactory] = [ReplicaSetController, DeploymentController] if deployment_controllers \
        else []
    controllers.append(functools.partial(DisruptionController, **disruption_kw))
    return running(api, controllers=controllers, component="controllermanager",
                   simulator_kwargs={"cpu": "8", "delete_grace_cap": 0.1})


def summary(pdb: dict) -> tuple:
    s = pdb.get("status") or {}
    return (s.get("expectedPods"), s.get("desiredHealthy"), s.get("currentHealthy"), s.get("disruptionsAllowed"))


def allowed_condition(pdb: dict) -> dict:
    return next((c for c in (pdb.get("status") or {}).get("conditions") or [] if c["type"] == "DisruptionAllowed"), {})


async def test_pdb_status_for_counts_and_percentages(api):
    async with cluster(api):
        await api.call("POST", DEPLOYS, deployment("web", replicas=4))
        budgets = {
            "min-count": {"minAvailable": 3},
            "min-pct": {"minAvailable": "50%"},
            "max-count": {"maxUnavailable": 1},
            "max-pct": {"maxUnavailable": "50%"},
        }
        for name, spec in budgets.items():
            status, body = await api.call("POST", PDBS, pdb_body(name, {"app": "web"}, **spec))
            assert status == 201, body
        await api.call("POST", PDBS, pdb_body("nothing", {"app": "none"}, minAvailable=1))

        # (expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed) with 4 ready replicas.
        want = {"min-count": (4, 3, 4, 1), "min-pct": (4, 2, 4, 2), "max-count": (4, 3, 4, 1),
                "max-pct": (4, 2, 4, 2), "nothing": (0, 1, 0, 0)}
        for name, expected in want.items():
            pdb = await eventually(lambda n=name: get_ok(api, f"{PDBS}/{n}"), lambda p, e=expected: summary(p) == e)
            assert pdb["status"]["observedGeneration"] == 1
            cond = allowed_condition(pdb)
            assert (cond["status"], cond["reason"]) == (("True", "SufficientPods") if expected[3] else
                                                        ("False", "InsufficientPods")), cond

        # Scale to 6: percentages follow the Deployment's replicas, counts follow the pods.
        await api.call("PATCH", f"{DEPLOYS}/web", {"spec": {"replicas": 6}}, content_type=MERGE)
        want = {"min-count": (6, 3, 6, 3), "min-pct": (6, 3, 6, 3), "max-count": (6, 5, 6, 1),
                "max-pct": (6, 3, 6, 3)}
        for name, expected in want.items():
            await eventually(lambda n=name: get_ok(api, f"{PDBS}/{n}"), lambda p, e=expected: summary(p) == e)

        # A spec update is observed (generation 2) and the numbers follow it.
        await api.call("PATCH", f"{PDBS}/min-count", {"spec": {"minAvailable": 6}}, content_type=MERGE)
        pdb = await eventually(lambda: get_ok(api, f"{PDBS}/min-count"),
                               lambda p: p["status"].get("observedGeneration") == 2 and summary(p) == (6, 6, 6, 0))
        assert allowed_condition(pdb)["reason"] == "InsufficientPods"
        assert allowed_condition(pdb)["observedGeneration"] == 2


async def test_unready_pods_are_not_healthy(api):
    async with cluster(api):
        d = deployment("slow", replicas=3)
        d["spec"]["template"]["metadata"]["annotations"] = {"sim.pinnace.io/ready": "false"}
        await api.call("POST", DEPLOYS, d)
        await api.call("POST", PDBS, pdb_body("slow", {"app": "slow"}, maxUnavailable=1))
        await eventually(lambda: get_ok(api, f"{PDBS}/slow"), lambda p: summary(p) == (3, 2, 0, 0))


async def test_eviction_blocked_until_the_pdb_allows_it_and_disrupted_pods_clear(api):
    """Conformance: should block an eviction until the PDB is updated to allow it."""
    async with cluster(api):
        await api.call("POST", DEPLOYS, deployment("ev", replicas=3))
        await api.call("POST", PDBS, pdb_body("ev", {"app": "ev"}, minAvailable=3))
        await eventually(lambda: get_ok(api, f"{PDBS}/ev"), lambda p: summary(p) == (3, 3, 3, 0))
        victim = (await live_pods(api, "ev"))[0]["metadata"]["name"]
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}}
        status, out = await api.call("POST", f"{PODS}/{victim}/eviction", body)
        assert status == 429 and out["reason"] == "TooManyRequests", out
        assert out["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                             "The disruption budget ev needs 3 healthy pods and has 3 currently"}]

        await api.call("PATCH", f"{PDBS}/ev", {"spec": {"minAvailable": 2}}, content_type=MERGE)
        await eventually(lambda: get_ok(api, f"{PDBS}/ev"),
                         lambda p: p["status"]["observedGeneration"] == 2 and summary(p) == (3, 2, 3, 1))
        status, out = await api.call("POST", f"{PODS}/{victim}/eviction", body)
        assert status == 201, out
        # The evicted pod is gone and replaced; the controller drops it from disruptedPods.
        pdb = await eventually(lambda: get_ok(api, f"{PDBS}/ev"), lambda p: summary(p) == (3, 2, 3, 1)
                               and not p["status"].get("disruptedPods"))
        assert victim not in {p["metadata"]["name"] for p in await live_pods(api, "ev")}
        assert allowed_condition(pdb)["status"] == "True"


async def test_disrupted_pod_that_is_not_deleted_counts_again_after_the_timeout(api):
    """An approved eviction whose pod never goes: after the deletion timeout the pod counts
    as healthy again, and its stale DisruptionTarget condition is reset to False."""
    async with cluster(api, deletion_timeout=1.0, stale_pod_disruption_timeout=1.0):
        await api.call("POST", DEPLOYS, deployment("keep", replicas=2))
        await api.call("POST", PDBS, pdb_body("keep", {"app": "keep"}, minAvailable=1))
        pdb = await eventually(lambda: get_ok(api, f"{PDBS}/keep"), lambda p: summary(p) == (2, 1, 2, 1))
        name = (await live_pods(api, "keep"))[0]["metadata"]["name"]
        # What an eviction that then failed to delete would leave behind.
        stamp = pdb["metadata"]["creationTimestamp"]
        pdb["status"]["disruptedPods"] = {name: stamp}
        pdb["status"]["disruptionsAllowed"] = 0
        await api.call("PUT", f"{PDBS}/keep/status", pdb)
        pod = await get_ok(api, f"{PODS}/{name}")
        pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                                            "lastTransitionTime": stamp})
        await api.call("PUT", f"{PODS}/{name}/status", pod)
        pdb = await eventually(lambda: get_ok(api, f"{PDBS}/keep"), lambda p: summary(p) == (2, 1, 2, 1)
                               and not p["status"].get("disruptedPods"))
        await eventually(lambda: get_ok(api, f"{PODS}/{name}"), lambda p: next(
            c for c in p["status"]["conditions"] if c["type"] == "DisruptionTarget")["status"] == "False")


async def test_controller_scale_and_fail_safe(api):
    """Percentages need the pods' controllers: a StatefulSet's replicas are read from its
    spec; a pod whose controller cannot be found makes the sync fail safe (SyncFailed,
    no disruptions allowed)."""
    async with cluster(api, deployment_controllers=False):
        status, sts = await api.call("POST", "/apis/apps/v1/namespaces/default/statefulsets", {
            "metadata": {"name": "db"}, "spec": {
                "replicas": 4, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                             "spec": {"containers": [{"name": "c", "image": "db"}]}}}})
        assert status == 201, sts
        ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": sts["metadata"]["uid"],
               "controller": True}
        for i in range(2):  # no StatefulSet controller runs: two of its pods, made here
            status, _ = await api.call("POST", PODS, {
                "metadata": {"name": f"db-{i}", "labels": {"app": "db"}, "ownerReferences": [ref]},
                "spec": {"containers": [{"name": "c", "image": "db"}]}})
            assert status == 201
        await api.call("POST", PDBS, pdb_body("db", {"app": "db"}, minAvailable="50%"))
        await eventually(lambda: get_ok(api, f"{PDBS}/db"), lambda p: summary(p) == (4, 2, 2, 0))

        # An owner kind with no scale subresource anywhere: fail safe.
        status, cm = await api.call("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "own"}})
        assert status == 201
        status, _ = await api.call("POST", PODS, {
            "metadata": {"name": "odd", "labels": {"app": "db"}, "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "own", "uid": cm["metadata"]["uid"],
                "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "db"}]}})
        assert status == 201
        pdb = await eventually(lambda: get_ok(api, f"{PDBS}/db"),
                               lambda p: allowed_condition(p).get("reason") == "SyncFailed")
        assert pdb["status"]["disruptionsAllowed"] == 0 and allowed_condition(pdb)["status"] == "False"
        assert "does not implement the scale subresource" in allowed_condition(pdb)["message"]
        await api.call("DELETE", f"{PODS}/odd?gracePeriodSeconds=0")
        await eventually(lambda: get_ok(api, f"{PDBS}/db"),
                         lambda p: allowed_condition(p).get("reason") == "InsufficientPods"
                         and summary(p) == (4, 2, 2, 0))
