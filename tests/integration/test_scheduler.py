"""The scheduler against an in-process API server and simulated nodes.

Conformance: "Scheduler, resource limits", "Scheduler, node selector matching",
"Scheduler, basic preemption", "Pod with hostPort ... scheduling" behaviours.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pinnace.client.rest import RestClient
from pinnace.scheduler.scheduler import run_scheduler
from pinnace.simulate import NodeSimulator
from tests.support.cluster import Cluster, running
from tests.support.waiting import eventually

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, cpu: str = "100m", **spec: Any) -> dict:
    return {"metadata": {"name": name, "labels": spec.pop("labels", {"app": "t"})},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


async def get_pod(api, name: str) -> dict:
    return (await api.call("GET", f"{PODS}/{name}"))[1]


async def node_of(api, name: str) -> str:
    return (await eventually(lambda: get_pod(api, name), lambda p: p.get("spec", {}).get("nodeName")))["spec"][
        "nodeName"]


def cluster(api, count: int = 3, **sim: Any) -> AbstractAsyncContextManager[Cluster]:
    """Simulated nodes (2 CPUs each unless ``sim`` says otherwise) and the scheduler, no controllers."""
    return running(api, nodes=count, simulator_kwargs={"cpu": "2", **sim})


async def test_pods_are_bound_spread_and_run(api):
    async with cluster(api):
        for i in range(6):
            await api.call("POST", PODS, pod(f"p{i}"))
        nodes = [await node_of(api, f"p{i}") for i in range(6)]
        assert set(nodes) == {"sim-node-0", "sim-node-1", "sim-node-2"}
        running = await eventually(lambda: get_pod(api, "p0"), lambda p: p["status"].get("phase") == "Running")
        assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in running["status"]["conditions"])
        status, events = await api.call("GET", "/api/v1/namespaces/default/events?fieldSelector="
                                               "involvedObject.name%3Dp0,reason%3DScheduled")
        assert events["items"] and events["items"][0]["message"].startswith("Successfully assigned default/p0 to ")


async def test_unschedulable_pod_is_retried_when_a_node_is_added(api):
    async with cluster(api):
        await api.call("POST", PODS, pod("huge", cpu="3"))

        async def failed():
            status, ev = await api.call("GET", "/api/v1/namespaces/default/events?fieldSelector="
                                               "involvedObject.name%3Dhuge,reason%3DFailedScheduling")
            return ev["items"]

        items = await eventually(failed, bool)
        assert items[0]["message"].startswith("0/3 nodes are available: 3 Insufficient cpu.")
        cond = (await eventually(lambda: get_pod(api, "huge"), lambda p: p["status"].get("conditions")))
        assert cond["status"]["conditions"][0]["reason"] == "Unschedulable"
        big = NodeSimulator(kubeconfig=api.kubeconfig, count=1, cpu="8", name_prefix="big-", index_offset=10)
        await big.start()
        try:
            assert await node_of(api, "huge") == "big-10"
        finally:
            await big.stop()


async def test_taints_selectors_and_tolerations(api):
    async with cluster(api, taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]):
        await api.call("POST", PODS, pod("plain"))
        await api.call("POST", PODS, pod("tolerant", tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            nodeSelector={"topology.kubernetes.io/zone": "zone-1"}))
        assert await node_of(api, "tolerant") == "sim-node-1"

        async def failed():
            status, ev = await api.call("GET", "/api/v1/namespaces/default/events?fieldSelector="
                                               "involvedObject.name%3Dplain,reason%3DFailedScheduling")
            return ev["items"]

        items = await eventually(failed, bool)
        assert "3 node(s) had untolerated taint {dedicated: gpu}" in items[0]["message"]


async def test_required_anti_affinity_spreads_over_zones(api):
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}
    async with cluster(api, count=6, zones=3):
        for i in range(4):
            await api.call("POST", PODS, pod(f"db{i}", labels={"app": "db"}, affinity=anti))
        zones = set()
        for i in range(3):
            node = await node_of(api, f"db{i}")
            zones.add(int(node.rsplit("-", 1)[1]) % 3)
        assert zones == {0, 1, 2}
        await asyncio.sleep(0.5)
        assert not (await get_pod(api, "db3"))["spec"].get("nodeName")


async def test_preemption_evicts_lower_priority_pods(api):
    await api.call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses",
                   {"metadata": {"name": "high"}, "value": 1000})
    async with cluster(api, count=1):
        for i in range(3):
            await api.call("POST", PODS, pod(f"low{i}", cpu="600m"))
        for i in range(3):
            await node_of(api, f"low{i}")
        await api.call("POST", PODS, pod("vip", cpu="1", priorityClassName="high"))
        assert await node_of(api, "vip") == "sim-node-0"
        remaining = [n for n in ("low0", "low1", "low2") if (await api.call("GET", f"{PODS}/{n}"))[0] == 200]
        assert len(remaining) == 1  # the fewest victims that make room: two of three


async def test_other_scheduler_names_are_left_alone(api):
    async with cluster(api):
        await api.call("POST", PODS, pod("mine"))
        await api.call("POST", PODS, pod("theirs", schedulerName="someone-else"))
        await node_of(api, "mine")
        await asyncio.sleep(0.3)
        assert not (await get_pod(api, "theirs"))["spec"].get("nodeName")


@pytest.mark.parametrize("replicas", [2])
async def test_two_leader_elected_schedulers_bind_each_pod_once(api, replicas):
    simulator = NodeSimulator(kubeconfig=api.kubeconfig, count=3, cpu="4", start_delay=0.05)
    await simulator.start()
    clients = [RestClient.from_kubeconfig(api.kubeconfig) for _ in range(replicas)]
    tasks = [asyncio.create_task(run_scheduler(c, identity=f"sched-{i}")) for i, c in enumerate(clients)]
    try:
        for i in range(20):
            await api.call("POST", PODS, pod(f"e{i}"))
        for i in range(20):
            await node_of(api, f"e{i}")
        status, lease = await api.call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
                                              "kube-scheduler")
        assert lease["spec"]["holderIdentity"] in ("sched-0", "sched-1")
        status, events = await api.call("GET", "/api/v1/namespaces/default/events?fieldSelector=reason%3DScheduled")
        per_pod: dict[str, int] = {}
        for e in events["items"]:
            per_pod[e["involvedObject"]["name"]] = per_pod.get(e["involvedObject"]["name"], 0) + e.get("count", 1)
        assert all(v == 1 for v in per_pod.values())
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await simulator.stop()
        for c in clients:
            await c.close()
