"""The garbage collector: background, foreground and orphan propagation over
ownerReferences, with objects whose ownerships are made by hand (no other
controllers run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pinnace.client.informer import SharedInformerFactory
from pinnace.client.rest import RestClient
from pinnace.controllers.garbagecollector import GarbageCollector
from tests.support.waiting import eventually

NS = "/api/v1/namespaces/default"


@pytest.fixture
async def gc(api) -> AsyncIterator[GarbageCollector]:
    client = RestClient.from_kubeconfig(api.kubeconfig, user_agent="test-gc")
    factory = SharedInformerFactory(client)
    collector = GarbageCollector(client, factory, None, discovery_interval=0.5)
    factory.start()
    collector.start()
    assert await collector.wait_for_sync(10)
    try:
        yield collector
    finally:
        await collector.stop()
        await factory.stop()
        await client.close()


def ref(obj: dict, block: bool | None = None) -> dict:
    r = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
         "uid": obj["metadata"]["uid"]}
    if block is not None:
        r["blockOwnerDeletion"] = block
    return r


async def create(api, path: str, obj: dict) -> dict:
    status, body = await api.call("POST", path, obj)
    assert status == 201, body
    return body


async def configmap(api, name: str, owners: list[dict] | None = None, finalizers: list[str] | None = None) -> dict:
    meta: dict = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    return await create(api, f"{NS}/configmaps", {"metadata": meta})


def gone(api, path: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await api.call("GET", path))[0] == 404
    return check


async def test_background_deletes_dependents_of_a_deleted_owner(api, gc):
    owner = await configmap(api, "owner")
    await configmap(api, "dep1", [ref(owner)])
    secret = await create(api, f"{NS}/secrets", {"metadata": {"name": "dep2", "ownerReferences": [ref(owner)]}})
    # A grandchild goes too, once its parent is collected.
    await configmap(api, "grandchild", [ref(secret)])
    assert (await api.call("DELETE", f"{NS}/configmaps/owner"))[0] == 200
    await eventually(gone(api, f"{NS}/configmaps/dep1"))
    await eventually(gone(api, f"{NS}/secrets/dep2"))
    await eventually(gone(api, f"{NS}/configmaps/grandchild"))


async def test_dependent_with_a_remaining_owner_only_loses_the_dangling_reference(api, gc):
    a = await configmap(api, "owner-a")
    b = await create(api, f"{NS}/secrets", {"metadata": {"name": "owner-b"}})
    await configmap(api, "shared", [ref(a), ref(b)])
    await api.call("DELETE", f"{NS}/configmaps/owner-a")

    async def only_b_left() -> bool:
        status, obj = await api.call("GET", f"{NS}/configmaps/shared")
        assert status == 200
        return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []] == [b["metadata"]["uid"]]

    await eventually(only_b_left)
    await asyncio.sleep(0.3)  # and it is not collected afterwards
    assert (await api.call("GET", f"{NS}/configmaps/shared"))[0] == 200


async def test_foreground_waits_for_blocking_dependents(api, gc):
    owner = await configmap(api, "fg-owner")
    # The blocking dependent holds its own finalizer, so it lingers while "being deleted".
    await configmap(api, "fg-blocker", [ref(owner, block=True)], finalizers=["example.com/hold"])
    await configmap(api, "fg-free", [ref(owner, block=False)])
    status, body = await api.call("DELETE", f"{NS}/configmaps/fg-owner", {"propagationPolicy": "Foreground"})
    assert status in (200, 202) and body["metadata"]["deletionTimestamp"]  # pending, not yet done

    # Every dependent is deleted; the non-blocking one disappears, the blocking one lingers.
    await eventually(gone(api, f"{NS}/configmaps/fg-free"))

    async def blocker_terminating() -> bool:
        return bool((await api.call("GET", f"{NS}/configmaps/fg-blocker"))[1]["metadata"].get("deletionTimestamp"))

    await eventually(blocker_terminating)
    await asyncio.sleep(0.3)
    status, obj = await api.call("GET", f"{NS}/configmaps/fg-owner")
    assert status == 200
    assert obj["metadata"]["deletionTimestamp"] and "foregroundDeletion" in obj["metadata"]["finalizers"]

    # Release the blocker: it goes, then the owner.
    await api.call("PATCH", f"{NS}/configmaps/fg-blocker",
                   [{"op": "remove", "path": "/metadata/finalizers/0"}], content_type="application/json-patch+json")
    await eventually(gone(api, f"{NS}/configmaps/fg-blocker"))
    await eventually(gone(api, f"{NS}/configmaps/fg-owner"))


async def test_foreground_owner_without_blocking_dependents_goes_at_once(api, gc):
    owner = await configmap(api, "fg2-owner")
    await configmap(api, "fg2-dep", [ref(owner)])
    await api.call("DELETE", f"{NS}/configmaps/fg2-owner", {"propagationPolicy": "Foreground"})
    await eventually(gone(api, f"{NS}/configmaps/fg2-owner"))
    await eventually(gone(api, f"{NS}/configmaps/fg2-dep"))


async def test_orphan_keeps_dependents_without_owner_references(api, gc):
    owner = await configmap(api, "or-owner")
    other = await configmap(api, "or-other")
    await configmap(api, "or-dep1", [ref(owner, block=True)])
    await configmap(api, "or-dep2", [ref(owner), ref(other)])
    status, _ = await api.call("DELETE", f"{NS}/configmaps/or-owner", {"propagationPolicy": "Orphan"})
    assert status in (200, 202)
    await eventually(gone(api, f"{NS}/configmaps/or-owner"))
    status, dep1 = await api.call("GET", f"{NS}/configmaps/or-dep1")
    assert status == 200 and not dep1["metadata"].get("ownerReferences")
    status, dep2 = await api.call("GET", f"{NS}/configmaps/or-dep2")
    assert status == 200 and [r["uid"] for r in dep2["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]
    await asyncio.sleep(0.3)
    assert (await api.call("GET", f"{NS}/configmaps/or-dep1"))[0] == 200


async def test_dangling_reference_to_an_object_that_never_existed_is_collected(api, gc):
    phantom = {"apiVersion": "v1", "kind": "ConfigMap", "name": "never", "uid": str(uuid.uuid4())}
    await configmap(api, "orphaned", [phantom])
    await eventually(gone(api, f"{NS}/configmaps/orphaned"))


async def test_reference_with_a_stale_uid_counts_as_absent(api, gc):
    # The name exists, but as a different object (another uid): still absent.
    await configmap(api, "reused")
    stale = {"apiVersion": "v1", "kind": "ConfigMap", "name": "reused", "uid": str(uuid.uuid4())}
    await configmap(api, "stale-dep", [stale])
    await eventually(gone(api, f"{NS}/configmaps/stale-dep"))
    assert (await api.call("GET", f"{NS}/configmaps/reused"))[0] == 200


async def test_dependents_present_before_the_collector_started(api):
    # The owner is already gone when the collector first looks: found on its initial list.
    owner = await configmap(api, "early-owner")
    await configmap(api, "early-dep", [ref(owner)])
    await api.call("DELETE", f"{NS}/configmaps/early-owner")
    client = RestClient.from_kubeconfig(api.kubeconfig)
    factory = SharedInformerFactory(client)
    collector = GarbageCollector(client, factory, None)
    collector.start()  # without factory.start(): the collector starts the informers it needs
    try:
        await eventually(gone(api, f"{NS}/configmaps/early-dep"))
    finally:
        await collector.stop()
        await factory.stop()
        await client.close()


async def test_cluster_scoped_owner(api, gc):
    role = await create(api, "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                        {"metadata": {"name": "gc-owner"}, "rules": []})
    await configmap(api, "owned-by-role", [ref(role)])
    await asyncio.sleep(0.3)
    assert (await api.call("GET", f"{NS}/configmaps/owned-by-role"))[0] == 200  # a live owner keeps it
    await api.call("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/gc-owner")
    await eventually(gone(api, f"{NS}/configmaps/owned-by-role"))


async def test_namespaced_owner_in_another_namespace_is_absent(api, gc):
    await create(api, "/api/v1/namespaces", {"metadata": {"name": "elsewhere"}})
    owner = await create(api, "/api/v1/namespaces/elsewhere/configmaps", {"metadata": {"name": "far-owner"}})
    # Owner references are namespace-local: this one cannot be satisfied from "default".
    await configmap(api, "cross-ns", [ref(owner)])
    await eventually(gone(api, f"{NS}/configmaps/cross-ns"))
    assert (await api.call("GET", "/api/v1/namespaces/elsewhere/configmaps/far-owner"))[0] == 200


def _pod_template(app: str) -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_deployment_owns_replicaset(api, gc):
    apps = "/apis/apps/v1/namespaces/default"
    dep = await create(api, f"{apps}/deployments", {
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": _pod_template("web")}})
    await create(api, f"{apps}/replicasets", {
        "metadata": {"name": "web-1", "ownerReferences": [{**ref(dep, block=True), "controller": True}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": _pod_template("web")}})
    status, _ = await api.call("DELETE", f"{apps}/deployments/web", {"propagationPolicy": "Foreground"})
    assert status in (200, 202)
    await eventually(gone(api, f"{apps}/replicasets/web-1"))
    await eventually(gone(api, f"{apps}/deployments/web"))


async def test_deployment_background_and_orphan(api, gc):
    apps = "/apis/apps/v1/namespaces/default"
    spec = {"replicas": 0, "selector": {"matchLabels": {"app": "x"}}, "template": _pod_template("x")}
    d1 = await create(api, f"{apps}/deployments", {"metadata": {"name": "d1"}, "spec": spec})
    d2 = await create(api, f"{apps}/deployments", {"metadata": {"name": "d2"}, "spec": spec})
    await create(api, f"{apps}/replicasets", {"metadata": {"name": "rs1", "ownerReferences": [ref(d1)]},
                                              "spec": spec})
    await create(api, f"{apps}/replicasets", {"metadata": {"name": "rs2", "ownerReferences": [ref(d2)]},
                                              "spec": spec})
    await api.call("DELETE", f"{apps}/deployments/d1")
    await api.call("DELETE", f"{apps}/deployments/d2", {"propagationPolicy": "Orphan"})
    await eventually(gone(api, f"{apps}/replicasets/rs1"))
    await eventually(gone(api, f"{apps}/deployments/d2"))
    status, rs2 = await api.call("GET", f"{apps}/replicasets/rs2")
    assert status == 200 and not rs2["metadata"].get("ownerReferences")


async def test_graph_tracks_owners_and_dependents(api, gc):
    owner = await configmap(api, "g-owner")
    dep = await configmap(api, "g-dep", [ref(owner)])
    ou, du = owner["metadata"]["uid"], dep["metadata"]["uid"]

    async def linked() -> bool:
        node = gc.nodes.get(ou)
        return node is not None and node.observed and du in node.dependents

    await eventually(linked)
    # Dropping the reference by hand unlinks it, and nothing is deleted.
    await api.call("PATCH", f"{NS}/configmaps/g-dep", [{"op": "remove", "path": "/metadata/ownerReferences"}],
                   content_type="application/json-patch+json")

    async def unlinked() -> bool:
        return du not in gc.nodes[ou].dependents

    await eventually(unlinked)
    await api.call("DELETE", f"{NS}/configmaps/g-owner")
    await eventually(lambda: _absent(gc, ou))
    assert (await api.call("GET", f"{NS}/configmaps/g-dep"))[0] == 200


async def _absent(gc: GarbageCollector, uid: str) -> bool:
    return uid not in gc.nodes


async def test_kinds_added_later_are_watched(api, gc):
    # What a CRD does to the API server: a new kind appears in discovery at run time.
    from pinnace.api.resources import ResourceType, storage_prefix

    api.server.resources.add(ResourceType(group="example.com", version="v1", kind="Widget", plural="widgets",
                                          namespaced=True, storage_prefix=storage_prefix("example.com", "widgets")))
    await eventually(lambda: _monitors(gc, ("example.com/v1", "widgets")))
    owner = await configmap(api, "widget-owner")
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    widget = await create(api, widgets, {"apiVersion": "example.com/v1", "kind": "Widget",
                                         "metadata": {"name": "w", "ownerReferences": [ref(owner)]}})
    await configmap(api, "widget-dep", [ref(widget)])
    await api.call("DELETE", f"{NS}/configmaps/widget-owner")
    await eventually(gone(api, f"{widgets}/w"))
    await eventually(gone(api, f"{NS}/configmaps/widget-dep"))

    # The kind goes away again (its CRD deleted): no longer watched, and an object
    # it owns is not taken for an orphan, since its owner cannot be looked up.
    w2 = await create(api, widgets, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}})
    await configmap(api, "w2-dep", [ref(w2)])
    api.server.resources.remove("example.com", "v1", "widgets")

    async def unmonitored() -> bool:
        return ("example.com/v1", "widgets") not in gc.monitors

    await eventually(unmonitored)
    await asyncio.sleep(0.3)
    assert (await api.call("GET", f"{NS}/configmaps/w2-dep"))[0] == 200


async def _monitors(gc: GarbageCollector, key: tuple[str, str]) -> bool:
    return key in gc.monitors


async def test_owner_of_an_unknown_kind_is_not_treated_as_absent(api, gc):
    # It cannot be verified, so the dependent is kept (and retried), never deleted.
    unknown = {"apiVersion": "nowhere.example/v1", "kind": "Ghost", "name": "g", "uid": str(uuid.uuid4())}
    await configmap(api, "kept", [unknown])
    await asyncio.sleep(0.5)
    assert (await api.call("GET", f"{NS}/configmaps/kept"))[0] == 200


async def test_foreground_owner_of_a_dependent_with_another_live_owner(api, gc):
    # The dependent stays (a live owner keeps it) and stops blocking the deleted one.
    doomed = await configmap(api, "fg3-doomed")
    keeper = await configmap(api, "fg3-keeper")
    await configmap(api, "fg3-shared", [ref(doomed, block=True), ref(keeper, block=True)])
    await api.call("DELETE", f"{NS}/configmaps/fg3-doomed", {"propagationPolicy": "Foreground"})
    await eventually(gone(api, f"{NS}/configmaps/fg3-doomed"))
    status, obj = await api.call("GET", f"{NS}/configmaps/fg3-shared")
    assert status == 200 and [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [keeper["metadata"]["uid"]]


async def test_foreground_deletion_of_an_ownership_cycle_completes(api, gc):
    a = await configmap(api, "cyc-a")
    b = await configmap(api, "cyc-b", [ref(a, block=True)])
    await api.call("PATCH", f"{NS}/configmaps/cyc-a", {"metadata": {"ownerReferences": [ref(b, block=True)]}},
                   content_type="application/merge-patch+json")
    await api.call("DELETE", f"{NS}/configmaps/cyc-a", {"propagationPolicy": "Foreground"})
    await eventually(gone(api, f"{NS}/configmaps/cyc-a"))
    await eventually(gone(api, f"{NS}/configmaps/cyc-b"))
