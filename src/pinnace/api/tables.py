"""Server-side printing: the columns and cells of ``meta.k8s.io/v1`` ``Table``.

``kubectl get`` asks for ``application/json;as=Table;g=meta.k8s.io;v=v1`` and
prints whatever columns the server sends. These are the columns and cells of
the real API server's printers (``pkg/printers/internalversion/printers.go``,
Kubernetes 1.32), per kind. Like the real server, every column is always
filled, including the ``-o wide`` ones (priority 1); kubectl hides those.
Kinds without a printer get the generic ``Name`` / ``Created At`` table.

Everything here is a pure function of the object and ``now``. Where the real
server would have defaulted a field before printing it (``spec.replicas``,
``spec.type``, port protocols, ...) the same default is assumed if it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

Obj = dict[str, Any]
Cells = Callable[[Obj, datetime], list[Any]]

__all__ = ["column_definitions", "human_duration", "row_cells", "row_conditions"]


# ---------------------------------------------------------------------------
# Durations and timestamps
# ---------------------------------------------------------------------------

_NS = 1_000_000_000
_MINUTE = 60 * _NS
_HOUR = 60 * _MINUTE


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: ~2-3 significant figures."""
    d = round(seconds * _NS)
    secs = int(d / _NS)  # Go truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = d // _MINUTE
    if minutes < 10:
        s = (d // _NS) % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = d // _HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """RFC3339 (optionally with fractional seconds) → aware datetime; None if unset."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return None if t == _ZERO_TIME else t  # Go's zero time counts as unset


_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _since_dt(t: datetime, now: datetime) -> str:
    return human_duration((_aware(now) - t).total_seconds())


def _since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: "<unknown>" for an unset timestamp."""
    t = _parse_time(value)
    return "<unknown>" if t is None else _since_dt(t, now)


def _age(obj: Obj, now: datetime) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


# ---------------------------------------------------------------------------
# Small accessors and formatters shared by the printers
# ---------------------------------------------------------------------------


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return _meta(obj).get("name") or ""


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, "<none>" when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(sel).String()``; None if the selector is invalid."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key") or "", expr.get("operator"), expr.get("values") or []
        if op not in _SELECTOR_OPS or (op in ("In", "NotIn")) != bool(values):
            return None
        if op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, "!" + key))
        else:
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({','.join(sorted(values))})"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: "<none>" when empty, "<error>" when invalid."""
    s = _selector_string(selector)
    if s is None:
        return "<error>"
    return s or "<none>"


def _containers(containers: Any) -> list[str]:
    """``layoutContainerCells``: comma-joined container names and images."""
    cs = [c for c in _list(containers) if isinstance(c, dict)]
    return [",".join(c.get("name") or "" for c in cs), ",".join(c.get("image") or "" for c in cs)]


def _template_containers(obj: Obj) -> Any:
    return _get(obj, "spec", "template", "spec", "containers")


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret or "<unset>"


def _bool_ptr(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _access_modes(modes: Any) -> str:
    """``GetAccessModesAsString``: RWO, ROX, RWX, RWOP in that order."""
    present = set(_list(modes))
    short = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    return ",".join(abbr for mode, abbr in short if mode in present)


# ---------------------------------------------------------------------------
# resource.Quantity canonical form (what Quantity.String() prints)
# ---------------------------------------------------------------------------

_BIN_SUFFIX = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {e: s for s, e in _DEC_SUFFIX.items()}
_BIN_BY_EXP = {e: s for s, e in _BIN_SUFFIX.items()}
_QUANTITY_RE = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(.*)$")


def _quantity(value: Any) -> str:
    """Canonical string of a quantity; unparsable input is returned unchanged."""
    if value is None:
        return "0"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return str(value)
    text = str(value).strip()
    m = _QUANTITY_RE.match(text)
    if not m:
        return text
    sign, number, suffix = m.groups()
    amount = Fraction(number)
    if suffix in _BIN_SUFFIX:
        fmt, amount = "bin", amount * 1024 ** _BIN_SUFFIX[suffix]
    elif suffix in _DEC_SUFFIX:
        fmt, amount = "dec", amount * Fraction(10) ** _DEC_SUFFIX[suffix]
    elif re.fullmatch(r"[eE][+-]?\d+", suffix):
        fmt, amount = "exp", amount * Fraction(10) ** int(suffix[1:])
    else:
        return text
    # Quantities keep at most nano precision, rounding up.
    nanos = -((-amount * _NS) // 1)
    if nanos == 0:
        return "0"
    neg = "-" if sign == "-" else ""
    if fmt == "bin" and nanos >= 1024 * _NS and nanos % _NS == 0:
        n, exp = nanos // _NS, 0
        while n % 1024 == 0 and exp < 6:
            n, exp = n // 1024, exp + 1
        return f"{neg}{n}{_BIN_BY_EXP.get(exp, '')}"
    n, exp = nanos, -9
    while n % 10 == 0:
        n, exp = n // 10, exp + 1
    shift = exp % 3  # round the exponent down to a multiple of 3
    n, exp = n * 10**shift, exp - shift
    if fmt == "exp":
        return f"{neg}{n}" + (f"e{exp}" if exp else "")
    return f"{neg}{n}{_DEC_BY_EXP.get(exp, f'e{exp}')}"


# ---------------------------------------------------------------------------
# Column specs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Cells


def _c(name: str, doc: str = "", type: str = "string", priority: int = 0) -> Column:
    """A column whose description is a ``_DOC`` key (``Type.field``) or literal text."""
    return Column(name, type, _DOC.get(doc, doc), priority)


def _wide(name: str, doc: str = "", type: str = "string") -> Column:
    return _c(name, doc, type, priority=1)


# Field documentation (the OpenAPI descriptions) used as column descriptions,
# keyed "Type.field".
_DOC: dict[str, str] = {
    "meta.name": (
        "Name must be unique within a namespace. Is required when creating resources, although some "
        "resources may allow a client to request the generation of an appropriate name automatically. "
        "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
        "updated. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    ),
    "meta.creationTimestamp": (
        "CreationTimestamp is a timestamp representing the server time when this object was created. It "
        "is not guaranteed to be set in happens-before order across separate operations. Clients may not "
        "set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
        "Read-only. Null for lists. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
    ),
    "PodStatus.podIP": (
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet "
        "allocated."
    ),
    "PodStatus.nominatedNodeName": (
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be "
        "scheduled right away as preemption victims receive their graceful termination periods. This "
        "field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to "
        "place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to "
        "give the resources on this node to a higher priority pod that is created after preemption. As a "
        "result, this field may be different than PodSpec.nodeName when the pod is scheduled."
    ),
    "PodSpec.nodeName": (
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for "
        "scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for "
        "this node becomes responsible for the lifecycle of this pod. This field should not be used to "
        "express a desire for the pod to be scheduled on a specific node. "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"
    ),
    "PodSpec.readinessGates": (
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all "
        "its containers are ready AND all conditions specified in the readiness gates have status equal "
        'to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates'
    ),
    "PodSpec.nodeSelector": (
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must "
        "match a node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
    ),
    "RCSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit "
        "zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"
    ),
    "RCSpec.selector": (
        "Selector is a label query over pods that should match the Replicas count. If Selector is empty, "
        "it is defaulted to the labels present on the Pod template. Label keys and values that must "
        "match in order to be controlled by this replication controller, if empty defaulted to labels on "
        "Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "RCStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"
    ),
    "RCStatus.readyReplicas": "The number of ready replicas for this replication controller.",
    "ServiceSpec.type": (
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a cluster-internal '
        "IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that "
        "is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If "
        'clusterIP is "None", no virtual IP is allocated and the endpoints are published as a set of '
        'endpoints rather than a virtual IP. "NodePort" builds on ClusterIP and allocates a port on '
        'every node which routes to the same endpoints as the clusterIP. "LoadBalancer" builds on '
        "NodePort and creates an external load-balancer (if supported in the current cloud) which routes "
        'to the same endpoints as the clusterIP. "ExternalName" aliases this service to the specified '
        "externalName. Several other fields do not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"
    ),
    "ServiceSpec.clusterIP": (
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is "
        "specified manually, is in-range (as per system configuration), and is not in use, it will be "
        "allocated to the service; otherwise creation of the service will fail. This field may not be "
        "changed through updates unless the type field is also being changed to ExternalName (which "
        "requires this field to be blank) or the type field is being changed from ExternalName (in which "
        'case this field may optionally be specified, as describe above).  Valid values are "None", '
        'empty string (""), or a valid IP address. Setting this to "None" makes a "headless service" (no '
        "virtual IP), which is useful when direct endpoint connections are preferred and proxying is not "
        "required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is "
        "specified when creating a Service of type ExternalName, creation will fail. This field will be "
        "wiped when updating a Service to type ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
    ),
    "ServiceSpec.externalIPs": (
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic "
        "for this service.  These IPs are not managed by Kubernetes.  The user is responsible for "
        "ensuring that traffic arrives at a node with this IP.  A common example is external "
        "load-balancers that are not part of the Kubernetes system."
    ),
    "ServiceSpec.ports": (
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
    ),
    "ServiceSpec.selector": (
        "Route service traffic to pods with label keys and values matching this selector. If empty or "
        "not present, the service is assumed to have an external process managing its endpoints, which "
        "Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. "
        "Ignored if type is ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
    ),
    "Endpoints.subsets": (
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets "
        "according to the IPs they share. A single address with multiple ports, some of which are ready "
        "and some of which are not (because they come from different containers) will result in the "
        "address being displayed in different subsets for the different ports. No address will appear in "
        "both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that "
        "comprise a service."
    ),
    "NodeSystemInfo.kubeletVersion": "Kubelet Version reported by the node.",
    "NodeSystemInfo.osImage": (
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
    ),
    "NodeSystemInfo.kernelVersion": (
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
    ),
    "NodeSystemInfo.containerRuntimeVersion": (
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."
    ),
    "NodeStatus.addresses": (
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
        "https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared "
        "as mergeable, but the merge key is not sufficiently unique, which can cause data corruption "
        "when it is merged. Callers should instead use a full-replacement patch. See "
        "https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change "
        "during the lifetime of a Node. However, there are some exceptions where this may not be "
        "possible, such as Pods that inherit a Node's address in its own status or consumers of the "
        "downward API (status.hostIP)."
    ),
    "Event.lastTimestamp": "The time at which the most recent occurrence of this event was recorded.",
    "Event.type": "Type of this event (Normal, Warning), new types could be added in the future",
    "Event.reason": (
        "This should be a short, machine understandable string that gives the reason for the transition "
        "into the object's current status."
    ),
    "Event.involvedObject": "The object that this event is about.",
    "Event.source": "The component reporting this event. Should be a short machine understandable string.",
    "Event.message": "A human-readable description of the status of this operation.",
    "Event.firstTimestamp": (
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
    ),
    "Event.count": "The number of times this event has occurred.",
    "ObjectReference.fieldPath": (
        "If referring to a piece of an object instead of an entire object, this string should contain a "
        "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
        "if the object reference is to a container within a pod, this would take on a value like: "
        '"spec.containers{name}" (where "name" refers to the name of the container that triggered the '
        'event) or if no container name is specified "spec.containers[2]" (container with index 2 in '
        "this pod). This syntax is chosen only to have some well-defined way of referencing a part of an "
        "object."
    ),
    "Secret.type": (
        "Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
    ),
    "Secret.data": (
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or "
        "'.'. The serialized form of the secret data is a base64 encoded string, representing the "
        "arbitrary (possibly non-string) data value here. Described in "
        "https://tools.ietf.org/html/rfc4648#section-4"
    ),
    "ServiceAccount.secrets": (
        "Secrets is a list of the secrets in the same namespace that pods running using this "
        "ServiceAccount are allowed to use. Pods are only limited to this list if this service account "
        'has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The '
        '"kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate '
        "namespaces to isolate access to mounted secrets. This field should not be used to find "
        "auto-generated service account token secrets for use outside of pods. Instead, tokens can be "
        "requested directly using the TokenRequest API, or service account token secrets can be manually "
        "created. More info: https://kubernetes.io/docs/concepts/configuration/secret"
    ),
    "PVSpec.capacity": (
        "capacity is the description of the persistent volume's resources and capacity. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"
    ),
    "PVSpec.accessModes": (
        "accessModes contains all ways the volume can be mounted. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"
    ),
    "PVSpec.persistentVolumeReclaimPolicy": (
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from "
        "its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete "
        "(default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must "
        "be supported by the volume plugin underlying this PersistentVolume. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"
    ),
    "PVSpec.claimRef": (
        "claimRef is part of a bi-directional binding between PersistentVolume and "
        "PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative "
        "bind between PV and PVC. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"
    ),
    "PVSpec.volumeMode": (
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain "
        "in raw block state. Value of Filesystem is implied when not included in spec."
    ),
    "PVStatus.phase": (
        "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"
    ),
    "PVStatus.reason": (
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing "
        "and tidy display in the CLI."
    ),
    "PVCStatus.phase": "phase represents the current phase of PersistentVolumeClaim.",
    "PVCStatus.capacity": "capacity represents the actual resources of the underlying volume.",
    "PVCStatus.accessModes": (
        "accessModes contains the actual access modes the volume backing the PVC has. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"
    ),
    "PVCSpec.volumeName": "volumeName is the binding reference to the PersistentVolume backing this claim.",
    "PVCSpec.volumeMode": (
        "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied "
        "when not included in claim spec."
    ),
    "ConfigMap.data": (
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', "
        "'_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored "
        "in Data must not overlap with the keys in the BinaryData field, this is enforced during "
        "validation process."
    ),
    "RSSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit "
        "zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"
    ),
    "RSSpec.selector": (
        "Selector is a label query over pods that should match the replica count. Label keys and values "
        "that must match in order to be controlled by this replica set. It must match the pod template's "
        "labels. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "RSStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"
    ),
    "RSStatus.readyReplicas": (
        "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."
    ),
    "DSStatus.desiredNumberScheduled": (
        "The total number of nodes that should be running the daemon pod (including nodes correctly "
        "running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DSStatus.currentNumberScheduled": (
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon "
        "pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DSStatus.numberReady": (
        "numberReady is the number of nodes that should be running the daemon pod and have one or more "
        "of the daemon pod running with a Ready Condition."
    ),
    "DSStatus.updatedNumberScheduled": "The total number of nodes that are running updated daemon pod",
    "DSStatus.numberAvailable": (
        "The number of nodes that should be running the daemon pod and have one or more of the daemon "
        "pod running and available (ready for at least spec.minReadySeconds)"
    ),
    "DSSpec.selector": (
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. It must match the pod template's labels. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "DeploymentStatus.updatedReplicas": (
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
    ),
    "DeploymentStatus.availableReplicas": (
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."
    ),
    "DeploymentSpec.selector": (
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones "
        "affected by this deployment. It must match the pod template's labels."
    ),
    "ControllerRevision.revision": "Revision indicates the revision of the state represented by Data.",
    "JobStatus.succeeded": (
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
        "spec. However, it may decrease in reaction to scale down of elastic indexed jobs."
    ),
    "JobSpec.selector": (
        "A label query over pods that should match the pod count. Normally, the system sets this field "
        "for you. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "CronJobSpec.schedule": "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    "CronJobSpec.timeZone": (
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will "
        "default to the time zone of the kube-controller-manager process. The set of valid time zone "
        "names and the time zone offset is loaded from the system-wide time zone database by the API "
        "server during CronJob validation and the controller manager during execution. If no system-wide "
        "time zone database can be found a bundled version of the database is used instead. If the time "
        "zone name becomes invalid during the lifetime of a CronJob or due to a change in host "
        "configuration, the controller will stop creating new new Jobs and will create a system event "
        "with the reason UnknownTimeZone. More information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
    ),
    "CronJobSpec.suspend": (
        "This flag tells the controller to suspend subsequent executions, it does not apply to already "
        "started executions.  Defaults to false."
    ),
    "CronJobStatus.active": "A list of pointers to currently running jobs.",
    "CronJobStatus.lastScheduleTime": (
        "Information when was the last time the job was successfully scheduled."
    ),
    "HPASpec.scaleTargetRef": (
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which "
        "metrics should be collected, as well as to actually change the replica count."
    ),
    "HPASpec.metrics": (
        "metrics contains the specifications for which to use to calculate the desired replica count "
        "(the maximum replica count across all metrics will be used).  The desired replica count is "
        "calculated multiplying the ratio between the target value and the current value by the current "
        "number of pods.  Ergo, metrics used must decrease as the pod count is increased, and "
        "vice-versa.  See the individual metric source types for more information about how each type of "
        "metric must respond. If not set, the default metric will be set to 80% average CPU utilization."
    ),
    "HPASpec.minReplicas": (
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale "
        "down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate "
        "HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is "
        "active as long as at least one metric value is available."
    ),
    "HPASpec.maxReplicas": (
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. "
        "It cannot be less that minReplicas."
    ),
    "HPAStatus.currentReplicas": (
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen "
        "by the autoscaler."
    ),
    "NetworkPolicySpec.podSelector": (
        "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress "
        "rules is applied to any pods selected by this field. Multiple network policies can select the "
        "same set of pods. In this case, the ingress rules for each are combined additively. This field "
        "is NOT optional and follows standard label selector semantics. An empty podSelector matches all "
        "pods in this namespace."
    ),
    "RoleBinding.roleRef": (
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. "
        "If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."
    ),
    "ClusterRoleBinding.roleRef": (
        "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be "
        "resolved, the Authorizer must return an error. This field is immutable."
    ),
    "LeaseSpec.holderIdentity": (
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
        "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
        "field."
    ),
    "StorageClass.provisioner": "provisioner indicates the type of the provisioner.",
    "StorageClass.reclaimPolicy": (
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this "
        "storage class. Defaults to Delete."
    ),
    "StorageClass.volumeBindingMode": (
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When "
        "unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the "
        "VolumeScheduling feature."
    ),
    "StorageClass.allowVolumeExpansion": (
        "allowVolumeExpansion shows whether the storage class allow volume expand."
    ),
    "PriorityClass.value": (
        "value represents the integer value of this priority class. This is the actual priority that "
        "pods receive when they have the name of this class in their pod spec."
    ),
    "PriorityClass.globalDefault": (
        "globalDefault specifies whether this PriorityClass should be considered as the default priority "
        "for pods that do not have any priority class. Only one PriorityClass can be marked as "
        "`globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` "
        "field set to true, the smallest value of such global default PriorityClasses will be used as "
        "the default priority."
    ),
    "PriorityClass.preemptionPolicy": (
        "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, "
        "PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."
    ),
    "EndpointSlice.addressType": (
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in this "
        "slice must be the same type. This field is immutable after creation. The following address "
        "types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 "
        "Address. * FQDN: Represents a Fully Qualified Domain Name."
    ),
    "EndpointSlice.ports": (
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each port "
        "must have a unique name. When ports is empty, it indicates that there are no defined ports. "
        'When a port is defined with a nil port value, it indicates "all ports". Each slice may include '
        "a maximum of 100 ports."
    ),
    "EndpointSlice.endpoints": (
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 "
        "endpoints."
    ),
}


NAME = Column("Name", "string", _DOC["meta.name"], 0, "name")
AGE = _c("Age", "meta.creationTimestamp")
CONTAINERS = _wide("Containers", "Names of each container in the template.")
IMAGES = _wide("Images", "Images referenced by each container in the template.")

# The generic table of kinds without a printer (rest.defaultTableConvertor).
DEFAULT_COLUMNS = (NAME, Column("Created At", "date", _DOC["meta.creationTimestamp"]))


def _default_cells(obj: Obj, now: datetime) -> list[Any]:
    created = _parse_time(_meta(obj).get("creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "0001-01-01T00:00:00Z"
    return [_name(obj), stamp]


# ---------------------------------------------------------------------------
# core
# ---------------------------------------------------------------------------


def _is_sidecar(container: Any) -> bool:
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Any, type_: str) -> bool:
    """True if the first condition of ``type_`` has status True."""
    for c in _list(conditions):
        if c.get("type") == type_:
            return c.get("status") == "True"
    return False


def _last_termination(cs: Obj) -> datetime | None:
    return _parse_time(_get(cs, "lastState", "terminated", "finishedAt"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{_int(term.get('exitCode'))}"


def _pod_status(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(Ready, Status, Restarts) exactly as ``printPod`` computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = [c for c in _list(spec.get("initContainers")) if isinstance(c, dict)]
    by_name = {c.get("name"): c for c in init_specs}
    total = len(_list(spec.get("containers"))) + sum(_is_sidecar(c) for c in init_specs)
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase
    for c in _list(status.get("conditions")):
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(_list(status.get("initContainerStatuses"))):
        restarts += _int(cs.get("restartCount"))
        last_restart = _later(last_restart, _last_termination(cs))
        sidecar = _is_sidecar(by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, _last_termination(cs))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and _int(term.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += bool(cs.get("ready"))
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(_list(status.get("containerStatuses"))):
            restarts += _int(cs.get("restartCount"))
            last_restart = _later(last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            term, waiting = state.get("terminated"), state.get("waiting")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # Back to Running if a container still runs after another completed.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status.get("conditions"), "Ready") else "NotReady"

    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_str = str(restarts)
    if restarts and last_restart is not None:
        restarts_str = f"{restarts} ({_since_dt(last_restart, now)} ago)"
    return f"{ready}/{total}", reason, restarts_str


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready, reason, restarts = _pod_status(pod, now)
    ips = _list(status.get("podIPs"))
    ip = (ips[0].get("ip") if ips else None) or status.get("podIP") or "<none>"
    gates = "<none>"
    if _list(spec.get("readinessGates")):
        conditions = _list(status.get("conditions"))
        true = 0
        for gate in spec["readinessGates"]:
            match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
            true += match is not None and match.get("status") == "True"
        gates = f"{true}/{len(spec['readinessGates'])}"
    return [
        _name(pod),
        ready,
        reason,
        restarts,
        _age(pod, now),
        ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates,
    ]


POD = Printer(
    (
        NAME,
        _c("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _c("Status", "The aggregate status of the containers in this pod."),
        _c(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted.",
        ),
        AGE,
        _wide("IP", "PodStatus.podIP"),
        _wide("Node", "PodSpec.nodeName"),
        _wide("Nominated Node", "PodStatus.nominatedNodeName"),
        _wide("Readiness Gates", "PodSpec.readinessGates"),
    ),
    _pod_cells,
)

POD_TEMPLATE = Printer(
    (
        NAME,
        _c("Containers", "Names of each container in the template."),
        _c("Images", "Images referenced by each container in the template."),
        _c("Pod Labels", "The labels for the pod template."),
    ),
    lambda o, now: [
        _name(o),
        *_containers(_get(o, "template", "spec", "containers")),
        _format_labels(_get(o, "template", "metadata", "labels")),
    ],
)

REPLICATION_CONTROLLER = Printer(
    (
        NAME,
        _c("Desired", "RCSpec.replicas", "integer"),
        _c("Current", "RCStatus.replicas", "integer"),
        _c("Ready", "RCStatus.readyReplicas", "integer"),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "RCSpec.selector"),
    ),
    lambda o, now: [
        _name(o),
        _int(_get(o, "spec", "replicas", default=1)),
        _int(_get(o, "status", "replicas")),
        _int(_get(o, "status", "readyReplicas")),
        _age(o, now),
        *_containers(_template_containers(o)),
        _format_labels(_get(o, "spec", "selector")),
    ],
)


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    status = node.get("status") or {}
    ready = next((c for c in _list(status.get("conditions")) if c.get("type") == "Ready"), None)
    states = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"]
    if _get(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        found = (a.get("address") for a in _list(status.get("addresses")) if a.get("type") == kind)
        return next(found, None) or "<none>"

    return [
        _name(node),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion") or "",
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODE = Printer(
    (
        NAME,
        _c("Status", "The status of the node"),
        _c("Roles", "The roles of the node"),
        AGE,
        _c("Version", "NodeSystemInfo.kubeletVersion"),
        _wide("Internal-IP", "NodeStatus.addresses"),
        _wide("External-IP", "NodeStatus.addresses"),
        _wide("OS-Image", "NodeSystemInfo.osImage"),
        _wide("Kernel-Version", "NodeSystemInfo.kernelVersion"),
        _wide("Container-Runtime", "NodeSystemInfo.containerRuntimeVersion"),
    ),
    _node_cells,
)

NAMESPACE = Printer(
    (NAME, _c("Status", "The status of the namespace"), AGE),
    lambda o, now: [_name(o), _get(o, "status", "phase", default="Active"), _age(o, now)],
)


def _lb_ingress(status: Any) -> str:
    """Sorted, de-duplicated IPs (else hostnames) of a load balancer status (wide: not clipped)."""
    found = {i.get("ip") or i.get("hostname") for i in _list(_get(status, "ingress"))}
    return ",".join(sorted(x for x in found if x))


def _service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = _list(spec.get("externalIPs"))
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        lb = _lb_ingress(_get(svc, "status", "loadBalancer"))
        if external:
            return ",".join([*(lb.split(",") if lb else []), *external])
        return lb or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    ips = _list(spec.get("clusterIPs")) or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in _list(spec.get("ports")):
        node_port = _int(p.get("nodePort"))
        port = f"{_int(p.get('port'))}:{node_port}" if node_port > 0 else str(_int(p.get("port")))
        ports.append(f"{port}/{p.get('protocol') or 'TCP'}")
    return [
        _name(svc),
        spec.get("type") or "ClusterIP",
        ips[0] if ips else "<none>",
        _service_external_ip(svc),
        ",".join(ports) or "<none>",
        _age(svc, now),
        _format_labels(spec.get("selector")),
    ]


SERVICE = Printer(
    (
        NAME,
        _c("Type", "ServiceSpec.type"),
        _c("Cluster-IP", "ServiceSpec.clusterIP"),
        _c("External-IP", "ServiceSpec.externalIPs"),
        _c("Port(s)", "ServiceSpec.ports"),
        AGE,
        _wide("Selector", "ServiceSpec.selector"),
    ),
    _service_cells,
)


def _format_endpoints(subsets: Any) -> str:
    """``formatEndpoints``: up to three ip:port pairs, then "+ N more..."."""
    if not _list(subsets):
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = [a.get("ip") or "" for a in _list(ss.get("addresses"))]
        ports = _list(ss.get("ports"))
        # Headless services may have no ports: just the addresses.
        for port in ports or [None]:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip if port is None else _join_host_port(ip, _int(port.get("port"))))
    ret = ",".join(shown)
    return f"{ret} + {count - limit} more..." if more else ret


ENDPOINTS = Printer(
    (NAME, _c("Endpoints", "Endpoints.subsets"), AGE),
    lambda o, now: [_name(o), _format_endpoints(o.get("subsets")), _age(o, now)],
)

CONFIG_MAP = Printer(
    (NAME, _c("Data", "ConfigMap.data"), AGE),
    lambda o, now: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o, now)],
)

# stringData is merged into data when the real server stores a Secret.
SECRET = Printer(
    (NAME, _c("Type", "Secret.type"), _c("Data", "Secret.data"), AGE),
    lambda o, now: [
        _name(o),
        o.get("type") or "Opaque",
        len(set(o.get("data") or {}) | set(o.get("stringData") or {})),
        _age(o, now),
    ],
)

SERVICE_ACCOUNT = Printer(
    (NAME, _c("Secrets", "ServiceAccount.secrets"), AGE),
    lambda o, now: [_name(o), len(_list(o.get("secrets"))), _age(o, now)],
)


def _event_cells(ev: Obj, now: datetime) -> list[Any]:
    first = _since(ev.get("firstTimestamp"), now)
    if not _parse_time(ev.get("firstTimestamp")):
        first = _since(ev.get("eventTime"), now)
    last = _since(ev.get("lastTimestamp"), now) if _parse_time(ev.get("lastTimestamp")) else first
    count = _int(ev.get("count"))
    if ev.get("series") is not None:
        last = _since(_get(ev, "series", "lastObservedTime"), now)
        count = _int(_get(ev, "series", "count"))
    elif count == 0:
        count = 1  # singleton events have no count in the new API
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = _get(ev, "source", "component") or ev.get("reportingController") or ""
    host = _get(ev, "source", "host") or ev.get("reportingInstance") or ""
    source = f"{component}, {host}" if host else component
    return [
        last,
        ev.get("type") or "",
        ev.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        source,
        (ev.get("message") or "").strip(),
        first,
        count,
        _name(ev),
    ]


def _events_v1_cells(ev: Obj, now: datetime) -> list[Any]:
    """events.k8s.io/v1 Events are the same objects with renamed fields."""
    core = {
        "metadata": ev.get("metadata"),
        "type": ev.get("type"),
        "reason": ev.get("reason"),
        "involvedObject": ev.get("regarding"),
        "message": ev.get("note"),
        "eventTime": ev.get("eventTime"),
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "source": ev.get("deprecatedSource"),
        "series": ev.get("series"),
        "reportingController": ev.get("reportingController"),
        "reportingInstance": ev.get("reportingInstance"),
    }
    return _event_cells(core, now)


_EVENT_COLUMNS = (
    _c("Last Seen", "Event.lastTimestamp"),
    _c("Type", "Event.type"),
    _c("Reason", "Event.reason"),
    _c("Object", "Event.involvedObject"),
    _wide("Subobject", "ObjectReference.fieldPath"),
    _wide("Source", "Event.source"),
    _c("Message", "Event.message"),
    _wide("First Seen", "Event.firstTimestamp"),
    _wide("Count", "Event.count"),
    Column("Name", "string", _DOC["meta.name"], 1, "name"),
)
EVENT = Printer(_EVENT_COLUMNS, _event_cells)
EVENT_V1 = Printer(_EVENT_COLUMNS, _events_v1_cells)


def _pv_class(obj: Obj) -> str:
    annotations = _meta(obj).get("annotations") or {}
    if "volume.beta.kubernetes.io/storage-class" in annotations:
        return annotations["volume.beta.kubernetes.io/storage-class"]
    return _get(obj, "spec", "storageClassName", default="")


def _pv_cells(pv: Obj, now: datetime) -> list[Any]:
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef")
    claim_str = f"{claim.get('namespace') or ''}/{claim.get('name') or ''}" if isinstance(claim, dict) else ""
    phase = (
        "Terminating"
        if _meta(pv).get("deletionTimestamp")
        else _get(pv, "status", "phase", default="Pending")
    )
    return [
        _name(pv),
        _quantity(_get(spec, "capacity", "storage")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "Retain",
        phase,
        claim_str,
        _pv_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>",
        _get(pv, "status", "reason", default=""),
        _age(pv, now),
        spec.get("volumeMode") or "Filesystem",
    ]


PERSISTENT_VOLUME = Printer(
    (
        NAME,
        _c("Capacity", "PVSpec.capacity"),
        _c("Access Modes", "PVSpec.accessModes"),
        _c("Reclaim Policy", "PVSpec.persistentVolumeReclaimPolicy"),
        _c("Status", "PVStatus.phase"),
        _c("Claim", "PVSpec.claimRef"),
        _c("StorageClass", "StorageClass of the pv"),
        _c("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        _c("Reason", "PVStatus.reason"),
        AGE,
        _wide("VolumeMode", "PVSpec.volumeMode"),
    ),
    _pv_cells,
)


def _pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    spec = pvc.get("spec") or {}
    phase = (
        "Terminating"
        if _meta(pvc).get("deletionTimestamp")
        else _get(pvc, "status", "phase", default="Pending")
    )
    capacity = access = ""
    if spec.get("volumeName"):
        access = _access_modes(_get(pvc, "status", "accessModes"))
        capacity = _quantity(_get(pvc, "status", "capacity", "storage"))
    return [
        _name(pvc),
        phase,
        spec.get("volumeName") or "",
        capacity,
        access,
        _pv_class(pvc),
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc, now),
        spec.get("volumeMode") or "Filesystem",
    ]


PERSISTENT_VOLUME_CLAIM = Printer(
    (
        NAME,
        _c("Status", "PVCStatus.phase"),
        _c("Volume", "PVCSpec.volumeName"),
        _c("Capacity", "PVCStatus.capacity"),
        _c("Access Modes", "PVCStatus.accessModes"),
        _c("StorageClass", "StorageClass of the pvc"),
        _c("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        AGE,
        _wide("VolumeMode", "PVCSpec.volumeMode"),
    ),
    _pvc_cells,
)


def _resource_quota_cells(rq: Obj, now: datetime) -> list[Any]:
    hard = _get(rq, "status", "hard", default={})
    used = _get(rq, "status", "used", default={})
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [_name(rq), ", ".join(requests), ", ".join(limits), _age(rq, now)]


RESOURCE_QUOTA = Printer(
    (
        NAME,
        _c("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
        _c(
            "Limit",
            "Limits control the maximum amount of cpu/memory that a container may use independent of "
            "contention on the node.",
        ),
        AGE,
    ),
    _resource_quota_cells,
)

# ---------------------------------------------------------------------------
# apps
# ---------------------------------------------------------------------------


def _deployment_cells(o: Obj, now: datetime) -> list[Any]:
    selector = _selector_string(_get(o, "spec", "selector"))
    return [
        _name(o),
        f"{_int(_get(o, 'status', 'readyReplicas'))}/{_int(_get(o, 'spec', 'replicas', default=1))}",
        _int(_get(o, "status", "updatedReplicas")),
        _int(_get(o, "status", "availableReplicas")),
        _age(o, now),
        *_containers(_template_containers(o)),
        "<invalid>" if selector is None else selector,
    ]


DEPLOYMENT = Printer(
    (
        NAME,
        _c("Ready", "Number of the pod with ready state"),
        _c("Up-to-date", "DeploymentStatus.updatedReplicas"),
        _c("Available", "DeploymentStatus.availableReplicas"),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "DeploymentSpec.selector"),
    ),
    _deployment_cells,
)

REPLICA_SET = Printer(
    (
        NAME,
        _c("Desired", "RSSpec.replicas", "integer"),
        _c("Current", "RSStatus.replicas", "integer"),
        _c("Ready", "RSStatus.readyReplicas", "integer"),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "RSSpec.selector"),
    ),
    lambda o, now: [
        _name(o),
        _int(_get(o, "spec", "replicas", default=1)),
        _int(_get(o, "status", "replicas")),
        _int(_get(o, "status", "readyReplicas")),
        _age(o, now),
        *_containers(_template_containers(o)),
        _format_label_selector(_get(o, "spec", "selector")),
    ],
)

STATEFUL_SET = Printer(
    (NAME, _c("Ready", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES),
    lambda o, now: [
        _name(o),
        f"{_int(_get(o, 'status', 'readyReplicas'))}/{_int(_get(o, 'spec', 'replicas', default=1))}",
        _age(o, now),
        *_containers(_template_containers(o)),
    ],
)

DAEMON_SET = Printer(
    (
        NAME,
        _c("Desired", "DSStatus.desiredNumberScheduled", "integer"),
        _c("Current", "DSStatus.currentNumberScheduled", "integer"),
        _c("Ready", "DSStatus.numberReady", "integer"),
        _c("Up-to-date", "DSStatus.updatedNumberScheduled", "integer"),
        _c("Available", "DSStatus.numberAvailable", "integer"),
        _c("Node Selector", "PodSpec.nodeSelector"),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "DSSpec.selector"),
    ),
    lambda o, now: [
        _name(o),
        *(
            _int(_get(o, "status", f))
            for f in (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            )
        ),
        _format_labels(_get(o, "spec", "template", "spec", "nodeSelector")),
        _age(o, now),
        *_containers(_template_containers(o)),
        _format_label_selector(_get(o, "spec", "selector")),
    ],
)


def _controller_revision_cells(o: Obj, now: datetime) -> list[Any]:
    owner = next((r for r in _list(_meta(o).get("ownerReferences")) if r.get("controller")), None)
    controller = "<none>"
    if owner is not None:
        api_version = owner.get("apiVersion") or ""
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        kind = owner.get("kind") or ""
        group_kind = f"{kind}.{group}" if group else kind
        controller = (
            f"{group_kind.lower()}/{owner.get('name') or ''}" if group_kind else owner.get("name") or ""
        )
    return [_name(o), controller, _int(o.get("revision")), _age(o, now)]


CONTROLLER_REVISION = Printer(
    (NAME, _c("Controller", "Controller of the object"), _c("Revision", "ControllerRevision.revision"), AGE),
    _controller_revision_cells,
)

# ---------------------------------------------------------------------------
# batch
# ---------------------------------------------------------------------------


def _job_cells(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec['completions'])}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec['parallelism'])}"
    else:
        completions = f"{succeeded}/1"
    start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or _aware(now)) - start).total_seconds())
    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        state = "Complete"
    elif _condition_true(conditions, "Failed"):
        state = "Failed"
    elif _meta(o).get("deletionTimestamp"):
        state = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        state = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    return [
        _name(o),
        state,
        completions,
        duration,
        _age(o, now),
        *_containers(_template_containers(o)),
        _format_label_selector(spec.get("selector")),
    ]


JOB = Printer(
    (
        NAME,
        _c("Status", "Status of the job."),
        _c("Completions", "JobStatus.succeeded"),
        _c("Duration", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "JobSpec.selector"),
    ),
    _job_cells,
)


def _cron_job_cells(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = _get(spec, "jobTemplate", "spec", default={})
    return [
        _name(o),
        spec.get("schedule") or "",
        "<none>" if spec.get("timeZone") is None else spec["timeZone"],
        _bool_ptr(spec.get("suspend", False)),
        len(_list(status.get("active"))),
        "<none>" if last is None else _since(last, now),
        _age(o, now),
        *_containers(_get(job_spec, "template", "spec", "containers")),
        _format_label_selector(job_spec.get("selector")),
    ]


CRON_JOB = Printer(
    (
        NAME,
        _c("Schedule", "CronJobSpec.schedule"),
        _c("Timezone", "CronJobSpec.timeZone"),
        _c("Suspend", "CronJobSpec.suspend", "boolean"),
        _c("Active", "CronJobStatus.active", "integer"),
        _c("Last Schedule", "CronJobStatus.lastScheduleTime"),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "JobSpec.selector"),
    ),
    _cron_job_cells,
)

# ---------------------------------------------------------------------------
# networking, discovery, coordination
# ---------------------------------------------------------------------------


def _ingress_cells(o: Obj, now: datetime) -> list[Any]:
    spec = o.get("spec") or {}
    rules = _list(spec.get("rules"))
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    host_str = "*" if not hosts else ",".join(hosts) + (f" + {len(rules) - 3} more..." if more else "")
    return [
        _name(o),
        spec.get("ingressClassName") or "<none>",
        host_str,
        _lb_ingress(_get(o, "status", "loadBalancer")),
        "80, 443" if _list(spec.get("tls")) else "80",
        _age(o, now),
    ]


INGRESS = Printer(
    (
        NAME,
        _c("Class", "The name of the IngressClass resource that should be used for additional configuration"),
        _c("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        _c("Address", "Address is a list containing ingress points for the load-balancer"),
        _c("Ports", "Ports of TLS configurations that open"),
        AGE,
    ),
    _ingress_cells,
)


def _ingress_class_cells(o: Obj, now: datetime) -> list[Any]:
    params = _get(o, "spec", "parameters")
    text = "<none>"
    if isinstance(params, dict):
        text = params.get("kind") or ""
        if params.get("apiGroup") is not None:
            text += "." + params["apiGroup"]
        text += "/" + (params.get("name") or "")
    return [_name(o), _get(o, "spec", "controller", default=""), text, _age(o, now)]


INGRESS_CLASS = Printer(
    (
        NAME,
        _c("Controller", "Controller that is responsible for handling this class"),
        _c("Parameters", "A reference to a resource with additional parameters"),
        AGE,
    ),
    _ingress_class_cells,
)

NETWORK_POLICY = Printer(
    (NAME, _c("Pod-Selector", "NetworkPolicySpec.podSelector"), AGE),
    lambda o, now: [_name(o), _format_label_selector(_get(o, "spec", "podSelector")), _age(o, now)],
)


def _endpoint_slice_cells(o: Obj, now: datetime) -> list[Any]:
    ports = _list(o.get("ports"))
    shown = []
    for p in ports[:3]:
        if p.get("port") is not None:
            shown.append(str(_int(p["port"])))
        else:
            shown.append(p["name"] if p.get("name") is not None else "*")
    addresses = [a for ep in _list(o.get("endpoints")) for a in _list(ep.get("addresses"))]
    return [
        _name(o),
        o.get("addressType") or "",
        _list_with_more(shown, len(ports) > 3, len(ports), 3),
        _list_with_more(addresses[:3], len(addresses) > 3, len(addresses), 3),
        _age(o, now),
    ]


ENDPOINT_SLICE = Printer(
    (
        NAME,
        _c("AddressType", "EndpointSlice.addressType"),
        _c("Ports", "EndpointSlice.ports"),
        _c("Endpoints", "EndpointSlice.endpoints"),
        AGE,
    ),
    _endpoint_slice_cells,
)

LEASE = Printer(
    (NAME, _c("Holder", "LeaseSpec.holderIdentity"), AGE),
    lambda o, now: [_name(o), _get(o, "spec", "holderIdentity", default=""), _age(o, now)],
)

# ---------------------------------------------------------------------------
# rbac, storage, policy, scheduling, autoscaling, admission, node
# ---------------------------------------------------------------------------


def _binding_cells(o: Obj, now: datetime) -> list[Any]:
    ref = o.get("roleRef") or {}
    subjects: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
    for s in _list(o.get("subjects")):
        kind, name = s.get("kind"), s.get("name") or ""
        if kind == "ServiceAccount":
            subjects[kind].append(f"{s.get('namespace') or ''}/{name}")
        elif kind in subjects:
            subjects[kind].append(name)
    return [
        _name(o),
        f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
        _age(o, now),
        *(", ".join(subjects[k]) for k in ("User", "Group", "ServiceAccount")),
    ]


def _binding(doc: str, noun: str) -> Printer:
    return Printer(
        (
            NAME,
            _c("Role", doc),
            AGE,
            _wide("Users", f"Users in the {noun}"),
            _wide("Groups", f"Groups in the {noun}"),
            _wide("ServiceAccounts", f"ServiceAccounts in the {noun}"),
        ),
        _binding_cells,
    )


_DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _storage_class_cells(o: Obj, now: datetime) -> list[Any]:
    annotations = _meta(o).get("annotations") or {}
    default = any(annotations.get(a) == "true" for a in _DEFAULT_CLASS_ANNOTATIONS)
    return [
        _name(o) + (" (default)" if default else ""),
        o.get("provisioner") or "",
        o.get("reclaimPolicy") or "Delete",
        o.get("volumeBindingMode") or "Immediate",
        bool(o.get("allowVolumeExpansion")),
        _age(o, now),
    ]


STORAGE_CLASS = Printer(
    (
        NAME,
        _c("Provisioner", "StorageClass.provisioner"),
        _c("ReclaimPolicy", "StorageClass.reclaimPolicy"),
        _c("VolumeBindingMode", "StorageClass.volumeBindingMode"),
        _c("AllowVolumeExpansion", "StorageClass.allowVolumeExpansion"),
        AGE,
    ),
    _storage_class_cells,
)


def _pdb_cells(o: Obj, now: datetime) -> list[Any]:
    spec = o.get("spec") or {}
    return [
        _name(o),
        *("N/A" if spec.get(f) is None else str(spec[f]) for f in ("minAvailable", "maxUnavailable")),
        _int(_get(o, "status", "disruptionsAllowed")),
        _age(o, now),
    ]


POD_DISRUPTION_BUDGET = Printer(
    (
        NAME,
        _c("Min Available", "The minimum number of pods that must be available."),
        _c("Max Unavailable", "The maximum number of pods that may be unavailable."),
        _c("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", "integer"),
        AGE,
    ),
    _pdb_cells,
)

PRIORITY_CLASS = Printer(
    (
        NAME,
        _c("Value", "PriorityClass.value", "integer"),
        _c("Global-Default", "PriorityClass.globalDefault", "boolean"),
        AGE,
        _c("PreemptionPolicy", "PriorityClass.preemptionPolicy"),
    ),
    lambda o, now: [
        _name(o),
        _int(o.get("value")),
        bool(o.get("globalDefault")),
        _age(o, now),
        o.get("preemptionPolicy") or "PreemptLowerPriority",
    ],
)


def _q_str(value: Any) -> str:
    """``(*Quantity).String()`` of an optional quantity."""
    return "<nil>" if value is None else _quantity(value)


_METRIC_SOURCES = {
    "External": "external",
    "Pods": "pods",
    "Object": "object",
    "Resource": "resource",
    "ContainerResource": "containerResource",
}


def _hpa_metric(spec: Obj, status: Obj | None) -> str:
    """One entry of ``formatHPAMetrics``: "current/target" of a metric spec."""
    kind = spec.get("type") or ""
    source = _METRIC_SOURCES.get(kind)
    if source is None:
        return "<unknown type>"
    target = _get(spec, source, "target", default={})
    reported = _get(status, source)  # the matching status entry, if any
    current = _get(reported, "current", default={})
    if kind == "Pods":
        value = "<unknown>" if reported is None else _q_str(current.get("averageValue"))
        return f"{value}/{_q_str(target.get('averageValue'))}"
    if kind in ("External", "Object"):
        if target.get("averageValue") is not None:
            avg = current.get("averageValue")
            return (
                f"{'<unknown>' if avg is None else _quantity(avg)}/{_quantity(target['averageValue'])} (avg)"
            )
        value = "<unknown>" if reported is None else _q_str(current.get("value"))
        return f"{value}/{_q_str(target.get('value'))}"
    name = _get(spec, source, "name", default="")
    if target.get("averageValue") is not None:
        value = "<unknown>" if reported is None else _q_str(current.get("averageValue"))
        return f"{name}: {value}/{_quantity(target['averageValue'])}"
    util, want = current.get("averageUtilization"), target.get("averageUtilization")
    return f"{name}: {'<unknown>' if util is None else f'{util}%'}/{'<auto>' if want is None else f'{want}%'}"


def _cpu_metric(field: str, value: Any) -> Obj:
    """An autoscaling/v2 CPU-utilization metric spec (field "target") or status ("current")."""
    return {"type": "Resource", "resource": {"name": "cpu", field: {"averageUtilization": value}}}


def _hpa_cells(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    metrics, current = spec.get("metrics"), _list(status.get("currentMetrics"))
    if "targetCPUUtilizationPercentage" in spec:  # autoscaling/v1 shape
        metrics = [_cpu_metric("target", spec["targetCPUUtilizationPercentage"])]
        if status.get("currentCPUUtilizationPercentage") is not None:
            current = [_cpu_metric("current", status["currentCPUUtilizationPercentage"])]
    if metrics is None:  # the server defaults to 80% CPU utilization
        metrics = [_cpu_metric("target", 80)]
    targets = [_hpa_metric(m, current[i] if i < len(current) else None) for i, m in enumerate(metrics)]
    text = ", ".join(targets[:2]) + (f" + {len(targets) - 2} more..." if len(targets) > 2 else "")
    ref = spec.get("scaleTargetRef") or {}
    min_pods = 1 if spec.get("minReplicas") is None else _int(spec["minReplicas"])
    return [
        _name(o),
        f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
        text or "<none>",
        str(min_pods),
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(o, now),
    ]


HORIZONTAL_POD_AUTOSCALER = Printer(
    (
        NAME,
        _c("Reference", "HPASpec.scaleTargetRef"),
        _c("Targets", "HPASpec.metrics"),
        _c("MinPods", "HPASpec.minReplicas"),
        _c("MaxPods", "HPASpec.maxReplicas"),
        _c("Replicas", "HPAStatus.currentReplicas"),
        AGE,
    ),
    _hpa_cells,
)

WEBHOOK_CONFIGURATION = Printer(
    (
        NAME,
        _c(
            "Webhooks",
            "Webhooks indicates the number of webhooks registered in this configuration",
            "integer",
        ),
        AGE,
    ),
    lambda o, now: [_name(o), len(_list(o.get("webhooks"))), _age(o, now)],
)

# The real printer describes Handler with a missing swagger key, i.e. "".
RUNTIME_CLASS = Printer(
    (NAME, _c("Handler"), AGE),
    lambda o, now: [_name(o), o.get("handler") or "", _age(o, now)],
)

# ---------------------------------------------------------------------------
# Registry and public API
# ---------------------------------------------------------------------------

PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): POD,
    ("", "PodTemplate"): POD_TEMPLATE,
    ("", "ReplicationController"): REPLICATION_CONTROLLER,
    ("", "Node"): NODE,
    ("", "Namespace"): NAMESPACE,
    ("", "Service"): SERVICE,
    ("", "Endpoints"): ENDPOINTS,
    ("", "ConfigMap"): CONFIG_MAP,
    ("", "Secret"): SECRET,
    ("", "ServiceAccount"): SERVICE_ACCOUNT,
    ("", "Event"): EVENT,
    ("events.k8s.io", "Event"): EVENT_V1,
    ("", "PersistentVolume"): PERSISTENT_VOLUME,
    ("", "PersistentVolumeClaim"): PERSISTENT_VOLUME_CLAIM,
    ("", "ResourceQuota"): RESOURCE_QUOTA,
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "ReplicaSet"): REPLICA_SET,
    ("apps", "StatefulSet"): STATEFUL_SET,
    ("apps", "DaemonSet"): DAEMON_SET,
    ("apps", "ControllerRevision"): CONTROLLER_REVISION,
    ("batch", "Job"): JOB,
    ("batch", "CronJob"): CRON_JOB,
    ("networking.k8s.io", "Ingress"): INGRESS,
    ("networking.k8s.io", "IngressClass"): INGRESS_CLASS,
    ("networking.k8s.io", "NetworkPolicy"): NETWORK_POLICY,
    ("discovery.k8s.io", "EndpointSlice"): ENDPOINT_SLICE,
    ("coordination.k8s.io", "Lease"): LEASE,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding("RoleBinding.roleRef", "roleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding(
        "ClusterRoleBinding.roleRef", "clusterRoleBinding"
    ),
    ("storage.k8s.io", "StorageClass"): STORAGE_CLASS,
    ("policy", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
    ("scheduling.k8s.io", "PriorityClass"): PRIORITY_CLASS,
    ("autoscaling", "HorizontalPodAutoscaler"): HORIZONTAL_POD_AUTOSCALER,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): WEBHOOK_CONFIGURATION,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): WEBHOOK_CONFIGURATION,
    ("node.k8s.io", "RuntimeClass"): RUNTIME_CLASS,
}
# Role, ClusterRole, LimitRange, CustomResourceDefinition, ... have no printer
# in Kubernetes either: they get the default Name / Created At table.

_DEFAULT = Printer(DEFAULT_COLUMNS, _default_cells)


def _printer(group: str, kind: str) -> Printer:
    return PRINTERS.get((group, kind), _DEFAULT)


def column_definitions(group: str, kind: str) -> list[dict[str, Any]]:
    """``Table.columnDefinitions`` for a kind: name, type, format, description, priority."""
    return [c.definition() for c in _printer(group, kind).columns]


def row_cells(group: str, kind: str, obj: Obj, now: datetime) -> list[Any]:
    """``TableRow.cells`` for one object, one per column (wide columns included)."""
    return _printer(group, kind).cells(obj, now)


_POD_DONE = {
    "Succeeded": {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    },
    "Failed": {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."},
}


def row_conditions(group: str, kind: str, obj: Obj) -> list[dict[str, str]]:
    """``TableRow.conditions``: only finished pods carry one (``Completed``)."""
    if (group, kind) != ("", "Pod"):
        return []
    done = _POD_DONE.get(_get(obj, "status", "phase", default=""))
    return [dict(done)] if done else []
