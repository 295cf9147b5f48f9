"""Per-kind behaviour of the generic REST store (Kubernetes' ``registry/<kind>/strategy.go``).

The generic store in :mod:`.registry` handles every kind; what differs per kind
lives in a :class:`Strategy`: field-selector fields, which fields are status,
name rules, create-on-update, graceful deletion, version conversion.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ..api.resources import ResourceType
from ..api.selectors import field_value


def _getter(path: str) -> Callable[[dict], str]:
    return lambda obj: field_value(obj, path)


class Strategy:
    # Name rule for metadata.name (see validation.validate_object_meta).
    name_rule = "dns1123_subdomain"
    # PUT of a missing object creates it.
    allow_create_on_update = False
    # Status set by the client on create is kept (nodes register with status).
    keep_status_on_create = False
    # Field-selector fields beyond metadata.name / metadata.namespace.
    extra_fields: tuple[str, ...] = ()

    def __init__(self, rtype: ResourceType):
        self.rtype = rtype
        self.has_status = "status" in rtype.subresources
        fields = {"metadata.name": _getter("metadata.name"), "metadata.namespace": _getter("metadata.namespace")}
        for f in self.extra_fields:
            fields[f] = _getter(f)
        self.field_getters: dict[str, Callable[[dict], str]] = fields

    # -- create / update -------------------------------------------------------

    def prepare_create(self, obj: dict) -> None:
        if self.has_status and not self.keep_status_on_create:
            obj.pop("status", None)
            self.initial_status(obj)

    def initial_status(self, obj: dict) -> None:
        pass

    def prepare_update(self, new: dict, old: dict) -> None:
        """A write to the main resource never changes status (when status is a subresource)."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def prepare_status_update(self, new: dict, old: dict) -> dict:
        """A write to /status changes only status: everything else comes from ``old``."""
        out = dict(old)
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        out["metadata"] = old["metadata"]
        return out

    def generation_changed(self, new: dict, old: dict) -> bool:
        """Whether the desired state changed: anything outside metadata and status."""
        skip = ("metadata", "status", "apiVersion", "kind")
        return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}

    # -- delete ------------------------------------------------------------------

    def grace_period(self, obj: dict, requested: int | None) -> int:
        """Seconds the object lingers with a deletionTimestamp before removal (0 = now)."""
        return 0

    # -- conversion between served versions sharing one storage --------------------

    def to_version(self, obj: dict, version: str) -> dict:
        return obj


class PodStrategy(Strategy):
    extra_fields = (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    )  # fmt: skip

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def grace_period(self, obj: dict, requested: int | None) -> int:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # A pod no kubelet runs yet, or that already finished, goes at once.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = spec.get("terminationGracePeriodSeconds", 30) if requested is None else requested
        return max(0, int(grace or 0))


class DaemonSetStrategy(Strategy):
    """apps/v1 carries the internal ``spec.templateGeneration`` as an annotation: 1 on
    create, +1 whenever the pod template changes (the DaemonSet controller labels its
    pods ``pod-template-generation`` from it).  Clients cannot set it."""

    TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"

    def prepare_create(self, obj: dict) -> None:
        super().prepare_create(obj)
        self._set_template_generation(obj, 1)

    def prepare_update(self, new: dict, old: dict) -> None:
        super().prepare_update(new, old)
        old_annotations = (old.get("metadata") or {}).get("annotations") or {}
        try:
            generation = int(old_annotations.get(self.TEMPLATE_GENERATION, "1"))
        except ValueError:
            generation = 1
        if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
            generation += 1
        self._set_template_generation(new, generation)

    def _set_template_generation(self, obj: dict, generation: int) -> None:
        meta = obj.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), self.TEMPLATE_GENERATION: str(generation)}


def qos_class(spec: dict) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_any = limits_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = requests_any or bool(req)
            limits_any = limits_any or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not requests_any and not limits_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class NodeStrategy(Strategy):
    keep_status_on_create = True
    extra_fields = ("spec.unschedulable",)


class NamespaceStrategy(Strategy):
    name_rule = "dns1123_label"
    extra_fields = ("status.phase",)

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {"phase": "Active"}

    def generation_changed(self, new: dict, old: dict) -> bool:
        return False


class ServiceStrategy(Strategy):
    name_rule = "dns1035_label"
    extra_fields = ("spec.clusterIP", "spec.type")

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {"loadBalancer": {}}


class SecretStrategy(Strategy):
    extra_fields = ("type",)

    def prepare_create(self, obj: dict) -> None:
        super().prepare_create(obj)
        merge_string_data(obj)

    def prepare_update(self, new: dict, old: dict) -> None:
        super().prepare_update(new, old)
        merge_string_data(new)


def merge_string_data(secret: dict) -> None:
    """``stringData`` is write-only: merged into ``data`` (base64, its keys win) and dropped,
    as the v1 conversion does."""
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, dict):
        return
    data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


class EventStrategy(Strategy):
    """core/v1 and events.k8s.io/v1 Events are one resource: stored as core/v1."""

    allow_create_on_update = True
    extra_fields = (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    )  # fmt: skip

    def __init__(self, rtype: ResourceType):
        super().__init__(rtype)
        self.field_getters["source"] = _getter("source.component")

    def to_version(self, obj: dict, version: str) -> dict:
        api = obj.get("apiVersion", "v1")
        if version == "events.k8s.io/v1" and api == "v1":
            return core_event_to_events_v1(obj)
        if version == "v1" and api == "events.k8s.io/v1":
            return events_v1_to_core_event(obj)
        return obj


_EVENT_COMMON = ("metadata", "reason", "type", "action", "related", "reportingInstance")


def core_event_to_events_v1(e: dict) -> dict:
    out: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for k in _EVENT_COMMON:
        if k in e:
            out[k] = e[k]
    out["regarding"] = e.get("involvedObject", {})
    if "message" in e:
        out["note"] = e["message"]
    out["eventTime"] = e.get("eventTime")
    out["reportingController"] = e.get("reportingComponent") or (e.get("source") or {}).get("component", "")
    if e.get("count", 1) > 1 or e.get("series"):
        out["deprecatedCount"] = e.get("count")
    out["deprecatedFirstTimestamp"] = e.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = e.get("lastTimestamp")
    if e.get("source"):
        out["deprecatedSource"] = e["source"]
    if e.get("series"):
        out["series"] = e["series"]
    return out


def events_v1_to_core_event(e: dict) -> dict:
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for k in _EVENT_COMMON:
        if k in e:
            out[k] = e[k]
    out["involvedObject"] = e.get("regarding") or {}
    if "note" in e:
        out["message"] = e["note"]
    out["eventTime"] = e.get("eventTime")
    out["reportingComponent"] = e.get("reportingController", "")
    out["source"] = e.get("deprecatedSource") or {"component": e.get("reportingController", "")}
    out["count"] = e.get("deprecatedCount") or 1
    out["firstTimestamp"] = e.get("deprecatedFirstTimestamp")
    out["lastTimestamp"] = e.get("deprecatedLastTimestamp")
    if e.get("series"):
        out["series"] = e["series"]
    return {k: v for k, v in out.items() if v is not None}


class HPAStrategy(Strategy):
    """autoscaling/v1 and v2 share storage; stored objects keep the version they were written in."""

    def to_version(self, obj: dict, version: str) -> dict:
        api = obj.get("apiVersion")
        if api == version:
            return obj
        if version == "autoscaling/v1":
            return hpa_v2_to_v1(obj)
        return hpa_v1_to_v2(obj)


def hpa_v1_to_v2(h: dict) -> dict:
    spec = dict(h.get("spec") or {})
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": target}}}]
    status = dict(h.get("status") or {})
    current = status.pop("currentCPUUtilizationPercentage", None)
    if current is not None:
        status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": current}}}]
    return {**h, "apiVersion": "autoscaling/v2", "spec": spec, "status": status}


def hpa_v2_to_v1(h: dict) -> dict:
    spec = dict(h.get("spec") or {})
    for m in spec.pop("metrics", None) or []:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            spec["targetCPUUtilizationPercentage"] = (res.get("target") or {}).get("averageUtilization")
    spec.pop("behavior", None)
    status = dict(h.get("status") or {})
    for m in status.pop("currentMetrics", None) or []:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            status["currentCPUUtilizationPercentage"] = (res.get("current") or {}).get("averageUtilization")
    status.pop("conditions", None)
    return {**h, "apiVersion": "autoscaling/v1", "spec": spec, "status": status}


def _with_fields(*fields: str, base: type[Strategy] = Strategy, **attrs: Any) -> type[Strategy]:
    return type("Strategy", (base,), {"extra_fields": fields, **attrs})


_BY_PLURAL: dict[str, type[Strategy]] = {
    "pods": PodStrategy,
    "nodes": NodeStrategy,
    "namespaces": NamespaceStrategy,
    "services": ServiceStrategy,
    "secrets": SecretStrategy,
    "events": EventStrategy,
    "horizontalpodautoscalers": HPAStrategy,
    "endpoints": _with_fields(allow_create_on_update=True),
    "daemonsets": DaemonSetStrategy,
    "replicasets": _with_fields("status.replicas"),
    "replicationcontrollers": _with_fields("status.replicas"),
    "jobs": _with_fields("status.successful"),
    "certificatesigningrequests": _with_fields("spec.signerName"),
    "roles": _with_fields(name_rule="path_segment"),
    "clusterroles": _with_fields(name_rule="path_segment"),
    "rolebindings": _with_fields(name_rule="path_segment"),
    "clusterrolebindings": _with_fields(name_rule="path_segment"),
}


def strategy_for(rtype: ResourceType) -> Strategy:
    cls = _BY_PLURAL.get(rtype.plural, Strategy) if not rtype.extra.get("custom") else Strategy
    return cls(rtype)
