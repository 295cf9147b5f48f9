"""1,000 simulated nodes in one process: all register Ready and hold a lease (behaviour only, no timing)."""

from __future__ import annotations

import pytest

from pinnace.simulate import NodeSimulator

from .conftest import Api

pytestmark = pytest.mark.slow

COUNT = 1000


async def test_thousand_nodes(api: Api) -> None:
    sim = NodeSimulator(kubeconfig=api.kubeconfig, count=COUNT)
    await sim.start()
    try:
        code, nodes = await api.call("GET", "/api/v1/nodes")
        assert code == 200
        ready = {n["metadata"]["name"] for n in nodes["items"]
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])}
        assert ready == {f"sim-node-{i}" for i in range(COUNT)}
        cidrs = {n["spec"]["podCIDR"] for n in nodes["items"]}
        assert len(cidrs) == COUNT  # every node its own pod range
        code, leases = await api.call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
        assert code == 200
        assert {lease["spec"]["holderIdentity"] for lease in leases["items"]} == ready
    finally:
        await sim.stop()
