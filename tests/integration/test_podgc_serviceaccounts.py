"""PodGC (terminated-pod threshold, orphaned pods) and the ServiceAccounts controller
against an in-process API server."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from pinnace.controllers.podgc import PodGCController
from pinnace.controllers.serviceaccount import ServiceAccountController
from pinnace.simulate import EXIT_AFTER
from tests.support.cluster import Cluster, ControllerFactory, running
from tests.support.waiting import eventually, get_or_none

PODS = "/api/v1/namespaces/default/pods"


def one_node(api) -> AbstractAsyncContextManager[Cluster]:
    """A simulated node (sim-node-0), nothing else."""
    return running(api, nodes=1, scheduler=False)


def controller(api, make: ControllerFactory) -> AbstractAsyncContextManager[Cluster]:
    """One controller, no nodes and no scheduler."""
    return running(api, nodes=0, scheduler=False, controllers=[make])


def job_pod(name: str, node: str) -> dict:
    return {"metadata": {"name": name, "annotations": {EXIT_AFTER: "0.1"}},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}


async def test_podgc_deletes_oldest_terminated_pods_beyond_threshold(api):
    async with one_node(api):
        # Created a second apart so creation time, not name, decides which are the oldest.
        for name in ("z-old-1", "z-old-2"):
            await api.call("POST", PODS, job_pod(name, "sim-node-0"))
        await asyncio.sleep(1.1)
        for name in ("a-new-1", "a-new-2"):
            await api.call("POST", PODS, job_pod(name, "sim-node-0"))
        await api.call("POST", PODS, {"metadata": {"name": "server"}, "spec": {
            "nodeName": "sim-node-0", "containers": [{"name": "c", "image": "nginx"}]}})
        for name in ("z-old-1", "z-old-2", "a-new-1", "a-new-2"):
            await eventually(lambda n=name: get_or_none(api, f"{PODS}/{n}"),
                             lambda p: p["status"].get("phase") == "Succeeded")

        async with controller(api, lambda c, f, r: PodGCController(c, f, r, terminated_pod_threshold=2,
                                                                      gc_period=0.2)):
            await eventually(lambda: get_or_none(api, PODS), lambda pods: len(pods["items"]) == 3)
            await asyncio.sleep(0.5)  # a few more passes: nothing else goes
            names = {p["metadata"]["name"] for p in (await get_or_none(api, PODS))["items"]}
            assert names == {"a-new-1", "a-new-2", "server"}


async def test_podgc_deletes_pods_of_missing_nodes(api):
    async with one_node(api):
        for name, node in (("orphan", "no-such-node"), ("alive", "sim-node-0")):
            await api.call("POST", PODS, {"metadata": {"name": name}, "spec": {
                "nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
        await eventually(lambda: get_or_none(api, f"{PODS}/alive"), lambda p: p["status"].get("phase") == "Running")
        async with controller(api, lambda c, f, r: PodGCController(c, f, r, gc_period=0.2)):
            await eventually(lambda: get_or_none(api, f"{PODS}/orphan"), lambda p: p is None)
            # A node deleted while its pods run: they go too (without waiting for a kubelet).
            await api.call("DELETE", "/api/v1/nodes/sim-node-0")
            await eventually(lambda: get_or_none(api, f"{PODS}/alive"), lambda p: p is None)


async def test_default_service_account_created_and_recreated(api):
    async with controller(api, ServiceAccountController):
        for ns in ("default", "kube-system"):
            await eventually(lambda n=ns: get_or_none(api, f"/api/v1/namespaces/{n}/serviceaccounts/default"), bool)
        assert (await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}}))[0] == 201
        sa = await eventually(lambda: get_or_none(api, "/api/v1/namespaces/team-a/serviceaccounts/default"), bool)
        status, _ = await api.call("DELETE", "/api/v1/namespaces/team-a/serviceaccounts/default")
        assert status == 200
        again = await eventually(lambda: get_or_none(api, "/api/v1/namespaces/team-a/serviceaccounts/default"), bool)
        assert again["metadata"]["uid"] != sa["metadata"]["uid"]
        # A terminating namespace is left to the namespace controller.
        await api.call("DELETE", "/api/v1/namespaces/team-a")
        await asyncio.sleep(0.3)
        status, ns = await api.call("GET", "/api/v1/namespaces/team-a")
        assert status == 200 and ns["status"]["phase"] == "Terminating"
