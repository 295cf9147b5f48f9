"""Server-side printing columns and cells (pinnace.api.tables) against Kubernetes' printers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pinnace.api import tables
from pinnace.api.tables import column_definitions, human_duration, row_cells, row_conditions

NOW = datetime(2024, 1, 10, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str = "x", age: timedelta = timedelta(days=2), **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "creationTimestamp": ago(seconds=age.total_seconds()),
        **extra,
    }


def names(group: str, kind: str, priority: int | None = None) -> list[str]:
    return [
        c["name"] for c in column_definitions(group, kind) if priority is None or c["priority"] == priority
    ]


# ---------------------------------------------------------------------------
# human_duration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (2 * 3600 + 5 * 60, "125m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (49 * 3600, "2d1h"),
        (5 * 86400, "5d"),
        (8 * 86400 + 3600, "8d"),
        (367 * 86400, "367d"),
        ((2 * 365 + 30) * 86400, "2y30d"),
        ((365 * 8 + 1) * 86400, "8y"),
        (-1.5, "0s"),
        (-3, "<invalid>"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# ---------------------------------------------------------------------------
# Column definitions
# ---------------------------------------------------------------------------

EXPECTED_COLUMNS: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("", "Pod"): (
        ["Name", "Ready", "Status", "Restarts", "Age"],
        ["IP", "Node", "Nominated Node", "Readiness Gates"],
    ),
    ("", "Node"): (
        ["Name", "Status", "Roles", "Age", "Version"],
        ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
    ),
    ("", "Namespace"): (["Name", "Status", "Age"], []),
    ("", "Service"): (["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
    ("", "ConfigMap"): (["Name", "Data", "Age"], []),
    ("", "Secret"): (["Name", "Type", "Data", "Age"], []),
    ("", "Event"): (
        ["Last Seen", "Type", "Reason", "Object", "Message"],
        ["Subobject", "Source", "First Seen", "Count", "Name"],
    ),
    ("", "ServiceAccount"): (["Name", "Secrets", "Age"], []),
    ("", "Endpoints"): (["Name", "Endpoints", "Age"], []),
    ("", "PersistentVolume"): (
        [
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
        ],
        ["VolumeMode"],
    ),
    ("", "PersistentVolumeClaim"): (
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
        ],
        ["VolumeMode"],
    ),
    ("", "ResourceQuota"): (["Name", "Request", "Limit", "Age"], []),
    ("", "LimitRange"): (["Name", "Created At"], []),
    ("apps", "Deployment"): (
        ["Name", "Ready", "Up-to-date", "Available", "Age"],
        ["Containers", "Images", "Selector"],
    ),
    ("apps", "ReplicaSet"): (
        ["Name", "Desired", "Current", "Ready", "Age"],
        ["Containers", "Images", "Selector"],
    ),
    ("apps", "StatefulSet"): (["Name", "Ready", "Age"], ["Containers", "Images"]),
    ("apps", "DaemonSet"): (
        ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"],
        ["Containers", "Images", "Selector"],
    ),
    ("apps", "ControllerRevision"): (["Name", "Controller", "Revision", "Age"], []),
    ("batch", "Job"): (
        ["Name", "Status", "Completions", "Duration", "Age"],
        ["Containers", "Images", "Selector"],
    ),
    ("batch", "CronJob"): (
        ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"],
        ["Containers", "Images", "Selector"],
    ),
    ("networking.k8s.io", "Ingress"): (["Name", "Class", "Hosts", "Address", "Ports", "Age"], []),
    ("networking.k8s.io", "IngressClass"): (["Name", "Controller", "Parameters", "Age"], []),
    ("networking.k8s.io", "NetworkPolicy"): (["Name", "Pod-Selector", "Age"], []),
    ("discovery.k8s.io", "EndpointSlice"): (["Name", "AddressType", "Ports", "Endpoints", "Age"], []),
    ("coordination.k8s.io", "Lease"): (["Name", "Holder", "Age"], []),
    ("rbac.authorization.k8s.io", "Role"): (["Name", "Created At"], []),
    ("rbac.authorization.k8s.io", "ClusterRole"): (["Name", "Created At"], []),
    ("rbac.authorization.k8s.io", "RoleBinding"): (
        ["Name", "Role", "Age"],
        ["Users", "Groups", "ServiceAccounts"],
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (
        ["Name", "Role", "Age"],
        ["Users", "Groups", "ServiceAccounts"],
    ),
    ("storage.k8s.io", "StorageClass"): (
        ["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"],
        [],
    ),
    ("policy", "PodDisruptionBudget"): (
        ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"],
        [],
    ),
    ("scheduling.k8s.io", "PriorityClass"): (
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
        [],
    ),
    ("autoscaling", "HorizontalPodAutoscaler"): (
        ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
        [],
    ),
    ("example.com", "Widget"): (["Name", "Created At"], []),
}


@pytest.mark.parametrize(("gk", "expected"), list(EXPECTED_COLUMNS.items()), ids=lambda v: str(v))
def test_column_names_and_priorities(gk: tuple[str, str], expected: tuple[list[str], list[str]]) -> None:
    default, wide = expected
    assert names(*gk, priority=0) == default
    assert names(*gk, priority=1) == wide


def test_column_definition_shape() -> None:
    for group, kind in [*tables.PRINTERS, ("", "LimitRange")]:
        cols = column_definitions(group, kind)
        for col in cols:
            assert set(col) == {"name", "type", "format", "description", "priority"}
            assert col["type"] in ("string", "integer", "boolean", "date", "number")
        name = next(c for c in cols if c["name"] == "Name")
        assert name["format"] == "name"
        assert name["description"].startswith("Name must be unique within a namespace.")
    assert column_definitions("", "Pod")[0]["name"] == "Name"
    assert column_definitions("", "Event")[0]["name"] == "Last Seen"  # as in Kubernetes


def test_column_types_match_kubernetes() -> None:
    def types(group: str, kind: str) -> dict[str, str]:
        return {c["name"]: c["type"] for c in column_definitions(group, kind)}

    assert types("", "Pod")["Restarts"] == "string"
    assert types("apps", "ReplicaSet")["Desired"] == "integer"
    assert types("apps", "DaemonSet")["Up-to-date"] == "integer"
    assert types("batch", "CronJob")["Suspend"] == "boolean"
    assert types("batch", "CronJob")["Active"] == "integer"
    assert types("policy", "PodDisruptionBudget")["Allowed Disruptions"] == "integer"
    assert types("scheduling.k8s.io", "PriorityClass") == {
        "Name": "string",
        "Value": "integer",
        "Global-Default": "boolean",
        "Age": "string",
        "PreemptionPolicy": "string",
    }
    assert types("", "ConfigMap")["Data"] == "string"
    assert types("example.com", "Widget")["Created At"] == "date"
    created = column_definitions("rbac.authorization.k8s.io", "Role")[1]
    assert created["format"] == "" and created["description"].startswith("CreationTimestamp is a timestamp")


def test_age_description_is_creation_timestamp_doc() -> None:
    age = next(c for c in column_definitions("", "Pod") if c["name"] == "Age")
    assert age["description"].startswith("CreationTimestamp is a timestamp representing the server time")
    ip = next(c for c in column_definitions("", "Pod") if c["name"] == "IP")
    assert ip["description"].startswith("podIP address allocated to the pod.")


# ---------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------


def running(name: str, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "started": True,
        "state": {"running": {"startedAt": ago(hours=1)}},
        **extra,
    }


def waiting(name: str, reason: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
        **extra,
    }


def terminated(name: str, reason: str | None = "Completed", code: int = 0, **extra: Any) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code, "finishedAt": ago(minutes=1)}
    if reason:
        term["reason"] = reason
    term.update(extra.pop("term", {}))
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}, **extra}


def pod(
    containers: list[dict[str, Any]],
    phase: str = "Running",
    init: list[dict[str, Any]] | None = None,
    init_spec: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **meta_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": c["name"], "image": "nginx"} for c in containers]
        or [{"name": "c", "image": "i"}],
        "nodeName": "node-1",
    }
    status: dict[str, Any] = {"phase": phase, "containerStatuses": containers}
    if init_spec is not None or init is not None:
        spec["initContainers"] = init_spec or [{"name": c["name"], "image": "busybox"} for c in init or []]
        status["initContainerStatuses"] = init or []
    if conditions is not None:
        status["conditions"] = conditions
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("web-1", **meta_extra),
        "spec": spec,
        "status": status,
    }


def pod_cells(obj: dict[str, Any]) -> list[Any]:
    return row_cells("", "Pod", obj, NOW)[1:4]  # Ready, Status, Restarts


READY = {"type": "Ready", "status": "True"}
NOT_READY = {"type": "Ready", "status": "False"}
INITIALIZED = {"type": "Initialized", "status": "True"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(pod([running("a"), running("b", ready=False)]), ["1/2", "Running", "0"], id="running"),
        pytest.param(
            pod([waiting("a", "ContainerCreating")], phase="Pending"),
            ["0/1", "ContainerCreating", "0"],
            id="container-creating",
        ),
        pytest.param(
            pod(
                [
                    waiting(
                        "a",
                        "CrashLoopBackOff",
                        restarts=5,
                        lastState={
                            "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=5)}
                        },
                    )
                ]
            ),
            ["0/1", "CrashLoopBackOff", "5 (5m ago)"],
            id="crashloop-restarts-ago",
        ),
        pytest.param(
            pod([waiting("a", "ImagePullBackOff")], phase="Pending"),
            ["0/1", "ImagePullBackOff", "0"],
            id="image-pull",
        ),
        pytest.param(pod([terminated("a")], phase="Succeeded"), ["0/1", "Completed", "0"], id="completed"),
        pytest.param(pod([terminated("a", "Error", 1)], phase="Failed"), ["0/1", "Error", "0"], id="error"),
        pytest.param(
            pod([terminated("a", None, 137)], phase="Failed"), ["0/1", "ExitCode:137", "0"], id="exit-code"
        ),
        pytest.param(
            pod([terminated("a", None, 0, term={"signal": 9})], phase="Failed"),
            ["0/1", "Signal:9", "0"],
            id="signal",
        ),
        pytest.param(
            pod([running("a")], deletionTimestamp=ago(seconds=10)),
            ["1/1", "Terminating", "0"],
            id="terminating",
        ),
        pytest.param(
            pod([terminated("a")], phase="Succeeded", deletionTimestamp=ago(seconds=10)),
            ["0/1", "Completed", "0"],
            id="terminal-not-terminating",
        ),
        pytest.param(pod([], phase="Pending"), ["0/1", "Pending", "0"], id="pending-no-status"),
        pytest.param(
            pod(
                [waiting("a", "PodInitializing")], phase="Pending", init=[waiting("init", "PodInitializing")]
            ),
            ["0/1", "Init:0/1", "0"],
            id="init-0-of-1",
        ),
        pytest.param(
            pod(
                [waiting("a", "PodInitializing")],
                phase="Pending",
                init=[terminated("i1"), running("i2", ready=False)],
            ),
            ["0/1", "Init:1/2", "0"],
            id="init-1-of-2",
        ),
        pytest.param(
            pod(
                [waiting("a", "PodInitializing")], phase="Pending", init=[waiting("i", "CrashLoopBackOff", 3)]
            ),
            ["0/1", "Init:CrashLoopBackOff", "3"],
            id="init-crashloop",
        ),
        pytest.param(
            pod([waiting("a", "PodInitializing")], phase="Pending", init=[terminated("i", "Error", 2)]),
            ["0/1", "Init:Error", "0"],
            id="init-error",
        ),
        pytest.param(
            pod([waiting("a", "PodInitializing")], phase="Pending", init=[terminated("i", None, 3)]),
            ["0/1", "Init:ExitCode:3", "0"],
            id="init-exit-code",
        ),
        pytest.param(
            pod(
                [running("a")],
                init=[running("sidecar")],
                init_spec=[{"name": "sidecar", "image": "envoy", "restartPolicy": "Always"}],
                conditions=[INITIALIZED, READY],
            ),
            ["2/2", "Running", "0"],
            id="sidecar",
        ),
        pytest.param(
            pod([running("a"), terminated("b")], conditions=[READY]),
            ["1/2", "Running", "0"],
            id="completed-but-running-ready",
        ),
        pytest.param(
            pod([terminated("a"), running("b")], conditions=[NOT_READY]),
            ["1/2", "NotReady", "0"],
            id="completed-but-running-not-ready",
        ),
    ],
)
def test_pod_status(obj: dict[str, Any], expected: list[Any]) -> None:
    assert pod_cells(obj) == expected


def test_pod_status_reasons_from_pod_status() -> None:
    evicted = pod([], phase="Failed")
    evicted["status"]["reason"] = "Evicted"
    assert pod_cells(evicted)[1] == "Evicted"

    gated = pod(
        [],
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    )
    assert pod_cells(gated)[1] == "SchedulingGated"

    lost = pod([running("a")], deletionTimestamp=ago(seconds=5))
    lost["status"]["reason"] = "NodeLost"
    assert pod_cells(lost)[1] == "Unknown"


def test_pod_restarts_sum_and_latest_termination() -> None:
    a = running("a", restarts=2, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(hours=3)}})
    b = running("b", restarts=1, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(seconds=40)}})
    assert pod_cells(pod([a, b]))[2] == "3 (40s ago)"
    # A restart count without a recorded termination has no "ago".
    assert pod_cells(pod([running("a", restarts=4)]))[2] == "4"


def test_pod_full_row_with_wide_columns() -> None:
    obj = pod(
        [running("a"), running("b")], conditions=[READY, {"type": "example.com/gate", "status": "True"}]
    )
    obj["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"}, {"conditionType": "other/gate"}]
    obj["status"]["podIP"] = "10.244.1.7"
    obj["status"]["podIPs"] = [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}]
    obj["status"]["nominatedNodeName"] = "node-2"
    assert row_cells("", "Pod", obj, NOW) == [
        "web-1",
        "2/2",
        "Running",
        "0",
        "2d",
        "10.244.1.7",
        "node-1",
        "node-2",
        "1/2",
    ]
    bare = pod([], phase="Pending")
    del bare["spec"]["nodeName"]
    assert row_cells("", "Pod", bare, NOW)[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_row_conditions() -> None:
    assert row_conditions("", "Pod", pod([terminated("a")], phase="Succeeded")) == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert (
        row_conditions("", "Pod", pod([terminated("a", "Error", 1)], phase="Failed"))[0]["reason"] == "Failed"
    )
    assert row_conditions("", "Pod", pod([running("a")])) == []
    assert row_conditions("apps", "Deployment", {}) == []


# ---------------------------------------------------------------------------
# Every other kind: one realistic object each
# ---------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "fluent-bit:2"}]
    },
}

ROW_CASES: list[tuple[str, str, str, dict[str, Any], list[Any]]] = [
    (
        "node",
        "",
        "Node",
        {
            "metadata": meta(
                "worker-1",
                timedelta(days=30),
                labels={
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/worker": "true",
                    "kubernetes.io/hostname": "worker-1",
                },
            ),
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "worker-1"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0",
                    "osImage": "Ubuntu 22.04.4 LTS",
                    "kernelVersion": "6.5.0-1",
                    "containerRuntimeVersion": "containerd://1.7.13",
                },
            },
        },
        [
            "worker-1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "30d",
            "v1.32.0",
            "192.168.1.10",
            "<none>",
            "Ubuntu 22.04.4 LTS",
            "6.5.0-1",
            "containerd://1.7.13",
        ],
    ),
    (
        "node-not-ready",
        "",
        "Node",
        {
            "metadata": meta("n2", timedelta(hours=5), labels={"kubernetes.io/role": "edge"}),
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        },
        ["n2", "NotReady", "edge", "5h", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"],
    ),
    (
        "node-no-conditions",
        "",
        "Node",
        {"metadata": meta("n3", timedelta(minutes=1))},
        ["n3", "Unknown", "<none>", "60s", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"],
    ),
    (
        "namespace",
        "",
        "Namespace",
        {"metadata": meta("kube-system", timedelta(days=400)), "status": {"phase": "Terminating"}},
        ["kube-system", "Terminating", "400d"],
    ),
    (
        "service-nodeport",
        "",
        "Service",
        {
            "metadata": meta("web", timedelta(minutes=7, seconds=3)),
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"port": 443, "nodePort": 30443, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"},
                ],
                "selector": {"tier": "front", "app": "web"},
            },
        },
        [
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80/TCP,443:30443/TCP,53/UDP",
            "7m3s",
            "app=web,tier=front",
        ],
    ),
    (
        "service-lb-pending",
        "",
        "Service",
        {
            "metadata": meta("lb"),
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.3.3"],
                "ports": [{"port": 80, "nodePort": 31000}],
            },
        },
        ["lb", "LoadBalancer", "10.96.3.3", "<pending>", "80:31000/TCP", "2d", "<none>"],
    ),
    (
        "service-lb-ingress",
        "",
        "Service",
        {
            "metadata": meta("lb"),
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.3.3"],
                "externalIPs": ["1.2.3.4"],
                "ports": [],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}},
        },
        ["lb", "LoadBalancer", "10.96.3.3", "5.6.7.8,lb.example.com,1.2.3.4", "<none>", "2d", "<none>"],
    ),
    (
        "service-headless-defaults",
        "",
        "Service",
        {
            "metadata": meta("db"),
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}], "selector": {"app": "db"}},
        },
        ["db", "ClusterIP", "None", "<none>", "5432/TCP", "2d", "app=db"],
    ),
    (
        "service-externalname",
        "",
        "Service",
        {"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}},
        ["ext", "ExternalName", "<none>", "db.example.com", "<none>", "2d", "<none>"],
    ),
    (
        "configmap",
        "",
        "ConfigMap",
        {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
        ["cfg", 3, "2d"],
    ),
    (
        "secret",
        "",
        "Secret",
        {"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}},
        ["tls", "kubernetes.io/tls", 2, "2d"],
    ),
    (
        "secret-defaults",
        "",
        "Secret",
        {"metadata": meta("s"), "data": {"a": "eA=="}, "stringData": {"a": "x", "b": "y"}},
        ["s", "Opaque", 2, "2d"],
    ),
    (
        "serviceaccount",
        "",
        "ServiceAccount",
        {"metadata": meta("default"), "secrets": [{"name": "default-token"}]},
        ["default", 1, "2d"],
    ),
    (
        "endpoints",
        "",
        "Endpoints",
        {
            "metadata": meta("web"),
            "subsets": [
                {
                    "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [{"port": 80}, {"port": 443}],
                }
            ],
        },
        ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "2d"],
    ),
    (
        "endpoints-headless-ipv6",
        "",
        "Endpoints",
        {
            "metadata": meta("h"),
            "subsets": [
                {"addresses": [{"ip": "10.0.0.9"}]},
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]},
            ],
        },
        ["h", "10.0.0.9,[fd00::1]:53", "2d"],
    ),
    ("endpoints-empty", "", "Endpoints", {"metadata": meta("e")}, ["e", "<none>", "2d"]),
    (
        "persistentvolume",
        "",
        "PersistentVolume",
        {
            "metadata": meta("pv-1"),
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "standard",
                "claimRef": {"namespace": "default", "name": "data"},
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        },
        [
            "pv-1",
            "10Gi",
            "RWO,RWX",
            "Delete",
            "Bound",
            "default/data",
            "standard",
            "<unset>",
            "",
            "2d",
            "Filesystem",
        ],
    ),
    (
        "persistentvolume-defaults",
        "",
        "PersistentVolume",
        {
            "metadata": meta("pv-2", deletionTimestamp=ago(seconds=1)),
            "spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadOnlyMany"]},
        },
        ["pv-2", "1Gi", "ROX", "Retain", "Terminating", "", "", "<unset>", "", "2d", "Filesystem"],
    ),
    (
        "pvc-bound",
        "",
        "PersistentVolumeClaim",
        {
            "metadata": meta("data"),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard",
                "volumeName": "pv-1",
                "volumeMode": "Block",
            },
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
        },
        ["data", "Bound", "pv-1", "1Gi", "RWO", "standard", "<unset>", "2d", "Block"],
    ),
    (
        "pvc-pending",
        "",
        "PersistentVolumeClaim",
        {
            "metadata": meta("data2", annotations={"volume.beta.kubernetes.io/storage-class": "fast"}),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        },
        ["data2", "Pending", "", "", "", "fast", "<unset>", "2d", "Filesystem"],
    ),
    (
        "resourcequota",
        "",
        "ResourceQuota",
        {
            "metadata": meta("quota"),
            "spec": {"hard": {"pods": "10"}},
            "status": {
                "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4000m"},
                "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "512Mi"},
            },
        },
        ["quota", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 0/4, limits.memory: 512Mi/2Gi", "2d"],
    ),
    (
        "limitrange",
        "",
        "LimitRange",
        {"metadata": meta("limits"), "spec": {"limits": [{"type": "Container"}]}},
        ["limits", ago(days=2)],
    ),
    (
        "event",
        "",
        "Event",
        {
            "metadata": meta("web-1.17a2b3c4d5e6f7a8"),
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "involvedObject": {
                "kind": "Pod",
                "name": "web-1",
                "namespace": "default",
                "fieldPath": "spec.containers{nginx}",
            },
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(minutes=30),
            "lastTimestamp": ago(seconds=45),
            "count": 12,
        },
        [
            "45s",
            "Warning",
            "BackOff",
            "pod/web-1",
            "spec.containers{nginx}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "30m",
            12,
            "web-1.17a2b3c4d5e6f7a8",
        ],
    ),
    (
        "event-new-style",
        "",
        "Event",
        {
            "metadata": meta("e2"),
            "type": "Normal",
            "reason": "Scheduled",
            "message": "Successfully assigned",
            "involvedObject": {"kind": "Pod", "name": "web-2"},
            "eventTime": "2024-01-10T11:57:59.500000Z",
            "reportingController": "default-scheduler",
            "reportingInstance": "default-scheduler-host",
        },
        [
            "2m",
            "Normal",
            "Scheduled",
            "pod/web-2",
            "",
            "default-scheduler, default-scheduler-host",
            "Successfully assigned",
            "2m",
            1,
            "e2",
        ],
    ),
    (
        "event-series-no-name",
        "",
        "Event",
        {
            "metadata": meta("e3"),
            "type": "Normal",
            "reason": "Pulled",
            "message": "m",
            "involvedObject": {"kind": "Node"},
            "source": {"component": "kubelet"},
            "eventTime": ago(hours=1),
            "series": {"count": 7, "lastObservedTime": ago(minutes=4)},
        },
        ["4m", "Normal", "Pulled", "node", "", "kubelet", "m", "60m", 7, "e3"],
    ),
    (
        "events.k8s.io-event",
        "events.k8s.io",
        "Event",
        {
            "metadata": meta("e4"),
            "type": "Warning",
            "reason": "Failed",
            "note": "boom",
            "regarding": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "deprecatedFirstTimestamp": ago(minutes=10),
            "deprecatedLastTimestamp": ago(minutes=1),
            "deprecatedCount": 3,
        },
        [
            "60s",
            "Warning",
            "Failed",
            "pod/p",
            "spec.containers{c}",
            "kubelet, node-1",
            "boom",
            "10m",
            3,
            "e4",
        ],
    ),
    (
        "deployment",
        "apps",
        "Deployment",
        {
            "metadata": meta("web", timedelta(hours=2, minutes=5)),
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
                },
                "template": TEMPLATE,
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        },
        ["web", "2/3", 3, 2, "125m", "nginx,log", "nginx:1.25,fluent-bit:2", "app=web,tier in (a,b)"],
    ),
    (
        "deployment-defaults",
        "apps",
        "Deployment",
        {"metadata": meta("new", timedelta(seconds=3)), "spec": {"template": TEMPLATE}},
        ["new", "0/1", 0, 0, "3s", "nginx,log", "nginx:1.25,fluent-bit:2", ""],
    ),
    (
        "replicaset",
        "apps",
        "ReplicaSet",
        {
            "metadata": meta("web-5d4f8c7b9"),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f8c7b9"}},
                "template": TEMPLATE,
            },
            "status": {"replicas": 2, "readyReplicas": 1},
        },
        [
            "web-5d4f8c7b9",
            2,
            2,
            1,
            "2d",
            "nginx,log",
            "nginx:1.25,fluent-bit:2",
            "app=web,pod-template-hash=5d4f8c7b9",
        ],
    ),
    (
        "statefulset",
        "apps",
        "StatefulSet",
        {
            "metadata": meta("db"),
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "template": TEMPLATE,
                "selector": {"matchLabels": {"app": "db"}},
            },
            "status": {"readyReplicas": 3},
        },
        ["db", "3/3", "2d", "nginx,log", "nginx:1.25,fluent-bit:2"],
    ),
    (
        "daemonset",
        "apps",
        "DaemonSet",
        {
            "metadata": meta("fluentd"),
            "spec": {
                "selector": {
                    "matchLabels": {"name": "fluentd"},
                    "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}],
                },
                "template": {
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "fluentd", "image": "fluentd:v1"}],
                    }
                },
            },
            "status": {
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "numberReady": 2,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
        [
            "fluentd",
            3,
            3,
            2,
            3,
            2,
            "kubernetes.io/os=linux",
            "2d",
            "fluentd",
            "fluentd:v1",
            "!canary,name=fluentd",
        ],
    ),
    (
        "controllerrevision",
        "apps",
        "ControllerRevision",
        {
            "metadata": meta(
                "fluentd-6b8f7c",
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": "fluentd",
                        "uid": "u",
                        "controller": True,
                    }
                ],
            ),
            "revision": 2,
        },
        ["fluentd-6b8f7c", "daemonset.apps/fluentd", 2, "2d"],
    ),
    (
        "controllerrevision-orphan",
        "apps",
        "ControllerRevision",
        {"metadata": meta("rev"), "revision": 1},
        ["rev", "<none>", 1, "2d"],
    ),
    (
        "job-complete",
        "batch",
        "Job",
        {
            "metadata": meta("pi", timedelta(minutes=5)),
            "spec": {
                "completions": 1,
                "parallelism": 1,
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}},
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
            },
            "status": {
                "succeeded": 1,
                "startTime": ago(minutes=5),
                "completionTime": ago(minutes=4, seconds=20),
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        },
        ["pi", "Complete", "1/1", "40s", "5m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=abc"],
    ),
    (
        "job-running-parallel",
        "batch",
        "Job",
        {
            "metadata": meta("work"),
            "spec": {"parallelism": 3, "template": {"spec": {"containers": []}}},
            "status": {"startTime": ago(minutes=12), "active": 3},
        },
        ["work", "Running", "0/1 of 3", "12m", "2d", "", "", "<none>"],
    ),
    (
        "job-failed",
        "batch",
        "Job",
        {
            "metadata": meta("bad"),
            "spec": {"completions": 3},
            "status": {
                "succeeded": 1,
                "failed": 6,
                "conditions": [
                    {"type": "FailureTarget", "status": "True"},
                    {"type": "Failed", "status": "True"},
                ],
            },
        },
        ["bad", "Failed", "1/3", "", "2d", "", "", "<none>"],
    ),
    (
        "job-suspended",
        "batch",
        "Job",
        {
            "metadata": meta("s"),
            "spec": {"suspend": True},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]},
        },
        ["s", "Suspended", "0/1", "", "2d", "", "", "<none>"],
    ),
    (
        "cronjob",
        "batch",
        "CronJob",
        {
            "metadata": meta("hello"),
            "spec": {
                "schedule": "*/5 * * * *",
                "timeZone": "Etc/UTC",
                "suspend": False,
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {"containers": [{"name": "hello", "image": "busybox:1.36"}]}}
                    }
                },
            },
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(minutes=3)},
        },
        ["hello", "*/5 * * * *", "Etc/UTC", "False", 1, "3m", "2d", "hello", "busybox:1.36", "<none>"],
    ),
    (
        "cronjob-never-ran",
        "batch",
        "CronJob",
        {"metadata": meta("nightly"), "spec": {"schedule": "0 0 * * *", "suspend": True, "jobTemplate": {}}},
        ["nightly", "0 0 * * *", "<none>", "True", 0, "<none>", "2d", "", "", "<none>"],
    ),
    (
        "ingress",
        "networking.k8s.io",
        "Ingress",
        {
            "metadata": meta("web"),
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"ip": "198.51.100.7"}]}},
        },
        ["web", "nginx", "a.example.com,b.example.com", "198.51.100.7,203.0.113.10", "80, 443", "2d"],
    ),
    (
        "ingress-many-hosts",
        "networking.k8s.io",
        "Ingress",
        {"metadata": meta("many"), "spec": {"rules": [{"host": f"h{i}.example.com"} for i in range(5)]}},
        ["many", "<none>", "h0.example.com,h1.example.com,h2.example.com + 2 more...", "", "80", "2d"],
    ),
    (
        "ingress-default-backend",
        "networking.k8s.io",
        "Ingress",
        {
            "metadata": meta("def"),
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        },
        ["def", "<none>", "*", "", "80", "2d"],
    ),
    (
        "ingressclass",
        "networking.k8s.io",
        "IngressClass",
        {
            "metadata": meta("nginx"),
            "spec": {
                "controller": "k8s.io/ingress-nginx",
                "parameters": {
                    "apiGroup": "k8s.example.com",
                    "kind": "IngressParameters",
                    "name": "external-lb",
                },
            },
        },
        ["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb", "2d"],
    ),
    (
        "networkpolicy",
        "networking.k8s.io",
        "NetworkPolicy",
        {"metadata": meta("deny"), "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
        ["deny", "<none>", "2d"],
    ),
    (
        "networkpolicy-selector",
        "networking.k8s.io",
        "NetworkPolicy",
        {
            "metadata": meta("db"),
            "spec": {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "role", "operator": "NotIn", "values": ["x"]},
                        {"key": "app", "operator": "Exists"},
                    ]
                }
            },
        },
        ["db", "app,role notin (x)", "2d"],
    ),
    (
        "endpointslice",
        "discovery.k8s.io",
        "EndpointSlice",
        {
            "metadata": meta("web-abc12"),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "named"}],
            "endpoints": [
                {"addresses": ["10.1.0.1"]},
                {"addresses": ["10.1.0.2"]},
                {"addresses": ["10.1.0.3"]},
                {"addresses": ["10.1.0.4"]},
            ],
        },
        ["web-abc12", "IPv4", "80,named", "10.1.0.1,10.1.0.2,10.1.0.3 + 1 more...", "2d"],
    ),
    (
        "endpointslice-empty",
        "discovery.k8s.io",
        "EndpointSlice",
        {"metadata": meta("e"), "addressType": "IPv6", "ports": None, "endpoints": None},
        ["e", "IPv6", "<unset>", "<unset>", "2d"],
    ),
    (
        "lease",
        "coordination.k8s.io",
        "Lease",
        {
            "metadata": meta("kube-scheduler"),
            "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15},
        },
        ["kube-scheduler", "node-1_abc", "2d"],
    ),
    (
        "role",
        "rbac.authorization.k8s.io",
        "Role",
        {"metadata": meta("reader", timedelta(0)), "rules": []},
        ["reader", ago()],
    ),
    (
        "clusterrole",
        "rbac.authorization.k8s.io",
        "ClusterRole",
        {"metadata": {"name": "admin", "creationTimestamp": "2024-01-02T03:04:05.5+02:00"}},
        ["admin", "2024-01-02T01:04:05Z"],
    ),
    (
        "rolebinding",
        "rbac.authorization.k8s.io",
        "RoleBinding",
        {
            "metadata": meta("read-pods"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "name": "jane"},
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"},
            ],
        },
        ["read-pods", "Role/reader", "2d", "jane, bob", "devs", "kube-system/default"],
    ),
    (
        "clusterrolebinding",
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        {
            "metadata": meta("cluster-admin"),
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "system:masters"}],
        },
        ["cluster-admin", "ClusterRole/cluster-admin", "2d", "", "system:masters", ""],
    ),
    (
        "storageclass-default",
        "storage.k8s.io",
        "StorageClass",
        {
            "metadata": meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
            "provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
        },
        ["standard (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", True, "2d"],
    ),
    (
        "storageclass-defaults",
        "storage.k8s.io",
        "StorageClass",
        {"metadata": meta("slow"), "provisioner": "kubernetes.io/no-provisioner"},
        ["slow", "kubernetes.io/no-provisioner", "Delete", "Immediate", False, "2d"],
    ),
    (
        "pdb",
        "policy",
        "PodDisruptionBudget",
        {
            "metadata": meta("web-pdb"),
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1},
        },
        ["web-pdb", "2", "N/A", 1, "2d"],
    ),
    (
        "pdb-percent",
        "policy",
        "PodDisruptionBudget",
        {"metadata": meta("p"), "spec": {"maxUnavailable": "25%"}},
        ["p", "N/A", "25%", 0, "2d"],
    ),
    (
        "priorityclass",
        "scheduling.k8s.io",
        "PriorityClass",
        {"metadata": meta("high"), "value": 1000000, "globalDefault": False, "preemptionPolicy": "Never"},
        ["high", 1000000, False, "2d", "Never"],
    ),
    (
        "priorityclass-defaults",
        "scheduling.k8s.io",
        "PriorityClass",
        {"metadata": meta("system-cluster-critical"), "value": 2000000000},
        ["system-cluster-critical", 2000000000, False, "2d", "PreemptLowerPriority"],
    ),
    (
        "hpa-v2",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("web"),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    },
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "memory",
                            "target": {"type": "AverageValue", "averageValue": "1024Mi"},
                        },
                    },
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "qps"},
                            "target": {"type": "AverageValue", "averageValue": "1k"},
                        },
                    },
                ],
            },
            "status": {
                "currentReplicas": 3,
                "desiredReplicas": 3,
                "currentMetrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "current": {"averageUtilization": 23, "averageValue": "115m"},
                        },
                    }
                ],
            },
        },
        ["web", "Deployment/web", "cpu: 23%/50%, memory: <unknown>/1Gi + 1 more...", "2", 10, 3, "2d"],
    ),
    (
        "hpa-v1",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("api"),
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 80,
            },
            "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12},
        },
        ["api", "Deployment/api", "cpu: 12%/80%", "1", 5, 1, "2d"],
    ),
    (
        "hpa-defaulted-external",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("q"),
            "spec": {
                "scaleTargetRef": {"kind": "StatefulSet", "name": "q"},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": "queue"},
                            "target": {"type": "AverageValue", "averageValue": "30"},
                        },
                    },
                    {
                        "type": "Object",
                        "object": {"metric": {"name": "rps"}, "target": {"type": "Value", "value": "2k"}},
                    },
                ],
            },
            "status": {
                "currentMetrics": [{"type": "External", "external": {"current": {"averageValue": "12"}}}]
            },
        },
        ["q", "StatefulSet/q", "12/30 (avg), <unknown>/2k", "1", 4, 0, "2d"],
    ),
    (
        "hpa-no-metrics",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("d"),
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3},
        },
        ["d", "Deployment/d", "cpu: <unknown>/80%", "1", 3, 0, "2d"],
    ),
    (
        "replicationcontroller",
        "",
        "ReplicationController",
        {
            "metadata": meta("rc"),
            "spec": {"replicas": 2, "selector": {"app": "web"}, "template": TEMPLATE},
            "status": {"replicas": 2, "readyReplicas": 2},
        },
        ["rc", 2, 2, 2, "2d", "nginx,log", "nginx:1.25,fluent-bit:2", "app=web"],
    ),
    (
        "podtemplate",
        "",
        "PodTemplate",
        {"metadata": meta("tpl"), "template": TEMPLATE},
        ["tpl", "nginx,log", "nginx:1.25,fluent-bit:2", "app=web"],
    ),
    (
        "webhooks",
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        {"metadata": meta("policy"), "webhooks": [{"name": "a.example.com"}, {"name": "b.example.com"}]},
        ["policy", 2, "2d"],
    ),
    (
        "runtimeclass",
        "node.k8s.io",
        "RuntimeClass",
        {"metadata": meta("gvisor"), "handler": "runsc"},
        ["gvisor", "runsc", "2d"],
    ),
    (
        "custom-resource",
        "example.com",
        "Widget",
        {"metadata": {"name": "w", "creationTimestamp": "2024-01-02T03:04:05Z"}, "spec": {}},
        ["w", "2024-01-02T03:04:05Z"],
    ),
]


@pytest.mark.parametrize(
    ("group", "kind", "obj", "expected"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES]
)
def test_row_cells(group: str, kind: str, obj: dict[str, Any], expected: list[Any]) -> None:
    cells = row_cells(group, kind, obj, NOW)
    assert cells == expected
    assert len(cells) == len(column_definitions(group, kind))
    # JSON types exactly as the real server sends them (bool is not an int here).
    assert [type(c) for c in cells] == [type(e) for e in expected]


def test_every_printer_fills_every_column_for_a_bare_object() -> None:
    for (group, kind), printer in tables.PRINTERS.items():
        cells = row_cells(group, kind, {"metadata": {"name": "bare"}}, NOW)
        assert len(cells) == len(printer.columns), (group, kind)
        assert all(isinstance(c, str | int | bool) for c in cells), (group, kind, cells)


def test_age_handles_missing_and_naive_now() -> None:
    assert row_cells("", "ConfigMap", {"metadata": {"name": "c"}}, NOW) == ["c", 0, "<unknown>"]
    naive = NOW.replace(tzinfo=None)
    assert row_cells("", "ConfigMap", {"metadata": meta("c", timedelta(minutes=3))}, naive)[2] == "3m"
    future = {"metadata": {"name": "c", "creationTimestamp": ago(seconds=-30)}}
    assert row_cells("", "ConfigMap", future, NOW)[2] == "<invalid>"


def test_default_table_for_missing_timestamp() -> None:
    assert row_cells("", "LimitRange", {"metadata": {"name": "l"}}, NOW) == ["l", "0001-01-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        (None, "<none>"),
        ({}, "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
            "env in (dev,prod)",
        ),
        ({"matchExpressions": [{"key": "x", "operator": "In", "values": []}]}, "<error>"),
        ({"matchExpressions": [{"key": "x", "operator": "Bogus"}]}, "<error>"),
    ],
)
def test_label_selector_format(selector: Any, text: str) -> None:
    rs = {"metadata": {"name": "r"}, "spec": {"selector": selector}}
    assert row_cells("apps", "ReplicaSet", rs, NOW)[-1] == text


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("512", "512"),
        ("1000", "1k"),
        ("1.5", "1500m"),
        ("2000m", "2"),
        ("100m", "100m"),
        ("1e3", "1e3"),
        (5, "5"),
        ("0", "0"),
        ("10G", "10G"),
        ("0.1", "100m"),
        ("garbage", "garbage"),
    ],
)
def test_quantities_print_canonically(value: Any, canonical: str) -> None:
    pv = {"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": value}}}
    assert row_cells("", "PersistentVolume", pv, NOW)[1] == canonical


def test_go_zero_time_counts_as_unset() -> None:
    ev = {
        "metadata": {"name": "e"},
        "lastTimestamp": "0001-01-01T00:00:00Z",
        "firstTimestamp": ago(minutes=3),
        "involvedObject": {"kind": "Pod", "name": "p"},
    }
    assert row_cells("", "Event", ev, NOW)[0] == "3m"
