"""controller_utils: pod ranking for scale-down, expectations, availability, templates, slow start."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from pinnace.client.rest import ApiException
from pinnace.controllers import controller_utils as cu
from pinnace.controllers.replicaset import calculate_status

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True, ready_ago: float = 100,
        created_ago: float = 200, restarts: int = 0, labels: dict | None = None, owner_uid: str | None = None,
        deleting: bool = False, cost: int | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": ts(created_ago),
                  "labels": labels if labels is not None else {"app": "web"}}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                    "uid": owner_uid, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    if cost is not None:
        meta["annotations"] = {cu.POD_DELETION_COST: str(cost)}
    conds = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(ready_ago)}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


def first_to_go(*pods: dict) -> str:
    return cu.pods_to_delete(list(pods), 1)[0]["metadata"]["name"]


class TestRanking:
    def test_unscheduled_before_scheduled(self):
        assert first_to_go(pod("a"), pod("b", node="", phase="Pending", ready=False)) == "b"

    def test_pending_before_unknown_before_running(self):
        assert first_to_go(pod("run"), pod("unk", phase="Unknown"), pod("pend", phase="Pending")) == "pend"
        assert first_to_go(pod("run"), pod("unk", phase="Unknown")) == "unk"

    def test_not_ready_before_ready(self):
        assert first_to_go(pod("r"), pod("nr", ready=False)) == "nr"

    def test_lower_deletion_cost_first(self):
        assert first_to_go(pod("a", cost=10), pod("b", cost=-5, ready_ago=1)) == "b"

    def test_doubled_up_on_a_node_first(self):
        # Two on n1, one on n2: removing one from n1 keeps the spread.
        assert first_to_go(pod("solo", node="n2", ready_ago=1), pod("x", node="n1"), pod("y", node="n1")) in ("x", "y")

    def test_ready_for_a_shorter_time_first(self):
        assert first_to_go(pod("old", ready_ago=500), pod("fresh", ready_ago=5)) == "fresh"

    def test_more_restarts_first(self):
        assert first_to_go(pod("calm"), pod("crashy", restarts=4)) == "crashy"

    def test_newer_first(self):
        assert first_to_go(pod("older", created_ago=500), pod("newer", created_ago=10)) == "newer"

    def test_full_order(self):
        pods = [pod("ready-old", node="n1", ready_ago=900), pod("ready-new", node="n2", ready_ago=9),
                pod("notready", node="n3", ready=False), pod("pending", node="n4", phase="Pending", ready=False),
                pod("unscheduled", node="", phase="Pending", ready=False)]
        ranked = cu.pods_to_delete(pods, 4)
        assert [p["metadata"]["name"] for p in ranked] == ["unscheduled", "pending", "notready", "ready-new"]

    def test_count_bounds(self):
        pods = [pod("a"), pod("b")]
        assert cu.pods_to_delete(pods, 0) == []
        assert len(cu.pods_to_delete(pods, 5)) == 2


class TestExpectations:
    def test_creations_block_until_observed(self):
        e = cu.ControllerExpectations()
        assert e.satisfied_expectations("ns/web")  # nothing recorded yet
        e.expect_creations("ns/web", 2)
        assert not e.satisfied_expectations("ns/web")
        e.creation_observed("ns/web")
        assert not e.satisfied_expectations("ns/web") and e.get("ns/web") == (1, 0)
        e.creation_observed("ns/web")
        assert e.satisfied_expectations("ns/web")

    def test_expire_after_timeout(self):
        clock = [0.0]
        e = cu.ControllerExpectations(clock=lambda: clock[0])
        e.expect_creations("k", 3)
        clock[0] = cu.EXPECTATIONS_TIMEOUT - 1
        assert not e.satisfied_expectations("k")
        clock[0] = cu.EXPECTATIONS_TIMEOUT + 1
        assert e.satisfied_expectations("k")

    def test_lower_and_delete(self):
        e = cu.ControllerExpectations()
        e.expect_creations("k", 5)
        e.lower_expectations("k", add=5)  # creations that never happened
        assert e.satisfied_expectations("k")
        e.expect_deletions("k", 1)
        e.delete_expectations("k")
        assert e.get("k") is None and e.satisfied_expectations("k")

    def test_uid_tracking_counts_each_pod_once(self):
        e = cu.UIDTrackingControllerExpectations()
        e.expect_pod_deletions("k", ["ns/a", "ns/b"])
        e.deletion_observed("k", "ns/a")
        e.deletion_observed("k", "ns/a")  # graceful deletion: seen again as DELETED
        e.deletion_observed("k", "ns/zzz")  # not one we deleted
        assert not e.satisfied_expectations("k") and e.pending_deletions("k") == {"ns/b"}
        e.deletion_observed("k", "ns/b")
        assert e.satisfied_expectations("k")


class TestPods:
    def test_active(self):
        assert cu.is_pod_active(pod("a"))
        assert not cu.is_pod_active(pod("a", phase="Succeeded"))
        assert not cu.is_pod_active(pod("a", phase="Failed"))
        assert not cu.is_pod_active(pod("a", deleting=True))
        assert [p["metadata"]["name"] for p in cu.filter_active_pods([pod("a"), pod("b", phase="Failed")])] == ["a"]

    def test_availability_respects_min_ready_seconds(self):
        p = pod("a", ready_ago=5)
        assert cu.is_pod_available(p, 0, NOW)
        assert cu.is_pod_available(p, 4, NOW)
        assert not cu.is_pod_available(p, 5, NOW)  # strictly after readyTime + minReadySeconds
        assert cu.seconds_until_available(p, 10, NOW) == pytest.approx(5.0)
        assert cu.seconds_until_available(pod("b", ready=False), 10, NOW) is None
        assert not cu.is_pod_available(pod("b", ready=False), 0, NOW)

    def test_pod_from_template(self):
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "uid": "u1"}}
        tmpl = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
        p = cu.pod_from_template(tmpl, rs)
        assert p["metadata"]["generateName"] == "web-"
        assert p["metadata"]["labels"] == {"app": "web"} and p["metadata"]["annotations"] == {"a": "b"}
        assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                     "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
        p["spec"]["containers"][0]["image"] = "changed"
        assert tmpl["spec"]["containers"][0]["image"] == "i"  # a copy, not the template

    def test_controller_refs(self):
        rs = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
        p = pod("a", owner_uid="u1")
        assert cu.is_controlled_by(p, rs)
        assert cu.resolve_controller_ref(cu.controller_ref(p), "ns", "ReplicaSet", "apps",
                                         lambda n, ns: rs if n == "web" else None) is rs
        stale = {"metadata": {**rs["metadata"], "uid": "u2"}}
        assert cu.resolve_controller_ref(cu.controller_ref(p), "ns", "ReplicaSet", "apps", lambda n, ns: stale) is None
        assert cu.resolve_controller_ref(cu.controller_ref(p), "ns", "StatefulSet", "apps", lambda n, ns: rs) is None
        assert cu.controller_ref(pod("b")) is None


class TestClaim:
    class FakeClient:
        def __init__(self) -> None:
            self.patches: list[tuple[str, dict]] = []

        async def patch(self, api_version, plural, name, patch, namespace="", patch_type="merge", sub=""):
            self.patches.append((name, patch))
            if name == "gone":
                raise ApiException(404, "NotFound", "gone")
            return {"metadata": {"name": name, "adopted": True}}

    async def test_claims_adopts_and_releases(self):
        client = self.FakeClient()
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "ns",
                                                                           "uid": "u1"}}
        pods = [pod("mine", owner_uid="u1"), pod("orphan"), pod("theirs", owner_uid="u9"),
                pod("moved", owner_uid="u1", labels={"app": "other"}), pod("nomatch", labels={"app": "x"}),
                pod("dying", deleting=True), pod("gone")]
        calls = []

        async def can_adopt() -> bool:
            calls.append(1)
            return True

        claimed = await cu.claim_pods(client, rs, {"matchLabels": {"app": "web"}}, pods, can_adopt)
        assert [p["metadata"]["name"] for p in claimed] == ["mine", "orphan"]
        assert len(calls) == 1
        patched = dict(client.patches)
        assert patched["moved"] == cu.release_patch("u1", "uid-moved")
        assert patched["orphan"]["metadata"]["ownerReferences"][0]["uid"] == "u1"
        assert set(patched) == {"moved", "orphan", "gone"}

    async def test_no_adoption_when_owner_is_being_deleted(self):
        client = self.FakeClient()
        rs = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "deletionTimestamp": ts(0)}}

        async def can_adopt() -> bool:
            return True

        claimed = await cu.claim_pods(client, rs, {"matchLabels": {"app": "web"}},
                                      [pod("orphan"), pod("moved", owner_uid="u1", labels={"app": "x"})], can_adopt)
        assert claimed == [] and client.patches == []


async def test_slow_start_batches_double_and_stop_at_first_failure():
    sizes: list[int] = []
    inflight = 0

    async def ok() -> None:
        nonlocal inflight
        inflight += 1
        sizes.append(inflight)
        await asyncio.sleep(0)
        inflight -= 1

    assert await cu.slow_start_batch(10, 1, ok) == (10, None)
    assert max(sizes) == 4  # batches of 1, 2, 4, then the remaining 3

    n = 0

    async def fail_third() -> None:
        nonlocal n
        n += 1
        if n == 3:
            raise RuntimeError("quota")

    successes, err = await cu.slow_start_batch(10, 1, fail_third)
    # Batch 1 (call 1), batch 2 (calls 2-3, one fails): stop there.
    assert (successes, str(err), n) == (2, "quota", 3)


def test_calculate_status_counts_and_failure_condition():
    rs = {"metadata": {"generation": 3}, "spec": {"replicas": 3, "minReadySeconds": 10,
                                                  "template": {"metadata": {"labels": {"app": "web"}}}}}
    pods = [pod("a", ready_ago=60), pod("b", ready_ago=4), pod("c", ready=False, labels={"app": "web", "x": "y"}),
            pod("d", labels={})]
    status, requeue = calculate_status(rs, pods, None, NOW)
    assert status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 2,
                      "observedGeneration": 3}
    assert requeue == pytest.approx(6.5)
    failed, _ = calculate_status(rs, pods[:1], ApiException(403, "Forbidden", "exceeded quota"), NOW)
    cond = failed["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "ReplicaFailure", "True", "FailedCreate", "exceeded quota")
    healed, _ = calculate_status({**rs, "status": failed}, pods[:1], None, NOW)
    assert "conditions" not in healed
