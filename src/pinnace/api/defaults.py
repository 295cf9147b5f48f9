"""The defaults Kubernetes applies to objects it decodes (``pkg/apis/*/v1/defaults.go``).

:func:`apply_defaults` mutates an object in place.  It runs on every create and
update, before :func:`pinnace.api.validation.validate_kind`, and is idempotent.
A few values Kubernetes fills in elsewhere are included because clients see them
on every returned object: a Pod's ``status.phase`` / ``status.qosClass`` (REST
strategy), ``priority`` / ``preemptionPolicy`` (Priority admission), a
Namespace's ``spec.finalizers`` and ``ipFamilies`` / ``ipFamilyPolicy`` of a
Service, and a Job's generated selector (the Job strategy's ``generateSelector``,
which needs the uid the registry assigns just before defaulting).  Server
allocations (cluster IPs, node ports, service account token volumes) are not
defaults and are left to the API server.

Go only materialises a default where the field is a pointer or a string; an
``int32`` left at zero with ``omitempty`` stays absent from JSON, so it stays
absent here too (``minReadySeconds`` is not written).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pinnace.api.validation import canonical_quantity, parse_quantity

__all__ = ["apply_defaults", "image_pull_policy", "pod_qos_class"]


def _dict(parent: dict, key: str) -> dict:
    """parent[key] as a dict, created when absent; a foreign value is left alone."""
    v = parent.get(key)
    if v is None:
        v = parent[key] = {}
    return v if isinstance(v, dict) else {}


def _dicts(v: Any) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _setdefault(obj: dict, key: str, value: Any) -> None:
    # Go treats "" and null like absent for strings and pointers alike.
    if obj.get(key) in (None, ""):
        obj[key] = value


# ---------------------------------------------------------------------------
# Pod specs
# ---------------------------------------------------------------------------


def image_pull_policy(image: Any) -> str:
    """Always for ``:latest`` or an untagged, undigested image; IfNotPresent otherwise."""
    if not isinstance(image, str) or not image:
        return "IfNotPresent"  # unparsable: Kubernetes ignores the error and picks IfNotPresent
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    repo = name[: len(name) - len(tag) - 1] if tag else name
    # docker reference rules: the repository path is lowercase (the registry host may not be).
    path = repo.split("/", 1)[1] if "/" in repo and _is_registry(repo.split("/", 1)[0]) else repo
    if path != path.lower() or not path:
        return "IfNotPresent"
    if digest and not tag:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _is_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def _default_resource_list(rl: Any) -> None:
    # SetDefaults_ResourceList rounds up to milli precision; the API returns canonical text.
    if not isinstance(rl, dict):
        return
    for k, v in rl.items():
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            try:
                rl[k] = canonical_quantity(v, round_to_milli=True)
            except ValueError:
                pass  # validation reports it


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        _setdefault(action, "path", "/")
        _setdefault(action, "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    # int32 fields whose zero value means "unset".
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))


def _default_lifecycle(lifecycle: Any) -> None:
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            handler = lifecycle.get(hook)
            if isinstance(handler, dict):
                _default_http_get(handler.get("httpGet"))


def _default_env(env: Any) -> None:
    for var in _dicts(env):
        value_from = var.get("valueFrom")
        if isinstance(value_from, dict) and isinstance(value_from.get("fieldRef"), dict):
            _setdefault(value_from["fieldRef"], "apiVersion", "v1")


def _default_container(c: dict, host_network: bool) -> None:
    _setdefault(c, "imagePullPolicy", image_pull_policy(c.get("image")))
    _setdefault(c, "terminationMessagePath", "/dev/termination-log")
    _setdefault(c, "terminationMessagePolicy", "File")
    for port in _dicts(c.get("ports")):
        _setdefault(port, "protocol", "TCP")
        if host_network and not port.get("hostPort") and port.get("containerPort"):
            port["hostPort"] = port["containerPort"]
    resources = _dict(c, "resources")  # a Go struct, so always serialised, even empty
    _default_resource_list(resources.get("limits"))
    _default_resource_list(resources.get("requests"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(probe))
    _default_lifecycle(c.get("lifecycle"))
    _default_env(c.get("env"))


def _default_pvc_spec(spec: Any) -> None:
    if isinstance(spec, dict):
        _setdefault(spec, "volumeMode", "Filesystem")
        resources = spec.get("resources")
        if isinstance(resources, dict):
            _default_resource_list(resources.get("requests"))
            _default_resource_list(resources.get("limits"))


def _default_volume(vol: dict) -> None:
    if not any(v is not None for k, v in vol.items() if k != "name"):
        vol["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        src = vol.get(source)
        if isinstance(src, dict):
            _setdefault(src, "defaultMode", 420)  # 0644
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    projected = vol.get("projected")
    if isinstance(projected, dict):
        for src in _dicts(projected.get("sources")):
            token = src.get("serviceAccountToken")
            if isinstance(token, dict):
                _setdefault(token, "expirationSeconds", 3600)
            downward = src.get("downwardAPI")
            if isinstance(downward, dict):
                for item in _dicts(downward.get("items")):
                    if isinstance(item.get("fieldRef"), dict):
                        _setdefault(item["fieldRef"], "apiVersion", "v1")
    downward = vol.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward.get("items")):
            if isinstance(item.get("fieldRef"), dict):
                _setdefault(item["fieldRef"], "apiVersion", "v1")
    ephemeral = vol.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        _default_pvc_spec(ephemeral["volumeClaimTemplate"].get("spec"))
    iscsi = vol.get("iscsi")
    if isinstance(iscsi, dict):
        _setdefault(iscsi, "iscsiInterface", "default")


def _default_pod_spec(spec: dict, is_pod: bool) -> None:
    """SetDefaults_PodSpec plus the defaults of everything nested in it."""
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _setdefault(spec, "schedulerName", "default-scheduler")
    # hostPort := containerPort under hostNetwork applies to Pods only since 1.28.
    host_network = is_pod and spec.get("hostNetwork") is True
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            _default_container(c, host_network)
    for vol in _dicts(spec.get("volumes")):
        _default_volume(vol)


def _template_labels(template: Any) -> dict | None:
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else None


def _default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        _default_pod_spec(_dict(template, "spec"), is_pod=False)


# ---------------------------------------------------------------------------
# QoS (pkg/apis/core/helper/qos)
# ---------------------------------------------------------------------------


def pod_qos_class(pod: dict) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' cpu/memory requests and limits."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
        res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
        for part, acc in (("requests", requests), ("limits", limits)):
            found = set()
            rl = res.get(part)
            for name, q in rl.items() if isinstance(rl, dict) else ():
                if name not in ("cpu", "memory"):
                    continue
                try:
                    value = parse_quantity(q)
                except (ValueError, TypeError):
                    continue
                if value > 0:
                    found.add(name)
                    acc[name] = acc.get(name, Decimal(0)) + value
            if part == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# ---------------------------------------------------------------------------
# Per kind
# ---------------------------------------------------------------------------


def _pod(obj: dict) -> None:
    spec = _dict(obj, "spec")
    # Requests default to limits on Pods only, never on templates.
    for key in ("initContainers", "containers"):
        for c in _dicts(spec.get(key)):
            res = _dict(c, "resources")
            limits = res.get("limits")
            if isinstance(limits, dict) and limits:
                requests = _dict(res, "requests")
                for name, value in limits.items():
                    requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    _default_pod_spec(spec, is_pod=True)
    # Priority admission: no class means priority 0 (the server resolves named classes).
    if spec.get("priority") is None and not spec.get("priorityClassName"):
        spec["priority"] = 0
    _setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")
    status = _dict(obj, "status")
    _setdefault(status, "phase", "Pending")
    _setdefault(status, "qosClass", pod_qos_class(obj))


def _pod_template(obj: dict) -> None:
    _default_pod_template(obj.get("template"))


def _replication_controller(obj: dict) -> None:
    spec = _dict(obj, "spec")
    template = spec.get("template")
    labels = _template_labels(template)
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _dict(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_pod_template(template)


def _service(obj: dict) -> None:
    spec = _dict(obj, "spec")
    _setdefault(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        client_ip = cfg.get("clientIP") if isinstance(cfg, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    _setdefault(spec, "type", "ClusterIP")
    stype = spec["type"]
    for port in _dicts(spec.get("ports")):
        _setdefault(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            if port.get("port") is not None:
                port["targetPort"] = port["port"]
    external = stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and spec.get("externalIPs"))
    if external:
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer", "ClusterIP"):
        _setdefault(spec, "internalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if stype != "ExternalName":
        # Set by the REST strategy on a single-stack IPv4 cluster; headless services
        # without a selector may span families.
        headless = spec.get("clusterIP") == "None"
        policy = "RequireDualStack" if headless and not spec.get("selector") else "SingleStack"
        _setdefault(spec, "ipFamilyPolicy", policy)
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
    status = _dict(obj, "status")
    if status.get("loadBalancer") is None:
        status["loadBalancer"] = {}


def _deployment(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _dict(spec, "strategy")
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _dict(strategy, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = "25%"
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_pod_template(spec.get("template"))


def _replica_set(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_pod_template(spec.get("template"))


def _stateful_set(obj: dict) -> None:
    spec = _dict(obj, "spec")
    _setdefault(spec, "podManagementPolicy", "OrderedReady")
    strategy = _dict(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    ru = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(ru, dict) and ru.get("partition") is None:
        ru["partition"] = 0
    retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    _setdefault(retention, "whenDeleted", "Retain")
    _setdefault(retention, "whenScaled", "Retain")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec.get("template"))
    for pvc in _dicts(spec.get("volumeClaimTemplates")):
        _pvc(pvc)


def _daemon_set(obj: dict) -> None:
    spec = _dict(obj, "spec")
    strategy = _dict(spec, "updateStrategy")
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _dict(strategy, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = 1
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec.get("template"))


def _job(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        # With per-index limits the global limit is effectively off (MaxInt32).
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    meta = _dict(obj, "metadata")
    if not spec.get("manualSelector") and meta.get("uid") and isinstance(template, dict):
        # The Job strategy's generateSelector: pods are selected by the Job's uid (idempotent,
        # so re-running it on update changes nothing).
        tlabels = _dict(_dict(template, "metadata"), "labels")
        for key, value in (("job-name", meta.get("name")), ("batch.kubernetes.io/job-name", meta.get("name")),
                           ("controller-uid", meta["uid"]), ("batch.kubernetes.io/controller-uid", meta["uid"])):
            tlabels.setdefault(key, value)
        selector = spec.get("selector")
        if selector is None:
            selector = spec["selector"] = {}
        if isinstance(selector, dict):
            _dict(selector, "matchLabels").setdefault("batch.kubernetes.io/controller-uid", meta["uid"])
    labels = _template_labels(template)
    if isinstance(labels, dict) and not meta.get("labels"):
        meta["labels"] = dict(labels)
    _setdefault(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        for rule in _dicts(failure_policy.get("rules")):
            for pattern in _dicts(rule.get("onPodConditions")):
                _setdefault(pattern, "status", "True")
    _setdefault(
        spec, "podReplacementPolicy", "Failed" if isinstance(failure_policy, dict) else "TerminatingOrFailed"
    )
    _default_pod_template(template)


def _cron_job(obj: dict) -> None:
    spec = _dict(obj, "spec")
    _setdefault(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        # Only the pod template is defaulted: Job defaults apply when the Job is created.
        _default_pod_template(job_template["spec"].get("template"))


def _namespace(obj: dict) -> None:
    meta = _dict(obj, "metadata")
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = _dict(meta, "labels")
        labels["kubernetes.io/metadata.name"] = name
    spec = _dict(obj, "spec")
    if spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    _setdefault(_dict(obj, "status"), "phase", "Active")


def _secret(obj: dict) -> None:
    _setdefault(obj, "type", "Opaque")


def _pvc(obj: dict) -> None:
    _default_pvc_spec(_dict(obj, "spec"))
    _setdefault(_dict(obj, "status"), "phase", "Pending")


def _pv(obj: dict) -> None:
    spec = _dict(obj, "spec")
    _setdefault(spec, "persistentVolumeReclaimPolicy", "Retain")
    _setdefault(spec, "volumeMode", "Filesystem")
    _default_resource_list(spec.get("capacity"))
    _setdefault(_dict(obj, "status"), "phase", "Pending")


def _node(obj: dict) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        _default_resource_list(status.get("capacity"))
        _default_resource_list(status.get("allocatable"))
        if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
            status["allocatable"] = dict(status["capacity"])


def _endpoints(obj: dict) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _setdefault(port, "protocol", "TCP")


def _endpoint_slice(obj: dict) -> None:
    for port in _dicts(obj.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        _setdefault(port, "protocol", "TCP")


def _network_policy(obj: dict) -> None:
    spec = _dict(obj, "spec")
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                _setdefault(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _hpa(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if obj.get("apiVersion") == "autoscaling/v1":
        return  # v1 leaves targetCPUUtilizationPercentage to the controller
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        up = _dict(behavior, "scaleUp")
        if up.get("stabilizationWindowSeconds") is None:
            up["stabilizationWindowSeconds"] = 0
        _setdefault(up, "selectPolicy", "Max")
        if not up.get("policies"):
            up["policies"] = [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]
        down = _dict(behavior, "scaleDown")
        if down.get("stabilizationWindowSeconds") is None:
            down["stabilizationWindowSeconds"] = 300
        _setdefault(down, "selectPolicy", "Max")
        if not down.get("policies"):
            down["policies"] = [{"type": "Percent", "value": 100, "periodSeconds": 15}]


def _priority_class(obj: dict) -> None:
    _setdefault(obj, "preemptionPolicy", "PreemptLowerPriority")


def _binding(obj: dict) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict):
        _setdefault(ref, "apiGroup", "rbac.authorization.k8s.io")
    for subject in _dicts(obj.get("subjects")):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


def _limit_range(obj: dict) -> None:
    for item in _dicts(_dict(obj, "spec").get("limits")):
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            _default_resource_list(item.get(key))
        if item.get("type") != "Container":
            continue
        default = _dict(item, "default")
        request = _dict(item, "defaultRequest")
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            request.setdefault(name, value)


def _resource_quota(obj: dict) -> None:
    _default_resource_list(_dict(obj, "spec").get("hard"))


_DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("", "Pod"): _pod,
    ("", "PodTemplate"): _pod_template,
    ("", "ReplicationController"): _replication_controller,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("", "Secret"): _secret,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("", "Node"): _node,
    ("", "Endpoints"): _endpoints,
    ("", "LimitRange"): _limit_range,
    ("", "ResourceQuota"): _resource_quota,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cron_job,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("scheduling.k8s.io", "PriorityClass"): _priority_class,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("networking.k8s.io", "NetworkPolicy"): _network_policy,
}


def apply_defaults(group: str, kind: str, obj: dict) -> None:
    """Fill in Kubernetes' defaults for ``group``/``kind`` in place (no-op for other kinds)."""
    defaulter = _DEFAULTERS.get((group, kind))
    if defaulter is not None and isinstance(obj, dict):
        defaulter(obj)
