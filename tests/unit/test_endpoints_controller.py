"""Pure parts of the Endpoints, EndpointSlice and mirroring controllers, node IPAM's
CIDR set and the API server's endpoint reconciler: what the objects they write look like.

Conformance: "[sig-network] Services should serve a basic endpoint from pods",
"[sig-network] Services should serve multiport endpoints from pods", "[sig-network]
EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service",
"[sig-network] EndpointSliceMirroring should mirror a custom Endpoints resource through
create update and delete" (the shapes those tests read back).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from typing import Any

import pytest

from pinnace.apiserver.endpointreconciler import (
    ADDRESS_ANNOTATION,
    PORT_ANNOTATION,
    ApiServerEndpoint,
    apiserver_id,
    desired_endpoints,
    desired_slices,
    live_endpoints,
)
from pinnace.controllers.endpoints import (
    ANNOTATION_TRIGGER_TIME,
    LABEL_HEADLESS,
    LABEL_MANAGED_BY,
    TriggerTimeTracker,
    build_subsets,
    endpoints_labels,
    find_port,
    repack_subsets,
    set_trigger_time,
    subsets_equal,
    truncate_subsets,
)
from pinnace.controllers.endpointslice import (
    CONTROLLER_NAME,
    LABEL_SERVICE_NAME,
    MIRRORING_CONTROLLER_NAME,
    SlicePlan,
    SliceTracker,
    plan_mirrored_slices,
    plan_service_slices,
    should_mirror,
)
from pinnace.controllers.nodeipam import CIDRRangeFull, CidrSet

_uids = itertools.count(1)


def pod(name: str, ip: str | None = "10.42.0.2", *, ready: bool = True, node: str = "n1", ports: Any = None,
        labels: dict | None = None, deleting: bool = False, phase: str = "Running", hostname: str = "",
        subdomain: str = "", ready_at: str = "2024-01-01T00:00:00Z") -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "labels": labels or {"app": "web"}, "resourceVersion": str(next(_uids))}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status: dict[str, Any] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}]}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def service(name: str = "web", ports: Any = None, *, cluster_ip: str = "10.43.0.50", publish: bool = False,
            labels: dict | None = None) -> dict:
    spec: dict[str, Any] = {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ipFamilies": ["IPv4"],
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
                            if ports is None else ports}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"svc-uid-{name}", "labels": labels or {},
                         "creationTimestamp": "2023-12-31T00:00:00Z"},
            "spec": spec}


def addr(p: dict) -> dict:
    return {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "namespace": "default", "name": p["metadata"]["name"],
                          "uid": p["metadata"]["uid"]}}


HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


# -- Endpoints ---------------------------------------------------------------------------------


def test_ready_and_not_ready_pods_and_the_ones_left_out():
    """Ready pods are addresses, unready ones notReadyAddresses; pods without an IP,
    terminating or finished are not listed at all."""
    a, b = pod("a", "10.42.0.3"), pod("b", "10.42.0.2", ready=False)
    others = [pod("noip", None), pod("going", "10.42.0.9", deleting=True),
              pod("done", "10.42.0.8", phase="Succeeded")]
    assert build_subsets(service(), [a, b, *others]) == [
        {"addresses": [addr(a)], "notReadyAddresses": [addr(b)], "ports": HTTP}]


def test_publish_not_ready_addresses_lists_every_pod_as_ready():
    a, b, c = pod("a", "10.42.0.3"), pod("b", "10.42.0.2", ready=False), pod("c", "10.42.0.4", deleting=True)
    assert build_subsets(service(publish=True), [a, b, c]) == [
        {"addresses": [addr(b), addr(a), addr(c)], "ports": HTTP}]


def test_named_target_port_resolves_per_pod_and_splits_subsets():
    """Pods numbering the named port differently land in different subsets; a pod
    without the port is left out of it."""
    svc = service(ports=[{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "http"}])
    a = pod("a", "10.42.0.2", ports=[{"name": "http", "containerPort": 8080}])
    b = pod("b", "10.42.0.3", ports=[{"name": "http", "containerPort": 9090}])
    c = pod("c", "10.42.0.4", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    d = pod("d", "10.42.0.5", ports=[{"name": "metrics", "containerPort": 8080}])
    udp = pod("e", "10.42.0.6", ports=[{"name": "http", "containerPort": 8080, "protocol": "UDP"}])
    subsets = build_subsets(svc, [a, b, c, d, udp])
    assert subsets == [
        {"addresses": [addr(a), addr(c)], "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]},
        {"addresses": [addr(b)], "ports": [{"name": "web", "port": 9090, "protocol": "TCP"}]},
    ]


def test_multiport_service_groups_addresses_by_the_ports_they_serve():
    """Conformance "Services should serve multiport endpoints from pods": a pod serving only
    the first port and one serving only the second are listed under their own port."""
    svc = service(ports=[{"name": "portname1", "port": 80, "targetPort": "svc1"},
                         {"name": "portname2", "port": 81, "targetPort": "svc2"}])
    p1 = pod("pod1", "10.42.0.2", ports=[{"name": "svc1", "containerPort": 100}])
    p2 = pod("pod2", "10.42.0.3", ports=[{"name": "svc2", "containerPort": 101}])
    both = pod("both", "10.42.0.4", ports=[{"name": "svc1", "containerPort": 100}, {"name": "svc2",
                                                                                   "containerPort": 101}])
    assert build_subsets(svc, [p1, p2]) == [
        {"addresses": [addr(p1)], "ports": [{"name": "portname1", "port": 100, "protocol": "TCP"}]},
        {"addresses": [addr(p2)], "ports": [{"name": "portname2", "port": 101, "protocol": "TCP"}]},
    ]
    assert build_subsets(svc, [both]) == [{"addresses": [addr(both)], "ports": [
        {"name": "portname1", "port": 100, "protocol": "TCP"}, {"name": "portname2", "port": 101, "protocol": "TCP"}]}]


def test_subsets_do_not_depend_on_pod_order():
    pods = [pod(f"p{i}", f"10.42.0.{10 - i}", ready=i % 3 != 0) for i in range(8)]
    first = build_subsets(service(), pods)
    for perm in (list(reversed(pods)), pods[3:] + pods[:3]):
        assert build_subsets(service(), perm) == first
    ips = [a["ip"] for a in first[0]["addresses"]]
    assert ips == sorted(ips)


def test_hostname_only_for_the_service_named_as_subdomain_and_headless_without_ports():
    svc = service("nodes", ports=[], cluster_ip="None")
    mine = pod("web-0", "10.42.0.2", hostname="web-0", subdomain="nodes")
    other = pod("web-1", "10.42.0.3", hostname="web-1", subdomain="elsewhere")
    subsets = build_subsets(svc, [mine, other])
    assert subsets == [{"addresses": [{**addr(mine), "hostname": "web-0"}, addr(other)]}]
    # A Service with a cluster IP and no ports lists nothing.
    assert build_subsets(service(ports=[]), [mine]) == []


def test_numeric_target_port_and_default():
    p = pod("a", ports=[{"name": "http", "containerPort": 1234}])
    assert find_port(p, {"port": 80, "targetPort": 8080}) == 8080
    assert find_port(p, {"port": 80}) == 80
    assert find_port(p, {"port": 80, "targetPort": "http"}) == 1234
    assert find_port(p, {"port": 80, "targetPort": "nope"}) is None
    sidecar = pod("s")
    sidecar["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always",
                                          "ports": [{"name": "http", "containerPort": 15001}]}]
    assert find_port(sidecar, {"port": 80, "targetPort": "http"}) == 15001


def test_repack_merges_subsets_and_ready_wins():
    a = {"ip": "10.0.0.1", "targetRef": {"uid": "a"}}
    b = {"ip": "10.0.0.2", "targetRef": {"uid": "b"}}
    p80 = {"name": "x", "port": 80, "protocol": "TCP"}
    p81 = {"name": "y", "port": 81, "protocol": "TCP"}
    packed = repack_subsets([{"addresses": [a], "ports": [p80]}, {"notReadyAddresses": [a], "ports": [p81]},
                             {"addresses": [b], "ports": [p80]}, {"notReadyAddresses": [b], "ports": [p80]},
                             {"addresses": [a], "ports": [p81]}])
    # Per port, the set of addresses serving it: 80 has a and b (b ready once: ready), 81 has a.
    assert packed == [{"addresses": [a], "ports": [p81]}, {"addresses": [a, b], "ports": [p80]}]
    # Addresses serving the same ports share one subset.
    assert repack_subsets([{"addresses": [b], "ports": [p80]}, {"addresses": [a], "ports": [p81]},
                           {"addresses": [a], "ports": [p80]}, {"addresses": [b], "ports": [p81]}]) == [
        {"addresses": [a, b], "ports": [p80, p81]}]


def test_truncation_keeps_ready_first_with_shares():
    subsets = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)],
                "notReadyAddresses": [{"ip": f"10.1.0.{i}"} for i in range(200)], "ports": HTTP}]
    out, truncated = truncate_subsets(subsets, 1000)
    assert truncated
    assert len(out[0]["addresses"]) == 900 and len(out[0]["notReadyAddresses"]) == 100
    same, truncated = truncate_subsets(subsets[:1], 2000)
    assert same == subsets and not truncated


def test_labels_copy_the_service_and_mark_headless_and_ours():
    assert endpoints_labels(service(labels={"app": "web"})) == {"app": "web", LABEL_MANAGED_BY: "endpoint-controller"}
    assert endpoints_labels(service(cluster_ip="None")) == {LABEL_HEADLESS: "", LABEL_MANAGED_BY: "endpoint-controller"}


def test_comparison_ignores_pod_resource_versions_and_defaults():
    want = build_subsets(service(), [pod("a")])
    stored = copy.deepcopy(want)
    stored[0]["addresses"][0]["targetRef"]["resourceVersion"] = "77"
    assert subsets_equal(stored, want)
    assert subsets_equal(None, []) and not subsets_equal(None, want)


def test_trigger_time_is_the_earliest_unexported_change():
    tracker = TriggerTimeTracker()
    svc = service()
    a = pod("a", ready_at="2024-01-01T00:00:05Z")
    first = tracker.compute("default/web", svc, [a])
    assert first == dt.datetime(2023, 12, 31, tzinfo=dt.UTC)  # the Service's creation
    assert tracker.compute("default/web", svc, [a]) is None  # nothing new
    b = pod("b", ready_at="2024-01-01T00:00:09Z")
    a2 = pod("a", ready_at="2024-01-01T00:00:07Z")
    assert tracker.compute("default/web", svc, [a2, b]) == dt.datetime(2024, 1, 1, 0, 0, 7, tzinfo=dt.UTC)
    obj = {"metadata": {}}
    set_trigger_time(obj, dt.datetime(2024, 1, 1, 0, 0, 7, 250000, tzinfo=dt.UTC))
    assert obj["metadata"]["annotations"][ANNOTATION_TRIGGER_TIME] == "2024-01-01T00:00:07.25Z"
    set_trigger_time(obj, None)
    assert "annotations" not in obj["metadata"]


# -- EndpointSlices -------------------------------------------------------------------------------


NODES = {f"n{i}": {"metadata": {"name": f"n{i}", "labels": {"topology.kubernetes.io/zone": f"zone-{i % 2}"}}}
         for i in range(3)}


def apply(plan: SlicePlan, existing: list[dict]) -> list[dict]:
    """What the API would then hold: the plan applied to ``existing`` (names for creates)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        del by_name[s["metadata"]["name"]]
    for s in plan.update:
        assert s["metadata"]["name"] in by_name
        by_name[s["metadata"]["name"]] = copy.deepcopy(s)
    for s in plan.create:
        s = copy.deepcopy(s)
        s["metadata"]["name"] = s["metadata"].pop("generateName") + f"{next(_uids):05d}"
        by_name[s["metadata"]["name"]] = s
    return list(by_name.values())


def plan(svc: dict, pods: list[dict], existing: list[dict], limit: int = 100) -> SlicePlan:
    p, skipped = plan_service_slices(svc, pods, NODES.get, existing, limit)
    assert skipped == []
    return p


def test_slice_for_pods_matching_a_service():
    """Conformance "EndpointSlice should create Endpoints and EndpointSlices for Pods
    matching a Service": labels, owner, ports and endpoint fields."""
    svc = service(labels={"tier": "front"})
    a = pod("a", "10.42.0.2", node="n1", hostname="a", subdomain="web")
    b = pod("b", "10.42.0.3", node="n2", ready=False)
    c = pod("c", "10.42.0.4", node="n0", deleting=True)
    p = plan(svc, [a, b, c], [])
    assert not p.update and not p.delete and len(p.create) == 1
    s = p.create[0]
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {"tier": "front", LABEL_SERVICE_NAME: "web",
                                       "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                 "uid": "svc-uid-web", "controller": True,
                                                 "blockOwnerDeletion": True}]
    assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = {e["targetRef"]["name"]: e for e in s["endpoints"]}
    assert eps["a"] == {"addresses": ["10.42.0.2"], "conditions": {"ready": True, "serving": True,
                                                                   "terminating": False},
                        "hostname": "a", "nodeName": "n1", "zone": "zone-1",
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}
    assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    # A terminating pod stays, marked so; it serves while still ready, but is not "ready".
    assert eps["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert eps["c"]["zone"] == "zone-0" and "hostname" not in eps["b"]


def test_slices_hold_at_most_the_limit_and_churn_little():
    svc = service()
    pods = [pod(f"p{i:03d}", f"10.42.{i // 200}.{i % 200 + 2}", node=f"n{i % 3}") for i in range(250)]
    slices = apply(plan(svc, pods, []), [])
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    assert plan(svc, pods, slices).__bool__() is False  # settled: nothing to write

    # One more pod: one slice written (the one with room), nothing created.
    more = [*pods, pod("p999", "10.42.9.9")]
    p = plan(svc, more, slices)
    assert not p.create and not p.delete and len(p.update) == 1 and len(p.update[0]["endpoints"]) == 51
    slices = apply(p, slices)
    # One pod gone and one turned unready: only the slices holding them are written.
    gone = [x for x in more if x["metadata"]["name"] != "p010"]
    gone[20] = pod(gone[20]["metadata"]["name"], gone[20]["status"]["podIP"], node=gone[20]["spec"]["nodeName"],
                   ready=False)
    p = plan(svc, gone, slices)
    assert not p.create and not p.delete and 1 <= len(p.update) <= 2
    slices = apply(p, slices)
    assert sum(len(s["endpoints"]) for s in slices) == 250
    names = {e["targetRef"]["name"] for s in slices for e in s["endpoints"]}
    assert "p010" not in names and "p999" in names


def test_placeholder_slice_without_pods_and_reused_when_pods_come():
    """Conformance "EndpointSlice should create and delete Endpoints and EndpointSlices for
    a Service with a selector specified": a Service matching nothing has one empty slice."""
    svc = service()
    p = plan(svc, [], [])
    assert len(p.create) == 1 and p.create[0]["endpoints"] == [] and p.create[0]["ports"] == []
    slices = apply(p, [])
    assert not plan(svc, [], slices)  # the placeholder is kept as it is
    # Pods arrive: the placeholder becomes their slice (an update, not a delete and a create).
    p = plan(svc, [pod("a")], slices)
    assert not p.create and not p.delete and len(p.update) == 1
    assert p.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert p.update[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    slices = apply(p, slices)
    # And back to empty.
    p = plan(svc, [], slices)
    assert not p.create and not p.delete and len(p.update) == 1 and p.update[0]["endpoints"] == []


def test_slices_of_another_service_incarnation_are_replaced():
    svc = service()
    slices = apply(plan(svc, [pod("a")], []), [])
    reborn = service()
    reborn["metadata"]["uid"] = "svc-uid-new"
    p = plan(reborn, [pod("a")], slices)
    assert len(p.delete) == 1 and len(p.create) == 1
    assert p.create[0]["metadata"]["ownerReferences"][0]["uid"] == "svc-uid-new"


def test_pods_on_unknown_nodes_wait_unless_publishing_not_ready():
    a = pod("a", node="n1")
    lost = pod("lost", "10.42.0.9", node="ghost")
    p, skipped = plan_service_slices(service(), [a, lost], NODES.get, [])
    assert skipped == ["lost"] and len(p.create[0]["endpoints"]) == 1
    p, skipped = plan_service_slices(service(publish=True), [a, lost], NODES.get, [])
    assert skipped == [] and len(p.create[0]["endpoints"]) == 2
    assert all(e["conditions"]["ready"] for e in p.create[0]["endpoints"])


def test_label_change_on_the_service_rewrites_slices():
    slices = apply(plan(service(), [pod("a")], []), [])
    p = plan(service(labels={"env": "prod"}), [pod("a")], slices)
    assert len(p.update) == 1 and p.update[0]["metadata"]["labels"]["env"] == "prod"


# -- mirroring -------------------------------------------------------------------------------------


def custom_endpoints(ips: list[str], port: int = 80, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "example-custom-endpoints", "namespace": "default", "uid": "ep-uid",
                         "labels": labels or {}, "annotations": {"note": "kept",
                                                                 ANNOTATION_TRIGGER_TIME: "2024-01-01T00:00:00Z"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "ports": [{"name": "example", "port": port, "protocol": "TCP"}]}]}


def test_mirroring_a_custom_endpoints_resource():
    """Conformance "EndpointSliceMirroring should mirror a custom Endpoints resource through
    create update and delete"."""
    ep = custom_endpoints(["10.1.2.3"])
    p = plan_mirrored_slices(ep, [])
    assert len(p.create) == 1 and not p.update and not p.delete
    s = p.create[0]
    assert s["metadata"]["labels"] == {LABEL_SERVICE_NAME: "example-custom-endpoints",
                                       "endpointslice.kubernetes.io/managed-by": MIRRORING_CONTROLLER_NAME}
    assert s["metadata"]["annotations"] == {"note": "kept"}
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "example", "port": 80, "protocol": "TCP"}]
    assert s["endpoints"] == [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}]
    slices = apply(p, [])
    assert not plan_mirrored_slices(ep, slices)
    # Updated: the same slice rewritten.
    p = plan_mirrored_slices(custom_endpoints(["10.2.3.4"], 8080), slices)
    assert not p.create and not p.delete and len(p.update) == 1
    assert p.update[0]["ports"][0]["port"] == 8080 and p.update[0]["endpoints"][0]["addresses"] == ["10.2.3.4"]
    assert should_mirror(ep) and not should_mirror(custom_endpoints([], labels={
        "endpointslice.kubernetes.io/skip-mirror": "true"}))


def test_mirroring_splits_address_types_and_caps_subsets():
    ep = custom_endpoints(["10.0.0.1", "fd00::1", "not-an-ip"])
    p = plan_mirrored_slices(ep, [])
    assert sorted(s["addressType"] for s in p.create) == ["IPv4", "IPv6"]
    big = custom_endpoints([f"10.0.{i // 200}.{i % 200}" for i in range(30)])
    p = plan_mirrored_slices(big, [], max_endpoints=10)
    assert [len(s["endpoints"]) for s in p.create] == [10]


# -- tracking, IPAM, API server endpoints ------------------------------------------------------


def test_slice_tracker_waits_for_our_writes_only():
    now = [0.0]
    t = SliceTracker(timeout=5, clock=lambda: now[0])
    written = {"metadata": {"name": "web-x", "namespace": "default", "resourceVersion": "10", "uid": "u"}}
    t.expect("default/web", written, None)
    assert t.stale("default/web")
    older = copy.deepcopy(written)
    older["metadata"]["resourceVersion"] = "9"
    assert not t.observed("default/web", older) and t.stale("default/web")
    assert t.observed("default/web", written) and not t.stale("default/web")
    # Already in the cache when the write returns: nothing to wait for.
    t.expect("default/web", written, written)
    assert not t.stale("default/web")
    # A deletion; and a write never seen stops holding syncs back after the timeout.
    t.expect("default/web", written, written, deleted=True)
    assert t.stale("default/web") and t.observed("default/web", written, deleted=True)
    t.expect("default/web", written, None)
    now[0] = 6
    assert not t.stale("default/web")


def test_cidr_set_next_fit_and_exhaustion():
    cidrs = CidrSet("10.42.0.0/22", 24)
    assert cidrs.size == 4 and cidrs.index_of("10.42.2.0/24") == 2 and cidrs.index_of("10.43.0.0/24") is None
    assert cidrs.index_of("10.42.0.0/25") is None
    cidrs.occupy(0)
    assert [cidrs.cidr(cidrs.allocate_next()) for _ in range(3)] == ["10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    with pytest.raises(CIDRRangeFull):
        cidrs.allocate_next()
    cidrs.release(1)
    assert cidrs.cidr(cidrs.allocate_next()) == "10.42.1.0/24"
    with pytest.raises(ValueError):
        CidrSet("10.42.0.0/16", 8)


def test_apiserver_endpoints_from_leases():
    now = dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.UTC)

    def lease(ip: str, port: int, renewed: str) -> dict:
        return {"metadata": {"annotations": {ADDRESS_ANNOTATION: ip, PORT_ANNOTATION: str(port)}},
                "spec": {"renewTime": renewed, "leaseDurationSeconds": 15}}

    live = live_endpoints([lease("10.0.0.2", 6443, "2024-01-01T00:00:50.000000Z"),
                           lease("10.0.0.1", 6443, "2024-01-01T00:00:59.000000Z"),
                           lease("10.0.0.3", 6443, "2024-01-01T00:00:30.000000Z")], now)  # expired
    assert live == {ApiServerEndpoint(6443, "10.0.0.1"), ApiServerEndpoint(6443, "10.0.0.2")}
    ep = desired_endpoints(live)
    assert ep["subsets"] == [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    (s,) = desired_slices(live)
    assert s["metadata"]["name"] == "kubernetes" and [e["addresses"] for e in s["endpoints"]] == [
        ["10.0.0.1"], ["10.0.0.2"]]
    two_ports = desired_slices({ApiServerEndpoint(6443, "10.0.0.1"), ApiServerEndpoint(7443, "10.0.0.1")})
    assert [x["metadata"]["name"] for x in two_ports] == ["kubernetes", "kubernetes-7443"]
    assert apiserver_id("10.0.0.1", 6443, "h") == apiserver_id("10.0.0.1", 6443, "h") != apiserver_id(
        "10.0.0.1", 6444, "h")
    assert apiserver_id("10.0.0.1", 6443, "h").startswith("apiserver-")
