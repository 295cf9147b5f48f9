"""Put a node agent together: pick the container runtime and the pod network, open the
image store, start the kubelet and its HTTPS server.  Used by ``pinnace kubelet``,
``pinnace agent`` and ``pinnace server`` (unless ``--no-agent``).

Pod network (``--pod-network``): ``cni`` gives every pod (but hostNetwork ones) its own
network namespace wired by the CNI plugins (runc runtime only), with host-gw routes to the
other nodes' pods, all in the agent's network namespace; ``host`` keeps every pod on the
node's network; ``auto`` (the CLI's default) is ``cni`` when the runtime is runc, we are root
and the plugins (bridge, host-local, loopback, portmap) are in ``--cni-bin-dir``, else ``host``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client.rest import RestClient
from . import cni
from .kubelet import Kubelet
from .logrotation import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, ContainerLogManager, kubelet_log_source
from .node import KUBELET_PORT, NodeConfig
from .server import AttachRequest, AttachTarget, ExecProcess, ExecRequest, KubeletServer
from .volumes import VolumeManager

log = logging.getLogger(__name__)


def host_ip() -> str:
    """The address other nodes reach us at: the source address of the default route
    (no packet is sent), else loopback."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
        return str(s.getsockname()[0])
    return "127.0.0.1"


def runtime_name(name: str) -> str:
    """``auto``: ``runc`` when we are root and runc is installed, else ``process``."""
    if name == "auto":
        return "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    return name


def choose_pod_network(mode: str, runtime: str, bin_dirs: list[str]) -> str:
    """``cni`` or ``host`` for ``--pod-network`` ``mode`` (see the module docstring); ValueError
    when ``cni`` is asked for and cannot work."""
    if mode == "host":
        return "host"
    if mode not in ("auto", "cni"):
        raise ValueError(f"unknown pod network {mode!r} (choose auto, cni or host)")
    problems = []
    if runtime != "runc":
        problems.append(f"the {runtime} runtime runs pods on the node's network")
    if os.geteuid() != 0:
        problems.append("network namespaces need root")
    missing = cni.missing_plugins(bin_dirs)
    if missing:
        problems.append(f"CNI plugins {', '.join(missing)} not found in {':'.join(bin_dirs)} "
                        "(apt-get install containernetworking-plugins)")
    missing_tools = [t for t in ("ip", "unshare") if shutil.which(t) is None]
    if missing_tools:
        problems.append(f"{' and '.join(missing_tools)} not found (iproute2, util-linux)")
    if not problems:
        return "cni"
    if mode == "cni":
        raise ValueError("--pod-network cni: " + "; ".join(problems))
    log.info("pod network: host (%s)", "; ".join(problems))
    return "host"


def choose_runtime(name: str, state_dir: Path, node_ip: str, images: Any, *, network: Any | None = None) -> Any:
    """``runc`` when asked, or on ``auto`` when we are root and runc is installed; else ``process``.
    ``network``: the runc runtime's pod network (None: pods on the node's network)."""
    name = runtime_name(name)
    if name == "runc":
        from .runtime.runc_runtime import RuncRuntime

        return RuncRuntime(state_dir / "runc", images, host_ip=node_ip, network=network)
    if name == "process":
        from .runtime.process import ProcessRuntime

        return ProcessRuntime(state_dir / "process", node_ip)
    raise ValueError(f"unknown container runtime {name!r} (choose runc, process or auto)")


@dataclass
class AgentConfig:
    kubeconfig: Path
    data_dir: Path
    node_name: str
    serving_cert: Path
    serving_key: Path
    client_ca: Path  # who may call the kubelet's HTTPS API: certificates signed by the cluster CA
    runtime: str = "auto"
    node_ip: str = ""
    port: int = KUBELET_PORT
    backoff_base: float = 10.0
    labels: dict[str, str] | None = None
    # "host" here (code that builds a config gets no network changes unless it asks); the CLI's
    # default is "auto".
    pod_network: str = "host"
    cni_bin_dirs: tuple[str, ...] = cni.DEFAULT_BIN_DIRS
    cni_conf_dir: Path | None = None  # default DATA_DIR/cni/net.d
    cluster_dns: tuple[str, ...] = ("10.43.0.10",)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"
    container_log_max_size: str = DEFAULT_MAX_SIZE  # rotate a container's log at this size ("10Mi"; <0: never)
    container_log_max_files: int = DEFAULT_MAX_FILES  # at most this many files per container log
    # kube-proxy in the agent: "none" here as for pod_network; the CLI's default is "auto".
    proxy_mode: str = "none"
    cluster_cidr: str = "10.42.0.0/16"


class RunningAgent:
    log_manager: ContainerLogManager | None = None
    proxy: Any = None  # pinnace.proxy.RunningProxy

    def __init__(self, kubelet: Kubelet, server: KubeletServer, client: RestClient, images: Any):
        self.kubelet, self.server, self.client, self.images = kubelet, server, client, images

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()  # removes its rules: a stopped node serves no Services
        if self.log_manager is not None:
            await self.log_manager.stop()
        await self.server.stop()
        # Process-runtime containers cannot outlive us (their output pipes are ours); runc ones do.
        await self.kubelet.stop(stop_pods=self.kubelet.runtime.name == "process")
        close = getattr(self.kubelet.runtime, "close", None)
        if close is not None:
            await close()
        if self.images is not None and hasattr(self.images, "close"):
            await self.images.close()
        await self.client.close()


async def start_agent(config: AgentConfig) -> RunningAgent:
    node_ip = config.node_ip or host_ip()
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    client = RestClient.from_kubeconfig(config.kubeconfig, user_agent=f"pinnace-kubelet/{config.node_name}")
    images = None
    rt_name = runtime_name(config.runtime)
    bin_dirs = cni.split_bin_dirs(config.cni_bin_dirs)
    try:
        pod_network = choose_pod_network(config.pod_network, rt_name, bin_dirs)
    except ValueError:
        await client.close()
        raise
    cni_network = node_network = None
    if pod_network == "cni":
        from .network import CniNetwork, NodeNetwork

        cni_network = CniNetwork(data_dir / "cni", bin_dirs=bin_dirs, conf_dir=config.cni_conf_dir)
        node_network = NodeNetwork(client, config.node_name, cni_network, node_ip=node_ip,
                                   cluster_cidr=config.cluster_cidr)
        log.info("pod network: CNI (plugins from %s, configuration in %s); waiting for the node's podCIDR",
                 ":".join(bin_dirs), cni_network.conf_dir)
    else:
        log.info("pod network: host (pods share the node's network)")
    if rt_name == "runc":
        from ..images.service import ImageService

        images = ImageService(data_dir)
    runtime = choose_runtime(rt_name, data_dir / "runtime", node_ip, images, network=cni_network)
    if runtime.name == "process":
        images = None  # host processes: nothing to pull
        log.warning("container runtime: process (containers are host processes without isolation; "
                    "run as root with runc installed for real containers)")
    else:
        log.info("container runtime: %s", runtime.name)
    server_port = config.port
    node = NodeConfig(name=config.node_name, host_ip=node_ip, data_dir=data_dir, kubelet_port=server_port,
                      runtime_version=f"{runtime.name}://pinnace", labels=config.labels or {})
    volumes = VolumeManager(client, data_dir / "pods", node_ip=node_ip)
    kubelet = Kubelet(client, runtime, node, volumes=volumes, images=images, backoff_base=config.backoff_base,
                      network=node_network, cluster_dns=config.cluster_dns, cluster_domain=config.cluster_domain,
                      resolv_conf=config.resolv_conf)
    server = KubeletServer(kubelet.log_path_for, host=node_ip if node_ip != "127.0.0.1" else "127.0.0.1",
                           port=server_port, cert=config.serving_cert, key=config.serving_key,
                           client_ca=config.client_ca, is_running=kubelet.is_running,
                           exec_source=lambda req: _exec(kubelet, req),
                           attach_source=lambda req: _attach(kubelet, req),
                           port_forward_target=kubelet.port_forward_address)
    await server.start()
    if server.port != server_port:  # port 0: tell the node object which port was picked
        node.kubelet_port = server.port
    await kubelet.start()
    agent = RunningAgent(kubelet, server, client, images)
    agent.log_manager = ContainerLogManager(runtime, kubelet_log_source(kubelet),
                                            max_size=config.container_log_max_size,
                                            max_files=config.container_log_max_files)
    agent.log_manager.start()
    agent.proxy = await _start_proxy(config, client, runtime.name, pod_network, node_ip)
    return agent


async def _start_proxy(config: AgentConfig, client: RestClient, runtime: str, pod_network: str, node_ip: str
                       ) -> Any:
    """The node's kube-proxy, sharing the kubelet's connection.  ``auto`` is userspace for the
    process runtime (its pods are host processes: no bridge to DNAT into)."""
    mode = config.proxy_mode
    if mode == "none":
        return None
    from ..proxy.proxier import start_proxy

    if mode == "auto" and runtime == "process":
        mode = "userspace"
    proxy = await start_proxy(client, config.node_name, mode, cluster_cidr=config.cluster_cidr,
                              pod_bridge="cni0" if pod_network == "cni" else None,
                              node_ips=[node_ip] if node_ip else ())
    log.info("proxy: %s mode", proxy.mode)
    return proxy


async def _exec(kubelet: Kubelet, req: ExecRequest) -> ExecProcess | None:
    container_id = kubelet.container_id(req.namespace, req.pod, req.container)
    if container_id is None:
        raise LookupError(f"container {req.container} is not running in pod {req.namespace}/{req.pod}")
    return await kubelet.runtime.exec_process(container_id, req.command, tty=req.tty, stdin=req.stdin)


async def _attach(kubelet: Kubelet, req: AttachRequest) -> AttachTarget | None:
    """The running container ``kubectl attach`` asks for: its log, stdin FIFO and spec flags."""
    ns, pod, name = req.namespace, req.pod, req.container
    container_id = kubelet.container_id(ns, pod, name)
    log_path = kubelet.log_path_for(ns, pod, name, False)
    if container_id is None or log_path is None:
        raise LookupError(f"container {name} is not running in pod {ns}/{pod}")
    spec = next((c for w in list(kubelet.workers.values()) if w.namespace == ns and w.name == pod
                 for key in ("containers", "initContainers") for c in (w.pod.get("spec") or {}).get(key) or []
                 if c.get("name") == name), {})
    runtime = kubelet.runtime
    stdin_path = getattr(runtime, "stdin_path", None)
    close_stdin = getattr(runtime, "close_stdin", None)
    resize = getattr(runtime, "resize_container", None) if spec.get("tty") else None
    return AttachTarget(
        log_path=log_path,
        # A restart is a new container (and log): this session ends with the one it attached to.
        running=lambda: kubelet.container_id(ns, pod, name) == container_id,
        stdin=stdin_path(container_id) if stdin_path is not None and spec.get("stdin") else None,
        stdin_once=bool(spec.get("stdinOnce")),
        close_stdin=(lambda: close_stdin(container_id)) if close_stdin is not None else None,
        tty=bool(spec.get("tty")),
        resize=(lambda width, height: resize(container_id, width, height)) if resize is not None else None)


__all__ = ["AgentConfig", "RunningAgent", "choose_pod_network", "choose_runtime", "host_ip", "runtime_name",
           "start_agent"]
