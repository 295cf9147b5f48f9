"""Cluster DNS records: a pure resolver over an in-memory view of Services and
EndpointSlices, answering as the Kubernetes DNS specification (schema 1.1.0)
and CoreDNS's *kubernetes* plugin (with ``pods insecure``) do.

Names under the cluster domain ``<zone>``:

- ``<svc>.<ns>.svc.<zone>``: A/AAAA of the cluster IPs; for a headless Service
  every *ready* endpoint address (``publishNotReadyAddresses`` counts all);
  CNAME to ``spec.externalName`` for an ExternalName Service.
- ``<endpoint>.<svc>.<ns>.svc.<zone>``: the endpoint's addresses, where
  ``<endpoint>`` is its ``hostname`` (pod hostname + subdomain, StatefulSets)
  or else its IP in dashed form (``10-42-0-5``).
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV per named port; the target is
  the Service name (cluster IP) or, headless, one per endpoint name, with their
  addresses in the additional section.
- ``<a-b-c-d>.<ns>.pod.<zone>``: A of the IP written in the name.
- ``dns-version.<zone>`` TXT, the apex SOA and NS.
- PTR (``in-addr.arpa``/``ip6.arpa``) for cluster IPs and endpoint addresses.

A name that does not exist is NXDOMAIN; a name that exists without records of
the asked type (AAAA of an IPv4 Service, ``<ns>.svc.<zone>``) is NODATA:
NOERROR, no answer, the zone's SOA in the authority section.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

TTL = 5  # seconds, CoreDNS's default
SCHEMA_VERSION = "1.1.0"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
MAX_CNAME_CHAIN = 8

QT_A, QT_AAAA, QT_CNAME, QT_SRV, QT_PTR = QTYPE.A, QTYPE.AAAA, QTYPE.CNAME, QTYPE.SRV, QTYPE.PTR
QT_TXT, QT_SOA, QT_NS, QT_ANY = QTYPE.TXT, QTYPE.SOA, QTYPE.NS, QTYPE.ANY


# -- the view ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Port:
    name: str  # lower case; "" for an unnamed port
    protocol: str  # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]  # empty for headless and ExternalName Services
    headless: bool
    external_name: str  # lower case, no trailing dot; "" unless type ExternalName
    ports: tuple[Port, ...]
    publish_not_ready: bool

    @classmethod
    def from_object(cls, obj: dict) -> Service:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        stype = spec.get("type") or "ClusterIP"
        ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP") or ""]) if ip]
        headless = stype != "ExternalName" and "None" in ips
        ports = tuple(Port((p.get("name") or "").lower(), (p.get("protocol") or "TCP").lower(), int(p.get("port") or 0))
                      for p in spec.get("ports") or ())
        external = (spec.get("externalName") or "").lower().rstrip(".") if stype == "ExternalName" else ""
        annotations = meta.get("annotations") or {}
        return cls(namespace=meta.get("namespace") or "default", name=meta.get("name") or "", type=stype,
                   cluster_ips=() if headless or stype == "ExternalName" else tuple(_canonical_ips(ips)),
                   headless=headless, external_name=external, ports=ports,
                   publish_not_ready=bool(spec.get("publishNotReadyAddresses"))
                   or annotations.get(TOLERATE_UNREADY) == "true")


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str  # canonical text form
    v6: bool
    hostname: str  # the endpoint's own hostname, lower case, or ""
    ready: bool
    ports: tuple[Port, ...]  # the ports of its EndpointSlice (numbers are target ports)

    @property
    def name(self) -> str:
        """The spec's *hostname* of an endpoint: its hostname, else its IP with
        dots (or colons) turned into dashes, as CoreDNS does."""
        return self.hostname or self.ip.replace(":" if self.v6 else ".", "-")


def _canonical_ips(ips: list[str]) -> list[str]:
    out = []
    for ip in ips:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    return out


def endpoints_of_slice(obj: dict) -> tuple[Endpoint, ...]:
    """The IP endpoints of one discovery.k8s.io/v1 EndpointSlice (FQDN slices have none)."""
    if (obj.get("addressType") or "IPv4") not in ("IPv4", "IPv6"):
        return ()
    ports = tuple(Port((p.get("name") or "").lower(), (p.get("protocol") or "TCP").lower(), int(p["port"]))
                  for p in obj.get("ports") or () if p.get("port") is not None)
    out = []
    for ep in obj.get("endpoints") or ():
        # A nil ready condition means unknown, to be taken as ready (EndpointConditions).
        ready = (ep.get("conditions") or {}).get("ready") is not False
        hostname = (ep.get("hostname") or "").lower()
        for ip in _canonical_ips(ep.get("addresses") or []):
            out.append(Endpoint(ip, ":" in ip, hostname, ready, ports))
    return tuple(out)


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


@dataclass(slots=True)
class _ReverseEntry:
    namespace: str
    service: str
    endpoint: str  # "" for a cluster IP


class ClusterView:
    """Services and EndpointSlices as DNS needs them, indexed by (namespace, name).

    Mutations bump :attr:`generation` and :attr:`serial` (the SOA serial, a Unix
    time like CoreDNS's) and call the listeners, unless nothing DNS-visible
    changed.  ``synced`` is false until the informers feeding it have listed
    once; until then a name error is answered SERVFAIL, not NXDOMAIN."""

    def __init__(self, synced: bool = True):
        self.services: dict[tuple[str, str], Service] = {}
        # (namespace, service name) -> {slice name: endpoints}
        self._slices: dict[tuple[str, str], dict[str, tuple[Endpoint, ...]]] = {}
        # (namespace, slice name) -> service name it was filed under (the label could change)
        self._slice_service: dict[tuple[str, str], str] = {}
        self._endpoints: dict[tuple[str, str], tuple[Endpoint, ...]] = {}
        self._reverse: dict[str, list[_ReverseEntry]] | None = None
        self.synced = synced
        self.generation = 0
        self.serial = int(time.time())
        self._listeners: list[Callable[[], object]] = []

    def add_listener(self, fn: Callable[[], object]) -> None:
        self._listeners.append(fn)

    def changed(self) -> None:
        self.generation += 1
        self.serial = max(self.serial + 1, int(time.time()))
        self._reverse = None
        for fn in self._listeners:
            fn()

    # -- services --

    def set_service(self, obj: dict) -> None:
        svc = Service.from_object(obj)
        key = (svc.namespace, svc.name)
        if self.services.get(key) == svc:
            return  # e.g. a status update: nothing DNS shows
        self.services[key] = svc
        self.changed()

    def delete_service(self, obj: dict) -> None:
        if self.services.pop(_key(obj), None) is not None:
            self.changed()

    # -- endpoint slices --

    def set_endpoint_slice(self, obj: dict) -> None:
        ns, name = _key(obj)
        service = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        eps = endpoints_of_slice(obj)
        old_service = self._slice_service.get((ns, name))
        if old_service is None and not service:
            return  # not (yet) a Service's slice: nothing to show
        if old_service == service and self._slices.get((ns, service), {}).get(name) == eps:
            return
        if old_service is not None and old_service != service:
            self._drop_slice(ns, name, old_service)
        if service:
            self._slices.setdefault((ns, service), {})[name] = eps
            self._slice_service[(ns, name)] = service
            self._endpoints.pop((ns, service), None)
        self.changed()

    def delete_endpoint_slice(self, obj: dict) -> None:
        ns, name = _key(obj)
        service = self._slice_service.get((ns, name))
        if service is not None:
            self._drop_slice(ns, name, service)
            self.changed()

    def _drop_slice(self, ns: str, name: str, service: str) -> None:
        self._slice_service.pop((ns, name), None)
        slices = self._slices.get((ns, service))
        if slices is not None:
            slices.pop(name, None)
            if not slices:
                del self._slices[(ns, service)]
        self._endpoints.pop((ns, service), None)

    def endpoints(self, namespace: str, service: str) -> tuple[Endpoint, ...]:
        """Every endpoint of the Service over all its slices (ready or not)."""
        key = (namespace, service)
        eps = self._endpoints.get(key)
        if eps is None:
            eps = tuple(ep for _, slice_eps in sorted((self._slices.get(key) or {}).items()) for ep in slice_eps)
            self._endpoints[key] = eps
        return eps

    def reverse(self, ip: str) -> list[_ReverseEntry]:
        """Who owns an address: the first Service with it as cluster IP, else the
        ready endpoints with it (CoreDNS's order)."""
        if self._reverse is None:
            self._reverse = self._build_reverse()
        return self._reverse.get(ip, [])

    def _build_reverse(self) -> dict[str, list[_ReverseEntry]]:
        index: dict[str, list[_ReverseEntry]] = {}
        for (ns, name), svc in sorted(self.services.items()):
            for ip in svc.cluster_ips:
                index.setdefault(ip, [_ReverseEntry(ns, name, "")])
        cluster_ips = set(index)
        for (ns, name), svc in sorted(self.services.items()):
            if svc.type == "ExternalName":
                continue
            seen: set[tuple[str, str]] = set()
            for ep in self.endpoints(ns, name):
                if ep.ip in cluster_ips or not (ep.ready or svc.publish_not_ready) or (ep.ip, ep.name) in seen:
                    continue
                seen.add((ep.ip, ep.name))
                index.setdefault(ep.ip, []).append(_ReverseEntry(ns, name, ep.name))
        return index


# -- the resolver -------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """What to reply: an rcode and the three record sections.  ``chase`` is a
    CNAME target outside the cluster domain whose records (of the asked type)
    the server should fetch upstream and append to the answer."""

    rcode: int = RCODE.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    chase: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class _Item:
    """One thing a name stands for (CoreDNS's msg.Service): a target name with an
    address and maybe a port, or a CNAME."""

    target: str
    ip: str = ""
    port: int | None = None
    cname: str = ""


class Resolver:
    """Answers questions about names under ``domain`` (and reverse names of
    cluster addresses) from a :class:`ClusterView`.  Pure: no I/O.  ``qname`` may
    be any case and may end with a dot."""

    def __init__(self, view: ClusterView, domain: str = "cluster.local", ttl: int = TTL):
        self.view = view
        self.zone = domain.lower().strip(".")
        self._dot_zone = "." + self.zone
        self.ttl = ttl

    def is_authoritative(self, qname: str) -> bool:
        name = qname.lower().rstrip(".")
        return name == self.zone or name.endswith(self._dot_zone)

    def resolve(self, qname: str, qtype: int) -> Answer | None:
        """The answer, or None when the name is not ours to answer (forward it)."""
        name = qname.lower().rstrip(".")
        if name == self.zone or name.endswith(self._dot_zone):
            ans = self._zone_query(name, qtype, 0)
            if ans.rcode == RCODE.NXDOMAIN and not self.view.synced:
                return Answer(RCODE.SERVFAIL)
            return ans
        if qtype in (QT_PTR, QT_ANY) and (name.endswith(".in-addr.arpa") or name.endswith(".ip6.arpa")):
            return self._reverse(name)
        return None

    # -- helpers --

    def _fqdn(self, *labels: str) -> str:
        return ".".join((*labels, self.zone))

    def soa(self) -> RR:
        return RR(self.zone, QT_SOA, ttl=self.ttl,
                  rdata=SOA(self._fqdn("ns", "dns"), self._fqdn("hostmaster"),
                            (self.view.serial & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl)))

    def _nxdomain(self) -> Answer:
        return Answer(RCODE.NXDOMAIN, authority=[self.soa()])

    def _nodata(self) -> Answer:
        return Answer(RCODE.NOERROR, authority=[self.soa()])

    def _addr_rr(self, owner: str, ip: str) -> RR:
        if ":" in ip:
            return RR(owner, QT_AAAA, ttl=self.ttl, rdata=AAAA(ip))
        return RR(owner, QT_A, ttl=self.ttl, rdata=A(ip))

    # -- the cluster zone --

    def _zone_query(self, name: str, qtype: int, depth: int) -> Answer:
        base = name[: -len(self._dot_zone)] if name != self.zone else ""
        if base == "":
            return self._apex(name, qtype)
        if base == "dns-version":
            if qtype in (QT_TXT, QT_ANY):
                return Answer(answer=[RR(name, QT_TXT, ttl=self.ttl, rdata=TXT(SCHEMA_VERSION))])
            return self._nodata()
        if base == "ns.dns":
            ips = self._dns_ips()
            recs = [self._addr_rr(name, ip) for ip in ips if _type_matches(ip, qtype)]
            return Answer(answer=recs) if recs else self._nodata()
        if base in ("svc", "pod", "dns"):
            return self._nodata()  # empty non-terminals
        labels = base.split(".")
        kind, rest = labels[-1], labels[:-1]
        if kind == "pod":
            return self._pod(name, rest, qtype)
        if kind != "svc" or len(rest) > 4:
            return self._nxdomain()
        if len(rest) == 1:
            return self._nodata()  # <ns>.svc.<zone>: every namespace is exposed
        ns, svc_name = rest[-1], rest[-2]
        svc = self.view.services.get((ns, svc_name))
        if svc is None:
            return self._nxdomain()
        endpoint = port = proto = None
        if len(rest) == 3:
            endpoint = rest[0]
        elif len(rest) == 4:
            port, proto = rest[0].removeprefix("_"), rest[1].removeprefix("_")
        items = self._items(svc, endpoint, port, proto)
        if not items:
            return self._nxdomain()
        return self._records(name, qtype, items, depth)

    def _apex(self, name: str, qtype: int) -> Answer:
        if qtype == QT_SOA:
            return Answer(answer=[self.soa()])
        if qtype == QT_NS:
            ns_name = self._fqdn("ns", "dns")
            return Answer(answer=[RR(name, QT_NS, ttl=self.ttl, rdata=NS(ns_name))],
                          additional=[self._addr_rr(ns_name, ip) for ip in self._dns_ips()])
        return self._nodata()

    def _dns_ips(self) -> tuple[str, ...]:
        svc = self.view.services.get(("kube-system", "kube-dns"))
        return svc.cluster_ips if svc is not None else ()

    def _pod(self, name: str, rest: list[str], qtype: int) -> Answer:
        # "pods insecure": the address is the one written in the name, unchecked.
        if len(rest) == 1:
            return self._nodata()
        if len(rest) != 2:
            return self._nxdomain()
        label = rest[0]
        text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
        try:
            ip = str(ipaddress.ip_address(text))
        except ValueError:
            return self._nxdomain()
        if _type_matches(ip, qtype):
            return Answer(answer=[self._addr_rr(name, ip)])
        return self._nodata()

    def _items(self, svc: Service, endpoint: str | None, port: str | None, proto: str | None) -> list[_Item]:
        def port_matches(p: Port | None) -> bool:
            if port is None:  # no port in the name: every port, and port-less endpoints too
                return True
            return p is not None and (port == p.name or port == "") and (proto == p.protocol or proto == "")

        if svc.type == "ExternalName":
            if endpoint is not None or not svc.external_name or _is_ip(svc.external_name):
                return []
            return [_Item(target=svc.external_name, cname=svc.external_name)]
        items: list[_Item] = []
        if svc.headless or endpoint is not None:
            svc_labels = (svc.name, svc.namespace, "svc")
            for ep in self.view.endpoints(svc.namespace, svc.name):
                if not (ep.ready or svc.publish_not_ready) or (endpoint is not None and ep.name != endpoint):
                    continue
                target = self._fqdn(ep.name, *svc_labels)
                for p in ep.ports or (None,):
                    if port_matches(p):
                        items.append(_Item(target, ep.ip, p.port if p is not None else None))
            return items
        target = self._fqdn(svc.name, svc.namespace, "svc")
        for p in svc.ports or (None,):
            if port_matches(p):
                items.extend(_Item(target, ip, p.port if p is not None else None) for ip in svc.cluster_ips)
        return items

    def _records(self, name: str, qtype: int, items: list[_Item], depth: int) -> Answer:
        cnames = [it for it in items if it.cname]
        if cnames:
            target = cnames[0].cname
            ans = Answer(answer=[RR(name, QT_CNAME, ttl=self.ttl, rdata=CNAME(target))])
            if qtype != QT_CNAME:
                self._follow(ans, target, qtype, depth)
            return ans
        if qtype == QT_SRV:
            srvs: dict[tuple[str, int], None] = {}
            extra: dict[tuple[str, str], None] = {}
            for it in items:
                if it.port is not None:
                    srvs[(it.target, it.port)] = None
                    extra[(it.target, it.ip)] = None
            if not srvs:
                return self._nodata()
            weight = max(1, 100 // len(srvs))
            return Answer(answer=[RR(name, QT_SRV, ttl=self.ttl, rdata=SRV(0, weight, port, target))
                                  for target, port in srvs],
                          additional=[self._addr_rr(target, ip) for target, ip in extra])
        if qtype in (QT_A, QT_AAAA, QT_ANY):
            ips = dict.fromkeys(it.ip for it in items if it.ip and _type_matches(it.ip, qtype))
            if ips:
                return Answer(answer=[self._addr_rr(name, ip) for ip in ips])
        return self._nodata()

    def _follow(self, ans: Answer, target: str, qtype: int, depth: int) -> None:
        """Complete a CNAME answer with the target's records: from the cluster zone
        here, else left for the server to fetch upstream."""
        if not (target == self.zone or target.endswith(self._dot_zone)):
            ans.chase = (target, qtype)
            return
        if depth >= MAX_CNAME_CHAIN:
            return
        inner = self._zone_query(target, qtype, depth + 1)
        ans.answer.extend(inner.answer)
        ans.additional.extend(inner.additional)
        ans.chase = inner.chase

    # -- reverse --

    def _reverse(self, name: str) -> Answer | None:
        ip = reverse_pointer_ip(name)
        if ip is None:
            return None
        entries = self.view.reverse(ip)
        if not entries:
            return None  # not a cluster address: let upstream answer (CoreDNS's fallthrough)
        return Answer(answer=[RR(name, QT_PTR, ttl=self.ttl,
                                 rdata=PTR(self._fqdn(*((e.endpoint,) if e.endpoint else ()),
                                                      e.service, e.namespace, "svc")))
                              for e in entries])


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _type_matches(ip: str, qtype: int) -> bool:
    """Whether an address answers the query type (A: IPv4, AAAA: IPv6, ANY: both)."""
    if qtype == QT_ANY:
        return True
    return qtype == (QT_AAAA if ":" in ip else QT_A)


def reverse_pointer_ip(name: str) -> str | None:
    """The address a full ``in-addr.arpa``/``ip6.arpa`` name stands for, else None."""
    name = name.lower().rstrip(".")
    if name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        if len(parts) != 4:
            return None
        text = ".".join(reversed(parts))
    elif name.endswith(".ip6.arpa"):
        nibbles = name[: -len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        hexes = "".join(reversed(nibbles))
        text = ":".join(hexes[i:i + 4] for i in range(0, 32, 4))
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


__all__ = ["TTL", "Answer", "ClusterView", "Endpoint", "Port", "Resolver", "Service", "endpoints_of_slice",
           "reverse_pointer_ip"]
