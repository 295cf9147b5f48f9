"""The StatefulSet controller with a scheduler and simulated nodes, against an
in-process API server.

Conformance (/work/shared/reference/conformance.yaml):
"StatefulSet, Scaling" (ordered scale up/down, halting on unhealthy pods),
"StatefulSet, Burst Scaling" (Parallel), "StatefulSet, Recreate Failed Pod",
"StatefulSet, Rolling Update with Partition", "StatefulSet, Rolling Update"
(current/update revisions, rollback detected rather than a new revision),
"StatefulSet resource Replica scaling" (scale subresource) and
"ControllerRevision, resource lifecycle" (revisions owned by the set, found by
its selector, the reused revision's number bumped).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pinnace.client.rest import RestClient
from pinnace.controllers import controller_utils as cu
from pinnace.controllers import history
from pinnace.controllers.garbagecollector import GarbageCollector
from pinnace.controllers.statefulset import StatefulSetController
from tests.support.cluster import Cluster, ControllerFactory, kubectl, running
from tests.support.waiting import eventually, get_ok

SETS = "/apis/apps/v1/namespaces/default/statefulsets"
REVS = "/apis/apps/v1/namespaces/default/controllerrevisions"
PODS = "/api/v1/namespaces/default/pods"
PVCS = "/api/v1/namespaces/default/persistentvolumeclaims"
EVENTS = "/api/v1/namespaces/default/events"


def sts(name: str, replicas: int = 3, image: str = "nginx:1", annotations: dict | None = None,
        **spec: Any) -> dict:
    tmeta: dict = {"labels": {"app": name}}
    if annotations:
        tmeta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": f"{name}-svc", "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": tmeta,
                                  "spec": {"containers": [{"name": "c", "image": image,
                                                           "resources": {"requests": {"cpu": "10m"}}}]}},
                     **spec}}


def claim_template(name: str = "data") -> dict:
    return {"metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def cluster(api, gc: bool = False) -> AbstractAsyncContextManager[Cluster]:
    controllers: list[ControllerFactory] = [StatefulSetController]
    if gc:
        controllers.append(lambda c, f, r: GarbageCollector(c, f))
    return running(api, nodes=2, controllers=controllers, component="statefulset-controller",
                   simulator_kwargs={"cpu": "8", "delete_grace_cap": 0.1})


async def patch(api, path: str, body: dict) -> dict:
    status, out = await api.call("PATCH", path, body, content_type="application/merge-patch+json")
    assert status == 200, out
    return out


async def pods_of(api, app: str, live_only: bool = True) -> dict[str, dict]:
    items = (await get_ok(api, f"{PODS}?labelSelector=app%3D{app}"))["items"]
    return {p["metadata"]["name"]: p for p in items if not (live_only and p["metadata"].get("deletionTimestamp"))}


def ready(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and cu.is_pod_ready(pod)


def settled(s: dict, replicas: int | None = None) -> bool:
    want = s["spec"]["replicas"] if replicas is None else replicas
    st = s.get("status") or {}
    return (st.get("observedGeneration", 0) >= s["metadata"]["generation"] and st.get("replicas", 0) == want
            and st.get("readyReplicas", 0) == want and st.get("availableReplicas", 0) == want
            and st.get("updatedReplicas", 0) == want and st.get("currentRevision") == st.get("updateRevision"))


async def settled_set(api, name: str, replicas: int | None = None, timeout: float = 10) -> dict:
    return await eventually(lambda: get_ok(api, f"{SETS}/{name}"), lambda s: settled(s, replicas), timeout)


class PodLog:
    """Records pod watch events (in the server's order) for one app label."""

    def __init__(self, client: RestClient, app: str):
        self.client, self.app = client, app
        self.events: list[tuple[str, str, bool, bool]] = []  # (type, name, ready, terminating)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodLog:
        rv = (await self.client.list("v1", "pods", "default"))["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._run(rv))
        await asyncio.sleep(0.1)  # let the watch connect
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, rv: str) -> None:
        async for ev in self.client.watch("v1", "pods", "default", resourceVersion=rv,
                                          labelSelector=f"app={self.app}"):
            pod = ev["object"]
            self.events.append((ev["type"], pod["metadata"]["name"], ready(pod),
                                bool(pod["metadata"].get("deletionTimestamp"))))

    def index(self, pred: Callable[[tuple[str, str, bool, bool]], bool]) -> int:
        return next(i for i, e in enumerate(self.events) if pred(e))

    def added(self, name: str) -> int:
        return self.index(lambda e: e[0] == "ADDED" and e[1] == name)

    def first_ready(self, name: str) -> int:
        return self.index(lambda e: e[1] == name and e[2])

    def deletion_started(self, name: str) -> int:
        return self.index(lambda e: e[1] == name and (e[3] or e[0] == "DELETED"))

    def gone(self, name: str) -> int:
        return self.index(lambda e: e[0] == "DELETED" and e[1] == name)

    def created_names(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "ADDED"]


async def events_for(api, name: str) -> list[dict]:
    items = (await get_ok(api, EVENTS))["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "StatefulSet"]


async def test_ordered_ready_scales_up_in_order_and_down_in_reverse(api):
    """"StatefulSet, Scaling": pods are created 0, 1, 2, each only once its predecessor is
    Running and Ready, and removed 2, 1, 0, each only after its successor is gone."""
    async with cluster(api) as c, PodLog(c.client, "web") as log:
        # A short start delay makes "created before the predecessor was ready" observable.
        status, created = await api.call("POST", SETS, sts("web", 3, annotations={"sim.pinnace.io/start-delay": "0.3"}))
        assert status == 201, created
        s = await settled_set(api, "web", 3)
        assert log.created_names() == ["web-0", "web-1", "web-2"]
        for i in (1, 2):
            assert log.first_ready(f"web-{i - 1}") < log.added(f"web-{i}"), log.events

        st = s["status"]
        assert st["currentRevision"] == st["updateRevision"] and st["currentRevision"].startswith("web-")
        assert st["currentReplicas"] == 3 and st["observedGeneration"] == s["metadata"]["generation"]
        assert st.get("collisionCount", 0) == 0
        pods = await pods_of(api, "web")
        for i in range(3):
            p = pods[f"web-{i}"]
            labels = p["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
            assert labels["apps.kubernetes.io/pod-index"] == str(i)
            assert labels["controller-revision-hash"] == st["updateRevision"]
            assert p["spec"]["hostname"] == f"web-{i}" and p["spec"]["subdomain"] == "web-svc"
            [ref] = p["metadata"]["ownerReferences"]
            assert ref == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                           "uid": s["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

        # The revision: owned by the set, found by its selector, holding the template patch.
        revs = (await get_ok(api, f"{REVS}?labelSelector=app%3Dweb"))["items"]
        [rev] = revs
        assert rev["metadata"]["name"] == st["updateRevision"] and rev["revision"] == 1
        assert rev["metadata"]["labels"][history.HASH_LABEL] == rev["metadata"]["name"].rsplit("-", 1)[1]
        assert cu.controller_ref(rev)["uid"] == s["metadata"]["uid"]
        assert rev["data"] == {"spec": {"template": {**s["spec"]["template"], "$patch": "replace"}}}

        messages = {e["message"] for e in await events_for(api, "web") if e["reason"] == "SuccessfulCreate"}
        assert {f"create Pod web-{i} in StatefulSet web successful" for i in range(3)} <= messages

        # Scale to zero through the scale subresource: strictly from the highest ordinal.
        await patch(api, f"{SETS}/web/scale", {"spec": {"replicas": 0}})
        await eventually(lambda: pods_of(api, "web", live_only=False), lambda ps: not ps)
        assert log.gone("web-2") < log.deletion_started("web-1")
        assert log.gone("web-1") < log.deletion_started("web-0")
        s = await settled_set(api, "web", 0)
        messages = {e["message"] for e in await events_for(api, "web") if e["reason"] == "SuccessfulDelete"}
        assert {f"delete Pod web-{i} in StatefulSet web successful" for i in range(3)} <= messages


async def test_ordered_ready_halts_on_unready_pod_while_parallel_bursts(api):
    """"StatefulSet, Scaling" (halt while a pod is unhealthy) vs "StatefulSet, Burst Scaling"
    (Parallel creates every pod at once, healthy or not); spec.ordinals.start."""
    never_ready = {"sim.pinnace.io/ready": "false"}
    async with cluster(api):
        await api.call("POST", SETS, sts("ord", 3, annotations=never_ready))
        await api.call("POST", SETS, sts("par", 3, annotations=never_ready, podManagementPolicy="Parallel"))
        par = await eventually(lambda: pods_of(api, "par"),
                               lambda ps: len(ps) == 3 and all(p["status"].get("phase") == "Running"
                                                               for p in ps.values()))
        assert sorted(par) == ["par-0", "par-1", "par-2"] and not any(ready(p) for p in par.values())
        await asyncio.sleep(0.3)  # a few more chances to (wrongly) go on
        ordered = await pods_of(api, "ord")
        assert sorted(ordered) == ["ord-0"]
        s = await get_ok(api, f"{SETS}/ord")
        assert s["status"]["replicas"] == 1 and s["status"]["readyReplicas"] == 0

        # spec.ordinals.start shifts the ordinals (and names, and index labels).
        await api.call("POST", SETS, sts("st", 2, ordinals={"start": 3}))
        shifted = await eventually(lambda: pods_of(api, "st"), lambda ps: len(ps) == 2 and all(map(ready, ps.values())))
        assert {n: p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for n, p in shifted.items()} == {
            "st-3": "3", "st-4": "4"}

        # Parallel scale-down removes all condemned pods at once too, unhealthy or not.
        await patch(api, f"{SETS}/par", {"spec": {"replicas": 0}})
        await eventually(lambda: pods_of(api, "par", live_only=False), lambda ps: not ps)


async def test_claims_per_ordinal_retained_by_default_and_deleted_when_scaled(api):
    """PVCs ``<template>-<set>-<ordinal>`` made before their pod and mounted in it; kept on
    scale-down by default (Retain), collected with the pod with whenScaled: Delete."""
    async with cluster(api, gc=True):
        await api.call("POST", SETS, sts("db", 2, volumeClaimTemplates=[claim_template()]))
        await settled_set(api, "db", 2)
        pods = await pods_of(api, "db")
        for i in range(2):
            pvc = await get_ok(api, f"{PVCS}/data-db-{i}")
            assert pvc["metadata"]["labels"] == {"app": "db"}
            assert not pvc["metadata"].get("ownerReferences")  # Retain/Retain: nobody owns it
            assert int(pvc["metadata"]["resourceVersion"]) < int(pods[f"db-{i}"]["metadata"]["resourceVersion"])
            vol = next(v for v in pods[f"db-{i}"]["spec"]["volumes"] if v["name"] == "data")
            assert vol["persistentVolumeClaim"]["claimName"] == f"data-db-{i}"
        await patch(api, f"{SETS}/db", {"spec": {"replicas": 1}})
        await settled_set(api, "db", 1)
        await eventually(lambda: pods_of(api, "db", live_only=False), lambda ps: sorted(ps) == ["db-0"])
        await get_ok(api, f"{PVCS}/data-db-1")  # retained
        # Scaling back up reuses the retained claim.
        await patch(api, f"{SETS}/db", {"spec": {"replicas": 2}})
        await settled_set(api, "db", 2)
        assert (await get_ok(api, f"{PVCS}/data-db-1"))["metadata"]["uid"] == pvc["metadata"]["uid"]

        policy = {"whenDeleted": "Delete", "whenScaled": "Delete"}
        await api.call("POST", SETS, sts("eph", 2, volumeClaimTemplates=[claim_template()],
                                         persistentVolumeClaimRetentionPolicy=policy))
        s = await settled_set(api, "eph", 2)
        # whenDeleted: Delete -> the set owns its claims (the GC takes them with it).
        pvc = await eventually(lambda: get_ok(api, f"{PVCS}/data-eph-1"),
                               lambda c: bool(c["metadata"].get("ownerReferences")))
        assert [r["uid"] for r in pvc["metadata"]["ownerReferences"]] == [s["metadata"]["uid"]]
        assert not pvc["metadata"]["ownerReferences"][0].get("controller")
        await patch(api, f"{SETS}/eph", {"spec": {"replicas": 1}})

        async def claim_names() -> list[str]:
            items = (await get_ok(api, f"{PVCS}?labelSelector=app%3Deph"))["items"]
            return sorted(c["metadata"]["name"] for c in items if not c["metadata"].get("deletionTimestamp"))
        assert await eventually(claim_names, lambda names: names == ["data-eph-0"]) == ["data-eph-0"]
        await settled_set(api, "eph", 1)

        # Scaling up again right as a pod goes: its new incarnation waits for the old claim
        # (owned by the old pod) to be collected, then gets a fresh one owned by the set.
        await patch(api, f"{SETS}/eph", {"spec": {"replicas": 2}})
        await settled_set(api, "eph", 2)
        old = await get_ok(api, f"{PVCS}/data-eph-1")
        await patch(api, f"{SETS}/eph", {"spec": {"replicas": 1}})
        await eventually(lambda: pods_of(api, "eph", live_only=False),
                         lambda ps: "eph-1" not in ps or bool(ps["eph-1"]["metadata"].get("deletionTimestamp")))
        await patch(api, f"{SETS}/eph", {"spec": {"replicas": 2}})
        await settled_set(api, "eph", 2)
        new = await eventually(lambda: get_ok(api, f"{PVCS}/data-eph-1"),
                               lambda c: [r["uid"] for r in c["metadata"].get("ownerReferences") or ()]
                               == [s["metadata"]["uid"]])
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        pod1 = (await pods_of(api, "eph"))["eph-1"]
        assert int(new["metadata"]["resourceVersion"]) > 0 and cu.controller_ref(pod1)["name"] == "eph"


async def test_rolling_update_with_partition_then_finish(api):
    """"StatefulSet, Rolling Update with Partition": only ordinals >= partition move to the
    update revision (a deleted lower pod comes back at the current one); lowering the
    partition finishes the update highest ordinal first; then current == update."""
    async with cluster(api) as c:
        await api.call("POST", SETS, sts("pt", 3, updateStrategy={"type": "RollingUpdate",
                                                                 "rollingUpdate": {"partition": 2}}))
        s0 = await settled_set(api, "pt", 3)
        rev1 = s0["status"]["currentRevision"]
        async with PodLog(c.client, "pt") as log:
            await patch(api, f"{SETS}/pt", {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "nginx:2", "resources": {"requests": {"cpu": "10m"}}}]}}}})

            def canary_done(s: dict) -> bool:
                st = s.get("status") or {}
                return (st.get("updateRevision") not in (None, rev1) and st.get("updatedReplicas") == 1
                        and st.get("readyReplicas") == 3
                        and st.get("observedGeneration") == s["metadata"]["generation"])
            s = await eventually(lambda: get_ok(api, f"{SETS}/pt"), canary_done)
            rev2 = s["status"]["updateRevision"]
            assert s["status"]["currentRevision"] == rev1 and s["status"]["currentReplicas"] == 2
            pods = await pods_of(api, "pt")
            revs = {n: p["metadata"]["labels"]["controller-revision-hash"] for n, p in pods.items()}
            assert revs == {"pt-0": rev1, "pt-1": rev1, "pt-2": rev2}
            assert pods["pt-2"]["spec"]["containers"][0]["image"] == "nginx:2"
            assert pods["pt-0"]["spec"]["containers"][0]["image"] == "nginx:1"

            # A pod below the partition deleted mid-update is restored at the current revision.
            uid = pods["pt-0"]["metadata"]["uid"]
            await api.call("DELETE", f"{PODS}/pt-0")
            p0 = await eventually(lambda: pods_of(api, "pt"), lambda ps: "pt-0" in ps
                                  and ps["pt-0"]["metadata"]["uid"] != uid and ready(ps["pt-0"]))
            assert p0["pt-0"]["metadata"]["labels"]["controller-revision-hash"] == rev1
            assert p0["pt-0"]["spec"]["containers"][0]["image"] == "nginx:1"

            mark = len(log.events)
            await patch(api, f"{SETS}/pt", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
            s = await settled_set(api, "pt", 3)
            assert s["status"]["currentRevision"] == s["status"]["updateRevision"] == rev2
            assert s["status"]["currentReplicas"] == 3
            pods = await pods_of(api, "pt")
            assert all(p["metadata"]["labels"]["controller-revision-hash"] == rev2 for p in pods.values())
            # Highest first, one at a time: pt-1 was replaced and ready before pt-0 went.
            tail = log.events[mark:]
            first = {n: next(i for i, e in enumerate(tail) if e[1] == n and (e[3] or e[0] == "DELETED"))
                     for n in ("pt-1", "pt-0")}
            new_pt1 = next(i for i, e in enumerate(tail) if e[1] == "pt-1" and e[0] == "ADDED")
            assert first["pt-1"] < new_pt1 < first["pt-0"]
            assert any(e[1] == "pt-1" and e[2] for e in tail[new_pt1:first["pt-0"]])
            assert not any(e[1] == "pt-2" and e[0] == "DELETED" for e in tail)  # already updated: untouched

        # Two revisions, both owned; the newest is revision 2.
        items = history.sort_revisions((await get_ok(api, f"{REVS}?labelSelector=app%3Dpt"))["items"])
        assert [r["metadata"]["name"] for r in items] == [rev1, rev2] and [r["revision"] for r in items] == [1, 2]


async def test_on_delete_updates_only_recreated_pods(api):
    """OnDelete: a template change makes a new update revision but replaces nothing; a pod
    deleted by hand comes back at the update revision."""
    async with cluster(api):
        await api.call("POST", SETS, sts("od", 2, updateStrategy={"type": "OnDelete"}))
        s = await settled_set(api, "od", 2)
        rev1 = s["status"]["currentRevision"]
        before = await pods_of(api, "od")
        await patch(api, f"{SETS}/od", {"spec": {"template": {"metadata": {"labels": {"app": "od", "v": "2"}}}}})
        s = await eventually(lambda: get_ok(api, f"{SETS}/od"),
                             lambda s: s["status"].get("updateRevision") not in (None, rev1))
        rev2 = s["status"]["updateRevision"]
        await asyncio.sleep(0.3)
        pods = await pods_of(api, "od")
        assert {n: p["metadata"]["uid"] for n, p in pods.items()} == {
            n: p["metadata"]["uid"] for n, p in before.items()}
        s = await get_ok(api, f"{SETS}/od")
        assert s["status"]["currentRevision"] == rev1 and s["status"]["updatedReplicas"] == 0

        await api.call("DELETE", f"{PODS}/od-1")
        old_uid = before["od-1"]["metadata"]["uid"]
        pods = await eventually(lambda: pods_of(api, "od"), lambda ps: "od-1" in ps
                                and ps["od-1"]["metadata"]["uid"] != old_uid and ready(ps["od-1"]))
        assert pods["od-1"]["metadata"]["labels"]["controller-revision-hash"] == rev2
        assert pods["od-1"]["metadata"]["labels"]["v"] == "2"
        assert pods["od-0"]["metadata"]["labels"]["controller-revision-hash"] == rev1
        s = await eventually(lambda: get_ok(api, f"{SETS}/od"), lambda s: s["status"].get("updatedReplicas") == 1)
        # OnDelete never declares the update complete on its own.
        assert s["status"]["currentRevision"] == rev1 and s["status"]["currentReplicas"] == 1


async def test_failed_pod_is_recreated_and_rollback_reuses_revision(api):
    """"StatefulSet, Recreate Failed Pod" and the rollback half of "StatefulSet, Rolling
    Update": a template set back to an earlier one reuses that revision (its number bumped)."""
    async with cluster(api):
        await api.call("POST", SETS, sts("rb", 2, revisionHistoryLimit=1))
        s = await settled_set(api, "rb", 2)
        rev1 = s["status"]["currentRevision"]
        pod = (await pods_of(api, "rb"))["rb-0"]
        # The node rejects/evicts it: phase Failed.
        failed = copy.deepcopy(pod)
        failed["status"]["phase"] = "Failed"
        status, body = await api.call("PUT", f"{PODS}/rb-0/status", failed)
        assert status == 200, body
        await eventually(lambda: pods_of(api, "rb"),
                         lambda ps: "rb-0" in ps and ps["rb-0"]["metadata"]["uid"] != pod["metadata"]["uid"]
                         and ready(ps["rb-0"]))
        assert any(e["reason"] == "RecreatingFailedPod" for e in await events_for(api, "rb"))

        image = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2",
                                                                "resources": {"requests": {"cpu": "10m"}}}]}}}}
        await patch(api, f"{SETS}/rb", image)
        s = await settled_set(api, "rb", 2)
        rev2 = s["status"]["currentRevision"]
        assert rev2 != rev1
        image["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1"
        await patch(api, f"{SETS}/rb", image)
        s = await settled_set(api, "rb", 2)
        assert s["status"]["currentRevision"] == rev1  # the same revision, not a new one
        items = history.sort_revisions((await get_ok(api, f"{REVS}?labelSelector=app%3Drb"))["items"])
        # revisionHistoryLimit 1: the live revision plus one old one.
        assert [(r["metadata"]["name"], r["revision"]) for r in items] == [(rev2, 2), (rev1, 3)]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_rollout_status_history_undo(api):
    """``kubectl rollout status|history|undo statefulset/...`` with the real kubectl: status
    reads the revisions in status, history lists our ControllerRevisions, undo patches the
    set with the previous revision's data."""
    async with cluster(api):
        await api.call("POST", SETS, sts("kc", 2))
        rc, out = await kubectl(api, "rollout", "status", "statefulset/kc", "--timeout=10s")
        assert rc == 0 and "partitioned roll out complete: 2 new pods have been updated" in out, out
        s = await get_ok(api, f"{SETS}/kc")
        rev1 = s["status"]["currentRevision"]

        rc, out = await kubectl(api, "set", "image", "statefulset/kc", "c=nginx:2")
        assert rc == 0, out
        rc, out = await kubectl(api, "rollout", "status", "statefulset/kc", "--timeout=10s")
        assert rc == 0 and "partitioned roll out complete: 2 new pods have been updated" in out, out
        s = await settled_set(api, "kc", 2)
        rev2 = s["status"]["currentRevision"]
        assert rev2 != rev1

        rc, out = await kubectl(api, "rollout", "history", "statefulset/kc")
        assert rc == 0 and re.search(r"^1\s", out, re.M) and re.search(r"^2\s", out, re.M), out
        rc, out = await kubectl(api, "rollout", "history", "statefulset/kc", "--revision=1")
        assert rc == 0 and "nginx:1" in out, out

        rc, out = await kubectl(api, "rollout", "undo", "statefulset/kc")
        assert rc == 0 and "rolled back" in out, out
        rc, out = await kubectl(api, "rollout", "status", "statefulset/kc", "--timeout=10s")
        assert rc == 0, out
        s = await settled_set(api, "kc", 2)
        assert s["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
        assert s["status"]["currentRevision"] == rev1
        pods = await pods_of(api, "kc")
        assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {"nginx:1"}
        rc, out = await kubectl(api, "rollout", "history", "statefulset/kc")
        assert rc == 0 and re.search(r"^2\s", out, re.M) and re.search(r"^3\s", out, re.M), out
        assert not re.search(r"^1\s", out, re.M), out


def max_unavailable_seen(events: list[tuple[str, str, bool, bool]], names: list[str]) -> int:
    """Replay pod events: the most pods of ``names`` not ready (or terminating, or absent) at once."""
    up = dict.fromkeys(names, True)
    worst = 0
    for kind, name, is_ready, terminating in events:
        if name in up:
            up[name] = kind != "DELETED" and is_ready and not terminating
            worst = max(worst, sum(1 for v in up.values() if not v))
    return worst


async def test_rolling_update_max_unavailable(api):
    """RollingUpdate ``maxUnavailable: 2`` replaces two pods at a time (never more), where
    the default replaces one at a time."""
    slow = {"sim.pinnace.io/start-delay": "0.2"}
    async with cluster(api) as c:
        await api.call("POST", SETS, sts("mu", 4, annotations=slow, updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}))
        await api.call("POST", SETS, sts("one", 3, annotations=slow))
        await settled_set(api, "mu", 4)
        await settled_set(api, "one", 3)
        new_image = {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2", "resources": {"requests": {"cpu": "10m"}}}]}}}}
        async with PodLog(c.client, "mu") as mu_log, PodLog(c.client, "one") as one_log:
            await patch(api, f"{SETS}/mu", new_image)
            await patch(api, f"{SETS}/one", new_image)
            await settled_set(api, "mu", 4)
            await settled_set(api, "one", 3)
        assert max_unavailable_seen(mu_log.events, [f"mu-{i}" for i in range(4)]) == 2
        assert max_unavailable_seen(one_log.events, [f"one-{i}" for i in range(3)]) == 1
        pods = await pods_of(api, "mu")
        assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {"nginx:2"}
