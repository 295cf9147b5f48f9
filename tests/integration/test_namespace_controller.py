"""The namespace controller: deleting a namespace deletes what is in it, then the namespace.

Conformance: "namespace-deletion-removes-pods", "namespace-deletion-removes-services".
"""

from __future__ import annotations

import asyncio

from pinnace.controllers.manager import run_builtin_controllers
from tests.support.waiting import eventually, get_ok, status_of


async def test_deleting_a_namespace_removes_its_content_then_itself(api):
    controllers = await run_builtin_controllers(api.kubeconfig)
    try:
        await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "gone"}})
        await api.call("POST", "/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "c"}})
        await api.call("POST", "/api/v1/namespaces/gone/services", {"metadata": {"name": "s"},
                                                                    "spec": {"ports": [{"port": 80}]}})
        # A pod on a node with no kubelet would wait out its grace period; this one is unscheduled.
        await api.call("POST", "/api/v1/namespaces/gone/pods", {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}})
        status, _ = await api.call("DELETE", "/api/v1/namespaces/gone")
        assert status == 200
        await eventually(lambda: status_of(api, "/api/v1/namespaces/gone"), lambda s: s == 404, what="namespace gone")
        for path in ("configmaps/c", "services/s", "pods/p"):
            assert (await api.call("GET", f"/api/v1/namespaces/gone/{path}"))[0] == 404
    finally:
        await controllers.stop()


async def test_standby_controller_manager_takes_over_when_the_leader_goes(api):
    from pinnace.controllers.manager import run_leader_elected

    timing = {"lease_duration": 1.0, "renew_deadline": 0.8, "retry_period": 0.2}
    first = asyncio.create_task(run_leader_elected(api.kubeconfig, identity="cm-a", **timing))
    await asyncio.sleep(0.5)
    second = asyncio.create_task(run_leader_elected(api.kubeconfig, identity="cm-b", **timing))
    lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
    try:
        await asyncio.sleep(0.5)
        assert (await api.call("GET", lease_path))[1]["spec"]["holderIdentity"] == "cm-a"
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await eventually(lambda: get_ok(api, lease_path), lambda lease: lease["spec"]["holderIdentity"] == "cm-b",
                         timeout=5, what="cm-b holds the lease")
        # And the work goes on under the new leader.
        await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "later"}})
        await api.call("DELETE", "/api/v1/namespaces/later")
        await eventually(lambda: status_of(api, "/api/v1/namespaces/later"), lambda s: s == 404,
                         what="namespace gone under the new leader")
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
