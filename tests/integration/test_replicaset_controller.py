"""The ReplicaSet controller against an in-process API server, the scheduler and
simulated nodes.

Conformance: "ReplicaSet should serve a basic image on each replica", "ReplicaSet
should adopt matching pods on creation and release no longer matching pods",
"ReplicaSet Replace and Patch tests", "ReplicaSet should validate Replicaset
Status endpoints" behaviours.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinnace.client.rest import RestClient
from pinnace.controllers.replicaset import ReplicaSetController
from pinnace.simulate import READY
from tests.support import cluster as shared
from tests.support import waiting

NS = "default"
RS_PATH = f"/apis/apps/v1/namespaces/{NS}/replicasets"
PODS = f"/api/v1/namespaces/{NS}/pods"


def replicaset(name: str, replicas: int, labels: dict[str, str] | None = None, **spec: Any) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, **spec,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {
                                      "requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


# Creating and scaling replicas takes a while: a longer wait than the shared default.
eventually = functools.partial(waiting.eventually, timeout=15)


@dataclass
class Cluster:
    api: Any
    running: shared.Cluster

    @property
    def client(self) -> RestClient:
        return self.running.client

    @property
    def controller(self) -> ReplicaSetController:
        return self.running.controllers[0]

    async def rs(self, name: str) -> dict:
        return (await self.api.call("GET", f"{RS_PATH}/{name}"))[1]

    async def pods(self, selector: str) -> list[dict]:
        """Active pods (not terminal, not being deleted) with these labels."""
        items = (await self.api.call("GET", f"{PODS}?labelSelector={selector}"))[1]["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")
                and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]

    async def scale(self, name: str, replicas: int) -> None:
        status, body = await self.api.call("PATCH", f"{RS_PATH}/{name}/scale", {"spec": {"replicas": replicas}},
                                           content_type="application/merge-patch+json")
        assert status == 200, body

    async def wait_status(self, name: str, ok: Callable[[dict], bool], timeout: float = 15) -> dict:
        rs = await eventually(lambda: self.rs(name), lambda r: ok(r.get("status") or {}), timeout=timeout)
        return rs["status"]

    async def wait_running(self, selector: str, n: int) -> list[dict]:
        return await eventually(lambda: self.pods(selector),
                                lambda ps: len(ps) == n and all(p["status"].get("phase") == "Running" for p in ps))

    async def stop_scheduler(self) -> None:
        await self.running.stop_scheduler()


class LaggingWatchClient(RestClient):
    """Delivers every pod watch event ``lag`` seconds late (order kept): the controller's
    cache then trails its own writes, as under a loaded API server."""

    lag = 0.0

    async def watch(self, api_version: str, plural: str, namespace: str = "", **params: Any
                    ) -> AsyncIterator[dict]:
        if plural != "pods" or self.lag <= 0:
            async for ev in super().watch(api_version, plural, namespace, **params):
                yield ev
            return
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[tuple[float, dict | None]] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for ev in super(LaggingWatchClient, self).watch(api_version, plural, namespace, **params):
                    pending.put_nowait((loop.time() + self.lag, ev))
            finally:
                pending.put_nowait((loop.time() + self.lag, None))

        task = asyncio.create_task(pump())
        try:
            while True:
                due, ev = await pending.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if ev is None:
                    break
                yield ev
            await task  # re-raise what ended the watch (a 410 makes the informer relist)
        finally:
            task.cancel()


@contextlib.asynccontextmanager
async def cluster(api, scheduler: bool = True, pod_watch_lag: float = 0.0) -> AsyncIterator[Cluster]:
    def make_client(kubeconfig: Path) -> RestClient:
        client = LaggingWatchClient.from_kubeconfig(kubeconfig)
        assert isinstance(client, LaggingWatchClient)
        client.lag = pod_watch_lag
        return client

    async with shared.running(api, controllers=(ReplicaSetController,), scheduler=scheduler,
                              component="replicaset-controller", simulator_kwargs={"cpu": "4"},
                              make_client=make_client) as c:
        yield Cluster(api, c)


async def test_replicas_are_created_run_and_are_reported_ready(api):
    async with cluster(api) as c:
        status, created = await api.call("POST", RS_PATH, replicaset("web", 3))
        assert status == 201, created
        pods = await c.wait_running("app=web", 3)
        uid = created["metadata"]["uid"]
        for p in pods:
            assert p["metadata"]["name"].startswith("web-")
            assert p["metadata"]["generateName"] == "web-"
            assert p["metadata"]["labels"] == {"app": "web"}
            assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                         "uid": uid, "controller": True,
                                                         "blockOwnerDeletion": True}]
        st = await c.wait_status("web", lambda s: s.get("readyReplicas") == 3 and s.get("availableReplicas") == 3)
        assert st["replicas"] == 3 and st["fullyLabeledReplicas"] == 3 and st["observedGeneration"] == 1

        async def created_events() -> list[str]:
            _, evs = await api.call("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector="
                                           "involvedObject.name%3Dweb,reason%3DSuccessfulCreate")
            return sorted(e["message"] for e in evs["items"])

        msgs = await eventually(created_events, lambda m: len(m) == 3)
        assert msgs == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)


async def test_scale_up_then_down_deletes_the_least_valuable_first(api):
    async with cluster(api) as c:
        await api.call("POST", RS_PATH, replicaset("web", 3))
        first = {p["metadata"]["name"] for p in await c.wait_running("app=web", 3)}
        await c.scale("web", 5)
        five = await c.wait_running("app=web", 5)
        st = await c.wait_status("web", lambda s: s.get("readyReplicas") == 5)
        assert st["observedGeneration"] == 2  # a /scale write is a spec change
        # One pod not ready, one never scheduled: those two must be the first to go.
        unready = sorted(p["metadata"]["name"] for p in five if p["metadata"]["name"] not in first)[0]
        await api.call("PATCH", f"{PODS}/{unready}", {"metadata": {"annotations": {READY: "false"}}},
                       content_type="application/merge-patch+json")
        await c.wait_status("web", lambda s: s.get("readyReplicas") == 4)
        await c.stop_scheduler()
        await c.scale("web", 6)
        six = await eventually(lambda: c.pods("app=web"), lambda ps: len(ps) == 6)
        pending = next(p["metadata"]["name"] for p in six if not p["spec"].get("nodeName"))
        await c.scale("web", 3)
        left = await eventually(lambda: c.pods("app=web"), lambda ps: len(ps) == 3)
        names = {p["metadata"]["name"] for p in left}
        assert pending not in names and unready not in names
        st = await c.wait_status("web", lambda s: s.get("replicas") == 3 and s.get("readyReplicas") == 3)
        assert st["observedGeneration"] == 4

        async def deleted_events() -> list[str]:
            _, evs = await api.call("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector="
                                           "involvedObject.name%3Dweb,reason%3DSuccessfulDelete")
            return [e["message"] for e in evs["items"]]

        msgs = await eventually(deleted_events, lambda m: len(m) == 3)
        assert f"Deleted pod: {pending}" in msgs and f"Deleted pod: {unready}" in msgs


async def test_matching_orphan_is_adopted_and_counted(api):
    async with cluster(api) as c:
        orphan = replicaset("web", 1)["spec"]["template"]
        status, _ = await api.call("POST", PODS, {"metadata": {"name": "orphan", **orphan["metadata"]},
                                                  "spec": orphan["spec"]})
        assert status == 201
        await c.wait_running("app=web", 1)
        _, rs = await api.call("POST", RS_PATH, replicaset("web", 2))
        pods = await c.wait_running("app=web", 2)
        assert "orphan" in {p["metadata"]["name"] for p in pods}
        adopted = (await api.call("GET", f"{PODS}/orphan"))[1]
        refs = adopted["metadata"]["ownerReferences"]
        assert [(r["uid"], r["controller"], r["blockOwnerDeletion"]) for r in refs] == [
            (rs["metadata"]["uid"], True, True)]
        st = await c.wait_status("web", lambda s: s.get("readyReplicas") == 2)
        assert st["replicas"] == 2
        await asyncio.sleep(0.3)
        assert len(await c.pods("app=web")) == 2  # exactly one created, not two


async def test_relabelled_pod_is_released_and_replaced(api):
    async with cluster(api) as c:
        await api.call("POST", RS_PATH, replicaset("web", 2))
        pods = await c.wait_running("app=web", 2)
        name = pods[0]["metadata"]["name"]
        status, body = await api.call("PATCH", f"{PODS}/{name}", {"metadata": {"labels": {"app": "other"}}},
                                      content_type="application/merge-patch+json")
        assert status == 200, body
        released = await eventually(lambda: api.call("GET", f"{PODS}/{name}"),
                                    lambda r: not r[1]["metadata"].get("ownerReferences"))
        assert released[1]["metadata"]["labels"] == {"app": "other"}
        now = await c.wait_running("app=web", 2)
        assert name not in {p["metadata"]["name"] for p in now}
        await c.wait_status("web", lambda s: s.get("replicas") == 2 and s.get("readyReplicas") == 2)


async def test_deleted_pod_is_replaced(api):
    async with cluster(api) as c:
        await api.call("POST", RS_PATH, replicaset("web", 3))
        pods = await c.wait_running("app=web", 3)
        victim = pods[1]["metadata"]["name"]
        status, _ = await api.call("DELETE", f"{PODS}/{victim}")
        assert status in (200, 202)
        now = await c.wait_running("app=web", 3)
        assert victim not in {p["metadata"]["name"] for p in now}
        await c.wait_status("web", lambda s: s.get("readyReplicas") == 3)


async def test_burst_from_zero_to_twenty_creates_exactly_twenty(api):
    # The controller sees pods 0.3s after they change: only its expectations keep it from
    # creating the same replicas again on every sync in between.
    async with cluster(api, pod_watch_lag=0.3) as c:
        listed = (await api.call("GET", PODS))[1]
        added: list[str] = []

        async def watch() -> None:
            async for ev in c.client.watch("v1", "pods", NS, resourceVersion=listed["metadata"]["resourceVersion"]):
                if ev["type"] == "ADDED":
                    added.append(ev["object"]["metadata"]["name"])

        watcher = asyncio.create_task(watch())
        try:
            await api.call("POST", RS_PATH, replicaset("burst", 0))
            await c.wait_status("burst", lambda s: s.get("observedGeneration") == 1)
            await c.scale("burst", 20)
            # Flood the controller with extra syncs while its creates are in flight.
            for _ in range(50):
                c.controller.queue.add(f"{NS}/burst")
                await asyncio.sleep(0.005)
            await c.wait_running("app=burst", 20)
            await c.wait_status("burst", lambda s: s.get("readyReplicas") == 20)
            await asyncio.sleep(0.5)
            assert len(added) == 20, added
            assert len(set(added)) == 20
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def test_min_ready_seconds_delays_available_replicas(api):
    async with cluster(api) as c:
        await api.call("POST", RS_PATH, replicaset("slow", 2, minReadySeconds=2))
        st = await c.wait_status("slow", lambda s: s.get("readyReplicas") == 2)
        assert st.get("availableReplicas", 0) == 0
        loop = asyncio.get_running_loop()
        began = loop.time()
        st = await c.wait_status("slow", lambda s: s.get("availableReplicas") == 2, timeout=10)
        assert loop.time() - began >= 0.5  # became available later, with no other change to the pods


async def test_pods_being_deleted_or_terminal_do_not_count(api):
    async with cluster(api, scheduler=False) as c:
        await api.call("POST", RS_PATH, replicaset("web", 2))
        pods = await eventually(lambda: c.pods("app=web"), lambda ps: len(ps) == 2)
        # Mark one as Failed (as a kubelet would): it no longer counts, a replacement comes.
        failed = pods[0]["metadata"]["name"]
        status, body = await api.call("PATCH", f"{PODS}/{failed}/status", {"status": {"phase": "Failed"}},
                                      content_type="application/merge-patch+json")
        assert status == 200, body
        now = await eventually(lambda: c.pods("app=web"), lambda ps: len(ps) == 2 and failed not in
                               {p["metadata"]["name"] for p in ps})
        assert len(now) == 2
        st = await c.wait_status("web", lambda s: s.get("replicas") == 2)
        assert st.get("readyReplicas", 0) == 0


async def test_create_errors_set_replica_failure_until_they_stop(api):
    async with cluster(api, scheduler=False) as c:
        rs = replicaset("web", 3)
        rs["spec"]["template"]["spec"]["priorityClassName"] = "later"  # admission refuses such pods for now
        await api.call("POST", RS_PATH, rs)
        st = await c.wait_status("web", lambda s: s.get("conditions"))
        cond = st["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
        assert "no PriorityClass with name later was found" in cond["message"]
        _, evs = await api.call("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector="
                                       "involvedObject.name%3Dweb,reason%3DFailedCreate")
        assert evs["items"] and evs["items"][0]["message"].startswith("Error creating: ")
        assert evs["items"][0]["type"] == "Warning"
        await api.call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses",
                       {"metadata": {"name": "later"}, "value": 10})
        st = await c.wait_status("web", lambda s: s.get("replicas") == 3 and not s.get("conditions"))
        assert len(await c.pods("app=web")) == 3
