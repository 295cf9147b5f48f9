"""The proxy process: informers on Services and EndpointSlices (and this node),
a debounced sync loop, and a backend that programs what the model says.

Events only mark Services dirty; the loop recomputes those Services' ports into
the desired state and hands the backend (previous applied state, new state).
Bursts coalesce: a sync starts at most every ``min_sync_period`` (the first
change after a quiet spell waits only ``debounce``), and whatever arrives while
a sync runs goes into the next one -- so creating 1,000 Services costs a few
syncs, not 1,000.  A sync that fails is retried as a full sync after a backoff;
a full sync also runs at start and every ``full_sync_period``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import RestClient
from . import conntrack
from .iptables import JUMPS, IptablesConfig, cleanup_input, restore_input
from .model import ServicePort, ServicePortKey, service_ports, slice_service
from .netns import CommandRunner, SocketFactory
from .nftables import NftConfig, cleanup_script, sync_script
from .userspace import UserspaceProxy

log = logging.getLogger(__name__)

MODES = ("nftables", "iptables", "userspace", "none", "auto")
State = Mapping[ServicePortKey, ServicePort]
STALE_CHAIN_GRACE = 1.0  # seconds between unreferencing a chain and deleting it (see nftables.py)


class SyncError(Exception):
    pass


class Backend(Protocol):
    name: str

    async def sync(self, old: State | None, new: State) -> None: ...

    def next_housekeeping(self) -> float | None: ...

    async def cleanup(self) -> None: ...


# -- kernel backends ---------------------------------------------------------------------------


class NftablesBackend:
    name = "nftables"
    uses_conntrack = True

    def __init__(self, runner: CommandRunner, config: NftConfig):
        self.runner, self.config = runner, config
        self._stale: dict[str, float] = {}  # chain -> when it was flushed

    async def _list(self, what: str) -> list[dict]:
        res = await self.runner.run("nft", "-j", "list", what, "ip")
        if not res.ok:
            raise SyncError(f"nft list {what}: {res.stderr.strip()}")
        items = json.loads(res.stdout or "{}").get("nftables") or []
        key = what.rstrip("s")
        return [i[key] for i in items if key in i and i[key].get("table") == self.config.table]

    async def sync(self, old: State | None, new: State) -> None:
        now = time.monotonic()
        t0 = time.perf_counter()
        due = [c for c, t in self._stale.items() if now - t >= STALE_CHAIN_GRACE]
        if old is None:
            chains = {c["name"] for c in await self._list("chains")}
            sets = {s["name"] for s in await self._list("sets")}
            plan = sync_script(None, new, self.config, existing_chains=chains, existing_sets=sets,
                               delete_chains=due)
        else:
            plan = sync_script(old, new, self.config, existing_chains=self._stale, delete_chains=due)
        t1 = time.perf_counter()
        if plan.script:
            res = await self.runner.run("nft", "-f", "-", input=plan.script)
            if not res.ok:
                raise SyncError(f"nft -f: {res.stderr.strip()[:2000]}")
        log.debug("nftables: %d lines planned in %.1f ms, applied in %.1f ms", plan.script.count("\n"),
                  (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000)
        for c in plan.deleted_chains:
            self._stale.pop(c, None)
        for c in plan.active_chains:
            self._stale.pop(c, None)
        for c in plan.stale_chains:
            if old is None:
                self._stale[c] = now  # a full sync may just have flushed map elements naming them
            else:
                self._stale.setdefault(c, now)

    def next_housekeeping(self) -> float | None:
        if not self._stale:
            return None
        return max(0.0, min(self._stale.values()) + STALE_CHAIN_GRACE - time.monotonic())

    async def cleanup(self) -> None:
        res = await self.runner.run("nft", "-f", "-", input=cleanup_script(self.config.table))
        if not res.ok:
            log.warning("removing nftables table %s: %s", self.config.table, res.stderr.strip())
        self._stale.clear()


class IptablesBackend:
    name = "iptables"
    uses_conntrack = True

    def __init__(self, runner: CommandRunner, config: IptablesConfig):
        self.runner, self.config = runner, config

    async def _nat_chains(self) -> set[str]:
        res = await self.runner.run("iptables-save", "-t", "nat")
        if not res.ok:
            raise SyncError(f"iptables-save: {res.stderr.strip()}")
        return {line[1:].split()[0] for line in res.stdout.splitlines() if line.startswith(":PINNACE-")}

    async def _restore(self, text: str) -> None:
        res = await self.runner.run("iptables-restore", "--noflush", "-w", "5", input=text)
        if not res.ok:
            raise SyncError(f"iptables-restore: {res.stderr.strip()[:2000]}")

    async def sync(self, old: State | None, new: State) -> None:
        if old is None:
            plan = restore_input(None, new, self.config, existing_chains=await self._nat_chains())
        else:
            plan = restore_input(old, new, self.config)
        await self._restore(plan.script)
        if old is None:
            # The jumps from the built-in chains, after our chains exist.
            for table, chain, spec in JUMPS:
                check = await self.runner.run("iptables", "-w", "5", "-t", table, "-C", chain, *spec)
                if not check.ok:
                    res = await self.runner.run("iptables", "-w", "5", "-t", table, "-I", chain, "1", *spec)
                    if not res.ok:
                        raise SyncError(f"iptables -t {table} -I {chain}: {res.stderr.strip()}")

    def next_housekeeping(self) -> float | None:
        return None

    async def cleanup(self) -> None:
        for table, chain, spec in JUMPS:
            while (await self.runner.run("iptables", "-w", "5", "-t", table, "-D", chain, *spec)).ok:
                pass  # a rule added twice by some accident goes too
        try:
            await self._restore(cleanup_input(await self._nat_chains()))
        except SyncError as e:
            log.warning("removing iptables chains: %s", e)


class NoBackend:
    name = "none"
    uses_conntrack = False

    async def sync(self, old: State | None, new: State) -> None:
        return None

    def next_housekeeping(self) -> float | None:
        return None

    async def cleanup(self) -> None:
        return None


async def detect_mode(runner: CommandRunner) -> str:
    """``auto``: nftables when ``nft`` works here, else iptables, else userspace."""
    if shutil.which("nft"):
        with contextlib.suppress(OSError):
            if (await runner.run("nft", "list", "tables", "ip", timeout=10)).ok:
                return "nftables"
    if shutil.which("iptables-restore"):
        with contextlib.suppress(OSError):
            if (await runner.run("iptables", "-w", "5", "-t", "nat", "-S", "PREROUTING", timeout=10)).ok:
                return "iptables"
    return "userspace"


# -- the sync loop ---------------------------------------------------------------------------


@dataclass
class SyncStats:
    count: int = 0
    full: int = 0
    failures: int = 0
    last_seconds: float = 0.0
    last_changed: int = 0


class Proxier:
    """Desired state from informer events, applied by a backend in a debounced loop."""

    def __init__(self, backend: Backend, node_name: str, *, min_sync_period: float = 0.5,
                 full_sync_period: float = 3600.0, debounce: float = 0.02,
                 conntrack_runner: CommandRunner | None = None):
        self.backend, self.node_name = backend, node_name
        self.min_sync_period, self.full_sync_period, self.debounce = min_sync_period, full_sync_period, debounce
        self.conntrack_runner = conntrack_runner
        self.state: dict[ServicePortKey, ServicePort] = {}
        self._ports_of: dict[str, list[ServicePortKey]] = {}  # "ns/name" -> its keys in state
        self.applied: dict[ServicePortKey, ServicePort] | None = None
        self._last_good: dict[ServicePortKey, ServicePort] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._need_full = True
        self.stats = SyncStats()
        self.synced = asyncio.Event()  # the first sync succeeded
        self.services: Informer | None = None
        self.slices: Informer | None = None

    # -- events --------------------------------------------------------------------------

    def service_changed(self, svc: dict) -> None:
        meta = svc.get("metadata") or {}
        self._dirty.add(f"{meta.get('namespace') or 'default'}/{meta.get('name')}")
        self._wake.set()

    def slice_changed(self, sl: dict) -> None:
        svc = slice_service(sl)
        if svc is not None:
            self._dirty.add(svc)
            self._wake.set()

    def request_full_sync(self) -> None:
        self._need_full = True
        self._wake.set()

    def attach(self, services: Informer, slices: Informer) -> None:
        self.services, self.slices = services, slices
        slices.add_index("service", lambda sl: [s] if (s := slice_service(sl)) else [])
        services.add_event_handler(self.service_changed, lambda _o, n: self.service_changed(n), self.service_changed)
        slices.add_event_handler(self.slice_changed, self._slice_updated, self.slice_changed)

    def _slice_updated(self, old: dict, new: dict) -> None:
        self.slice_changed(old)  # its service label may have changed
        self.slice_changed(new)

    def _recompute(self, names: Iterable[str]) -> int:
        """Refresh the service ports of ``names`` in :attr:`state`; returns how many changed."""
        assert self.services is not None and self.slices is not None
        changed = 0
        for name in names:
            for key in self._ports_of.pop(name, ()):
                self.state.pop(key, None)
            svc = self.services.indexer.get(name)
            if svc is None:
                continue
            try:
                sps = service_ports(svc, self.slices.indexer.by_index("service", name), self.node_name)
            except (TypeError, ValueError, KeyError) as e:  # a malformed object must not stop the proxy
                log.warning("proxy: ignoring Service %s: %s", name, e)
                sps = []
            for sp in sps:
                self.state[sp.key] = sp
            self._ports_of[name] = [sp.key for sp in sps]
            changed += len(sps)
        return changed

    # -- loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_start = -1e9
        last_full = loop.time()
        backoff = 0.5
        while True:
            # Wait for a change, housekeeping (stale chains) or the periodic full sync.
            timeout = max(0.0, last_full + self.full_sync_period - loop.time())
            house = self.backend.next_housekeeping()
            if house is not None:
                timeout = min(timeout, house)
            if not (self._dirty or self._need_full):
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
            if loop.time() - last_full >= self.full_sync_period:
                self._need_full = True
            # Coalesce: a short debounce, and no more than one sync per min_sync_period.
            await asyncio.sleep(max(self.debounce, last_start + self.min_sync_period - loop.time()))
            last_start = loop.time()
            full = self._need_full or self.applied is None
            names, self._dirty = self._dirty, set()
            self._need_full = False
            if full:
                names |= set(self._ports_of) | set(self.services.indexer.keys() if self.services else ())
            self._recompute(names)
            new = dict(self.state)
            try:
                await self._sync(None if full else self.applied, new, len(names))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats.failures += 1
                self.applied = None  # unknown: next time, full
                self._need_full = True
                log.error("proxy sync (%s) failed: %s; retrying in %.1fs", self.backend.name, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            if full:
                last_full = loop.time()

    async def _sync(self, old: dict[ServicePortKey, ServicePort] | None, new: dict[ServicePortKey, ServicePort],
                    services: int) -> None:
        start = time.perf_counter()
        await self.backend.sync(old, new)
        self.applied = new
        elapsed = time.perf_counter() - start
        self.stats.count += 1
        self.stats.full += old is None
        self.stats.last_seconds, self.stats.last_changed = elapsed, services
        endpoints = sum(len(sp.endpoints) for sp in new.values())
        log.info("proxy %s sync (%s, %d services changed): %d service ports, %d endpoints in %.1f ms",
                 self.backend.name, "full" if old is None else "incremental", services, len(new), endpoints,
                 elapsed * 1000)
        if self.conntrack_runner is not None:
            cmds = conntrack.stale_udp_commands(self._last_good, new)
            if cmds:
                await conntrack.flush(self.conntrack_runner, cmds)
        self._last_good = new
        self.synced.set()


# -- start / stop ----------------------------------------------------------------------------


@dataclass
class RunningProxy:
    mode: str
    proxier: Proxier | None = None
    factory: SharedInformerFactory | None = None
    client: RestClient | None = None
    own_client: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def applied(self) -> Mapping[ServicePortKey, ServicePort]:
        """What the backend has installed (empty before the first sync)."""
        return (self.proxier.applied or {}) if self.proxier else {}

    @property
    def stats(self) -> SyncStats:
        return self.proxier.stats if self.proxier else SyncStats()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True once the first sync succeeded (always, in mode none)."""
        if self.proxier is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self.proxier.synced.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop syncing and remove everything installed (rules, addresses, listeners)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None
        if self.factory is not None:
            await self.factory.stop()
        if self.proxier is not None:
            await self.proxier.backend.cleanup()
        if self.own_client and self.client is not None:
            await self.client.close()


def _pod_cidr(node: dict) -> str | None:
    spec = node.get("spec") or {}
    cidrs = [c for c in (spec.get("podCIDRs") or [spec.get("podCIDR")]) if c and ":" not in c]
    return cidrs[0] if cidrs else None


def _node_ips(node: dict) -> list[str]:
    addrs = (node.get("status") or {}).get("addresses") or ()
    return [a["address"] for a in addrs if a.get("type") in ("InternalIP", "ExternalIP") and ":" not in a["address"]]


async def start_proxy(client_or_kubeconfig: RestClient | str | Path, node_name: str, mode: str = "auto", *,
                      cluster_cidr: str | None = "10.42.0.0/16", pod_bridge: str | None = "cni0",
                      pod_cidr: str | None = None, node_ips: Iterable[str] = (), min_sync_period: float = 0.5,
                      full_sync_period: float = 3600.0, netns: str | None = None,
                      sync_timeout: float | None = None) -> RunningProxy:
    """Start the proxy for ``node_name`` and return at once (the first sync follows
    when the informers have listed; ``wait_for_sync`` waits for it).

    ``mode``: nftables, iptables, userspace, none, or auto (nftables if ``nft`` works,
    else iptables, else userspace).  ``cluster_cidr``: the pod network (ClusterIP
    traffic from outside it is masqueraded).  ``pod_bridge``/``pod_cidr``: DNATed
    traffic from the node's pods back into their bridge is masqueraded (``pod_cidr``
    defaults to the Node's spec.podCIDR, then ``cluster_cidr``).  ``node_ips``: where
    userspace NodePorts listen (default: the Node's addresses, else all).  ``netns``:
    program that network namespace instead of the current one (tests, benchmarks).
    ``sync_timeout``: if given, wait that long for the first sync."""
    if mode not in MODES:
        raise ValueError(f"unknown proxy mode {mode!r} (one of {', '.join(MODES)})")
    runner = CommandRunner(netns)
    if mode == "auto":
        mode = await detect_mode(runner)
        log.info("proxy mode: %s", mode)
    if mode == "none":
        return RunningProxy(mode)

    own = not isinstance(client_or_kubeconfig, RestClient)
    client = RestClient.load(client_or_kubeconfig, user_agent="pinnace-proxy") if own \
        else client_or_kubeconfig  # type: ignore[assignment]
    factory = SharedInformerFactory(client)  # type: ignore[arg-type]
    services = factory.informer("v1", "services")
    slices = factory.informer("discovery.k8s.io/v1", "endpointslices")
    node_inf = factory.informer("v1", "nodes", field_selector=f"metadata.name={node_name}")

    ips = list(node_ips)
    backend: Backend
    if mode == "nftables":
        backend = NftablesBackend(runner, NftConfig(cluster_cidr=cluster_cidr, pod_bridge=pod_bridge,
                                                    pod_cidr=pod_cidr))
    elif mode == "iptables":
        backend = IptablesBackend(runner, IptablesConfig(cluster_cidr=cluster_cidr, pod_bridge=pod_bridge,
                                                         pod_cidr=pod_cidr))
    else:
        backend = UserspaceProxy(runner, SocketFactory(netns), ips)
    flush_udp = getattr(backend, "uses_conntrack", False)
    if flush_udp and shutil.which("conntrack") is None:
        log.warning("conntrack is not installed: stale UDP flows will not be flushed (apt-get install conntrack)")
        flush_udp = False
    proxier = Proxier(backend, node_name, min_sync_period=min_sync_period, full_sync_period=full_sync_period,
                      conntrack_runner=runner if flush_udp else None)
    proxier.attach(services, slices)

    def node_seen(node: dict) -> None:
        # The node's pod CIDR (for the bridge masquerade) and addresses (userspace NodePorts).
        if pod_cidr is None and isinstance(backend, (NftablesBackend, IptablesBackend)):
            cidr = _pod_cidr(node)
            if cidr and cidr != backend.config.pod_cidr:
                backend.config = replace(backend.config, pod_cidr=cidr)  # type: ignore[arg-type]
                proxier.request_full_sync()
        if not ips and isinstance(backend, UserspaceProxy):
            found = _node_ips(node)
            if found and found != backend.node_ips:
                backend.node_ips = found
                proxier.request_full_sync()

    node_inf.add_event_handler(node_seen, lambda _o, n: node_seen(n), None)
    factory.start()
    running = RunningProxy(mode, proxier, factory, client, own)  # type: ignore[arg-type]

    async def run() -> None:
        # No sync before both caches are full: a half-listed state would remove live rules.
        while not (await services.wait_for_sync(5.0) and await slices.wait_for_sync(5.0)):
            log.info("proxy: waiting for the Service and EndpointSlice lists")
        await node_inf.wait_for_sync(5.0)
        await proxier.run()

    running.task = asyncio.create_task(run(), name=f"proxy-{mode}")
    if sync_timeout is not None and not await running.wait_for_sync(sync_timeout):
        await running.stop()
        raise TimeoutError(f"the proxy did not sync within {sync_timeout}s")
    return running


__all__ = ["MODES", "IptablesBackend", "NftablesBackend", "Proxier", "RunningProxy", "SyncStats", "detect_mode",
           "start_proxy"]
