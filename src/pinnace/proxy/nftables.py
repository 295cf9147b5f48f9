"""The nftables backend: Services as one ``ip pinnace-proxy`` table.

Same design as upstream kube-proxy's nftables mode (KEP-3866): packets are
dispatched by *verdict maps*, so the cost per packet does not grow with the number
of Services.

- ``nat-prerouting`` / ``nat-output`` (priority dstnat) jump to ``services``, which
  looks ``daddr . l4proto . dport`` up in ``@service-ips`` (cluster IPs, external
  IPs, load-balancer IPs) and, for destinations that are local addresses of the
  node (``fib daddr type local``), ``l4proto . dport`` in ``@service-nodeports``.
- A map element jumps to a per-service-port chain: ``service-…`` (endpoints for
  the Cluster policy), ``local-…`` (this node's endpoints, for Local policies) or
  ``external-…`` (NodePort/LB/external-IP traffic: masquerade, Local policy and
  its short-circuits), which picks an endpoint chain with ``numgen random mod N
  vmap`` (even balancing), after ClientIP affinity rules (``ip saddr
  @affinity-…``) if any.
- ``endpoint-…`` chains mark hairpin traffic (source = the endpoint) for
  masquerade, record affinity (``update @affinity-… { ip saddr }``) and DNAT.
- ``nat-postrouting`` masquerades marked packets, and DNATed packets that leave
  through the pod bridge with a source in the node's pod CIDR: without
  br_netfilter the reply of a pod on the same bridge would bypass the host and
  never be un-DNATed.
- ``filter-input/forward/output`` reject new connections to service ports with
  no endpoint at all (``@no-endpoint-services``, ``@no-endpoint-nodeports``) and
  drop those whose Local policy has none on this node.

Everything here is pure: :func:`sync_script` turns the previous and the new
state into the text of one ``nft -f -`` transaction.  A full sync (previous
state ``None``: at start, periodically, after a failure) rewrites every chain and
map; an incremental one touches only the chains and map elements of service
ports that changed.  Chains that fall out of use are flushed at once but deleted
only in a later sync: before Linux 6.2 the kernel lets go of a chain some time
after the last map element pointing at it is deleted (upstream does the same).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .model import Endpoint, ServicePort, ServicePortKey

TABLE = "pinnace-proxy"
MASQUERADE_MARK = 0x4000  # bit 14, as kube-proxy's default --masquerade-bit

# Chains and maps every sync relies on (never stale).
SERVICES, ENDPOINTS_CHECK, MASQUERADING, MARK_MASQ, REJECT = (
    "services", "endpoints-check", "masquerading", "mark-for-masquerade", "reject-chain")
SERVICE_IPS, SERVICE_NODEPORTS = "service-ips", "service-nodeports"
NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS = "no-endpoint-services", "no-endpoint-nodeports"

# name, type, hook, priority: dstnat is -100, srcnat 100 (numbers: nft 1.0 accepts the
# names only on some hooks); filtering comes before DNAT, as it looks at service addresses.
BASE_CHAINS = (
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
FIXED_CHAINS = frozenset({name for name, *_ in BASE_CHAINS} | {SERVICES, ENDPOINTS_CHECK, MASQUERADING, MARK_MASQ,
                                                                 REJECT})
MAPS = {
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service : verdict",
    SERVICE_NODEPORTS: "inet_proto . inet_service : verdict",
    NO_ENDPOINT_SERVICES: "ipv4_addr . inet_proto . inet_service : verdict",
    NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service : verdict",
}
NODE_LOCAL = "fib daddr type local ip daddr != 127.0.0.0/8"  # NodePorts: every node address but loopback


@dataclass(frozen=True)
class NftConfig:
    table: str = TABLE
    #: Sources inside it are pods: ClusterIP traffic from anywhere else is masqueraded, and
    #: pods are exempt from externalTrafficPolicy Local (upstream's ClusterCIDR local detector).
    cluster_cidr: str | None = "10.42.0.0/16"
    #: The bridge pods hang off, and this node's pod CIDR (falls back to ``cluster_cidr``):
    #: DNATed traffic from it back into the same bridge is masqueraded.
    pod_bridge: str | None = "cni0"
    pod_cidr: str | None = None
    mark: int = MASQUERADE_MARK


# -- names -------------------------------------------------------------------------------------


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@functools.lru_cache(maxsize=131072)
def _named(prefix: str, base: str) -> str:
    # Namespace, Service and port names are [a-z0-9-]; "/" separates them and cannot
    # occur in them, so names never collide; the hash makes look-alikes easy to tell apart.
    return f"{prefix}-{_hash(base)}-{base}"


def _port_base(sp: ServicePort) -> str:
    return f"{sp.namespace}/{sp.name}/{sp.proto}/{sp.port_name}"


def cluster_chain(sp: ServicePort) -> str:
    return _named("service", _port_base(sp))


def local_chain(sp: ServicePort) -> str:
    return _named("local", _port_base(sp))


def external_chain(sp: ServicePort) -> str:
    return _named("external", _port_base(sp))


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    return _named("endpoint", f"{_port_base(sp)}__{ep.ip}/{ep.port}")


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    # The timeout is part of the hash: a set's timeout cannot be changed in place, so a new
    # timeout makes a new set and the old one is deleted as stale.
    base = f"{_port_base(sp)}__{ep.ip}/{ep.port}"
    return f"affinity-{_hash(f'{base}@{sp.affinity_timeout}')}-{base}"


# -- one service port ----------------------------------------------------------------------------


@dataclass
class _PortChains:
    """The chains (name -> rules) and affinity sets (name -> timeout) of one service port."""
    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)


def _dispatch(sp: ServicePort, endpoints: tuple[Endpoint, ...]) -> list[str]:
    rules = []
    if sp.affinity_timeout:
        rules += [f"ip saddr @{affinity_set(sp, ep)} goto {endpoint_chain(sp, ep)}" for ep in endpoints]
    vmap = ", ".join(f"{i} : goto {endpoint_chain(sp, ep)}" for i, ep in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {vmap} }}")
    return rules


def _uses_cluster_chain(sp: ServicePort) -> bool:
    return sp.uses_cluster and bool(sp.endpoints)


def _uses_local_chain(sp: ServicePort) -> bool:
    return sp.uses_local and bool(sp.local_endpoints)


def _internal_chain(sp: ServicePort) -> str:
    return local_chain(sp) if sp.internal_policy_local else cluster_chain(sp)


def port_chains(sp: ServicePort, cfg: NftConfig) -> _PortChains:
    out = _PortChains()
    cluster, local = cluster_chain(sp), local_chain(sp)
    if _uses_cluster_chain(sp):
        out.chains[cluster] = _dispatch(sp, sp.endpoints)
    if _uses_local_chain(sp):
        out.chains[local] = _dispatch(sp, sp.local_endpoints)
    if sp.internal_endpoints and cfg.cluster_cidr:
        # Cluster-IP traffic from outside the pod network (the node, a client routed in):
        # masquerade, so the reply comes back through this node to be un-DNATed.
        out.chains[_internal_chain(sp)].insert(0, f"ip daddr {sp.cluster_ip} {sp.proto} dport {sp.port} "
                                                  f"ip saddr != {cfg.cluster_cidr} jump {MARK_MASQ}")
    if sp.externally_accessible and sp.has_endpoints:
        rules = []
        if not sp.external_policy_local:
            rules += [f"jump {MARK_MASQ}", f"goto {cluster}"]  # may leave the node: masquerade
        else:
            # Pods and the node itself are not subject to the Local policy (as if they went out
            # to the load balancer and came back); the node's own traffic carries a node address
            # as source, so it is masqueraded.
            if cfg.cluster_cidr:
                rules.append(f"ip saddr {cfg.cluster_cidr} goto {cluster}")
            rules += [f"fib saddr type local jump {MARK_MASQ}", f"fib saddr type local goto {cluster}"]
            if _uses_local_chain(sp):
                rules.append(f"goto {local}")
            # else: it falls through, and endpoints-check drops it.
        out.chains[external_chain(sp)] = rules
    for ep in sp.reachable_endpoints:
        rules = [f"ip saddr {ep.ip} jump {MARK_MASQ}"]  # hairpin: a pod reaching itself
        if sp.affinity_timeout:
            aff = affinity_set(sp, ep)
            out.sets[aff] = sp.affinity_timeout
            rules.append(f"update @{aff} {{ ip saddr }}")
        rules.append(f"meta l4proto {sp.proto} dnat to {ep.ip}:{ep.port}")
        out.chains[endpoint_chain(sp, ep)] = rules
    return out


def port_elements(sp: ServicePort) -> dict[tuple[str, str], str]:
    """The map elements of one service port: (map, key) -> verdict."""
    out: dict[tuple[str, str], str] = {}
    proto, port = sp.proto, sp.port
    # No endpoint anywhere: reject; none for a Local policy on this node: drop.
    missing = f"goto {REJECT}" if not sp.has_endpoints else "drop"
    if sp.internal_endpoints:
        out[(SERVICE_IPS, f"{sp.cluster_ip} . {proto} . {port}")] = f"goto {_internal_chain(sp)}"
    else:
        out[(NO_ENDPOINT_SERVICES, f"{sp.cluster_ip} . {proto} . {port}")] = missing
    if not sp.externally_accessible:
        return out
    external = external_chain(sp)
    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        key = f"{ip} . {proto} . {port}"
        if sp.has_endpoints:
            out[(SERVICE_IPS, key)] = f"goto {external}"
        if not sp.external_endpoints:
            out[(NO_ENDPOINT_SERVICES, key)] = missing
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        if sp.has_endpoints:
            out[(SERVICE_NODEPORTS, key)] = f"goto {external}"
        if not sp.external_endpoints:
            out[(NO_ENDPOINT_NODEPORTS, key)] = missing
    return out


def state_elements(state: Mapping[ServicePortKey, ServicePort]) -> dict[tuple[str, str], str]:
    """Every map element of ``state``; where two service ports claim one key (two
    Services with one external IP and port), the first by key wins, deterministically."""
    out: dict[tuple[str, str], str] = {}
    for key in sorted(state):
        for k, v in port_elements(state[key]).items():
            out.setdefault(k, v)
    return out


# -- the transaction ---------------------------------------------------------------------------


@dataclass
class NftPlan:
    script: str
    #: Chains flushed by this transaction and no longer used: delete them in a later one.
    stale_chains: list[str] = field(default_factory=list)
    #: Chains this transaction deletes.
    deleted_chains: list[str] = field(default_factory=list)
    #: Chains used again (they may have been waiting for deletion).
    active_chains: set[str] = field(default_factory=set)


def _base_script(cfg: NftConfig, lines: list[str]) -> None:
    t = f"ip {cfg.table}"
    lines.append(f'add table {t} {{ comment "Service rules of the pinnace proxy" ; }}')
    for name, ctype, hook, prio in BASE_CHAINS:
        lines.append(f"add chain {t} {name} {{ type {ctype} hook {hook} priority {prio} ; }}")
        lines.append(f"flush chain {t} {name}")
    for name in (SERVICES, ENDPOINTS_CHECK, MASQUERADING, MARK_MASQ, REJECT):
        lines.append(f"add chain {t} {name}")
        lines.append(f"flush chain {t} {name}")
    for name, typ in MAPS.items():
        lines.append(f"add map {t} {name} {{ type {typ} ; }}")
        lines.append(f"flush map {t} {name}")
    mark = f"0x{cfg.mark:08x}"
    rules = [
        ("filter-input", f"ct state new jump {ENDPOINTS_CHECK}"),
        ("filter-forward", f"ct state new jump {ENDPOINTS_CHECK}"),
        ("filter-output", f"ct state new jump {ENDPOINTS_CHECK}"),
        ("nat-prerouting", f"jump {SERVICES}"),
        ("nat-output", f"jump {SERVICES}"),
        ("nat-postrouting", f"jump {MASQUERADING}"),
        (SERVICES, f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        (SERVICES, f"{NODE_LOCAL} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        (ENDPOINTS_CHECK, f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
        (ENDPOINTS_CHECK, f"{NODE_LOCAL} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
        (MARK_MASQ, f"meta mark set meta mark or {mark}"),
        (MASQUERADING, f"meta mark & {mark} != 0 meta mark set meta mark xor {mark} masquerade fully-random"),
        (REJECT, "meta l4proto tcp reject with tcp reset"),
        (REJECT, "reject"),
    ]
    pod_cidr = cfg.pod_cidr or cfg.cluster_cidr
    if cfg.pod_bridge and pod_cidr:
        rules.append((MASQUERADING, f'oifname "{cfg.pod_bridge}" ip saddr {pod_cidr} ct status dnat '
                                    "masquerade fully-random"))
    lines += [f"add rule {t} {chain} {rule}" for chain, rule in rules]


def sync_script(old: Mapping[ServicePortKey, ServicePort] | None, new: Mapping[ServicePortKey, ServicePort],
                cfg: NftConfig = NftConfig(), *, existing_chains: Collection[str] = (),
                existing_sets: Collection[str] = (), delete_chains: Collection[str] = ()) -> NftPlan:
    """One transaction taking the table from ``old`` to ``new``.

    ``old=None``: a full sync; ``existing_chains``/``existing_sets`` are then what the
    kernel's table holds now (none if it does not exist), so leftovers are cleaned.
    Incremental: ``existing_chains`` are the flushed chains still waiting for deletion.
    ``delete_chains``: flushed stale chains to delete now (ignored if used again)."""
    t = f"ip {cfg.table}"
    lines: list[str] = []
    full = old is None
    old_state: Mapping[ServicePortKey, ServicePort] = old or {}
    if full:
        _base_script(cfg, lines)
        todo = sorted(new)
        gone: list[ServicePortKey] = []
    else:
        todo = sorted(k for k in new if old_state.get(k) != new[k])
        gone = sorted(k for k in old_state if k not in new)

    existing = set(existing_chains)
    old_chains: set[str] = set()
    old_sets: set[str] = set()
    if not full:
        for key in (*todo, *gone):
            if key in old_state:
                r = port_chains(old_state[key], cfg)
                old_chains.update(r.chains)
                old_sets.update(r.sets)
        existing |= old_chains

    new_chains: set[str] = set()
    new_sets: set[str] = set()
    # Every set and chain exists (empty) before the first rule that names one.
    set_lines: list[str] = []
    chain_lines: list[str] = []
    rule_lines: list[str] = []
    for key in todo:
        r = port_chains(new[key], cfg)
        for name, timeout in r.sets.items():
            if name not in new_sets:
                new_sets.add(name)
                set_lines.append(f"add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; "
                                 f"timeout {timeout}s ; }}")
        for name, rules in r.chains.items():
            new_chains.add(name)
            chain_lines.append(f"add chain {t} {name}")
            if name in existing:
                chain_lines.append(f"flush chain {t} {name}")
            rule_lines += [f"add rule {t} {name} {rule}" for rule in rules]
    lines += set_lines
    lines += chain_lines
    lines += rule_lines

    # Map elements: a full sync flushed the maps; an incremental one applies the difference.
    if full:
        for (m, k), v in sorted(state_elements(new).items()):
            lines.append(f"add element {t} {m} {{ {k} : {v} }}")
    else:
        before, after = state_elements(old_state), state_elements(new)
        for (m, k), v in sorted(before.items()):
            if after.get((m, k)) != v:
                lines.append(f"delete element {t} {m} {{ {k} }}")
        for (m, k), v in sorted(after.items()):
            if before.get((m, k)) != v:
                lines.append(f"add element {t} {m} {{ {k} : {v} }}")

    # Chains no longer used: flush now (their map elements and jumps are gone), delete later.
    if full:
        stale = sorted(c for c in existing if c not in FIXED_CHAINS and c not in new_chains)
    else:
        stale = sorted(old_chains - new_chains)
    lines += [f"flush chain {t} {c}" for c in stale]
    if full:
        dead_sets = sorted(s for s in existing_sets if s.startswith("affinity-") and s not in new_sets)
    else:
        dead_sets = sorted(old_sets - new_sets)
    lines += [f"delete set {t} {s}" for s in dead_sets]
    deleted = sorted(c for c in delete_chains if c not in new_chains and c not in stale and c not in FIXED_CHAINS
                     and (not full or c in existing))
    lines += [f"delete chain {t} {c}" for c in deleted]
    return NftPlan(script="\n".join(lines) + "\n" if lines else "", stale_chains=stale, deleted_chains=deleted,
                   active_chains=new_chains)


def cleanup_script(table: str = TABLE) -> str:
    """Remove the whole table (``add`` first, so it works when there is none)."""
    return f"add table ip {table}\ndelete table ip {table}\n"


def chains_of(sps: Iterable[ServicePort], cfg: NftConfig = NftConfig()) -> set[str]:
    """The per-service chains ``sps`` use."""
    out: set[str] = set()
    for sp in sps:
        out.update(port_chains(sp, cfg).chains)
    return out


__all__ = ["MASQUERADE_MARK", "TABLE", "NftConfig", "NftPlan", "affinity_set", "chains_of", "cleanup_script",
           "cluster_chain", "endpoint_chain", "external_chain", "local_chain", "port_chains", "port_elements",
           "state_elements",
           "sync_script"]
