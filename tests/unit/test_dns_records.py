"""Cluster DNS answers (pinnace.dns.records) per the Kubernetes DNS specification
and CoreDNS's kubernetes plugin: A/AAAA, headless, endpoint hostnames, SRV, PTR,
CNAME, pod records, NXDOMAIN versus NODATA."""

from __future__ import annotations

import ipaddress

import pytest
from dnslib import QTYPE, RCODE

from pinnace.dns.records import ClusterView, Resolver, reverse_pointer_ip

ZONE = "cluster.local"


def service(name: str, ns: str = "default", cluster_ip: str | None = "10.43.0.20", ports=None, **spec) -> dict:
    s: dict = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if cluster_ip is not None:
        s["clusterIP"] = cluster_ip
        s["clusterIPs"] = spec.get("clusterIPs") or [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": s}


def endpoint_slice(name: str, svc: str, endpoints: list[dict], ns: str = "default", address_type: str = "IPv4",
                   ports=None) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def ep(ip: str, ready: bool | None = True, hostname: str | None = None) -> dict:
    e: dict = {"addresses": [ip]}
    if ready is not None:
        e["conditions"] = {"ready": ready}
    if hostname:
        e["hostname"] = hostname
    return e


def rdata(answer, qtype: int | None = None) -> list[str]:
    return [str(rr.rdata) for rr in answer if qtype is None or rr.rtype == qtype]


@pytest.fixture
def view() -> ClusterView:
    return ClusterView()


@pytest.fixture
def resolver(view) -> Resolver:
    return Resolver(view, ZONE)


def ask(resolver: Resolver, name: str, qtype: str):
    ans = resolver.resolve(name, getattr(QTYPE, qtype))
    assert ans is not None, f"{name} {qtype} was not answered locally"
    return ans


def assert_nxdomain(ans) -> None:
    assert ans.rcode == RCODE.NXDOMAIN
    assert ans.answer == []
    assert [rr.rtype for rr in ans.authority] == [QTYPE.SOA]


def assert_nodata(ans) -> None:
    assert ans.rcode == RCODE.NOERROR
    assert ans.answer == []
    assert [rr.rtype for rr in ans.authority] == [QTYPE.SOA]
    assert str(ans.authority[0].rname) == ZONE + "."


def test_cluster_ip_service_a_srv_ptr(view, resolver):
    """[sig-network] DNS should provide DNS for services [Conformance]: the A record
    of a ClusterIP Service, SRV for its named port, PTR for its cluster IP."""
    view.set_service(service("test-service-2", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                                      {"port": 9999, "protocol": "UDP"}]))
    ans = ask(resolver, "test-service-2.default.svc.cluster.local", "A")
    assert ans.rcode == RCODE.NOERROR
    assert rdata(ans.answer) == ["10.43.0.20"]
    assert ans.answer[0].ttl == 5
    assert str(ans.answer[0].rname) == "test-service-2.default.svc.cluster.local."

    srv = ask(resolver, "_http._tcp.test-service-2.default.svc.cluster.local", "SRV")
    assert [(r.rdata.port, str(r.rdata.target)) for r in srv.answer] == [
        (80, "test-service-2.default.svc.cluster.local.")]
    assert [(str(r.rname), str(r.rdata)) for r in srv.additional] == [
        ("test-service-2.default.svc.cluster.local.", "10.43.0.20")]
    # Wrong protocol or an unknown port name: no such name.
    assert_nxdomain(ask(resolver, "_http._udp.test-service-2.default.svc.cluster.local", "SRV"))
    assert_nxdomain(ask(resolver, "_grpc._tcp.test-service-2.default.svc.cluster.local", "SRV"))

    ptr = ask(resolver, "20.0.43.10.in-addr.arpa", "PTR")
    assert rdata(ptr.answer) == ["test-service-2.default.svc.cluster.local."]


def test_names_are_case_insensitive(view, resolver):
    view.set_service(service("web"))
    ans = ask(resolver, "WEB.Default.SVC.Cluster.Local.", "A")
    assert rdata(ans.answer) == ["10.43.0.20"]


def test_nodata_versus_nxdomain(view, resolver):
    """A name that exists without records of the type is NODATA (NOERROR + SOA);
    a name that does not exist is NXDOMAIN."""
    view.set_service(service("web"))
    assert_nodata(ask(resolver, "web.default.svc.cluster.local", "AAAA"))
    assert_nodata(ask(resolver, "web.default.svc.cluster.local", "MX"))
    assert_nodata(ask(resolver, "web.default.svc.cluster.local", "CNAME"))
    assert_nodata(ask(resolver, "default.svc.cluster.local", "A"))  # a namespace: an empty non-terminal
    assert_nodata(ask(resolver, "svc.cluster.local", "A"))
    assert_nodata(ask(resolver, "cluster.local", "A"))
    assert_nxdomain(ask(resolver, "other.default.svc.cluster.local", "A"))
    assert_nxdomain(ask(resolver, "web.other.svc.cluster.local", "A"))  # same name, other namespace
    assert_nxdomain(ask(resolver, "web.default.cluster.local", "A"))  # neither svc nor pod
    assert_nxdomain(ask(resolver, "a.b.c.web.default.svc.cluster.local", "A"))  # too many labels
    assert resolver.resolve("example.com", QTYPE.A) is None  # not ours: forwarded


def test_soa_and_ns_at_the_apex(view, resolver):
    view.set_service(service("kube-dns", "kube-system", "10.43.0.10",
                             ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]))
    soa = ask(resolver, "cluster.local", "SOA")
    assert str(soa.answer[0].rdata.mname) == "ns.dns.cluster.local."
    assert soa.answer[0].rdata.times[4] == 5  # negative answers are cached no longer than positive ones
    ns = ask(resolver, "cluster.local", "NS")
    assert rdata(ns.answer) == ["ns.dns.cluster.local."]
    assert rdata(ns.additional) == ["10.43.0.10"]
    assert rdata(ask(resolver, "ns.dns.cluster.local", "A").answer) == ["10.43.0.10"]


def test_soa_serial_moves_on_change(view, resolver):
    before = ask(resolver, "cluster.local", "SOA").answer[0].rdata.times[0]
    view.set_service(service("web"))
    after = ask(resolver, "cluster.local", "SOA").answer[0].rdata.times[0]
    assert after > before


def test_dns_version_txt(resolver):
    ans = ask(resolver, "dns-version.cluster.local", "TXT")
    assert rdata(ans.answer) == ['"1.1.0"']
    assert_nodata(ask(resolver, "dns-version.cluster.local", "A"))


def test_dual_stack_service_answers_a_and_aaaa(view, resolver):
    view.set_service(service("dual", clusterIPs=["10.43.0.30", "fd00:43::30"], cluster_ip="10.43.0.30"))
    assert rdata(ask(resolver, "dual.default.svc.cluster.local", "A").answer) == ["10.43.0.30"]
    assert rdata(ask(resolver, "dual.default.svc.cluster.local", "AAAA").answer) == ["fd00:43::30"]
    ptr = ask(resolver, ipaddress.ip_address("fd00:43::30").reverse_pointer, "PTR")
    assert rdata(ptr.answer) == ["dual.default.svc.cluster.local."]


def test_headless_service_returns_ready_endpoints(view, resolver):
    """[sig-network] DNS should provide DNS for services [Conformance]: a headless
    Service resolves to its ready endpoints; SRV gives one record per endpoint."""
    view.set_service(service("dns-test-service", cluster_ip="None"))
    # No endpoints yet: the name has no records (the spec's NXDOMAIN).
    assert_nxdomain(ask(resolver, "dns-test-service.default.svc.cluster.local", "A"))
    view.set_endpoint_slice(endpoint_slice("dns-test-service-abc", "dns-test-service", [
        ep("10.42.0.5", hostname="web-0"), ep("10.42.1.6"), ep("10.42.1.7", ready=False), ep("10.42.2.8", ready=None)]))
    ans = ask(resolver, "dns-test-service.default.svc.cluster.local", "A")
    assert sorted(rdata(ans.answer)) == ["10.42.0.5", "10.42.1.6", "10.42.2.8"]  # nil readiness counts as ready
    assert_nodata(ask(resolver, "dns-test-service.default.svc.cluster.local", "AAAA"))

    srv = ask(resolver, "_http._tcp.dns-test-service.default.svc.cluster.local", "SRV")
    targets = sorted((str(r.rdata.target), r.rdata.port) for r in srv.answer)
    assert targets == [("10-42-1-6.dns-test-service.default.svc.cluster.local.", 8080),
                       ("10-42-2-8.dns-test-service.default.svc.cluster.local.", 8080),
                       ("web-0.dns-test-service.default.svc.cluster.local.", 8080)]
    assert sorted((str(r.rname), str(r.rdata)) for r in srv.additional) == [
        ("10-42-1-6.dns-test-service.default.svc.cluster.local.", "10.42.1.6"),
        ("10-42-2-8.dns-test-service.default.svc.cluster.local.", "10.42.2.8"),
        ("web-0.dns-test-service.default.svc.cluster.local.", "10.42.0.5")]

    # Endpoint names: the hostname, else the dashed IP; a not-ready endpoint has none.
    assert rdata(ask(resolver, "web-0.dns-test-service.default.svc.cluster.local", "A").answer) == ["10.42.0.5"]
    assert rdata(ask(resolver, "10-42-1-6.dns-test-service.default.svc.cluster.local", "A").answer) == ["10.42.1.6"]
    assert_nxdomain(ask(resolver, "10-42-1-7.dns-test-service.default.svc.cluster.local", "A"))
    # PTR of endpoint addresses name the endpoint.
    assert rdata(ask(resolver, "5.0.42.10.in-addr.arpa", "PTR").answer) == [
        "web-0.dns-test-service.default.svc.cluster.local."]
    assert resolver.resolve("7.1.42.10.in-addr.arpa", QTYPE.PTR) is None  # not ready: not ours, forward


def test_headless_endpoints_across_slices_and_their_removal(view, resolver):
    view.set_service(service("hl", cluster_ip="None"))
    view.set_endpoint_slice(endpoint_slice("hl-1", "hl", [ep("10.42.0.1")]))
    view.set_endpoint_slice(endpoint_slice("hl-2", "hl", [ep("10.42.0.2")]))
    assert sorted(rdata(ask(resolver, "hl.default.svc.cluster.local", "A").answer)) == ["10.42.0.1", "10.42.0.2"]
    view.delete_endpoint_slice(endpoint_slice("hl-1", "hl", []))
    assert rdata(ask(resolver, "hl.default.svc.cluster.local", "A").answer) == ["10.42.0.2"]
    # A slice relabelled to another Service leaves the first one.
    view.set_endpoint_slice(endpoint_slice("hl-2", "other", [ep("10.42.0.2")]))
    assert_nxdomain(ask(resolver, "hl.default.svc.cluster.local", "A"))


def test_publish_not_ready_addresses(view, resolver):
    view.set_service(service("db", cluster_ip="None", publishNotReadyAddresses=True))
    view.set_endpoint_slice(endpoint_slice("db-1", "db", [ep("10.42.0.9", ready=False, hostname="db-0")]))
    assert rdata(ask(resolver, "db.default.svc.cluster.local", "A").answer) == ["10.42.0.9"]
    assert rdata(ask(resolver, "db-0.db.default.svc.cluster.local", "A").answer) == ["10.42.0.9"]


def test_ipv6_endpoints(view, resolver):
    view.set_service(service("hl6", cluster_ip="None"))
    view.set_endpoint_slice(endpoint_slice("hl6-1", "hl6", [ep("fd00:42::5")], address_type="IPv6"))
    assert rdata(ask(resolver, "hl6.default.svc.cluster.local", "AAAA").answer) == ["fd00:42::5"]
    assert_nodata(ask(resolver, "hl6.default.svc.cluster.local", "A"))
    assert rdata(ask(resolver, "fd00-42--5.hl6.default.svc.cluster.local", "AAAA").answer) == ["fd00:42::5"]


def test_pod_hostname_and_subdomain(view, resolver):
    """[sig-network] DNS should provide DNS for pods for Hostname [Conformance] and
    [sig-network] DNS should provide DNS for pods for Subdomain [Conformance]: a pod
    with hostname H and subdomain S (a headless Service S selecting it) answers at
    H.S.<ns>.svc.<zone>, and S.<ns>.svc.<zone> gives its address."""
    view.set_service(service("dns-querier-2", "e2e", cluster_ip="None",
                             ports=[{"name": "http", "port": 80, "protocol": "TCP"}]))
    # The EndpointSlice controller copies hostname in when pod.spec.subdomain == the Service's name.
    view.set_endpoint_slice(endpoint_slice("dns-querier-2-x", "dns-querier-2",
                                           [ep("10.42.0.77", hostname="dns-querier-2")], ns="e2e"))
    fqdn = "dns-querier-2.dns-querier-2.e2e.svc.cluster.local"
    assert rdata(ask(resolver, fqdn, "A").answer) == ["10.42.0.77"]
    assert rdata(ask(resolver, "dns-querier-2.e2e.svc.cluster.local", "A").answer) == ["10.42.0.77"]
    assert_nodata(ask(resolver, fqdn, "AAAA"))


def test_externalname_cname(view, resolver):
    """[sig-network] DNS should provide DNS for ExternalName services [Conformance]:
    a CNAME to the external name; changing the name changes the answer; turned into
    a ClusterIP Service it answers A records."""
    view.set_service(service("dns-test-service-3", cluster_ip=None, type="ExternalName",
                             externalName="foo.example.com", ports=[]))
    ans = ask(resolver, "dns-test-service-3.default.svc.cluster.local", "CNAME")
    assert rdata(ans.answer) == ["foo.example.com."]
    assert ans.chase is None
    # Asked for A: the CNAME, with the target left for the server to resolve upstream.
    ans = ask(resolver, "dns-test-service-3.default.svc.cluster.local", "A")
    assert [rr.rtype for rr in ans.answer] == [QTYPE.CNAME]
    assert ans.chase == ("foo.example.com", QTYPE.A)

    view.set_service(service("dns-test-service-3", cluster_ip=None, type="ExternalName",
                             externalName="bar.example.com", ports=[]))
    assert rdata(ask(resolver, "dns-test-service-3.default.svc.cluster.local", "CNAME").answer) == [
        "bar.example.com."]

    view.set_service(service("dns-test-service-3", cluster_ip="10.43.0.44", type="ClusterIP"))
    ans = ask(resolver, "dns-test-service-3.default.svc.cluster.local", "A")
    assert rdata(ans.answer) == ["10.43.0.44"]
    assert_nodata(ask(resolver, "dns-test-service-3.default.svc.cluster.local", "CNAME"))


def test_externalname_to_a_cluster_name_is_followed_here(view, resolver):
    view.set_service(service("web"))
    view.set_service(service("alias", cluster_ip=None, type="ExternalName",
                             externalName="web.default.svc.cluster.local.", ports=[]))
    ans = ask(resolver, "alias.default.svc.cluster.local", "A")
    assert [(rr.rtype, str(rr.rdata)) for rr in ans.answer] == [
        (QTYPE.CNAME, "web.default.svc.cluster.local."), (QTYPE.A, "10.43.0.20")]
    assert ans.chase is None


def test_externalname_loop_ends(view, resolver):
    view.set_service(service("a", cluster_ip=None, type="ExternalName", externalName="b.default.svc.cluster.local"))
    view.set_service(service("b", cluster_ip=None, type="ExternalName", externalName="a.default.svc.cluster.local"))
    ans = ask(resolver, "a.default.svc.cluster.local", "A")
    assert all(rr.rtype == QTYPE.CNAME for rr in ans.answer) and 1 < len(ans.answer) <= 10


def test_externalname_that_is_an_ip_has_no_records(view, resolver):
    view.set_service(service("ip", cluster_ip=None, type="ExternalName", externalName="192.0.2.1", ports=[]))
    assert_nxdomain(ask(resolver, "ip.default.svc.cluster.local", "A"))


def test_pod_a_records_from_the_name(resolver):
    ans = ask(resolver, "10-42-3-4.anyns.pod.cluster.local", "A")
    assert rdata(ans.answer) == ["10.42.3.4"]
    assert rdata(ask(resolver, "fd00-42--1.anyns.pod.cluster.local", "AAAA").answer) == ["fd00:42::1"]
    assert_nodata(ask(resolver, "10-42-3-4.anyns.pod.cluster.local", "AAAA"))
    assert_nxdomain(ask(resolver, "not-an-ip.anyns.pod.cluster.local", "A"))
    assert_nxdomain(ask(resolver, "10-42-3-400.anyns.pod.cluster.local", "A"))
    assert_nodata(ask(resolver, "anyns.pod.cluster.local", "A"))


def test_service_deleted_is_nxdomain(view, resolver):
    obj = service("web")
    view.set_service(obj)
    assert ask(resolver, "web.default.svc.cluster.local", "A").rcode == RCODE.NOERROR
    generation = view.generation
    view.delete_service(obj)
    assert view.generation > generation
    assert_nxdomain(ask(resolver, "web.default.svc.cluster.local", "A"))
    assert resolver.resolve("20.0.43.10.in-addr.arpa", QTYPE.PTR) is None


def test_unchanged_objects_do_not_count_as_changes(view):
    calls = []
    view.add_listener(lambda: calls.append(1))
    obj = service("web")
    view.set_service(obj)
    view.set_service({**obj, "status": {"loadBalancer": {}}})  # nothing DNS shows changed
    assert len(calls) == 1


def test_unsynced_view_answers_servfail_for_unknown_names():
    """Until the informers have listed, an unknown name may just not be known yet (CoreDNS: SERVFAIL)."""
    view = ClusterView(synced=False)
    resolver = Resolver(view, ZONE)
    assert ask(resolver, "web.default.svc.cluster.local", "A").rcode == RCODE.SERVFAIL
    view.synced = True
    assert_nxdomain(ask(resolver, "web.default.svc.cluster.local", "A"))


def test_other_cluster_domain(view):
    resolver = Resolver(view, "corp.example")
    view.set_service(service("web"))
    assert rdata(ask(resolver, "web.default.svc.corp.example", "A").answer) == ["10.43.0.20"]
    assert resolver.resolve("web.default.svc.cluster.local", QTYPE.A) is None


def test_reverse_pointer_parsing():
    assert reverse_pointer_ip("4.3.2.1.in-addr.arpa.") == "1.2.3.4"
    assert reverse_pointer_ip("3.2.1.in-addr.arpa") is None  # a network, not an address
    assert reverse_pointer_ip("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa") == "::1"
    assert reverse_pointer_ip("example.com") is None
