"""Simulated nodes against the in-process API server: registration, leases, pod lifecycle,
graceful deletion and heartbeat failure injection."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pinnace.client.rest import ApiException, RestClient
from pinnace.simulate import HEARTBEAT_ANNOTATION, NodeSimulator, node_pod_cidr, parse_labels, parse_taints

from .conftest import Api

LEASE_INTERVAL = 0.3


async def wait_for(fetch: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Poll ``fetch()`` until ``check`` accepts its answer; fail with the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fetch()
        if check(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s; last: {last}")


@pytest.fixture
async def sim(api: Api) -> AsyncIterator[NodeSimulator]:
    s = NodeSimulator(kubeconfig=api.kubeconfig, count=5, labels=parse_labels("team=sim,tier=batch"),
                      taints=parse_taints("dedicated=sim:NoSchedule,spot:PreferNoSchedule"), zones=3,
                      start_delay=0.05, lease_interval=LEASE_INTERVAL, status_interval=0.5, delete_grace_cap=0.1)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def pod(name: str, node: str, annotations: dict[str, str] | None = None, restart: str = "Never",
        containers: int = 1) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                     "containers": [{"name": f"c{i}", "image": "nginx:1.27"} for i in range(containers)]}}


def cond(obj: dict, ctype: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


async def get_pod(api: Api, name: str) -> dict | None:
    code, body = await api.call("GET", f"/api/v1/namespaces/default/pods/{name}")
    return body if code == 200 else None


def test_parsers() -> None:
    assert parse_labels("a=1, b=2,c") == {"a": "1", "b": "2", "c": ""}
    assert parse_taints("k=v:NoSchedule,x:NoExecute") == [{"key": "k", "value": "v", "effect": "NoSchedule"},
                                                          {"key": "x", "effect": "NoExecute"}]
    with pytest.raises(ValueError):
        parse_taints("k=v:Sometimes")
    assert node_pod_cidr(7) == "10.42.7.0/24"
    # Past 256 nodes the /24s skip the default Service range (10.43.0.0/16).
    assert node_pod_cidr(256) == "10.44.0.0/24"
    assert len({node_pod_cidr(i) for i in range(2000)}) == 2000


async def test_nodes_register(api: Api, sim: NodeSimulator) -> None:
    code, nodes = await api.call("GET", "/api/v1/nodes")
    assert code == 200
    by_name = {n["metadata"]["name"]: n for n in nodes["items"]}
    assert set(by_name) == {f"sim-node-{i}" for i in range(5)}
    for i in range(5):
        node = by_name[f"sim-node-{i}"]
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == f"sim-node-{i}"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["node.kubernetes.io/instance-type"] == "simulated"
        assert labels["topology.kubernetes.io/zone"] == f"zone-{i % 3}"
        assert labels["team"] == "sim" and labels["tier"] == "batch"
        assert node["spec"]["taints"] == [{"key": "dedicated", "value": "sim", "effect": "NoSchedule"},
                                          {"key": "spot", "effect": "PreferNoSchedule"}]
        assert node["spec"]["podCIDR"] == f"10.42.{i}.0/24"
        status = node["status"]
        for res in (status["capacity"], status["allocatable"]):
            assert res["cpu"] == "32" and res["memory"] == "256Gi" and res["pods"] == "110"
            assert res["ephemeral-storage"] == "100Gi"
        ready = cond(node, "Ready")
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
        assert ready["message"] == "kubelet is posting ready status"
        assert ready["lastHeartbeatTime"] and ready["lastTransitionTime"]
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"):
            assert cond(node, ctype)["status"] == "False", ctype
        assert {"type": "InternalIP", "address": f"10.0.0.{i}"} in status["addresses"]
        assert {"type": "Hostname", "address": f"sim-node-{i}"} in status["addresses"]
        info = status["nodeInfo"]
        assert info["kubeletVersion"] == "v1.32.0-pinnace-sim"
        assert info["containerRuntimeVersion"] == "simulated://1.0"
        assert info["operatingSystem"] == "linux" and info["architecture"] == "amd64"
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


async def test_status_heartbeat_refreshes(api: Api, sim: NodeSimulator) -> None:
    _, node = await api.call("GET", "/api/v1/nodes/sim-node-0")
    first = cond(node, "Ready")

    async def fetch() -> dict:
        return (await api.call("GET", "/api/v1/nodes/sim-node-0"))[1]

    # Heartbeat times have one-second resolution: wait past the next second.
    later = await wait_for(fetch, lambda n: cond(n, "Ready")["lastHeartbeatTime"] != first["lastHeartbeatTime"])
    assert cond(later, "Ready")["lastTransitionTime"] == first["lastTransitionTime"]


async def test_registering_again_takes_over_existing_nodes(api: Api, sim: NodeSimulator) -> None:
    again = NodeSimulator(kubeconfig=api.kubeconfig, count=2, labels={"extra": "yes"})
    await again.start()
    await again.stop()
    _, node = await api.call("GET", "/api/v1/nodes/sim-node-1")
    assert node["metadata"]["labels"]["extra"] == "yes"
    assert node["spec"]["podCIDR"] == "10.42.1.0/24"
    assert "taints" not in node["spec"] or node["spec"]["taints"] == []


async def lease(api: Api, name: str) -> dict:
    code, body = await api.call("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
    assert code == 200, body
    return body


async def test_leases_renew(api: Api, sim: NodeSimulator) -> None:
    _, nodes = await api.call("GET", "/api/v1/nodes")
    uids = {n["metadata"]["name"]: n["metadata"]["uid"] for n in nodes["items"]}
    first = {}
    for name in sim.node_names:
        body = await lease(api, name)
        spec = body["spec"]
        assert spec["holderIdentity"] == name and spec["leaseDurationSeconds"] == 40
        assert spec["renewTime"].endswith("Z") and len(spec["renewTime"].split(".")[1]) == 7  # 6 digits + Z
        assert body["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uids[name]}]
        first[name] = spec["renewTime"]
    await asyncio.sleep(LEASE_INTERVAL * 2.5)
    for name in sim.node_names:
        assert (await lease(api, name))["spec"]["renewTime"] > first[name]


async def test_pod_runs_and_becomes_ready(api: Api, sim: NodeSimulator) -> None:
    code, body = await api.call("POST", "/api/v1/namespaces/default/pods", pod("web", "sim-node-2", containers=2))
    assert code == 201, body
    running = await wait_for(lambda: get_pod(api, "web"),
                             lambda p: p and p["status"].get("phase") == "Running")
    status = running["status"]
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.42.2.0/24")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "10.0.0.2" and status["startTime"]
    for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers"):
        assert cond(running, ctype)["status"] == "True", ctype
    uid = running["metadata"]["uid"]
    assert [c["name"] for c in status["containerStatuses"]] == ["c0", "c1"]
    for c in status["containerStatuses"]:
        assert c["ready"] is True and c["started"] is True and c["restartCount"] == 0
        assert c["image"] == "nginx:1.27" and c["imageID"].startswith("simulated://sha256:")
        assert c["containerID"] == f"simulated://{uid}-{c['name']}"
        assert c["state"]["running"]["startedAt"]
    [init] = status["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed" and init["state"]["terminated"]["exitCode"] == 0
    # A second pod on the same node gets another address from the same range.
    await api.call("POST", "/api/v1/namespaces/default/pods", pod("web2", "sim-node-2"))
    other = await wait_for(lambda: get_pod(api, "web2"), lambda p: p and p["status"].get("phase") == "Running")
    assert other["status"]["podIP"] != status["podIP"]
    assert ipaddress.ip_address(other["status"]["podIP"]) in ipaddress.ip_network("10.42.2.0/24")


async def test_pod_bound_later_starts(api: Api, sim: NodeSimulator) -> None:
    spec = pod("late", "sim-node-3")
    del spec["spec"]["nodeName"]
    await api.call("POST", "/api/v1/namespaces/default/pods", spec)
    await asyncio.sleep(0.2)
    assert (await get_pod(api, "late"))["status"]["phase"] == "Pending"
    code, body = await api.call("POST", "/api/v1/namespaces/default/pods/late/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "late"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "sim-node-3"}})
    assert code == 201, body
    await wait_for(lambda: get_pod(api, "late"), lambda p: p["status"].get("phase") == "Running")


@pytest.mark.parametrize(("code", "phase", "reason"), [("0", "Succeeded", "Completed"), ("1", "Failed", "Error")])
async def test_pod_exits(api: Api, sim: NodeSimulator, code: str, phase: str, reason: str) -> None:
    annotations = {"sim.pinnace.io/exit-after": "0.2", "sim.pinnace.io/exit-code": code}
    await api.call("POST", "/api/v1/namespaces/default/pods", pod("job", "sim-node-0", annotations))
    done = await wait_for(lambda: get_pod(api, "job"), lambda p: p["status"].get("phase") == phase)
    [c] = done["status"]["containerStatuses"]
    assert c["ready"] is False
    assert c["state"]["terminated"]["reason"] == reason and c["state"]["terminated"]["exitCode"] == int(code)
    ready = cond(done, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"


async def test_restart_policy_always_restarts_instead_of_exiting(api: Api, sim: NodeSimulator) -> None:
    annotations = {"sim.pinnace.io/exit-after": "0.2", "sim.pinnace.io/exit-code": "2"}
    await api.call("POST", "/api/v1/namespaces/default/pods", pod("crashy", "sim-node-1", annotations, "Always"))
    p = await wait_for(lambda: get_pod(api, "crashy"),
                       lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1)
    assert p["status"]["phase"] == "Running"
    [c] = p["status"]["containerStatuses"]
    assert c["lastState"]["terminated"]["exitCode"] == 2 and c["state"]["running"]
    assert c["containerID"].endswith("-1")


async def test_start_delay_annotation(api: Api, sim: NodeSimulator) -> None:
    await api.call("POST", "/api/v1/namespaces/default/pods",
                   pod("slow", "sim-node-0", {"sim.pinnace.io/start-delay": "0.6"}))
    await asyncio.sleep(0.3)
    assert (await get_pod(api, "slow"))["status"]["phase"] == "Pending"
    await wait_for(lambda: get_pod(api, "slow"), lambda p: p["status"].get("phase") == "Running")


async def test_not_ready_annotation(api: Api, sim: NodeSimulator) -> None:
    await api.call("POST", "/api/v1/namespaces/default/pods",
                   pod("unready", "sim-node-4", {"sim.pinnace.io/ready": "false"}))
    p = await wait_for(lambda: get_pod(api, "unready"), lambda p: p["status"].get("phase") == "Running")
    assert cond(p, "Ready")["status"] == "False" and cond(p, "ContainersReady")["status"] == "False"
    assert cond(p, "Ready")["reason"] == "ContainersNotReady"
    assert p["status"]["containerStatuses"][0]["ready"] is False
    # Readiness follows the annotation while the pod runs.
    code, _ = await api.call("PATCH", "/api/v1/namespaces/default/pods/unready",
                             {"metadata": {"annotations": {"sim.pinnace.io/ready": "true"}}},
                             content_type="application/merge-patch+json")
    assert code == 200
    await wait_for(lambda: get_pod(api, "unready"), lambda p: cond(p, "Ready").get("status") == "True")


async def test_delete_bound_pod(api: Api, sim: NodeSimulator) -> None:
    await api.call("POST", "/api/v1/namespaces/default/pods", pod("doomed", "sim-node-1"))
    running = await wait_for(lambda: get_pod(api, "doomed"), lambda p: p["status"].get("phase") == "Running")
    client = RestClient.from_kubeconfig(api.kubeconfig)
    events: list[tuple[str, dict]] = []

    async def watch() -> None:
        async for ev in client.watch("v1", "pods", "default", fieldSelector="metadata.name=doomed",
                                     resourceVersion=running["metadata"]["resourceVersion"]):
            events.append((ev["type"], ev["object"]))
            if ev["type"] == "DELETED":
                return

    watcher = asyncio.create_task(watch())
    try:
        code, body = await api.call("DELETE", "/api/v1/namespaces/default/pods/doomed")
        assert code == 200 and body["metadata"].get("deletionTimestamp")  # bound: graceful, not immediate
        await asyncio.wait_for(watcher, 5)
    finally:
        watcher.cancel()
        await client.close()
    assert await get_pod(api, "doomed") is None
    # Before it went, the "kubelet" reported its containers stopped, then deleted it itself.
    assert [t for t, _ in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    [c] = events[-1][1]["status"]["containerStatuses"]
    assert c["state"]["terminated"]["exitCode"] == 0 and c["ready"] is False


async def renew_time(api: Api, name: str) -> str:
    return (await lease(api, name))["spec"]["renewTime"]


async def test_heartbeat_stop_annotation(api: Api, sim: NodeSimulator) -> None:
    node = "sim-node-3"

    async def annotate(value: str | None) -> None:
        code, body = await api.call("PATCH", f"/api/v1/nodes/{node}",
                                    {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: value}}},
                                    content_type="application/merge-patch+json")
        assert code == 200, body

    await annotate("stop")
    await asyncio.sleep(LEASE_INTERVAL)  # let the watch deliver it and any in-flight renewal land
    stopped = await renew_time(api, node)
    await asyncio.sleep(LEASE_INTERVAL * 2.5)
    assert await renew_time(api, node) == stopped
    # A silent node runs no pods either.
    await api.call("POST", "/api/v1/namespaces/default/pods", pod("stuck", node))
    await asyncio.sleep(0.3)
    assert (await get_pod(api, "stuck"))["status"]["phase"] == "Pending"
    # Other nodes carry on.
    other = await renew_time(api, "sim-node-0")
    await wait_for(lambda: renew_time(api, "sim-node-0"), lambda t: t > other)

    await annotate(None)
    await wait_for(lambda: renew_time(api, node), lambda t: t > stopped)
    await wait_for(lambda: get_pod(api, "stuck"), lambda p: p["status"].get("phase") == "Running")


async def test_stop_heartbeat_method(api: Api, sim: NodeSimulator) -> None:
    sim.stop_heartbeat("sim-node-4")
    await asyncio.sleep(LEASE_INTERVAL)
    stopped = await renew_time(api, "sim-node-4")
    await asyncio.sleep(LEASE_INTERVAL * 2.5)
    assert await renew_time(api, "sim-node-4") == stopped
    sim.resume_heartbeat("sim-node-4")
    await wait_for(lambda: renew_time(api, "sim-node-4"), lambda t: t > stopped)
    with pytest.raises(KeyError):
        sim.stop_heartbeat("not-ours")


async def test_delete_nodes_on_exit(api: Api) -> None:
    s = NodeSimulator(kubeconfig=api.kubeconfig, count=3, name_prefix="tmp-", delete_nodes_on_exit=True)
    await s.start()
    _, nodes = await api.call("GET", "/api/v1/nodes")
    assert len(nodes["items"]) == 3
    await s.stop()
    _, nodes = await api.call("GET", "/api/v1/nodes")
    assert nodes["items"] == []
    _, leases = await api.call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
    assert leases["items"] == []


async def test_invalid_node_fails_start(api: Api) -> None:
    s = NodeSimulator(kubeconfig=api.kubeconfig, count=3, name_prefix="bad-", cpu="lots")
    try:
        with pytest.raises(ApiException) as err:
            await asyncio.wait_for(s.start(), 10)
        assert err.value.status == 422
    finally:
        await s.stop()
