"""Scheduler profiles (KubeSchedulerConfiguration), one scheduling cycle, and the
FailedScheduling message."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pinnace.scheduler.framework import (
    Code,
    CycleState,
    Profile,
    ScheduleResult,
    Status,
    failure_message,
    load_config,
    num_feasible_nodes_to_find,
    profiles_from_config,
    schedule_one,
)
from pinnace.scheduler.model import ClusterSnapshot
from pinnace.scheduler.plugins.node_resources_fit import MOST_ALLOCATED
from pinnace.scheduler.preemption import preempt


def make_node(name, cpu="4", memory="8Gi", pods="110", labels=None, taints=None):
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}
    return node


def make_pod(name, cpu=None, memory=None, node=None, namespace="default", **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    c = {"name": "c", "image": "pause"}
    if requests:
        c["resources"] = {"requests": requests}
    pod = {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
           "spec": {"containers": [c], **spec}}
    if node:
        pod["spec"]["nodeName"] = node
    return pod


CONTROL_PLANE = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]


# -- configuration ----------------------------------------------------------------------------


def names(plugins):
    return [p.name for p in plugins]


def test_default_profile_plugins_and_weights():
    prof = Profile.default()
    assert prof.scheduler_name == "default-scheduler"
    assert names(prof.filter_plugins) == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit",
        "PodTopologySpread", "InterPodAffinity"]
    assert {p.name: w for p, w in prof.score_plugins} == {
        "TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1, "PodTopologySpread": 2,
        "InterPodAffinity": 2, "NodeResourcesBalancedAllocation": 1, "ImageLocality": 1}
    assert names(prof.post_filter_plugins) == ["DefaultPreemption"]
    assert prof.percentage_of_nodes_to_score == 0


def test_load_config_profiles_weights_and_args():
    cfg = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": 30,
        "profiles": [
            {"schedulerName": "default-scheduler"},
            {
                "schedulerName": "bin-packer",
                "percentageOfNodesToScore": 70,
                "plugins": {
                    "score": {
                        "enabled": [{"name": "NodeResourcesFit", "weight": 5}, {"name": "SelectorSpread"}],
                        "disabled": [{"name": "NodeResourcesBalancedAllocation"}, {"name": "ImageLocality"}],
                    },
                    "filter": {"disabled": [{"name": "NodePorts"}]},
                    "multiPoint": {"enabled": [{"name": "VolumeBinding"}]},  # real, not implemented: ignored
                },
                "pluginConfig": [{"name": "NodeResourcesFit", "args": {
                    "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "NodeResourcesFitArgs",
                    "scoringStrategy": {"type": "MostAllocated"}}}],
            },
        ],
    }
    profiles = load_config(cfg)
    assert list(profiles) == ["default-scheduler", "bin-packer"]
    assert profiles["default-scheduler"].percentage_of_nodes_to_score == 30
    packer = profiles["bin-packer"]
    assert packer.percentage_of_nodes_to_score == 70
    weights = {p.name: w for p, w in packer.score_plugins}
    # The score point's own entry overrides multiPoint and comes first; SelectorSpread (weight 0 -> 1) is appended.
    assert names(p for p, _ in packer.score_plugins) == [
        "NodeResourcesFit", "TaintToleration", "NodeAffinity", "PodTopologySpread", "InterPodAffinity",
        "SelectorSpread"]
    assert weights["NodeResourcesFit"] == 5 and weights["SelectorSpread"] == 1 and weights["TaintToleration"] == 3
    assert "NodePorts" not in names(packer.filter_plugins)
    assert "NodePorts" in names(packer.pre_filter_plugins)  # disabled only at the filter point
    assert packer.plugins["NodeResourcesFit"].strategy == MOST_ALLOCATED
    assert [p.scheduler_name for p in profiles_from_config(cfg)] == ["default-scheduler", "bin-packer"]


def test_disable_all_and_multipoint_overrides():
    prof = Profile({"plugins": {"filter": {"disabled": [{"name": "*"}], "enabled": [{"name": "NodeName"}]},
                                "multiPoint": {"disabled": [{"name": "ImageLocality"}],
                                               "enabled": [{"name": "TaintToleration", "weight": 7}]}}})
    assert names(prof.filter_plugins) == ["NodeName"]
    weights = {p.name: w for p, w in prof.score_plugins}
    assert weights["TaintToleration"] == 7 and "ImageLocality" not in weights
    bare = Profile({"plugins": {"multiPoint": {"disabled": [{"name": "*"}],
                                               "enabled": [{"name": "NodeResourcesFit"}]}}})
    assert names(bare.filter_plugins) == ["NodeResourcesFit"]
    assert [(p.name, w) for p, w in bare.score_plugins] == [("NodeResourcesFit", 1)]


@pytest.mark.parametrize("cfg", [
    {"apiVersion": "kubescheduler.config.k8s.io/v1beta1"},
    {"kind": "Pod"},
    {"profiles": [{"plugins": {"score": {"enabled": [{"name": "NoSuchPlugin"}]}}}]},
    {"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodeName"}]}}}]},  # not a score plugin
    {"profiles": [{}, {}]},  # two default-scheduler profiles
    {"profiles": [{"percentageOfNodesToScore": 120}]},
    {"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "Nope"}}}]}]},
])
def test_invalid_configurations(cfg):
    with pytest.raises(ValueError):
        load_config(cfg)


# -- one cycle ------------------------------------------------------------------------------------------


def test_schedule_one_picks_the_best_node():
    snap = ClusterSnapshot(
        [make_node("busy"), make_node("idle"), make_node("cp", taints=CONTROL_PLANE)],
        [make_pod("x", cpu="3", memory="6Gi", node="busy")],
    )
    r = schedule_one(Profile.default(), make_pod("p", cpu="500m", memory="1Gi"), snap, random.Random(0))
    assert r.node_name == "idle"
    assert r.feasible_nodes == 2 and set(r.statuses) == {"cp"}
    assert r.scores["idle"] > r.scores["busy"]
    # MostAllocated packs onto the busy node instead.
    packer = Profile({"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
        "type": "MostAllocated"}}}], "plugins": {"score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}]}}})
    assert schedule_one(packer, make_pod("p", cpu="500m", memory="1Gi"), snap, random.Random(0)).node_name == "busy"


def test_weights_decide_between_plugins():
    # "pref" is preferred by node affinity (weight 2 x 100) but busier (NodeResourcesFit, weight 1).
    snap = ClusterSnapshot([make_node("pref", labels={"disk": "ssd"}), make_node("free")],
                           [make_pod("x", cpu="2", memory="4Gi", node="pref")])
    pod = make_pod("p", cpu="1", memory="1Gi", affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}})
    assert schedule_one(Profile.default(), pod, snap, random.Random(0)).node_name == "pref"
    no_affinity_weight = Profile({"plugins": {"score": {"disabled": [{"name": "NodeAffinity"}]}}})
    assert schedule_one(no_affinity_weight, pod, snap, random.Random(0)).node_name == "free"


def test_ties_are_broken_with_the_rng():
    snap = ClusterSnapshot([make_node(f"n{i}") for i in range(5)])
    pod = make_pod("p", cpu="100m", memory="100Mi")
    prof = Profile.default()
    a = [schedule_one(prof, pod, snap, random.Random(42)).node_name for _ in range(3)]
    assert len(set(a)) == 1  # same seed, same choice
    picks = Counter(schedule_one(prof, pod, snap, random.Random(seed)).node_name for seed in range(400))
    assert set(picks) == {f"n{i}" for i in range(5)}  # every tied node gets picked
    assert min(picks.values()) > 40  # roughly uniform (80 expected each)


def test_single_feasible_node_skips_scoring():
    snap = ClusterSnapshot([make_node("small", cpu="1"), make_node("big", cpu="8")])
    r = schedule_one(Profile.default(), make_pod("p", cpu="2"), snap, random.Random(0))
    assert r.node_name == "big" and r.feasible_nodes == 1 and r.scores == {}
    assert r.statuses["small"].reasons == ("Insufficient cpu",)
    assert r.statuses["small"].plugin == "NodeResourcesFit"


def test_num_feasible_nodes_to_find():
    assert num_feasible_nodes_to_find(0, 50) == 50  # small clusters: all
    assert num_feasible_nodes_to_find(0, 1000) == 420  # adaptive: 50% - 1000/125 = 42%
    assert num_feasible_nodes_to_find(0, 5000) == 500  # 10%
    assert num_feasible_nodes_to_find(0, 6000) == 300  # floor of 5%
    assert num_feasible_nodes_to_find(10, 500) == 100  # never fewer than 100
    assert num_feasible_nodes_to_find(100, 500) == 500


def test_percentage_of_nodes_to_score_and_rotating_start():
    snap = ClusterSnapshot([make_node(f"n{i:03d}") for i in range(300)])
    prof = Profile({"percentageOfNodesToScore": 50})
    pod = make_pod("p", cpu="100m")
    r = schedule_one(prof, pod, snap, random.Random(0))
    assert r.feasible_nodes == 150 and r.evaluated_nodes == 150
    assert prof.next_start_node_index == 150
    r2 = schedule_one(prof, pod, snap, random.Random(0))
    assert r2.feasible_nodes == 150 and prof.next_start_node_index == 0  # wrapped around
    # Rejected nodes count as processed too.
    snap2 = ClusterSnapshot([make_node(f"s{i:03d}", cpu="100m") for i in range(100)]
                            + [make_node(f"n{i:03d}") for i in range(200)])
    prof2 = Profile({"percentageOfNodesToScore": 50})
    r3 = schedule_one(prof2, make_pod("p", cpu="1"), snap2, random.Random(0))
    assert (r3.feasible_nodes, len(r3.statuses), prof2.next_start_node_index) == (150, 100, 250)
    # The adaptive default on 1,000 nodes stops at 420 feasible nodes.
    big = ClusterSnapshot([make_node(f"n{i:04d}") for i in range(1000)])
    assert schedule_one(Profile.default(), pod, big, random.Random(0)).feasible_nodes == 420


def test_nominated_node_is_tried_first():
    snap = ClusterSnapshot([make_node("a"), make_node("b", cpu="64")])
    pod = make_pod("p", cpu="1")
    pod["status"] = {"nominatedNodeName": "a"}
    r = schedule_one(Profile.default(), pod, snap, random.Random(0))
    assert r.node_name == "a" and r.evaluated_nodes == 1


def test_nominated_pods_hold_their_room():
    snap = ClusterSnapshot([make_node("a", cpu="2"), make_node("b", cpu="2")])
    high = make_pod("high", cpu="2", priority=100)
    pod = make_pod("p", cpu="2", priority=10)
    r = schedule_one(Profile.default(), pod, snap, random.Random(0), nominated={"a": [high]})
    assert r.node_name == "b"
    # A lower-priority nominee does not reserve anything against this pod.
    low = make_pod("low", cpu="2", priority=1)
    r = schedule_one(Profile.default(), pod, snap, random.Random(0), nominated={"a": [low], "b": [low]})
    assert r.node_name in ("a", "b")
    full = schedule_one(Profile.default(), pod, snap, random.Random(0), nominated={"a": [high], "b": [high]})
    assert full.node_name is None and full.statuses["a"].reasons == ("Insufficient cpu",)


def test_cycle_state_clone_is_independent():
    state = CycleState()
    snap = ClusterSnapshot([make_node("a")], [make_pod("x", node="a")])
    anti = make_pod("p", affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {}, "topologyKey": "kubernetes.io/hostname"}]}})
    prof = Profile.default()
    state = CycleState(snap)
    prof.run_pre_filter(state, anti, snap)
    copy = state.clone()
    victim = snap.get("a").pods[0]
    prof.run_remove_pod(copy, anti, victim, snap.get("a"))
    assert state["InterPodAffinity"].anti_counts != copy["InterPodAffinity"].anti_counts


# -- the FailedScheduling message ----------------------------------------------------------------------------


def test_failure_message_counts_and_sorts_reasons_like_kubernetes():
    snap = ClusterSnapshot([make_node(f"w{i}", cpu="2") for i in range(3)]
                           + [make_node(f"cp{i}", taints=CONTROL_PLANE) for i in range(2)])
    prof = Profile.default()
    pod = make_pod("big", cpu="3")
    r = schedule_one(prof, pod, snap, random.Random(0))
    assert r.node_name is None
    pre = preempt(prof, pod, snap, r)
    assert failure_message(r, 5, pre.message) == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "3 Insufficient cpu. preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, "
        "3 No preemption victims found for incoming pod.")
    assert failure_message(r) == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "3 Insufficient cpu.")


def test_failure_message_when_preemption_cannot_help():
    snap = ClusterSnapshot([make_node(f"n{i}", labels={"disk": "hdd"}) for i in range(3)]
                           + [make_node(f"cp{i}", taints=CONTROL_PLANE) for i in range(2)])
    prof = Profile.default()
    pod = make_pod("p", nodeSelector={"disk": "ssd"})
    r = schedule_one(prof, pod, snap, random.Random(0))
    assert failure_message(r, 5, preempt(prof, pod, snap, r).message) == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.")


def test_failure_message_several_reasons_per_node_and_string_sorting():
    snap = ClusterSnapshot([make_node(f"n{i:02d}", cpu="1", memory="1Gi") for i in range(10)]
                           + [make_node("tainted", taints=[{"key": "a", "value": "b", "effect": "NoExecute"}])])
    r = schedule_one(Profile.default(), make_pod("p", cpu="2", memory="2Gi"), snap, random.Random(0))
    # Each node counts once per reason; "10 ..." sorts before "1 ..." as strings do.
    assert failure_message(r) == (
        "0/11 nodes are available: 1 node(s) had untolerated taint {a: b}, 10 Insufficient cpu, "
        "10 Insufficient memory.")
    assert sorted(["10 Insufficient cpu", "1 node(s) x"]) == ["1 node(s) x", "10 Insufficient cpu"]


def test_failure_message_pre_filter_rejection_and_narrowing():
    snap = ClusterSnapshot([make_node("n1", cpu="1"), make_node("n2"), make_node("n3")])
    prof = Profile.default()

    def pinned(*terms):
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": list(t)}]} for t in terms]}}}

    conflict = make_pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]},
            {"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}})
    r = schedule_one(prof, conflict, snap, random.Random(0))
    assert r.node_name is None and r.statuses == {}
    assert failure_message(r) == "0/3 nodes are available: pod affinity terms conflict."
    assert failure_message(r, 3, preempt(prof, conflict, snap, r).message).endswith(
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")

    narrowed = make_pod("p", cpu="2", affinity=pinned(["n1"]))
    r = schedule_one(prof, narrowed, snap, random.Random(0))
    assert r.evaluated_nodes == 1
    assert failure_message(r) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity].")
    assert schedule_one(prof, make_pod("p", affinity=pinned(["n2"], ["n3"])), snap, random.Random(0)).node_name in (
        "n2", "n3")


def test_failure_message_without_nodes():
    r = schedule_one(Profile.default(), make_pod("p"), ClusterSnapshot(), random.Random(0))
    assert r.node_name is None
    assert failure_message(r) == "no nodes available to schedule pods"


def test_status_helpers():
    st = Status.unschedulable("Insufficient cpu", "Insufficient memory")
    assert st.message == "Insufficient cpu, Insufficient memory" and st.is_rejected and not st.is_success
    assert Status.skip().code == Code.SKIP
    assert st.with_plugin("NodeResourcesFit").plugin == "NodeResourcesFit"
    result = ScheduleResult(None, statuses={"a": st}, absent_status=Status.unresolvable("x"))
    assert result.status_of("a") is st and result.status_of("b").reasons == ("x",)
