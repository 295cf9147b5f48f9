"""The Endpoints, EndpointSlice and EndpointSlice mirroring controllers against an
in-process API server, with simulated nodes running the pods (they give them IPs from
their podCIDRs and report readiness from the ``sim.pinnace.io/ready`` annotation).

Conformance: "[sig-network] Services should serve a basic endpoint from pods",
"[sig-network] Services should serve multiport endpoints from pods", "[sig-network]
EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service",
"[sig-network] EndpointSlice should create and delete Endpoints and EndpointSlices for a
Service with a selector specified", "[sig-network] EndpointSliceMirroring should mirror a
custom Endpoints resource through create update and delete".
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

from pinnace.controllers.endpoints import EndpointsController
from pinnace.controllers.endpointslice import EndpointSliceController, EndpointSliceMirroringController
from pinnace.simulate import READY
from tests.support import cluster as shared
from tests.support import waiting
from tests.support.waiting import get_ok, get_or_none, status_of

NS = "default"
PODS = f"/api/v1/namespaces/{NS}/pods"
SERVICES = f"/api/v1/namespaces/{NS}/services"
ENDPOINTS = f"/api/v1/namespaces/{NS}/endpoints"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"

eventually = functools.partial(waiting.eventually, timeout=15)


@contextlib.asynccontextmanager
async def cluster(api) -> AsyncIterator[shared.Cluster]:
    async with shared.running(api, nodes=2, scheduler=False, controllers=(
            EndpointsController, EndpointSliceController, EndpointSliceMirroringController)) as c:
        yield c


def pod(name: str, node: str = "sim-node-0", labels: dict | None = None, ports: list | None = None,
        ready: bool = True, **spec: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": labels or {"app": "web"}}
    if not ready:
        meta["annotations"] = {READY: "false"}
    return {"metadata": meta, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, **spec, "containers": [
        {"name": "c", "image": "busybox", "ports": ports or [{"name": "http", "containerPort": 8080}]}]}}


def service(name: str, selector: dict | None = None, ports: list | None = None, **spec: Any) -> dict:
    body: dict[str, Any] = {"ports": ports or [{"name": "http", "port": 80, "targetPort": "http"}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"metadata": {"name": name, "labels": {"team": "net"}}, "spec": body}


async def create(api, path: str, obj: dict) -> dict:
    status, body = await api.call("POST", path, obj)
    assert status == 201, body
    return body


async def running_ip(api, name: str) -> str:
    p = await eventually(lambda: get_or_none(api, f"{PODS}/{name}"),
                         lambda p: p and p["status"].get("podIP") and p["status"].get("phase") == "Running")
    return p["status"]["podIP"]


async def endpoint_ips(api, name: str) -> tuple[set[str], set[str]]:
    """(ready, not ready) addresses of the Endpoints ``name``."""
    ep = await get_or_none(api, f"{ENDPOINTS}/{name}")
    if ep is None:
        return {"missing"}, set()
    ready = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    not_ready = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []}
    return ready, not_ready


async def slices_of(api, name: str) -> list[dict]:
    return (await get_ok(api, f"{SLICES}?labelSelector=kubernetes.io/service-name%3D{name}"))["items"]


async def slice_endpoints(api, name: str) -> dict[str, dict]:
    """IP -> endpoint over the Service's slices."""
    return {a: e for s in await slices_of(api, name) for e in s.get("endpoints") or [] for a in e["addresses"]}


async def test_basic_endpoint_from_pods(api):
    """Services should serve a basic endpoint from pods: empty, one pod, two pods, one, none;
    the EndpointSlice follows along (a placeholder while there are none)."""
    async with cluster(api):
        svc = await create(api, SERVICES, service("endpoint-test2", {"app": "web"}))
        await eventually(lambda: endpoint_ips(api, "endpoint-test2"), lambda r: r == (set(), set()))
        ep = await get_ok(api, f"{ENDPOINTS}/endpoint-test2")
        assert ep["metadata"]["labels"] == {"team": "net", "endpoints.kubernetes.io/managed-by": "endpoint-controller"}
        (placeholder,) = await eventually(lambda: slices_of(api, "endpoint-test2"), lambda s: len(s) == 1)
        assert placeholder["metadata"]["labels"][MANAGED_BY] == "endpointslice-controller.k8s.io"
        assert placeholder["endpoints"] in (None, []) and placeholder["metadata"]["generateName"] == "endpoint-test2-"
        assert placeholder["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]

        await create(api, PODS, pod("pod1"))
        ip1 = await running_ip(api, "pod1")
        await eventually(lambda: endpoint_ips(api, "endpoint-test2"), lambda r: r == ({ip1}, set()))
        ep = await get_ok(api, f"{ENDPOINTS}/endpoint-test2")
        (subset,) = ep["subsets"]
        assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        (address,) = subset["addresses"]
        assert address["nodeName"] == "sim-node-0" and address["targetRef"]["name"] == "pod1"
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

        await create(api, PODS, pod("pod2", node="sim-node-1"))
        ip2 = await running_ip(api, "pod2")
        await eventually(lambda: endpoint_ips(api, "endpoint-test2"), lambda r: r == ({ip1, ip2}, set()))
        eps = await eventually(lambda: slice_endpoints(api, "endpoint-test2"), lambda e: set(e) == {ip1, ip2})
        assert len(await slices_of(api, "endpoint-test2")) == 1  # the placeholder became their slice
        assert eps[ip2]["nodeName"] == "sim-node-1" and eps[ip2]["zone"] == "zone-1"
        assert eps[ip1]["conditions"] == {"ready": True, "serving": True, "terminating": False}

        assert (await api.call("DELETE", f"{PODS}/pod2"))[0] == 200
        await eventually(lambda: endpoint_ips(api, "endpoint-test2"), lambda r: r == ({ip1}, set()))
        await eventually(lambda: slice_endpoints(api, "endpoint-test2"), lambda e: set(e) == {ip1})
        assert (await api.call("DELETE", f"{PODS}/pod1"))[0] == 200
        await eventually(lambda: endpoint_ips(api, "endpoint-test2"), lambda r: r == (set(), set()))
        await eventually(lambda: slices_of(api, "endpoint-test2"), lambda s: len(s) == 1 and not s[0]["endpoints"])


async def test_readiness_moves_addresses_and_publish_not_ready_keeps_them(api):
    async with cluster(api):
        await create(api, SERVICES, service("web", {"app": "web"}))
        await create(api, SERVICES, service("web-all", {"app": "web"}, publishNotReadyAddresses=True,
                                            clusterIP="None"))
        await create(api, PODS, pod("a"))
        await create(api, PODS, pod("b", ready=False))
        ip_a, ip_b = await running_ip(api, "a"), await running_ip(api, "b")
        await eventually(lambda: endpoint_ips(api, "web"), lambda r: r == ({ip_a}, {ip_b}))
        await eventually(lambda: endpoint_ips(api, "web-all"), lambda r: r == ({ip_a, ip_b}, set()))
        eps = await eventually(lambda: slice_endpoints(api, "web"), lambda e: set(e) == {ip_a, ip_b})
        assert eps[ip_b]["conditions"] == {"ready": False, "serving": False, "terminating": False}
        headless = await get_ok(api, f"{ENDPOINTS}/web-all")
        assert headless["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        (hs,) = await slices_of(api, "web-all")
        assert hs["metadata"]["labels"]["service.kubernetes.io/headless"] == ""

        # a turns unready, b ready: they swap.
        for name, value in (("a", "false"), ("b", "true")):
            await api.call("PATCH", f"{PODS}/{name}", {"metadata": {"annotations": {READY: value}}},
                           content_type="application/merge-patch+json")
        await eventually(lambda: endpoint_ips(api, "web"), lambda r: r == ({ip_b}, {ip_a}))
        await eventually(lambda: slice_endpoints(api, "web"),
                         lambda e: e[ip_b]["conditions"]["ready"] and not e[ip_a]["conditions"]["ready"])


async def test_multiport_named_ports_and_hostnames(api):
    """Services should serve multiport endpoints from pods: each pod under the port it has."""
    async with cluster(api):
        ports = [{"name": "portname1", "port": 80, "targetPort": "svc1"},
                 {"name": "portname2", "port": 81, "targetPort": "svc2"}]
        await create(api, SERVICES, service("multi-endpoint-test", {"app": "multi"}, ports))
        await create(api, PODS, pod("pod1", labels={"app": "multi"}, ports=[{"name": "svc1", "containerPort": 100}],
                                    hostname="pod1", subdomain="multi-endpoint-test"))
        await create(api, PODS, pod("pod2", labels={"app": "multi"}, ports=[{"name": "svc2", "containerPort": 101}]))
        ip1, ip2 = await running_ip(api, "pod1"), await running_ip(api, "pod2")

        def by_port(ep: dict | None) -> dict[int, set[str]]:
            return {p["port"]: {a["ip"] for a in s.get("addresses") or []}
                    for s in (ep or {}).get("subsets") or [] for p in s["ports"]}

        ep = await eventually(lambda: get_or_none(api, f"{ENDPOINTS}/multi-endpoint-test"),
                              lambda e: by_port(e) == {100: {ip1}, 101: {ip2}})
        hosts = {a.get("hostname") for s in ep["subsets"] for a in s["addresses"]}
        assert hosts == {"pod1", None}
        slices = await eventually(lambda: slices_of(api, "multi-endpoint-test"),
                                  lambda ss: sorted(tuple(p["port"] for p in s["ports"]) for s in ss if s["endpoints"])
                                  == [(100,), (101,)])
        eps = {s["ports"][0]["port"]: s["endpoints"][0] for s in slices if s["endpoints"]}
        assert eps[100]["hostname"] == "pod1" and eps[100]["addresses"] == [ip1]
        assert "hostname" not in eps[101] and eps[101]["addresses"] == [ip2]


async def test_service_deletion_and_custom_endpoints(api):
    """Deleting a Service removes the Endpoints and slices made for it; a selector-less
    Service's Endpoints are the user's, left alone and mirrored (EndpointSliceMirroring
    should mirror a custom Endpoints resource through create update and delete)."""
    async with cluster(api):
        await create(api, SERVICES, service("gone", {"app": "web"}))
        await create(api, PODS, pod("a"))
        ip = await running_ip(api, "a")
        await eventually(lambda: endpoint_ips(api, "gone"), lambda r: r == ({ip}, set()))
        await eventually(lambda: slice_endpoints(api, "gone"), lambda e: set(e) == {ip})
        assert (await api.call("DELETE", f"{SERVICES}/gone"))[0] == 200
        await eventually(lambda: status_of(api, f"{ENDPOINTS}/gone"), lambda s: s == 404)
        await eventually(lambda: slices_of(api, "gone"), lambda s: s == [])

        await create(api, SERVICES, service("example-custom-endpoints", None,
                                            [{"name": "example", "port": 80, "protocol": "TCP"}]))
        custom = {"metadata": {"name": "example-custom-endpoints", "labels": {"mine": "yes"}},
                  "subsets": [{"addresses": [{"ip": "10.1.2.3"}],
                               "ports": [{"name": "example", "port": 80, "protocol": "TCP"}]}]}
        await create(api, ENDPOINTS, custom)
        (mirrored,) = await eventually(lambda: slices_of(api, "example-custom-endpoints"), lambda s: len(s) == 1)
        assert mirrored["metadata"]["labels"][MANAGED_BY] == "endpointslicemirroring-controller.k8s.io"
        assert mirrored["metadata"]["labels"]["mine"] == "yes" and mirrored["addressType"] == "IPv4"
        assert [e["addresses"] for e in mirrored["endpoints"]] == [["10.1.2.3"]]
        assert mirrored["ports"] == [{"name": "example", "port": 80, "protocol": "TCP"}]

        custom = await get_ok(api, f"{ENDPOINTS}/example-custom-endpoints")
        custom["subsets"] = [{"addresses": [{"ip": "10.2.3.4"}],
                              "ports": [{"name": "example", "port": 8080, "protocol": "TCP"}]}]
        assert (await api.call("PUT", f"{ENDPOINTS}/example-custom-endpoints", custom))[0] == 200
        (updated,) = await eventually(lambda: slices_of(api, "example-custom-endpoints"),
                                      lambda s: len(s) == 1 and s[0]["endpoints"][0]["addresses"] == ["10.2.3.4"])
        assert updated["metadata"]["name"] == mirrored["metadata"]["name"] and updated["ports"][0]["port"] == 8080
        # The Endpoints controller leaves it as the user wrote it.
        assert (await get_ok(api, f"{ENDPOINTS}/example-custom-endpoints"))["subsets"] == custom["subsets"]

        assert (await api.call("DELETE", f"{ENDPOINTS}/example-custom-endpoints"))[0] == 200
        await eventually(lambda: slices_of(api, "example-custom-endpoints"), lambda s: s == [])
        # Deleting the selector-less Service leaves hand-written Endpoints of another one alone.
        await create(api, SERVICES, service("manual", None))
        await create(api, ENDPOINTS, {"metadata": {"name": "manual"}, "subsets": [
            {"addresses": [{"ip": "10.9.9.9"}], "ports": [{"name": "http", "port": 80}]}]})
        await eventually(lambda: slices_of(api, "manual"), lambda s: len(s) == 1)
        assert (await api.call("DELETE", f"{SERVICES}/manual"))[0] == 200
        await eventually(lambda: slices_of(api, "manual"), lambda s: s == [])  # no Service: not mirrored
        assert await status_of(api, f"{ENDPOINTS}/manual") == 200


async def test_unrelated_pod_changes_write_nothing(api):
    """A settled Service's Endpoints and slices are not rewritten for a pod change that
    moves no endpoint (an annotation), nor by the controllers' own resyncs."""
    async with cluster(api) as c:
        await create(api, SERVICES, service("quiet", {"app": "web"}))
        await create(api, PODS, pod("a"))
        ip = await running_ip(api, "a")
        await eventually(lambda: endpoint_ips(api, "quiet"), lambda r: r == ({ip}, set()))
        await eventually(lambda: slice_endpoints(api, "quiet"), lambda e: set(e) == {ip})

        async def versions() -> list[str]:
            ep = await get_ok(api, f"{ENDPOINTS}/quiet")
            slice_versions = sorted(s["metadata"]["resourceVersion"] for s in await slices_of(api, "quiet"))
            return [ep["metadata"]["resourceVersion"], *slice_versions]

        before = await versions()
        status, patched = await api.call("PATCH", f"{PODS}/a", {"metadata": {"annotations": {"note": "hello"}}},
                                         content_type="application/merge-patch+json")
        assert status == 200
        controllers = c.controllers[:2]
        # Every controller has seen the change, and both are idle ...
        await eventually(lambda: all(
            (ctl.pod_lister.get("a", NS) or {}).get("metadata", {}).get("resourceVersion")
            == patched["metadata"]["resourceVersion"] for ctl in controllers), bool)
        # ... and then syncing the Service again (as a resync would) writes nothing either.
        for ctl in controllers:
            await eventually(lambda ctl=ctl: len(ctl.queue) == 0 and not ctl.queue._processing, bool)
            ctl.queue.add(f"{NS}/quiet")
            await eventually(lambda ctl=ctl: len(ctl.queue) == 0 and not ctl.queue._processing, bool)
        assert await versions() == before
