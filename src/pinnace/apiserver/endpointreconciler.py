"""The ``kubernetes`` Service's endpoints follow the live API servers (Kubernetes' "lease"
endpoint reconciler, with the API server identity Leases as the record).

Each API server holds a Lease ``kube-system/apiserver-<id>`` labelled
``apiserver.kubernetes.io/identity: kube-apiserver``, its id stable for a host, advertise
address and port (a restart takes its own Lease back).  The Lease carries holderIdentity,
renewTime and leaseDurationSeconds, and the advertise address and port in annotations.
Every ``interval`` seconds the server renews it, reads every identity Lease, and rewrites
``default/kubernetes`` Endpoints and EndpointSlice to the addresses of the unexpired ones
when that set changed (one subset, and one slice, per port: API servers normally share
one).  On a clean shutdown it deletes its Lease and writes the endpoints without itself.
As upstream, it never writes an empty address list: the last server leaving leaves its
address, which is right again when it comes back.  Leases expired for long (a server gone
for good) are deleted.

All servers compute the same result from the same Leases, so several of them agree
instead of fighting; writes carry the resourceVersion they read, and a conflict is tried
again at the next round.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import hashlib
import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass

from ..api.times import now_micro_time, parse_time
from . import errors
from .registry import DeleteOptions, ListOptions, Registry, RequestContext

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY_VALUE = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ADDRESS_ANNOTATION = "pinnace.io/advertise-address"
PORT_ANNOTATION = "pinnace.io/advertise-port"
SERVICE_NAMESPACE, SERVICE_NAME = "default", "kubernetes"
PORT_NAME = "https"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_INTERVAL = 5.0
# Leases expired for this many lease durations belong to servers gone for good.
GC_AFTER_DURATIONS = 20


def _ctx() -> RequestContext:
    return RequestContext(user="system:apiserver", groups=("system:masters",), field_manager="kube-apiserver")


def apiserver_id(address: str, port: int, hostname: str | None = None) -> str:
    """``apiserver-<hash>``: stable for one host, advertise address and port (upstream
    hashes the host name alone; several servers on one host need the rest)."""
    digest = hashlib.sha256(f"{hostname or socket.gethostname()}|{address}|{port}".encode()).digest()[:16]
    return "apiserver-" + base64.b32encode(digest).decode().rstrip("=").lower()


@dataclass(frozen=True, order=True)
class ApiServerEndpoint:
    port: int
    address: str


def _ip_sort_key(ip: str) -> tuple:
    try:
        a = ipaddress.ip_address(ip)
        return (a.version, int(a))
    except ValueError:
        return (9, ip)


def live_endpoints(leases: list[dict], now: dt.datetime) -> set[ApiServerEndpoint]:
    """The advertised endpoints of the identity Leases not yet expired at ``now``."""
    out = set()
    for lease in leases:
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        annotations = meta.get("annotations") or {}
        address, port = annotations.get(ADDRESS_ANNOTATION), annotations.get(PORT_ANNOTATION)
        renewed = parse_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or 0
        if not address or not port or renewed is None:
            continue
        if renewed + dt.timedelta(seconds=duration) < now:
            continue
        try:
            out.add(ApiServerEndpoint(int(port), address))
        except ValueError:
            continue
    return out


def desired_endpoints(eps: set[ApiServerEndpoint]) -> dict:
    """default/kubernetes Endpoints: one subset per port, addresses sorted."""
    by_port: dict[int, list[str]] = {}
    for ep in eps:
        by_port.setdefault(ep.port, []).append(ep.address)
    subsets = [{"addresses": [{"ip": ip} for ip in sorted(ips, key=_ip_sort_key)],
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}
               for port, ips in sorted(by_port.items())]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "labels": {SKIP_MIRROR_LABEL: "true"}},
            "subsets": subsets}


def desired_slices(eps: set[ApiServerEndpoint]) -> list[dict]:
    """The EndpointSlices matching :func:`desired_endpoints`: ``kubernetes`` for the lowest
    port, ``kubernetes-<port>`` for any other."""
    out = []
    for i, subset in enumerate(desired_endpoints(eps)["subsets"]):
        port = subset["ports"][0]["port"]
        ips = [a["ip"] for a in subset["addresses"]]
        v6 = all(":" in ip for ip in ips)
        out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": SERVICE_NAME if i == 0 else f"{SERVICE_NAME}-{port}",
                                 "namespace": SERVICE_NAMESPACE, "labels": {SERVICE_NAME_LABEL: SERVICE_NAME}},
                    "addressType": "IPv6" if v6 else "IPv4",
                    "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
                    "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]})
    return out


class EndpointReconciler:
    """``EndpointReconciler(registry, address, port)``; ``await start()`` (a first round, then
    every ``interval``), ``await stop()`` (removes this server)."""

    def __init__(self, registry: Registry, address: str, port: int, *, identity: str | None = None,
                 lease_duration: float = DEFAULT_LEASE_DURATION, interval: float = DEFAULT_INTERVAL):
        self.registry = registry
        self.endpoint = ApiServerEndpoint(port, address)
        self.name = identity or apiserver_id(address, port)
        self.holder = f"{self.name}_{uuid.uuid4()}"
        self.lease_duration, self.interval = lease_duration, interval
        self._task: asyncio.Task[None] | None = None
        self._lease_type = self._rtype("coordination.k8s.io", "v1", "leases")
        self._ep_type = self._rtype("", "v1", "endpoints")
        self._slice_type = self._rtype("discovery.k8s.io", "v1", "endpointslices")

    def _rtype(self, group: str, version: str, plural: str):
        rtype = self.registry.resources.get(group, version, plural)
        assert rtype is not None
        return rtype

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.reconcile()
        except Exception as e:  # storage trouble at start: the loop tries again
            log.warning("kubernetes service endpoints: first reconcile failed: %s", e)
        self._task = asyncio.create_task(self._loop(), name="endpoint-reconciler")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("kubernetes service endpoints: reconcile failed: %s", e,
                            exc_info=log.isEnabledFor(logging.DEBUG))

    async def stop(self) -> None:
        """Stop renewing, remove our Lease and our address (when another server remains)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            with contextlib.suppress(errors.ApiError):
                await self.registry.delete(self._lease_type, LEASE_NAMESPACE, self.name, DeleteOptions(), _ctx())
            await self._write_endpoints(await self._live(include_self=False))
        except Exception as e:
            log.warning("kubernetes service endpoints: could not remove this server: %s", e)

    # -- one round -------------------------------------------------------------------------------

    async def reconcile(self) -> set[ApiServerEndpoint]:
        """Renew our Lease, then make the endpoints list the live servers; returns them."""
        await self._renew()
        live = await self._live(include_self=True)
        await self._write_endpoints(live)
        return live

    def _lease(self, old: dict | None) -> dict:
        now = now_micro_time()
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                              "labels": {IDENTITY_LABEL: IDENTITY_VALUE, HOSTNAME_LABEL: socket.gethostname()},
                              "annotations": {ADDRESS_ANNOTATION: self.endpoint.address,
                                              PORT_ANNOTATION: str(self.endpoint.port)}},
                 "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                          "acquireTime": now, "renewTime": now}}
        if old is not None:
            meta = old["metadata"]
            lease["metadata"]["resourceVersion"] = meta.get("resourceVersion", "")
            lease["metadata"]["labels"] = {**(meta.get("labels") or {}), **lease["metadata"]["labels"]}
            lease["metadata"]["annotations"] = {**(meta.get("annotations") or {}), **lease["metadata"]["annotations"]}
            if (old.get("spec") or {}).get("holderIdentity") == self.holder:
                lease["spec"]["acquireTime"] = old["spec"].get("acquireTime") or now
        return lease

    async def _renew(self) -> None:
        for _ in range(3):
            try:
                old = await self.registry.get(self._lease_type, LEASE_NAMESPACE, self.name)
            except errors.ApiError as e:
                if e.code != 404:
                    raise
                old = None
            try:
                if old is None:
                    await self.registry.create(self._lease_type, LEASE_NAMESPACE, self._lease(None), _ctx())
                else:
                    await self.registry.update(self._lease_type, LEASE_NAMESPACE, self.name, self._lease(old), _ctx())
                return
            except errors.ApiError as e:
                if e.code not in (404, 409):
                    raise
        raise RuntimeError(f"could not renew Lease {LEASE_NAMESPACE}/{self.name}: conflicts")

    async def _live(self, include_self: bool) -> set[ApiServerEndpoint]:
        listed = await self.registry.list(self._lease_type, LEASE_NAMESPACE,
                                          ListOptions(label_selector=f"{IDENTITY_LABEL}={IDENTITY_VALUE}"))
        leases = [c.obj for c in listed.items if c.obj["metadata"].get("name") != self.name]
        now = dt.datetime.now(dt.UTC)
        live = live_endpoints(leases, now)
        if include_self:
            live.add(self.endpoint)
        else:
            live.discard(self.endpoint)  # another server of ours on the same address and port? not while we stop
        await self._collect(leases, now)
        return live

    async def _collect(self, leases: list[dict], now: dt.datetime) -> None:
        """Delete identity Leases of servers long gone (expired ``GC_AFTER_DURATIONS`` times over)."""
        for lease in leases:
            spec, meta = lease.get("spec") or {}, lease["metadata"]
            renewed = parse_time(spec.get("renewTime"))
            duration = spec.get("leaseDurationSeconds") or 0
            if renewed is None or renewed + dt.timedelta(seconds=duration * GC_AFTER_DURATIONS) >= now:
                continue
            with contextlib.suppress(errors.ApiError):  # another server got there first
                await self.registry.delete(self._lease_type, LEASE_NAMESPACE, meta["name"],
                                           DeleteOptions(preconditions={"resourceVersion": meta["resourceVersion"]}),
                                           _ctx())
                log.info("deleted the expired Lease %s/%s of API server %s", LEASE_NAMESPACE, meta["name"],
                         (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION))

    async def _write_endpoints(self, live: set[ApiServerEndpoint]) -> None:
        if not live:
            # Upstream refuses too: an empty list would cut in-cluster clients off for good.
            log.debug("no live API server left to list; leaving the kubernetes endpoints as they are")
            return
        want_ep = desired_endpoints(live)
        await self._put(self._ep_type, want_ep, lambda cur: (cur.get("subsets") or []) == want_ep["subsets"]
                        and (cur["metadata"].get("labels") or {}) == want_ep["metadata"]["labels"])
        slices = desired_slices(live)
        for want in slices:
            await self._put(self._slice_type, want, lambda cur, want=want: all(
                cur.get(k) == want[k] for k in ("addressType", "endpoints", "ports"))
                and (cur["metadata"].get("labels") or {}) == want["metadata"]["labels"])
        # Slices for ports no server uses any more.
        names = {s["metadata"]["name"] for s in slices}
        listed = await self.registry.list(self._slice_type, SERVICE_NAMESPACE,
                                          ListOptions(label_selector=f"{SERVICE_NAME_LABEL}={SERVICE_NAME}"))
        for cached in listed.items:
            meta = cached.obj["metadata"]
            name = meta.get("name", "")
            if name in names or not name.startswith(f"{SERVICE_NAME}-") \
                    or not name.removeprefix(f"{SERVICE_NAME}-").isdigit() or (meta.get("labels") or {}).get(
                        "endpointslice.kubernetes.io/managed-by"):
                continue
            with contextlib.suppress(errors.ApiError):
                await self.registry.delete(self._slice_type, SERVICE_NAMESPACE, name, DeleteOptions(
                    preconditions={"resourceVersion": meta["resourceVersion"]}), _ctx())

    async def _put(self, rtype, want: dict, same) -> None:
        """Create ``want``, or update the current object unless ``same(current)``; a changed
        address type (immutable) means delete and create."""
        name = want["metadata"]["name"]
        for _ in range(3):
            try:
                cur = await self.registry.get(rtype, SERVICE_NAMESPACE, name)
            except errors.ApiError as e:
                if e.code != 404:
                    raise
                cur = None
            try:
                if cur is None:
                    await self.registry.create(rtype, SERVICE_NAMESPACE, copy.deepcopy(want), _ctx())
                    return
                if same(cur):
                    return
                if rtype is self._slice_type and cur.get("addressType") != want.get("addressType"):
                    await self.registry.delete(rtype, SERVICE_NAMESPACE, name, DeleteOptions(
                        preconditions={"resourceVersion": cur["metadata"]["resourceVersion"]}), _ctx())
                    continue
                new = copy.deepcopy(want)
                new["metadata"] = {**cur["metadata"], "labels": dict(want["metadata"]["labels"])}
                await self.registry.update(rtype, SERVICE_NAMESPACE, name, new, _ctx())
                return
            except errors.ApiError as e:
                if e.code not in (404, 409):
                    raise
        log.info("kubernetes service endpoints: %s %s kept conflicting; next round", rtype.plural, name)


__all__ = ["ADDRESS_ANNOTATION", "IDENTITY_LABEL", "IDENTITY_VALUE", "LEASE_NAMESPACE", "PORT_ANNOTATION",
           "ApiServerEndpoint", "EndpointReconciler", "apiserver_id", "desired_endpoints", "desired_slices",
           "live_endpoints"]
