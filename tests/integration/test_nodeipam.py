"""Node IPAM against an in-process API server: nodes without a podCIDR get one from the
cluster CIDR; CIDRs nodes already hold (the simulated nodes bring their own) are never
handed out again, across a controller restart too; a full range is reported on the node
and a deleted node's CIDR goes to the next node waiting."""

from __future__ import annotations

import functools

from pinnace.controllers.nodeipam import NodeIpamController
from tests.support import cluster as shared
from tests.support import waiting
from tests.support.waiting import get_ok, get_or_none

NODES = "/api/v1/nodes"

eventually = functools.partial(waiting.eventually, timeout=15)


def ipam(cluster_cidr: str):
    return lambda c, f, r: NodeIpamController(c, f, r, cluster_cidr=cluster_cidr, node_cidr_mask_size=24)


async def add_node(api, name: str) -> None:
    status, body = await api.call("POST", NODES, {"metadata": {"name": name}})
    assert status == 201, body


async def pod_cidr_of(api, name: str) -> str | None:
    node = await get_or_none(api, f"{NODES}/{name}")
    return ((node or {}).get("spec") or {}).get("podCIDR")


async def test_nodes_get_free_cidrs_and_held_ones_are_never_reused(api):
    # Three simulated nodes hold 10.42.0.0/24 .. 10.42.2.0/24 from the start.
    async with shared.running(api, nodes=3, scheduler=False, controllers=(ipam("10.42.0.0/16"),)):
        held = {n["spec"]["podCIDR"] for n in (await get_ok(api, NODES))["items"]}
        assert held == {"10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"}
        for name in ("real-a", "real-b"):
            await add_node(api, name)
        got = {}
        for name in ("real-a", "real-b"):
            got[name] = await eventually(lambda n=name: pod_cidr_of(api, n), bool)
            node = await get_ok(api, f"{NODES}/{name}")
            assert node["spec"]["podCIDRs"] == [got[name]]
        assert set(got.values()) == {"10.42.3.0/24", "10.42.4.0/24"}

    # A new controller rebuilds the map from the nodes: the next one gets a fresh block.
    async with shared.running(api, nodes=0, scheduler=False, controllers=(ipam("10.42.0.0/16"),)) as c:
        await add_node(api, "real-c")
        cidr = await eventually(lambda: pod_cidr_of(api, "real-c"), bool)
        assert cidr == "10.42.5.0/24"
        assert c.controllers[0].allocated()["10.42.0.0/24"] == "sim-node-0"


async def test_full_range_is_reported_and_a_deleted_nodes_cidr_is_reused(api):
    # A /23 holds two /24s: both taken by real nodes, a third must wait.
    async with shared.running(api, nodes=0, scheduler=False, controllers=(ipam("10.80.0.0/23"),)):
        for name in ("n1", "n2", "n3"):
            await add_node(api, name)
        cidrs = {n: await eventually(lambda n=n: pod_cidr_of(api, n), bool) for n in ("n1", "n2")}
        assert set(cidrs.values()) == {"10.80.0.0/24", "10.80.1.0/24"}

        async def events() -> list[dict]:
            body = await get_ok(api, "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dn3")
            return [e for e in body["items"] if e["reason"] == "CIDRNotAvailable"]

        (event,) = await eventually(events, bool)
        assert event["involvedObject"]["kind"] == "Node"
        assert await pod_cidr_of(api, "n3") is None

        assert (await api.call("DELETE", f"{NODES}/n1"))[0] == 200
        assert await eventually(lambda: pod_cidr_of(api, "n3"), bool) == cidrs["n1"]
