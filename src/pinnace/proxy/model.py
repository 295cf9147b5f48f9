"""What kube-proxy programs, as plain data: one :class:`ServicePort` per port of
every Service, with the endpoints this node may send its traffic to.

Pure functions of Services, EndpointSlices (discovery.k8s.io/v1) and this node's
name.  The backends (nftables, iptables, userspace) only ever read these values;
because they are frozen and comparable, "did this service port change since the
last sync" is plain ``!=``, which is what incremental syncs are built on.

Endpoint choice follows upstream kube-proxy (pkg/proxy/topology.go): *ready*
endpoints are used; when a service has none, its serving-but-terminating ones
are (so a rolling update that ends with every pod terminating still serves).
The same fallback is made separately for the endpoints on this node, which
``Local`` traffic policies use.  Services that are ExternalName, headless, have
no cluster IP yet, or name another proxy (``service.kubernetes.io/service-proxy-name``)
get nothing.  Only IPv4 is modelled (the nftables table is ``ip``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: ServiceSpec.sessionAffinityConfig.clientIP.timeoutSeconds default

#: (namespace, service name, port name, protocol): a service port's identity.
ServicePortKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""
    is_local: bool = False
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP", "UDP" or "SCTP"
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0: none
    external_policy_local: bool = False
    internal_policy_local: bool = False
    #: Usable endpoints anywhere (ready ones, else serving-terminating ones), sorted.
    endpoints: tuple[Endpoint, ...] = ()
    #: Usable endpoints on this node (the same fallback, applied to this node's alone), sorted.
    local_endpoints: tuple[Endpoint, ...] = field(default=())

    @property
    def key(self) -> ServicePortKey:
        return (self.namespace, self.name, self.port_name, self.protocol)

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol.lower()}"

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def has_endpoints(self) -> bool:
        """Some endpoint, anywhere, can serve: else traffic is rejected."""
        return bool(self.endpoints)

    @property
    def internal_endpoints(self) -> tuple[Endpoint, ...]:
        """Where traffic to the cluster IP goes (internalTrafficPolicy)."""
        return self.local_endpoints if self.internal_policy_local else self.endpoints

    @property
    def external_endpoints(self) -> tuple[Endpoint, ...]:
        """Where NodePort, LoadBalancer and external-IP traffic from outside goes
        (externalTrafficPolicy)."""
        return self.local_endpoints if self.external_policy_local else self.endpoints

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_local(self) -> bool:
        """A ``Local`` policy applies to some of this port's traffic."""
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)

    @property
    def uses_cluster(self) -> bool:
        """A ``Cluster`` policy applies to some of this port's traffic (external
        traffic from pods and the node itself always uses it, as upstream)."""
        return not self.internal_policy_local or self.externally_accessible

    @property
    def reachable_endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint some rule of this port can send to, sorted."""
        eps: set[Endpoint] = set()
        if self.uses_cluster:
            eps.update(self.endpoints)
        if self.uses_local:
            eps.update(self.local_endpoints)
        return tuple(sorted(eps))


# -- from API objects ----------------------------------------------------------------


def _is_ipv4(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, text)  # strict dotted quad, and fast
    except (OSError, TypeError):
        return False
    return True


def proxyable(service: dict) -> bool:
    """Whether this proxy programs anything for ``service``."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    if (meta.get("labels") or {}).get(SERVICE_PROXY_NAME_LABEL):
        return False  # another proxy implementation owns it
    if spec.get("type") == "ExternalName":
        return False
    ip = spec.get("clusterIP") or ""
    return bool(ip) and ip != "None"


def _endpoint_conditions(ep: dict) -> tuple[bool, bool, bool]:
    # Unset ready means ready ("unknown: interpret as ready"), unset terminating means not.
    cond = ep.get("conditions") or {}
    ready = cond.get("ready") is not False
    serving = ready if cond.get("serving") is None else cond["serving"] is True  # nil: defer to ready (API doc)
    terminating = cond.get("terminating") is True
    return ready, serving, terminating


def slice_endpoints(slices: Iterable[dict], port_name: str, protocol: str, node_name: str) -> list[Endpoint]:
    """Every IPv4 endpoint of ``slices`` for the port named ``port_name``/``protocol``
    (each ip:port once, the most usable copy winning, as upstream merges slices)."""
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        ports = [p for p in sl.get("ports") or () if (p.get("name") or "") == port_name
                 and (p.get("protocol") or "TCP") == protocol and p.get("port")]
        if not ports:
            continue
        for ep in sl.get("endpoints") or ():
            addrs = ep.get("addresses") or ()
            if not addrs or not _is_ipv4(addrs[0]):
                continue
            ready, serving, terminating = _endpoint_conditions(ep)
            node = ep.get("nodeName") or ""
            for p in ports:
                e = Endpoint(addrs[0], int(p["port"]), node, bool(node) and node == node_name, ready, serving,
                             terminating)
                prev = found.get((e.ip, e.port))
                if prev is None or (e.ready, e.serving) > (prev.ready, prev.serving):
                    found[(e.ip, e.port)] = e
    return sorted(found.values())


def categorize(endpoints: Iterable[Endpoint]) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """(usable cluster-wide, usable on this node): ready endpoints, falling back to
    serving-terminating ones when there are none (separately for each list)."""
    eps = list(endpoints)
    cluster = [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]
    local = [e for e in eps if e.is_local and e.ready] or \
        [e for e in eps if e.is_local and e.serving and e.terminating]
    return tuple(cluster), tuple(local)


def service_ports(service: dict, slices: Iterable[dict], node_name: str) -> list[ServicePort]:
    """The service ports of one Service; ``slices`` are its EndpointSlices (any
    others are ignored)."""
    if not proxyable(service):
        return []
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    status = service.get("status") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name") or ""
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and _is_ipv4(ip)]
    if not cluster_ips:
        return []  # an IPv6-only service: nothing for an IPv4 proxy
    svc_type = spec.get("type") or "ClusterIP"
    external_ips = tuple(sorted({ip for ip in spec.get("externalIPs") or () if _is_ipv4(ip)}))
    lb_ips: tuple[str, ...] = ()
    if svc_type == "LoadBalancer":
        # ipMode Proxy: the load balancer proxies to the node, so its IP is not ours to capture.
        lb_ips = tuple(sorted({i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or ()
                               if i.get("ip") and _is_ipv4(i["ip"]) and i.get("ipMode", "VIP") != "Proxy"}))
    node_ports = svc_type in ("NodePort", "LoadBalancer")
    externally = bool(external_ips or lb_ips or node_ports)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    ext_local = externally and spec.get("externalTrafficPolicy") == "Local"
    int_local = spec.get("internalTrafficPolicy") == "Local"
    own = [s for s in slices if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name
           and ((s.get("metadata") or {}).get("namespace") or "default") == ns]
    out = []
    for p in spec.get("ports") or ():
        if not p.get("port"):
            continue
        port_name, protocol = p.get("name") or "", p.get("protocol") or "TCP"
        cluster, local = categorize(slice_endpoints(own, port_name, protocol, node_name))
        out.append(ServicePort(
            namespace=ns, name=name, port_name=port_name, protocol=protocol, cluster_ip=cluster_ips[0],
            port=int(p["port"]), node_port=int(p.get("nodePort") or 0) if node_ports else 0,
            external_ips=external_ips, load_balancer_ips=lb_ips, affinity_timeout=affinity,
            external_policy_local=ext_local, internal_policy_local=int_local,
            endpoints=cluster, local_endpoints=local))
    return out


def slice_service(sl: dict) -> str | None:
    """``namespace/name`` of the Service an EndpointSlice belongs to."""
    meta = sl.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or 'default'}/{svc}" if svc else None


def build_state(services: Iterable[dict], slices: Iterable[dict], node_name: str) -> dict[ServicePortKey, ServicePort]:
    """Every service port of ``services``, by key."""
    by_service: dict[str, list[dict]] = {}
    for sl in slices:
        svc = slice_service(sl)
        if svc is not None:
            by_service.setdefault(svc, []).append(sl)
    state: dict[ServicePortKey, ServicePort] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        for sp in service_ports(svc, by_service.get(key, ()), node_name):
            state[sp.key] = sp
    return state


def changed_keys(old: Mapping[ServicePortKey, ServicePort], new: Mapping[ServicePortKey, ServicePort]
                 ) -> tuple[list[ServicePortKey], list[ServicePortKey], list[ServicePortKey]]:
    """(added, removed, changed) keys between two states, each sorted."""
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    changed = sorted(k for k in new if k in old and old[k] != new[k])
    return added, removed, changed


__all__ = ["DEFAULT_AFFINITY_TIMEOUT", "SERVICE_NAME_LABEL", "SERVICE_PROXY_NAME_LABEL", "Endpoint", "ServicePort",
           "ServicePortKey", "build_state", "categorize", "changed_keys", "proxyable", "service_ports",
           "slice_endpoints", "slice_service"]
