"""Rule generation of the proxy: nftables transactions, iptables-restore input and
conntrack clean-up, as text from states (real nft and iptables run them in
tests/integration/test_proxy_netns.py)."""

from __future__ import annotations

import re
from dataclasses import replace

from pinnace.proxy import conntrack
from pinnace.proxy import iptables as ipt
from pinnace.proxy import nftables as nft
from pinnace.proxy.model import Endpoint, ServicePort

T = "ip pinnace-proxy"
CFG = nft.NftConfig(cluster_cidr="10.42.0.0/16", pod_bridge="cni0", pod_cidr="10.42.0.0/24")


def endpoint(ip: str, local: bool = True, port: int = 8080) -> Endpoint:
    return Endpoint(ip, port, "node-a" if local else "node-b", local)


def sp(name: str = "web", ip: str = "10.43.0.10", endpoints: tuple[Endpoint, ...] = (), **kw) -> ServicePort:
    eps = tuple(sorted(endpoints))
    local = tuple(e for e in eps if e.is_local)
    return ServicePort(**{"namespace": "default", "name": name, "port_name": "http", "protocol": "TCP",
                          "cluster_ip": ip, "port": 80, "endpoints": eps, "local_endpoints": local, **kw})


def state(*sps: ServicePort) -> dict:
    return {s.key: s for s in sps}


THREE = (endpoint("10.42.0.11"), endpoint("10.42.0.12"), endpoint("10.42.1.13", local=False))


def rules_of(script: str, chain: str) -> list[str]:
    prefix = f"add rule {T} {chain} "
    return [line[len(prefix):] for line in script.splitlines() if line.startswith(prefix)]


def elements(script: str) -> list[str]:
    return [line for line in script.splitlines() if " element " in line]


# -- nftables ---------------------------------------------------------------------------------


def test_full_sync_sets_up_table_base_chains_and_masquerade():
    script = nft.sync_script(None, {}, CFG).script
    assert script.startswith(f"add table {T}")
    assert f"add chain {T} nat-prerouting {{ type nat hook prerouting priority -100 ; }}" in script
    assert f"add chain {T} nat-postrouting {{ type nat hook postrouting priority 100 ; }}" in script
    assert f"add chain {T} filter-forward {{ type filter hook forward priority -110 ; }}" in script
    assert rules_of(script, "nat-prerouting") == ["jump services"]
    assert rules_of(script, "filter-input") == ["ct state new jump endpoints-check"]
    assert rules_of(script, "services") == [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"]
    assert rules_of(script, "masquerading") == [
        "meta mark & 0x00004000 != 0 meta mark set meta mark xor 0x00004000 masquerade fully-random",
        'oifname "cni0" ip saddr 10.42.0.0/24 ct status dnat masquerade fully-random']
    for m in ("service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports"):
        assert f"flush map {T} {m}" in script


def test_cluster_ip_balances_evenly_over_endpoint_chains():
    """[sig-network] Services should serve a basic endpoint from pods [Conformance]"""
    s = sp(endpoints=THREE)
    script = nft.sync_script(None, state(s), CFG).script
    svc_chain = nft.cluster_chain(s)
    assert svc_chain.startswith("service-") and svc_chain.endswith("-default/web/tcp/http")
    assert elements(script) == [f"add element {T} service-ips {{ 10.43.0.10 . tcp . 80 : goto {svc_chain} }}"]
    ep_chains = [nft.endpoint_chain(s, e) for e in s.endpoints]
    assert rules_of(script, svc_chain) == [
        "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
        "numgen random mod 3 vmap { " + ", ".join(f"{i} : goto {c}" for i, c in enumerate(ep_chains)) + " }"]
    for e, chain in zip(s.endpoints, ep_chains, strict=True):
        assert rules_of(script, chain) == [f"ip saddr {e.ip} jump mark-for-masquerade",  # hairpin
                                           f"meta l4proto tcp dnat to {e.ip}:8080"]
    # Chains are declared before any rule names them.
    first_rule = script.index(f"add rule {T} {svc_chain}")
    assert all(script.index(f"add chain {T} {c}\n") < first_rule for c in ep_chains)


def test_no_endpoints_rejects_and_has_no_chains():
    s = sp()
    script = nft.sync_script(None, state(s), CFG).script
    assert elements(script) == [
        "add element ip pinnace-proxy no-endpoint-services { 10.43.0.10 . tcp . 80 : goto reject-chain }"]
    assert rules_of(script, "reject-chain") == ["meta l4proto tcp reject with tcp reset", "reject"]
    assert "service-" not in script.split("reject-chain reject")[1]
    assert rules_of(script, "endpoints-check")[0] == "ip daddr . meta l4proto . th dport vmap @no-endpoint-services"


def test_node_port_and_load_balancer_go_through_the_external_chain():
    """[sig-network] Services should be able to create a functioning NodePort service [Conformance]"""
    s = sp(endpoints=THREE, node_port=30080, load_balancer_ips=("192.0.2.10",), external_ips=("198.51.100.7",))
    script = nft.sync_script(None, state(s), CFG).script
    ext = nft.external_chain(s)
    assert f"service-nodeports {{ tcp . 30080 : goto {ext} }}" in script
    assert f"service-ips {{ 192.0.2.10 . tcp . 80 : goto {ext} }}" in script
    assert f"service-ips {{ 198.51.100.7 . tcp . 80 : goto {ext} }}" in script
    # Cluster policy: masquerade (the endpoint may be on another node), then the service chain.
    assert rules_of(script, ext) == ["jump mark-for-masquerade", f"goto {nft.cluster_chain(s)}"]
    assert "no-endpoint" not in "\n".join(elements(script))


def test_session_affinity_sets_and_rules():
    """[sig-network] Services should have session affinity work for service with type clusterIP
    [LinuxOnly] [Conformance]"""
    s = sp(endpoints=THREE, affinity_timeout=60)
    script = nft.sync_script(None, state(s), CFG).script
    sets = [nft.affinity_set(s, e) for e in s.endpoints]
    for name in sets:
        assert f"add set {T} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }}" in script
    svc_rules = rules_of(script, nft.cluster_chain(s))
    # Known clients go back to their endpoint before the random pick.
    assert svc_rules[1:4] == [f"ip saddr @{a} goto {nft.endpoint_chain(s, e)}" for a, e in zip(sets, s.endpoints,
                                                                                                strict=True)]
    assert svc_rules[4].startswith("numgen random mod 3 vmap")
    assert f"update @{sets[0]} {{ ip saddr }}" in rules_of(script, nft.endpoint_chain(s, s.endpoints[0]))
    # A new timeout makes new sets (a set's timeout cannot change) and deletes the old ones.
    changed = replace(s, affinity_timeout=120)
    plan = nft.sync_script(state(s), state(changed), CFG)
    for old, new in zip(sets, (nft.affinity_set(changed, e) for e in s.endpoints), strict=True):
        assert old != new
        assert f"delete set {T} {old}" in plan.script
        assert f"add set {T} {new} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 120s ; }}" in plan.script
    # ...after the chains naming them were flushed and rewritten.
    assert plan.script.index(f"flush chain {T} {nft.cluster_chain(s)}") < plan.script.index(f"delete set {T} {sets[0]}")


def test_external_traffic_policy_local():
    s = sp(endpoints=THREE, node_port=30080, external_policy_local=True)
    script = nft.sync_script(None, state(s), CFG).script
    ext, local, cluster = nft.external_chain(s), nft.local_chain(s), nft.cluster_chain(s)
    assert rules_of(script, ext) == [
        f"ip saddr 10.42.0.0/16 goto {cluster}",  # pods are not subject to the policy
        "fib saddr type local jump mark-for-masquerade",  # nor the node itself (masqueraded)
        f"fib saddr type local goto {cluster}",
        f"goto {local}"]
    assert rules_of(script, local)[-1] == "numgen random mod 2 vmap { " + ", ".join(
        f"{i} : goto {nft.endpoint_chain(s, e)}" for i, e in enumerate(s.local_endpoints)) + " }"
    # No endpoint on this node: outside traffic is dropped (not rejected: endpoints exist).
    remote = sp(endpoints=(endpoint("10.42.1.13", local=False),), node_port=30080, external_policy_local=True)
    script = nft.sync_script(None, state(remote), CFG).script
    assert "no-endpoint-nodeports { tcp . 30080 : drop }" in script
    assert f"goto {nft.local_chain(remote)}" not in script
    assert rules_of(script, nft.external_chain(remote))[-1] == f"fib saddr type local goto {nft.cluster_chain(remote)}"


def test_internal_traffic_policy_local():
    s = sp(endpoints=THREE, internal_policy_local=True)
    script = nft.sync_script(None, state(s), CFG).script
    assert f"service-ips {{ 10.43.0.10 . tcp . 80 : goto {nft.local_chain(s)} }}" in script
    assert nft.cluster_chain(s) not in script  # nothing uses the cluster-wide endpoints
    assert nft.endpoint_chain(s, THREE[2]) not in script  # the remote endpoint is unreachable here
    none_here = sp(endpoints=(endpoint("10.42.1.13", local=False),), internal_policy_local=True)
    script = nft.sync_script(None, state(none_here), CFG).script
    assert elements(script) == ["add element ip pinnace-proxy no-endpoint-services { 10.43.0.10 . tcp . 80 : drop }"]


def test_incremental_sync_touches_only_what_changed():
    a, b, c = sp("a", "10.43.0.1", THREE[:2]), sp("b", "10.43.0.2", THREE), sp("c", "10.43.0.3", THREE[:1])
    old = state(a, b, c)
    assert nft.sync_script(old, dict(old), CFG).script == ""  # nothing changed: nothing to do
    b2 = replace(b, endpoints=THREE[:2], local_endpoints=THREE[:2])  # the remote endpoint left
    plan = nft.sync_script(old, state(a, b2, c), CFG)
    assert "add table" not in plan.script and "flush map" not in plan.script
    assert nft.cluster_chain(a) not in plan.script and nft.cluster_chain(c) not in plan.script
    assert f"flush chain {T} {nft.cluster_chain(b)}" in plan.script
    assert rules_of(plan.script, nft.cluster_chain(b))[-1].startswith("numgen random mod 2 vmap")
    gone = nft.endpoint_chain(b, THREE[2])
    assert plan.stale_chains == [gone] and f"flush chain {T} {gone}" in plan.script
    assert f"delete chain {T} {gone}" not in plan.script  # later: the kernel may still hold it
    assert elements(plan.script) == []  # the map element still points at b's service chain
    # A later sync deletes the stale chain.
    later = nft.sync_script(state(a, b2, c), state(a, b2, c), CFG, existing_chains=[gone], delete_chains=[gone])
    assert later.script == f"delete chain {T} {gone}\n" and later.deleted_chains == [gone]


def test_incremental_sync_of_added_and_removed_services():
    a, b = sp("a", "10.43.0.1", THREE[:2]), sp("b", "10.43.0.2", THREE)
    plan = nft.sync_script(state(a), state(a, b), CFG)
    assert elements(plan.script) == [
        f"add element {T} service-ips {{ 10.43.0.2 . tcp . 80 : goto {nft.cluster_chain(b)} }}"]
    assert f"flush chain {T} {nft.cluster_chain(b)}" not in plan.script  # new chains need no flush
    assert plan.stale_chains == []
    plan = nft.sync_script(state(a, b), state(a), CFG)
    assert elements(plan.script) == [f"delete element {T} service-ips {{ 10.43.0.2 . tcp . 80 }}"]
    assert sorted(plan.stale_chains) == sorted([nft.cluster_chain(b), *(nft.endpoint_chain(b, e) for e in THREE)])
    assert plan.script.index("delete element") < plan.script.index(f"flush chain {T} {nft.cluster_chain(b)}")
    # Endpoints going away: the element moves from service-ips to no-endpoint-services.
    plan = nft.sync_script(state(a), state(replace(a, endpoints=(), local_endpoints=())), CFG)
    assert elements(plan.script) == [
        f"delete element {T} service-ips {{ 10.43.0.1 . tcp . 80 }}",
        f"add element {T} no-endpoint-services {{ 10.43.0.1 . tcp . 80 : goto reject-chain }}"]


def test_full_sync_cleans_leftovers_and_keeps_pending_chains_until_due():
    a = sp("a", "10.43.0.1", THREE[:1], affinity_timeout=10)
    leftover = "service-XXXXXXXX-default/old/tcp/http"
    existing = {"services", "nat-prerouting", nft.cluster_chain(a), leftover}
    old_set = "affinity-OLD-default/old/tcp/http__10.42.0.1/80"
    plan = nft.sync_script(None, state(a), CFG, existing_chains=existing,
                           existing_sets={old_set, nft.affinity_set(a, THREE[0])})
    assert plan.stale_chains == [leftover]
    assert f"flush chain {T} {nft.cluster_chain(a)}" in plan.script  # it exists: rewritten
    assert f"flush chain {T} {nft.endpoint_chain(a, THREE[0])}" not in plan.script  # it does not
    assert f"delete set {T} {old_set}" in plan.script
    assert f"delete set {T} {nft.affinity_set(a, THREE[0])}" not in plan.script


def test_two_services_claiming_one_address_get_one_element():
    a = sp("a", "10.43.0.1", THREE[:1], external_ips=("198.51.100.7",))
    b = sp("b", "10.43.0.2", THREE[1:2], external_ips=("198.51.100.7",))
    script = nft.sync_script(None, state(a, b), CFG).script
    assert len(re.findall(r"198\.51\.100\.7 \. tcp \. 80 :", script)) == 1
    assert f"198.51.100.7 . tcp . 80 : goto {nft.external_chain(a)}" in script  # the first by name


def test_cleanup_script_removes_the_table():
    assert nft.cleanup_script() == f"add table {T}\ndelete table {T}\n"


# -- iptables ---------------------------------------------------------------------------------


def test_iptables_balancing_affinity_and_dispatch():
    s = sp(endpoints=THREE, node_port=30080, affinity_timeout=60)
    text = ipt.restore_input(None, state(s)).script
    svc, ext = ipt.svc_chain(s), ipt.ext_chain(s)
    seps = [ipt.sep_chain(s, e) for e in s.endpoints]
    assert all(len(c) <= 28 for c in (svc, ext, *seps))  # iptables' limit
    svc_rules = [line for line in text.splitlines() if line.startswith(f"-A {svc} ")]
    assert svc_rules[0] == f"-A {svc} -d 10.43.0.10/32 -p tcp -m tcp --dport 80 ! -s 10.42.0.0/16 -j PINNACE-MARK-MASQ"
    assert svc_rules[1:4] == [f"-A {svc} -m recent --name {c} --rcheck --seconds 60 --reap -j {c}" for c in seps]
    assert svc_rules[4:] == [f"-A {svc} -m statistic --mode random --probability 0.33333333333 -j {seps[0]}",
                             f"-A {svc} -m statistic --mode random --probability 0.50000000000 -j {seps[1]}",
                             f"-A {svc} -j {seps[2]}"]
    assert (f"-A {seps[0]} -p tcp -m tcp -m recent --name {seps[0]} --set -j DNAT --to-destination 10.42.0.11:8080"
            in text)
    assert (f'-A PINNACE-SERVICES -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment '
            f'"default/web:http/tcp cluster IP" -j {svc}') in text
    assert f'-A PINNACE-NODEPORTS -p tcp -m tcp --dport 30080 -m comment --comment "default/web:http/tcp" -j {ext}' \
        in text
    assert text.splitlines()[0] == "*nat" and text.rstrip().endswith("COMMIT")


def test_iptables_rejects_services_without_endpoints():
    text = ipt.restore_input(None, state(sp(), replace(sp("dns", "10.43.0.10"), protocol="UDP"))).script
    filt = text.split("*filter")[1]
    assert ('-A PINNACE-ENDPOINTS-CHECK -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment '
            '"default/web:http/tcp" -j REJECT --reject-with tcp-reset') in filt
    assert '-p udp -m udp --dport 80 -m comment --comment "default/dns:http/udp" -j REJECT\n' in filt


def test_iptables_incremental_rewrites_changed_chains_and_deletes_stale_ones():
    a, b = sp("a", "10.43.0.1", THREE[:2]), sp("b", "10.43.0.2", THREE)
    plan = ipt.restore_input(state(a, b), state(a))
    declared = [line[1:].split()[0] for line in plan.script.splitlines() if line.startswith(":")]
    stale = sorted([ipt.svc_chain(b), *(ipt.sep_chain(b, e) for e in THREE)])
    assert declared == ["PINNACE-SERVICES", "PINNACE-NODEPORTS", *stale, "PINNACE-ENDPOINTS-CHECK"]
    assert [line for line in plan.script.splitlines() if line.startswith("-X")] == [f"-X {c}" for c in stale]
    assert ipt.svc_chain(a) not in plan.script.split("PINNACE-NODEPORTS - [0:0]")[1].split("-A PINNACE-SERVICES")[0]
    assert plan.deleted_chains == stale


# -- conntrack --------------------------------------------------------------------------------


def test_conntrack_flushes_udp_flows_of_removed_endpoints_and_revived_services():
    dns = replace(sp("dns", "10.43.0.10", THREE[:2], node_port=30053), protocol="UDP")
    one_left = replace(dns, endpoints=THREE[:1], local_endpoints=THREE[:1])
    assert conntrack.stale_udp_commands(state(dns), state(one_left)) == [
        ["-D", "-p", "udp", "--orig-dst", "10.43.0.10", "--orig-port-dst", "80", "--dst-nat", "10.42.0.12"],
        ["-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.42.0.12"]]
    empty = replace(dns, endpoints=(), local_endpoints=())
    assert conntrack.stale_udp_commands(state(empty), state(one_left)) == [
        ["-D", "-p", "udp", "--orig-dst", "10.43.0.10", "--orig-port-dst", "80"],
        ["-D", "-p", "udp", "--orig-port-dst", "30053"]]
    # TCP connections end by themselves: nothing to flush.
    assert conntrack.stale_udp_commands(state(sp(endpoints=THREE)), {}) == []
