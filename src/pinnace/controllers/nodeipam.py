"""Node IPAM (Kubernetes' ``pkg/controller/nodeipam``, the range allocator): every Node
gets ``spec.podCIDR``/``spec.podCIDRs``, a block of ``--node-cidr-mask-size`` bits
carved from ``--cluster-cidr``.

The allocation map is rebuilt from the Nodes themselves at start (after the informer's
first list, before any allocation), and every CIDR a Node already holds — whoever set it,
such as the simulated nodes that bring their own — counts as taken, so a CIDR is never
handed out twice.  Nodes without one are given the next free block (next-fit, so a block
just released is not reused at once) with a patch; the API server refuses to change a
podCIDR once set, so a race with another writer loses cleanly.  A deleted Node's block
is released, and Nodes that waited for a free block are tried again.  When the range is
exhausted the Node gets a ``CIDRNotAvailable`` event, as upstream records it.
"""

from __future__ import annotations

import ipaddress
import logging

from ..client.cache import split_key
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from .base import QueueController

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CIDRRangeFull(Exception):
    """Every block of the cluster CIDR is taken."""


class CidrSet:
    """The blocks of one cluster CIDR (Kubernetes' ``cidrset``): which are taken, next-fit
    allocation."""

    def __init__(self, cluster_cidr: str, mask_size: int):
        net = ipaddress.ip_network(cluster_cidr, strict=True)
        if not net.prefixlen <= mask_size <= net.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} must be between the cluster CIDR's prefix "
                             f"length ({net.prefixlen}) and {net.max_prefixlen}")
        if mask_size - net.prefixlen > 16:
            raise ValueError(f"cluster CIDR {cluster_cidr} with mask size {mask_size} makes more than 65536 blocks")
        self.network, self.mask_size = net, mask_size
        self.size = 1 << (mask_size - net.prefixlen)
        self._step = 1 << (net.max_prefixlen - mask_size)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def cidr(self, index: int) -> str:
        return str(ipaddress.ip_network((int(self.network.network_address) + index * self._step, self.mask_size)))

    def index_of(self, cidr: str) -> int | None:
        """The block ``cidr`` is, or None if it is not exactly one of ours."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size or not net.subnet_of(self.network):
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step

    def occupy(self, index: int) -> None:
        self._used.add(index)

    def release(self, index: int) -> None:
        self._used.discard(index)

    def allocate_next(self) -> int:
        for i in range(self.size):
            candidate = (self._next + i) % self.size
            if candidate not in self._used:
                self._used.add(candidate)
                self._next = (candidate + 1) % self.size
                return candidate
        raise CIDRRangeFull(f"no free CIDR of /{self.mask_size} left in {self.network}")


def node_pod_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIpamController(QueueController):
    """``NodeIpamController(client, factory, recorder, cluster_cidr=..., node_cidr_mask_size=...)``;
    keys are Node names."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, cluster_cidr: str = DEFAULT_CLUSTER_CIDR, node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE):
        # One worker: allocations are decided one at a time against one map.
        super().__init__(client, factory, recorder, component="node-controller", queue="nodeipam", workers=1)
        self.cidrs = CidrSet(cluster_cidr, node_cidr_mask_size)
        self.node_informer = self.informer("v1", "nodes")
        self.node_lister = self.node_informer.lister
        self._owner: dict[int, str] = {}  # block -> the node holding it
        self._waiting: set[str] = set()  # nodes refused for want of a free block
        self._rebuilt = False
        self.node_informer.add_event_handler(on_add=self._node_seen, on_update=lambda _o, n: self._node_seen(n),
                                             on_delete=self._node_deleted)

    @staticmethod
    def key(obj: dict) -> str:
        return (obj.get("metadata") or {}).get("name", "")

    # -- the allocation map ------------------------------------------------------------------------

    def _occupy(self, node: dict) -> None:
        name = node["metadata"]["name"]
        for cidr in node_pod_cidrs(node):
            index = self.cidrs.index_of(cidr)
            if index is None:
                if ipaddress.ip_network(cidr, strict=False).version == self.cidrs.network.version:
                    log.debug("node %s: podCIDR %s is outside cluster CIDR %s; not tracked", name, cidr,
                              self.cidrs.network)
                continue
            holder = self._owner.get(index)
            if holder is not None and holder != name:
                log.warning("nodes %s and %s both hold podCIDR %s", holder, name, cidr)
                continue
            self.cidrs.occupy(index)
            self._owner[index] = name

    def _release(self, name: str) -> None:
        for index in [i for i, holder in self._owner.items() if holder == name]:
            del self._owner[index]
            self.cidrs.release(index)

    def allocated(self) -> dict[str, str]:
        """CIDR -> node, as this controller sees it."""
        return {self.cidrs.cidr(i): n for i, n in sorted(self._owner.items())}

    # -- events ---------------------------------------------------------------------------------

    def _node_seen(self, node: dict) -> None:
        # Taken blocks are recorded at once, on the event loop: an allocation decided
        # later must already know them.
        if self._rebuilt:
            self._occupy(node)
        if not node_pod_cidrs(node):
            self.enqueue(node)

    def _node_deleted(self, node: dict) -> None:
        name = node["metadata"]["name"]
        self._release(name)
        self._waiting.discard(name)
        for waiting in sorted(self._waiting):
            self.queue.add(waiting)  # a block is free again

    async def _run(self) -> None:
        await self.node_informer.wait_for_sync()
        for node in self.node_lister.list():
            self._occupy(node)
        self._rebuilt = True
        log.info("node IPAM: %d of %d /%d blocks of %s in use", len(self.cidrs), self.cidrs.size,
                 self.cidrs.mask_size, self.cidrs.network)
        await self._run_workers()

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    # -- sync -----------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        node = self.node_lister.get(name)
        if node is None or node_pod_cidrs(node):
            self._waiting.discard(name)
            return
        # A block we gave it whose write the cache has not shown yet: give the same again.
        index = next((i for i, holder in self._owner.items() if holder == name), None)
        if index is None:
            try:
                index = self.cidrs.allocate_next()
            except CIDRRangeFull as e:
                if name not in self._waiting:
                    log.warning("node %s: %s", name, e)
                    self.recorder.event(node, "Normal", "CIDRNotAvailable",
                                        f"Node {name} status is now: CIDRNotAvailable")
                self._waiting.add(name)
                return  # tried again when a node goes
            self._owner[index] = name
        cidr = self.cidrs.cidr(index)
        try:
            await self.client.patch("v1", "nodes", name, {"metadata": {"uid": node["metadata"].get("uid")},
                                                          "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except ApiException as e:
            # Gone, replaced, or given a CIDR by someone else meanwhile: ours is free again
            # (only ours: what the node may have been given meanwhile stays taken).
            if self._owner.get(index) == name:
                del self._owner[index]
                self.cidrs.release(index)
            if e.status in (404, 409, 422):
                if e.status == 422:
                    log.info("node %s: podCIDR not set (%s); re-reading it", name, e.message or e)
                    self.queue.add_rate_limited(name)
                return
            self.recorder.event(node, "Warning", "CIDRAssignmentFailed",
                                f"Node {name} status is now: CIDRAssignmentFailed")
            raise
        self._waiting.discard(name)
        log.info("node %s: podCIDR %s", name, cidr)


__all__ = ["DEFAULT_CLUSTER_CIDR", "DEFAULT_NODE_CIDR_MASK_SIZE", "CIDRRangeFull", "CidrSet", "NodeIpamController",
           "node_pod_cidrs"]
