"""The iptables backend: the same service ports as ``iptables-restore`` input,
for hosts without a working ``nft`` (upstream kube-proxy's iptables mode, with
``PINNACE-`` chains).

nat table: ``PREROUTING``/``OUTPUT`` jump to ``PINNACE-SERVICES``, one rule per
service address (cluster IP, external and load-balancer IPs) and, last, node
addresses (``addrtype LOCAL``) to ``PINNACE-NODEPORTS``.  Per service port:
``PINNACE-SVC-…`` (Cluster-policy endpoints), ``PINNACE-SVL-…`` (this node's, for
Local policies), ``PINNACE-EXT-…`` (NodePort/LB/external-IP traffic) and a
``PINNACE-SEP-…`` chain per endpoint.  Balancing is a cascade of ``statistic
--mode random`` rules, probability 1/n, 1/(n-1), ... 1; ClientIP affinity is the
``recent`` match, one list per endpoint.  ``POSTROUTING`` masquerades marked
packets and DNATed ones going back into the pod bridge from the node's pod CIDR.
filter table: ``PINNACE-ENDPOINTS-CHECK`` (from INPUT, FORWARD and OUTPUT, new
connections) rejects service ports without endpoints and drops those whose Local
policy has none here.

Each sync is one ``iptables-restore --noflush`` input: the dispatch chains
(``PINNACE-SERVICES``, ``PINNACE-NODEPORTS``, ``PINNACE-ENDPOINTS-CHECK``, one
line per service port) are rewritten whole, per-service chains only when their
service port changed, and chains no longer used are deleted in the same input
(only rules refer to them, and those go in the same transaction).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .model import Endpoint, ServicePort, ServicePortKey

SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ = ("PINNACE-SERVICES", "PINNACE-NODEPORTS", "PINNACE-POSTROUTING",
                                               "PINNACE-MARK-MASQ")
ENDPOINTS_CHECK = "PINNACE-ENDPOINTS-CHECK"
NAT_FIXED = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
FILTER_FIXED = (ENDPOINTS_CHECK,)
COMMENT = "pinnace-proxy"
NOT_LOOPBACK = "! -d 127.0.0.0/8"

#: (table, built-in chain, rule spec) jumping into our chains; kept out of the restore
#: input (which would add them again on every sync) and ensured with ``-C`` / ``-I``.
JUMPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("nat", "OUTPUT", ("-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("nat", "POSTROUTING", ("-m", "comment", "--comment", COMMENT, "-j", POSTROUTING)),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT,
                         "-j", ENDPOINTS_CHECK)),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT,
                           "-j", ENDPOINTS_CHECK)),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT,
                          "-j", ENDPOINTS_CHECK)),
)


@dataclass(frozen=True)
class IptablesConfig:
    cluster_cidr: str | None = "10.42.0.0/16"
    pod_bridge: str | None = "cni0"
    pod_cidr: str | None = None
    mark: int = 0x4000


@functools.lru_cache(maxsize=131072)
def _hash(text: str) -> str:
    # Chain names are at most 28 characters: the prefix (12) and 16 hex digits of a hash.
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def _port_id(sp: ServicePort) -> str:
    return f"{sp.namespace}/{sp.name}:{sp.port_name}/{sp.proto}"


def svc_chain(sp: ServicePort) -> str:
    return "PINNACE-SVC-" + _hash(_port_id(sp))


def svl_chain(sp: ServicePort) -> str:
    return "PINNACE-SVL-" + _hash(_port_id(sp))


def ext_chain(sp: ServicePort) -> str:
    return "PINNACE-EXT-" + _hash(_port_id(sp))


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return "PINNACE-SEP-" + _hash(f"{_port_id(sp)}__{ep.address}")


def _match(sp: ServicePort, dport: int) -> str:
    return f"-p {sp.proto} -m {sp.proto} --dport {dport}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _dispatch(sp: ServicePort, chain: str, endpoints: tuple[Endpoint, ...]) -> list[str]:
    rules = []
    if sp.affinity_timeout:
        for ep in endpoints:
            sep = sep_chain(sp, ep)
            rules.append(f"-A {chain} -m recent --name {sep} --rcheck --seconds {sp.affinity_timeout} --reap -j {sep}")
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        stat = f"-m statistic --mode random --probability {1 / (n - i):.11f} " if i < n - 1 else ""
        rules.append(f"-A {chain} {stat}-j {sep_chain(sp, ep)}")
    return rules


def port_chains(sp: ServicePort, cfg: IptablesConfig) -> dict[str, list[str]]:
    """The per-service nat chains of one service port: name -> ``-A`` lines."""
    chains: dict[str, list[str]] = {}
    svc, svl = svc_chain(sp), svl_chain(sp)
    uses_svc = sp.uses_cluster and bool(sp.endpoints)
    uses_svl = sp.uses_local and bool(sp.local_endpoints)
    if uses_svc:
        chains[svc] = _dispatch(sp, svc, sp.endpoints)
    if uses_svl:
        chains[svl] = _dispatch(sp, svl, sp.local_endpoints)
    internal = svl if sp.internal_policy_local else svc
    if sp.internal_endpoints and cfg.cluster_cidr:
        chains[internal].insert(0, f"-A {internal} -d {sp.cluster_ip}/32 {_match(sp, sp.port)} "
                                   f"! -s {cfg.cluster_cidr} -j {MARK_MASQ}")
    if sp.externally_accessible and sp.has_endpoints:
        ext = ext_chain(sp)
        if not sp.external_policy_local:
            rules = [f"-A {ext} -j {MARK_MASQ}", f"-A {ext} -j {svc}"]
        else:
            rules = [f"-A {ext} -s {cfg.cluster_cidr} -j {svc}"] if cfg.cluster_cidr else []
            rules += [f"-A {ext} -m addrtype --src-type LOCAL -j {MARK_MASQ}",
                      f"-A {ext} -m addrtype --src-type LOCAL -j {svc}"]
            if uses_svl:
                rules.append(f"-A {ext} -j {svl}")
        chains[ext] = rules
    for ep in sp.reachable_endpoints:
        sep = sep_chain(sp, ep)
        recent = f"-m recent --name {sep} --set " if sp.affinity_timeout else ""
        chains[sep] = [f"-A {sep} -s {ep.ip}/32 -j {MARK_MASQ}",
                       f"-A {sep} -p {sp.proto} -m {sp.proto} {recent}"
                       f"-j DNAT --to-destination {ep.address}"]
    return chains


def dispatch_rules(sp: ServicePort) -> tuple[list[str], list[str], list[str]]:
    """The lines of one service port in PINNACE-SERVICES, PINNACE-NODEPORTS and
    PINNACE-ENDPOINTS-CHECK."""
    services: list[str] = []
    nodeports: list[str] = []
    check: list[str] = []
    name = str(sp)
    missing = ("-j REJECT --reject-with tcp-reset" if sp.proto == "tcp" else "-j REJECT") \
        if not sp.has_endpoints else "-j DROP"
    internal = svl_chain(sp) if sp.internal_policy_local else svc_chain(sp)
    if sp.internal_endpoints:
        services.append(f"-A {SERVICES} -d {sp.cluster_ip}/32 {_match(sp, sp.port)} "
                        f"{_comment(name + ' cluster IP')} -j {internal}")
    else:
        check.append(f"-A {ENDPOINTS_CHECK} -d {sp.cluster_ip}/32 {_match(sp, sp.port)} {_comment(name)} {missing}")
    if sp.externally_accessible:
        for ip in (*sp.external_ips, *sp.load_balancer_ips):
            if sp.has_endpoints:
                services.append(f"-A {SERVICES} -d {ip}/32 {_match(sp, sp.port)} {_comment(name + ' external')} "
                                f"-j {ext_chain(sp)}")
            if not sp.external_endpoints:
                check.append(f"-A {ENDPOINTS_CHECK} -d {ip}/32 {_match(sp, sp.port)} {_comment(name)} {missing}")
        if sp.node_port:
            if sp.has_endpoints:
                nodeports.append(f"-A {NODEPORTS} {_match(sp, sp.node_port)} {_comment(name)} -j {ext_chain(sp)}")
            if not sp.external_endpoints:
                check.append(f"-A {ENDPOINTS_CHECK} -m addrtype --dst-type LOCAL {NOT_LOOPBACK} "
                             f"{_match(sp, sp.node_port)} {_comment(name)} {missing}")
    return services, nodeports, check


@dataclass
class IptablesPlan:
    script: str
    active_chains: set[str] = field(default_factory=set)
    deleted_chains: list[str] = field(default_factory=list)


def restore_input(old: Mapping[ServicePortKey, ServicePort] | None, new: Mapping[ServicePortKey, ServicePort],
                  cfg: IptablesConfig = IptablesConfig(), *, existing_chains: Collection[str] = ()) -> IptablesPlan:
    """``iptables-restore --noflush`` input taking our chains from ``old`` to ``new``
    (``old=None``: rewrite everything; ``existing_chains`` are then the ``PINNACE-`` nat
    chains present now, so leftovers get deleted)."""
    full = old is None
    old_state: Mapping[ServicePortKey, ServicePort] = old or {}
    todo = sorted(new) if full else sorted(k for k in new if old_state.get(k) != new[k])
    gone = [] if full else sorted(k for k in old_state if k not in new)

    old_chains: set[str] = set()
    for key in (*todo, *gone):
        if key in old_state:
            old_chains.update(port_chains(old_state[key], cfg))
    new_chains: dict[str, list[str]] = {}
    for key in todo:
        new_chains.update(port_chains(new[key], cfg))

    services: list[str] = []
    nodeports: list[str] = []
    check: list[str] = []
    for key in sorted(new):
        s, n, c = dispatch_rules(new[key])
        services += s
        nodeports += n
        check += c
    services.append(f"-A {SERVICES} -m addrtype --dst-type LOCAL {NOT_LOOPBACK} {_comment('node ports')} "
                    f"-j {NODEPORTS}")

    if full:
        stale = sorted(c for c in existing_chains if c not in NAT_FIXED and c not in new_chains)
    else:
        stale = sorted(old_chains - set(new_chains))

    nat = ["*nat"]
    declared = [SERVICES, NODEPORTS, *(([POSTROUTING, MARK_MASQ]) if full else ()), *new_chains, *stale]
    nat += [f":{c} - [0:0]" for c in declared]  # declaring flushes (or creates) it
    if full:
        mark = f"0x{cfg.mark:x}"
        pod_cidr = cfg.pod_cidr or cfg.cluster_cidr
        if cfg.pod_bridge and pod_cidr:
            # Before the mark test: these packets carry no mark.
            nat.append(f"-A {POSTROUTING} -o {cfg.pod_bridge} -s {pod_cidr} -m conntrack --ctstate DNAT "
                       "-j MASQUERADE --random-fully")
        nat += [f"-A {MARK_MASQ} -j MARK --or-mark {mark}",
                f"-A {POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
                f"-A {POSTROUTING} -j MARK --xor-mark {mark}",
                f"-A {POSTROUTING} -j MASQUERADE --random-fully"]
    nat += services
    nat += nodeports
    for rules in new_chains.values():
        nat += rules
    nat += [f"-X {c}" for c in stale]
    nat.append("COMMIT")
    filt = ["*filter", f":{ENDPOINTS_CHECK} - [0:0]", *check, "COMMIT"]
    return IptablesPlan("\n".join(nat + filt) + "\n", set(new_chains), stale)


def cleanup_input(existing_nat_chains: Collection[str]) -> str:
    """Flush and delete every ``PINNACE-`` chain (after the jumps to them are gone)."""
    nat = sorted(set(existing_nat_chains) | set(NAT_FIXED))
    lines = ["*nat", *(f":{c} - [0:0]" for c in nat), *(f"-X {c}" for c in nat), "COMMIT",
             "*filter", *(f":{c} - [0:0]" for c in FILTER_FIXED), *(f"-X {c}" for c in FILTER_FIXED), "COMMIT"]
    return "\n".join(lines) + "\n"


__all__ = ["JUMPS", "IptablesConfig", "IptablesPlan", "cleanup_input", "dispatch_rules", "ext_chain", "port_chains",
           "restore_input", "sep_chain", "svc_chain", "svl_chain"]
