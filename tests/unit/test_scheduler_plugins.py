"""Scheduler data model and plugins, against Kubernetes semantics (pure, no I/O)."""

from __future__ import annotations

import pytest

from pinnace.scheduler.framework import Code, CycleState, PreFilterResult, Status
from pinnace.scheduler.model import (
    DEFAULT_MEMORY_REQUEST,
    ClusterSnapshot,
    NodeInfo,
    PodInfo,
    Resources,
    pod_requests,
)
from pinnace.scheduler.plugins import (
    BalancedAllocation,
    ImageLocality,
    InterPodAffinity,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeResourcesFit,
    NodeUnschedulable,
    PodTopologySpread,
    SelectorSpread,
    TaintToleration,
)

Gi = 1024**3
Mi = 1024**2
ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


# -- builders -----------------------------------------------------------------------


def make_node(name, cpu="4", memory="8Gi", pods="110", labels=None, taints=None, unschedulable=False,
              images=None, **extra_alloc):
    labels = {HOST: name, **(labels or {})}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {}, "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **extra_alloc}}}
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    if images:
        node["status"]["images"] = [{"names": names, "sizeBytes": size} for names, size in images]
    return node


def container(name="c", cpu=None, memory=None, ports=None, image="registry.k8s.io/pause:3.10", **extra):
    c = {"name": name, "image": image, **extra}
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    if requests:
        c["resources"] = {"requests": requests}
    if ports:
        c["ports"] = ports
    return c


def make_pod(name, namespace="default", cpu=None, memory=None, labels=None, node=None, containers=None,
             uid=None, **spec):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                        "labels": labels or {}},
           "spec": {"containers": containers or [container(cpu=cpu, memory=memory)], **spec}}
    if node:
        pod["spec"]["nodeName"] = node
    return pod


def state_for(pod, snapshot=None):
    return CycleState(snapshot or ClusterSnapshot(), PodInfo(pod))


def run_filter(plugin, pod, node_name, snapshot):
    """pre_filter then filter on one node, as the framework would (None = fits)."""
    state = state_for(pod, snapshot)
    if hasattr(plugin, "pre_filter"):
        r = plugin.pre_filter(state, pod, snapshot)
        if isinstance(r, Status):
            if r.code == Code.SKIP:
                return None
            return r
    return plugin.filter(state, pod, snapshot.get(node_name))


def feasible(plugin, pod, snapshot):
    return sorted(ni.name for ni in snapshot.list() if run_filter(plugin, pod, ni.name, snapshot) is None)


def run_scores(plugin, pod, snapshot, nodes=None):
    """pre_score, score and normalize over ``nodes`` (default: all) -> {name: score}."""
    state = state_for(pod, snapshot)
    infos = [snapshot.get(n) for n in nodes] if nodes else snapshot.list()
    if hasattr(plugin, "pre_score"):
        st = plugin.pre_score(state, pod, infos)
        if st is not None and st.code == Code.SKIP:
            return dict.fromkeys((ni.name for ni in infos), 0)
    scores = {ni.name: plugin.score(state, pod, ni) for ni in infos}
    if hasattr(plugin, "normalize"):
        plugin.normalize(state, pod, scores)
    return scores


# -- resources and pod requests -------------------------------------------------------


def test_quantities_parse_like_kubernetes():
    r = Resources.from_list({"cpu": "1.5", "memory": "1Gi", "ephemeral-storage": "10G", "pods": "110",
                             "nvidia.com/gpu": "2", "hugepages-2Mi": "4Mi", "storage": "1Gi"})
    assert (r.milli_cpu, r.memory, r.ephemeral_storage, r.pods) == (1500, Gi, 10**10, 110)
    assert r.scalar == {"nvidia.com/gpu": 2, "hugepages-2Mi": 4 * Mi}  # "storage" is no node resource
    # Sub-milli cpu and fractional bytes round up, as MilliValue()/Value() do.
    assert Resources.from_list({"cpu": "0.1m", "memory": "0.5"}).milli_cpu == 1
    assert Resources.from_list({"memory": "0.5"}).memory == 1
    assert Resources.from_list({"memory": "129e6", "cpu": 2}).memory == 129_000_000


def test_pod_requests_sum_containers_and_max_init_containers():
    # The example in NodeResourcesFit's computePodResourceRequest comment.
    pod = make_pod("p", containers=[container("c1", "2", "1G"), container("c2", "1", "1G")],
                   initContainers=[container("i1", "2", "1G"), container("i2", "2", "3G")])
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (3000, 3 * 10**9)


def test_pod_requests_sidecars_add_to_sum_and_to_later_init_peaks():
    # A sidecar (restartPolicy: Always) keeps running: it adds to the containers' sum
    # and to the peak of every init container that starts after it (KEP-753).
    sidecar = container("proxy", "500m", "64Mi", restartPolicy="Always")
    pod = make_pod("p", containers=[container("app", "1", "128Mi")],
                   initContainers=[sidecar, container("migrate", "2", "32Mi")])
    r = pod_requests(pod)
    assert r.milli_cpu == 2500  # migrate (2) runs next to the sidecar (0.5) > app + sidecar (1.5)
    assert r.memory == 192 * Mi  # app + sidecar
    # An init container that runs before the sidecar starts does not overlap with it.
    pod = make_pod("p", containers=[container("app", "1")],
                   initContainers=[container("setup", "3"), container("proxy", "500m", restartPolicy="Always")])
    assert pod_requests(pod).milli_cpu == 3000


def test_pod_requests_overhead_missing_requests_and_non_zero_defaults():
    pod = make_pod("p", containers=[container("a", "250m"), container("b")], overhead={"cpu": "100m", "memory": "10Mi"})
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (350, 10 * Mi)  # missing requests count as zero
    # Limits without requests: the API server would have defaulted requests; absent ones stay zero here.
    limited = make_pod("l", containers=[{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}])
    assert pod_requests(limited).is_zero()
    # For scoring, a missing cpu/memory request counts as 100m / 200Mi per container.
    nz = pod_requests(pod, non_missing=True)
    assert (nz.milli_cpu, nz.memory) == (250 + 100 + 100, 2 * DEFAULT_MEMORY_REQUEST + 10 * Mi)
    explicit_zero = make_pod("z", containers=[container("c", "0", "0")])
    assert pod_requests(explicit_zero, non_missing=True).milli_cpu == 0


def test_pod_requests_extended_resources():
    pod = make_pod("p", containers=[{"name": "c", "image": "x",
                                     "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}}] * 2)
    assert pod_requests(pod).scalar == {"nvidia.com/gpu": 2}


def test_node_info_aggregates_are_incremental():
    ni = NodeInfo(make_node("n1", cpu="4"))
    p1 = make_pod("a", cpu="1", memory="1Gi", containers=[container(cpu="1", memory="1Gi",
                                                                     ports=[{"containerPort": 80, "hostPort": 8080}])])
    p2 = make_pod("b")  # no requests: 0 requested, but 100m/200Mi non-zero
    ni.add_pod(p1)
    ni.add_pod(p2)
    assert (ni.requested.milli_cpu, ni.requested.memory) == (1000, Gi)
    assert (ni.non0_cpu, ni.non0_mem) == (1100, Gi + DEFAULT_MEMORY_REQUEST)
    assert ("0.0.0.0", "TCP", 8080) in ni.used_ports
    clone = ni.clone()
    assert ni.remove_pod(p1) is not None
    assert ni.requested.milli_cpu == 0 and not ni.used_ports and len(ni.pods) == 1
    assert clone.requested.milli_cpu == 1000 and len(clone.pods) == 2  # the copy is independent
    assert ni.remove_pod(p1) is None


def test_snapshot_tracks_pods_nodes_and_ghosts():
    snap = ClusterSnapshot([make_node("n1")], [make_pod("a", node="n1", cpu="1"), make_pod("pending")])
    assert [p.key for p in snap.get("n1").pods] == ["default/a"]
    snap.add_pod(make_pod("early", node="n2", cpu="1"))  # its node is not known yet
    assert snap.get("n2") is None and len(snap) == 1
    snap.add_node(make_node("n2"))
    assert snap.get("n2").requested.milli_cpu == 1000
    assert snap.topology_domains(HOST) == {"n1": ["n1"], "n2": ["n2"]}
    snap.remove_pod(make_pod("a", node="n1"))
    assert snap.get("n1").pods == []
    snap.remove_node("n1")
    assert [ni.name for ni in snap.list()] == ["n2"]


# -- NodeName, NodeUnschedulable -------------------------------------------------------------


def test_node_name():
    snap = ClusterSnapshot([make_node("n1"), make_node("n2")])
    pl = NodeName()
    st = run_filter(pl, make_pod("p", nodeName="n1"), "n2", snap)
    assert st.reasons == ("node(s) didn't match the requested node name",)
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert run_filter(pl, make_pod("p", nodeName="n1"), "n1", snap) is None
    assert feasible(pl, make_pod("p"), snap) == ["n1", "n2"]


def test_node_unschedulable_honours_the_cordon_toleration():
    snap = ClusterSnapshot([make_node("cordoned", unschedulable=True), make_node("ok")])
    pl = NodeUnschedulable()
    st = run_filter(pl, make_pod("p"), "cordoned", snap)
    assert st.reasons == ("node(s) were unschedulable",) and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    tolerating = make_pod("ds", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                             "effect": "NoSchedule"}])
    assert run_filter(pl, tolerating, "cordoned", snap) is None
    everything = make_pod("all", tolerations=[{"operator": "Exists"}])
    assert run_filter(pl, everything, "cordoned", snap) is None
    wrong_effect = make_pod("w", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                               "effect": "NoExecute"}])
    assert run_filter(pl, wrong_effect, "cordoned", snap) is not None


# -- NodeResourcesFit -------------------------------------------------------------------------------


def test_fit_reports_every_insufficient_resource():
    snap = ClusterSnapshot(
        [make_node("small", cpu="1", memory="1Gi", **{"ephemeral-storage": "1Gi", "example.com/foo": "1"})],
        [make_pod("existing", node="small", cpu="500m", memory="512Mi")],
    )
    pl = NodeResourcesFit()
    assert run_filter(pl, make_pod("fits", cpu="500m", memory="512Mi"), "small", snap) is None
    st = run_filter(pl, make_pod("big", cpu="600m", memory="600Mi"), "small", snap)
    assert st.code == Code.UNSCHEDULABLE  # preemption may help
    assert st.reasons == ("Insufficient cpu", "Insufficient memory")
    eph = make_pod("eph", containers=[{"name": "c", "image": "x", "resources": {
        "requests": {"ephemeral-storage": "2Gi", "example.com/foo": "2"}}}])
    assert run_filter(pl, eph, "small", snap).reasons == (
        "Insufficient ephemeral-storage", "Insufficient example.com/foo")
    # ignoredResources skips extended resources only.
    assert run_filter(NodeResourcesFit({"ignoredResources": ["example.com/foo"]}), eph, "small", snap).reasons == (
        "Insufficient ephemeral-storage",)
    assert run_filter(NodeResourcesFit({"ignoredResourceGroups": ["example.com"]}), eph, "small", snap).reasons == (
        "Insufficient ephemeral-storage",)


def test_fit_counts_pods_even_for_pods_without_requests():
    snap = ClusterSnapshot([make_node("n", pods="2")], [make_pod("a", node="n"), make_pod("b", node="n")])
    st = run_filter(NodeResourcesFit(), make_pod("c"), "n", snap)
    assert st.reasons == ("Too many pods",)
    # A best-effort pod fits a node whose cpu is fully requested.
    full = ClusterSnapshot([make_node("n", cpu="1")], [make_pod("a", node="n", cpu="1")])
    assert run_filter(NodeResourcesFit(), make_pod("c"), "n", full) is None


def test_fit_uses_init_container_peak():
    snap = ClusterSnapshot([make_node("n", cpu="2")])
    pod = make_pod("p", containers=[container(cpu="500m")], initContainers=[container("init", cpu="3")])
    assert run_filter(NodeResourcesFit(), pod, "n", snap).reasons == ("Insufficient cpu",)


def _alloc_snapshot():
    return ClusterSnapshot(
        [make_node("busy", cpu="4", memory="8Gi"), make_node("empty", cpu="4", memory="8Gi")],
        [make_pod("existing", node="busy", cpu="1", memory="2Gi")],
    )


def test_least_allocated_prefers_the_emptier_node():
    pod = make_pod("p", cpu="1", memory="2Gi")
    # busy: (4-2)/4 cpu and (8-4)/8 memory -> 50; empty: (4-1)/4, (8-2)/8 -> 75.
    assert run_scores(NodeResourcesFit(), pod, _alloc_snapshot()) == {"busy": 50, "empty": 75}


def test_most_allocated_packs():
    pl = NodeResourcesFit({"scoringStrategy": {"type": "MostAllocated"}})
    assert run_scores(pl, make_pod("p", cpu="1", memory="2Gi"), _alloc_snapshot()) == {"busy": 50, "empty": 25}


def test_resource_weights_and_non_zero_defaults_in_scores():
    pl = NodeResourcesFit({"scoringStrategy": {
        "type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}})
    snap = ClusterSnapshot([make_node("a", cpu="4", memory="8Gi")], [make_pod("x", node="a", cpu="2")])
    # cpu: (4000-2000-1000)/4000 -> 25; memory: (8Gi - 200Mi(default for x) - 2Gi)/8Gi -> 72.
    assert run_scores(pl, make_pod("p", cpu="1", memory="2Gi"), snap) == {"a": (25 * 3 + 72) // 4}
    # A pod without requests is scored as 100m / 200Mi.
    small = ClusterSnapshot([make_node("n", cpu="1000m", memory="1000Mi")])
    assert run_scores(NodeResourcesFit(), make_pod("p"), small) == {"n": (90 + 80) // 2}


def test_requested_to_capacity_ratio():
    pl = NodeResourcesFit({"scoringStrategy": {
        "type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}})
    # Utilisation after placing: busy 50% cpu and memory -> 50; empty 25% -> 25 (a bin-packing curve).
    assert run_scores(pl, make_pod("p", cpu="1", memory="2Gi"), _alloc_snapshot()) == {"busy": 50, "empty": 25}


def test_balanced_allocation():
    snap = ClusterSnapshot([make_node("n", cpu="4", memory="8Gi"), make_node("m", cpu="4", memory="8Gi")],
                           [make_pod("x", node="m", memory="3Gi")])
    pod = make_pod("p", cpu="1", memory="1Gi")
    # n: cpu 1/4, memory 1/8 -> std 0.0625 -> 93;  m: cpu 1/4, memory 4/8 -> std 0.125 -> 87.
    assert run_scores(BalancedAllocation(), pod, snap) == {"n": 93, "m": 87}
    # Real requests, not the 100m/200Mi defaults: an empty pod on an empty node is perfectly balanced.
    assert run_scores(BalancedAllocation(), make_pod("e"), snap)["n"] == 100
    three = BalancedAllocation({"resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1},
                                              {"name": "ephemeral-storage", "weight": 1}]})
    snap3 = ClusterSnapshot([make_node("n", cpu="4", memory="8Gi", **{"ephemeral-storage": "4Gi"})])
    pod3 = make_pod("p", containers=[{"name": "c", "image": "x", "resources": {"requests": {
        "cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"}}}])
    # fractions 0.5, 0.25, 0.25: mean 1/3, std = sqrt(((1/6)^2 + 2*(1/12)^2)/3) = 0.1178 -> 88.
    assert run_scores(three, pod3, snap3) == {"n": 88}


# -- NodeAffinity ----------------------------------------------------------------------------------


def _zoned_nodes():
    return ClusterSnapshot([
        make_node("a1", labels={ZONE: "a", "disk": "ssd", "cores": "8"}),
        make_node("a2", labels={ZONE: "a", "cores": "2"}),
        make_node("b1", labels={ZONE: "b", "disk": "hdd", "cores": "16", "gpu": "true"}),
        make_node("c1", labels={ZONE: "c"}),
    ])


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    e = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def test_node_selector_and_required_affinity():
    snap = _zoned_nodes()
    pl = NodeAffinity()
    assert feasible(pl, make_pod("p", nodeSelector={"disk": "ssd"}), snap) == ["a1"]
    st = run_filter(pl, make_pod("p", nodeSelector={"disk": "ssd"}), "b1", snap)
    assert st.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE

    def match(*terms, **spec):
        return feasible(pl, make_pod("p", affinity=required(*terms), **spec), snap)

    assert match({"matchExpressions": [expr(ZONE, "In", "a", "b")]}) == ["a1", "a2", "b1"]
    assert match({"matchExpressions": [expr(ZONE, "NotIn", "a")]}) == ["b1", "c1"]
    assert match({"matchExpressions": [expr("disk", "Exists")]}) == ["a1", "b1"]
    assert match({"matchExpressions": [expr("disk", "DoesNotExist")]}) == ["a2", "c1"]
    assert match({"matchExpressions": [expr("cores", "Gt", "4")]}) == ["a1", "b1"]
    assert match({"matchExpressions": [expr("cores", "Lt", "4")]}) == ["a2"]
    # Expressions in a term are ANDed, terms are ORed.
    assert match({"matchExpressions": [expr(ZONE, "In", "a"), expr("disk", "Exists")]},
                 {"matchExpressions": [expr("gpu", "In", "true")]}) == ["a1", "b1"]
    assert match({"matchFields": [expr("metadata.name", "In", "c1")]}) == ["c1"]
    assert match({"matchFields": [expr("metadata.name", "NotIn", "c1")]}) == ["a1", "a2", "b1"]
    # nodeSelector and affinity must both hold.
    assert match({"matchExpressions": [expr(ZONE, "In", "a")]}, nodeSelector={"cores": "2"}) == ["a2"]
    # An empty term selects nothing; an unparseable one (Gt with a word) too, without spoiling the others.
    assert match({}) == []
    assert match({"matchExpressions": [expr("cores", "Gt", "many")]},
                 {"matchExpressions": [expr("gpu", "Exists")]}) == ["b1"]


def test_node_affinity_pre_filter_narrows_by_node_name():
    snap = _zoned_nodes()
    pl = NodeAffinity()
    pod = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "a1", "b1")]},
                                          {"matchFields": [expr("metadata.name", "In", "c1")]}))
    assert pl.pre_filter(state_for(pod, snap), pod, snap) == PreFilterResult({"a1", "b1", "c1"})
    conflict = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "a1"),
                                                                expr("metadata.name", "In", "b1")]}))
    st = pl.pre_filter(state_for(conflict, snap), conflict, snap)
    assert st.reasons == ("pod affinity terms conflict",)
    # A term without a name pin allows every node.
    loose = make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "a1")]},
                                            {"matchExpressions": [expr(ZONE, "In", "c")]}))
    assert pl.pre_filter(state_for(loose, snap), loose, snap) is None
    assert pl.pre_filter(state_for(make_pod("p"), snap), make_pod("p"), snap).code == Code.SKIP


def test_node_affinity_preferred_scoring_is_normalized():
    snap = _zoned_nodes()
    pod = make_pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [expr(ZONE, "In", "a")]}},
        {"weight": 1, "preference": {"matchExpressions": [expr("disk", "Exists")]}},
        {"weight": 0, "preference": {"matchExpressions": [expr(ZONE, "In", "c")]}},  # weight 0 is ignored
    ]}})
    # a1: 3, a2: 2, b1: 1, c1: 0 -> scaled so that the best is 100.
    assert run_scores(NodeAffinity(), pod, snap) == {"a1": 100, "a2": 66, "b1": 33, "c1": 0}
    assert run_scores(NodeAffinity(), make_pod("plain"), snap) == dict.fromkeys(["a1", "a2", "b1", "c1"], 0)


def test_added_affinity_from_plugin_args():
    pl = NodeAffinity({"addedAffinity": required({"matchExpressions": [expr(ZONE, "In", "b")]})["nodeAffinity"]})
    st = run_filter(pl, make_pod("p"), "a1", _zoned_nodes())
    assert st.reasons == ("node(s) didn't match scheduler-enforced node affinity",)
    assert feasible(pl, make_pod("p"), _zoned_nodes()) == ["b1"]


# -- TaintToleration ----------------------------------------------------------------------------------


def taint(key, value=None, effect="NoSchedule"):
    t = {"key": key, "effect": effect}
    if value is not None:
        t["value"] = value
    return t


def test_untolerated_taints_filter_with_the_kubernetes_message():
    snap = ClusterSnapshot([
        make_node("cp", taints=[taint("node-role.kubernetes.io/control-plane")]),
        make_node("gpu", taints=[taint("dedicated", "gpu"), taint("spot", "true", "NoExecute")]),
        make_node("soft", taints=[taint("cheap", "yes", "PreferNoSchedule")]),
    ])
    pl = TaintToleration()
    st = run_filter(pl, make_pod("p"), "cp", snap)
    assert st.reasons == ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    # The first untolerated taint is named.
    assert run_filter(pl, make_pod("p"), "gpu", snap).reasons == ("node(s) had untolerated taint {dedicated: gpu}",)
    # PreferNoSchedule never filters.
    assert run_filter(pl, make_pod("p"), "soft", snap) is None

    def fits(tolerations):
        return feasible(pl, make_pod("p", tolerations=tolerations), snap)

    assert fits([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]) == ["soft"]
    assert fits([{"key": "dedicated", "value": "gpu"},  # operator defaults to Equal, empty effect = all
                 {"key": "spot", "operator": "Exists", "effect": "NoExecute"}]) == ["gpu", "soft"]
    assert fits([{"key": "dedicated", "value": "cpu"}, {"key": "spot", "operator": "Exists"}]) == ["soft"]
    assert fits([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},  # wrong effect
                 {"key": "spot", "operator": "Exists"}]) == ["soft"]
    assert fits([{"operator": "Exists"}]) == ["cp", "gpu", "soft"]  # empty key + Exists tolerates everything
    assert fits([{"operator": "Exists", "effect": "NoSchedule"}]) == ["cp", "soft"]
    assert fits([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]) == [
        "cp", "soft"]


def test_prefer_no_schedule_taints_score_in_reverse():
    snap = ClusterSnapshot([
        make_node("two", taints=[taint("a", "1", "PreferNoSchedule"), taint("b", "1", "PreferNoSchedule")]),
        make_node("one", taints=[taint("a", "1", "PreferNoSchedule"), taint("hard", "x")]),
        make_node("none"),
    ])
    assert run_scores(TaintToleration(), make_pod("p"), snap) == {"two": 0, "one": 50, "none": 100}
    tolerating = make_pod("p", tolerations=[{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert run_scores(TaintToleration(), tolerating, snap) == {"two": 0, "one": 100, "none": 100}
    # Tolerations for another effect don't count.
    other = make_pod("p", tolerations=[{"key": "a", "operator": "Exists", "effect": "NoSchedule"}])
    assert run_scores(TaintToleration(), other, snap)["one"] == 50


# -- NodePorts -----------------------------------------------------------------------------------------


def host_port_pod(name, port, node=None, protocol=None, ip=None, sidecar=False):
    p = {"containerPort": port, "hostPort": port}
    if protocol:
        p["protocol"] = protocol
    if ip:
        p["hostIP"] = ip
    if sidecar:
        return make_pod(name, node=node, containers=[container()],
                        initContainers=[container("side", ports=[p], restartPolicy="Always")])
    return make_pod(name, node=node, containers=[container(ports=[p])])


def test_host_port_conflicts():
    snap = ClusterSnapshot([make_node("n1"), make_node("n2")], [
        host_port_pod("web", 80, "n1"),
        host_port_pod("dns", 53, "n1", protocol="UDP", ip="10.0.0.1"),
        host_port_pod("sidecar", 9090, "n2", sidecar=True),
    ])
    pl = NodePorts()
    st = run_filter(pl, host_port_pod("p", 80), "n1", snap)
    assert st.reasons == ("node(s) didn't have free ports for the requested pod ports",)
    assert st.code == Code.UNSCHEDULABLE
    assert feasible(pl, host_port_pod("p", 80), snap) == ["n2"]
    assert feasible(pl, host_port_pod("p", 80, protocol="UDP"), snap) == ["n1", "n2"]
    assert feasible(pl, host_port_pod("p", 80, ip="10.0.0.2"), snap) == ["n2"]  # 0.0.0.0 holds every address
    assert feasible(pl, host_port_pod("p", 53, protocol="UDP"), snap) == ["n2"]  # wants 0.0.0.0, clashes with 10.0.0.1
    assert feasible(pl, host_port_pod("p", 53, protocol="UDP", ip="10.0.0.2"), snap) == ["n1", "n2"]
    assert feasible(pl, host_port_pod("p", 9090), snap) == ["n1"]  # sidecars keep their ports
    assert pl.pre_filter(state_for(make_pod("p")), make_pod("p"), snap).code == Code.SKIP


# -- InterPodAffinity -------------------------------------------------------------------------------------


def pod_term(labels, topology_key, **extra):
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": topology_key, **extra}


def affinity(kind="podAffinity", required=(), preferred=()):
    block = {}
    if required:
        block["requiredDuringSchedulingIgnoredDuringExecution"] = list(required)
    if preferred:
        block["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": w, "podAffinityTerm": t} for w, t in preferred]
    return {kind: block}


def _three_zones(pods=(), namespaces=None):
    nodes = [make_node(f"{z}{i}", labels={ZONE: z}) for z in "abc" for i in (1, 2)]
    nodes.append(make_node("nozone"))
    return ClusterSnapshot(nodes, pods, namespaces=namespaces)


def test_required_pod_affinity_by_zone():
    snap = _three_zones([make_pod("db", labels={"app": "db"}, node="b1")])
    pod = make_pod("web", labels={"app": "web"}, affinity=affinity(required=[pod_term({"app": "db"}, ZONE)]))
    pl = InterPodAffinity()
    assert feasible(pl, pod, snap) == ["b1", "b2"]
    st = run_filter(pl, pod, "a1", snap)
    assert st.reasons == ("node(s) didn't match pod affinity rules",)
    assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    # Pods in other namespaces don't count unless the term says so.
    other_ns = _three_zones([make_pod("db", namespace="data", labels={"app": "db"}, node="b1")])
    assert feasible(pl, pod, other_ns) == []
    with_ns = make_pod("web", labels={"app": "web"},
                       affinity=affinity(required=[pod_term({"app": "db"}, ZONE, namespaces=["data"])]))
    assert feasible(pl, with_ns, other_ns) == ["b1", "b2"]


def test_first_pod_of_a_self_affine_group_is_let_through():
    pod = make_pod("w0", labels={"app": "web"}, affinity=affinity(required=[pod_term({"app": "web"}, ZONE)]))
    # Nothing matches anywhere yet, and the pod matches its own term: any node with the key.
    assert feasible(InterPodAffinity(), pod, _three_zones()) == ["a1", "a2", "b1", "b2", "c1", "c2"]
    # Not so for a pod that does not match its own term.
    other = make_pod("x", labels={"app": "x"}, affinity=affinity(required=[pod_term({"app": "web"}, ZONE)]))
    assert feasible(InterPodAffinity(), other, _three_zones()) == []


def test_required_anti_affinity_across_zones():
    snap = _three_zones([make_pod("web-1", labels={"app": "web"}, node="a1"),
                         make_pod("web-2", labels={"app": "web"}, node="b2")])
    pod = make_pod("web-3", labels={"app": "web"},
                   affinity=affinity("podAntiAffinity", required=[pod_term({"app": "web"}, ZONE)]))
    pl = InterPodAffinity()
    # One web pod per zone; a node without the zone label has no zone to conflict in.
    assert feasible(pl, pod, snap) == ["c1", "c2", "nozone"]
    st = run_filter(pl, pod, "a2", snap)
    assert st.reasons == ("node(s) didn't match pod anti-affinity rules",)
    assert st.code == Code.UNSCHEDULABLE


def test_existing_pods_anti_affinity_applies_to_the_incoming_pod():
    loner = make_pod("loner", labels={"app": "loner"}, node="b1",
                     affinity=affinity("podAntiAffinity", required=[pod_term({"app": "web"}, ZONE)]))
    snap = _three_zones([loner])
    pl = InterPodAffinity()
    web = make_pod("web", labels={"app": "web"})
    assert feasible(pl, web, snap) == ["a1", "a2", "c1", "c2", "nozone"]
    assert run_filter(pl, web, "b2", snap).reasons == ("node(s) didn't satisfy existing pods anti-affinity rules",)
    # The existing pod's term is namespaced to its own namespace.
    assert feasible(pl, make_pod("web", namespace="other", labels={"app": "web"}), snap) == [
        "a1", "a2", "b1", "b2", "c1", "c2", "nozone"]


def test_namespace_selector():
    namespaces = {"team-a": {"team": "a"}, "team-b": {"team": "b"}, "default": {}}
    snap = _three_zones([make_pod("db", namespace="team-a", labels={"app": "db"}, node="a1"),
                         make_pod("db", namespace="team-b", labels={"app": "db"}, node="c1")], namespaces)
    sel = pod_term({"app": "db"}, ZONE, namespaceSelector={"matchLabels": {"team": "a"}})
    pod = make_pod("web", affinity=affinity(required=[sel]))
    assert feasible(InterPodAffinity(), pod, snap) == ["a1", "a2"]
    every = pod_term({"app": "db"}, ZONE, namespaceSelector={})  # {} selects every namespace
    assert feasible(InterPodAffinity(), make_pod("web", affinity=affinity(required=[every])), snap) == [
        "a1", "a2", "c1", "c2"]
    # An existing pod's anti-affinity with a namespaceSelector reads the incoming pod's namespace labels.
    guard = make_pod("guard", namespace="team-b", node="b1", affinity=affinity("podAntiAffinity", required=[
        pod_term({"app": "web"}, ZONE, namespaceSelector={"matchLabels": {"team": "a"}})]))
    snap2 = _three_zones([guard], namespaces)
    assert "b2" not in feasible(InterPodAffinity(), make_pod("w", namespace="team-a", labels={"app": "web"}), snap2)
    assert "b2" in feasible(InterPodAffinity(), make_pod("w", namespace="team-b", labels={"app": "web"}), snap2)


def test_inter_pod_affinity_skips_when_nothing_applies():
    snap = _three_zones([make_pod("x", labels={"app": "x"}, node="a1")])
    pod = make_pod("p")
    assert InterPodAffinity().pre_filter(state_for(pod, snap), pod, snap).code == Code.SKIP


def test_preferred_pod_affinity_and_anti_affinity_scores():
    snap = ClusterSnapshot([make_node(n) for n in ("n1", "n2", "n3")], [
        make_pod("cache", labels={"app": "cache"}, node="n1"),
        make_pod("noisy", labels={"app": "noisy"}, node="n2"),
    ])
    pod = make_pod("web", affinity={
        **affinity(preferred=[(10, pod_term({"app": "cache"}, HOST))]),
        **affinity("podAntiAffinity", preferred=[(5, pod_term({"app": "noisy"}, HOST))]),
    })
    # Raw: n1 +10, n2 -5, n3 0 -> min-max normalised.
    assert run_scores(InterPodAffinity(), pod, snap) == {"n1": 100, "n2": 0, "n3": 33}


def test_existing_pods_terms_score_the_incoming_pod():
    snap = ClusterSnapshot([make_node(n) for n in ("n1", "n2", "n3")], [
        # n1's pod requires pods like "web" next to it (hardPodAffinityWeight 1) ...
        make_pod("a", node="n1", affinity=affinity(required=[pod_term({"app": "web"}, HOST)])),
        # ... n2's pod would rather not have them (preferred anti-affinity, weight 3).
        make_pod("b", node="n2", affinity=affinity("podAntiAffinity", preferred=[(3, pod_term({"app": "web"}, HOST))])),
    ])
    web = make_pod("web", labels={"app": "web"})
    assert run_scores(InterPodAffinity(), web, snap) == {"n1": 100, "n2": 0, "n3": 75}
    no_hard = InterPodAffinity({"hardPodAffinityWeight": 0})
    assert run_scores(no_hard, web, snap) == {"n1": 100, "n2": 0, "n3": 100}
    # Nothing relevant: skipped (every node equal).
    assert run_scores(InterPodAffinity(), make_pod("other", labels={"app": "other"}), snap) == {
        "n1": 0, "n2": 0, "n3": 0}


# -- PodTopologySpread ---------------------------------------------------------------------------------------


def spread(max_skew=1, key=ZONE, when="DoNotSchedule", labels=None, **extra):
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": labels or {"app": "web"}}, **extra}


def web(name, node=None, **spec):
    return make_pod(name, labels={"app": "web"}, node=node, **spec)


def test_topology_spread_max_skew_one_over_three_zones():
    snap = _three_zones([web("w1", "a1"), web("w2", "a2"), web("w3", "b1"), web("w4", "c1"),
                         make_pod("other", labels={"app": "db"}, node="c2")])
    pod = web("w5", topologySpreadConstraints=[spread()])
    pl = PodTopologySpread()
    # a has 2, b and c have 1: placing in a would make the skew 3 - 1 = 2.
    assert feasible(pl, pod, snap) == ["b1", "b2", "c1", "c2"]
    st = run_filter(pl, pod, "a1", snap)
    assert st.reasons == ("node(s) didn't match pod topology spread constraints",) and st.code == Code.UNSCHEDULABLE
    missing = run_filter(pl, pod, "nozone", snap)
    assert missing.reasons == ("node(s) didn't match pod topology spread constraints (missing required label)",)
    assert missing.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert feasible(pl, web("w5", topologySpreadConstraints=[spread(max_skew=2)]), snap) == [
        "a1", "a2", "b1", "b2", "c1", "c2"]
    # A pod the selector does not match doesn't add to the count it is checked against.
    assert feasible(pl, make_pod("x", labels={"app": "x"}, topologySpreadConstraints=[spread()]), snap) == [
        "a1", "a2", "b1", "b2", "c1", "c2"]


def test_topology_spread_min_domains():
    snap = _three_zones([web("w1", "a1"), web("w2", "b1"), web("w3", "c1")])
    pl = PodTopologySpread()
    assert len(feasible(pl, web("p", topologySpreadConstraints=[spread()]), snap)) == 6
    # Fewer domains than minDomains: the global minimum counts as 0, so every zone is "full".
    assert feasible(pl, web("p", topologySpreadConstraints=[spread(minDomains=4)]), snap) == []


def test_topology_spread_node_inclusion_policies():
    nodes = [make_node("a1", labels={ZONE: "a", "pool": "x"}), make_node("b1", labels={ZONE: "b", "pool": "x"}),
             make_node("c1", labels={ZONE: "c"}, taints=[taint("maint", "true")])]
    snap = ClusterSnapshot(nodes, [web("w1", "a1"), web("w2", "b1")])
    pl = PodTopologySpread()
    # nodeAffinityPolicy Honor (default): zone c is outside the pod's nodeSelector, so min is 1, not 0.
    honoured = web("p", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread()])
    assert feasible(pl, honoured, snap) == ["a1", "b1", "c1"]  # (c1 is NodeAffinity's business)
    ignored = web("p", nodeSelector={"pool": "x"}, topologySpreadConstraints=[spread(nodeAffinityPolicy="Ignore")])
    assert feasible(pl, ignored, snap) == ["c1"]
    # nodeTaintsPolicy Ignore (default) counts the tainted zone; Honor leaves it out.
    assert feasible(pl, web("p", topologySpreadConstraints=[spread()]), snap) == ["c1"]
    assert feasible(pl, web("p", topologySpreadConstraints=[spread(nodeTaintsPolicy="Honor")]), snap) == [
        "a1", "b1", "c1"]


def test_topology_spread_match_label_keys():
    snap = _three_zones([make_pod("old", labels={"app": "web", "rev": "1"}, node="a1"),
                         make_pod("old2", labels={"app": "web", "rev": "1"}, node="a2")])
    plain = make_pod("new", labels={"app": "web", "rev": "2"}, topologySpreadConstraints=[spread()])
    assert feasible(PodTopologySpread(), plain, snap) == ["b1", "b2", "c1", "c2"]
    per_rev = make_pod("new", labels={"app": "web", "rev": "2"},
                       topologySpreadConstraints=[spread(matchLabelKeys=["rev"])])
    assert len(feasible(PodTopologySpread(), per_rev, snap)) == 6  # only rev=2 pods count


def test_topology_spread_schedule_anyway_scoring():
    snap = ClusterSnapshot([make_node(n, labels={ZONE: n}) for n in ("a", "b", "c")],
                           [web("w1", "a"), web("w2", "a"), web("w3", "b")])
    pod = web("p", topologySpreadConstraints=[spread(when="ScheduleAnyway")])
    # Raw scores: count x ln(3 + 2) -> a 3, b 2, c 0; fewer is better.
    assert run_scores(PodTopologySpread(), pod, snap) == {"a": 0, "b": 33, "c": 100}
    # A DoNotSchedule-only pod gets no score from it.
    assert run_scores(PodTopologySpread(), web("p", topologySpreadConstraints=[spread()]), snap) == {
        "a": 0, "b": 0, "c": 0}


def rs_pod(name, node=None, uid="rs-1", kind="ReplicaSet"):
    p = make_pod(name, labels={"app": "web", "pod-template-hash": "abc"}, node=node)
    p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": "web-abc", "uid": uid,
                                         "controller": True}]
    return p


def test_system_default_spreading_of_replica_set_pods():
    nodes = [make_node(f"{z}{i}", labels={ZONE: z}) for z in "ab" for i in (1, 2)]
    pods = [rs_pod("r1", "a1"), rs_pod("r2", "a1"), rs_pod("r3", "a2"), rs_pod("other", "b1", uid="rs-2")]
    snap = ClusterSnapshot(nodes, pods)
    scores = run_scores(PodTopologySpread(), rs_pod("new"), snap)
    # Zone b and the nodes without siblings win; the node with two siblings loses.
    assert scores["b2"] == 100 and scores["b1"] == 100
    assert scores["a1"] < scores["a2"] < scores["b1"]
    # With the ReplicaSet in the snapshot its selector is used (same answer here).
    rs = {"metadata": {"name": "web-abc", "namespace": "default"},
          "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}}}
    with_rs = ClusterSnapshot(nodes, pods, replica_sets=[rs])
    assert run_scores(PodTopologySpread(), rs_pod("new"), with_rs)["a1"] < 100
    # Terminating siblings don't count.
    leaving = rs_pod("r4", "b2")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    snap.add_pod(leaving)
    assert snap.get("b2").owner_counts == {}
    assert run_scores(PodTopologySpread(), rs_pod("new"), snap)["b2"] == 100
    # A pod of no group is not spread.
    assert run_scores(PodTopologySpread(), make_pod("lone"), snap) == dict.fromkeys(["a1", "a2", "b1", "b2"], 0)
    # Service selectors define groups too.
    svc = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}
    by_service = ClusterSnapshot(nodes, [web("w1", "a1"), web("w2", "a1")], services=[svc])
    s = run_scores(PodTopologySpread(), web("new"), by_service)
    assert s["a1"] < s["a2"] < s["b1"] == s["b2"] == 100


def test_selector_spread_legacy_plugin():
    nodes = [make_node(f"{z}{i}", labels={ZONE: z}) for z in "ab" for i in (1, 2)]
    snap = ClusterSnapshot(nodes, [rs_pod("r1", "a1"), rs_pod("r2", "a1"), rs_pod("r3", "b1")])
    scores = run_scores(SelectorSpread(), rs_pod("new"), snap)
    # node part: a1 0, b1 50, others 100; zone part (2/3): a has 2 of max 2 -> 0, b has 1 -> 50.
    assert scores == {"a1": 0, "a2": 33, "b1": 50, "b2": 66}


# -- ImageLocality -----------------------------------------------------------------------------------------------


def test_image_locality():
    big = 500 * Mi
    snap = ClusterSnapshot([
        make_node("has", images=[(["docker.io/library/nginx:1.27", "nginx:1.27"], big)]),
        make_node("latest", images=[(["busybox:latest"], 900 * Mi)]),
        make_node("none"),
    ])
    pod = make_pod("p", containers=[{"name": "c", "image": "nginx:1.27"}])
    # 500Mi x (1 of 3 nodes) = 166.7Mi, scaled between 23Mi and 1000Mi per container.
    expected = 100 * (int(big / 3) - 23 * Mi) // (1000 * Mi - 23 * Mi)
    assert run_scores(ImageLocality(), pod, snap) == {"has": expected, "latest": 0, "none": 0}
    # An untagged image means :latest.
    bb = make_pod("p", containers=[{"name": "c", "image": "busybox"}])
    assert run_scores(ImageLocality(), bb, snap)["latest"] == 100 * (300 * Mi - 23 * Mi) // (977 * Mi)


@pytest.mark.parametrize("cls", [NodeName, NodeUnschedulable, NodeResourcesFit, NodeAffinity, TaintToleration,
                                 NodePorts, InterPodAffinity, PodTopologySpread])
def test_filters_work_without_pre_filter(cls):
    """A profile may disable a plugin's pre_filter; its filter must still be right."""
    snap = ClusterSnapshot([make_node("n", cpu="1")])
    pod = make_pod("p", cpu="2", nodeSelector={"x": "y"}, nodeName="n")
    state = state_for(pod, snap)
    st = cls().filter(state, pod, snap.get("n"))
    if cls in (NodeResourcesFit, NodeAffinity):
        assert st is not None
    else:
        assert st is None
