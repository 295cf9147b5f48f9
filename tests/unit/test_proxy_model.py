"""The proxy's model: Services + EndpointSlices -> service ports with usable endpoints."""

from __future__ import annotations

from pinnace.proxy.model import (
    DEFAULT_AFFINITY_TIMEOUT,
    Endpoint,
    build_state,
    categorize,
    changed_keys,
    service_ports,
)

NODE = "node-a"


def svc(name: str = "web", ip: str = "10.43.0.10", typ: str = "ClusterIP", ports: list[dict] | None = None,
        ns: str = "default", labels: dict | None = None, status: dict | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, **({"labels": labels} if labels else {})},
            "spec": {"type": typ, "clusterIP": ip, "clusterIPs": [ip] if ip else [],
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}],
                     **spec},
            "status": status or {}}


def ep(ip: str, node: str = NODE, ready: bool | None = True, serving: bool | None = None,
       terminating: bool | None = None) -> dict:
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def eps(service: str = "web", endpoints: list[dict] | None = None, ports: list[dict] | None = None,
        name: str | None = None, ns: str = "default", address_type: str = "IPv4") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints or []}


def test_cluster_ip_service_port_with_ready_endpoints_sorted():
    [sp] = service_ports(svc(), [eps(endpoints=[ep("10.42.0.12"), ep("10.42.0.11", node="node-b")])], NODE)
    assert (sp.namespace, sp.name, sp.port_name, sp.protocol) == ("default", "web", "http", "TCP")
    assert (sp.cluster_ip, sp.port, sp.node_port) == ("10.43.0.10", 80, 0)
    assert [e.address for e in sp.endpoints] == ["10.42.0.11:8080", "10.42.0.12:8080"]
    assert [(e.node_name, e.is_local) for e in sp.endpoints] == [("node-b", False), (NODE, True)]
    assert [e.ip for e in sp.local_endpoints] == ["10.42.0.12"]
    assert sp.has_endpoints and sp.key == ("default", "web", "http", "TCP")
    assert str(sp) == "default/web:http/tcp"


def test_ports_matched_by_name_and_protocol():
    service = svc(ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
                         {"name": "metrics", "port": 9090}])
    sl = eps(endpoints=[ep("10.42.0.5")], ports=[{"name": "http", "port": 8080}, {"name": "dns", "port": 5353,
                                                                                  "protocol": "UDP"},
                                                 {"name": "dns", "port": 5354, "protocol": "TCP"}])
    by_name = {sp.port_name: sp for sp in service_ports(service, [sl], NODE)}
    assert [e.port for e in by_name["http"].endpoints] == [8080]
    assert [e.port for e in by_name["dns"].endpoints] == [5353]  # the UDP one, not the TCP port of that name
    assert by_name["metrics"].endpoints == ()  # no slice port of that name: no endpoints
    assert not by_name["metrics"].has_endpoints


def test_unnamed_single_port():
    service = svc(ports=[{"port": 80, "targetPort": 8080}])
    [sp] = service_ports(service, [eps(endpoints=[ep("10.42.0.5")], ports=[{"port": 8080}])], NODE)
    assert sp.port_name == "" and [e.address for e in sp.endpoints] == ["10.42.0.5:8080"]


def test_only_ready_endpoints_are_used():
    sl = eps(endpoints=[ep("10.42.0.1"), ep("10.42.0.2", ready=False),
                        ep("10.42.0.3", ready=False, serving=True, terminating=True)])
    [sp] = service_ports(svc(), [sl], NODE)
    assert [e.ip for e in sp.endpoints] == ["10.42.0.1"]


def test_unset_ready_condition_counts_as_ready():
    [sp] = service_ports(svc(), [eps(endpoints=[ep("10.42.0.1", ready=None)])], NODE)
    assert [e.ip for e in sp.endpoints] == ["10.42.0.1"]


def test_falls_back_to_serving_terminating_endpoints_when_none_is_ready():
    sl = eps(endpoints=[ep("10.42.0.2", ready=False, serving=True, terminating=True),
                        ep("10.42.0.3", ready=False, serving=False, terminating=True),
                        ep("10.42.0.4", ready=False)])
    [sp] = service_ports(svc(), [sl], NODE)
    assert [e.ip for e in sp.endpoints] == ["10.42.0.2"]
    assert sp.has_endpoints


def test_local_fallback_is_separate_from_the_cluster_one():
    # Ready endpoints elsewhere, only a terminating one here: Local traffic uses the local one.
    endpoints = [Endpoint("10.42.1.1", 80, "node-b", False, True, True, False),
                 Endpoint("10.42.0.1", 80, NODE, True, False, True, True)]
    cluster, local = categorize(endpoints)
    assert [e.ip for e in cluster] == ["10.42.1.1"]
    assert [e.ip for e in local] == ["10.42.0.1"]


def test_services_without_rules():
    assert service_ports(svc(typ="ExternalName", ip="", externalName="example.com"), [], NODE) == []
    assert service_ports(svc(ip="None"), [eps(endpoints=[ep("10.42.0.1")])], NODE) == []  # headless
    assert service_ports(svc(ip=""), [], NODE) == []  # no cluster IP yet
    assert service_ports(svc(labels={"service.kubernetes.io/service-proxy-name": "other"}), [], NODE) == []
    assert service_ports(svc(ip="fd00::10"), [], NODE) == []  # IPv6 only: not for an IPv4 proxy


def test_node_port_and_load_balancer_addresses():
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11", "ipMode": "Proxy"},
                                           {"hostname": "lb.example"}]}}
    [lb] = service_ports(svc(typ="LoadBalancer", ports=ports, status=status, externalIPs=["198.51.100.7"]), [], NODE)
    assert lb.node_port == 30080
    assert lb.load_balancer_ips == ("192.0.2.10",)  # ipMode Proxy: the LB proxies, nothing to capture
    assert lb.external_ips == ("198.51.100.7",)
    assert lb.externally_accessible
    [np] = service_ports(svc(typ="NodePort", ports=ports), [], NODE)
    assert np.node_port == 30080 and np.load_balancer_ips == ()
    # A ClusterIP service has no node port even if a stale one is in the spec.
    [cip] = service_ports(svc(ports=ports), [], NODE)
    assert cip.node_port == 0 and not cip.externally_accessible


def test_session_affinity_timeout():
    [sp] = service_ports(svc(sessionAffinity="ClientIP"), [], NODE)
    assert sp.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    [sp] = service_ports(svc(sessionAffinity="ClientIP",
                             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}), [], NODE)
    assert sp.affinity_timeout == 60
    [sp] = service_ports(svc(sessionAffinity="None"), [], NODE)
    assert sp.affinity_timeout == 0


def test_traffic_policies():
    sl = eps(endpoints=[ep("10.42.0.1"), ep("10.42.1.1", node="node-b")])
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    [sp] = service_ports(svc(typ="NodePort", ports=ports, externalTrafficPolicy="Local"), [sl], NODE)
    assert sp.external_policy_local and not sp.internal_policy_local
    assert [e.ip for e in sp.external_endpoints] == ["10.42.0.1"]
    assert [e.ip for e in sp.internal_endpoints] == ["10.42.0.1", "10.42.1.1"]
    # externalTrafficPolicy means nothing for a service nobody reaches from outside.
    [sp] = service_ports(svc(externalTrafficPolicy="Local"), [sl], NODE)
    assert not sp.external_policy_local
    [sp] = service_ports(svc(internalTrafficPolicy="Local"), [sl], NODE)
    assert sp.internal_policy_local and [e.ip for e in sp.internal_endpoints] == ["10.42.0.1"]
    assert sp.reachable_endpoints == sp.local_endpoints  # nothing uses the remote one
    [sp] = service_ports(svc(internalTrafficPolicy="Local"), [sl], "node-c")
    assert sp.internal_endpoints == () and sp.has_endpoints  # endpoints exist, just none here


def test_slices_of_other_services_families_and_duplicates():
    slices = [eps(endpoints=[ep("10.42.0.1")]),
              eps(endpoints=[ep("10.42.0.1", ready=False), ep("10.42.0.2")], name="web-def"),  # duplicate 10.42.0.1
              eps(service="other", endpoints=[ep("10.42.0.9")]),
              eps(service="web", ns="elsewhere", endpoints=[ep("10.42.0.8")]),
              eps(endpoints=[{"addresses": ["fd00::1"], "conditions": {"ready": True}}], address_type="IPv6",
                  name="web-v6")]
    [sp] = service_ports(svc(), slices, NODE)
    assert [(e.ip, e.ready) for e in sp.endpoints] == [("10.42.0.1", True), ("10.42.0.2", True)]


def test_build_state_and_changes():
    services = [svc(), svc("api", "10.43.0.11", ports=[{"name": "grpc", "port": 9000}, {"name": "http", "port": 80}])]
    slices = [eps(endpoints=[ep("10.42.0.1")]), eps("api", [ep("10.42.0.2")], ports=[{"name": "grpc", "port": 9000}])]
    old = build_state(services, slices, NODE)
    assert sorted(old) == [("default", "api", "grpc", "TCP"), ("default", "api", "http", "TCP"),
                           ("default", "web", "http", "TCP")]
    new = build_state(services[1:], [eps("api", [ep("10.42.0.2"), ep("10.42.0.3")],
                                         ports=[{"name": "grpc", "port": 9000}])], NODE)
    added, removed, changed = changed_keys(old, new)
    assert added == [] and removed == [("default", "web", "http", "TCP")]
    assert changed == [("default", "api", "grpc", "TCP")]  # the http port did not change
