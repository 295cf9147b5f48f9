"""The PodDisruptionBudget arithmetic of the disruption controller (pure functions).

Conformance: "PodDisruptionBudget: Status updates" ([sig-apps] DisruptionController
should observe PodDisruptionBudget status updated) — the numbers behind it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pinnace.controllers.disruption import (
    BudgetError,
    build_disrupted_pod_map,
    compute_status,
    count_healthy,
    expected_and_desired,
    needs_scale,
    pdb_selects,
    scaled_value,
    set_condition,
    stale_disruption_condition,
    update_disruption_allowed_condition,
)

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, ready: bool = True, deleting: bool = False, labels: dict | None = None, ns: str = "default",
        **status: object) -> dict:
    meta: dict = {"name": name, "namespace": ns, "labels": labels if labels is not None else {"app": "a"}}
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    return {"metadata": meta, "status": {"phase": "Running", **status, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(min_available: int | str | None = None, max_unavailable: int | str | None = None, generation: int = 1,
        status: dict | None = None, selector: dict | None = None) -> dict:
    spec: dict = {"selector": selector if selector is not None else {"matchLabels": {"app": "a"}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"metadata": {"name": "b", "namespace": "default", "generation": generation}, "spec": spec,
            "status": status or {}}


@pytest.mark.parametrize(("value", "total", "up", "want"), [
    (3, 10, True, 3), ("50%", 5, True, 3), ("50%", 5, False, 2), ("0%", 7, True, 0), ("100%", 7, True, 7),
    ("34%", 3, True, 2), ("33%", 3, True, 1), ("10%", 0, True, 0),
])
def test_scaled_value_rounds_percentages_up(value, total, up, want):
    assert scaled_value(value, total, up) == want


@pytest.mark.parametrize("bad", ["5", "x%", True, None])
def test_scaled_value_rejects_what_intstr_rejects(bad):
    with pytest.raises(BudgetError):
        scaled_value(bad, 10)


def test_needs_scale_only_for_percent_min_available_or_any_max_unavailable():
    assert not needs_scale(pdb(min_available=2))
    assert needs_scale(pdb(min_available="50%"))
    assert needs_scale(pdb(max_unavailable=1))
    assert needs_scale(pdb(max_unavailable="25%"))


def test_expected_and_desired_for_each_budget_form():
    # An integer minAvailable counts the matching pods, whatever their controllers want.
    assert expected_and_desired(pdb(min_available=2), 3, None) == (3, 2)
    # A percentage is of the controllers' scale (5 replicas, 2 pods exist so far): ceil(2.5).
    assert expected_and_desired(pdb(min_available="50%"), 2, 5) == (5, 3)
    # maxUnavailable as a count and a percentage (rounded up: 25% of 6 is 2).
    assert expected_and_desired(pdb(max_unavailable=1), 4, 4) == (4, 3)
    assert expected_and_desired(pdb(max_unavailable="25%"), 6, 6) == (6, 4)
    # More unavailable allowed than expected: nothing is desired, never negative.
    assert expected_and_desired(pdb(max_unavailable=5), 2, 2) == (2, 0)


def test_count_healthy_skips_unready_deleting_and_recently_disrupted_pods():
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d"), pod("e")]
    disrupted = {"d": ts(10), "e": ts(500)}  # e's eviction is long overdue: it counts again
    assert count_healthy(pods, disrupted, NOW, timeout=120) == 2  # a and e


def test_disrupted_pod_map_keeps_pending_entries_and_reports_the_next_recheck():
    pods = [pod("a"), pod("b", deleting=True), pod("c"), pod("d")]
    disrupted = {"a": ts(30), "b": ts(10), "c": ts(300), "gone": ts(5), "d": ts(100)}
    result, recheck, expired = build_disrupted_pod_map(pods, disrupted, NOW, timeout=120)
    # b is being deleted (done), gone no longer exists, c is overdue (not deleted after all).
    assert result == {"a": ts(30), "d": ts(100)}
    assert recheck == NOW + dt.timedelta(seconds=20)  # d's entry expires first
    assert [p["metadata"]["name"] for p in expired] == ["c"]
    assert build_disrupted_pod_map(pods, None, NOW) == ({}, None, [])


def test_compute_status_allows_the_surplus_and_sets_the_condition():
    b = pdb(min_available=2)
    status = compute_status(b, current_healthy=3, desired_healthy=2, expected=3, disrupted={}, now=NOW)
    assert status is not None
    cond = status.pop("conditions")
    assert status == {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
                      "expectedPods": 3}
    assert cond == [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "",
                     "observedGeneration": 1, "lastTransitionTime": "2025-01-02T03:04:05Z"}]


def test_compute_status_allows_nothing_without_surplus_or_expected_pods():
    s = compute_status(pdb(min_available=3), 3, 3, 3, {}, NOW)
    assert s is not None and s["disruptionsAllowed"] == 0
    assert s["conditions"][0]["reason"] == "InsufficientPods" and s["conditions"][0]["status"] == "False"
    # No pods expected (yet): never allow, whatever the arithmetic says.
    s = compute_status(pdb(max_unavailable=1), 0, 0, 0, {}, NOW)
    assert s is not None and s["disruptionsAllowed"] == 0
    s = compute_status(pdb(min_available=0), 2, 0, 0, {}, NOW)
    assert s is not None and s["disruptionsAllowed"] == 0


def test_compute_status_is_none_when_nothing_changed():
    first = compute_status(pdb(min_available=1), 2, 1, 2, {"x": ts(1)}, NOW)
    assert first is not None and first["disruptedPods"] == {"x": ts(1)}
    assert compute_status(pdb(min_available=1, status=first), 2, 1, 2, {"x": ts(1)}, NOW) is None
    # A new generation must be observed even if the numbers are the same.
    assert compute_status(pdb(min_available=1, status=first, generation=2), 2, 1, 2, {"x": ts(1)}, NOW) is not None
    # The entry went away (the pod's deletion was seen).
    assert compute_status(pdb(min_available=1, status=first), 2, 1, 2, {}, NOW) is not None


def test_condition_transition_time_changes_only_with_the_status():
    status = {"disruptionsAllowed": 1, "observedGeneration": 2}
    update_disruption_allowed_condition(status, NOW)
    later = NOW + dt.timedelta(minutes=5)
    status["observedGeneration"] = 3
    update_disruption_allowed_condition(status, later)
    [c] = status["conditions"]
    assert c["lastTransitionTime"] == "2025-01-02T03:04:05Z" and c["observedGeneration"] == 3
    status["disruptionsAllowed"] = 0
    update_disruption_allowed_condition(status, later)
    [c] = status["conditions"]
    assert (c["status"], c["reason"], c["lastTransitionTime"]) == ("False", "InsufficientPods", "2025-01-02T03:09:05Z")
    # Other condition types are left alone.
    conds = set_condition([{"type": "Other", "status": "True"}], {"type": "DisruptionAllowed", "status": "True"}, NOW)
    assert [c["type"] for c in conds] == ["Other", "DisruptionAllowed"]


def test_policy_v1_selector_semantics():
    a = pod("a")
    assert pdb_selects(pdb(min_available=1), a)
    assert not pdb_selects(pdb(min_available=1, selector={"matchLabels": {"app": "b"}}), a)
    assert pdb_selects(pdb(min_available=1, selector={}), a)  # {} selects every pod of the namespace
    nil = pdb(min_available=1)
    nil["spec"].pop("selector")
    assert not pdb_selects(nil, a)  # no selector selects nothing
    assert not pdb_selects(pdb(min_available=1), pod("a", ns="other"))
    expr = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]}
    assert pdb_selects(pdb(min_available=1, selector=expr), a)


def test_stale_disruption_condition():
    p = pod("a")
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                                      "lastTransitionTime": ts(100)})
    assert stale_disruption_condition(p, NOW, 120) == (True, 20.0)
    assert stale_disruption_condition(p, NOW, 60) == (True, 0.0)
    p["status"]["conditions"][-1]["reason"] = "TerminationByKubelet"
    assert stale_disruption_condition(p, NOW, 60) == (False, 0.0)
    assert stale_disruption_condition(pod("b", deleting=True), NOW, 60) == (False, 0.0)
