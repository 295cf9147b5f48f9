"""Built-in admission: the in-process plugins every write passes through.

- NamespaceLifecycle: no content in missing or terminating namespaces; the
  system namespaces cannot be deleted.
- Service allocation: ClusterIPs from the service CIDR and NodePorts from
  their range.  Each allocation is a create-if-absent key in storage, so two
  API servers on one etcd can never hand out the same address.
- Priority: ``priorityClassName`` → ``priority`` (and the global default class).
- DefaultTolerationSeconds: pods tolerate not-ready/unreachable nodes for 300 s.
- ServiceAccount (when the server signs tokens): see :mod:`pinnace.apiserver.serviceaccounts`.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from ..api.resources import ResourceType
from ..storage.base import KeyExists, KeyNotFound
from . import errors

if TYPE_CHECKING:
    from .registry import Registry, RequestContext
    from .serviceaccounts import ServiceAccountTokens

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public")
IP_PREFIX = "/registry/pinnace.io/serviceips/"
PORT_PREFIX = "/registry/pinnace.io/servicenodeports/"
DEFAULT_TOLERATION_SECONDS = 300


@dataclass
class ClusterConfig:
    service_cidr: str = "10.43.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr)[1])

    @property
    def dns_service_ip(self) -> str:
        """The cluster DNS Service's address (kube-system/kube-dns): the range's tenth, 10.43.0.10."""
        return str(ipaddress.ip_network(self.service_cidr)[10])


class Admission:
    def __init__(self, registry: Registry, config: ClusterConfig | None = None):
        self.registry = registry
        self.config = config or ClusterConfig()
        # The ServiceAccount plugin; the API server sets it when it signs tokens.
        self.service_accounts: ServiceAccountTokens | None = None

    # -- hooks called by the registry ------------------------------------------------

    async def mutate(self, rtype: ResourceType, obj: dict, old: dict | None, ctx: RequestContext) -> None:
        if rtype.group == "" and rtype.plural == "services":
            await self._allocate_service(obj, old, ctx)
        elif rtype.group == "" and rtype.plural == "pods" and old is None:
            await self._pod_priority(obj)
            _default_tolerations(obj)
            if self.service_accounts is not None:
                await self.service_accounts.admit_pod(obj, ctx)
        elif rtype.group == "certificates.k8s.io" and rtype.plural == "certificatesigningrequests" and old is None:
            # Who asked is the authenticated caller, never what the client wrote: approvers trust it.
            spec = obj.setdefault("spec", {})
            spec["username"], spec["groups"] = ctx.user, list(ctx.groups)
            spec.pop("uid", None)
            spec.pop("extra", None)

    async def validate(self, rtype: ResourceType, obj: dict, old: dict | None, ctx: RequestContext) -> None:
        if old is None and rtype.namespaced:
            await self._namespace_open(rtype, obj)

    async def rollback(self, rtype: ResourceType, obj: dict, old: dict | None) -> None:
        """A create or update that admission allowed failed in storage: undo allocations."""
        if rtype.group == "" and rtype.plural == "services":
            await self._release(obj, old)

    async def after_update(self, rtype: ResourceType, obj: dict, old: dict) -> None:
        if rtype.group == "" and rtype.plural == "services":
            await self._release(old, obj)

    async def before_delete(self, rtype: ResourceType, obj: dict, ctx: RequestContext) -> None:
        if rtype.group == "" and rtype.plural == "namespaces" and obj["metadata"]["name"] in SYSTEM_NAMESPACES:
            raise errors.forbidden("namespaces", "", obj["metadata"]["name"], "this namespace may not be deleted")

    async def after_delete(self, rtype: ResourceType, obj: dict) -> None:
        if rtype.group == "" and rtype.plural == "services":
            await self._release(obj, None)

    # -- NamespaceLifecycle ------------------------------------------------------------

    async def _namespace_open(self, rtype: ResourceType, obj: dict) -> None:
        ns = obj["metadata"].get("namespace", "")
        ns_type = self.registry.resources.get("", "v1", "namespaces")
        assert ns_type is not None
        cached = self.registry.cache.get(ns_type.key("", ns))
        ns_obj = cached.obj if cached else None
        if ns_obj is None:
            kv = await self.registry.store.get(ns_type.key("", ns))
            ns_obj = orjson.loads(kv.value) if kv else None
        if ns_obj is None:
            raise errors.not_found("namespaces", "", ns)
        if ns_obj["metadata"].get("deletionTimestamp") or (ns_obj.get("status") or {}).get("phase") == "Terminating":
            name = obj["metadata"].get("name", "")
            raise errors.forbidden(rtype.plural, rtype.group, name,
                                   f"unable to create new content in namespace {ns} because it is being terminated")

    # -- Service allocation --------------------------------------------------------------

    async def _allocate_service(self, svc: dict, old: dict | None, ctx: RequestContext) -> None:
        spec = svc.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        old_spec = (old or {}).get("spec") or {}
        name = f'{svc["metadata"].get("namespace")}/{svc["metadata"].get("name")}'
        if old is None:
            # A duplicate create is 409 AlreadyExists, not an allocation failure.
            svc_type = self.registry.resources.get("", "v1", "services")
            assert svc_type is not None
            key = svc_type.key(svc["metadata"].get("namespace", ""), svc["metadata"].get("name", ""))
            if await self.registry.store.get(key) is not None:
                raise errors.already_exists("services", "", svc["metadata"].get("name", ""))
        if stype == "ExternalName":
            for k in ("clusterIP", "clusterIPs"):
                spec.pop(k, None)
        else:
            if not spec.get("clusterIP") and old_spec.get("clusterIP") and old_spec.get("type") != "ExternalName":
                # An update that omits the address keeps the one already allocated.
                spec["clusterIP"] = old_spec["clusterIP"]
                spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
            ip = spec.get("clusterIP")
            if not ip:
                ip = await self._allocate_ip("", name, ctx)
            elif ip != "None" and ip != old_spec.get("clusterIP"):
                ip = await self._allocate_ip(ip, name, ctx)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports") or []}
        wants_node_ports = stype in ("NodePort", "LoadBalancer")
        if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
            wants_node_ports = False
        for port in spec.get("ports") or []:
            if not wants_node_ports:
                port.pop("nodePort", None)
                continue
            proto = port.get("protocol", "TCP")
            previous = old_ports.get((port.get("port"), proto))
            if not port.get("nodePort") and previous:
                port["nodePort"] = previous
            if port.get("nodePort") != previous or not previous:
                port["nodePort"] = await self._allocate_port(port.get("nodePort") or 0, proto, name, ctx)

    async def _allocate_ip(self, wanted: str, owner: str, ctx: RequestContext) -> str:
        net = ipaddress.ip_network(self.config.service_cidr)
        store = self.registry.store
        if wanted:
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise _field_invalid("spec.clusterIP", wanted, "must be a valid IP address") from None
            if addr not in net or addr in (net.network_address, net.broadcast_address):
                raise _field_invalid("spec.clusterIP", wanted,
                                     f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the "
                                     f"valid range. The range of valid IPs is {net}")
            if ctx.dry_run:
                return wanted
            try:
                await store.create(IP_PREFIX + wanted, orjson.dumps({"owner": owner}))
            except KeyExists:
                raise _field_invalid("spec.clusterIP", wanted,
                                     f"failed to allocate IP {wanted}: provided IP is already allocated") from None
            return wanted
        # Random, skipping the first 10 addresses (kept for static use: API server, DNS).
        size = net.num_addresses
        low = min(11, size - 2)
        for _ in range(64):
            candidate = str(net.network_address + random.randint(low, size - 2))
            if ctx.dry_run:
                if self.registry.cache.get(IP_PREFIX + candidate) is None:
                    return candidate
                continue
            try:
                await store.create(IP_PREFIX + candidate, orjson.dumps({"owner": owner}))
                return candidate
            except KeyExists:
                continue
        raise errors.ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: "
                                                    "range is full")

    async def _allocate_port(self, wanted: int, proto: str, owner: str, ctx: RequestContext) -> int:
        lo, hi = self.config.node_port_range
        store = self.registry.store
        if wanted:
            if not lo <= wanted <= hi:
                raise _field_invalid("spec.ports[].nodePort", wanted,
                                     f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}")
            if ctx.dry_run:
                return wanted
            try:
                await store.create(f"{PORT_PREFIX}{wanted}-{proto}", orjson.dumps({"owner": owner}))
            except KeyExists:
                raise _field_invalid("spec.ports[].nodePort", wanted, "provided port is already allocated") from None
            return wanted
        for _ in range(64):
            candidate = random.randint(lo, hi)
            if ctx.dry_run:
                return candidate
            try:
                await store.create(f"{PORT_PREFIX}{candidate}-{proto}", orjson.dumps({"owner": owner}))
                return candidate
            except KeyExists:
                continue
        raise errors.ApiError(500, "InternalError", "Internal error occurred: failed to allocate a nodePort: "
                                                    "range is full")

    async def _release(self, svc: dict | None, keep: dict | None) -> None:
        """Free what ``svc`` holds and ``keep`` (its successor, if any) does not."""
        if not svc:
            return
        spec, keep_spec = svc.get("spec") or {}, (keep or {}).get("spec") or {}
        keys = set()
        if spec.get("clusterIP") not in (None, "", "None"):
            keys.add(IP_PREFIX + spec["clusterIP"])
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                keys.add(f"{PORT_PREFIX}{p['nodePort']}-{p.get('protocol', 'TCP')}")
        if keep_spec.get("clusterIP"):
            keys.discard(IP_PREFIX + keep_spec["clusterIP"])
        for p in keep_spec.get("ports") or []:
            if p.get("nodePort"):
                keys.discard(f"{PORT_PREFIX}{p['nodePort']}-{p.get('protocol', 'TCP')}")
        for key in keys:
            try:
                await self.registry.store.delete(key)
            except KeyNotFound:
                pass

    # -- Priority ---------------------------------------------------------------------------

    async def _pod_priority(self, pod: dict) -> None:
        spec = pod.setdefault("spec", {})
        name = spec.get("priorityClassName")
        pc_type = self.registry.resources.get("scheduling.k8s.io", "v1", "priorityclasses")
        if pc_type is None:
            return
        if name:
            kv = await self.registry.store.get(pc_type.key("", name))
            if kv is None:
                raise errors.forbidden("pods", "", pod["metadata"].get("name", ""),
                                       f"no PriorityClass with name {name} was found")
            pc = orjson.loads(kv.value)
        else:
            pc = next((o.obj for o in self.registry.cache.list(pc_type.storage_prefix)
                       if o.obj.get("globalDefault")), None)
            if pc is None:
                spec.setdefault("priority", 0)
                return
            spec["priorityClassName"] = pc["metadata"]["name"]
        spec["priority"] = pc.get("value", 0)
        spec.setdefault("preemptionPolicy", pc.get("preemptionPolicy", "PreemptLowerPriority"))


def _default_tolerations(pod: dict) -> None:
    tolerations = pod["spec"].setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == taint and t.get("effect") in (None, "", "NoExecute") for t in tolerations) and \
                not any(t.get("operator") == "Exists" and not t.get("key") for t in tolerations):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})


def _field_invalid(path: str, value: object, message: str) -> errors.ApiError:
    return errors.ApiError(422, "Invalid", f"{path}: Invalid value: {value!r}: {message}", {
        "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {value!r}: {message}",
                    "field": path}]})
