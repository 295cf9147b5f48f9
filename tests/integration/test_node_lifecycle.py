"""Node lifecycle controller against an in-process API server and simulated nodes:
health (lease/heartbeat → Ready Unknown), condition taints, NoExecute eviction."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from pinnace.api.times import parse_time
from pinnace.controllers.nodelifecycle import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    NodeLifecycleController,
    eviction_time,
    tolerates,
)
from pinnace.simulate import HEARTBEAT_ANNOTATION
from tests.support.cluster import Cluster, running
from tests.support.waiting import eventually, get_or_none

PODS = "/api/v1/namespaces/default/pods"
NODES = "/api/v1/nodes"
MERGE = "application/merge-patch+json"
GRACE = 1.5


def pod(name: str, node: str, tolerations: list[dict]) -> dict:
    return {"metadata": {"name": name},
            "spec": {"nodeName": node, "tolerations": tolerations,
                     "containers": [{"name": "c", "image": "busybox"}]}}


# Admission gives every pod a 300 s unreachable toleration unless it brings its own: 0 s means "at once".
NO_TOLERATION = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]
TWO_SECONDS = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]
FOREVER = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]


def taints(node: dict) -> dict[tuple[str, str], dict]:
    return {(t["key"], t["effect"]): t for t in node.get("spec", {}).get("taints") or []}


def ready(node: dict) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def controller(api) -> AbstractAsyncContextManager[Cluster]:
    return running(api, nodes=2, scheduler=False, component="node-controller", simulator_kwargs={"lease_interval": 0.3},
                   controllers=[lambda c, f, r: NodeLifecycleController(c, f, r, node_monitor_grace_period=GRACE,
                                                                         monitor_period=0.2)])


async def events(api, reason: str) -> list[dict]:
    return (await get_or_none(api, f"/api/v1/namespaces/default/events?fieldSelector=reason%3D{reason}"))["items"]


async def test_silent_node_goes_unknown_is_tainted_and_pods_evicted(api):
    async with controller(api):
        for name, tol in (("doomed", NO_TOLERATION), ("patient", TWO_SECONDS), ("forever", FOREVER),
                          ("defaulted", [])):
            assert (await api.call("POST", PODS, pod(name, "sim-node-0", tol)))[0] == 201
        for name in ("doomed", "patient"):
            await eventually(lambda n=name: get_or_none(api, f"{PODS}/{n}"),
                             lambda p: p["status"].get("phase") == "Running")

        # The lease alone keeps a node alive: the simulator posts status only every 60 s.
        await asyncio.sleep(GRACE + 0.5)
        node = await get_or_none(api, f"{NODES}/sim-node-0")
        assert ready(node)["status"] == "True"
        assert not any(k.startswith("node.kubernetes.io/") for k, _ in taints(node))

        await api.call("PATCH", f"{NODES}/sim-node-0", {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "stop"}}},
                       content_type=MERGE)
        node = await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-0"),
                                lambda n: (TAINT_UNREACHABLE, "NoExecute") in taints(n), timeout=GRACE + 5)
        cond = ready(node)
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert all(c["status"] == "Unknown" for c in node["status"]["conditions"]
                   if c["type"] in ("MemoryPressure", "DiskPressure", "PIDPressure"))
        assert taints(node)[(TAINT_UNREACHABLE, "NoExecute")]["timeAdded"]
        assert (TAINT_UNREACHABLE, "NoSchedule") in taints(node)
        # The other node keeps renewing its lease: untouched.
        assert ready(await get_or_none(api, f"{NODES}/sim-node-1"))["status"] == "True"

        patient = await get_or_none(api, f"{PODS}/patient")
        assert not patient["metadata"].get("deletionTimestamp"), "evicted before tolerationSeconds"
        # Tolerated for 0 s: deleted at once (graceful: the silent kubelet cannot finish it, so it lingers).
        doomed = await eventually(lambda: get_or_none(api, f"{PODS}/doomed"),
                                  lambda p: p is None or p["metadata"].get("deletionTimestamp"), timeout=3)
        assert {"type": "DisruptionTarget", "reason": "DeletionByTaintManager"}.items() <= next(
            c for c in doomed["status"]["conditions"] if c["type"] == "DisruptionTarget").items()
        patient = await eventually(lambda: get_or_none(api, f"{PODS}/patient"),
                                   lambda p: p is None or p["metadata"].get("deletionTimestamp"), timeout=5)
        # Evicted tolerationSeconds (2 s) after the taint was added, by the server's clock (both
        # timestamps have whole seconds), however late this test saw either.
        if patient is not None:
            added = parse_time(taints(node)[(TAINT_UNREACHABLE, "NoExecute")]["timeAdded"])
            assert (parse_time(patient["metadata"]["deletionTimestamp"]) - added).total_seconds() >= 1
        for name in ("forever", "defaulted"):  # no tolerationSeconds / the default 300 s
            assert not (await get_or_none(api, f"{PODS}/{name}"))["metadata"].get("deletionTimestamp")

        evicted = await eventually(lambda: events(api, "TaintManagerEviction"), lambda e: len(e) >= 2)
        assert {e["message"] for e in evicted} == {"Marking for deletion Pod default/doomed",
                                                   "Marking for deletion Pod default/patient"}
        not_ready = await eventually(lambda: events(api, "NodeNotReady"), bool)
        assert not_ready[0]["involvedObject"]["name"] == "sim-node-0"

        # The kubelet comes back: Ready again, taints gone.
        await api.call("PATCH", f"{NODES}/sim-node-0", {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: None}}},
                       content_type=MERGE)
        node = await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-0"),
                                lambda n: ready(n)["status"] == "True" and not taints(n))
        # ... and finishes the graceful deletions it missed.
        await eventually(lambda: get_or_none(api, f"{PODS}/doomed"), lambda p: p is None)
        assert (await get_or_none(api, f"{PODS}/forever"))["status"]["phase"] == "Running"


async def test_cordon_and_not_ready_taints(api):
    async with controller(api):
        await api.call("PATCH", f"{NODES}/sim-node-1", {"spec": {"unschedulable": True}}, content_type=MERGE)
        await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-1"),
                         lambda n: taints(n).get((TAINT_UNSCHEDULABLE, "NoSchedule")) == {
                             "key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})
        await api.call("PATCH", f"{NODES}/sim-node-1", {"spec": {"unschedulable": False}}, content_type=MERGE)
        await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-1"), lambda n: not taints(n))

        # A kubelet reporting Ready False (heartbeat fresh): not-ready taints, not unreachable.
        node = await get_or_none(api, f"{NODES}/sim-node-0")
        conds = [({**c, "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"}
                  if c["type"] == "Ready" else c) for c in node["status"]["conditions"]]
        await api.call("PATCH", f"{NODES}/sim-node-0/status", {"status": {"conditions": conds}}, content_type=MERGE)
        node = await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-0"),
                                lambda n: (TAINT_NOT_READY, "NoExecute") in taints(n))
        assert set(taints(node)) == {(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")}
        # Other taints are not ours to touch.
        spec_taints = [*node["spec"]["taints"], {"key": "example.com/dedicated", "effect": "NoSchedule"}]
        await api.call("PATCH", f"{NODES}/sim-node-0", {"spec": {"taints": spec_taints}}, content_type=MERGE)
        conds = [({**c, "status": "True", "reason": "KubeletReady", "message": "ok"}
                  if c["type"] == "Ready" else c) for c in node["status"]["conditions"]]
        await api.call("PATCH", f"{NODES}/sim-node-0/status", {"status": {"conditions": conds}}, content_type=MERGE)
        node = await eventually(lambda: get_or_none(api, f"{NODES}/sim-node-0"),
                                lambda n: set(taints(n)) == {("example.com/dedicated", "NoSchedule")})


async def test_foreign_no_execute_taint_evicts_untolerating_pods(api):
    async with controller(api):
        tol = [{"key": "example.com/maintenance", "operator": "Exists"}]
        for name, tols in (("plain", []), ("tolerant", tol)):
            await api.call("POST", PODS, pod(name, "sim-node-1", tols))
            await eventually(lambda n=name: get_or_none(api, f"{PODS}/{n}"),
                             lambda p: p["status"].get("phase") == "Running")
        await api.call("PATCH", f"{NODES}/sim-node-1", {"spec": {"taints": [
            {"key": "example.com/maintenance", "effect": "NoExecute"}]}}, content_type=MERGE)
        # The node is alive, so its kubelet finishes the graceful deletion: the pod goes away.
        await eventually(lambda: get_or_none(api, f"{PODS}/plain"), lambda p: p is None)
        await asyncio.sleep(0.5)
        tolerant = await get_or_none(api, f"{PODS}/tolerant")
        assert not tolerant["metadata"].get("deletionTimestamp")
        node = await get_or_none(api, f"{NODES}/sim-node-1")
        assert set(taints(node)) == {("example.com/maintenance", "NoExecute")}  # not ours: left alone


def test_toleration_matching_and_eviction_time():
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert tolerates({"operator": "Exists"}, taint)
    assert tolerates({"key": "k", "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"key": "k", "value": "v"}, taint)
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    other = {"key": "o", "effect": "NoExecute"}

    def start(_t: dict) -> float:
        return 100.0

    def with_tols(*tols: dict) -> dict:
        return {"spec": {"tolerations": list(tols)}}

    assert eviction_time(with_tols(), [taint], start) == float("-inf")
    assert eviction_time(with_tols({"key": "k", "operator": "Exists"}), [taint], start) is None
    assert eviction_time(with_tols({"key": "k", "operator": "Exists", "tolerationSeconds": 5},
                                   {"key": "k", "operator": "Exists"}), [taint], start) == 105.0
    assert eviction_time(with_tols({"key": "k", "operator": "Exists", "tolerationSeconds": 5},
                                   {"key": "o", "operator": "Exists", "tolerationSeconds": 3}),
                         [taint, other], start) == 103.0
    # One untolerated taint is enough.
    assert eviction_time(with_tols({"key": "k", "operator": "Exists"}), [taint, other], start) == float("-inf")
