"""The node's pod network: a network namespace per pod sandbox wired by CNI, and host-gw
routes to the other nodes' pods.

Everything here acts on the network namespace the agent runs in (tests start agents inside
namespaces they made; nothing here may touch the host's own network there).

- :class:`CniNetwork` is what the runc runtime calls per sandbox: ``plan`` (no side effects: what
  the runtime records before acting, so a crash mid-way can still be undone), ``attach`` (a pinned
  network namespace -- an nsfs bind mount of an ``unshare``'d child's namespace on
  ``<netns_dir>/<sandbox id>`` -- then CNI ADD of ``lo`` and of the conflist), ``check`` (CNI
  CHECK) and ``detach`` (CNI DEL in reverse, then unmount and delete the namespace file).
- :class:`NodeNetwork` waits for the Node's ``spec.podCIDR`` (set by the node IPAM controller),
  then writes the conflist, turns on IPv4 forwarding, masquerades what the pods send out of
  the cluster (:class:`ClusterMasquerade`: pod-to-pod traffic keeps its source address, as
  the Kubernetes network model requires) and keeps the host-gw routes: for every
  other Node with a podCIDR and an InternalIP, ``<podCIDR> via <InternalIP>``, tagged with
  :data:`ROUTE_PROTO` so stale ones are found and removed; routes of any other protocol are never
  touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from ..client.informer import Informer
from ..client.rest import RestClient
from . import cni, mounts
from .runtime.base import SandboxConfig

log = logging.getLogger(__name__)

# The routing protocol number our host-gw routes carry (``ip route ... proto 147``): unassigned in
# iproute2's rt_protos, so a listing by it finds exactly ours.
ROUTE_PROTO = 147
RESYNC_PERIOD = 30.0  # routes are re-checked this often even without Node events (someone removed one)

class NetworkNotReady(Exception):
    """The pod network is not configured yet (no podCIDR): sandboxes cannot be created."""


# ---- the runtime's pod network ------------------------------------------------------------------


def _sandbox_args(sandbox_id: str, config: SandboxConfig) -> list[tuple[str, str]]:
    # The CNI_ARGS the kubelet's CNI driver passes (plugins ignore what they do not know).
    return [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", config.namespace), ("K8S_POD_NAME", config.name),
            ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id), ("K8S_POD_UID", config.pod_uid)]


class CniNetwork:
    """Pod sandboxes' networking through CNI (see the module docstring).

    ``state_dir`` (the agent's ``<data dir>/cni``) holds ``networks/`` (host-local's
    allocations: per agent, so two agents on one machine never share them) and, unless
    ``netns_dir`` says otherwise, ``netns/`` (the pinned namespaces)."""

    def __init__(self, state_dir: str | Path, *, bin_dirs: Iterable[str | Path] = cni.DEFAULT_BIN_DIRS,
                 conf_dir: str | Path | None = None, netns_dir: str | Path | None = None,
                 plugins: cni.CniPlugins | None = None):
        self.state_dir = Path(state_dir)
        self.conf_dir = Path(conf_dir) if conf_dir else self.state_dir / "net.d"
        self.netns_dir = Path(netns_dir) if netns_dir else self.state_dir / "netns"
        self.ipam_dir = self.state_dir / "networks"
        self.plugins = plugins or cni.CniPlugins(bin_dirs)
        self.conflist: dict[str, Any] | None = None
        self.pod_cidr: str | None = None
        self._ready = asyncio.Event()

    # -- configuration

    @property
    def ready(self) -> bool:
        return self.conflist is not None

    async def wait_ready(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def configure(self, pod_cidr: str, *, ip_masq: bool = True) -> Path:
        """Write the conflist for the node's podCIDR; from now on sandboxes can be created.
        ``ip_masq=False`` when :class:`ClusterMasquerade` masquerades instead of the plugin."""
        conflist = cni.bridge_conflist(pod_cidr, ipam_data_dir=self.ipam_dir, ip_masq=ip_masq)
        path = cni.write_conflist(self.conf_dir, conflist)
        self.conflist, self.pod_cidr = conflist, pod_cidr
        self._ready.set()
        log.info("pod network: CNI bridge %s over %s (%s)", cni.BRIDGE_NAME, pod_cidr, path)
        return path

    def netns_path(self, sandbox_id: str) -> Path:
        if not re.fullmatch(r"[0-9A-Za-z_.-]+", sandbox_id):
            raise ValueError(f"invalid sandbox id {sandbox_id!r}")
        return self.netns_dir / sandbox_id

    # -- per sandbox

    def plan(self, sandbox_id: str, config: SandboxConfig) -> dict[str, Any]:
        """What :meth:`attach` will do, as a JSON-able record the runtime keeps (and passes back
        to ``attach``, ``check`` and ``detach``)."""
        if self.conflist is None:
            raise NetworkNotReady("network is not ready: container runtime network not ready: "
                                  "NetworkReady=false reason:NetworkPluginNotReady message:the node has no "
                                  "podCIDR yet")
        netns = self.netns_path(sandbox_id)
        rt = cni.RuntimeConf(container_id=sandbox_id, netns=str(netns), ifname="eth0",
                             args=_sandbox_args(sandbox_id, config),
                             capability_args={"portMappings": list(config.port_mappings)}
                             if config.port_mappings else {})
        return {"netns": str(netns), "conflist": self.conflist, "runtime": rt.to_dict(), "result": None,
                "ip": None, "bin_dirs": list(self.plugins.bin_dirs)}

    async def attach(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Create the namespace and ADD it to the network; ``plan`` completed with the result
        and the pod IP.  On failure the caller calls :meth:`detach` with the plan."""
        netns = plan["netns"]
        rt = cni.RuntimeConf.from_dict(plan["runtime"])
        await mounts.pin_namespaces({"net": netns})
        await self.plugins.add(cni.loopback_conf(plan["conflist"]["cniVersion"]),
                               cni.RuntimeConf(container_id=rt.container_id, netns=netns, ifname="lo",
                                               args=rt.args))
        result = await self.plugins.add_list(plan["conflist"], rt)
        plan["result"] = result
        ips = cni.result_ips(result, rt.ifname)
        if not ips:
            raise cni.CniError(str(plan["conflist"]["plugins"][0].get("type")), "ADD",
                               f"the result gives {rt.ifname} no address: {json.dumps(result)}")
        plan["ip"] = ips[0]
        return plan

    async def check(self, plan: Mapping[str, Any]) -> None:
        """CNI CHECK of an attachment (raises :class:`cni.CniError` when it is broken)."""
        rt = cni.RuntimeConf.from_dict(plan["runtime"])
        if not mounts.is_pinned(plan["netns"]):
            raise cni.CniError("", "CHECK", f"network namespace {plan['netns']} is gone")
        await self.plugins.check_list(plan["conflist"], rt, plan.get("result"),
                                      spurious=cni.portmap_ipv6_check_bug(plan.get("result")))

    async def detach(self, plan: Mapping[str, Any], *, netns: str | None = None) -> None:
        """CNI DEL (reverse order: the interface, the address, the masquerade and hostPort
        rules), then the namespace file.  Idempotent.  ``netns``: another path to the same
        namespace (``/proc/<pid>/ns/net`` of a process in it) when the pinned file is not
        mounted here."""
        rt = cni.RuntimeConf.from_dict(plan["runtime"])
        pinned = plan["netns"]
        # A namespace that is gone (a reboot emptied the file) is passed as "": plugins then
        # release what they can outside it (the address; not the bridge plugin's ipMasq rule).
        rt.netns = pinned if mounts.is_pinned(pinned) else (netns or "")
        await self.plugins.del_list(plan["conflist"], rt, plan.get("result"))
        if rt.netns:
            try:
                await self.plugins.delete(cni.loopback_conf(plan["conflist"]["cniVersion"]),
                                          cni.RuntimeConf(container_id=rt.container_id, netns=rt.netns,
                                                          ifname="lo", args=rt.args))
            except cni.CniError as e:  # lo goes with the namespace anyway
                log.debug("pod network: loopback DEL for %s: %s", rt.container_id[:12], e)
        await asyncio.to_thread(mounts.unpin, pinned)


# ---- node-level setup: forwarding and host-gw routes ------------------------------------------


def enable_ip_forward() -> None:
    """net.ipv4.ip_forward=1 in our network namespace (pods reach beyond the bridge)."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


def node_internal_ip(node: Mapping[str, Any], version: int = 4) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(addr.get("address", "")).version == version:
                    return str(addr["address"])
    return None


def node_pod_cidrs(node: Mapping[str, Any], version: int = 4) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    out = []
    for c in cidrs:
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(c, strict=False)
            if net.version == version:
                out.append(str(net))
    return out


def desired_routes(nodes: Iterable[Mapping[str, Any]], self_name: str, self_ip: str | None = None) -> dict[str, str]:
    """host-gw: {other node's podCIDR: its InternalIP} for every other node that has both."""
    out: dict[str, str] = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        if name == self_name:
            continue
        gw = node_internal_ip(node)
        if gw is None or gw == self_ip:
            continue
        for cidr in node_pod_cidrs(node):
            out[cidr] = gw
    return out


async def _ip(*args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise OSError(errno.EIO, f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return out.decode()


def _route_dst(route: Mapping[str, Any]) -> str:
    dst = str(route.get("dst", ""))
    if dst == "default":
        return "0.0.0.0/0"
    return str(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))


class HostGwRoutes:
    """Routes to other nodes' pods, tagged ``proto ROUTE_PROTO`` in the main table."""

    def __init__(self, proto: int = ROUTE_PROTO):
        self.proto = proto

    async def routes(self) -> list[dict[str, Any]]:
        """Every IPv4 route of the main table (``ip -j route show``)."""
        return json.loads(await _ip("-j", "-4", "route", "show", "table", "main") or "[]")

    async def ours(self) -> dict[str, str]:
        """{dst: gateway} of our routes."""
        out = await _ip("-j", "-4", "route", "show", "table", "main", "proto", str(self.proto))
        return {_route_dst(r): str(r.get("gateway", "")) for r in json.loads(out or "[]")}

    async def sync(self, desired: Mapping[str, str]) -> list[str]:
        """Make our routes exactly ``desired``; problems (a gateway not on a link, a foreign route
        for the same destination) are returned, not raised, and the rest is still done."""
        problems: list[str] = []
        current = await self.ours()
        foreign = {_route_dst(r): r for r in await self.routes()
                   if str(r.get("protocol", "")) not in (str(self.proto),)}
        for dst, gw in sorted(desired.items()):
            if current.get(dst) == gw:
                continue
            if dst in foreign and dst not in current:
                problems.append(f"not routing {dst} via {gw}: a route for it exists already "
                                f"({json.dumps(foreign[dst])})")
                continue
            try:
                await _ip("-4", "route", "replace", dst, "via", gw, "proto", str(self.proto))
            except OSError as e:
                problems.append(str(e))
        for dst in sorted(set(current) - set(desired)):
            try:
                await _ip("-4", "route", "del", dst, "proto", str(self.proto))
            except OSError as e:
                problems.append(str(e))
        return problems


class ClusterMasquerade:
    """Source NAT for traffic from this node's pods to anywhere outside the cluster CIDR,
    as flannel and k3s do: pods on other nodes see the real pod address, the rest of the
    world sees the node's.  One nftables table (``ip pinnace-masquerade``), replaced as a
    whole in one transaction, so re-running it is harmless."""

    TABLE = "pinnace-masquerade"

    def __init__(self, cluster_cidr: str, bridge: str = cni.BRIDGE_NAME):
        self.cluster_cidr, self.bridge = str(ipaddress.ip_network(cluster_cidr, strict=False)), bridge

    @staticmethod
    def available() -> bool:
        return shutil.which("nft") is not None

    def script(self, pod_cidr: str) -> str:
        return (f"table ip {self.TABLE}\ndelete table ip {self.TABLE}\n"
                f"table ip {self.TABLE} {{\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                f"    ip saddr {pod_cidr} ip daddr != {self.cluster_cidr} oifname != \"{self.bridge}\" masquerade\n"
                "  }\n}\n")

    async def apply(self, pod_cidr: str) -> None:
        proc = await asyncio.create_subprocess_exec("nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(self.script(pod_cidr).encode())
        if proc.returncode != 0:
            raise OSError(f"nft: {err.decode(errors='replace').strip()}")


class NodeNetwork:
    """Per agent: the pod network's node-level part (see the module docstring), fed by a Node
    informer."""

    def __init__(self, client: RestClient, node_name: str, network: CniNetwork, *, node_ip: str | None = None,
                 routes: HostGwRoutes | None = None, resync_period: float = RESYNC_PERIOD,
                 cluster_cidr: str | None = None):
        self.client, self.node_name, self.network, self.node_ip = client, node_name, network, node_ip
        # Without nft (or a known cluster CIDR) the bridge plugin's own masquerade stays on.
        self.masquerade = (ClusterMasquerade(cluster_cidr) if cluster_cidr and ClusterMasquerade.available()
                           else None)
        self.routes = routes or HostGwRoutes()
        self.resync_period = resync_period
        self.informer = Informer(client, "v1", "nodes")
        self.informer.add_event_handler(on_add=lambda _n: self._kick(), on_update=lambda _o, _n: self._kick(),
                                        on_delete=lambda _n: self._kick())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_problems: list[str] = []

    @property
    def ready(self) -> bool:
        return self.network.ready

    def _kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.informer.start()
        self._task = asyncio.create_task(self._run(), name="node-network")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.informer.stop()

    async def _run(self) -> None:
        await self.informer.wait_for_sync()
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod network: sync failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_period):
                    await self._wake.wait()

    async def sync(self) -> None:
        nodes = self.informer.indexer.list()
        me = next((n for n in nodes if (n.get("metadata") or {}).get("name") == self.node_name), None)
        if me is not None and not self.network.ready:
            cidrs = node_pod_cidrs(me)
            if cidrs:
                if self.masquerade is not None:
                    await self.masquerade.apply(cidrs[0])  # before any pod can send
                await asyncio.to_thread(partial(self.network.configure, cidrs[0],
                                                ip_masq=self.masquerade is None))
                try:
                    await asyncio.to_thread(enable_ip_forward)
                except OSError as e:
                    log.warning("pod network: cannot enable IPv4 forwarding: %s", e)
        desired = desired_routes(nodes, self.node_name, self.node_ip)
        problems = await self.routes.sync(desired)
        if problems != self.last_problems:
            for p in problems:
                log.warning("pod network: host-gw routes: %s", p)
        self.last_problems = problems


__all__ = ["ROUTE_PROTO", "ClusterMasquerade", "CniNetwork", "HostGwRoutes",
           "NetworkNotReady", "NodeNetwork", "desired_routes", "enable_ip_forward", "node_internal_ip",
           "node_pod_cidrs"]
