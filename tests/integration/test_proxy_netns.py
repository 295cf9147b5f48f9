"""The proxy against real traffic, in network namespaces this test makes and deletes.

Topology (every namespace made here, no link ever on the host):

    client ns  192.168.77.2 --veth-- 192.168.77.1  node ns  cni0 10.42.0.1/24 --veth-- pod ns x3 (10.42.0.11-13)

The proxy runs in the test process against the in-process API server and programs
the *node* namespace (``netns=``): real ``nft`` / ``iptables-restore`` / ``conntrack``
there, or, in userspace mode, sockets made inside it.  Each pod namespace runs a tiny
server answering ``<pod name> <client address>`` on TCP 8080 and UDP 5353; clients
are short Python programs run with ``ip netns exec``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pinnace.proxy import start_proxy
from tests.support.processes import stop_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "iptables-restore", "nsenter")),
    reason="needs root, iproute2, nft, iptables and nsenter (network namespaces)")

NODE_IP, CLIENT_IP, GATEWAY = "192.168.77.1", "192.168.77.2", "10.42.0.1"
POD_CIDR = "10.42.0.0/24"
NODE = "node-a"

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 5353))
    while True:
        data, addr = u.recvfrom(2048)
        u.sendto(f"{name} {addr[0]}".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(256)
print("ready", flush=True)
while True:
    c, addr = s.accept()
    with c:
        c.sendall(f"{name} {addr[0]}".encode())
"""

# Connects COUNT times (TCP), or sends COUNT datagrams (UDP: each from a new port, or all
# from SPORT when given); prints the answers, "ERR <exception>" for failures, as JSON.
CLIENT = r"""
import json, socket, sys
host, port, count, proto, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
out = []
for _ in range(count):
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=2) as s:
                data = b""
                while chunk := s.recv(256):
                    data += chunk
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if sport:
                    s.bind(("0.0.0.0", sport))
                s.settimeout(2)
                s.sendto(b"hi", (host, port))
                data = s.recv(256)
        out.append(data.decode())
    except OSError as e:
        out.append("ERR " + type(e).__name__)
print(json.dumps(out))
"""


@dataclass
class Net:
    node: str
    client: str
    pods: dict[str, str]  # pod name -> its namespace
    pod_ips: dict[str, str]  # pod name -> IP
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return [self.node, self.client, *self.pods.values()]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _in(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True,
                          timeout=30)


@contextlib.contextmanager
def make_network(pods: int = 3) -> Iterator[Net]:
    tag = secrets.token_hex(3)
    net = Net(node=f"pn-px-node-{tag}", client=f"pn-px-cli-{tag}",
                  pods={f"pod{i}": f"pn-px-pod{i}-{tag}" for i in range(1, pods + 1)},
                  pod_ips={f"pod{i}": f"10.42.0.{10 + i}" for i in range(1, pods + 1)})
    made: list[str] = []
    try:
        for ns in net.namespaces:
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        node = net.node
        _ip("-n", node, "link", "add", "cni0", "type", "bridge")
        _ip("-n", node, "addr", "add", f"{GATEWAY}/24", "dev", "cni0")
        _ip("-n", node, "link", "set", "cni0", "up")
        for i, (pod, ns) in enumerate(net.pods.items(), 1):
            # Both ends are made inside test namespaces: nothing appears on the host.
            _ip("-n", node, "link", "add", f"vp{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", node, "link", "set", f"vp{i}", "master", "cni0", "up")
            # As the CNI bridge plugin's hairpinMode: where br_netfilter DNATs bridged frames, a
            # pod reaching itself through a Service needs its frame sent back out of its own port.
            _ip("-n", node, "link", "set", f"vp{i}", "type", "bridge_slave", "hairpin", "on")
            _ip("-n", ns, "addr", "add", f"{net.pod_ips[pod]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", GATEWAY)
        _ip("-n", node, "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", net.client)
        _ip("-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "vc")
        _ip("-n", node, "link", "set", "vc", "up")
        _ip("-n", net.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        _ip("-n", net.client, "link", "set", "eth0", "up")
        _ip("-n", net.client, "route", "add", "default", "via", NODE_IP)
        _ip("-n", node, "route", "add", "default", "via", CLIENT_IP)  # the node's way out (and to service IPs)
        _in(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for pod, ns in net.pods.items():
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, pod],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            net.procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield net
    finally:
        for proc in net.procs:
            stop_process(proc, timeout=5)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not any(ns in left for ns in net.namespaces), left


async def connect(ns: str, host: str, port: int, count: int = 1, proto: str = "tcp", sport: int = 0) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host, str(port), str(count), proto, str(sport),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def who(answers: list[str]) -> collections.Counter:
    """How many answers came from each pod (errors count under their own text)."""
    return collections.Counter(a.split()[0] if not a.startswith("ERR") else a for a in answers)


# -- API objects -------------------------------------------------------------------------------


async def create_service(api, name: str, typ: str = "ClusterIP", proto: str = "TCP", port: int = 80,
                         target: int = 8080, **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": typ, "ports": [{"name": "p", "port": port, "targetPort": target, "protocol": proto}],
                     **spec}}
    status, svc = await api.call("POST", "/api/v1/namespaces/default/services", body)
    assert status == 201, svc
    return svc


async def put_slice(api, service: str, pods: dict[str, str], port: int = 8080, proto: str = "TCP",
                    ready: dict[str, bool] | None = None) -> None:
    """Create or replace the one EndpointSlice of ``service`` with ``pods`` (name -> IP)."""
    name = f"{service}-manual"
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": port, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "nodeName": NODE,
                           "conditions": {"ready": (ready or {}).get(pod, True)},
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}
                          for pod, ip in pods.items()]}
    path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    status, old = await api.call("GET", f"{path}/{name}")
    if status == 200:
        body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        status, got = await api.call("PUT", f"{path}/{name}", body)
        assert status == 200, got
    else:
        status, got = await api.call("POST", path, body)
        assert status == 201, got


async def converged(proxy, service: str, endpoints: int, proto: str = "TCP") -> None:
    key = ("default", service, "p", proto)
    await eventually(lambda: proxy.applied.get(key), lambda sp: sp is not None and len(sp.endpoints) == endpoints,
                     timeout=15, what=f"proxy has {service} with {endpoints} endpoints")


async def gone(proxy, service: str, proto: str = "TCP") -> None:
    await eventually(lambda: ("default", service, "p", proto) not in proxy.applied, timeout=15,
                     what=f"proxy dropped {service}")


def balanced(counts: collections.Counter, pods, total: int) -> bool:
    # Random balancing: every pod gets a fair share (>= a third of even), nobody fails.
    return set(counts) == set(pods) and min(counts.values()) >= total / len(pods) / 3


# -- nftables ----------------------------------------------------------------------------------


async def test_nftables_cluster_ip_node_port_affinity_and_removal(api):
    """[sig-network] Services should serve a basic endpoint from pods [Conformance];
    [sig-network] Services should be able to create a functioning NodePort service [Conformance];
    [sig-network] Services should have session affinity work for service with type clusterIP
    [LinuxOnly] [Conformance]"""
    with make_network() as net:
        web = await create_service(api, "web")
        np = await create_service(api, "web-np", "NodePort")
        sticky = await create_service(api, "sticky", sessionAffinity="ClientIP")
        empty = await create_service(api, "empty")
        for name in ("web", "web-np", "sticky"):
            await put_slice(api, name, net.pod_ips)
        proxy = await start_proxy(api.kubeconfig, NODE, "nftables", cluster_cidr="10.42.0.0/16",
                                  pod_cidr=POD_CIDR, netns=net.node, min_sync_period=0.05, sync_timeout=20)
        try:
            for name in ("web", "web-np", "sticky"):
                await converged(proxy, name, 3)
            vip = web["spec"]["clusterIP"]

            # From outside the pod network (routed in through the node): every pod answers,
            # and sees the node (masqueraded), so its reply goes back through the node.
            answers = await connect(net.client, vip, 80, 60)
            counts = who(answers)
            assert balanced(counts, net.pods, 60), counts
            assert {a.split()[1] for a in answers} == {GATEWAY}
            # From the node itself (nat output) and from a pod on the same bridge, itself included
            # (hairpin: a pod reaching itself through its service).
            assert balanced(who(await connect(net.node, vip, 80, 30)), net.pods, 30)
            # Both with and without br_netfilter looking at bridged traffic (a per-namespace switch).
            for nf_call in ("0", "1"):
                _in(net.node, "sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={nf_call}")
                from_pod = await connect(net.pods["pod2"], vip, 80, 45)
                assert balanced(who(from_pod), net.pods, 45), (nf_call, from_pod)

            # NodePort on the node's address, from the outside client.
            node_port = np["spec"]["ports"][0]["nodePort"]
            assert balanced(who(await connect(net.client, NODE_IP, node_port, 45)), net.pods, 45)

            # ClientIP affinity: one client, one pod.
            assert len(who(await connect(net.client, sticky["spec"]["clusterIP"], 80, 20))) == 1

            # No endpoints: rejected at once (a reset), not left to time out.
            assert who(await connect(net.client, empty["spec"]["clusterIP"], 80, 2)) == {
                "ERR ConnectionRefusedError": 2}

            # An endpoint turning unready gets no more traffic.
            await put_slice(api, "web", net.pod_ips, ready={"pod1": False})
            await converged(proxy, "web", 2)
            assert set(who(await connect(net.client, vip, 80, 30))) == {"pod2", "pod3"}

            # Deleting the Service removes its rules: its chains go (after the grace period).
            svc_chains = lambda: [c for c in _chains(net.node) if "-default/web/" in c]  # noqa: E731
            assert svc_chains()
            status, _ = await api.call("DELETE", "/api/v1/namespaces/default/services/web")
            assert status == 200
            await gone(proxy, "web")
            await eventually(svc_chains, lambda c: c == [], timeout=10, what="web's chains deleted")
            assert "ERR" in who(await connect(net.client, vip, 80, 1, proto="tcp")).most_common(1)[0][0]
        finally:
            await proxy.stop()
        assert _in(net.node, "nft", "list", "ruleset").stdout.strip() == ""  # nothing left behind


def _chains(ns: str) -> list[str]:
    out = _in(ns, "nft", "-j", "list", "chains", "ip").stdout
    return [i["chain"]["name"] for i in json.loads(out or "{}").get("nftables", []) if "chain" in i]


async def test_nftables_udp_flows_move_off_a_removed_endpoint(api):
    """Stale UDP conntrack entries are flushed: a client that keeps its source port (one
    conntrack flow) is moved to another pod when its pod leaves the endpoints."""
    with make_network() as net:
        dns = await create_service(api, "dns", proto="UDP", port=53, target=5353)
        await put_slice(api, "dns", net.pod_ips, port=5353, proto="UDP")
        proxy = await start_proxy(api.kubeconfig, NODE, "nftables", pod_cidr=POD_CIDR, netns=net.node,
                                  min_sync_period=0.05, sync_timeout=20)
        try:
            await converged(proxy, "dns", 3, "UDP")
            vip = dns["spec"]["clusterIP"]
            assert balanced(who(await connect(net.client, vip, 53, 45, "udp")), net.pods, 45)
            first = who(await connect(net.client, vip, 53, 5, "udp", sport=40000))
            assert len(first) == 1  # one flow, one pod
            pod = next(iter(first))
            await put_slice(api, "dns", {p: ip for p, ip in net.pod_ips.items() if p != pod}, port=5353,
                            proto="UDP")
            await converged(proxy, "dns", 2, "UDP")
            # The pod still runs: only the flushed conntrack entry makes the flow move.
            later = who(await connect(net.client, vip, 53, 5, "udp", sport=40000))
            assert len(later) == 1 and pod not in later, (pod, later)
        finally:
            await proxy.stop()


# -- iptables ----------------------------------------------------------------------------------


async def test_iptables_mode(api):
    """[sig-network] Services should serve a basic endpoint from pods [Conformance];
    [sig-network] Services should be able to create a functioning NodePort service [Conformance]"""
    with make_network() as net:
        web = await create_service(api, "web", "NodePort", sessionAffinity="None")
        sticky = await create_service(api, "sticky", sessionAffinity="ClientIP")
        empty = await create_service(api, "empty")
        await put_slice(api, "web", net.pod_ips)
        await put_slice(api, "sticky", net.pod_ips)
        # The pod CIDR for the bridge masquerade comes from this node's Node object.
        status, body = await api.call("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}})
        assert status == 201, body
        proxy = await start_proxy(api.kubeconfig, NODE, "iptables", netns=net.node, min_sync_period=0.05,
                                  sync_timeout=20)
        try:
            await converged(proxy, "web", 3)
            await converged(proxy, "sticky", 3)
            await eventually(lambda: _in(net.node, "iptables-save", "-t", "nat").stdout,
                             lambda out: f"-s {POD_CIDR} -o cni0 -m conntrack --ctstate DNAT" in out,
                             what="the bridge masquerade for the Node's pod CIDR")
            vip = web["spec"]["clusterIP"]
            assert balanced(who(await connect(net.client, vip, 80, 60)), net.pods, 60)
            assert balanced(who(await connect(net.pods["pod1"], vip, 80, 45)), net.pods, 45)  # incl. hairpin
            node_port = web["spec"]["ports"][0]["nodePort"]
            assert balanced(who(await connect(net.client, NODE_IP, node_port, 45)), net.pods, 45)
            assert len(who(await connect(net.client, sticky["spec"]["clusterIP"], 80, 20))) == 1
            refused = {"ERR ConnectionRefusedError": 1}
            assert who(await connect(net.client, empty["spec"]["clusterIP"], 80, 1)) == refused
            status, _ = await api.call("DELETE", "/api/v1/namespaces/default/services/sticky")
            assert status == 200
            await gone(proxy, "sticky")
            assert sticky["spec"]["clusterIP"] not in _in(net.node, "iptables-save", "-t", "nat").stdout
        finally:
            await proxy.stop()
        saved = _in(net.node, "iptables-save").stdout
        assert "PINNACE" not in saved and "pinnace" not in saved, saved


# -- userspace ---------------------------------------------------------------------------------


async def test_userspace_mode(api):
    """[sig-network] Services should serve a basic endpoint from pods [Conformance];
    [sig-network] Services should have session affinity work for service with type clusterIP
    [LinuxOnly] [Conformance]"""
    with make_network() as net:
        web = await create_service(api, "web", "NodePort")
        sticky = await create_service(api, "sticky", sessionAffinity="ClientIP")
        dns = await create_service(api, "dns", proto="UDP", port=53, target=5353)
        empty = await create_service(api, "empty")
        await put_slice(api, "web", net.pod_ips)
        await put_slice(api, "sticky", net.pod_ips)
        await put_slice(api, "dns", net.pod_ips, port=5353, proto="UDP")
        proxy = await start_proxy(api.kubeconfig, NODE, "userspace", netns=net.node, node_ips=[NODE_IP],
                                  min_sync_period=0.05, sync_timeout=20)
        try:
            for name, proto in (("web", "TCP"), ("sticky", "TCP"), ("dns", "UDP")):
                await converged(proxy, name, 3, proto)
            vip = web["spec"]["clusterIP"]
            lo = _in(net.node, "ip", "-4", "-o", "addr", "show", "dev", "lo").stdout
            assert f"{vip}/32" in lo and "lo:pinnace" in lo
            # Round robin: exactly even, from the node itself and from a client routed in.
            assert who(await connect(net.node, vip, 80, 30)) == {"pod1": 10, "pod2": 10, "pod3": 10}
            assert balanced(who(await connect(net.client, vip, 80, 30)), net.pods, 30)
            node_port = web["spec"]["ports"][0]["nodePort"]
            assert balanced(who(await connect(net.client, NODE_IP, node_port, 30)), net.pods, 30)
            assert len(who(await connect(net.client, sticky["spec"]["clusterIP"], 80, 20))) == 1
            assert balanced(who(await connect(net.client, dns["spec"]["clusterIP"], 53, 30, "udp")), net.pods, 30)
            refused = {"ERR ConnectionRefusedError": 1}
            assert who(await connect(net.node, empty["spec"]["clusterIP"], 80, 1)) == refused
            status, _ = await api.call("DELETE", "/api/v1/namespaces/default/services/web")
            assert status == 200
            await gone(proxy, "web")
            assert f"{vip}/32" not in _in(net.node, "ip", "-4", "-o", "addr", "show", "dev", "lo").stdout
            assert "ERR" in next(iter(who(await connect(net.node, NODE_IP, node_port, 1))))
        finally:
            await proxy.stop()
        assert "pinnace" not in _in(net.node, "ip", "-4", "-o", "addr", "show", "dev", "lo").stdout
