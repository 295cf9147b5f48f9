"""Put a node agent together: pick the container runtime, open the image store,
start the kubelet and its HTTPS server.  Used by ``pinnace kubelet``,
``pinnace agent`` and ``pinnace server`` (unless ``--no-agent``)."""

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
from .kubelet import Kubelet
from .node import KUBELET_PORT, NodeConfig
from .server import ExecProcess, ExecRequest, KubeletServer
from .volumes import VolumeManager

log = logging.getLogger(__name__)


def host_ip() -> str:
    """The address other nodes reach us at: the source address of the default route
    (no packet is sent), else loopback."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
        return str(s.getsockname()[0])
    return "127.0.0.1"


def choose_runtime(name: str, state_dir: Path, node_ip: str, images: Any) -> Any:
    """``runc`` when asked, or on ``auto`` when we are root and runc is installed; else ``process``."""
    if name == "auto":
        name = "runc" if os.geteuid() == 0 and shutil.which("runc") else "process"
    if name == "runc":
        from .runtime.runc_runtime import RuncRuntime

        return RuncRuntime(state_dir / "runc", images, host_ip=node_ip)
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


class RunningAgent:
    def __init__(self, kubelet: Kubelet, server: KubeletServer, client: RestClient, images: Any):
        self.kubelet, self.server, self.client, self.images = kubelet, server, client, images

    async def stop(self) -> None:
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
    runtime_name = config.runtime
    if runtime_name in ("auto", "runc"):
        from ..images.service import ImageService

        images = ImageService(data_dir)
    runtime = choose_runtime(runtime_name, data_dir / "runtime", node_ip, images)
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
    kubelet = Kubelet(client, runtime, node, volumes=volumes, images=images, backoff_base=config.backoff_base)
    server = KubeletServer(kubelet.log_path_for, host=node_ip if node_ip != "127.0.0.1" else "127.0.0.1",
                           port=server_port, cert=config.serving_cert, key=config.serving_key,
                           client_ca=config.client_ca, is_running=kubelet.is_running,
                           exec_source=lambda req: _exec(kubelet, req))
    await server.start()
    if server.port != server_port:  # port 0: tell the node object which port was picked
        node.kubelet_port = server.port
    await kubelet.start()
    return RunningAgent(kubelet, server, client, images)


async def _exec(kubelet: Kubelet, req: ExecRequest) -> ExecProcess | None:
    container_id = kubelet.container_id(req.namespace, req.pod, req.container)
    if container_id is None:
        raise LookupError(f"container {req.container} is not running in pod {req.namespace}/{req.pod}")
    proc = await kubelet.runtime.exec_process(container_id, req.command, tty=req.tty, stdin=req.stdin)
    return ExecProcess.from_process(proc)


__all__ = ["AgentConfig", "RunningAgent", "choose_runtime", "host_ip", "start_agent"]
