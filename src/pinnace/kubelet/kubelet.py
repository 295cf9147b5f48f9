"""The kubelet: registers this machine as a Node and runs the pods bound to it.

An informer watches the pods with ``spec.nodeName`` = this node; each pod gets
a :class:`~pinnace.kubelet.podworker.PodWorker`.  The kubelet itself holds
what the workers share: the API client, the container runtime, images,
volumes, the prober and the event recorder.

Networking: with a pod network (:class:`~pinnace.kubelet.network.NodeNetwork`, CNI on the
runc runtime) a pod that is not ``hostNetwork`` waits for it (the node's podCIDR) before its
sandbox is made; without one every pod shares the node's network.  Each sandbox gets its
DNS configuration (dnsPolicy, ``--cluster-dns``, ``--cluster-domain``), /etc/hosts entries
(hostname, subdomain FQDN, hostAliases) and hostPort mappings; containers get the Service
environment variables from a Service informer.

Restarts: containers outlive the kubelet (runc's shims, as containerd's).  At start
the kubelet lists the runtime's sandboxes and containers once and gives each new
pod worker what carries its pod's uid (label ``io.kubernetes.pod.uid``) to adopt;
once the informer has synced, what belongs to no pod bound here any more is
stopped and removed (the pod was deleted while the kubelet was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client.events import EventRecorder
from ..client.informer import Informer
from ..client.rest import RestClient
from ..images.errors import ImageNeverPullError, InvalidReferenceError
from . import dnsconfig
from . import env as envs
from .hooks import format_pod, run_hook
from .node import NodeAgent, NodeConfig
from .podworker import Adoptable, ContainerConfigError, PodWorker
from .probes import ProbeManager
from .runtime.base import LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, ContainerRuntime, SandboxConfig
from .slots import OrderedSlots
from .status import ContainerRecord

log = logging.getLogger(__name__)

SERVICES_SYNC_WAIT = 5.0  # how long a container start waits for the first list of Services


@dataclass
class PulledImage:
    """What a container needs from its image."""

    image_id: str  # for status.imageID
    config: dict[str, Any]  # the OCI image config (Entrypoint, Cmd, Env, WorkingDir, User)
    ref: str | None  # what the runtime unpacks (None: the process runtime runs host binaries)


class PodProbers:
    """The pod workers' one prober: a ProbeManager per pod.  Results update the container
    record and wake the worker; a failed liveness or startup probe kills the container
    (the worker then restarts it per restartPolicy)."""

    def __init__(self, kubelet: Kubelet):
        self.kubelet = kubelet
        self.managers: dict[str, ProbeManager] = {}

    def _manager(self, worker: PodWorker) -> ProbeManager:
        pm = self.managers.get(worker.uid)
        if pm is None:
            def on_result(kind: str, name: str, ok: bool, message: str) -> None:
                rec = next((r for r in worker.records if r.name == name), None)
                if rec is None:
                    return
                self.sync_record(worker.uid, rec)
                if kind in ("liveness", "startup") and not ok:
                    asyncio.get_running_loop().create_task(worker.kill(
                        rec, "probe", f"Container {name} failed {kind} probe, will be restarted"))
                worker.wake()

            def on_event(reason: str, container: str, message: str) -> None:
                self.kubelet.event(worker.pod, "Warning", reason, message, field=container)

            pm = self.managers[worker.uid] = ProbeManager(self.kubelet.runtime, on_result=on_result,
                                                          on_event=on_event, pod_ip=worker.pod_ip)
        return pm

    def start(self, worker: PodWorker, rec: ContainerRecord, spec: dict,
              started_at: dt.datetime | None = None) -> None:
        """Probe a container that now runs (``started_at``: when it started, for one a
        restarted kubelet adopted; initialDelaySeconds counts from then)."""
        if rec.current is not None and any(spec.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")):
            self._manager(worker).start_container(spec, rec.current.id, started_at=started_at)

    def stop(self, uid: str, name: str) -> None:
        if (pm := self.managers.get(uid)) is not None:
            pm.stop_container(name)

    def has(self, uid: str, name: str) -> bool:
        pm = self.managers.get(uid)
        return pm is not None and pm.has(name)

    def sync_record(self, uid: str, rec: ContainerRecord) -> None:
        pm = self.managers.get(uid)
        if pm is not None and pm.has(rec.name):
            rec.started, rec.ready = pm.is_started(rec.name), pm.is_ready(rec.name)

    async def close(self, uid: str) -> None:
        if (pm := self.managers.pop(uid, None)) is not None:
            await pm.close()


class Kubelet:
    def __init__(self, client: RestClient, runtime: ContainerRuntime, node: NodeConfig, *, volumes: Any,
                 images: Any | None = None, backoff_base: float = 10.0, max_backoff: float = 300.0,
                 network: Any | None = None, cluster_dns: Sequence[str] = (), cluster_domain: str = "cluster.local",
                 resolv_conf: str = "/etc/resolv.conf"):
        """``network``: the node's pod network (a :class:`~pinnace.kubelet.network.NodeNetwork`,
        started and stopped with the kubelet); None: pods share the node's network."""
        self.client = client
        self.runtime = runtime
        self.node_config = node
        self.node_name = node.name
        self.host_ip = node.host_ip
        self.images = images
        self.volumes = volumes
        self.prober = PodProbers(self)
        self.backoff_base, self.max_backoff = backoff_base, max_backoff
        self.volume_refresh_period = 5.0  # how soon a ConfigMap/Secret update reaches running pods
        self.logs_dir = node.data_dir / "pods-logs"
        self.recorder = EventRecorder(client, "kubelet", host=node.name)
        self.node = NodeAgent(client, node)
        self.workers: dict[str, PodWorker] = {}
        # Sandbox and container starts, a few at a time, oldest pod first (see slots.py).
        self.start_slots = OrderedSlots()
        self._arrivals = itertools.count()  # each worker's place in that order
        # What the runtime had at start, by pod uid, not yet handed to a worker or removed.
        self.leftovers: dict[str, Adoptable] = {}
        self._gc_task: asyncio.Task[None] | None = None
        self._gc_tasks: set[asyncio.Task[None]] = set()
        self.informer = Informer(client, "v1", "pods", field_selector=f"spec.nodeName={node.name}")
        self.informer.add_event_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n),
                                        on_delete=self._pod_deleted)
        self.network = network
        self.cluster_dns, self.cluster_domain = list(cluster_dns), cluster_domain
        self.resolv_conf = resolv_conf
        self.services = Informer(client, "v1", "services")  # for the containers' service variables

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.recorder.start()
        await self.node.start()
        if self.network is not None:
            self.network.start()
        self.leftovers = await self._inventory()
        if hasattr(self.runtime, "on_container_exit"):  # exits wake the pod's worker at once
            self.runtime.on_container_exit = self._container_exited
        self.services.start()
        self.informer.start()
        if self.leftovers:
            self._gc_task = asyncio.create_task(self._collect_leftovers(), name="kubelet-adopt-gc")
        log.info("kubelet: node %s registered; runtime %s", self.node_name, self.runtime.name)

    def _container_exited(self, container_id: str) -> None:
        """A container (or a sandbox, where the runtime has a process for it) exited: its pod
        worker syncs now, not at its next one-second tick."""
        for w in list(self.workers.values()):
            if (w.sandbox is not None and w.sandbox.id == container_id) or any(
                    r.current is not None and r.current.id == container_id for r in w.records):
                w.wake()
                return

    async def stop(self, stop_pods: bool = False) -> None:
        """Stop watching and heartbeating.  Containers keep running unless ``stop_pods``
        (the process runtime's containers cannot outlive us: their output pipes are ours)."""
        await self.informer.stop()
        await self.services.stop()
        if self.network is not None:
            await self.network.stop()
        gc = [t for t in (self._gc_task, *self._gc_tasks) if t is not None]
        for t in gc:
            t.cancel()
        await asyncio.gather(*gc, return_exceptions=True)
        workers = list(self.workers.values())
        for w in workers:
            if w.task is not None:
                w.task.cancel()
        await asyncio.gather(*(w.task for w in workers if w.task is not None), return_exceptions=True)
        if stop_pods:
            for w in workers:
                await w.stop_everything()
                if self.volumes is not None:  # no tmpfs mounts left behind for pods that are gone
                    await self.volumes.teardown(w.uid)
        await self.node.stop()
        await self.recorder.stop()

    # -- adoption --------------------------------------------------------------------------------

    async def _inventory(self) -> dict[str, Adoptable]:
        """The runtime's sandboxes and containers, by pod uid (empty when the runtime cannot
        list sandboxes: then nothing is adopted)."""
        list_sandboxes = getattr(self.runtime, "list_pod_sandboxes", None)
        list_containers = getattr(self.runtime, "list_containers", None)
        if list_sandboxes is None or list_containers is None:
            return {}
        try:
            sandboxes = await list_sandboxes()
            containers = await list_containers()
        except Exception:
            log.exception("kubelet: cannot list the runtime's sandboxes and containers; adopting nothing")
            return {}
        found: dict[str, Adoptable] = {}
        for sb in sandboxes:
            found.setdefault(sb.config.pod_uid, Adoptable()).sandboxes.append(sb)
        for c in containers:
            found.setdefault(c.labels.get(LABEL_POD_UID, ""), Adoptable()).containers.append(c)
        if found:
            log.info("kubelet: the runtime has %d sandboxes and %d containers of %d pods", len(sandboxes),
                     len(containers), len(found))
        return found

    async def _collect_leftovers(self) -> None:
        """Once the informer has synced: remove what belongs to no pod bound here (deleted
        while we were down).  What belongs to a pod still present is never touched here."""
        await self.informer.wait_for_sync()
        present = {(p.get("metadata") or {}).get("uid") for p in self.informer.indexer.list()} | set(self.workers)
        for uid in [u for u in self.leftovers if u not in present]:
            found = self.leftovers.pop(uid, None)
            if found is not None:
                await self._remove_leftovers(uid, found)

    async def _remove_leftovers(self, uid: str, found: Adoptable) -> None:
        runtime = self.runtime
        for sb in found.sandboxes:
            try:
                await runtime.stop_pod_sandbox(sb)
                await runtime.remove_pod_sandbox(sb)
            except Exception as e:
                log.warning("kubelet: removing sandbox %s of pod %s: %s", sb.id[:12], uid or "?", e)
        for c in found.containers:  # most went with their sandbox (removing twice is no error)
            try:
                await runtime.stop_container(c.id, 0)
                await runtime.remove_container(c.id)
            except Exception as e:
                log.warning("kubelet: removing container %s of pod %s: %s", c.id[:12], uid or "?", e)
        if uid:
            with contextlib.suppress(Exception):
                await self.volumes.teardown(uid)
        log.info("kubelet: removed %d sandboxes and %d containers of pod %s, which is not bound here any more",
                 len(found.sandboxes), len(found.containers), uid or "(unknown)")

    # -- pods ----------------------------------------------------------------------------------------

    def _pod_changed(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
                    "deletionTimestamp"):
                return  # finished before we (re)started: nothing to run (its leftovers wait for its deletion)
            worker = self.workers[uid] = PodWorker(self, pod, self.leftovers.pop(uid, None),
                                                   arrival=next(self._arrivals))
            worker.start()
            worker.task.add_done_callback(lambda _t, u=uid: self.workers.pop(u, None))  # type: ignore[union-attr]
        else:
            worker.update(pod)

    def _pod_deleted(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        found = self.leftovers.pop(uid, None)
        if worker is None and found is not None:  # a finished pod's leftovers, from before our restart
            task = asyncio.get_running_loop().create_task(self._remove_leftovers(uid, found))
            self._gc_tasks.add(task)
            task.add_done_callback(self._gc_tasks.discard)
        if worker is not None:
            # Removed without passing through graceful deletion (force delete): stop at once.
            meta = {**pod["metadata"], "deletionTimestamp": pod["metadata"].get("deletionTimestamp") or "now",
                    "deletionGracePeriodSeconds": 0}
            worker.update({**pod, "metadata": meta})

    # -- what the HTTPS server asks for -----------------------------------------------------------

    def _record(self, namespace: str, pod: str, container: str) -> tuple[PodWorker, ContainerRecord] | None:
        for w in self.workers.values():
            if w.namespace == namespace and w.name == pod:
                rec = next((r for r in w.records if r.name == container), None)
                return (w, rec) if rec is not None else None
        return None

    def log_path_for(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        found = self._record(namespace, pod, container)
        if found is None:
            return None
        worker, rec = found
        if previous:
            return worker.log_path(rec.name, rec.restart_count - 1) if rec.restart_count > 0 else None
        return worker.log_path(rec.name, rec.restart_count)

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        found = self._record(namespace, pod, container)
        return found is not None and found[1].running

    def port_forward_address(self, namespace: str, pod: str, port: int) -> tuple[str, int, str | None] | None:
        """Where ``kubectl port-forward`` connects: the pod's localhost, inside its network
        namespace when it has one (None: the pod has no running sandbox here)."""
        for w in self.workers.values():
            if w.namespace == namespace and w.name == pod and w.sandbox is not None and w.sandbox.ready:
                return ("127.0.0.1", port, w.sandbox.netns_path)
        return None

    def container_id(self, namespace: str, pod: str, container: str) -> str | None:
        found = self._record(namespace, pod, container)
        if found is None or not found[1].running or found[1].current is None:
            return None
        return found[1].current.id

    def event(self, pod: dict, type_: str, reason: str, message: str, field: str | None = None) -> None:
        """An event about ``pod`` (``field``: one of its containers, as ``kubectl describe`` shows)."""
        pod = {"apiVersion": "v1", "kind": "Pod", **pod}
        self.recorder.event(pod, type_, reason, message, field_path=f"spec.containers{{{field}}}" if field else "")

    # -- what pod workers ask for -----------------------------------------------------------------

    async def image_id(self, container: dict) -> str:
        """status.imageID of a container's image already on the node (no pull): for a
        container a restarted kubelet adopted."""
        resolve = getattr(self.images, "resolve", None)
        if resolve is None:
            return ""
        image = await resolve(container.get("image", ""))
        return "" if image is None else str(image.repo_digest or image.id)

    async def pull(self, pod: dict, container: dict) -> PulledImage:
        if self.images is None:
            # The process runtime runs host binaries: the image is only a name.
            return PulledImage(image_id="", config={}, ref=None)
        secrets = await self._pull_secrets(pod)
        image = await self.images.ensure(container.get("image", ""), container.get("imagePullPolicy"), secrets)
        return PulledImage(image_id=image.repo_digest or image.id, config=image.config or {}, ref=image.ref)

    async def _pull_secrets(self, pod: dict) -> list[dict]:
        from ..images.credentials import keyring_from_pull_secrets

        ns = pod["metadata"].get("namespace", "default")
        found = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            try:
                found.append(await self.client.get("v1", "secrets", ref.get("name", ""), ns))
            except Exception as e:  # a missing pull secret is not fatal: anonymous pulls may still work
                log.warning("pull secret %s/%s: %s", ns, ref.get("name"), e)
        return keyring_from_pull_secrets(found) if found else None  # type: ignore[return-value]

    @staticmethod
    def image_error(e: Exception) -> tuple[str, str]:
        """(waiting reason, message) for a failed pull, as the kubelet reports them."""
        if isinstance(e, ImageNeverPullError):
            return "ErrImageNeverPull", str(e)
        if isinstance(e, InvalidReferenceError):
            return "InvalidImageName", str(e)
        return "ErrImagePull", str(e)

    # -- networking --------------------------------------------------------------------------------

    def on_node_network(self, pod: dict) -> bool:
        """Whether the pod shares the node's network namespace (hostNetwork, or no pod network)."""
        return self.network is None or bool((pod.get("spec") or {}).get("hostNetwork"))

    def network_not_ready(self, pod: dict) -> str | None:
        """Why the pod's sandbox cannot be made yet (its pod network is not configured), or None."""
        if self.on_node_network(pod) or self.network.ready:  # type: ignore[union-attr]
            return None
        return ("network is not ready: container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:the node has no podCIDR yet")

    def sandbox_config(self, pod: dict) -> SandboxConfig:
        """The pod's sandbox: names, DNS, /etc/hosts entries, hostPorts (the kubelet's
        generatePodSandboxConfig).  Raises ValueError for a pod it cannot be made for."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid, name, namespace = meta["uid"], meta["name"], meta.get("namespace", "default")
        hostname, domain = dnsconfig.pod_hostname_and_domain(pod, self.cluster_domain)
        on_node = self.on_node_network(pod)
        host = dnsconfig.parse_resolv_conf(dnsconfig.host_resolv_conf(self.resolv_conf, own_network=not on_node))
        warnings: list[str] = []
        dns = dnsconfig.pod_dns_config(pod, cluster_dns=self.cluster_dns, cluster_domain=self.cluster_domain,
                                       host=host, on_node_network=on_node, warnings=warnings)
        for w in warnings:
            self.event(pod, "Warning", "MissingClusterDNS" if "ClusterDNS" in w else "DNSConfigForming", w)
        return SandboxConfig(pod_uid=uid, name=name, namespace=namespace, hostname=hostname,
                             host_network=bool(spec.get("hostNetwork")),
                             labels={LABEL_POD_UID: uid, LABEL_POD_NAME: name, LABEL_POD_NAMESPACE: namespace},
                             dns=dns.to_dict(), domain=domain, host_aliases=list(spec.get("hostAliases") or []),
                             port_mappings=[] if spec.get("hostNetwork") else port_mappings(pod))

    async def service_env(self, pod: dict) -> dict[str, str]:
        """The pod's service variables (empty while the kubelet is not running its informers)."""
        if not self.services.running and not self.services.has_synced:
            return {}
        if not await self.services.wait_for_sync(SERVICES_SYNC_WAIT):
            raise envs.ContainerConfigError("services have not yet been read at least once, cannot construct "
                                            "envvars")
        return envs.service_links(pod, self.services.indexer.list())

    async def container_env(self, pod: dict, container: dict, pod_ip: str | None) -> dict[str, str]:
        warnings: list[envs.EnvWarning] = []
        try:
            service_env = await self.service_env(pod)
            resolved = await envs.resolve_env(self.client, pod, container, node_ip=self.host_ip, pod_ip=pod_ip or "",
                                              service_env=service_env, warnings=warnings)
        except envs.ContainerConfigError as e:
            raise ContainerConfigError(str(e)) from e
        for w in warnings:
            self.event(pod, "Warning", "InvalidEnvironmentVariableNames", str(w), field=container.get("name"))
        return resolved

    async def post_start(self, worker: PodWorker, rec: ContainerRecord, spec: dict) -> bool:
        """Run the postStart hook; False (and the container killed) when it fails."""
        handler = (spec.get("lifecycle") or {}).get("postStart")
        if not handler or rec.current is None:
            return True
        result = await run_hook(handler, hook="postStart", runtime=self.runtime, container_id=rec.current.id,
                                container=spec, pod=format_pod(worker.name, worker.namespace, worker.uid),
                                pod_ip=worker.pod_ip)
        if result.ok:
            return True
        self.event(worker.pod, "Warning", result.event_reason, result.event_message, field=rec.name)
        log.warning("pod %s/%s: %s", worker.namespace, worker.name, result.message)
        await worker.kill(rec, "hook", f"FailedPostStartHook: {result.message}")
        return False

    async def run_pre_stop(self, worker: PodWorker, rec: ContainerRecord, spec: dict, deadline: float) -> None:
        handler = (spec.get("lifecycle") or {}).get("preStop")
        if not handler or rec.current is None:
            return
        result = await run_hook(handler, hook="preStop", runtime=self.runtime, container_id=rec.current.id,
                                container=spec, pod=format_pod(worker.name, worker.namespace, worker.uid),
                                pod_ip=worker.pod_ip, deadline=deadline)
        if not result.ok:
            self.event(worker.pod, "Warning", result.event_reason, result.event_message, field=rec.name)
            log.warning("pod %s/%s: %s", worker.namespace, worker.name, result.message)


def port_mappings(pod: dict) -> list[dict[str, Any]]:
    """The hostPorts of the pod's containers in CNI's portMappings form (as the kubelet's
    MakePortMappings and containerd pass them): one per container port with a hostPort, a
    repeated port name of a container skipped."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        names: set[str] = set()
        for p in c.get("ports") or []:
            proto = str(p.get("protocol") or "TCP")
            name = str(p.get("name") or f"{proto}:{p.get('containerPort')}")
            if name in names:
                continue
            names.add(name)
            if int(p.get("hostPort") or 0) <= 0:
                continue
            m: dict[str, Any] = {"hostPort": int(p["hostPort"]), "containerPort": int(p.get("containerPort") or 0),
                                 "protocol": proto.lower()}
            if p.get("hostIP"):
                m["hostIP"] = str(p["hostIP"])
            out.append(m)
    return out


__all__ = ["Kubelet", "PulledImage", "port_mappings"]
