"""The ``kubernetes`` Service's endpoints follow the live API servers (identity Leases),
and the cluster DNS Service is there from the start.

Conformance: "[sig-network] EndpointSlice should have Endpoints and EndpointSlices
pointing to API Server", "[sig-network] Services should provide secure master service".
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from pinnace.apiserver import errors
from pinnace.apiserver.bootstrap import publish_dns_endpoints
from pinnace.apiserver.endpointreconciler import ADDRESS_ANNOTATION, IDENTITY_LABEL, PORT_ANNOTATION
from pinnace.apiserver.registry import ListOptions
from pinnace.apiserver.server import ApiServer, ApiServerConfig
from pinnace.client.rest import RestClient
from tests.support.waiting import eventually, get_ok

KUBERNETES_EP = "/api/v1/namespaces/default/endpoints/kubernetes"
KUBERNETES_SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=" \
                    "kubernetes.io/service-name%3Dkubernetes"


def _pairs_of_endpoints(ep: dict) -> set[tuple[str, int]]:
    return {(a["ip"], p["port"]) for s in ep.get("subsets") or [] for a in s.get("addresses") or []
            for p in s.get("ports") or []}


def _pairs_of_slices(slices: list[dict]) -> set[tuple[str, int]]:
    return {(addr, p["port"]) for s in slices for e in s["endpoints"] for addr in e["addresses"]
            for p in s["ports"]}


async def test_kubernetes_endpoints_and_dns_service_of_a_single_server(api):
    port = api.server.port
    ep = await get_ok(api, KUBERNETES_EP)
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    slices = (await get_ok(api, KUBERNETES_SLICES))["items"]
    assert [s["metadata"]["name"] for s in slices] == ["kubernetes"]
    assert _pairs_of_slices(slices) == _pairs_of_endpoints(ep) == {("127.0.0.1", port)}
    assert slices[0]["addressType"] == "IPv4"

    leases = (await get_ok(api, f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector="
                                f"{IDENTITY_LABEL}%3Dkube-apiserver"))["items"]
    (lease,) = leases
    assert lease["metadata"]["name"].startswith("apiserver-")
    assert lease["metadata"]["annotations"][ADDRESS_ANNOTATION] == "127.0.0.1"
    assert lease["metadata"]["annotations"][PORT_ANNOTATION] == str(port)
    assert lease["spec"]["holderIdentity"].startswith(lease["metadata"]["name"] + "_")
    assert lease["spec"]["leaseDurationSeconds"] == 15 and lease["spec"]["renewTime"]

    dns = await get_ok(api, "/api/v1/namespaces/kube-system/services/kube-dns")
    assert dns["spec"]["clusterIP"] == "10.43.0.10" and "selector" not in dns["spec"]
    assert [(p["name"], p["port"], p["protocol"]) for p in dns["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert dns["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert dns["metadata"]["labels"]["kubernetes.io/name"] == "KubeDNS"

    # Whoever runs the DNS server publishes it: in process, or through a client.
    await publish_dns_endpoints(api.server.registry, "10.42.0.1", 5353)
    dep = await get_ok(api, "/api/v1/namespaces/kube-system/endpoints/kube-dns")
    assert dep["subsets"] == [{"addresses": [{"ip": "10.42.0.1"}], "ports": [
        {"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]}]
    client = RestClient.from_kubeconfig(api.kubeconfig)
    try:
        await publish_dns_endpoints(client, ["10.42.1.1", "10.42.0.1"], 53)
    finally:
        await client.close()
    dslice = await get_ok(api, "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns")
    assert dslice["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert [e["addresses"] for e in dslice["endpoints"]] == [["10.42.0.1"], ["10.42.1.1"]]
    assert {p["port"] for p in dslice["ports"]} == {53}


@contextlib.asynccontextmanager
async def _server(storage: str, address: str) -> AsyncIterator[ApiServer]:
    server = ApiServer(ApiServerConfig(storage=storage, port=0, advertise_address=address,
                                       endpoint_lease_duration=2.0, endpoint_reconcile_interval=0.2))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _endpoints_of(server: ApiServer) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """The kubernetes Endpoints and EndpointSlices as (address, port) pairs, read through ``server``."""
    reg = server.registry
    ep_type = reg.resources.get("", "v1", "endpoints")
    slice_type = reg.resources.get("discovery.k8s.io", "v1", "endpointslices")
    assert ep_type is not None and slice_type is not None
    try:
        ep = await reg.get(ep_type, "default", "kubernetes")
    except errors.ApiError:
        return set(), set()
    listed = await reg.list(slice_type, "default", ListOptions(label_selector="kubernetes.io/service-name=kubernetes"))
    return _pairs_of_endpoints(ep), _pairs_of_slices([c.obj for c in listed.items])


async def test_two_api_servers_both_listed_until_one_goes(etcd_endpoint: str):
    """Two API servers on one etcd: both in default/kubernetes (Endpoints and slices); one
    stopping cleanly leaves at once, one dying (no more renewals) leaves when its Lease
    expires."""
    storage = f"etcd://{etcd_endpoint}/apiserver-endpoints-{uuid.uuid4().hex[:8]}"
    async with _server(storage, "127.0.0.1") as a:
        mine = ("127.0.0.1", a.port)
        async with _server(storage, "127.0.0.2") as b:
            both = {mine, ("127.0.0.2", b.port)}
            await eventually(lambda: _endpoints_of(a), lambda r: r == (both, both), what="both servers listed")
            await eventually(lambda: _endpoints_of(b), lambda r: r == (both, both))
        # b stopped cleanly: out at once (its stop wrote it), not when its Lease runs out.
        assert await _endpoints_of(a) == ({mine}, {mine})

        async with _server(storage, "127.0.0.2") as c:
            both = {mine, ("127.0.0.2", c.port)}
            await eventually(lambda: _endpoints_of(a), lambda r: r == (both, both))
            # c "dies": its reconciler stops without a goodbye (a crash, a partition).
            assert c.endpoint_reconciler is not None and c.endpoint_reconciler._task is not None
            c.endpoint_reconciler._task.cancel()
            c.endpoint_reconciler = None
            await eventually(lambda: _endpoints_of(a), lambda r: r == ({mine}, {mine}), timeout=10,
                             what="the dead server's Lease expired")
