"""Rollout arithmetic of the Deployment controller (pure functions)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pinnace.controllers import deployment_util as du


def deploy(replicas: int = 10, surge: Any = "25%", unavailable: Any = "25%", strategy: str = "RollingUpdate",
           generation: int = 1, status: dict | None = None, **spec: Any) -> dict:
    st: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        st["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "namespace": "default", "generation": generation, "annotations": {}},
            "spec": {"replicas": replicas, "strategy": st, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "c", "image": "nginx:1"}]}}, "progressDeadlineSeconds": 600,
                     "revisionHistoryLimit": 10, **spec},
            "status": status or {}}


def rs(name: str, replicas: int, available: int | None = None, created: str = "2024-01-01T00:00:00Z",
       revision: int | None = None, actual: int | None = None, **annotations: str) -> dict:
    anns = dict(annotations)
    if revision is not None:
        anns[du.REVISION] = str(revision)
    avail = replicas if available is None else available
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "annotations": anns,
                         "generation": 1, "uid": name},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if actual is None else actual, "availableReplicas": avail,
                       "readyReplicas": avail, "observedGeneration": 1}}


# -- surge and unavailability ------------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable rounds down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 1, (1, 0)),
    (0, 0, 5, (0, 1)),  # both zero: one may be unavailable, or nothing could move
    ("0%", "0%", 5, (0, 1)),
    ("10%", "10%", 3, (1, 0)),
    (2, "50%", 5, (2, 2)),
    ("100%", 0, 3, (3, 0)),
])
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert du.resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_and_surge_per_strategy():
    assert du.max_unavailable(deploy(replicas=10)) == 2
    assert du.max_surge(deploy(replicas=10)) == 3
    assert du.max_unavailable(deploy(replicas=2, unavailable=5)) == 2  # never more than replicas
    assert du.max_unavailable(deploy(replicas=0)) == 0
    recreate = deploy(strategy="Recreate")
    assert du.max_unavailable(recreate) == 0 and du.max_surge(recreate) == 0


# -- hash ------------------------------------------------------------------------------------


def test_hash_is_stable_short_safe_and_template_sensitive():
    tpl = deploy()["spec"]["template"]
    h = du.compute_hash(tpl)
    assert h == du.compute_hash({"spec": tpl["spec"], "metadata": tpl["metadata"]})  # key order irrelevant
    assert len(h) == 10 and set(h) <= set(du.SAFE_ALPHABET)
    other = {**tpl, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    assert du.compute_hash(other) != h
    assert du.compute_hash(tpl, 1) != h and du.compute_hash(tpl, 1) != du.compute_hash(tpl, 2)
    labelled = {"metadata": {"labels": {"app": "web", du.HASH_LABEL: h}}, "spec": tpl["spec"]}
    assert du.compute_hash(labelled) == h  # the hash label itself is not hashed


def test_hash_fixed_value():
    # Names of existing ReplicaSets depend on it: it must never change between releases.
    # Deterministic across processes and runs (no Python hash(), sorted keys).
    assert du.compute_hash({"metadata": {"labels": {"app": "web"}}}) == "65f44fcd74"
    assert du.safe_encode("0123456789") == "456789bcdf"


def test_equal_ignore_hash():
    tpl = deploy()["spec"]["template"]
    with_hash = {"metadata": {"labels": {"app": "web", du.HASH_LABEL: "abc"}}, "spec": tpl["spec"]}
    assert du.equal_ignore_hash(tpl, with_hash)
    changed = {"metadata": {"labels": {"app": "web"}, "annotations": {"x": "1"}}, "spec": tpl["spec"]}
    assert not du.equal_ignore_hash(tpl, changed)


def test_find_new_replica_set_picks_the_oldest_match():
    d = deploy()
    tpl = d["spec"]["template"]
    a = {**rs("web-a", 1, created="2024-01-02T00:00:00Z"), "spec": {"replicas": 1, "template": tpl}}
    b = {**rs("web-b", 1, created="2024-01-01T00:00:00Z"), "spec": {"replicas": 1, "template": tpl}}
    c = {**rs("web-c", 1), "spec": {"replicas": 1, "template": {"spec": {}}}}
    assert du.find_new_replica_set(d, [a, c, b])["metadata"]["name"] == "web-b"
    assert du.find_new_replica_set(d, [c]) is None


# -- rolling update steps ----------------------------------------------------------------------


def test_new_rs_scales_up_within_surge():
    d = deploy(replicas=10)  # surge 3
    old, new = rs("old", 10), rs("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    old, new = rs("old", 8), rs("new", 3)
    assert du.new_rs_new_replicas(d, [old, new], new) == 5  # 11 of 13 used: 2 more
    old, new = rs("old", 10), rs("new", 3)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3  # at the limit: stay
    old, new = rs("old", 1), rs("new", 8)
    assert du.new_rs_new_replicas(d, [old, new], new) == 10  # never beyond replicas
    assert du.new_rs_new_replicas(deploy(replicas=4, strategy="Recreate"), [rs("new", 0)], rs("new", 0)) == 4


def test_old_rs_scale_down_keeps_minimum_availability():
    d = deploy(replicas=10)  # maxUnavailable 2: at least 8 available
    old, new = rs("old", 10), rs("new", 3, available=0)
    # 13 pods, 3 new ones not yet available: only 2 old may go.
    assert du.old_rs_scale_down(d, [old, new], [old], new) == {"old": 8}
    old, new = rs("old", 8), rs("new", 5, available=5)
    assert du.old_rs_scale_down(d, [old, new], [old], new) == {"old": 3}
    old, new = rs("old", 8, available=6), rs("new", 3, available=0)
    # Available is 6 < 8: nothing healthy may go, but... 11 - 8 - 3 = 0 → nothing at all.
    assert du.old_rs_scale_down(d, [old, new], [old], new) == {}


def test_old_rs_scale_down_does_not_trust_a_stale_status_twice():
    d = deploy(replicas=3000)  # maxUnavailable 750: at least 2250 available
    # The old RS was just scaled 3000 → 2250; its controller has not caught up and still
    # reports 3000 available.  Counting those would take it down another 750.
    old, new = rs("old", 2250, available=3000, actual=3000), rs("new", 750, available=0)
    assert du.old_rs_scale_down(d, [old, new], [old], new) == {}
    new = rs("new", 750, available=300)
    assert du.old_rs_scale_down(d, [old, new], [old], new) == {"old": 1950}


def test_old_rs_scale_down_removes_unhealthy_replicas_first():
    d = deploy(replicas=4, surge=1, unavailable=0)
    older = rs("older", 2, available=0, created="2024-01-01T00:00:00Z")
    old = rs("old", 3, available=3, created="2024-01-02T00:00:00Z")
    new = rs("new", 0, created="2024-01-03T00:00:00Z")
    # 5 pods, need 4 available: one may go, and it is an unavailable one from "older";
    # then 3 available < 4 needed leaves the healthy ones alone.
    assert du.old_rs_scale_down(d, [older, old, new], [older, old], new) == {"older": 1}


def test_old_rs_scale_down_oldest_first_and_nothing_without_old_pods():
    d = deploy(replicas=4, surge=0, unavailable=2)
    a = rs("a", 2, created="2024-01-01T00:00:00Z")
    b = rs("b", 2, created="2024-01-02T00:00:00Z")
    new = rs("new", 0, created="2024-01-03T00:00:00Z")
    assert du.old_rs_scale_down(d, [a, b, new], [a, b], new) == {"a": 0}
    assert du.old_rs_scale_down(d, [rs("z", 0), new], [rs("z", 0)], new) == {}


def test_simulated_rollout_never_breaks_the_bounds():
    """Step the controller's arithmetic against an idealised cluster (pods become
    available at once) and check the invariants at every step."""
    d = deploy(replicas=7, surge="30%", unavailable="20%")
    surge, unavail = du.max_surge(d), du.max_unavailable(d)
    assert (surge, unavail) == (3, 1)
    old, new = rs("old", 7), rs("new", 0, created="2024-01-02T00:00:00Z")
    for _ in range(50):
        if du.spec_replicas(new) == 7 and du.spec_replicas(old) == 0:
            break
        n = du.new_rs_new_replicas(d, [old, new], new)
        if n != du.spec_replicas(new):
            new = rs("new", n, available=du.status_int(new, "availableReplicas"), created="2024-01-02T00:00:00Z")
        else:
            sizes = du.old_rs_scale_down(d, [old, new], [old], new)
            if "old" in sizes:
                old = rs("old", sizes["old"])
        assert du.total_replicas([old, new]) <= 7 + surge
        assert du.total_status([old, new], "availableReplicas") >= 7 - unavail
        # The new pods come up.
        new = rs("new", du.spec_replicas(new), created="2024-01-02T00:00:00Z")
    assert (du.spec_replicas(old), du.spec_replicas(new)) == (0, 7)


# -- proportional scaling ----------------------------------------------------------------------


def test_proportional_scaling_mid_rollout():
    # 10 → 15 replicas while old has 8 and new 5 (both annotated with the old max of 13).
    d = deploy(replicas=15, status={"replicas": 13})
    old = rs("old", 8, created="2024-01-01T00:00:00Z", **{du.MAX_REPLICAS: "13"})
    new = rs("new", 5, created="2024-01-02T00:00:00Z", **{du.MAX_REPLICAS: "13"})
    # New allowed size 15 + 4 = 19: 6 more, shared 8:5 → +4 / +2.
    assert du.proportional_sizes(d, new, [old]) == {"old": 12, "new": 7}
    down = deploy(replicas=5, status={"replicas": 13})  # 5 + 2 = 7 allowed: 6 fewer
    sizes = du.proportional_sizes(down, new, [old])
    assert sum(sizes.values()) == 7 and sizes["old"] > sizes["new"]


def test_proportional_scaling_single_active_and_saturated():
    d = deploy(replicas=5)
    assert du.proportional_sizes(d, rs("new", 3), [rs("old", 0)]) == {"new": 5}
    assert du.proportional_sizes(d, rs("new", 5), [rs("old", 0)]) == {}
    assert du.proportional_sizes(d, None, [rs("a", 0, created="2024-01-01T00:00:00Z"),
                                           rs("b", 0, created="2024-01-02T00:00:00Z")]) == {"b": 5}
    saturated = rs("new", 5, **{du.DESIRED_REPLICAS: "5"})
    assert du.proportional_sizes(d, saturated, [rs("old", 2)]) == {"old": 0}


# -- revisions -----------------------------------------------------------------------------------


def test_revision_annotations_for_new_and_rolled_back_replica_sets():
    d = deploy(replicas=3)
    d["metadata"]["annotations"] = {"team": "a", du.LAST_APPLIED: "{}", du.REVISION: "4"}
    fresh = du.new_rs_annotations(d, {}, 5, exists=False)
    assert fresh == {"team": "a", du.REVISION: "5", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    # Rollback: an RS at revision 2 becomes the new one; its old number goes to the history.
    back = du.new_rs_annotations(d, {du.REVISION: "2", du.DESIRED_REPLICAS: "3"}, 5, exists=True)
    assert back[du.REVISION] == "5" and back[du.REVISION_HISTORY] == "2"
    again = du.new_rs_annotations(d, {du.REVISION: "5", du.REVISION_HISTORY: "2"}, 3, exists=True)
    assert again[du.REVISION] == "5" and again[du.REVISION_HISTORY] == "2"  # never lowered
    assert du.max_revision([rs("a", 0, revision=3), rs("b", 0, revision=12), rs("c", 0)]) == 12


def test_history_to_delete_keeps_the_limit_and_busy_replica_sets():
    d = deploy(revisionHistoryLimit=1)
    olds = [rs("r1", 0, revision=1), rs("r2", 0, revision=2, actual=1), rs("r3", 0, revision=3)]
    # Two beyond the limit; r2 still has a pod, so only r1 goes now.
    assert [x["metadata"]["name"] for x in du.history_to_delete(d, olds)] == ["r1"]
    assert du.history_to_delete(deploy(revisionHistoryLimit=5), olds) == []


# -- status and conditions -------------------------------------------------------------------------


NOW = "2024-05-01T12:00:00Z"


def test_calculate_status_counts_and_availability():
    d = deploy(replicas=4, generation=3)  # maxUnavailable 1
    old, new = rs("old", 1, available=1), rs("new", 4, available=2)
    st = du.calculate_status(d, [old, new], new, NOW)
    assert {k: st[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                               "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 3, "replicas": 5, "updatedReplicas": 4, "readyReplicas": 3, "availableReplicas": 3,
        "unavailableReplicas": 2}
    assert du.get_condition(st, "Available")["reason"] == "MinimumReplicasAvailable"
    st = du.calculate_status(d, [rs("new", 4, available=2)], None, NOW)
    avail = du.get_condition(st, "Available")
    assert (avail["status"], avail["reason"], avail["message"]) == (
        "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")


def test_rollout_status_progressing_complete_and_timed_out():
    created = du.new_condition("Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "web-x"',
                               "2024-05-01T11:59:00Z")
    d = deploy(replicas=2, status={"replicas": 1, "updatedReplicas": 1, "conditions": [created]},
               progressDeadlineSeconds=30)
    new = rs("web-x", 2, available=1, actual=2)
    st = du.rollout_status(d, [new], new, NOW)
    prog = du.get_condition(st, "Progressing")
    assert (prog["reason"], prog["message"]) == ("ReplicaSetUpdated", 'ReplicaSet "web-x" is progressing.')
    assert prog["lastUpdateTime"] == NOW and prog["lastTransitionTime"] == "2024-05-01T11:59:00Z"
    # No progress for longer than the deadline.
    stalled = deploy(replicas=2, status={**st, "conditions": [{**prog, "lastUpdateTime": "2024-05-01T11:59:00Z"}]},
                     progressDeadlineSeconds=30)
    st2 = du.rollout_status(stalled, [new], new, NOW)
    prog = du.get_condition(st2, "Progressing")
    assert (prog["status"], prog["reason"], prog["message"]) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-x" has timed out progressing.')
    # Within the deadline: not yet, and the controller knows when to look again.
    now = dt.datetime(2024, 5, 1, 11, 59, 20, tzinfo=dt.UTC)
    assert not du.deployment_timed_out(stalled, stalled["status"], now)
    assert du.seconds_until_deadline(stalled, stalled["status"], now) == pytest.approx(11.0)
    # Everything available: complete.
    done = rs("web-x", 2, available=2)
    st3 = du.rollout_status(d, [done], done, NOW)
    prog = du.get_condition(st3, "Progressing")
    assert (prog["status"], prog["reason"], prog["message"]) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-x" has successfully progressed.')
    assert du.seconds_until_deadline(d, st3) is None


def test_set_condition_keeps_transition_time_and_skips_repeats():
    status: dict = {}
    du.set_condition(status, du.new_condition("Available", "True", "A", "m", "2024-01-01T00:00:00Z"))
    du.set_condition(status, du.new_condition("Available", "True", "A", "m2", "2024-01-02T00:00:00Z"))
    assert status["conditions"][0]["message"] == "m"  # same status and reason: unchanged
    du.set_condition(status, du.new_condition("Available", "True", "B", "m3", "2024-01-03T00:00:00Z"))
    assert status["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert status["conditions"][0]["lastUpdateTime"] == "2024-01-03T00:00:00Z"


def test_replica_failure_is_surfaced_and_cleared():
    new = rs("web-x", 2, available=0)
    new["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": "pods \"web-x-\" is forbidden: exceeded quota"}]
    d = deploy(replicas=2)
    st = du.rollout_status(d, [new], new, NOW)
    failure = du.get_condition(st, "ReplicaFailure")
    assert (failure["status"], failure["reason"]) == ("True", "FailedCreate")
    healed = rs("web-x", 2)
    assert du.get_condition(du.rollout_status({**d, "status": st}, [healed], healed, NOW), "ReplicaFailure") is None
