"""A pod's /etc/resolv.conf and /etc/hosts, as the kubelet works them out
(``pkg/kubelet/network/dns`` and ``managedHostsFileContent``).

    dns = pod_dns_config(pod, cluster_dns=["10.43.0.10"], cluster_domain="cluster.local",
                         host=parse_resolv_conf(open("/etc/resolv.conf").read()))
    resolv_conf(dns)        # "search ns.svc.cluster.local ...\\nnameserver 10.43.0.10\\noptions ndots:5\\n"

dnsPolicy:
- ``ClusterFirst`` (the default): the cluster DNS servers only, the search path
  ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the host's, ``options ndots:5``.
  A pod on the node's network (hostNetwork, or every pod when the kubelet runs without a pod
  network) falls back to ``Default``, as does a kubelet without ``--cluster-dns``.
- ``ClusterFirstWithHostNet``: ``ClusterFirst``, also for pods on the node's network.
- ``Default``: the node's resolver configuration (servers, search, options).
- ``None``: nothing but ``spec.dnsConfig``.
``spec.dnsConfig`` is merged into every policy's result (servers and searches appended without
duplicates, options by name, the pod's value winning); then the limits apply: 3 nameservers,
32 search domains of at most 253 characters, 2048 characters of search line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048
MAX_DNS_SEARCH_DOMAIN_LEN = 253  # a DNS-1123 subdomain: glibc aborts on longer search entries
DEFAULT_DNS_OPTIONS = ("ndots:5",)
HOSTNAME_MAX_LEN = 63
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"


@dataclass
class DnsConfig:
    """CRI's DNSConfig: what the runtime writes into the pod's resolv.conf."""

    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {"servers": list(self.servers), "searches": list(self.searches), "options": list(self.options)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DnsConfig:
        return cls(list(d.get("servers") or []), list(d.get("searches") or []), list(d.get("options") or []))


def parse_resolv_conf(text: str) -> DnsConfig:
    """Nameservers, search domains (the last ``search`` line wins, ``.`` dropped, trailing dots
    trimmed) and options of a resolv.conf, as the kubelet reads ``--resolv-conf``."""
    cfg = DnsConfig()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if fields[0] == "nameserver" and len(fields) >= 2:
            cfg.servers.append(fields[1])
        elif fields[0] == "search":
            cfg.searches = [s.rstrip(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            cfg.options = merge_options(cfg.options, fields[1:])
    return cfg


def _omit_duplicates(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def merge_options(existing: Sequence[str], extra: Iterable[str | Mapping[str, Any]]) -> list[str]:
    """Options by name; a later one replaces an earlier one of the same name (keeping its place).
    ``extra`` holds strings ("ndots:2") or PodDNSConfigOption objects ({"name", "value"})."""
    merged: dict[str, str | None] = {}
    for op in existing:
        name, sep, value = op.partition(":")
        merged[name] = value if sep else None
    for op in extra:
        if isinstance(op, Mapping):
            name, value = str(op.get("name") or ""), op.get("value")
            if not name:
                continue
            merged[name] = None if value is None or value == "" else str(value)
        else:
            name, sep, v = op.partition(":")
            merged[name] = v if sep else None
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def pod_dns_type(pod: Mapping[str, Any], *, on_node_network: bool | None = None) -> str:
    """``none``, ``cluster`` or ``host`` for the pod's dnsPolicy (``on_node_network``: the pod
    shares the node's network namespace; default: its hostNetwork)."""
    spec = pod.get("spec") or {}
    if on_node_network is None:
        on_node_network = bool(spec.get("hostNetwork"))
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "Default" or on_node_network:
        return "host"
    return "cluster"  # ClusterFirst (and anything the API server should have refused)


def cluster_searches(namespace: str, cluster_domain: str, host_searches: Sequence[str]) -> list[str]:
    if not cluster_domain:
        return list(host_searches)
    return _omit_duplicates([f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain,
                             *host_searches])


def fit_limits(cfg: DnsConfig, warnings: list[str] | None = None) -> DnsConfig:
    """Trim to what libc resolvers handle (the kubelet's formDNSConfigFitsLimits); each trim is a
    DNSConfigForming warning."""
    warnings = warnings if warnings is not None else []
    servers = cfg.servers
    if len(servers) > MAX_DNS_NAMESERVERS:
        servers = servers[:MAX_DNS_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, the applied "
                        f"nameserver line is: {' '.join(servers)}")
    searches, exceeded = cfg.searches, False
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        searches, exceeded = searches[:MAX_DNS_SEARCH_PATHS], True
    if any(len(s) > MAX_DNS_SEARCH_DOMAIN_LEN for s in searches):
        searches, exceeded = [s for s in searches if len(s) <= MAX_DNS_SEARCH_DOMAIN_LEN], True
    line_len = len(" ".join(searches))
    if line_len > MAX_DNS_SEARCH_LIST_CHARS:
        # Drop domains from the end until the line fits.
        cut = 0
        while searches[:len(searches) - cut] and line_len > MAX_DNS_SEARCH_LIST_CHARS:
            line_len -= len(searches[len(searches) - 1 - cut]) + 1
            cut += 1
        searches, exceeded = searches[:len(searches) - cut], True
    if exceeded:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, the applied "
                        f"search line is: {' '.join(searches)}")
    return DnsConfig(list(servers), list(searches), list(cfg.options))


def pod_dns_config(pod: Mapping[str, Any], *, cluster_dns: Sequence[str], cluster_domain: str, host: DnsConfig,
                   on_node_network: bool | None = None, warnings: list[str] | None = None) -> DnsConfig:
    """The pod's DNSConfig (the kubelet's GetPodDNS); ``host`` is the node's parsed resolv.conf.
    Warnings (the kubelet's DNSConfigForming and MissingClusterDNS events) go to ``warnings``."""
    warnings = warnings if warnings is not None else []
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    kind = pod_dns_type(pod, on_node_network=on_node_network)
    cfg = DnsConfig(list(host.servers), list(host.searches), list(host.options))
    if kind == "none":
        cfg = DnsConfig()
    elif kind == "cluster":
        if cluster_dns:
            cfg = DnsConfig(list(cluster_dns), cluster_searches(namespace, cluster_domain, host.searches),
                            list(DEFAULT_DNS_OPTIONS))
        else:
            warnings.append('kubelet does not have ClusterDNS IP configured and cannot create Pod using '
                            '"ClusterFirst" policy. Falling back to "Default" policy.')
    extra = spec.get("dnsConfig")
    if extra:
        cfg = DnsConfig(_omit_duplicates([*cfg.servers, *(extra.get("nameservers") or [])]),
                        _omit_duplicates([*cfg.searches, *(extra.get("searches") or [])]),
                        merge_options(cfg.options, extra.get("options") or []))
    return fit_limits(cfg, warnings)


def resolv_conf(cfg: DnsConfig) -> str:
    """The resolv.conf a runtime writes for ``cfg`` (containerd's layout)."""
    out = ""
    if cfg.searches:
        out += f"search {' '.join(cfg.searches)}\n"
    out += "".join(f"nameserver {s}\n" for s in cfg.servers)
    if cfg.options:
        out += f"options {' '.join(cfg.options)}\n"
    return out


def _is_dns_label(s: str) -> bool:
    return len(s) <= HOSTNAME_MAX_LEN and bool(_DNS_LABEL.fullmatch(s))


def pod_hostname_and_domain(pod: Mapping[str, Any], cluster_domain: str) -> tuple[str, str]:
    """(hostname, domain) as GeneratePodHostNameAndDomain: spec.hostname or the pod name,
    cut to 63 characters (trailing ``-``/``.`` trimmed); the domain is
    ``<subdomain>.<namespace>.svc.<cluster domain>`` when spec.subdomain is set.
    Raises ValueError for an invalid hostname or subdomain."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = str(meta.get("name") or "")
    if spec.get("hostname"):
        if not _is_dns_label(str(spec["hostname"])):
            raise ValueError(f'pod Hostname "{spec["hostname"]}" is not a valid DNS label')
        hostname = str(spec["hostname"])
    if len(hostname) > HOSTNAME_MAX_LEN:
        hostname = hostname[:HOSTNAME_MAX_LEN].rstrip("-.")
        if not hostname:
            raise ValueError(f"hostname for pod {meta.get('name')!r} is empty after truncation")
    domain = ""
    if spec.get("subdomain"):
        if not _is_dns_label(str(spec["subdomain"])):
            raise ValueError(f'pod Subdomain "{spec["subdomain"]}" is not a valid DNS label')
        domain = f"{spec['subdomain']}.{meta.get('namespace') or 'default'}.svc.{cluster_domain}"
    return hostname, domain


def _host_alias_lines(host_aliases: Sequence[Mapping[str, Any]]) -> str:
    if not host_aliases:
        return ""
    out = "\n# Entries added by HostAliases.\n"
    for alias in host_aliases:
        out += f"{alias.get('ip', '')}\t{chr(9).join(alias.get('hostnames') or [])}\n"
    return out


def managed_hosts(pod_ips: Sequence[str], hostname: str, domain: str = "",
                  host_aliases: Sequence[Mapping[str, Any]] = ()) -> str:
    """The kubelet-managed /etc/hosts of a pod with its own network namespace."""
    out = (MANAGED_HOSTS_HEADER + "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
           "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
    for ip in pod_ips:
        out += f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n"
    return out + _host_alias_lines(host_aliases)


def host_network_hosts(node_hosts: str, host_aliases: Sequence[Mapping[str, Any]] = ()) -> str:
    """/etc/hosts of a hostNetwork pod: the node's, and the pod's hostAliases."""
    if node_hosts and not node_hosts.endswith("\n"):
        node_hosts += "\n"
    return MANAGED_HOSTS_HEADER_HOST_NETWORK + node_hosts + _host_alias_lines(host_aliases)


def _loopback_only(cfg: DnsConfig) -> bool:
    def loopback(s: str) -> bool:
        try:
            return ipaddress.ip_address(s.split("%")[0]).is_loopback
        except ValueError:
            return False

    return bool(cfg.servers) and all(loopback(s) for s in cfg.servers)


SYSTEMD_RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"


def host_resolv_conf(path: str = "/etc/resolv.conf", *, own_network: bool = False) -> str:
    """The resolv.conf pods with dnsPolicy Default get.  Pods with their own network namespace
    cannot reach a loopback stub resolver (systemd-resolved's 127.0.0.53): then, as k3s does,
    the upstream servers systemd-resolved keeps in /run/systemd/resolve/resolv.conf."""
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    if own_network and _loopback_only(parse_resolv_conf(text)):
        try:
            upstream = Path(SYSTEMD_RESOLVED_CONF).read_text()
        except OSError:
            return text
        if not _loopback_only(parse_resolv_conf(upstream)):
            return upstream
    return text


__all__ = ["DEFAULT_DNS_OPTIONS", "MAX_DNS_NAMESERVERS", "MAX_DNS_SEARCH_LIST_CHARS", "MAX_DNS_SEARCH_PATHS",
           "DnsConfig", "cluster_searches", "fit_limits", "host_network_hosts", "host_resolv_conf",
           "managed_hosts", "merge_options", "parse_resolv_conf", "pod_dns_config", "pod_dns_type",
           "pod_hostname_and_domain", "resolv_conf"]
