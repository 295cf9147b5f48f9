"""EndpointSlice controllers (discovery.k8s.io/v1): Kubernetes' ``pkg/controller/endpointslice``
and ``pkg/controller/endpointslicemirroring``.

:class:`EndpointSliceController`, per Service with a selector: the matching pods with an
IP become endpoints with ``ready``/``serving``/``terminating`` conditions, nodeName,
zone (the node's ``topology.kubernetes.io/zone``), targetRef and hostname.  Pods are
grouped by their resolved ports (a named targetPort may number differently per pod);
each group fills slices of at most ``max_endpoints_per_slice`` (100).  Reconciling
keeps churn low, as upstream's reconciler does: endpoints stay in the slice they are in,
changed slices are filled up before unchanged ones are touched, new endpoints go into the
fullest unchanged slice that takes them all before a slice is created, and a slice that
would be deleted is reused (updated) rather than deleting one and creating another.  A
Service without endpoints keeps one empty placeholder slice.  The slices carry the
Service's labels, ``kubernetes.io/service-name``, ``endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io``, the headless marker, a controller ownerReference to the
Service and ``generateName: <service>-``.

:class:`EndpointSliceMirroringController`: the Endpoints of Services *without* a selector
(written by users) mirrored into slices managed by ``endpointslicemirroring-controller.k8s.io``,
unless labelled ``endpointslice.kubernetes.io/skip-mirror: "true"``.

The planning is pure (:func:`plan_service_slices`, :func:`plan_mirrored_slices`); the
controllers read caches, plan, and write.  Because slices are created with generateName,
a cache that has not yet seen our last writes would make a sync create duplicates: a
:class:`SliceTracker` remembers each write until the informer reports it, and a sync of a
Service with writes still unseen waits for them.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..client.cache import Lister, split_key
from ..client.events import EventRecorder
from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import ApiException, RestClient
from . import controller_utils as cu
from .base import QueueController
from .endpoints import (
    ANNOTATION_TRIGGER_TIME,
    LABEL_HEADLESS,
    POD_LABEL_INDEX,
    SERVICE_SELECTOR_INDEX,
    TriggerTimeTracker,
    ensure_index,
    find_port,
    ip_family,
    is_service_ip_set,
    pod_changed_for_endpoints,
    pod_ips_of_family,
    pod_label_pairs,
    selected_pods,
    service_selector,
    service_selector_pairs,
    services_of_pod,
    set_trigger_time,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from .nodelifecycle import NODE_NAME_INDEX, ensure_pod_node_index

log = logging.getLogger(__name__)

API_VERSION, PLURAL = "discovery.k8s.io/v1", "endpointslices"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_LEADER = "control-plane.alpha.kubernetes.io/leader"
ANNOTATION_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ENDPOINTS_PER_SLICE = 100
MIRRORING_MAX_ENDPOINTS_PER_SUBSET = 1000
WORKERS = 5
# How long an unseen write of ours holds a Service's syncs back before we stop waiting for it.
TRACKER_TIMEOUT = 10.0


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


# -- slices and endpoints --------------------------------------------------------------------


def address_types(svc: dict) -> list[str]:
    """The slice address types a Service takes (``getAddressTypesForService``)."""
    spec = _spec(svc)
    families = [f for f in spec.get("ipFamilies") or () if f in ("IPv4", "IPv6")]
    if families:
        return list(dict.fromkeys(families))
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    fams = [f for f in (ip_family(ip) for ip in ips) if f]
    return list(dict.fromkeys(fams)) or ["IPv4", "IPv6"]  # headless without families: both


def slice_port(service_port: dict, number: int) -> dict:
    port: dict[str, Any] = {"name": service_port.get("name") or "", "port": number,
                            "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def endpoint_ports(svc: dict, pod: dict) -> list[dict]:
    """The Service's ports as this pod serves them (``getEndpointPorts``); ports the pod
    lacks are left out."""
    spec = _spec(svc)
    out = []
    for sp in spec.get("ports") or ():
        number = find_port(pod, sp)
        if number is not None:
            out.append(slice_port(sp, number))
    return out


def port_map_key(ports: Iterable[dict] | None) -> tuple:
    """The identity of a set of slice ports, whatever their order."""
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                          p.get("appProtocol") or "") for p in ports or ()))


def pod_to_endpoint(pod: dict, node: dict | None, svc: dict, address_type: str) -> dict:
    """A pod as a slice endpoint (``podToEndpoint``).  Ready means serving and not
    terminating, or any pod of a Service with ``publishNotReadyAddresses``."""
    serving = cu.is_pod_ready(pod)
    terminating = cu.is_being_deleted(pod)
    ready = bool(_spec(svc).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: dict[str, Any] = {"addresses": pod_ips_of_family(pod, address_type),
                          "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if should_set_hostname(pod, svc):
        ep["hostname"] = _spec(pod)["hostname"]
    ep["targetRef"] = target_ref(pod)
    if _spec(pod).get("nodeName"):
        ep["nodeName"] = _spec(pod)["nodeName"]
    zone = ((_meta(node).get("labels") or {}).get(LABEL_ZONE) if node else None)
    if zone:
        ep["zone"] = zone
    return ep


def endpoint_key(ep: dict) -> tuple:
    """Which endpoint this is (upstream's endpoint hash): its addresses, hostname and target."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or ())), ep.get("hostname") or "", ref.get("namespace") or "",
            ref.get("name") or "")


def _normalized_endpoint(ep: dict) -> dict:
    out = {k: v for k, v in ep.items() if v not in (None, "", [], {})}
    if isinstance(out.get("targetRef"), dict):
        out["targetRef"] = {k: v for k, v in out["targetRef"].items() if k != "resourceVersion" and v not in (None, "")}
    return out


def endpoints_equal(a: dict, b: dict) -> bool:
    return _normalized_endpoint(a) == _normalized_endpoint(b)


def service_slice_labels(svc: dict, controller: str = CONTROLLER_NAME) -> dict[str, str]:
    """``setEndpointSliceLabels``: the Service's labels but the reserved ones, the headless
    marker, the service name and the manager."""
    reserved = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS)
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k not in reserved}
    if not is_service_ip_set(svc):
        labels[LABEL_HEADLESS] = ""
    labels[LABEL_SERVICE_NAME] = _meta(svc).get("name", "")
    labels[LABEL_MANAGED_BY] = controller
    return labels


def owner_ref(owner: dict, kind: str) -> dict:
    return cu.new_controller_ref(owner, "v1", kind)


def owned_by(slice_: dict, owner: dict) -> bool:
    ref = cu.controller_ref(slice_)
    return ref is not None and ref.get("uid") == _meta(owner).get("uid")


def slice_prefix(name: str) -> str:
    # generateName may make at most 253 characters with its 5 random ones.
    return f"{name}-" if len(name) + 1 <= 253 - 5 else name[:247]


def new_service_slice(svc: dict, ports: list[dict], address_type: str) -> dict:
    meta = _meta(svc)
    return {"apiVersion": API_VERSION, "kind": "EndpointSlice",
            "metadata": {"generateName": slice_prefix(meta.get("name", "")), "namespace": meta.get("namespace", ""),
                         "labels": service_slice_labels(svc), "ownerReferences": [owner_ref(svc, "Service")]},
            "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports)}


@dataclass
class SlicePlan:
    """Writes that turn the existing slices into the desired ones."""
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)

    def extend(self, other: SlicePlan) -> None:
        self.create += other.create
        self.update += other.update
        self.delete += other.delete


def _fill(slice_: dict, pending: list[dict], limit: int) -> None:
    while pending and len(slice_["endpoints"]) < limit:
        slice_["endpoints"].append(pending.pop(0))


def _reconcile_port_mapping(svc: dict, ports: list[dict], address_type: str, existing: list[dict],
                            desired: dict[tuple, dict], limit: int) -> SlicePlan:
    """``reconcileByPortMapping``: the slices of one port set."""
    plan = SlicePlan()
    desired = dict(desired)
    labels = service_slice_labels(svc)
    to_update: list[dict] = []
    unchanged: list[dict] = []
    # 1. Keep each wanted endpoint where it is, refreshed; drop the unwanted.
    for cur in sorted(existing, key=lambda s: _meta(s).get("name", "")):
        kept, changed = [], False
        for ep in cur.get("endpoints") or ():
            want = desired.pop(endpoint_key(ep), None)
            if want is None:
                continue
            kept.append(want)
            changed = changed or not endpoints_equal(want, ep)
        labels_changed = (_meta(cur).get("labels") or {}) != labels
        if changed or len(kept) != len(cur.get("endpoints") or ()):
            if not kept:
                plan.delete.append(cur)
                continue
            new = copy.deepcopy(cur)
            new["endpoints"] = kept
            new["metadata"]["labels"] = dict(labels)
            to_update.append(new)
        elif labels_changed:
            new = copy.deepcopy(cur)
            new["metadata"]["labels"] = dict(labels)
            to_update.append(new)
        else:
            unchanged.append(cur)
    pending = [desired[k] for k in sorted(desired)]  # new endpoints, in a stable order
    # 2. Fill the slices being written anyway, fullest first.
    for s in sorted(to_update, key=lambda s: -len(s["endpoints"])):
        _fill(s, pending, limit)
    # 3. What is left: into the fullest unchanged slice that takes it all, else new slices.
    while pending:
        target = None
        if len(pending) < limit:
            fits = [s for s in unchanged if limit - len(s.get("endpoints") or ()) >= len(pending)]
            if fits:
                chosen = max(fits, key=lambda s: (len(s.get("endpoints") or ()), _meta(s).get("name", "")))
                unchanged.remove(chosen)
                target = copy.deepcopy(chosen)
                target["endpoints"] = list(target.get("endpoints") or ())
                to_update.append(target)
        if target is None:
            target = new_service_slice(svc, ports, address_type)
            plan.create.append(target)
        _fill(target, pending, limit)
    plan.update += to_update
    return plan


def _reuse_deleted(plan: SlicePlan, owner: dict) -> None:
    """Creates become updates of slices about to be deleted (same address type, same
    owner): one write instead of two, and no moment without the endpoints."""
    i = 0
    while i < len(plan.delete) and plan.create:
        old = plan.delete[i]
        new = plan.create[-1]
        if old.get("addressType") == new.get("addressType") and owned_by(old, owner):
            plan.create.pop()
            meta = new["metadata"]
            meta.pop("generateName", None)
            meta["name"] = _meta(old)["name"]
            meta["resourceVersion"] = _meta(old).get("resourceVersion", "")
            for k in ("uid", "creationTimestamp"):
                if _meta(old).get(k):
                    meta[k] = copy.deepcopy(_meta(old)[k])
            plan.update.append(new)
            plan.delete.pop(i)
        else:
            i += 1


def _is_placeholder_of(slice_: dict, placeholder: dict) -> bool:
    return (slice_.get("addressType") == placeholder["addressType"] and not slice_.get("endpoints")
            and not slice_.get("ports") and (_meta(slice_).get("labels") or {}) == placeholder["metadata"]["labels"]
            and [r.get("uid") for r in _meta(slice_).get("ownerReferences") or ()]
            == [r["uid"] for r in placeholder["metadata"]["ownerReferences"]])


def plan_service_slices(svc: dict, pods: Iterable[dict], get_node: Callable[[str], dict | None],
                        existing: Iterable[dict], max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE
                        ) -> tuple[SlicePlan, list[str]]:
    """What to create, update and delete so that ``existing`` (the slices this controller
    manages for ``svc``) list ``pods`` (those the selector matched).  Returns the plan and
    the names of pods left out because their node is unknown (retry later)."""
    plan = SlicePlan()
    skipped: list[str] = []
    types = address_types(svc)
    publish = bool(_spec(svc).get("publishNotReadyAddresses"))
    by_type: dict[str, list[dict]] = {t: [] for t in types}
    for s in existing:
        if s.get("addressType") in by_type:
            by_type[s["addressType"]].append(s)
        else:
            plan.delete.append(s)  # an address type the Service no longer has
    pods = [p for p in pods if should_pod_be_in_endpoints(p, True)]
    for address_type in types:
        typed = SlicePlan()
        desired: dict[tuple, tuple[list[dict], dict[tuple, dict]]] = {}
        for pod in pods:
            ports = endpoint_ports(svc, pod)
            pm = port_map_key(ports)
            node_name = _spec(pod).get("nodeName") or ""
            node = get_node(node_name) if node_name else None
            if node is None and not publish:
                # A pod on a node we do not know (yet): left out, the Service retried.
                skipped.append(_meta(pod).get("name", ""))
                continue
            ep = pod_to_endpoint(pod, node, svc, address_type)
            if not ep["addresses"]:
                continue
            desired.setdefault(pm, (ports, {}))[1][endpoint_key(ep)] = ep
        existing_by_pm: dict[tuple, list[dict]] = {}
        for s in by_type[address_type]:
            if owned_by(s, svc):
                existing_by_pm.setdefault(port_map_key(s.get("ports")), []).append(s)
            else:
                typed.delete.append(s)  # left by an earlier Service of this name
        for pm, slices in existing_by_pm.items():
            if pm not in desired:
                typed.delete += slices  # a set of ports no pod serves any more
        for pm in sorted(desired):
            ports, eps = desired[pm]
            typed.extend(_reconcile_port_mapping(svc, ports, address_type, existing_by_pm.get(pm, []), eps,
                                                 max_endpoints_per_slice))
        if len(by_type[address_type]) == len(typed.delete) and not typed.create:
            # Nothing would remain: keep (or make) one empty slice, as upstream does.
            placeholder = new_service_slice(svc, [], address_type)
            if len(typed.delete) == 1 and _is_placeholder_of(typed.delete[0], placeholder):
                typed.delete.clear()
            else:
                typed.create.append(placeholder)
        _reuse_deleted(typed, svc)
        plan.extend(typed)
    return plan, skipped


# -- mirroring --------------------------------------------------------------------------------


def should_mirror(ep: dict) -> bool:
    meta = _meta(ep)
    if (meta.get("labels") or {}).get(LABEL_SKIP_MIRROR) == "true":
        return False
    return ANNOTATION_LEADER not in (meta.get("annotations") or {})


def mirrored_labels(ep: dict) -> dict[str, str]:
    labels = dict(_meta(ep).get("labels") or {})
    labels[LABEL_SERVICE_NAME] = _meta(ep).get("name", "")
    labels[LABEL_MANAGED_BY] = MIRRORING_CONTROLLER_NAME
    return labels


def mirrored_annotations(ep: dict) -> dict[str, str]:
    return {k: v for k, v in (_meta(ep).get("annotations") or {}).items()
            if k not in (ANNOTATION_TRIGGER_TIME, ANNOTATION_LAST_APPLIED)}


def address_to_endpoint(addr: dict, ready: bool) -> dict:
    ep: dict[str, Any] = {"addresses": [addr.get("ip", "")], "conditions": {"ready": ready}}
    if addr.get("hostname"):
        ep["hostname"] = addr["hostname"]
    if addr.get("targetRef"):
        ep["targetRef"] = copy.deepcopy(addr["targetRef"])
    if addr.get("nodeName"):
        ep["nodeName"] = addr["nodeName"]
    return ep


def _mirror_slice(ep: dict, ports: list[dict], address_type: str) -> dict:
    meta = _meta(ep)
    return {"apiVersion": API_VERSION, "kind": "EndpointSlice",
            "metadata": {"generateName": slice_prefix(meta.get("name", "")), "namespace": meta.get("namespace", ""),
                         "labels": mirrored_labels(ep), "annotations": mirrored_annotations(ep),
                         "ownerReferences": [owner_ref(ep, "Endpoints")]},
            "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports)}


def plan_mirrored_slices(ep: dict, existing: Iterable[dict],
                         max_endpoints: int = MIRRORING_MAX_ENDPOINTS_PER_SUBSET) -> SlicePlan:
    """Slices mirroring a custom Endpoints object: one group per (ports, address type)
    of its subsets, at most ``max_endpoints`` addresses per subset (ready ones first),
    split into slices of as many."""
    groups: dict[tuple, tuple[list[dict], str, dict[tuple, dict]]] = {}
    for ss in ep.get("subsets") or ():
        ports = [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in ss.get("ports") or ()]
        pm = port_map_key(ports)
        addrs = [(a, True) for a in ss.get("addresses") or ()] + \
                [(a, False) for a in ss.get("notReadyAddresses") or ()]
        for addr, ready in addrs[:max_endpoints]:
            family = ip_family(addr.get("ip") or "")
            if family is None:
                continue  # not an IP (upstream mirrors IPs only)
            endpoint = address_to_endpoint(addr, ready)
            members = groups.setdefault((pm, family), (ports, family, {}))[2]
            members.setdefault(endpoint_key(endpoint), endpoint)  # the first of duplicates
    existing_by_group: dict[tuple, list[dict]] = {}
    plan = SlicePlan()
    for s in existing:
        if not owned_by(s, ep):
            plan.delete.append(s)
            continue
        existing_by_group.setdefault((port_map_key(s.get("ports")), s.get("addressType")), []).append(s)
    labels, annotations = mirrored_labels(ep), mirrored_annotations(ep)
    for key in sorted(set(groups) | set(existing_by_group)):
        ports, family, members = groups.get(key, ([], key[1], {}))
        endpoints = list(members.values())
        chunks = [endpoints[i:i + max_endpoints] for i in range(0, len(endpoints), max_endpoints)]
        current = sorted(existing_by_group.get(key, []), key=lambda s: _meta(s).get("name", ""))
        for i, chunk in enumerate(chunks):
            if i < len(current):
                cur = current[i]
                same = ((_meta(cur).get("labels") or {}) == labels
                        and (_meta(cur).get("annotations") or {}) == annotations
                        and len(cur.get("endpoints") or ()) == len(chunk)
                        and all(endpoints_equal(a, b) for a, b in zip(cur.get("endpoints") or (), chunk, strict=False))
                        and port_map_key(cur.get("ports")) == port_map_key(ports))
                if not same:
                    new = copy.deepcopy(cur)
                    new["metadata"]["labels"], new["metadata"]["annotations"] = dict(labels), dict(annotations)
                    new["endpoints"], new["ports"] = chunk, copy.deepcopy(ports)
                    plan.update.append(new)
            else:
                new = _mirror_slice(ep, ports, family)
                new["endpoints"] = chunk
                plan.create.append(new)
        plan.delete += current[len(chunks):]
    _reuse_deleted(plan, ep)
    return plan


# -- the slices of one Service ---------------------------------------------------------------------

SLICE_SERVICE_INDEX = "pinnace.io/service"


def slice_service_key(slice_: dict) -> list[str]:
    name = (_meta(slice_).get("labels") or {}).get(LABEL_SERVICE_NAME)
    return [f"{_meta(slice_).get('namespace', '')}/{name}"] if name else []


def managed_slices(slice_informer: Informer, namespace: str, name: str, controller: str) -> list[dict]:
    """The slices of Service ``namespace/name`` managed by ``controller``."""
    return [s for s in slice_informer.indexer.by_index(SLICE_SERVICE_INDEX, f"{namespace}/{name}")
            if (_meta(s).get("labels") or {}).get(LABEL_MANAGED_BY) == controller]


# -- tracking our own writes ------------------------------------------------------------------


def _rv(obj: dict) -> int:
    try:
        return int(_meta(obj).get("resourceVersion") or 0)
    except ValueError:
        return 0


class SliceTracker:
    """Writes of ours the slice informer has not reported yet, per owner key: a sync that
    planned from a cache missing them would create duplicates or undo them."""

    def __init__(self, timeout: float = TRACKER_TIMEOUT, clock: Callable[[], float] = time.monotonic):
        self.timeout, self.clock = timeout, clock
        # owner key -> slice "ns/name" -> (resourceVersion written, 0 for a deletion; when)
        self._pending: dict[str, dict[str, tuple[int, float]]] = {}

    @staticmethod
    def _key(slice_: dict) -> str:
        meta = _meta(slice_)
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def expect(self, owner: str, written: dict, cached: dict | None, deleted: bool = False) -> None:
        """Record a write (``written``: what the server returned, or the deleted slice);
        ``cached`` is the informer's copy now, which may already show it."""
        if deleted:
            if cached is None or _meta(cached).get("uid") != _meta(written).get("uid"):
                return  # already seen gone
        elif cached is not None and _rv(cached) >= _rv(written):
            return  # already seen
        self._pending.setdefault(owner, {})[self._key(written)] = (0 if deleted else _rv(written), self.clock())

    def observed(self, owner: str, slice_: dict, deleted: bool = False) -> bool:
        """The informer reports ``slice_``: True if that is exactly our own write coming back
        (no need to sync for it)."""
        pending = self._pending.get(owner)
        want = pending.get(self._key(slice_)) if pending else None
        if pending is None or want is None:
            return False
        rv = want[0]
        if not deleted and (rv == 0 or _rv(slice_) < rv):
            return False  # an older state, or a change where we wait for a deletion: keep waiting
        del pending[self._key(slice_)]
        if not pending:
            del self._pending[owner]
        return rv == 0 if deleted else _rv(slice_) == rv

    def stale(self, owner: str) -> bool:
        """Whether writes of ours for ``owner`` are still unseen (given up after ``timeout``)."""
        pending = self._pending.get(owner)
        if not pending:
            return False
        now = self.clock()
        for key, (_, when) in list(pending.items()):
            if now - when > self.timeout:
                log.warning("endpointslice %s: our write was never seen; no longer waiting for it", key)
                del pending[key]
        if not pending:
            del self._pending[owner]
            return False
        return True


class _SliceWriter:
    """Applies a :class:`SlicePlan`, telling the tracker what to expect."""

    client: RestClient
    tracker: SliceTracker
    slice_lister: Lister

    def _cached(self, slice_: dict) -> dict | None:
        return self.slice_lister.get(_meta(slice_).get("name", ""), _meta(slice_).get("namespace", ""))

    async def apply_plan(self, owner_key: str, namespace: str, plan: SlicePlan,
                         trigger: dt.datetime | None = None, set_trigger: bool = False) -> None:
        errors: list[Exception] = []
        for s in plan.create:
            if set_trigger:
                set_trigger_time(s, trigger)
            try:
                created = await self.client.create(API_VERSION, PLURAL, s, namespace)
                self.tracker.expect(owner_key, created, self._cached(created))
            except ApiException as e:
                if e.status == 403 and cu.namespace_terminating(e):
                    continue
                errors.append(e)
        for s in plan.update:
            if set_trigger:
                set_trigger_time(s, trigger)
            try:
                updated = await self.client.update(API_VERSION, PLURAL, s, namespace)
                self.tracker.expect(owner_key, updated, self._cached(updated))
            except ApiException as e:
                errors.append(e)
        for s in plan.delete:
            meta = _meta(s)
            try:
                await self.client.delete(API_VERSION, PLURAL, meta["name"], namespace,
                                         preconditions={"uid": meta.get("uid")})
                self.tracker.expect(owner_key, s, self._cached(s), deleted=True)
            except ApiException as e:
                if e.status not in (404, 409):
                    errors.append(e)
        if errors:
            raise errors[0]


def _is_conflict(e: Exception) -> bool:
    return isinstance(e, ApiException) and e.status in (404, 409)


# -- the EndpointSlice controller -------------------------------------------------------------


class EndpointSliceController(_SliceWriter, QueueController):
    """``EndpointSliceController(client, factory, recorder)``; ``start()``, ``await stop()``,
    ``await sync("ns/name")`` (a Service key)."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE):
        QueueController.__init__(self, client, factory, recorder, component="endpointslice-controller",
                                 queue="endpointslice", workers=workers)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.tracker = SliceTracker()
        self.trigger_times = TriggerTimeTracker()
        self.service_informer = self.informer("v1", "services")
        self.pod_informer = self.informer("v1", "pods")
        self.node_informer = self.informer("v1", "nodes")
        self.slice_informer = self.informer(API_VERSION, PLURAL)
        ensure_pod_node_index(self.pod_informer)
        ensure_index(self.pod_informer, POD_LABEL_INDEX, pod_label_pairs)
        ensure_index(self.service_informer, SERVICE_SELECTOR_INDEX, service_selector_pairs)
        ensure_index(self.slice_informer, SLICE_SERVICE_INDEX, slice_service_key)
        self.service_lister, self.pod_lister = self.service_informer.lister, self.pod_informer.lister
        self.node_lister, self.slice_lister = self.node_informer.lister, self.slice_informer.lister
        self.service_informer.add_event_handler(on_add=self.enqueue, on_update=lambda _o, c: self.enqueue(c),
                                                on_delete=self.enqueue)
        self.pod_informer.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                            on_delete=self._pod_added)
        self.node_informer.add_event_handler(on_add=self._node_added, on_update=self._node_updated)
        self.slice_informer.add_event_handler(on_add=lambda s: self._slice_event(s),
                                              on_update=lambda _o, s: self._slice_event(s),
                                              on_delete=lambda s: self._slice_event(s, deleted=True))

    # -- event handlers -----------------------------------------------------------------------

    def _enqueue_services_of(self, pod: dict) -> None:
        for svc in services_of_pod(self.service_informer, pod):
            self.enqueue(svc)

    def _pod_added(self, pod: dict) -> None:
        self._enqueue_services_of(pod)

    def _pod_updated(self, old: dict, cur: dict) -> None:
        if _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        labels_changed = _meta(old).get("labels") != _meta(cur).get("labels")
        if not labels_changed and not pod_changed_for_endpoints(old, cur):
            return
        self._enqueue_services_of(cur)
        if labels_changed:
            self._enqueue_services_of(old)

    def _node_added(self, node: dict) -> None:
        # Pods on a node we did not know were left out: bring their Services back.
        for pod in self.pod_informer.indexer.by_index(NODE_NAME_INDEX, _meta(node).get("name", "")):
            self._enqueue_services_of(pod)

    def _node_updated(self, old: dict, cur: dict) -> None:
        if (_meta(old).get("labels") or {}).get(LABEL_ZONE) != (_meta(cur).get("labels") or {}).get(LABEL_ZONE):
            self._node_added(cur)

    def _slice_event(self, s: dict, deleted: bool = False) -> None:
        labels = _meta(s).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME or not labels.get(LABEL_SERVICE_NAME):
            return
        key = f"{_meta(s).get('namespace', '')}/{labels[LABEL_SERVICE_NAME]}"
        if not self.tracker.observed(key, s, deleted):
            self.queue.add(key)  # someone else changed one of ours (or a write of ours is now visible)

    def _retry_quietly(self, e: Exception) -> bool:
        return _is_conflict(e)

    # -- sync -----------------------------------------------------------------------------------

    def _managed_slices(self, namespace: str, name: str) -> list[dict]:
        return managed_slices(self.slice_informer, namespace, name, CONTROLLER_NAME)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        if self.tracker.stale(key):
            self.queue.add_after(key, 0.05)  # our last writes are on their way to the cache
            return
        svc = self.service_lister.get(name, namespace)
        existing = self._managed_slices(namespace, name)
        selector = service_selector(svc) if svc is not None else None
        if svc is None or selector is None or _spec(svc).get("type") == "ExternalName":
            # Gone (the garbage collector would get there too), or no longer selecting pods:
            # the slices it had are stale.
            self.trigger_times.delete(key)
            await self.apply_plan(key, namespace, SlicePlan(delete=existing))
            return
        pods = selected_pods(self.pod_informer, namespace, selector)
        trigger = self.trigger_times.compute(key, svc, pods)
        plan, skipped = plan_service_slices(svc, pods, lambda n: self.node_lister.get(n), existing,
                                            self.max_endpoints_per_slice)
        if cu.is_being_deleted(svc):
            plan.create.clear()  # racing the garbage collector would only recreate what it removes
        if plan:
            await self.apply_plan(key, namespace, plan, trigger, set_trigger=True)
        if skipped:
            log.info("endpointslice %s: pods %s left out until their node is known", key, ", ".join(skipped[:5]))
            self.queue.add_after(key, 1.0)


# -- the mirroring controller -----------------------------------------------------------------


class EndpointSliceMirroringController(_SliceWriter, QueueController):
    """``EndpointSliceMirroringController(client, factory, recorder)``; keys are Endpoints
    (= Service) keys."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = WORKERS, max_endpoints_per_subset: int = MIRRORING_MAX_ENDPOINTS_PER_SUBSET):
        QueueController.__init__(self, client, factory, recorder, component="endpointslicemirroring-controller",
                                 queue="endpointslicemirroring", workers=workers)
        self.max_endpoints_per_subset = max_endpoints_per_subset
        self.tracker = SliceTracker()
        self.service_informer = self.informer("v1", "services")
        self.endpoints_informer = self.informer("v1", "endpoints")
        self.slice_informer = self.informer(API_VERSION, PLURAL)
        self.service_lister = self.service_informer.lister
        self.endpoints_lister = self.endpoints_informer.lister
        self.slice_lister = self.slice_informer.lister
        ensure_index(self.slice_informer, SLICE_SERVICE_INDEX, slice_service_key)
        for inf in (self.service_informer, self.endpoints_informer):
            inf.add_event_handler(on_add=self.enqueue, on_update=lambda _o, c: self.enqueue(c),
                                  on_delete=self.enqueue)
        self.slice_informer.add_event_handler(on_add=lambda s: self._slice_event(s),
                                              on_update=lambda _o, s: self._slice_event(s),
                                              on_delete=lambda s: self._slice_event(s, deleted=True))

    def _slice_event(self, s: dict, deleted: bool = False) -> None:
        labels = _meta(s).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) != MIRRORING_CONTROLLER_NAME or not labels.get(LABEL_SERVICE_NAME):
            return
        key = f"{_meta(s).get('namespace', '')}/{labels[LABEL_SERVICE_NAME]}"
        if not self.tracker.observed(key, s, deleted):
            self.queue.add(key)

    def _retry_quietly(self, e: Exception) -> bool:
        return _is_conflict(e)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        if self.tracker.stale(key):
            self.queue.add_after(key, 0.05)
            return
        existing = managed_slices(self.slice_informer, namespace, name, MIRRORING_CONTROLLER_NAME)
        svc = self.service_lister.get(name, namespace)
        ep = self.endpoints_lister.get(name, namespace)
        if svc is None or service_selector(svc) is not None or ep is None or not should_mirror(ep):
            # Only the custom Endpoints of selector-less Services are mirrored.
            await self.apply_plan(key, namespace, SlicePlan(delete=existing))
            return
        plan = plan_mirrored_slices(ep, existing, self.max_endpoints_per_subset)
        if plan:
            await self.apply_plan(key, namespace, plan)


__all__ = [
    "CONTROLLER_NAME", "LABEL_MANAGED_BY", "LABEL_SERVICE_NAME", "LABEL_SKIP_MIRROR", "MAX_ENDPOINTS_PER_SLICE",
    "MIRRORING_CONTROLLER_NAME", "EndpointSliceController", "EndpointSliceMirroringController", "SlicePlan",
    "SliceTracker", "address_types", "endpoint_key", "endpoint_ports", "plan_mirrored_slices",
    "plan_service_slices", "pod_to_endpoint", "port_map_key", "service_slice_labels", "should_mirror",
]
