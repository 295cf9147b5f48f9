"""The container runtime interface the kubelet drives, shaped like CRI's
RuntimeService: pod sandboxes (the shared namespaces of a pod) and the
containers in them.  Implementations: ``process`` (host processes) and
``runc`` (OCI containers).

The kubelet resolves everything Kubernetes-specific before calling a runtime:
the final argv (command/args over the image's Entrypoint/Cmd, ``$(VAR)``
expanded), the final environment, host directories to mount.  A runtime only
runs what it is told and reports what happened.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .stdio import ExecProcess

# Labels every container carries, so a restarted kubelet can find its containers.
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_ATTEMPT = "io.kubernetes.container.attempt"


class RuntimeError_(Exception):
    """A runtime operation failed; the message is shown in the container status."""


@dataclass
class SandboxConfig:
    pod_uid: str
    name: str
    namespace: str
    hostname: str
    host_network: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # CRI's DNSConfig for resolv.conf ({"servers", "searches", "options"}); None: a copy of the
    # host's resolv.conf.
    dns: dict[str, list[str]] | None = None
    # /etc/hosts: the pod's DNS domain (``<subdomain>.<ns>.svc.<cluster domain>``: the hostname
    # line gets the FQDN) and spec.hostAliases.
    domain: str = ""
    host_aliases: list[dict[str, Any]] = field(default_factory=list)
    # hostPorts, in CNI's portMappings form: {"hostPort", "containerPort", "protocol" (lower
    # case), "hostIP"}.
    port_mappings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Sandbox:
    id: str
    config: SandboxConfig
    ip: str | None = None
    # Paths of namespaces containers of this pod join (runc); None for the process runtime.
    # netns_path None on runc: the node's network (hostNetwork, or no pod network).
    netns_path: str | None = None
    ipc_path: str | None = None
    uts_path: str | None = None
    # CRI's SANDBOX_READY: False once its namespaces are gone (a reboot unpinned them, or the
    # sandbox was stopped); containers can no longer be created in it.
    ready: bool = True
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass
class ContainerConfig:
    name: str
    image: str  # the reference as the pod names it
    args: list[str]  # the final argv
    env: dict[str, str]
    log_path: Path  # CRI-format log file the runtime appends to
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    image_ref: str | None = None  # what to unpack for a rootfs (runc); ignored by the process runtime
    image_config: dict[str, Any] = field(default_factory=dict)  # the OCI image config's "config"
    security_context: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    tty: bool = False
    stdin: bool = False  # the container reads a FIFO kubectl attach writes into (``stdin`` in the pod spec)
    stdin_once: bool = False  # stdin closes (EOF) when the first attach session ends (``stdinOnce``)
    labels: dict[str, str] = field(default_factory=dict)


State = Literal["created", "running", "exited", "unknown"]


@dataclass
class ContainerStatus:
    id: str
    state: State
    exit_code: int | None = None
    reason: str = ""  # "OOMKilled", "Error", "Completed" for exited containers
    message: str = ""
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    pid: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    sandbox_id: str | None = None  # the pod sandbox it runs in (None: the runtime does not say)


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ContainerRuntime(Protocol):
    """CRI's RuntimeService, as much of it as the kubelet uses."""

    name: str

    async def run_pod_sandbox(self, config: SandboxConfig) -> Sandbox: ...

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        """Stop every container of the sandbox (forcefully) and release its namespaces."""

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None: ...

    async def list_pod_sandboxes(self) -> list[Sandbox]:
        """Every sandbox this runtime knows, ready or not (a restarted kubelet adopts the
        ready ones of its pods and removes the rest).  Optional for a runtime: without it
        the kubelet adopts nothing."""

    async def create_container(self, sandbox: Sandbox, config: ContainerConfig) -> str:
        """Create (not start) a container; its id."""

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once it has exited."""

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self) -> list[ContainerStatus]:
        """Every container this runtime knows (with its labels), running or not."""

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> ExecResult:
        """Run ``cmd`` inside the running container (exec probes, hooks); raises
        TimeoutError after ``timeout`` seconds (0: no limit, as CRI's ExecSync)."""

    async def exec_process(self, container_id: str, cmd: list[str], *, tty: bool = False,
                           stdin: bool = False) -> ExecProcess:
        """Start ``cmd`` inside the running container for ``kubectl exec``: with pipes
        (stdin only when asked), or with ``tty`` on a new terminal (output on stdout only,
        resizable)."""

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI's ReopenContainerLog: the container's log file was renamed away (rotation);
        write to a new file at its path from now on.  Raises RuntimeError_ when the
        container's output cannot be redirected (it is not running)."""


__all__ = ["LABEL_ATTEMPT", "LABEL_CONTAINER_NAME", "LABEL_POD_NAME", "LABEL_POD_NAMESPACE", "LABEL_POD_UID",
           "ContainerConfig", "ContainerRuntime", "ContainerStatus", "ExecProcess", "ExecResult", "Mount",
           "RuntimeError_", "Sandbox", "SandboxConfig", "State"]
