"""API semantics on an in-process server: metadata, finalizers, graceful deletion,
dry run, selectors, pagination, watch, subresources, Services, Table output.

Conformance: "API Chunking, server should return chunks of results for list
calls", "API Chunking, server should support continue listing from the last
key", "watch-configmaps-from-resource-version", "watch-configmaps-label-changed",
"watch-configmaps-with-multiple-watchers", "Namespace patching".
"""

from __future__ import annotations

import asyncio

import orjson

CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def pod(name: str, node: str = "", labels: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def deployment(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}


async def watch_events(api, path: str, n: int, timeout: float = 10.0) -> list[dict]:
    out: list[dict] = []
    async with api.session.get(api.base + path) as resp:
        assert resp.status == 200
        async def read():
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    out.append(orjson.loads(line))
                    if len(out) >= n:
                        return
        await asyncio.wait_for(read(), timeout)
    return out


async def test_metadata_is_filled_and_generation_follows_spec(api):
    status, d = await api.call("POST", DEPLOYS, deployment("gen"))
    assert status == 201
    meta = d["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    status, d2 = await api.call("PATCH", f"{DEPLOYS}/gen", {"metadata": {"labels": {"x": "y"}}},
                                content_type="application/merge-patch+json")
    assert d2["metadata"]["generation"] == 1  # metadata change
    status, d3 = await api.call("PATCH", f"{DEPLOYS}/gen", {"spec": {"replicas": 3}},
                                content_type="application/merge-patch+json")
    assert d3["metadata"]["generation"] == 2
    assert d3["metadata"]["uid"] == meta["uid"]
    # Defaults applied as Kubernetes does.
    assert d3["spec"]["strategy"]["type"] == "RollingUpdate"
    assert d3["spec"]["revisionHistoryLimit"] == 10
    assert d3["spec"]["progressDeadlineSeconds"] == 600


async def test_generate_name(api):
    status, obj = await api.call("POST", CM, {"metadata": {"generateName": "cfg-"}})
    assert status == 201
    assert obj["metadata"]["name"].startswith("cfg-") and len(obj["metadata"]["name"]) == 9


async def test_noop_update_keeps_resource_version(api):
    status, obj = await api.call("POST", CM, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    status, again = await api.call("PUT", f"{CM}/same", obj)
    assert status == 200 and again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


async def test_finalizers_hold_deletion_until_removed(api):
    await api.call("POST", CM, {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}})
    status, obj = await api.call("DELETE", f"{CM}/held")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    status, obj = await api.call("GET", f"{CM}/held")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    status, obj = await api.call("PATCH", f"{CM}/held", {"metadata": {"finalizers": None}},
                                 content_type="application/merge-patch+json")
    assert status == 200
    status, _ = await api.call("GET", f"{CM}/held")
    assert status == 404


async def test_propagation_policy_adds_gc_finalizers(api):
    await api.call("POST", DEPLOYS, deployment("fg"))
    status, obj = await api.call("DELETE", f"{DEPLOYS}/fg", {"propagationPolicy": "Foreground"})
    assert status == 200 and "foregroundDeletion" in obj["metadata"]["finalizers"]
    await api.call("POST", DEPLOYS, deployment("orph"))
    status, obj = await api.call("DELETE", f"{DEPLOYS}/orph?propagationPolicy=Orphan")
    assert "orphan" in obj["metadata"]["finalizers"]
    # A second delete with another policy replaces the first one's finalizer.
    status, obj = await api.call("DELETE", f"{DEPLOYS}/fg", {"propagationPolicy": "Orphan"})
    assert "orphan" in obj["metadata"]["finalizers"] and "foregroundDeletion" not in obj["metadata"]["finalizers"]
    await api.call("POST", DEPLOYS, deployment("cascade"))
    status, obj = await api.call("DELETE", f"{DEPLOYS}/cascade",
                                 {"orphanDependents": False, "propagationPolicy": "Foreground"})
    assert status == 202  # only an explicit orphanDependents=false makes a pending delete 202
    await api.call("POST", DEPLOYS, deployment("bg"))
    status, obj = await api.call("DELETE", f"{DEPLOYS}/bg", {"propagationPolicy": "Background"})
    assert status == 200 and obj["status"] == "Success"


async def test_graceful_pod_deletion(api):
    await api.call("POST", PODS, pod("unscheduled"))
    status, _ = await api.call("DELETE", f"{PODS}/unscheduled")
    assert status == 200
    assert (await api.call("GET", f"{PODS}/unscheduled"))[0] == 404

    await api.call("POST", PODS, pod("running", node="node-1"))
    status, obj = await api.call("DELETE", f"{PODS}/running")
    assert status == 200
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30 and obj["metadata"]["deletionTimestamp"]
    status, obj = await api.call("GET", f"{PODS}/running")
    assert status == 200
    status, _ = await api.call("DELETE", f"{PODS}/running", {"gracePeriodSeconds": 0})
    assert (await api.call("GET", f"{PODS}/running"))[0] == 404


async def test_dry_run_stores_nothing(api):
    status, obj = await api.call("POST", CM + "?dryRun=All", {"metadata": {"name": "dry"}})
    assert status == 201 and obj["metadata"]["uid"]
    assert (await api.call("GET", f"{CM}/dry"))[0] == 404
    await api.call("POST", CM, {"metadata": {"name": "wet"}, "data": {"a": "1"}})
    status, obj = await api.call("PATCH", f"{CM}/wet?dryRun=All", {"data": {"a": "2"}},
                                 content_type="application/merge-patch+json")
    assert obj["data"] == {"a": "2"}
    assert (await api.call("GET", f"{CM}/wet"))[1]["data"] == {"a": "1"}
    status, _ = await api.call("DELETE", f"{CM}/wet?dryRun=All")
    assert (await api.call("GET", f"{CM}/wet"))[0] == 200


async def test_label_selectors_all_operators(api):
    for name, labels in {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "db"},
                         "c": {"env": "prod"}, "d": {}}.items():
        await api.call("POST", CM, {"metadata": {"name": f"sel-{name}", "labels": {**labels, "set": "sel"}}})

    async def names(selector: str) -> list[str]:
        status, out = await api.call("GET", f"{CM}?labelSelector=set%3Dsel,{selector}")
        assert status == 200, out
        return [i["metadata"]["name"] for i in out["items"]]

    assert await names("env%3Dprod") == ["sel-a", "sel-c"]
    assert await names("env%3D%3Dprod") == ["sel-a", "sel-c"]
    assert await names("env!%3Dprod") == ["sel-b", "sel-d"]
    assert await names("env%20in%20(dev,qa)") == ["sel-b"]
    assert await names("env%20notin%20(dev)") == ["sel-a", "sel-c", "sel-d"]
    assert await names("tier") == ["sel-a", "sel-b"]
    assert await names("!tier") == ["sel-c", "sel-d"]
    status, out = await api.call("GET", f"{CM}?labelSelector=env%20in%20dev")
    assert status == 400


async def test_field_selectors(api):
    await api.call("POST", PODS, pod("on-1", node="node-1"))
    await api.call("POST", PODS, pod("on-2", node="node-2"))
    status, out = await api.call("GET", f"{PODS}?fieldSelector=spec.nodeName%3Dnode-1")
    assert [i["metadata"]["name"] for i in out["items"]] == ["on-1"]
    status, out = await api.call("GET", "/api/v1/pods?fieldSelector=status.phase%3DPending,metadata.name!%3Don-1")
    assert [i["metadata"]["name"] for i in out["items"]] == ["on-2"]
    status, out = await api.call("GET", f"{PODS}?fieldSelector=spec.bogus%3Dx")
    assert status == 400 and "field label not supported" in out["message"]


async def test_pagination_is_a_consistent_snapshot(api):
    for i in range(25):
        await api.call("POST", CM, {"metadata": {"name": f"page-{i:02d}", "labels": {"p": "1"}}})
    status, first = await api.call("GET", f"{CM}?labelSelector=p%3D1&limit=10")
    assert len(first["items"]) == 10 and first["metadata"]["continue"]
    # Written after the first page: not part of this list.
    await api.call("POST", CM, {"metadata": {"name": "page-99", "labels": {"p": "1"}}})
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        status, page = await api.call("GET", f"{CM}?labelSelector=p%3D1&limit=10&continue={token}")
        assert status == 200
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"page-{i:02d}" for i in range(25)]
    status, page = await api.call("GET", f"{CM}?limit=5")
    assert page["metadata"]["remainingItemCount"] >= 21
    status, bad = await api.call("GET", f"{CM}?limit=5&continue=garbage")
    assert status == 400


async def test_watch_from_resource_version_and_label_changes(api):
    status, obj = await api.call("POST", CM, {"metadata": {"name": "w", "labels": {"watch": "yes"}}})
    rv = obj["metadata"]["resourceVersion"]
    await api.call("PATCH", f"{CM}/w", {"data": {"a": "1"}}, content_type="application/merge-patch+json")
    await api.call("PATCH", f"{CM}/w", {"metadata": {"labels": {"watch": "no"}}},
                   content_type="application/merge-patch+json")
    await api.call("DELETE", f"{CM}/w")
    events = await watch_events(api, f"{CM}?watch=true&labelSelector=watch%3Dyes&resourceVersion={rv}", 2)
    # The label change takes it out of the selector: to this watcher that is a deletion.
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["data"] == {"a": "1"}
    everything = await watch_events(api, f"{CM}?watch=true&resourceVersion={rv}", 3)
    assert [e["type"] for e in everything] == ["MODIFIED", "MODIFIED", "DELETED"]


async def test_watch_without_version_starts_with_current_state(api):
    await api.call("POST", CM, {"metadata": {"name": "existing"}})
    events = await watch_events(api, f"{CM}?watch=true&fieldSelector=metadata.name%3Dexisting", 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "existing"


async def test_watch_timeout_and_bookmarks(api):
    api.server.handlers.bookmark_interval = 0.2
    status, obj = await api.call("POST", CM, {"metadata": {"name": "bm"}})
    rv = obj["metadata"]["resourceVersion"]
    events = await watch_events(api, f"{CM}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"
                                     "&timeoutSeconds=2", 1, timeout=5)
    assert events[0]["type"] == "BOOKMARK"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    # With timeoutSeconds the server ends the stream by itself.
    async with api.session.get(api.base + f"{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as resp:
        body = await asyncio.wait_for(resp.read(), 5)
    assert body == b""


async def test_watch_from_a_compacted_version_is_410(api):
    status, obj = await api.call("POST", CM, {"metadata": {"name": "old"}})
    old_rv = int(obj["metadata"]["resourceVersion"])
    for i in range(30):
        await api.call("PATCH", f"{CM}/old", {"data": {"i": str(i)}}, content_type="application/merge-patch+json")
    api.server.cache.forget_before(old_rv + 10)
    events = await watch_events(api, f"{CM}?watch=true&resourceVersion={old_rv}", 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    # Paginated lists from a compacted revision are 410 too.
    await api.call("POST", CM, {"metadata": {"name": "old2"}})
    status, first = await api.call("GET", f"{CM}?limit=1")
    await api.call("PATCH", f"{CM}/old2", {"data": {"x": "y"}}, content_type="application/merge-patch+json")
    await api.server.store.compact(await api.server.store.current_revision())
    status, out = await api.call("GET", f"{CM}?limit=1&continue={first['metadata']['continue']}")
    assert status == 410 and out["reason"] == "Expired"


async def test_status_subresource_separates_spec_and_status(api):
    status, d = await api.call("POST", DEPLOYS, deployment("st"))
    d["status"] = {"replicas": 7}
    d["spec"]["replicas"] = 2
    status, upd = await api.call("PUT", f"{DEPLOYS}/st", d)
    assert upd["spec"]["replicas"] == 2 and upd.get("status", {}).get("replicas") is None
    upd["status"] = {"replicas": 7}
    upd["spec"]["replicas"] = 9
    status, st = await api.call("PUT", f"{DEPLOYS}/st/status", upd)
    assert status == 200, st
    assert st["status"]["replicas"] == 7 and st["spec"]["replicas"] == 2


async def test_scale_subresource(api):
    await api.call("POST", DEPLOYS, deployment("sc", 2))
    status, scale = await api.call("GET", f"{DEPLOYS}/sc/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=sc"
    status, scale = await api.call("PATCH", f"{DEPLOYS}/sc/scale", {"spec": {"replicas": 4}},
                                   content_type="application/merge-patch+json")
    assert status == 200 and scale["spec"]["replicas"] == 4
    scale["spec"]["replicas"] = 6
    status, scale = await api.call("PUT", f"{DEPLOYS}/sc/scale", scale)
    assert status == 200
    assert (await api.call("GET", f"{DEPLOYS}/sc"))[1]["spec"]["replicas"] == 6


async def test_pod_binding(api):
    await api.call("POST", PODS, pod("bind-me"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bind-me"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-7"}}
    status, out = await api.call("POST", f"{PODS}/bind-me/binding", binding)
    assert status == 201, out
    status, p = await api.call("GET", f"{PODS}/bind-me")
    assert p["spec"]["nodeName"] == "node-7"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"])
    status, out = await api.call("POST", f"{PODS}/bind-me/binding", binding)
    assert status == 409


async def test_pod_spec_is_immutable(api):
    status, p = await api.call("POST", PODS, pod("fixed"))
    p["spec"]["containers"][0]["name"] = "renamed"
    status, out = await api.call("PUT", f"{PODS}/fixed", p)
    assert status == 422
    status, p = await api.call("GET", f"{PODS}/fixed")
    p["spec"]["containers"][0]["image"] = "busybox:1.36"  # the image may change
    status, out = await api.call("PUT", f"{PODS}/fixed", p)
    assert status == 200, out


async def test_service_cluster_ip_and_node_port_allocation(api):
    svcs = "/api/v1/namespaces/default/services"
    ips, ports = set(), set()
    for i in range(5):
        status, s = await api.call("POST", svcs, {"metadata": {"name": f"s{i}"}, "spec": {
            "type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
        assert status == 201, s
        assert s["spec"]["clusterIP"].startswith("10.43.") and s["spec"]["clusterIPs"] == [s["spec"]["clusterIP"]]
        assert 30000 <= s["spec"]["ports"][0]["nodePort"] <= 32767
        assert s["spec"]["ports"][0]["targetPort"] == 80
        ips.add(s["spec"]["clusterIP"])
        ports.add(s["spec"]["ports"][0]["nodePort"])
    assert len(ips) == 5 and len(ports) == 5
    taken = next(iter(ips))
    status, out = await api.call("POST", svcs, {"metadata": {"name": "dup"}, "spec": {
        "clusterIP": taken, "ports": [{"port": 80}]}})
    assert status == 422 and "already allocated" in out["message"]
    # Deleting a Service frees its address for others.
    status, s0 = await api.call("GET", f"{svcs}/s0")
    await api.call("DELETE", f"{svcs}/s0")
    status, out = await api.call("POST", svcs, {"metadata": {"name": "reuse"}, "spec": {
        "clusterIP": s0["spec"]["clusterIP"], "ports": [{"port": 80}]}})
    assert status == 201, out
    status, headless = await api.call("POST", svcs, {"metadata": {"name": "headless"}, "spec": {
        "clusterIP": "None", "ports": [{"port": 80}]}})
    assert headless["spec"]["clusterIP"] == "None"
    # The kubernetes Service has the first address of the range.
    status, k = await api.call("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert k["spec"]["clusterIP"] == "10.43.0.1"


async def test_namespaces_lifecycle(api):
    status, out = await api.call("GET", "/api/v1/namespaces")
    names = {i["metadata"]["name"] for i in out["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    status, ns = await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "going"}})
    assert ns["status"]["phase"] == "Active" and ns["spec"]["finalizers"] == ["kubernetes"]
    status, ns = await api.call("DELETE", "/api/v1/namespaces/going")
    assert status == 200 and ns["status"]["phase"] == "Terminating"
    status, out = await api.call("POST", "/api/v1/namespaces/going/configmaps", {"metadata": {"name": "x"}})
    assert status == 403 and "being terminated" in out["message"]
    status, out = await api.call("DELETE", "/api/v1/namespaces/kube-system")
    assert status == 403
    # Finalizing (what the namespace controller does) removes it.
    ns["spec"]["finalizers"] = []
    status, out = await api.call("PUT", "/api/v1/namespaces/going/finalize", ns)
    assert status == 200, out
    assert (await api.call("GET", "/api/v1/namespaces/going"))[0] == 404


async def test_cluster_scoped_resources_reject_namespaces(api):
    status, _ = await api.call("GET", "/api/v1/namespaces/default/nodes")
    assert status == 404
    status, node = await api.call("POST", "/api/v1/nodes", {"metadata": {"name": "n1", "namespace": "x"}})
    assert status == 201 and "namespace" not in node["metadata"]


async def test_delete_collection_with_selector(api):
    for i in range(4):
        await api.call("POST", CM, {"metadata": {"name": f"dc-{i}", "labels": {"batch": "odd" if i % 2 else "even"}}})
    status, out = await api.call("DELETE", f"{CM}?labelSelector=batch%3Dodd")
    assert status == 200
    status, left = await api.call("GET", f"{CM}?labelSelector=batch")
    assert [i["metadata"]["name"] for i in left["items"]] == ["dc-0", "dc-2"]


async def test_table_output(api):
    await api.call("POST", PODS, pod("tab", node="node-1"))
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    status, table = await api.call("GET", PODS, headers=headers)
    assert table["kind"] == "Table"
    cols = [c["name"] for c in table["columnDefinitions"]]
    assert cols[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "tab")
    assert row["cells"][1] == "0/1" and row["object"]["kind"] == "PartialObjectMetadata"
    status, one = await api.call("GET", f"{PODS}/tab", headers=headers)
    assert one["kind"] == "Table" and len(one["rows"]) == 1


async def test_events_are_one_resource_in_two_groups(api):
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
          "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "t-1",
          "action": "Testing", "reason": "Tested", "type": "Normal", "note": "hello",
          "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}}
    status, out = await api.call("POST", "/apis/events.k8s.io/v1/namespaces/default/events", ev)
    assert status == 201, out
    status, core = await api.call("GET", "/api/v1/namespaces/default/events/e1")
    assert core["apiVersion"] == "v1" and core["message"] == "hello" and core["involvedObject"]["name"] == "p"


async def test_discovery_documents(api):
    status, apis = await api.call("GET", "/apis")
    groups = {g["name"]: g for g in apis["groups"]}
    for g in ("apps", "batch", "networking.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
              "rbac.authorization.k8s.io", "storage.k8s.io", "policy", "autoscaling", "scheduling.k8s.io"):
        assert g in groups, g
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    status, core = await api.call("GET", "/api/v1")
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["namespaced"] and "po" in pods["shortNames"] and "watch" in pods["verbs"]
    assert any(r["name"] == "deployments/scale" for r in (await api.call("GET", "/apis/apps/v1"))[1]["resources"])
    agg = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"}
    async with api.session.get(api.base + "/apis", headers=agg) as resp:
        assert "as=APIGroupDiscoveryList" in resp.headers["Content-Type"]
        doc = await resp.json(content_type=None)
    assert any(i["metadata"]["name"] == "apps" for i in doc["items"])
    status, v3 = await api.call("GET", "/openapi/v3")
    url = v3["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, apps = await api.call("GET", url)
    assert "io.k8s.api.apps.v1.Deployment" in apps["components"]["schemas"]
    status, v2 = await api.call("GET", "/openapi/v2")
    assert v2["swagger"] == "2.0" and "io.k8s.api.core.v1.Pod" in v2["definitions"]


async def test_review_apis_answer_in_status(api):
    """Conformance: "SubjectReview, API Operations"."""
    status, me = await api.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert status == 201 and me["status"]["userInfo"]["username"] == "admin"
    assert "system:masters" in me["status"]["userInfo"]["groups"]
    status, tr = await api.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"kind": "TokenReview", "spec": {"token": "secret-token"}})
    assert tr["status"]["authenticated"] and tr["status"]["user"]["username"] == "alice"
    status, tr = await api.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"kind": "TokenReview", "spec": {"token": "nope"}})
    assert tr["status"]["authenticated"] is False
    status, sar = await api.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}})
    assert status == 201 and sar["status"]["allowed"] is True
    # Reviews are not stored.
    status, _ = await api.call("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert status == 405


async def test_hpa_served_in_both_versions(api):
    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}}
    status, out = await api.call("POST", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", hpa)
    assert status == 201, out
    status, v2 = await api.call("GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h")
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    status, listed = await api.call("GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers")
    assert listed["items"][0]["apiVersion"] == "autoscaling/v2"


async def test_daemonset_template_generation_annotation(api):
    """apps/v1 DaemonSets carry templateGeneration as the deprecated.daemonset.template.generation
    annotation: 1 on create, +1 on each template change, not settable by clients."""
    key = "deprecated.daemonset.template.generation"
    path = "/apis/apps/v1/namespaces/default/daemonsets"
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "annotations": {key: "7"}},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    status, created = await api.call("POST", path, ds)
    assert status == 201, created
    assert created["metadata"]["annotations"][key] == "1"
    merge = "application/merge-patch+json"
    status, patched = await api.call("PATCH", f"{path}/agent", {"metadata": {"labels": {"x": "y"}}},
                                     content_type=merge)
    assert status == 200 and patched["metadata"]["annotations"][key] == "1"
    status, patched = await api.call("PATCH", f"{path}/agent", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}}, content_type=merge)
    assert status == 200 and patched["metadata"]["annotations"][key] == "2"
    status, patched = await api.call("PATCH", f"{path}/agent", {"metadata": {"annotations": {key: "40"}}},
                                     content_type=merge)
    assert status == 200 and patched["metadata"]["annotations"][key] == "2"
