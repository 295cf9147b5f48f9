"""Endpoints controller (Kubernetes' ``pkg/controller/endpoint``): for every Service
with a selector, an Endpoints object of the same name listing the matching pods.

Per Service, level-triggered from the informer caches:

* pods with an IP of the Service's family, not terminal and not terminating, each give
  one address: ready pods under ``addresses``, the others under ``notReadyAddresses``
  (``publishNotReadyAddresses`` lists every pod, terminating ones too, as ready);
* every Service port is resolved per pod: a named ``targetPort`` through that pod's
  container ports, so pods that number a named port differently land in different
  subsets; pods without the port are left out of that port;
* the subsets are repacked (addresses grouped by the exact set of ports they serve)
  and sorted, so one state always gives one object and nothing is rewritten for
  nothing;
* the labels are the Service's, plus ``service.kubernetes.io/headless`` for headless
  Services and ``endpoints.kubernetes.io/managed-by`` marking what this controller
  owns; ``endpoints.kubernetes.io/last-change-trigger-time`` says when the change
  that led to a write happened.

Services without a selector (and ExternalName ones) are left alone: their Endpoints
are written by users.  When a Service goes, its Endpoints go with it if this
controller made them.

The pure functions (``build_subsets``, ``repack_subsets``, ``find_port`` ...) are
shared with the EndpointSlice controller.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import ipaddress
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from ..api.times import parse_time
from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from .base import QueueController

log = logging.getLogger(__name__)

LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
MANAGED_BY = "endpoint-controller"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
# An Endpoints object lists at most this many addresses (Kubernetes' maxCapacity).
MAX_CAPACITY = 1000
WORKERS = 5


# -- services -----------------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def service_selector(svc: dict) -> dict[str, str] | None:
    """The Service's selector, or None: an empty one selects nothing here, as in
    Kubernetes, where an empty map does not survive storage."""
    sel = _spec(svc).get("selector")
    return dict(sel) if isinstance(sel, dict) and sel else None


def selects(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_service_ip_set(svc: dict) -> bool:
    """Kubernetes' ``IsServiceIPSet``: a real cluster IP (not headless, not ExternalName)."""
    ip = _spec(svc).get("clusterIP")
    return bool(ip) and ip != "None"


def service_ip_family(svc: dict) -> str:
    """``IPv4`` or ``IPv6``: the Service's first family, else its cluster IP's."""
    spec = _spec(svc)
    families = spec.get("ipFamilies") or []
    if families:
        return families[0]
    if is_service_ip_set(svc):
        try:
            return "IPv6" if ipaddress.ip_address(spec["clusterIP"]).version == 6 else "IPv4"
        except ValueError:
            pass
    return "IPv4"


def services_selecting(services: Iterable[dict], pod: dict) -> list[dict]:
    """The Services (of the pod's namespace, typically from a lister) whose selector matches the pod."""
    labels = _meta(pod).get("labels")
    out = []
    for svc in services:
        sel = service_selector(svc)
        if sel is not None and selects(sel, labels):
            out.append(svc)
    return out


# -- indexes: who selects whom without scanning a namespace per event ------------------------------

POD_LABEL_INDEX = "pinnace.io/label-pairs"
SERVICE_SELECTOR_INDEX = "pinnace.io/selector-pairs"


def _pairs(namespace: str, labels: dict[str, str] | None) -> list[str]:
    return [f"{namespace}/{k}={v}" for k, v in (labels or {}).items()]


def pod_label_pairs(pod: dict) -> list[str]:
    return _pairs(_meta(pod).get("namespace", ""), _meta(pod).get("labels"))


def service_selector_pairs(svc: dict) -> list[str]:
    return _pairs(_meta(svc).get("namespace", ""), service_selector(svc))


def ensure_index(informer: Informer, name: str, fn: Callable[[dict], list[str]]) -> None:
    # Informers are shared: another controller may have registered the index already.
    with contextlib.suppress(ValueError):
        informer.add_index(name, fn)


def selected_pods(pod_informer: Informer, namespace: str, selector: dict[str, str]) -> list[dict]:
    """The pods of ``namespace`` ``selector`` matches, found through the label index: the
    pods of its rarest label pair, filtered."""
    indexer = pod_informer.indexer
    keys = min((indexer.index_keys(POD_LABEL_INDEX, p) for p in _pairs(namespace, selector)), key=len)
    pods = (indexer.get(k) for k in keys)
    return [p for p in pods if p is not None and selects(selector, _meta(p).get("labels"))]


def services_of_pod(service_informer: Informer, pod: dict) -> list[dict]:
    """The Services selecting ``pod``, found through the selector index."""
    labels = _meta(pod).get("labels")
    seen: dict[str, dict] = {}
    for pair in pod_label_pairs(pod):
        for svc in service_informer.indexer.by_index(SERVICE_SELECTOR_INDEX, pair):
            key = f"{_meta(svc).get('namespace', '')}/{_meta(svc).get('name', '')}"
            if key not in seen and selects(service_selector(svc) or {}, labels):
                seen[key] = svc
    return list(seen.values())


# -- pods -----------------------------------------------------------------------------------


def ip_family(ip: str) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return None


def pod_ips(pod: dict) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def pod_ips_of_family(pod: dict, family: str) -> list[str]:
    return [ip for ip in pod_ips(pod) if ip_family(ip) == family]


def is_pod_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def should_pod_be_in_endpoints(pod: dict, include_terminating: bool) -> bool:
    """Kubernetes' ``ShouldPodBeInEndpoints``: not terminal, has an IP, and not being
    deleted unless ``include_terminating``."""
    if is_pod_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not cu.is_being_deleted(pod)


def should_set_hostname(pod: dict, svc: dict) -> bool:
    """A pod with ``hostname`` whose ``subdomain`` names this Service (of its namespace)."""
    spec = _spec(pod)
    return bool(spec.get("hostname")) and spec.get("subdomain") == _meta(svc).get("name") \
        and _meta(pod).get("namespace") == _meta(svc).get("namespace")


def _containers_with_ports(pod: dict) -> list[dict]:
    spec = _spec(pod)
    # Sidecars (restartable init containers) serve ports too.
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    return [*(spec.get("containers") or ()), *sidecars]


def find_port(pod: dict, service_port: dict) -> int | None:
    """The pod's port for ``service_port`` (``podutil.FindPort``): a numeric targetPort as
    is, a named one through the pod's container ports of the same protocol; None if the
    pod has no such port."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for container in _containers_with_ports(pod):
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def target_ref(pod: dict) -> dict:
    meta = _meta(pod)
    return {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "uid": meta.get("uid", "")}


def pod_address(pod: dict, svc: dict) -> dict | None:
    """The pod's EndpointAddress for ``svc``: its IP of the Service's family (None without
    one), nodeName, targetRef and, when the pod names this Service as its subdomain, hostname."""
    ips = pod_ips_of_family(pod, service_ip_family(svc))
    if not ips:
        return None
    addr: dict[str, Any] = {"ip": ips[0]}
    if should_set_hostname(pod, svc):
        addr["hostname"] = _spec(pod)["hostname"]
    if _spec(pod).get("nodeName"):
        addr["nodeName"] = _spec(pod)["nodeName"]
    addr["targetRef"] = target_ref(pod)
    return addr


def endpoint_port(service_port: dict, number: int) -> dict:
    port: dict[str, Any] = {}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    port["port"] = number
    port["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


# -- subsets ---------------------------------------------------------------------------------


def _address_key(addr: dict) -> tuple[str, str]:
    return addr.get("ip", ""), (addr.get("targetRef") or {}).get("uid", "")


def _port_key(port: dict) -> tuple[str, int, str, str]:
    return (port.get("name") or "", int(port.get("port") or 0), port.get("protocol") or "TCP",
            port.get("appProtocol") or "")


def _subset(addresses: list[dict], not_ready: list[dict], ports: list[dict]) -> dict:
    # Empty lists are left out, as the API (omitempty) does.
    out: dict[str, Any] = {}
    if addresses:
        out["addresses"] = addresses
    if not_ready:
        out["notReadyAddresses"] = not_ready
    if ports:
        out["ports"] = ports
    return out


def _subset_sort_key(ss: dict) -> tuple:
    return (tuple(_address_key(a) for a in ss.get("addresses") or ()),
            tuple(_address_key(a) for a in ss.get("notReadyAddresses") or ()),
            tuple(_port_key(p) for p in ss.get("ports") or ()))


def sort_subsets(subsets: list[dict]) -> list[dict]:
    """Addresses by IP then pod uid, ports by (name, number, protocol), subsets by content."""
    out = []
    for ss in subsets:
        out.append(_subset(sorted(ss.get("addresses") or (), key=_address_key),
                           sorted(ss.get("notReadyAddresses") or (), key=_address_key),
                           sorted(ss.get("ports") or (), key=_port_key)))
    return sorted(out, key=_subset_sort_key)


def repack_subsets(subsets: list[dict]) -> list[dict]:
    """Kubernetes' ``RepackSubsets``: the same addresses and ports, regrouped so that each
    subset holds the addresses that serve exactly the same ports; an address that is ready
    for a port in any input subset is ready for it.  Sorted (:func:`sort_subsets`)."""
    addresses: dict[tuple[str, str], dict] = {}
    # port (None: the sentinel for address lists without ports) -> address -> ready
    by_port: dict[tuple | None, dict[tuple[str, str], bool]] = {}
    port_objs: dict[tuple | None, dict] = {}
    for ss in subsets:
        for port in ss.get("ports") or [None]:
            pk = _port_key(port) if port is not None else None
            if port is not None:
                port_objs[pk] = port
            seen = by_port.setdefault(pk, {})
            for addrs, ready in ((ss.get("addresses") or (), True), (ss.get("notReadyAddresses") or (), False)):
                for addr in addrs:
                    k = _address_key(addr)
                    addresses.setdefault(k, copy.deepcopy(addr))
                    if not seen.get(k, False):  # ready for a port anywhere wins
                        seen[k] = ready
    groups: dict[tuple, list[dict]] = {}
    for pk, seen in by_port.items():
        ports = groups.setdefault(tuple(sorted(seen.items())), [])
        if pk is not None:
            ports.append(port_objs[pk])
    final = []
    for members, ports in groups.items():
        final.append(_subset([addresses[k] for k, ready in members if ready],
                             [addresses[k] for k, ready in members if not ready], ports))
    return sort_subsets([s for s in final if s.get("addresses") or s.get("notReadyAddresses")])


def build_subsets(svc: dict, pods: Iterable[dict]) -> list[dict]:
    """The Endpoints subsets of ``svc`` for the pods its selector matched (upstream
    ``syncService``'s loop), repacked and sorted."""
    spec = _spec(svc)
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    subsets: list[dict] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        addr = pod_address(pod, svc)
        if addr is None:
            continue
        ready = publish_not_ready or cu.is_pod_ready(pod)
        if not ports:
            if headless:  # a headless Service may have no ports: addresses alone
                subsets.append(_subset([addr] if ready else [], [] if ready else [addr], []))
            continue
        for sp in ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            epp = endpoint_port(sp, number)
            subsets.append(_subset([addr] if ready else [], [] if ready else [addr], [epp]))
    return repack_subsets(subsets)


def truncate_subsets(subsets: list[dict], max_capacity: int = MAX_CAPACITY) -> tuple[list[dict], bool]:
    """Kubernetes' ``truncateEndpoints``: at most about ``max_capacity`` addresses, ready
    ones first, each subset keeping its share (rounded up).  Returns (subsets, truncated)."""
    total_ready = sum(len(s.get("addresses") or ()) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if total_ready + total_not_ready <= max_capacity:
        return subsets, False
    truncate_ready = total_ready > max_capacity
    limit, total = (max_capacity, total_ready) if truncate_ready else (max_capacity - total_ready, total_not_ready)
    left = limit
    out = []
    for ss in subsets:
        ready, not_ready = list(ss.get("addresses") or ()), list(ss.get("notReadyAddresses") or ())
        share = math.ceil(len(ready if truncate_ready else not_ready) / total * limit) if total else 0
        share = min(share, left)
        if truncate_ready:
            ready, not_ready = ready[:share], []
            left -= len(ready)
        else:
            not_ready = not_ready[:share]
            left -= len(not_ready)
        out.append(_subset(ready, not_ready, list(ss.get("ports") or ())))
    return [s for s in out if s.get("addresses") or s.get("notReadyAddresses")], True


def _normalized_subsets(subsets: Iterable[dict] | None) -> list[dict]:
    """For comparison: empty lists dropped, targetRef.resourceVersion ignored (a pod's
    unrelated updates must not rewrite its Endpoints)."""
    out = []
    for ss in subsets or ():
        norm = {}
        for field in ("addresses", "notReadyAddresses"):
            addrs = []
            for a in ss.get(field) or ():
                a = {k: v for k, v in a.items() if v not in (None, "")}
                if isinstance(a.get("targetRef"), dict):
                    a["targetRef"] = {k: v for k, v in a["targetRef"].items()
                                      if k != "resourceVersion" and v not in (None, "")}
                addrs.append(a)
            if addrs:
                norm[field] = addrs
        ports = [{k: v for k, v in p.items() if v not in (None, "")} for p in ss.get("ports") or ()]
        for p in ports:
            p.setdefault("protocol", "TCP")
        if ports:
            norm["ports"] = ports
        out.append(norm)
    return out


def subsets_equal(a: Iterable[dict] | None, b: Iterable[dict] | None) -> bool:
    return _normalized_subsets(a) == _normalized_subsets(b)


def endpoints_labels(svc: dict) -> dict[str, str]:
    """The Service's labels, the headless marker for a headless Service, and ours."""
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k != LABEL_HEADLESS}
    if not is_service_ip_set(svc):
        labels[LABEL_HEADLESS] = ""
    labels[LABEL_MANAGED_BY] = MANAGED_BY
    return labels


def format_trigger_time(t: dt.datetime) -> str:
    """RFC 3339 with nanoseconds' trailing zeros trimmed, as Go's ``time.RFC3339Nano``."""
    t = t.astimezone(dt.UTC)
    frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


# -- trigger times ----------------------------------------------------------------------------


class TriggerTimeTracker:
    """Kubernetes' ``TriggerTimeTracker``: per Service, the time of the earliest change
    (a pod's Ready transition, the Service's creation) not yet exported, for the
    ``endpoints.kubernetes.io/last-change-trigger-time`` annotation."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[dict[str, dt.datetime], dt.datetime | None]] = {}

    @staticmethod
    def _pod_time(pod: dict) -> dt.datetime | None:
        cond = cu.pod_condition(pod, "Ready")
        return parse_time(cond.get("lastTransitionTime")) if cond else None

    def compute(self, key: str, svc: dict, pods: Iterable[dict]) -> dt.datetime | None:
        """The time to export, or None (no change seen since the last call)."""
        last_pods, last_svc = self._state.get(key, ({}, None))
        changed: list[dt.datetime] = []
        pod_times: dict[str, dt.datetime] = {}
        for pod in pods:
            t = self._pod_time(pod)
            if t is None:
                continue
            name = _meta(pod).get("name", "")
            pod_times[name] = t
            before = last_pods.get(name)
            if before is None or t > before:
                changed.append(t)
        svc_time = parse_time(_meta(svc).get("creationTimestamp"))
        if svc_time is not None and (last_svc is None or svc_time > last_svc):
            changed.append(svc_time)
        self._state[key] = (pod_times, svc_time)
        return min(changed) if changed else None

    def delete(self, key: str) -> None:
        self._state.pop(key, None)


def set_trigger_time(obj: dict, when: dt.datetime | None) -> None:
    """Set (or, without a time, remove) the last-change-trigger-time annotation."""
    meta = obj["metadata"]
    annotations = meta.setdefault("annotations", {})
    if when is not None:
        annotations[ANNOTATION_TRIGGER_TIME] = format_trigger_time(when)
    else:
        annotations.pop(ANNOTATION_TRIGGER_TIME, None)
    if not annotations:
        del meta["annotations"]


def _pod_fingerprint(pod: dict) -> tuple:
    """What of a pod the endpoints depend on (besides its labels)."""
    spec, meta = _spec(pod), _meta(pod)
    ready = cu.pod_condition(pod, "Ready") or {}
    ports = tuple((c.get("name"), tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                                        for p in c.get("ports") or ())) for c in _containers_with_ports(pod))
    return (meta.get("uid"), tuple(pod_ips(pod)), ready.get("status"), ready.get("lastTransitionTime"),
            bool(meta.get("deletionTimestamp")), is_pod_terminal(pod), spec.get("nodeName"), spec.get("hostname"),
            spec.get("subdomain"), ports)


def pod_changed_for_endpoints(old: dict, cur: dict) -> bool:
    return _pod_fingerprint(old) != _pod_fingerprint(cur)


# -- the controller ---------------------------------------------------------------------------


class EndpointsController(QueueController):
    """``EndpointsController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")`` (a Service key)."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS):
        super().__init__(client, factory, recorder, component="endpoint-controller", queue="endpoint",
                         workers=workers)
        self.service_informer = self.informer("v1", "services")
        self.pod_informer = self.informer("v1", "pods")
        self.endpoints_informer = self.informer("v1", "endpoints")
        self.service_lister = self.service_informer.lister
        self.pod_lister = self.pod_informer.lister
        self.endpoints_lister = self.endpoints_informer.lister
        self.trigger_times = TriggerTimeTracker()
        ensure_index(self.pod_informer, POD_LABEL_INDEX, pod_label_pairs)
        ensure_index(self.service_informer, SERVICE_SELECTOR_INDEX, service_selector_pairs)
        self.service_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, c: self.enqueue(c),
                                                on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=self._pod_added)
        # Ours, changed or deleted by someone else, or left over from a Service deleted while
        # we were not running: the Service's sync puts it right.
        self.endpoints_informer.add_event_handler(on_add=self._endpoints_changed,
                                                  on_update=lambda _o, c: self._endpoints_changed(c),
                                                  on_delete=self.enqueue)

    # -- event handlers -----------------------------------------------------------------------

    def _services_of(self, pod: dict) -> list[dict]:
        return services_of_pod(self.service_informer, pod)

    def _pod_added(self, pod: dict) -> None:
        for svc in self._services_of(pod):
            self.enqueue(svc)

    def _pod_updated(self, old: dict, cur: dict) -> None:
        if _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        labels_changed = _meta(old).get("labels") != _meta(cur).get("labels")
        if not labels_changed and not pod_changed_for_endpoints(old, cur):
            return  # e.g. an annotation or a container's restart count: no endpoint moves
        keys = {self.key(s) for s in self._services_of(cur)}
        if labels_changed:
            keys |= {self.key(s) for s in self._services_of(old)}
        for key in keys:
            self.queue.add(key)

    def _endpoints_changed(self, ep: dict) -> None:
        if (_meta(ep).get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
            self.enqueue(ep)

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    # -- sync -----------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.service_lister.get(name, namespace)
        if svc is None:
            self.trigger_times.delete(key)
            await self._delete_managed(namespace, name)
            return
        if _spec(svc).get("type") == "ExternalName":
            return  # ExternalName Services get no endpoints (kubernetes#105986)
        selector = service_selector(svc)
        if selector is None:
            return  # their Endpoints are the user's
        pods = selected_pods(self.pod_informer, namespace, selector)
        trigger = self.trigger_times.compute(key, svc, pods)
        subsets, truncated = truncate_subsets(build_subsets(svc, pods))
        labels = endpoints_labels(svc)

        current = self.endpoints_lister.get(name, namespace)
        if current is not None:
            annotations = _meta(current).get("annotations") or {}
            capacity_ok = (annotations.get(ANNOTATION_OVER_CAPACITY) == "truncated") == truncated
            if subsets_equal(current.get("subsets"), subsets) and (_meta(current).get("labels") or {}) == labels \
                    and capacity_ok:
                return
            new = copy.deepcopy(current)
        else:
            new = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        new["subsets"] = subsets
        new["metadata"]["labels"] = labels
        set_trigger_time(new, trigger)
        annotations = new["metadata"].setdefault("annotations", {})
        if truncated:
            annotations[ANNOTATION_OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(ANNOTATION_OVER_CAPACITY, None)
        if not annotations:
            del new["metadata"]["annotations"]
        try:
            if current is None:
                await self.client.create("v1", "endpoints", new, namespace)
            else:
                await self.client.update("v1", "endpoints", new, namespace)
        except ApiException as e:
            if e.status == 409:
                raise  # our cache is behind: retried quietly
            if current is None and e.status == 403 and cu.namespace_terminating(e):
                return  # every create would fail alike; the namespace is going anyway
            verb = "create" if current is None else "update"
            self.recorder.event(svc, "Warning", f"FailedTo{verb.capitalize()}Endpoint",
                                f"Failed to {verb} endpoint for service {namespace}/{name}: {e.message or e}")
            raise

    async def _delete_managed(self, namespace: str, name: str) -> None:
        ep = self.endpoints_lister.get(name, namespace)
        if ep is None or (_meta(ep).get("labels") or {}).get(LABEL_MANAGED_BY) != MANAGED_BY:
            return  # not ours (say, a selector-less Service's, written by hand): not ours to remove
        try:
            await self.client.delete("v1", "endpoints", name, namespace, preconditions={"uid": _meta(ep).get("uid")})
        except ApiException as e:
            if e.status not in (404, 409):
                raise


__all__ = [
    "ANNOTATION_OVER_CAPACITY", "ANNOTATION_TRIGGER_TIME", "LABEL_HEADLESS", "LABEL_MANAGED_BY", "MANAGED_BY",
    "POD_LABEL_INDEX", "SERVICE_SELECTOR_INDEX", "EndpointsController", "TriggerTimeTracker", "build_subsets",
    "endpoint_port", "endpoints_labels", "ensure_index", "find_port", "is_service_ip_set", "pod_address",
    "pod_changed_for_endpoints", "pod_ips_of_family", "repack_subsets", "selected_pods", "selects",
    "service_ip_family", "service_selector", "services_of_pod", "services_selecting", "should_pod_be_in_endpoints",
    "should_set_hostname", "sort_subsets", "subsets_equal", "target_ref", "truncate_subsets",
]
