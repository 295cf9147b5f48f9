"""Pod networking with real runc containers and the real CNI plugins (bridge, host-local,
loopback, portmap): a network namespace per pod sandbox, pod-to-pod traffic, hostPort, CNI
CHECK, release on removal; host-gw routes; the kubelet waiting for its podCIDR.

NETWORK SAFETY: every bridge, veth, address, route and rule here lives in a network namespace
the test makes and deletes.  The test process itself stays on the host's network, so the code
under test runs in a child, ``nsenter --net=/run/netns/<ns> python -m tests.integration.test_cni
SCENARIO DIR``, which prints what it observed as JSON; the test asserts on that.  ``nsenter``
and not ``ip netns exec``: the latter remounts /sys for the namespace, which hides
/sys/fs/cgroup, and runc needs it.

Needs root, runc, busybox-static, a writable cgroup fs, nsenter/unshare and the CNI plugins
(containernetworking-plugins); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinnace.kubelet import cni
from pinnace.kubelet.mounts import mounts_under
from tests.support.runc import remove_runc_containers, runc_skip_reason

ROOT = Path(__file__).resolve().parents[2]
POD_CIDR = "10.42.77.0/24"
GATEWAY = "10.42.77.1"
HOST_PORT = 18080


def _skip_reason() -> str | None:
    reason = runc_skip_reason()
    if reason:
        return reason
    missing = cni.missing_plugins(cni.DEFAULT_BIN_DIRS)
    if missing:
        return f"CNI plugins {missing} not installed (apt-get install containernetworking-plugins)"
    for tool in ("nsenter", "unshare", "ip", "iptables-save"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


_SKIP = _skip_reason()
pytestmark = [pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP)), pytest.mark.timeout(300)]


# ---- the parent: namespaces and the child process --------------------------------------------


def _links(ns: str) -> list[str]:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(link["ifname"] for link in json.loads(out or "[]"))


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[str]:
    """A network namespace made for the test (and everything in it deleted afterwards)."""
    name = f"pn-cni-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        remove_runc_containers(tmp_path)  # also unmounts pinned pod namespaces left under tmp_path
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def run_child(ns: str, scenario: str, base: Path, timeout: float = 240) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m", "tests.integration.test_cni",
                           scenario, str(base)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (base / f"{scenario}.log").write_text(proc.stderr)
    assert proc.returncode == 0, f"{scenario} failed:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pod_sandboxes_get_their_own_network_and_reach_each_other(netns: str, tmp_path: Path) -> None:
    """[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http
    [NodeConformance] [Conformance] -- on one node; plus hostPort, CNI CHECK and release on removal."""
    obs = run_child(netns, "runtime", tmp_path)
    web_ip, client_ip = obs["ips"]
    assert web_ip != client_ip
    assert all(ip.startswith("10.42.77.") and ip != GATEWAY for ip in obs["ips"])
    # Each sandbox has its own pinned namespace; the pod's containers are in it, with eth0 = the pod IP.
    assert obs["netns"] == [str(tmp_path / "cni" / "netns" / sid) for sid in obs["ids"]]
    assert obs["container_netns"] == f"net:[{obs['netns_inodes'][0]}]"
    assert f"inet {web_ip}/24" in obs["eth0"]
    assert f"default via {GATEWAY} dev eth0" in obs["routes"]
    assert obs["lo"].startswith("1: lo: <LOOPBACK,UP")  # the loopback plugin brought lo up
    # DNS and hosts files from the sandbox config.
    assert obs["resolv"] == ("search default.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\n"
                             "options ndots:5\n")
    assert f"{web_ip}\tweb.sub.default.svc.cluster.local\tweb\n" in obs["hosts"]
    assert obs["hosts"].endswith("# Entries added by HostAliases.\n123.45.67.89\tfoo.remote\tbar.remote\n")

    # Pod to pod, and the hostPort from a pod, from the node's address and from the node's loopback.
    assert obs["pod_to_pod"] == "web\n"
    assert obs["hostport_from_pod"] == "web\n"
    assert obs["hostport_from_node"] == "web\n"
    assert obs["hostport_from_loopback"] == "web\n"

    # A new runtime over the same state (a restarted kubelet) finds the same sandboxes and networks.
    assert sorted(map(tuple, obs["adopted"])) == sorted(
        (sid, ip, path, True) for sid, ip, path in zip(obs["ids"], obs["ips"], obs["netns"], strict=True))
    assert obs["check_ok"] == [None, None]
    # ... and CHECK notices a pod interface taken off the bridge.
    assert "veth" in (obs["check_broken"] or "") and "cni0" in obs["check_broken"]
    # Without the pinned file the sandbox is not ready and CHECK says why; removal still releases it.
    assert obs["unpinned_ready"] is False
    assert "is gone" in obs["unpinned_check"]

    # Removal released everything: no namespace file, veth, address allocation or hostPort rule.
    after = obs["after"]
    assert after["netns_files"] == [] and after["sandbox_dirs"] == [] and after["mounts"] == []
    assert after["veths"] == []
    assert after["allocations"] == []
    assert after["iptables_mentions"] == 0
    assert _links(netns) == ["cni0", "lo"]  # the bridge stays, as with any CNI bridge network


def test_host_gw_routes_follow_the_nodes(netns: str, tmp_path: Path) -> None:
    """Routes to other nodes' podCIDRs via their InternalIPs, tagged with our protocol: added,
    changed, removed when stale; routes that are not ours are left alone."""
    obs = run_child(netns, "routes", tmp_path)
    assert obs["first"] == {"10.42.1.0/24": "192.168.50.2", "10.42.2.0/24": "192.168.50.3"}
    assert obs["first_problems"] and "10.99.0.0/24" in obs["first_problems"][0]  # a foreign route for it exists
    assert obs["second"] == {"10.42.2.0/24": "192.168.50.4"}
    assert obs["second_problems"] == []
    routes = obs["table"]
    assert "10.42.1.0/24" not in routes  # stale: removed
    assert "10.42.2.0/24 via 192.168.50.4 dev pn-a proto 147" in routes
    assert "10.99.0.0/24 via 192.168.50.9 dev pn-a" in routes  # someone else's: untouched
    assert "10.98.0.0/24 via 192.168.50.8 dev pn-a proto static" in routes
    assert "192.168.50.0/24 dev pn-a proto kernel" in routes


def test_agent_waits_for_its_pod_cidr_then_runs_pods_with_cluster_dns_and_service_env(netns: str,
                                                                                      tmp_path: Path) -> None:
    """A node agent on the runc runtime with ``pod_network="cni"`` against an API server, both in
    the test's namespace.  [sig-node] Pods should contain environment variables for services
    [NodeConformance] [Conformance]; [sig-network] DNS should provide /etc/hosts entries for the cluster."""
    obs = run_child(netns, "kubelet", tmp_path)
    assert obs["before_cidr"]["phase"] == "Pending" and "podIP" not in obs["before_cidr"]
    assert "NetworkNotReady" in obs["events"]
    assert obs["conflist_before_cidr"] is False
    assert obs["pod_ip"].startswith("10.42.5.") and obs["pod_ip"] != "10.42.5.1"
    assert obs["conflist"]["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.42.5.0/24"}]]
    assert obs["ip_forward"] == "1"
    assert obs["route_added"] == "10.42.9.0/24 via 192.168.60.2 dev pn-node proto 147"
    assert obs["route_after_node_deleted"] == ""
    resolv = obs["resolv"].splitlines()
    assert resolv[0].startswith("search default.svc.cluster.local svc.cluster.local cluster.local")
    assert resolv[1:] == ["nameserver 10.43.0.10", "options ndots:5"]
    assert f"{obs['pod_ip']}\tweb.sub.default.svc.cluster.local\tweb" in obs["hosts"].splitlines()
    env = obs["env"]
    ip = obs["fooservice_ip"]
    assert env["FOOSERVICE_SERVICE_HOST"] == ip and env["FOOSERVICE_SERVICE_PORT"] == "8765"
    assert env["FOOSERVICE_PORT"] == f"tcp://{ip}:8765"
    assert env["FOOSERVICE_PORT_8765_TCP"] == f"tcp://{ip}:8765"
    assert env["FOOSERVICE_PORT_8765_TCP_PROTO"] == "tcp"
    assert env["FOOSERVICE_PORT_8765_TCP_PORT"] == "8765"
    assert env["FOOSERVICE_PORT_8765_TCP_ADDR"] == ip
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert "HEADLESS_SERVICE_HOST" not in env
    assert obs["hostport"] == "web\n"
    assert obs["adopted_same_container"] is True and obs["pod_ip_after_restart"] == obs["pod_ip"]
    assert obs["hostport_after_restart"] == "web\n"
    assert "SandboxChanged" not in obs["events_after_restart"]
    assert obs["after_delete"] == {"netns_files": [], "veths": []}


# ---- the child: runs inside the namespace ------------------------------------------------------


def _sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=check).stdout


def _read(path: str | Path) -> str:
    with open(path) as f:
        return f.read()


def _veths() -> list[str]:
    return sorted(link["ifname"] for link in json.loads(_sh("ip", "-j", "link", "show") or "[]")
                  if link["ifname"].startswith("veth"))


def _http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError as e:
        return f"error: {e}"


async def _retry(fn: Any, ok: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def _runtime_scenario(base: Path) -> dict[str, Any]:
    from pinnace.images.service import ImageService
    from pinnace.kubelet.network import CniNetwork
    from pinnace.kubelet.runtime.base import LABEL_CONTAINER_NAME, LABEL_POD_UID, ContainerConfig, SandboxConfig
    from pinnace.kubelet.runtime.runc import cgroup_dirs, cgroup_version
    from pinnace.kubelet.runtime.runc_runtime import RuncRuntime
    from tests.support.images import IMAGE, busybox_archive

    _sh("ip", "link", "set", "lo", "up")
    images = ImageService(base / "images")
    await images.import_archive(busybox_archive(base / "busybox.tar"))
    network = CniNetwork(base / "cni")
    network.configure(POD_CIDR)
    cgroup_parent = ("/" if cgroup_version() == 2 else "") + f"pinnace-test-{uuid.uuid4().hex[:8]}"
    rt = RuncRuntime(base / "state", images, host_ip=GATEWAY, cgroup_parent=cgroup_parent, network=network)
    sandboxes: list[Any] = []
    obs: dict[str, Any] = {}

    async def sandbox(name: str, **kw: Any) -> Any:
        uid = str(uuid.uuid4())
        sb = await rt.run_pod_sandbox(SandboxConfig(pod_uid=uid, name=name, namespace="default", hostname=name,
                                                    labels={LABEL_POD_UID: uid}, **kw))
        sandboxes.append(sb)
        return sb

    async def run(sb: Any, name: str, args: list[str]) -> str:
        cid = await rt.create_container(sb, ContainerConfig(
            name=name, image=IMAGE, image_ref=IMAGE, args=args, env={"PATH": "/bin"},
            log_path=base / "logs" / name / "0.log",
            labels={LABEL_POD_UID: sb.config.pod_uid, LABEL_CONTAINER_NAME: name}))
        await rt.start_container(cid)
        return cid

    async def sh(cid: str, script: str) -> str:
        res = await rt.exec_sync(cid, ["sh", "-c", script], 15)
        return res.stdout.decode() + res.stderr.decode()

    async def http_from(cid: str, host: str, port: int) -> str:
        """The body of GET / from inside a container (busybox nc: the static busybox's wget
        crashes resolving a remote address in a rootfs without NSS libraries)."""
        res = await rt.exec_sync(cid, ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}"], 15)
        head, _, body = res.stdout.decode(errors="replace").partition("\r\n\r\n")
        return body if head.startswith("HTTP/1.") else f"error: {head!r} {res.stderr.decode(errors='replace')}"

    try:
        dns = {"servers": ["10.43.0.10"], "searches": ["default.svc.cluster.local", "svc.cluster.local"],
               "options": ["ndots:5"]}
        web = await sandbox("web", dns=dns, domain="sub.default.svc.cluster.local",
                            host_aliases=[{"ip": "123.45.67.89", "hostnames": ["foo.remote", "bar.remote"]}],
                            port_mappings=[{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}])
        client = await sandbox("client")
        obs["ids"] = [web.id, client.id]
        obs["ips"] = [web.ip, client.ip]
        obs["netns"] = [web.netns_path, client.netns_path]
        obs["netns_inodes"] = [os.stat(p).st_ino for p in obs["netns"]]
        httpd = await run(web, "httpd", ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && "
                                                     "exec httpd -f -p 80 -h /tmp/www"])
        idle = await run(client, "idle", ["sleep", "3600"])
        obs["container_netns"] = (await sh(httpd, "readlink /proc/self/ns/net")).strip()
        obs["eth0"] = await sh(httpd, "ip -4 -o addr show eth0")
        obs["routes"] = await sh(httpd, "ip route")
        obs["lo"] = await sh(httpd, "ip -o link show lo")
        obs["resolv"] = await sh(httpd, "cat /etc/resolv.conf")
        obs["hosts"] = await sh(httpd, "cat /etc/hosts")
        obs["pod_to_pod"] = await _retry(lambda: http_from(idle, web.ip, 80), lambda v: v == "web\n")
        obs["hostport_from_pod"] = await http_from(idle, GATEWAY, HOST_PORT)
        obs["hostport_from_node"] = await asyncio.to_thread(_http_get, f"http://{GATEWAY}:{HOST_PORT}/")
        obs["hostport_from_loopback"] = await asyncio.to_thread(_http_get, f"http://127.0.0.1:{HOST_PORT}/")

        # A restarted kubelet's runtime over the same state.
        again = RuncRuntime(base / "state", images, host_ip=GATEWAY, cgroup_parent=cgroup_parent, network=network)
        listed = await again.list_pod_sandboxes()
        obs["adopted"] = [(s.id, s.ip, s.netns_path, s.ready) for s in listed]
        obs["check_ok"] = [await again.check_pod_sandbox_network(s) for s in listed]
        record = json.loads((base / "state" / "sandboxes" / client.id / "sandbox.json").read_text())
        host_veth = next(i["name"] for i in record["network"]["result"]["interfaces"]
                         if not i.get("sandbox") and i["name"] != cni.BRIDGE_NAME)
        _sh("ip", "link", "set", host_veth, "nomaster")
        obs["check_broken"] = await again.check_pod_sandbox_network(client)

        # The pinned file gone (a reboot; a kubelet started anew by `ip netns exec` gets its own
        # mount namespace): the sandbox is not ready, so the kubelet replaces it.
        _sh("umount", "-l", web.netns_path)
        third = RuncRuntime(base / "state", images, host_ip=GATEWAY, cgroup_parent=cgroup_parent, network=network)
        moved = next(s for s in await third.list_pod_sandboxes() if s.id == web.id)
        obs["unpinned_ready"] = moved.ready
        obs["unpinned_check"] = await third.check_pod_sandbox_network(moved)

        for sb in list(sandboxes):
            await rt.remove_pod_sandbox(sb)
            sandboxes.remove(sb)
        allocations = base / "cni" / "networks" / cni.NETWORK_NAME
        obs["after"] = {
            "netns_files": sorted(os.listdir(base / "cni" / "netns")),
            "sandbox_dirs": sorted(os.listdir(base / "state" / "sandboxes")),
            "mounts": mounts_under(base),
            "veths": _veths(),
            "allocations": sorted(n for n in os.listdir(allocations) if n[0].isdigit()),
            "iptables_mentions": sum(_sh("iptables-save").count(sid) for sid in obs["ids"]),
        }
    finally:
        for sb in sandboxes:
            with contextlib.suppress(Exception):
                await rt.remove_pod_sandbox(sb)
        for st in await rt.list_containers():
            with contextlib.suppress(Exception):
                await rt.remove_container(st.id)
        for d in cgroup_dirs(cgroup_parent):
            with contextlib.suppress(OSError):
                for child in d.iterdir():
                    if child.is_dir():
                        child.rmdir()
                d.rmdir()
        await images.close()
    return obs


async def _routes_scenario(base: Path) -> dict[str, Any]:
    from pinnace.kubelet.network import HostGwRoutes, desired_routes

    _sh("ip", "link", "add", "pn-a", "type", "veth", "peer", "name", "pn-b")
    _sh("ip", "addr", "add", "192.168.50.1/24", "dev", "pn-a")
    _sh("ip", "link", "set", "pn-a", "up")
    _sh("ip", "link", "set", "pn-b", "up")
    _sh("ip", "route", "add", "10.99.0.0/24", "via", "192.168.50.9")  # someone else's, same destination as a node
    _sh("ip", "route", "add", "10.98.0.0/24", "via", "192.168.50.8", "proto", "static")

    def node(name: str, ip: str | None, cidr: str | None) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}

    routes = HostGwRoutes()
    nodes = [node("me", "192.168.50.1", "10.42.0.0/24"), node("a", "192.168.50.2", "10.42.1.0/24"),
             node("b", "192.168.50.3", "10.42.2.0/24"), node("no-cidr", "192.168.50.5", None),
             node("no-ip", None, "10.42.3.0/24"), node("squatter", "192.168.50.6", "10.99.0.0/24")]
    obs: dict[str, Any] = {}
    obs["first_problems"] = await routes.sync(desired_routes(nodes, "me"))
    obs["first"] = await routes.ours()
    nodes = [node("me", "192.168.50.1", "10.42.0.0/24"), node("b", "192.168.50.4", "10.42.2.0/24")]
    obs["second_problems"] = await routes.sync(desired_routes(nodes, "me"))
    obs["second"] = await routes.ours()
    obs["table"] = _sh("ip", "-4", "route", "show")
    return obs


async def _kubelet_scenario(base: Path) -> dict[str, Any]:
    from pinnace.apiserver.server import ApiServer, ApiServerConfig
    from pinnace.client.rest import ApiException, RestClient
    from pinnace.images.service import ImageService
    from pinnace.kubelet.agent import AgentConfig, start_agent
    from pinnace.pki import CertificateAuthority, kubelet_serving_cert, server_pki, write_kubeconfig
    from tests.support.images import IMAGE, busybox_archive

    node_name, node_ip = "cni-node", "192.168.60.1"
    _sh("ip", "link", "set", "lo", "up")
    _sh("ip", "link", "add", "pn-node", "type", "veth", "peer", "name", "pn-peer")
    _sh("ip", "addr", "add", f"{node_ip}/24", "dev", "pn-node")
    _sh("ip", "link", "set", "pn-node", "up")
    _sh("ip", "link", "set", "pn-peer", "up")
    pki = server_pki(base / "pki", "10.43.0.1")
    server = ApiServer(ApiServerConfig(
        storage=f"sqlite://{base}/state.db", port=0, tls_cert=pki.serving.cert, tls_key=pki.serving.key,
        client_ca=pki.ca.cert_path, kubelet_client_cert=pki.kubelet_client.cert if pki.kubelet_client else None,
        kubelet_client_key=pki.kubelet_client.key if pki.kubelet_client else None))
    await server.start()
    kubeconfig = write_kubeconfig(base / "kubeconfig", f"https://127.0.0.1:{server.port}", pki.ca.pem,
                                  pki.admin.cert, pki.admin.key)
    ca = CertificateAuthority.load_or_create(base / "pki")
    serving = kubelet_serving_cert(ca, base, node_name, (node_ip,))
    data_dir = base / "agent"
    images = ImageService(data_dir)
    await images.import_archive(busybox_archive(base / "busybox.tar"))
    await images.close()
    client = RestClient.from_kubeconfig(kubeconfig)
    agent_config = AgentConfig(
        kubeconfig=kubeconfig, data_dir=data_dir, node_name=node_name, serving_cert=serving.cert,
        serving_key=serving.key, client_ca=ca.cert_path, runtime="runc", node_ip=node_ip, port=0, backoff_base=1.0,
        pod_network="cni")
    agent = await start_agent(agent_config)
    obs: dict[str, Any] = {}

    async def get_pod() -> dict[str, Any] | None:
        try:
            return await client.get("v1", "pods", "web", "default")
        except ApiException:
            return None

    async def main_id() -> str | None:
        return agent.kubelet.container_id("default", "web", "main")

    try:
        svc = await client.create("v1", "services", {"metadata": {"name": "fooservice"}, "spec": {
            "selector": {"app": "foo"}, "ports": [{"port": 8765, "targetPort": 8080}]}}, "default")
        obs["fooservice_ip"] = svc["spec"]["clusterIP"]
        await client.create("v1", "services", {"metadata": {"name": "headless"}, "spec": {
            "clusterIP": "None", "selector": {"app": "foo"}, "ports": [{"port": 80}]}}, "default")
        await client.create("v1", "pods", {"metadata": {"name": "web"}, "spec": {
            "nodeName": node_name, "terminationGracePeriodSeconds": 1, "hostname": "web", "subdomain": "sub",
            "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && "
                                                    "exec httpd -f -p 80 -h /tmp/www"],
                            "ports": [{"containerPort": 80, "hostPort": HOST_PORT}]}]}}, "default")
        # No podCIDR yet: the pod waits, without a sandbox.
        await asyncio.sleep(3)
        obs["before_cidr"] = (await get_pod() or {}).get("status") or {}
        obs["conflist_before_cidr"] = (data_dir / "cni" / "net.d" / cni.CONFLIST_NAME).exists()
        events = await client.list("v1", "events", "default")
        obs["events"] = sorted({e.get("reason", "") for e in events["items"]})

        # What the node IPAM controller does; and another node to route to.
        await client.patch("v1", "nodes", node_name, {"spec": {"podCIDR": "10.42.5.0/24",
                                                               "podCIDRs": ["10.42.5.0/24"]}})
        other = await client.create("v1", "nodes", {"metadata": {"name": "other"},
                                                    "spec": {"podCIDR": "10.42.9.0/24", "podCIDRs": ["10.42.9.0/24"]}})
        other["status"] = {"addresses": [{"type": "InternalIP", "address": "192.168.60.2"}]}
        await client.update("v1", "nodes", other, sub="status")

        async def pod_ip() -> str:
            return ((await get_pod() or {}).get("status") or {}).get("podIP", "")

        obs["pod_ip"] = await _retry(pod_ip, lambda ip: ip.startswith("10.42.5."), timeout=60)
        cid = await _retry(main_id, bool, timeout=30)
        obs["conflist"] = json.loads(_read(data_dir / "cni" / "net.d" / cni.CONFLIST_NAME))
        obs["ip_forward"] = _read("/proc/sys/net/ipv4/ip_forward").strip()

        async def route() -> str:
            return _sh("ip", "-4", "route", "show", "10.42.9.0/24").strip()

        obs["route_added"] = await _retry(route, bool)
        runtime = agent.kubelet.runtime

        async def sh(script: str) -> str:
            res = await runtime.exec_sync(cid, ["sh", "-c", script], 15)
            return res.stdout.decode()

        obs["resolv"] = await sh("cat /etc/resolv.conf")
        obs["hosts"] = await sh("cat /etc/hosts")
        obs["env"] = dict(line.split("=", 1) for line in (await sh("cat /proc/1/environ | tr '\\0' '\\n'"))
                          .splitlines() if "=" in line)

        async def hostport() -> str:
            return await asyncio.to_thread(_http_get, f"http://{node_ip}:{HOST_PORT}/")

        obs["hostport"] = await _retry(hostport, lambda v: v == "web\n")

        # A restarted agent adopts the pod: same container, same address, its network CHECKed.
        await agent.stop()
        agent = await start_agent(agent_config)
        obs["adopted_same_container"] = await _retry(main_id, bool, timeout=30) == cid
        obs["pod_ip_after_restart"] = await pod_ip()
        obs["hostport_after_restart"] = await _retry(hostport, lambda v: v == "web\n")
        events = await client.list("v1", "events", "default")
        obs["events_after_restart"] = sorted({e.get("reason", "") for e in events["items"]})

        await client.delete("v1", "nodes", "other")
        obs["route_after_node_deleted"] = await _retry(route, lambda r: r == "")

        await client.delete("v1", "pods", "web", "default", gracePeriodSeconds=0)
        await _retry(get_pod, lambda p: p is None, timeout=60)

        async def leftovers() -> dict[str, Any]:
            d = data_dir / "cni" / "netns"
            return {"netns_files": sorted(os.listdir(d)) if d.exists() else [], "veths": _veths()}

        obs["after_delete"] = await _retry(leftovers, lambda v: v == {"netns_files": [], "veths": []})
    finally:
        with contextlib.suppress(Exception):
            await client.delete("v1", "pods", "web", "default", gracePeriodSeconds=0)
            await _retry(get_pod, lambda p: p is None, timeout=30)
        await agent.stop()
        await client.close()
        await server.stop()
    return obs


SCENARIOS = {"runtime": _runtime_scenario, "routes": _routes_scenario, "kubelet": _kubelet_scenario}


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    result = asyncio.run(SCENARIOS[sys.argv[1]](Path(sys.argv[2])))
    print(json.dumps(result))
