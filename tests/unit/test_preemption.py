"""Preemption: candidate nodes, victims (lower priority only, reprieve, PDBs) and the
choice between candidate nodes, as DefaultPreemption does it."""

from __future__ import annotations

import random

from pinnace.scheduler.framework import Profile, failure_message, schedule_one
from pinnace.scheduler.model import ClusterSnapshot
from pinnace.scheduler.preemption import (
    find_preemption,
    num_candidates,
    pick_one_node_for_preemption,
    preempt,
)

HOST = "kubernetes.io/hostname"


def make_node(name, cpu="4", memory="8Gi", pods="110", taints=None, labels=None):
    return {"metadata": {"name": name, "labels": {HOST: name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}


def make_pod(name, cpu="1", priority=0, node=None, labels=None, started=None, namespace="default", **spec):
    pod = {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}},
           "spec": {"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu}}}],
                    "priority": priority, **spec},
           "status": {}}
    if node:
        pod["spec"]["nodeName"] = node
        pod["status"]["startTime"] = started or "2024-01-01T00:00:00Z"
    return pod


def run(snapshot, pod, pdbs=(), profile=None, **kw):
    profile = profile or Profile.default()
    result = schedule_one(profile, pod, snapshot, random.Random(0))
    assert result.node_name is None, "the pod should not fit without preemption"
    return preempt(profile, pod, snapshot, result, pdbs=pdbs, **kw), result


def victim_names(r):
    return [v["metadata"]["name"] for v in r.victims]


def test_reprieve_keeps_the_most_important_pods():
    snap = ClusterSnapshot([make_node("n", cpu="4")], [
        make_pod("p1", "1", priority=1, node="n"),
        make_pod("p2", "1", priority=2, node="n"),
        make_pod("p3", "2", priority=3, node="n"),
    ])
    r, _ = run(snap, make_pod("vip", "2", priority=10))
    # All three go; then p3 (highest) comes back and fits; p2 and p1 no longer fit.
    assert r.node_name == "n"
    assert victim_names(r) == ["p2", "p1"]
    assert find_preemption(Profile.default(), make_pod("vip", "2", priority=10), snap) == ("n", r.victims)


def test_reprieve_takes_back_everything_that_still_fits():
    snap = ClusterSnapshot([make_node("n", cpu="4")], [
        make_pod("small-low", "500m", priority=1, node="n"),
        make_pod("big", "3", priority=5, node="n"),
        make_pod("small-high", "500m", priority=8, node="n"),
    ])
    r, _ = run(snap, make_pod("vip", "1", priority=10))
    # Greedy, most important first: small-high comes back (1.5 of 4), big does not (4.5),
    # small-low does (2): one victim, even though it is not the lowest-priority pod.
    assert victim_names(r) == ["big"]


def test_only_lower_priority_pods_are_victims():
    snap = ClusterSnapshot([make_node("equal", cpu="2"), make_node("mixed", cpu="2")], [
        make_pod("same", "2", priority=10, node="equal"),
        make_pod("higher", "1", priority=20, node="mixed"),
        make_pod("lower", "1", priority=5, node="mixed"),
    ])
    r, result = run(snap, make_pod("vip", "1", priority=10))
    assert (r.node_name, victim_names(r)) == ("mixed", ["lower"])
    # With no lower-priority pod anywhere there is nothing to do.
    r2, result2 = run(snap, make_pod("low", "2", priority=5))
    assert r2.node_name is None
    assert failure_message(result2, 2, r2.message) == (
        "0/2 nodes are available: 2 Insufficient cpu. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def test_a_node_that_cannot_fit_even_empty_is_no_candidate():
    snap = ClusterSnapshot([make_node("tiny", cpu="1"), make_node("cp", cpu="8", taints=[
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])],
        [make_pod("low", "1", priority=0, node="tiny"), make_pod("low2", "8", priority=0, node="cp")])
    r, result = run(snap, make_pod("vip", "2", priority=100))
    assert r.node_name is None
    # The tainted node is not even tried; the tiny one is too small even when emptied.
    assert r.message == ("preemption: 0/2 nodes are available: 1 Insufficient cpu, "
                         "1 Preemption is not helpful for scheduling.")


def test_fewest_and_least_important_victims_win():
    # a: one victim of priority 5; b: two victims of priority 1 -> b (lower highest priority).
    snap = ClusterSnapshot([make_node("a", cpu="2"), make_node("b", cpu="2")], [
        make_pod("a-mid", "2", priority=5, node="a"),
        make_pod("b-low1", "1", priority=1, node="b"),
        make_pod("b-low2", "1", priority=1, node="b"),
    ])
    r, _ = run(snap, make_pod("vip", "2", priority=10))
    assert (r.node_name, victim_names(r)) == ("b", ["b-low1", "b-low2"])
    # Same highest priority: the smaller sum of priorities (fewer victims) wins.
    snap2 = ClusterSnapshot([make_node("a", cpu="2"), make_node("b", cpu="2")], [
        make_pod("a1", "1", priority=1, node="a"),
        make_pod("a2", "1", priority=1, node="a"),
        make_pod("b1", "2", priority=1, node="b"),
    ])
    r2, _ = run(snap2, make_pod("vip", "2", priority=10))
    assert (r2.node_name, victim_names(r2)) == ("b", ["b1"])
    assert len(r2.candidates) == 2


def test_latest_started_victims_are_preferred_on_a_tie():
    snap = ClusterSnapshot([make_node("old", cpu="1"), make_node("new", cpu="1")], [
        make_pod("veteran", "1", priority=1, node="old", started="2024-01-01T00:00:00Z"),
        make_pod("rookie", "1", priority=1, node="new", started="2024-06-01T00:00:00Z"),
    ])
    r, _ = run(snap, make_pod("vip", "1", priority=10))
    assert (r.node_name, victim_names(r)) == ("new", ["rookie"])


def test_preemption_policy_never():
    snap = ClusterSnapshot([make_node("n", cpu="1")], [make_pod("low", "1", priority=0, node="n")])
    pod = make_pod("polite", "1", priority=100, preemptionPolicy="Never")
    r, result = run(snap, pod)
    assert r.node_name is None and r.victims == []
    assert failure_message(result, 1, r.message) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
    # The same pod with the default policy would preempt.
    assert run(snap, make_pod("rude", "1", priority=100))[0].node_name == "n"


def test_terminating_victim_on_the_nominated_node_blocks_more_preemption():
    leaving = make_pod("leaving", "1", priority=0, node="n")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    snap = ClusterSnapshot([make_node("n", cpu="1"), make_node("m", cpu="1")],
                           [leaving, make_pod("other", "1", priority=0, node="m")])
    pod = make_pod("vip", "1", priority=100)
    pod["status"] = {"nominatedNodeName": "n"}
    r, _ = run(snap, pod)
    assert r.node_name is None
    assert r.message == "preemption: not eligible due to a terminating pod on the nominated node."


def pdb(name, labels, allowed, namespace="default", disrupted=None):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}},
            "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted or {}}}


def test_nodes_without_pdb_violations_are_preferred():
    snap = ClusterSnapshot([make_node("guarded", cpu="1"), make_node("free", cpu="1")], [
        make_pod("db-0", "1", priority=0, node="guarded", labels={"app": "db"}),
        # A higher (but still lower than the preemptor) priority victim, not covered by a PDB.
        make_pod("batch", "1", priority=5, node="free", labels={"app": "batch"}),
    ])
    budgets = [pdb("db", {"app": "db"}, allowed=0)]
    r, _ = run(snap, make_pod("vip", "1", priority=10), pdbs=budgets)
    assert (r.node_name, victim_names(r), r.num_pdb_violations) == ("free", ["batch"], 0)
    # Without the budget the lower-priority victim would be chosen.
    r2, _ = run(snap, make_pod("vip", "1", priority=10))
    assert r2.node_name == "guarded"
    # A budget with room, another namespace, or a pod already counted as disrupted doesn't protect.
    for budgets in ([pdb("db", {"app": "db"}, allowed=1)], [pdb("db", {"app": "db"}, 0, namespace="other")],
                    [pdb("db", {"app": "db"}, 0, disrupted={"db-0": "2024-01-01T00:00:00Z"})]):
        assert run(snap, make_pod("vip", "1", priority=10), pdbs=budgets)[0].node_name == "guarded"


def test_violating_candidates_are_used_when_nothing_else_works():
    snap = ClusterSnapshot([make_node("guarded", cpu="1")],
                           [make_pod("db-0", "1", priority=0, node="guarded", labels={"app": "db"})])
    r, _ = run(snap, make_pod("vip", "1", priority=10), pdbs=[pdb("db", {"app": "db"}, allowed=0)])
    assert (r.node_name, victim_names(r), r.num_pdb_violations) == ("guarded", ["db-0"], 1)


def test_pdb_protected_pods_are_reprieved_first():
    snap = ClusterSnapshot([make_node("n", cpu="2")], [
        make_pod("protected", "1", priority=1, node="n", labels={"app": "db"}),
        make_pod("unprotected", "1", priority=2, node="n", labels={"app": "web"}),
    ])
    r, _ = run(snap, make_pod("vip", "1", priority=10), pdbs=[pdb("db", {"app": "db"}, allowed=0)])
    # The PDB-covered pod gets its place back first, so the higher-priority one is evicted.
    assert (victim_names(r), r.num_pdb_violations) == (["unprotected"], 0)


def test_preemption_resolves_anti_affinity_through_pre_filter_updates():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOST}]}}
    snap = ClusterSnapshot([make_node("a", cpu="8"), make_node("b", cpu="8")], [
        make_pod("web-low", "100m", priority=1, node="a", labels={"app": "web"}),
        make_pod("web-high", "100m", priority=50, node="b", labels={"app": "web"}),
        make_pod("filler", "100m", priority=1, node="a", labels={"app": "other"}),
    ])
    pod = make_pod("web-vip", "100m", priority=10, labels={"app": "web"}, affinity=anti)
    r, result = run(snap, pod)
    assert result.statuses["a"].reasons == ("node(s) didn't match pod anti-affinity rules",)
    # Only the conflicting pod goes; the unrelated filler is reprieved.
    assert (r.node_name, victim_names(r)) == ("a", ["web-low"])


def test_preemption_respects_topology_spread_counts():
    spread = [{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    snap = ClusterSnapshot([make_node("a", cpu="2"), make_node("b", cpu="2")], [
        make_pod("w1", "1", priority=3, node="a", labels={"app": "web"}),
        make_pod("filler", "2", priority=1, node="b"),
    ])
    pod = make_pod("w2", "1", priority=10, labels={"app": "web"}, topologySpreadConstraints=spread)
    r, result = run(snap, pod)
    assert result.statuses["a"].reasons == ("node(s) didn't match pod topology spread constraints",)
    assert result.statuses["b"].reasons == ("Insufficient cpu",)
    # On a, evicting w1 removes it from the spread counts (the pre-filter state follows the victims).
    by_node = {c.node_name: [v.name for v in c.victims] for c in r.candidates}
    assert by_node == {"a": ["w1"], "b": ["filler"]}
    assert (r.node_name, victim_names(r)) == ("b", ["filler"])  # the lower-priority victim


def test_preempt_without_a_prior_result_and_rng_offset():
    snap = ClusterSnapshot([make_node(f"n{i}", cpu="1") for i in range(5)],
                           [make_pod(f"low{i}", "1", priority=0, node=f"n{i}") for i in range(5)])
    r = preempt(Profile.default(), make_pod("vip", "1", priority=5), snap)
    assert r.node_name is not None and len(r.victims) == 1
    assert len(r.candidates) == 5
    r2 = preempt(Profile.default(), make_pod("vip", "1", priority=5), snap, rng=random.Random(3))
    assert r2.node_name in {f"n{i}" for i in range(5)}


def test_candidate_limits():
    assert num_candidates(50) == 50
    assert num_candidates(500) == 100
    assert num_candidates(5000) == 500
    assert pick_one_node_for_preemption([]) is None
    # The dry run stops once enough clean candidates are found.
    prof = Profile({"pluginConfig": [{"name": "DefaultPreemption",
                                      "args": {"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 2}}]})
    snap = ClusterSnapshot([make_node(f"n{i}", cpu="1") for i in range(6)],
                           [make_pod(f"low{i}", "1", priority=0, node=f"n{i}") for i in range(6)])
    r = preempt(prof, make_pod("vip", "1", priority=5), snap)
    assert len(r.candidates) == 2


def test_profile_post_filter_runs_preemption():
    snap = ClusterSnapshot([make_node("n", cpu="1")], [make_pod("low", "1", priority=0, node="n")])
    prof = Profile.default()
    pod = make_pod("vip", "1", priority=5)
    result = schedule_one(prof, pod, snap, random.Random(0))
    out = prof.run_post_filter(pod, snap, result)
    assert (out.node_name, victim_names(out)) == ("n", ["low"])
    no_preemption = Profile({"plugins": {"postFilter": {"disabled": [{"name": "DefaultPreemption"}]}}})
    assert no_preemption.run_post_filter(pod, snap, schedule_one(no_preemption, pod, snap)) is None
