"""Three real nodes on a test network: pod IPs through CNI, Services through kube-proxy
(nftables), cluster DNS, host-gw routes between nodes -- driven through the real kubectl.

Each node is a network namespace made by the test (tests/support/netns.py) with one
veth on a test bridge that lives in a namespace of its own; ``node-1`` runs ``pinnace
server`` (control plane, DNS and its own agent), ``node-2`` and ``node-3`` run ``pinnace
agent`` joined by token, and a fourth namespace, ``client``, plays a machine outside the
cluster.  Pods are real runc containers.  Afterwards the host's links, addresses,
routes, firewall and namespaces are checked to be exactly as before.

Conformance: "[sig-network] Services should serve a basic endpoint from pods",
"[sig-network] Services should be able to create a functioning NodePort service",
"[sig-network] DNS should provide DNS for services", "[sig-network] DNS should provide
DNS for ExternalName services", "[sig-network] DNS should provide DNS for the cluster",
"[sig-network] Networking Granular Checks: Pods should function for intra-pod
communication: http", "[sig-network] Services should provide secure master service".
"""

from __future__ import annotations

import collections
import ipaddress
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.kubectl import Kubectl
from tests.support.netcluster import IMAGE, Cluster, network_cluster, skip_reason
from tests.support.waiting import wait_until

_skip = skip_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_skip), reason=str(_skip))]


def apply(k: Kubectl, *objs: dict) -> None:
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


# Serves its pod name at / and, through CGI, the address the request came from at /cgi-bin/ip.
WEB_SCRIPT = ("mkdir -p /www/cgi-bin && hostname > /www/index.html && "
              "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
              "chmod +x /www/cgi-bin/ip && touch /tmp/ready && exec httpd -f -p 8080 -h /www")


def web_pod_spec(**extra) -> dict:
    return {"terminationGracePeriodSeconds": 2,
            "containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", WEB_SCRIPT], "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                                               "periodSeconds": 1, "failureThreshold": 1}}],
            **extra}


def pod_on(name: str, node: str, spec: dict, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {**spec, "nodeName": node}}


def client_pod(name: str, node: str) -> dict:
    return pod_on(name, node, {"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]})


def wait_running(k: Kubectl, *names: str) -> dict[str, dict]:
    def pods() -> dict[str, dict]:
        return {p["metadata"]["name"]: p for p in k.json("get", "pods")["items"] if p["metadata"]["name"] in names}

    def ready(ps: dict[str, dict]) -> bool:
        return len(ps) == len(names) and all(
            p["status"].get("podIP") and any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in p["status"].get("conditions", [])) for p in ps.values())

    return wait_until(pods, ready, timeout=90, what=f"pods {names} ready with IPs")


def wget(k: Kubectl, pod: str, url: str, check: bool = True) -> str:
    # busybox's own `timeout`: Debian's static busybox wget crashes on its -T option.
    proc = k.run("exec", pod, "--", "timeout", "5", "wget", "-qO-", url, check=check, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    """The same cluster with kube-proxy in nftables mode, then in its iptables fallback."""
    with network_cluster(tmp_path_factory.mktemp(f"network-{request.param}"), proxy_mode=request.param) as c:
        yield c


@pytest.fixture(scope="module")
def clients(cluster: Cluster) -> dict[str, str]:
    """One idle busybox pod per node, to run wget and nslookup from."""
    names = {"node-1": "client-1", "node-2": "client-2", "node-3": "client-3"}
    apply(cluster.k, *(client_pod(pod, node) for node, pod in names.items()))
    wait_until(lambda: cluster.k.json("get", "pods")["items"],
               lambda ps: sum(1 for p in ps if p["metadata"]["name"] in names.values()
                              and p["status"].get("phase") == "Running") == 3, timeout=90, what="client pods")
    return names


def test_pod_ips_come_from_each_nodes_pod_cidr(cluster: Cluster, clients: dict[str, str]) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.k.json("get", "nodes")["items"]}
    cidrs = {name: n["spec"]["podCIDR"] for name, n in nodes.items()}
    assert len(set(cidrs.values())) == 3
    for node, pod in clients.items():
        ip = cluster.k.json("get", "pod", pod)["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[node]), (pod, ip, cidrs[node])


def test_pod_to_pod_across_nodes(cluster: Cluster, clients: dict[str, str]) -> None:
    """Intra-pod communication across nodes, by pod IP, over the host-gw routes."""
    k = cluster.k
    apply(k, pod_on("web-on-3", "node-3", web_pod_spec()))
    pods = wait_running(k, "web-on-3")
    ip = pods["web-on-3"]["status"]["podIP"]
    assert wget(k, clients["node-2"], f"http://{ip}:8080/") == "web-on-3"
    assert wget(k, clients["node-1"], f"http://{ip}:8080/") == "web-on-3"
    # Without NAT: the pod on node-3 sees the other pod's own address.
    client_ip = k.json("get", "pod", clients["node-2"])["status"]["podIP"]
    seen = wget(k, clients["node-2"], f"http://{ip}:8080/cgi-bin/ip")  # httpd listens on v6: [::ffff:a.b.c.d]
    assert seen.removeprefix("[::ffff:").removesuffix("]") == client_ip
    k("delete", "pod", "web-on-3", "--wait=true")


def _web_deployment(name: str, replicas: int = 3) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         **web_pod_spec(),
                         "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                        "whenUnsatisfiable": "DoNotSchedule",
                                                        "labelSelector": {"matchLabels": {"app": name}}}]}}}}


def _service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                     **spec}}


def _replica_names(k: Kubectl, app: str) -> set[str]:
    return {p["metadata"]["name"] for p in k.json("get", "pods", "-l", f"app={app}")["items"]}


def _ready_replicas(k: Kubectl, app: str, count: int) -> dict[str, dict]:
    def pods() -> dict[str, dict]:
        return {p["metadata"]["name"]: p for p in k.json("get", "pods", "-l", f"app={app}")["items"]}

    return wait_until(pods, lambda ps: len(ps) == count and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        for p in ps.values()), timeout=120, what=f"{count} ready replicas of {app}")


def _endpoint_ips(k: Kubectl, name: str) -> set[str]:
    ep = k.json("get", "endpoints", name)
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def test_clusterip_service_by_dns_name_reaches_every_replica(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, _web_deployment("web"), _service("web"))
    pods = _ready_replicas(k, "web", 3)
    assert {p["spec"]["nodeName"] for p in pods.values()} == {"node-1", "node-2", "node-3"}
    wait_until(lambda: _endpoint_ips(k, "web"), lambda ips: len(ips) == 3, what="3 endpoints")
    url = "http://web.default.svc.cluster.local/"
    for client in (clients["node-1"], clients["node-2"]):  # each node's proxy syncs on its own
        wait_until(lambda c=client: wget(k, c, url, check=False), what="the service answering")
    seen = collections.Counter(wget(k, clients["node-2"], url) for _ in range(30))
    assert set(seen) == set(pods), seen
    # The short name through the search path, from another node.
    assert wget(k, clients["node-1"], "http://web/") in pods


def test_nodeport_from_outside_the_cluster(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, _web_deployment("np"), _service("np", type="NodePort"))
    pods = _ready_replicas(k, "np", 3)
    wait_until(lambda: _endpoint_ips(k, "np"), lambda ips: len(ips) == 3, what="3 endpoints")
    node_port = k.json("get", "service", "np")["spec"]["ports"][0]["nodePort"]
    outside = cluster.machine("client")

    def fetch(node: str) -> str:
        url = f"http://{cluster.machine(node).ip}:{node_port}/"
        proc = outside.run("busybox", "timeout", "5", "busybox", "wget", "-qO-", url, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    seen = set()
    for node in ("node-1", "node-2", "node-3"):
        # Each node's proxy programs the port on its own sync after the endpoints change.
        seen.add(wait_until(lambda node=node: fetch(node), timeout=20, what=f"the NodePort on {node}"))
        seen.update(fetch(node) for _ in range(5))
    assert seen <= set(pods) and len(seen) >= 2, seen


def test_unready_pod_leaves_endpoints_and_gets_no_traffic(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, _web_deployment("flaky"), _service("flaky"))
    pods = _ready_replicas(k, "flaky", 3)
    wait_until(lambda: _endpoint_ips(k, "flaky"), lambda ips: len(ips) == 3, what="3 endpoints")
    wait_until(lambda: wget(k, clients["node-1"], "http://flaky/", check=False), what="the service answering")
    victim = sorted(pods)[0]
    victim_ip = pods[victim]["status"]["podIP"]
    k("exec", victim, "--", "rm", "/tmp/ready")
    wait_until(lambda: _endpoint_ips(k, "flaky"), lambda ips: victim_ip not in ips and len(ips) == 2,
               what="the unready pod out of the endpoints")
    ep = k.json("get", "endpoints", "flaky")
    assert victim_ip in {a["ip"] for s in ep["subsets"] for a in s.get("notReadyAddresses") or []}
    time.sleep(2)  # the proxies' sync
    seen = collections.Counter(wget(k, clients["node-1"], "http://flaky/") for _ in range(20))
    assert victim not in seen and set(seen) <= set(pods), seen


def test_headless_service_dns_returns_every_pod(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, _web_deployment("hl"), _service("hl", clusterIP="None"))
    pods = _ready_replicas(k, "hl", 3)
    ips = {p["status"]["podIP"] for p in pods.values()}

    def answer() -> set[str]:
        out = k.run("exec", clients["node-3"], "--", "nslookup", "hl.default.svc.cluster.local", check=False).stdout
        return {line.split()[-1] for line in out.splitlines() if line.startswith("Address") and "#" not in line
                and ":53" not in line}

    wait_until(answer, lambda got: ips <= got, timeout=30, what="every pod IP in the headless answer")


def test_externalname_service_is_a_cname(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
              "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}})
    out = wait_until(lambda: k.run("exec", clients["node-2"], "--", "nslookup", "-type=cname",
                                   "ext.default.svc.cluster.local", check=False).stdout,
                     lambda o: "canonical name" in o, timeout=30, what="a CNAME answer")
    assert "web.default.svc.cluster.local" in out


IN_CLUSTER_CLIENT = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
ctx = ssl.create_default_context(cafile=sa + "ca.crt")
url = f"https://kubernetes.default.svc:{os.environ['KUBERNETES_SERVICE_PORT']}/api/v1/namespaces/default/pods"
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "token").read()})
print(json.dumps([p["metadata"]["name"] for p in json.load(urllib.request.urlopen(req, context=ctx))["items"]]))
"""


def test_pods_reach_the_api_server_through_the_kubernetes_service(cluster: Cluster) -> None:
    """In-cluster config as client libraries use it: KUBERNETES_SERVICE_HOST/PORT, the
    service-account token and CA, and the kubernetes.default.svc name (DNS, the Service's
    rules, the serving certificate's SAN).  The client is the host's Python, mounted
    read-only by hostPath: busybox's TLS cannot talk to an ECDSA certificate."""
    k = cluster.k
    mounts = {"usr": "/usr", "lib": "/lib", "lib64": "/lib64"}
    spec = {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"],
        "volumeMounts": [{"name": n, "mountPath": p, "readOnly": True} for n, p in mounts.items()]}],
        "volumes": [{"name": n, "hostPath": {"path": p}} for n, p in mounts.items()]}
    apply(k, pod_on("in-cluster", "node-3", spec))
    wait_running(k, "in-cluster")
    env = k("exec", "in-cluster", "--", "env")
    assert "KUBERNETES_SERVICE_HOST=10.43.0.1" in env and "KUBERNETES_SERVICE_PORT=443" in env
    names = json.loads(k("exec", "in-cluster", "--", "/usr/bin/python3", "-c", IN_CLUSTER_CLIENT))
    assert "in-cluster" in names
    k("delete", "pod", "in-cluster", "--wait=true")


def test_deleting_a_service_removes_its_rules(cluster: Cluster, clients: dict[str, str]) -> None:
    k = cluster.k
    apply(k, _web_deployment("gone", replicas=1), _service("gone"))
    _ready_replicas(k, "gone", 1)
    ip = k.json("get", "service", "gone")["spec"]["clusterIP"]
    node2 = cluster.machine("node-2")

    def rules() -> str:
        return node2.run("nft", "list", "ruleset").stdout

    wait_until(rules, lambda r: ip in r, what="the service's rules on node-2")
    # Its endpoint follows once the pod is ready (until then the rules reject).
    wait_until(lambda: wget(k, clients["node-2"], f"http://{ip}/", check=False), what="the service answering")
    k("delete", "service", "gone", "--wait=true")
    wait_until(rules, lambda r: ip not in r, what="the service's rules gone from node-2")
    assert wget(k, clients["node-2"], f"http://{ip}/", check=False) == ""


def test_port_forward_reaches_the_pods_own_localhost(cluster: Cluster) -> None:
    """kubectl port-forward connects inside the pod's network namespace: a server listening
    only on the pod's 127.0.0.1 is reached (as with upstream's kubelet)."""
    k = cluster.k
    script = "mkdir -p /www && echo pod-localhost > /www/index.html && exec httpd -f -p 127.0.0.1:8081 -h /www"
    apply(k, pod_on("pf", "node-2", {"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script]}]}))
    wait_until(lambda: k.json("get", "pod", "pf")["status"].get("phase"), lambda p: p == "Running", timeout=60,
               what="pf running")
    forward = subprocess.Popen([k.binary, "--kubeconfig", str(k.kubeconfig), "port-forward", "pod/pf", ":8081"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:LOCAL -> 8081"
        local = int(line.split("127.0.0.1:", 1)[1].split()[0])
        body = wait_until(lambda: _get(f"http://127.0.0.1:{local}/"), timeout=20, what="a forwarded answer")
        assert body == "pod-localhost\n"
    finally:
        forward.terminate()
        forward.wait(10)
    k("delete", "pod", "pf", "--wait=true")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""
