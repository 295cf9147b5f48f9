"""The pods/eviction subresource and ``kubectl drain`` / ``uncordon``.

The first tests drive the API alone (pods and PDB statuses written by hand, no
controllers), so every branch of the eviction handler is deterministic; the
last ones run the real kubectl against simulated nodes, the scheduler, the
ReplicaSet, Deployment and disruption controllers.

Conformance (shared/reference/conformance.yaml):
"PodDisruptionBudget: block an eviction until the PDB is updated to allow it"
([sig-apps] DisruptionController should block an eviction until the PDB is
updated to allow it) — the 429 with its DisruptionBudget cause, then success;
"Ensure pod failure policy allows to ignore failure matching on the
DisruptionTarget condition" relies on the DisruptionTarget condition an
eviction adds, checked here.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest

from tests.integration.test_disruption import DEPLOYS, PDBS, PODS, cluster, deployment, live_pods, pdb_body
from tests.support.cluster import kubectl, start_kubectl
from tests.support.waiting import eventually, get_ok

MERGE = "application/merge-patch+json"
TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."


def eviction(name: str, api_version: str = "policy/v1", **delete_options: Any) -> dict:
    body: dict[str, Any] = {"apiVersion": api_version, "kind": "Eviction",
                            "metadata": {"name": name, "namespace": "default"}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


async def running_pod(api, name: str, labels: dict[str, str] | None = None, ready: bool = True,
                      phase: str = "Running", **meta: Any) -> dict:
    """A pod bound to node n1 whose status says what a kubelet would (no kubelet runs here)."""
    status, pod = await api.call("POST", PODS, {
        "metadata": {"name": name, "labels": labels if labels is not None else {"app": "ev"}, **meta},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}})
    assert status == 201, pod
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    status, pod = await api.call("PUT", f"{PODS}/{name}/status", pod)
    assert status == 200, pod
    return pod


async def pdb_with_status(api, name: str, *, allowed: int, current: int, desired: int, expected: int,
                          labels: dict[str, str] | None = None, **spec: Any) -> dict:
    """A PDB and the status its controller would have written."""
    status, pdb = await api.call("POST", PDBS, pdb_body(name, labels or {"app": "ev"}, **(spec or {"minAvailable": 1})))
    assert status == 201, pdb
    pdb["status"] = {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": current,
                     "desiredHealthy": desired, "expectedPods": expected}
    status, pdb = await api.call("PUT", f"{PDBS}/{name}/status", pdb)
    assert status == 200, pdb
    return pdb


def condition(pod: dict, ctype: str) -> dict:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


async def test_eviction_spends_the_budget_then_answers_429_with_the_budget_cause(api):
    await running_pod(api, "a")
    await running_pod(api, "b")
    await pdb_with_status(api, "budget", allowed=1, current=2, desired=1, expected=2)

    status, body = await api.call("POST", f"{PODS}/a/eviction", eviction("a"))
    assert (status, body) == (201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "code": 201})
    pdb = await get_ok(api, f"{PDBS}/budget")
    assert pdb["status"]["disruptionsAllowed"] == 0
    assert list(pdb["status"]["disruptedPods"]) == ["a"]
    [cond] = pdb["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "False", "InsufficientPods")
    pod = await get_ok(api, f"{PODS}/a")
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 30
    target = condition(pod, "DisruptionTarget")
    assert (target["status"], target["reason"], target["message"]) == ("True", "EvictionByEvictionAPI",
                                                                       "Eviction API: evicting")

    status, body = await api.call("POST", f"{PODS}/b/eviction", eviction("b"))
    assert status == 429
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": TOO_MANY,
                    "reason": "TooManyRequests", "code": 429, "details": {"causes": [{
                        "reason": "DisruptionBudget",
                        "message": "The disruption budget budget needs 1 healthy pods and has 2 currently"}]}}
    pod = await get_ok(api, f"{PODS}/b")
    assert "deletionTimestamp" not in pod["metadata"] and not condition(pod, "DisruptionTarget")


async def test_concurrent_evictions_never_overspend_the_budget(api):
    """The PDB status write is guarded by its resourceVersion: of six concurrent evictions
    with two disruptions allowed, exactly two succeed."""
    for i in range(6):
        await running_pod(api, f"p{i}")
    await pdb_with_status(api, "budget", allowed=2, current=6, desired=4, expected=6)
    results = await asyncio.gather(*(api.call("POST", f"{PODS}/p{i}/eviction", eviction(f"p{i}")) for i in range(6)))
    codes = sorted(status for status, _ in results)
    assert codes == [201, 201, 429, 429, 429, 429], results
    pdb = await get_ok(api, f"{PDBS}/budget")
    assert pdb["status"]["disruptionsAllowed"] == 0 and len(pdb["status"]["disruptedPods"]) == 2


async def test_pods_that_are_not_running_or_already_going_skip_the_budget(api):
    await pdb_with_status(api, "budget", allowed=0, current=1, desired=1, expected=1)
    for name, phase in (("pending", "Pending"), ("done", "Succeeded"), ("failed", "Failed")):
        await running_pod(api, name, phase=phase)
        status, body = await api.call("POST", f"{PODS}/{name}/eviction", eviction(name))
        assert status == 201, (name, body)
    # Succeeded/Failed pods go at once; the pending one is bound, so it gets its grace period.
    assert (await api.call("GET", f"{PODS}/done"))[0] == 404
    pending = await get_ok(api, f"{PODS}/pending")
    assert pending["metadata"].get("deletionTimestamp")
    # A pod already terminating may be evicted again (e.g. with a shorter grace period).
    status, _ = await api.call("POST", f"{PODS}/pending/eviction", eviction("pending", gracePeriodSeconds=0))
    assert status == 201
    assert (await api.call("GET", f"{PODS}/pending"))[0] == 404
    assert (await get_ok(api, f"{PDBS}/budget"))["status"]["disruptionsAllowed"] == 0  # nothing spent


async def test_unready_pods_follow_the_unhealthy_pod_eviction_policy(api):
    await running_pod(api, "ok1")
    await running_pod(api, "sick", ready=False)
    # IfHealthyBudget (default): the application has its desired healthy pods, so the
    # unready one goes without spending the budget.
    await pdb_with_status(api, "budget", allowed=0, current=1, desired=1, expected=2)
    status, body = await api.call("POST", f"{PODS}/sick/eviction", eviction("sick"))
    assert status == 201, body
    assert (await get_ok(api, f"{PDBS}/budget"))["status"].get("disruptedPods") is None

    # Not enough healthy pods: IfHealthyBudget protects even unready pods...
    await running_pod(api, "x1", labels={"app": "other"}, ready=False)
    await pdb_with_status(api, "strict", allowed=0, current=0, desired=1, expected=1, labels={"app": "other"})
    status, body = await api.call("POST", f"{PODS}/x1/eviction", eviction("x1"))
    assert status == 429 and body["details"]["causes"][0]["message"] == \
        "The disruption budget strict needs 1 healthy pods and has 0 currently"
    # ...AlwaysAllow does not.
    await running_pod(api, "y1", labels={"app": "lax"}, ready=False)
    await pdb_with_status(api, "lax", allowed=0, current=0, desired=1, expected=1, labels={"app": "lax"},
                          minAvailable=1, unhealthyPodEvictionPolicy="AlwaysAllow")
    status, body = await api.call("POST", f"{PODS}/y1/eviction", eviction("y1"))
    assert status == 201, body


async def test_budget_not_yet_observed_and_several_budgets(api):
    await running_pod(api, "a")
    pdb = await pdb_with_status(api, "budget", allowed=1, current=2, desired=1, expected=2)
    # A spec change the controller has not seen yet (generation 2, observed 1): retry later.
    await api.call("PATCH", f"{PDBS}/budget", {"spec": {"minAvailable": 2}}, content_type=MERGE)
    status, body = await api.call("POST", f"{PODS}/a/eviction", eviction("a"))
    assert status == 429 and body["details"] == {"retryAfterSeconds": 10, "causes": [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget budget is still being processed by the server."}]}
    pdb = await get_ok(api, f"{PDBS}/budget")
    pdb["status"]["observedGeneration"] = 2
    await api.call("PUT", f"{PDBS}/budget/status", pdb)
    await pdb_with_status(api, "second", allowed=1, current=2, desired=1, expected=2)
    status, body = await api.call("POST", f"{PODS}/a/eviction", eviction("a"))
    assert status == 500 and body["message"] == ("This pod has more than one PodDisruptionBudget, which the "
                                                 "eviction subresource does not support.")
    assert "deletionTimestamp" not in (await get_ok(api, f"{PODS}/a"))["metadata"]


async def test_delete_options_dry_run_and_bad_requests(api):
    pod = await running_pod(api, "a")
    await running_pod(api, "b")
    await pdb_with_status(api, "budget", allowed=3, current=2, desired=0, expected=2)
    # dryRun, in the query or in deleteOptions: nothing changes.
    for path, body in ((f"{PODS}/a/eviction?dryRun=All", eviction("a")),
                       (f"{PODS}/a/eviction", eviction("a", dryRun=["All"]))):
        status, out = await api.call("POST", path, body)
        assert status == 201, out
    assert (await get_ok(api, f"{PDBS}/budget"))["status"]["disruptionsAllowed"] == 3
    after = await get_ok(api, f"{PODS}/a")
    assert after["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]

    # Preconditions are honoured: a stale uid is a conflict.  As upstream, the uid is checked
    # at delete time, after the budget was spent (the controller gives it back on its next sync).
    status, out = await api.call("POST", f"{PODS}/a/eviction", eviction("a", preconditions={"uid": "nope"}))
    assert status == 409 and out["reason"] == "Conflict", out
    assert "the UID in the precondition (nope) does not match" in out["message"]
    status, out = await api.call("POST", f"{PODS}/a/eviction", eviction(
        "a", gracePeriodSeconds=0, preconditions={"uid": pod["metadata"]["uid"]}))
    assert status == 201, out
    assert (await api.call("GET", f"{PODS}/a"))[0] == 404  # grace period 0: gone at once

    # policy/v1beta1 bodies are accepted too.
    status, out = await api.call("POST", f"{PODS}/b/eviction", eviction("b", api_version="policy/v1beta1"))
    assert status == 201, out

    await running_pod(api, "c", labels={"app": "free"})
    assert (await api.call("POST", f"{PODS}/c/eviction", eviction("other")))[0] == 400
    assert (await api.call("POST", f"{PODS}/c/eviction", {**eviction("c"), "kind": "Pod"}))[0] == 400
    assert (await api.call("GET", f"{PODS}/c/eviction"))[0] == 405
    assert (await api.call("POST", f"{PODS}/missing/eviction", eviction("missing")))[0] == 404
    status, out = await api.call("POST", f"{PODS}/c/eviction?dryRun=All", eviction("c", dryRun=["Bogus"]))
    assert status == 400


def _pb_field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            b, v = v & 0x7F, v >> 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    key = varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + varint(payload)
    assert isinstance(payload, bytes)
    return key + varint(len(payload)) + payload


async def test_protobuf_eviction_body_as_kubectl_sends_it(api):
    """client-go sends built-in kinds as protobuf: Eviction is in the schema."""
    await running_pod(api, "a", labels={"app": "free"})
    meta = _pb_field(1, b"a") + _pb_field(3, b"default")
    options = _pb_field(1, 0, wire=0)  # gracePeriodSeconds: 0
    raw = _pb_field(1, meta) + _pb_field(2, options)
    unknown = _pb_field(1, _pb_field(1, b"policy/v1") + _pb_field(2, b"Eviction")) + _pb_field(2, raw)
    status, body = await api.call("POST", f"{PODS}/a/eviction", raw=b"k8s\x00" + unknown,
                                  content_type="application/vnd.kubernetes.protobuf")
    assert status == 201, body
    assert (await api.call("GET", f"{PODS}/a"))[0] == 404  # the grace period of 0 came through


async def test_discovery_lists_pods_eviction_for_kubectl(api):
    core = await get_ok(api, "/api/v1")
    [entry] = [r for r in core["resources"] if r["name"] == "pods/eviction"]
    assert entry == {"name": "pods/eviction", "singularName": "", "namespaced": True, "kind": "Eviction",
                     "verbs": ["create"], "group": "policy", "version": "v1"}
    status, agg = await api.call("GET", "/api", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    assert status == 200
    pods = next(r for v in agg["items"][0]["versions"] for r in v["resources"] if r["resource"] == "pods")
    assert {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
            "verbs": ["create"]} in pods["subresources"]


# -- kubectl drain / uncordon --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_drain_waits_for_the_budget_then_uncordon(api):
    """``kubectl drain`` is refused by a PDB with minAvailable = replicas (429, retried every
    5 s) until a replacement replica scheduled on another node is ready; DaemonSet pods
    are left alone with --ignore-daemonsets; ``kubectl uncordon`` undoes the cordon."""
    async with cluster(api):
        template_spec = {"volumes": [{"name": "scratch", "emptyDir": {}}]}
        await api.call("POST", DEPLOYS, deployment("web", replicas=2, pod_spec=template_spec))
        await api.call("POST", PDBS, pdb_body("web", {"app": "web"}, minAvailable=2))
        await eventually(lambda: get_ok(api, f"{PDBS}/web"), lambda p: (p.get("status") or {}).get(
            "currentHealthy") == 2 and p["status"]["expectedPods"] == 2)
        pods = await live_pods(api, "web")
        node = pods[0]["spec"]["nodeName"]
        on_node = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == node}

        # A DaemonSet-managed pod on that node (no DaemonSet controller runs: the pod is made here).
        status, ds = await api.call("POST", "/apis/apps/v1/namespaces/default/daemonsets", {
            "metadata": {"name": "agent"}, "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                             "spec": {"containers": [{"name": "c", "image": "agent"}]}}}})
        assert status == 201, ds
        status, ds_pod = await api.call("POST", PODS, {
            "metadata": {"name": "agent-x", "labels": {"app": "agent"}, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": ds["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agent"}]}})
        assert status == 201, ds_pod

        drain = await start_kubectl(api, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                                    "--timeout=60s")
        try:
            await drain.wait_for_line("Cannot evict pod as it would violate the pod's disruption budget.", 10)
            assert f"node/{node} cordoned" in drain.output
            assert "ignoring DaemonSet-managed Pods: default/agent-x" in drain.output, drain.output
            n = await get_ok(api, f"/api/v1/nodes/{node}")
            assert n["spec"]["unschedulable"] is True
            assert all("deletionTimestamp" not in p["metadata"] for p in await live_pods(api, "web"))

            # A third replica lands on another (schedulable) node; once it is ready the budget allows one.
            await api.call("PATCH", f"{DEPLOYS}/web", {"spec": {"replicas": 3}}, content_type=MERGE)
            rc = await drain.wait(25)
        finally:
            await drain.kill()
        assert rc == 0, drain.output
        assert f"node/{node} drained" in drain.output, drain.output
        for name in on_node:
            assert f"pod/{name} evicted" in drain.output, drain.output

        remaining = await live_pods(api, "web")
        assert all(p["spec"]["nodeName"] != node for p in remaining)
        assert (await api.call("GET", f"{PODS}/agent-x"))[0] == 200  # the DaemonSet pod stays
        rc, out = await kubectl(api, "get", "pdb", "web")
        assert rc == 0 and "web" in out, out

        rc, out = await kubectl(api, "uncordon", node)
        assert rc == 0 and f"node/{node} uncordoned" in out, out
        n = await get_ok(api, f"/api/v1/nodes/{node}")
        assert not n["spec"].get("unschedulable")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_drain_refuses_unmanaged_pods_without_force(api):
    async with cluster(api, deployment_controllers=False):
        status, pod = await api.call("POST", PODS, {"metadata": {"name": "lonely"}, "spec": {
            "containers": [{"name": "c", "image": "nginx"}]}})
        assert status == 201
        pod = await eventually(lambda: get_ok(api, f"{PODS}/lonely"),
                               lambda p: (p.get("status") or {}).get("phase") == "Running")
        node = pod["spec"]["nodeName"]
        rc, out = await kubectl(api, "drain", node, "--ignore-daemonsets", "--timeout=20s")
        assert rc != 0 and "cannot delete Pods that declare no controller" in out, out
        rc, out = await kubectl(api, "drain", node, "--ignore-daemonsets", "--force", "--timeout=20s")
        assert rc == 0 and "pod/lonely evicted" in out, out
        assert (await api.call("GET", f"{PODS}/lonely"))[0] == 404

