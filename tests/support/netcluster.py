"""A real multi-node Pinnace cluster on a test network, for e2e tests and bench/network.py.

``node-1`` runs ``pinnace server`` (control plane, cluster DNS and its own agent); the
other nodes run ``pinnace agent`` joined by token; every node is a network namespace on
a test bridge (:mod:`tests.support.netns`), plus a ``client`` namespace that plays a
machine outside the cluster.  Pods are real runc containers with CNI networking and
kube-proxy in nftables mode.  Leaving the context deletes the pods through the API,
stops everything, removes the namespaces, and checks that the host's network is
exactly as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from .images import busybox_archive
from .kubectl import Kubectl, kubectl_versions
from .netns import Machine, Network, changed, host_network_state, netns_skip_reason, network
from .runc import remove_runc_containers, runc_skip_reason
from .waiting import wait_until

IMAGE = "pinnace.test/busybox:1"
API_PORT = 6443
CNI_PLUGINS = [p for p in ("/usr/lib/cni", "/opt/cni/bin") if os.path.exists(f"{p}/bridge")]
PINNACE = [sys.executable, "-m", "pinnace.cli"]


def skip_reason() -> str | None:
    """Why a network cluster cannot run here (None: it can)."""
    if "default" not in kubectl_versions():
        return "kubectl not installed"
    return (netns_skip_reason() or runc_skip_reason() or (None if CNI_PLUGINS else "no CNI plugins")
            or (None if shutil.which("nft") else "no nft"))


@dataclass
class Cluster:
    net: Network
    k: Kubectl
    tmp: Path

    def machine(self, name: str) -> Machine:
        return self.net.machines[name]


def _join_token(node1: Machine, data_dir: Path) -> str:
    out = node1.run(*PINNACE, "token", "create", "--data-dir", str(data_dir)).stdout
    return out.strip().splitlines()[-1]


def _node_flags(name: str, machine: Machine, proxy_mode: str) -> list[str]:
    return ["--node-name", name, "--node-ip", machine.ip, "--runtime", "runc", "--pod-network", "cni",
            "--proxy-mode", proxy_mode, "--kubelet-port", "10250"]


@contextlib.contextmanager
def network_cluster(tmp: Path, proxy_mode: str = "nftables") -> Iterator[Cluster]:
    archive = busybox_archive(tmp / "busybox.tar")
    before = host_network_state()
    with network("node-1", "node-2", "node-3", "client") as net:
        data = {name: tmp / name for name in ("node-1", "node-2", "node-3")}
        try:
            for name, d in data.items():
                agent_dir = d / "agent" if name == "node-1" else d
                agent_dir.mkdir(parents=True)
                net.machines[name].run(*PINNACE, "image", "import", str(archive),
                                       "--data-dir", str(agent_dir))
            n1 = net.machines["node-1"]
            net.start(n1, [*PINNACE, "server", "--data-dir", str(data["node-1"]), "--https-port", str(API_PORT),
                           "--bind-address", "0.0.0.0", "--advertise-address", n1.ip,
                           *_node_flags("node-1", n1, proxy_mode)], tmp / "server.log")
            local = net.forward(n1, "127.0.0.1", API_PORT, tmp / "forward.log")
            kubeconfig = data["node-1"] / "kubeconfig"
            wait_until(kubeconfig.exists, timeout=60, what="the server's kubeconfig")
            config = yaml.safe_load(kubeconfig.read_text())
            config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{local}"
            (tmp / "kubeconfig").write_text(yaml.safe_dump(config))
            k = Kubectl(kubectl_versions()["default"], tmp / "kubeconfig")
            wait_until(lambda: k.run("get", "--raw", "/readyz", check=False).returncode == 0, timeout=60,
                       what="API server ready")
            token = _join_token(n1, data["node-1"])
            for name in ("node-2", "node-3"):
                m = net.machines[name]
                net.start(m, [*PINNACE, "agent", "--server", f"https://{n1.ip}:{API_PORT}", "--token", token,
                              "--data-dir", str(data[name]), *_node_flags(name, m, proxy_mode)], tmp / f"{name}.log")
            wait_until(lambda: ready_nodes(k), lambda n: len(n) == 3, timeout=90, what="three Ready nodes")
            yield Cluster(net, k, tmp)
            # Containers outlive their agents (as with containerd): stop them through the API first.
            k("delete", "deployments,pods", "--all", "--wait=true", "--timeout=90s", timeout=120)
            k("delete", "services", "--field-selector", "metadata.name!=kubernetes", timeout=60)
            wait_until(lambda: k.json("get", "pods")["items"], lambda items: not items, timeout=90,
                       what="every pod gone")
            for name, d in data.items():
                assert not _pod_namespaces(d), f"{name} left pod network namespaces behind"
        finally:
            net.stop_processes()
            for d in data.values():
                remove_runc_containers(d)
    after = host_network_state()
    assert not changed(before, after), f"the host's network changed: {sorted(changed(before, after))}"


def ready_nodes(k: Kubectl) -> list[str]:
    nodes = k.json("get", "nodes")["items"]
    return [n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            and n["spec"].get("podCIDR")]


def _pod_namespaces(data_dir: Path) -> list[Path]:
    """Pinned pod network namespaces the agent still holds under its data dir or /run."""
    found = [p for p in data_dir.rglob("netns/*") if p.is_file()]
    return found
