"""Pure DaemonSet helpers: node eligibility, placement, per-node reconciliation,
rollout budget, status and history clean-up.

Conformance (behaviours these functions decide): "[sig-apps] Daemon set [Serial] should
run and stop complex daemon [Conformance]" (DaemonSet-NodeSelection), "should update pod
when spec was updated and update strategy is RollingUpdate [Conformance]"
(DaemonSet-RollingUpdate), "should retry creating failed daemon pods [Conformance]"
(DaemonSet-FailedPodCreation).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pinnace.controllers import daemonset_util as dsu

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def daemon_set(*, strategy: dict | None = None, template_spec: dict | None = None, min_ready: int = 0,
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "ds", "namespace": "default", "uid": "u1", "generation": 1,
                         "annotations": annotations or {}},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "minReadySeconds": min_ready,
                     "updateStrategy": strategy or {"type": "RollingUpdate",
                                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": template_spec or {"containers": [{"name": "c", "image": "i"}]}}}}


def pod(name: str, node_name: str, hash_: str, *, ready: bool = True, ready_for: float = 60, age: float = 100,
        phase: str = "Running", deleting: bool = False, bound: bool = True) -> dict:
    p: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": ts(age),
                     "labels": {"app": "d", dsu.HASH_LABEL: hash_}},
        "spec": {"affinity": dsu.replace_node_affinity(None, node_name)},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(ready_for)}]},
    }
    if bound:
        p["spec"]["nodeName"] = node_name
    if deleting:
        p["metadata"]["deletionTimestamp"] = ts(0)
    return p


# -- eligibility ------------------------------------------------------------------------------


def test_daemon_tolerations_are_added_without_toleration_seconds():
    spec = dsu.add_daemon_tolerations({"containers": [], "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "custom", "operator": "Exists"}]})
    by_key = {(t["key"], t["effect"] if "effect" in t else ""): t for t in spec["tolerations"]}
    assert by_key[("node.kubernetes.io/not-ready", "NoExecute")] == {
        "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}  # seconds dropped
    assert ("node.kubernetes.io/unreachable", "NoExecute") in by_key
    for key in ("disk-pressure", "memory-pressure", "pid-pressure", "unschedulable"):
        assert (f"node.kubernetes.io/{key}", "NoSchedule") in by_key
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in by_key
    assert ("custom", "") in by_key and len(spec["tolerations"]) == 7
    host = dsu.add_daemon_tolerations({"hostNetwork": True})
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
            "effect": "NoSchedule"} in host["tolerations"]


def test_node_selector_and_required_affinity_decide_eligibility():
    ds = daemon_set(template_spec={"containers": [], "nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}})
    assert dsu.node_should_run_daemon_pod(node("n1", {"disk": "ssd", "zone": "a"}), ds) == (True, True)
    assert dsu.node_should_run_daemon_pod(node("n2", {"disk": "hdd", "zone": "a"}), ds) == (False, False)
    assert dsu.node_should_run_daemon_pod(node("n3", {"disk": "ssd", "zone": "c"}), ds) == (False, False)
    pinned = daemon_set(template_spec={"containers": [], "nodeName": "n1"})
    assert dsu.node_should_run_daemon_pod(node("n1"), pinned) == (True, True)
    assert dsu.node_should_run_daemon_pod(node("n2"), pinned) == (False, False)


def test_taints_against_tolerations():
    ds = daemon_set()
    no_schedule = node("n", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    no_execute = node("n", taints=[{"key": "dedicated", "value": "infra", "effect": "NoExecute"}])
    prefer = node("n", taints=[{"key": "dedicated", "effect": "PreferNoSchedule"}])
    # NoSchedule keeps new pods off but lets a running one stay; NoExecute evicts it.
    assert dsu.node_should_run_daemon_pod(no_schedule, ds) == (False, True)
    assert dsu.node_should_run_daemon_pod(no_execute, ds) == (False, False)
    assert dsu.node_should_run_daemon_pod(prefer, ds) == (True, True)
    tolerant = daemon_set(template_spec={"containers": [], "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "infra"}]})
    assert dsu.node_should_run_daemon_pod(no_execute, tolerant) == (True, True)
    # The automatic tolerations cover node conditions and cordoning.
    for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                        ("node.kubernetes.io/unschedulable", "NoSchedule"),
                        ("node.kubernetes.io/memory-pressure", "NoSchedule")):
        assert dsu.node_should_run_daemon_pod(node("n", taints=[{"key": key, "effect": effect}]), ds) == (True, True)
    # not-ready NoSchedule is not tolerated: no new pod, but the running one stays.
    not_ready = node("n", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    assert dsu.node_should_run_daemon_pod(not_ready, ds) == (False, True)
    unavailable = node("n", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}])
    assert dsu.node_should_run_daemon_pod(unavailable, ds) == (False, True)
    host = daemon_set(template_spec={"containers": [], "hostNetwork": True})
    assert dsu.node_should_run_daemon_pod(unavailable, host) == (True, True)


# -- placement ----------------------------------------------------------------------------------


def test_pod_template_pins_the_node_with_match_fields_and_labels_the_revision():
    ds = daemon_set(template_spec={"containers": [], "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]},
        "podAntiAffinity": {"x": 1}}}, annotations={dsu.TEMPLATE_GENERATION_ANNOTATION: "3"})
    tpl = dsu.daemon_pod_template(ds, "abc", "n7")
    assert "nodeName" not in tpl["spec"]  # the scheduler binds
    aff = tpl["spec"]["affinity"]
    assert aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}
    assert aff["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert aff["podAntiAffinity"] == {"x": 1}
    assert tpl["metadata"]["labels"] == {"app": "d", dsu.HASH_LABEL: "abc", dsu.TEMPLATE_GENERATION_LABEL: "3"}
    assert dsu.target_node_name({"spec": tpl["spec"]}) == "n7"
    assert dsu.target_node_name({"spec": {**tpl["spec"], "nodeName": "n7"}}) == "n7"
    assert dsu.target_node_name({"spec": {}}) is None
    # The DaemonSet itself is untouched.
    assert "matchFields" not in str(ds)


def test_is_pod_updated_by_hash_or_legacy_generation():
    p = {"metadata": {"labels": {dsu.HASH_LABEL: "h1", dsu.TEMPLATE_GENERATION_LABEL: "2"}}}
    assert dsu.is_pod_updated(p, "h1", None)
    assert not dsu.is_pod_updated(p, "h2", None)
    assert dsu.is_pod_updated(p, "h2", 2)
    assert not dsu.is_pod_updated(p, "", 3)


# -- per-node reconciliation --------------------------------------------------------------------


def test_pods_should_be_on_node():
    ds = daemon_set()
    n = node("n1")
    assert dsu.pods_should_be_on_node(n, None, ds, "h").create
    # Two pods without surge: the oldest stays.
    older, newer = pod("a", "n1", "h", age=200), pod("b", "n1", "h", age=100)
    plan = dsu.pods_should_be_on_node(n, [newer, older], ds, "h")
    assert not plan.create and [p["metadata"]["name"] for p in plan.delete] == ["b"]
    # A failed pod is deleted (and then replaced), unless backing off.
    failed = pod("f", "n1", "h", phase="Failed")
    plan = dsu.pods_should_be_on_node(n, [failed], ds, "h", failed_backoff=lambda _n: None)
    assert plan.failed == [failed] and plan.delete == [failed]
    plan = dsu.pods_should_be_on_node(n, [failed], ds, "h", failed_backoff=lambda _n: 4.0)
    assert plan.delete == [] and plan.backoff == 4.0
    # A node that must not keep the pod loses every pod on it.
    tainted = node("n1", taints=[{"key": "k", "effect": "NoExecute"}])
    plan = dsu.pods_should_be_on_node(tainted, [older, pod("d", "n1", "h", deleting=True)], ds, "h")
    assert [p["metadata"]["name"] for p in plan.delete] == ["a"]
    # NoSchedule only: no new pod, but the existing one stays.
    cordoned = node("n1", taints=[{"key": "k", "effect": "NoSchedule"}])
    assert not dsu.pods_should_be_on_node(cordoned, None, ds, "h").create
    assert dsu.pods_should_be_on_node(cordoned, [older], ds, "h").delete == []


def test_surge_keeps_old_pod_until_new_one_is_available():
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                    min_ready=10)
    n = node("n1")
    old = pod("old", "n1", "h1", age=300)
    new_not_ready = pod("new", "n1", "h2", ready=False, age=5)
    assert dsu.pods_should_be_on_node(n, [old, new_not_ready], ds, "h2", now=NOW).delete == []
    new_ready_short = pod("new", "n1", "h2", ready_for=3, age=5)
    assert dsu.pods_should_be_on_node(n, [old, new_ready_short], ds, "h2", now=NOW).delete == []
    new_available = pod("new", "n1", "h2", ready_for=30, age=50)
    plan = dsu.pods_should_be_on_node(n, [old, new_available], ds, "h2", now=NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["old"]
    # An old pod that is no longer ready goes at once.
    old_unready = pod("old", "n1", "h1", ready=False, age=300)
    plan = dsu.pods_should_be_on_node(n, [old_unready, new_not_ready], ds, "h2", now=NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["old"]


def test_unscheduled_pods_for_vanished_nodes_are_deleted():
    stray = pod("s", "gone", "h", bound=False)
    bound = pod("b", "gone2", "h")
    grouped = dsu.group_by_node([stray, bound])
    assert dsu.unscheduled_pods_without_node([node("n1")], grouped) == [stray]


# -- rollout budget --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "total", "want"), [(1, 10, 1), ("10%", 10, 1), ("15%", 10, 2), ("100%", 3, 3),
                                                       ("1%", 3, 1), (0, 5, 0)])
def test_budget_counts_round_up(value, total, want):
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": value, "maxSurge": value}})
    assert dsu.unavailable_count(ds, total) == want
    assert dsu.surge_count(ds, total) == want


def test_budget_defaults_and_on_delete():
    on_delete = daemon_set(strategy={"type": "OnDelete"})
    assert dsu.unavailable_count(on_delete, 5) == 0 and dsu.surge_count(on_delete, 5) == 0
    assert not dsu.allows_surge(on_delete)
    zero = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
    nodes = [node("a"), node("b")]
    surge, unavailable, desired = dsu.desired_node_counts(zero, nodes, {})
    assert (surge, unavailable, desired) == (0, 1, 2)  # an impossible budget falls back to 1 unavailable
    assert dsu.allows_surge(daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "1%"}}))


def _names(plan: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
    return sorted(plan[0]), sorted(plan[1])


def test_rolling_update_without_surge_respects_max_unavailable():
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    nodes = [node(f"n{i}") for i in range(5)]
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", "old")] for i in range(5)}
    to_delete, to_create = dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)
    assert len(to_delete) == 2 and to_create == []
    # One node already replaced and its new pod not yet available: only one more may go.
    pods["n0"] = [pod("q0", "n0", "new", ready=False)]
    to_delete, _ = dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)
    assert len(to_delete) == 1 and "p0" not in to_delete
    # An empty eligible node counts as unavailable too.
    pods_missing = {k: v for k, v in pods.items() if k != "n1"}
    to_delete, _ = dsu.plan_rolling_update(ds, nodes, pods_missing, "new", NOW)
    assert to_delete == []
    # Old pods that are not available anyway are always replaceable.
    pods2 = {f"n{i}": [pod(f"p{i}", f"n{i}", "old", ready=(i > 2))] for i in range(5)}
    to_delete, _ = dsu.plan_rolling_update(ds, nodes, pods2, "new", NOW)
    assert sorted(to_delete) == ["p0", "p1", "p2"]
    # All updated and available: nothing to do.
    done = {f"n{i}": [pod(f"q{i}", f"n{i}", "new")] for i in range(5)}
    assert dsu.plan_rolling_update(ds, nodes, done, "new", NOW) == ([], [])


def test_rolling_update_with_min_ready_seconds():
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}, min_ready=30)
    nodes = [node("n0"), node("n1")]
    pods = {"n0": [pod("q0", "n0", "new", ready_for=10)], "n1": [pod("p1", "n1", "old", ready_for=100)]}
    # q0 is ready but not yet available for 30 s: it still uses up the budget.
    assert dsu.plan_rolling_update(ds, nodes, pods, "new", NOW) == ([], [])
    pods["n0"] = [pod("q0", "n0", "new", ready_for=40)]
    assert dsu.plan_rolling_update(ds, nodes, pods, "new", NOW) == (["p1"], [])


def test_rolling_update_with_surge_creates_first_then_deletes():
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    nodes = [node(f"n{i}") for i in range(3)]
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", "old")] for i in range(3)}
    to_delete, to_create = dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)
    assert to_delete == [] and len(to_create) == 1  # maxSurge 1: one node at a time
    target = to_create[0]
    pods[target].append(pod("s", target, "new", ready=False, age=1))
    assert dsu.plan_rolling_update(ds, nodes, pods, "new", NOW) == ([], [])  # waiting, budget used
    pods[target][-1] = pod("s", target, "new", age=1)
    to_delete, to_create = dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)
    # The old pod goes; the new one being available frees the surge budget for the next node.
    assert to_delete == [pods[target][0]["metadata"]["name"]]
    assert len(to_create) == 1 and to_create[0] != target
    # An unavailable old pod gets its new pod without waiting for the surge budget.
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", "old", ready=False)] for i in range(3)}
    _, to_create = dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)
    assert sorted(to_create) == ["n0", "n1", "n2"]


def test_surge_percentage_rounds_up():
    ds = daemon_set(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "30%"}})
    nodes = [node(f"n{i}") for i in range(10)]
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", "old")] for i in range(10)}
    assert len(dsu.plan_rolling_update(ds, nodes, pods, "new", NOW)[1]) == 3


# -- status ------------------------------------------------------------------------------------


def test_calculate_status():
    ds = daemon_set(template_spec={"containers": [], "nodeSelector": {"role": "x"}}, min_ready=30)
    nodes = [node("a", {"role": "x"}), node("b", {"role": "x"}), node("c", {"role": "x"}), node("d", {"role": "x"}),
             node("e")]
    grouped = {
        "a": [pod("pa", "a", "new", ready_for=60)],                  # ready, available, updated
        "b": [pod("pb", "b", "old", ready_for=10)],                  # ready, not yet available, old
        "c": [pod("pc", "c", "new", ready=False)],                   # not ready
        "e": [pod("pe", "e", "new")],                                 # misscheduled
    }
    counts = dsu.calculate_status(ds, nodes, grouped, "new", NOW)
    assert counts == {"currentNumberScheduled": 3, "numberMisscheduled": 1, "desiredNumberScheduled": 4,
                      "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 1, "numberUnavailable": 3}
    status = dsu.render_status({"collisionCount": 1, "numberAvailable": 9}, {**counts, "numberAvailable": 0}, 4)
    assert status["collisionCount"] == 1 and status["observedGeneration"] == 4
    assert "numberAvailable" not in status and status["numberMisscheduled"] == 1
    empty = dsu.render_status({}, dict.fromkeys(counts, 0), None)
    assert empty == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                     "numberReady": 0}


def test_status_judges_the_oldest_pod_of_a_node():
    ds = daemon_set()
    grouped = {"a": [pod("young", "a", "new", age=1), pod("old", "a", "old", ready=False, age=100)]}
    counts = dsu.calculate_status(ds, [node("a")], grouped, "new", NOW)
    assert counts["numberReady"] == 0 and counts["updatedNumberScheduled"] == 0


# -- history and backoff --------------------------------------------------------------------------


def test_revision_matching_and_cleanup():
    ds = daemon_set()
    rev = {"data": dsu.revision_data(ds)}
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"
    assert dsu.revision_matches(ds, rev)
    changed = daemon_set(template_spec={"containers": [{"name": "c", "image": "other"}]})
    assert not dsu.revision_matches(changed, rev)

    def r(n: int) -> dict:
        return {"metadata": {"name": f"ds-h{n}", "labels": {dsu.HASH_LABEL: f"h{n}"}}, "revision": n}

    old = [r(3), r(1), r(2), r(4)]
    # Keep 2 of 4: the two oldest go, unless a pod still runs one (it then still counts).
    assert [x["revision"] for x in dsu.revisions_to_clean(old, [], 2)] == [1, 2]
    assert [x["revision"] for x in dsu.revisions_to_clean(old, ["h1"], 2)] == [2, 3]
    assert dsu.revisions_to_clean(old, [], 10) == []
    assert len(dsu.revisions_to_clean(old, [], 0)) == 4


def test_failed_pods_backoff_doubles_and_expires():
    now = [0.0]
    b = dsu.FailedPodsBackoff(initial=1.0, maximum=4.0, clock=lambda: now[0])
    assert b.in_backoff("k") is None
    assert b.next("k") == 1.0
    assert b.in_backoff("k") == pytest.approx(1.0)
    now[0] = 1.5
    assert b.in_backoff("k") is None
    assert [b.next("k"), b.next("k"), b.next("k")] == [2.0, 4.0, 4.0]
    now[0] = 100.0  # quiet for longer than twice the maximum: start over
    assert b.next("k") == 1.0
    now[0] = 200.0
    b.gc()
    assert b.in_backoff("k") is None and not b._entries
