"""A pod's resolv.conf and /etc/hosts as the kubelet makes them: dnsPolicy, dnsConfig merging,
the resolver limits, hostname/subdomain FQDN, hostAliases, hostPort mappings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinnace.kubelet import dnsconfig
from pinnace.kubelet.dnsconfig import (
    DnsConfig,
    host_network_hosts,
    managed_hosts,
    parse_resolv_conf,
    pod_dns_config,
    pod_hostname_and_domain,
    resolv_conf,
)
from pinnace.kubelet.kubelet import Kubelet, port_mappings
from pinnace.kubelet.node import NodeConfig

HOST = DnsConfig(servers=["192.168.1.1", "192.168.1.2"], searches=["corp.example", "example"], options=["rotate"])
CLUSTER = {"cluster_dns": ["10.43.0.10"], "cluster_domain": "cluster.local", "host": HOST}


def pod(namespace: str = "prod", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": namespace, "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


def test_parse_resolv_conf_takes_the_last_search_line_and_skips_comments() -> None:
    text = ("# generated\n; old style comment\nnameserver 10.0.0.2\nsearch a.example b.example.\n"
            "search c.example . d.example.\noptions ndots:2 edns0\nnameserver 10.0.0.3\noptions ndots:3\n")
    cfg = parse_resolv_conf(text)
    assert cfg.servers == ["10.0.0.2", "10.0.0.3"]
    assert cfg.searches == ["c.example", "d.example"]
    assert cfg.options == ["ndots:3", "edns0"]


def test_cluster_first_uses_cluster_dns_and_search_path_with_ndots5() -> None:
    """[sig-network] DNS should resolve DNS of partial qualified names for services [LinuxOnly] [Conformance]:
    the search path makes `svc` and `svc.ns` resolve."""
    cfg = pod_dns_config(pod(), **CLUSTER)
    assert cfg.servers == ["10.43.0.10"]
    assert cfg.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "example"]
    assert cfg.options == ["ndots:5"]
    assert resolv_conf(cfg) == ("search prod.svc.cluster.local svc.cluster.local cluster.local corp.example example\n"
                                "nameserver 10.43.0.10\noptions ndots:5\n")
    # The default policy is ClusterFirst; duplicates of the cluster domains in the host's search are dropped.
    host = DnsConfig(["1.1.1.1"], ["cluster.local", "x.example"], [])
    cfg = pod_dns_config(pod(dnsPolicy="ClusterFirst"), cluster_dns=["10.43.0.10"], cluster_domain="cluster.local",
                         host=host)
    assert cfg.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "x.example"]


def test_default_policy_and_host_network_pods_get_the_host_resolver() -> None:
    assert pod_dns_config(pod(dnsPolicy="Default"), **CLUSTER) == HOST
    # hostNetwork + ClusterFirst falls back to Default ...
    assert pod_dns_config(pod(hostNetwork=True), **CLUSTER) == HOST
    # ... as does every pod when the kubelet runs without a pod network.
    assert pod_dns_config(pod(), on_node_network=True, **CLUSTER) == HOST
    # ClusterFirstWithHostNet keeps the cluster DNS on the node's network.
    cfg = pod_dns_config(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), **CLUSTER)
    assert cfg.servers == ["10.43.0.10"] and cfg.options == ["ndots:5"]


def test_cluster_first_without_cluster_dns_falls_back_with_a_warning() -> None:
    warnings: list[str] = []
    cfg = pod_dns_config(pod(), cluster_dns=[], cluster_domain="cluster.local", host=HOST, warnings=warnings)
    assert cfg == HOST
    assert warnings and "ClusterDNS" in warnings[0]


def test_none_policy_is_only_the_dns_config() -> None:
    """[sig-network] DNS should support configurable pod DNS nameservers [Conformance]"""
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["resolv.conf.local"],
                                         "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    cfg = pod_dns_config(p, **CLUSTER)
    assert cfg == DnsConfig(["1.1.1.1"], ["resolv.conf.local"], ["ndots:2", "edns0"])
    assert resolv_conf(cfg) == "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"


def test_dns_config_is_merged_into_cluster_first() -> None:
    p = pod(dnsConfig={"nameservers": ["10.43.0.10", "8.8.8.8"], "searches": ["my.dns.search.suffix", "cluster.local"],
                       "options": [{"name": "ndots", "value": "2"}, {"name": "single-request-reopen"}]})
    cfg = pod_dns_config(p, **CLUSTER)
    assert cfg.servers == ["10.43.0.10", "8.8.8.8"]
    assert cfg.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "example",
                            "my.dns.search.suffix"]
    assert cfg.options == ["ndots:2", "single-request-reopen"]  # the pod's ndots replaces the default


def test_limits_on_nameservers_and_search_domains() -> None:
    warnings: list[str] = []
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"],
                                         "searches": [f"d{i}.example" for i in range(40)]})
    cfg = pod_dns_config(p, **CLUSTER, warnings=warnings)
    assert cfg.servers == ["1.1.1.1", "1.1.1.2", "1.1.1.3"]
    assert cfg.searches == [f"d{i}.example" for i in range(32)]
    assert len(warnings) == 2 and "Nameserver limits" in warnings[0] and "Search Line limits" in warnings[1]

    # Over 2048 characters: domains are dropped from the end until the line fits; over-long ones go.
    long = ["a" * 250 + f".{i}" for i in range(10)]
    cfg = dnsconfig.fit_limits(DnsConfig(["1.1.1.1"], ["x" * 254, *long], []))
    assert "x" * 254 not in cfg.searches
    assert len(" ".join(cfg.searches)) <= dnsconfig.MAX_DNS_SEARCH_LIST_CHARS
    assert cfg.searches == long[:len(cfg.searches)] and len(cfg.searches) == 8


def test_hostname_and_subdomain() -> None:
    assert pod_hostname_and_domain(pod(), "cluster.local") == ("web-0", "")
    assert pod_hostname_and_domain(pod(hostname="db", subdomain="sub"), "cluster.local") == (
        "db", "sub.prod.svc.cluster.local")
    long = {"metadata": {"name": "x" * 62 + "-yz", "namespace": "d"}, "spec": {}}
    assert pod_hostname_and_domain(long, "cluster.local") == ("x" * 62, "")  # cut to 63, trailing "-" trimmed
    with pytest.raises(ValueError):
        pod_hostname_and_domain(pod(subdomain="Not_A_Label"), "cluster.local")


def test_managed_hosts_file() -> None:
    """[sig-node] Kubelet when scheduling an agnhost Pod with hostAliases should write entries to /etc/hosts
    [NodeConformance] [Conformance]; the FQDN line of [sig-network] DNS should provide DNS for pods for Hostname."""
    hosts = managed_hosts(["10.42.0.7"], "db", "sub.prod.svc.cluster.local",
                          [{"ip": "123.45.67.89", "hostnames": ["foo.remote", "bar.remote"]}])
    assert hosts == ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                     "ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\n"
                     "fe00::2\tip6-allrouters\n10.42.0.7\tdb.sub.prod.svc.cluster.local\tdb\n\n"
                     "# Entries added by HostAliases.\n123.45.67.89\tfoo.remote\tbar.remote\n")
    assert managed_hosts(["10.42.0.7"], "web-0").endswith("fe00::2\tip6-allrouters\n10.42.0.7\tweb-0\n")


def test_host_network_hosts_file_is_the_nodes_plus_aliases() -> None:
    """[sig-node] KubeletManagedEtcHosts should test kubelet managed /etc/hosts file: a hostNetwork pod's is
    the node's."""
    out = host_network_hosts("127.0.0.1 localhost\n10.0.0.5 node-a", [{"ip": "1.2.3.4", "hostnames": ["a"]}])
    assert out == ("# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n10.0.0.5 node-a\n\n"
                   "# Entries added by HostAliases.\n1.2.3.4\ta\n")


def test_pods_with_their_own_network_do_not_get_a_loopback_stub_resolver(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stub = tmp_path / "resolv.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.168.1.1\nsearch lan\n")
    monkeypatch.setattr(dnsconfig, "SYSTEMD_RESOLVED_CONF", str(upstream))
    assert dnsconfig.host_resolv_conf(str(stub), own_network=False) == stub.read_text()
    assert dnsconfig.host_resolv_conf(str(stub), own_network=True) == upstream.read_text()
    upstream.unlink()
    assert dnsconfig.host_resolv_conf(str(stub), own_network=True) == stub.read_text()


def test_port_mappings_are_the_container_host_ports() -> None:
    p = pod(containers=[
        {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81},
                                {"name": "dns", "containerPort": 53, "hostPort": 5353, "protocol": "UDP",
                                 "hostIP": "127.0.0.1"}]},
        {"name": "b", "ports": [{"containerPort": 9000, "hostPort": 9000, "protocol": "SCTP"}]}])
    assert port_mappings(p) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"hostPort": 9000, "containerPort": 9000, "protocol": "sctp"}]


def _kubelet(tmp_path: Path, network: Any, resolv: str) -> Kubelet:
    (tmp_path / "resolv.conf").write_text(resolv)
    node = NodeConfig(name="n", host_ip="10.0.0.5", data_dir=tmp_path, runtime_version="fake://1")
    return Kubelet(None, None, node, volumes=None, network=network, cluster_dns=["10.43.0.10"],  # type: ignore[arg-type]
                   resolv_conf=str(tmp_path / "resolv.conf"))


class _Network:
    ready = False


def test_sandbox_config_follows_the_pod_network(tmp_path: Path) -> None:
    net = _Network()
    k = _kubelet(tmp_path, net, "nameserver 192.168.1.1\nsearch lan\n")
    p = pod(hostname="db", subdomain="sub", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}],
            containers=[{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}])
    assert k.network_not_ready(p) is not None and "NetworkReady=false" in str(k.network_not_ready(p))
    assert k.network_not_ready(pod(hostNetwork=True)) is None  # hostNetwork pods do not wait for CNI
    net.ready = True
    assert k.network_not_ready(p) is None
    cfg = k.sandbox_config(p)
    assert (cfg.hostname, cfg.domain, cfg.host_network) == ("db", "sub.prod.svc.cluster.local", False)
    assert cfg.dns == {"servers": ["10.43.0.10"], "options": ["ndots:5"],
                       "searches": ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan"]}
    assert cfg.host_aliases == [{"ip": "1.2.3.4", "hostnames": ["x"]}]
    assert cfg.port_mappings == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    # hostNetwork: the host's resolver, and its ports are the node's own (no mappings).
    hn = k.sandbox_config({**p, "spec": {**p["spec"], "hostNetwork": True}})
    assert hn.dns == {"servers": ["192.168.1.1"], "searches": ["lan"], "options": []}
    assert hn.port_mappings == []

    # Without a pod network every pod is on the node's network: the host resolver, nothing to wait for.
    host_mode = _kubelet(tmp_path, None, "nameserver 192.168.1.1\n")
    assert host_mode.network_not_ready(p) is None
    assert host_mode.sandbox_config(p).dns == {"servers": ["192.168.1.1"], "searches": [], "options": []}
