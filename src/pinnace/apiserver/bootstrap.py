"""What every cluster has from its first start: the system namespaces, the
``kubernetes`` Service (its endpoints follow the live API servers: see
:mod:`pinnace.apiserver.endpointreconciler`), the cluster DNS Service
kube-system/kube-dns, the system PriorityClasses, and kube-public/cluster-info
(the CA for joining nodes).  Idempotent: run at every start."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import yaml

from ..client.rest import ApiException, RestClient
from . import errors
from .registry import Registry, RequestContext

if TYPE_CHECKING:
    from .server import ApiServerConfig

log = logging.getLogger(__name__)

SYSTEM = RequestContext(user="system:apiserver", groups=("system:masters",), field_manager="kube-apiserver")
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
DNS_NAMESPACE, DNS_SERVICE = "kube-system", "kube-dns"
DNS_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS", "kubernetes.io/cluster-service": "true"}
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"


async def _ensure(registry: Registry, group: str, version: str, plural: str, namespace: str, obj: dict) -> None:
    rtype = registry.resources.get(group, version, plural)
    assert rtype is not None
    try:
        await registry.create(rtype, namespace, obj, RequestContext(**SYSTEM.__dict__))
    except errors.ApiError as e:
        if e.code != 409:
            raise


async def _put(registry: Registry, group: str, version: str, plural: str, namespace: str, obj: dict) -> None:
    """Create or overwrite (for objects this server owns, like the kubernetes endpoints)."""
    rtype = registry.resources.get(group, version, plural)
    assert rtype is not None
    ctx = RequestContext(**SYSTEM.__dict__)
    try:
        await registry.update(rtype, namespace, obj["metadata"]["name"], obj, ctx)
    except errors.ApiError as e:
        if e.code != 404:
            raise
        await registry.create(rtype, namespace, obj, ctx)


async def ensure_defaults(registry: Registry, config: ApiServerConfig) -> None:
    for ns in NAMESPACES:
        await _ensure(registry, "", "v1", "namespaces", "", {"metadata": {"name": ns}})
    for name, value in PRIORITY_CLASSES.items():
        await _ensure(registry, "scheduling.k8s.io", "v1", "priorityclasses", "", {
            "metadata": {"name": name}, "value": value,
            "description": "Used for system critical pods that must not be moved from their current node."})
    labels = {"component": "apiserver", "provider": "kubernetes"}
    port = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": config.port}
    await _ensure(registry, "", "v1", "services", "default", {
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "spec": {"type": "ClusterIP", "clusterIP": config.cluster.kubernetes_service_ip, "ports": [port],
                 "sessionAffinity": "None"}})
    # Its Endpoints and EndpointSlice list the live API servers: the endpoint reconciler
    # (pinnace.apiserver.endpointreconciler) writes them once this server listens.
    await ensure_dns_service(registry, config)
    await ensure_cluster_info(registry, config)


async def ensure_dns_service(registry: Registry, config: ApiServerConfig) -> None:
    """kube-system/kube-dns at the service range's tenth address, without a selector: its
    endpoints are written by whoever runs the DNS server (:func:`publish_dns_endpoints`)."""
    try:
        ip = config.cluster.dns_service_ip
    except IndexError:
        log.warning("service CIDR %s is too small for the DNS Service address; kube-dns not created",
                    config.cluster.service_cidr)
        return
    try:
        await _ensure(registry, "", "v1", "services", DNS_NAMESPACE, {
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": dict(DNS_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "sessionAffinity": "None", "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}})
    except errors.ApiError as e:
        if e.code != 422:
            raise
        # Say, a Service of an older cluster holds the address: run without cluster DNS's.
        log.warning("kube-system/kube-dns not created: %s", e)


def dns_endpoints(ips: Sequence[str], port: int = 53) -> tuple[dict, dict]:
    """The Endpoints and EndpointSlice of kube-system/kube-dns for DNS servers at ``ips``
    on ``port`` (UDP and TCP).  Both written directly, the Endpoints marked not to be mirrored."""
    ips = sorted(set(ips))
    ports = [{"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE,
                              "labels": {"k8s-app": "kube-dns", SKIP_MIRROR: "true"}},
                 "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}] if ips else []}
    v6 = bool(ips) and all(":" in ip for ip in ips)
    eslice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE,
                           "labels": {"k8s-app": "kube-dns", "kubernetes.io/service-name": DNS_SERVICE}},
              "addressType": "IPv6" if v6 else "IPv4",
              "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
                            for ip in ips],
              "ports": ports}
    return endpoints, eslice


async def publish_dns_endpoints(target: Registry | RestClient, ips: str | Sequence[str], port: int = 53) -> None:
    """Point kube-system/kube-dns at the DNS servers at ``ips`` (one address or several) on
    ``port``: its Endpoints and its EndpointSlice, created or overwritten.  ``target`` is the
    in-process :class:`Registry` or a :class:`RestClient` (for a DNS server of its own)."""
    endpoints, eslice = dns_endpoints([ips] if isinstance(ips, str) else list(ips), port)
    for api_version, plural, obj in (("v1", "endpoints", endpoints), ("discovery.k8s.io/v1", "endpointslices", eslice)):
        if isinstance(target, Registry):
            group, _, version = api_version.rpartition("/")
            await _put(target, group, version, plural, DNS_NAMESPACE, obj)
        else:
            await _put_via_client(target, api_version, plural, obj)


async def _put_via_client(client: RestClient, api_version: str, plural: str, obj: dict) -> None:
    name = obj["metadata"]["name"]
    for _ in range(3):
        try:
            cur = await client.get(api_version, plural, name, DNS_NAMESPACE)
        except ApiException as e:
            if e.status != 404:
                raise
            try:
                await client.create(api_version, plural, obj, DNS_NAMESPACE)
                return
            except ApiException as e2:
                if e2.status != 409:
                    raise
                continue
        new = {**obj, "metadata": {**cur["metadata"], "labels": obj["metadata"]["labels"]}}
        try:
            await client.update(api_version, plural, new, DNS_NAMESPACE)
            return
        except ApiException as e:
            if e.status not in (404, 409):
                raise
    raise RuntimeError(f"could not write {plural} {DNS_NAMESPACE}/{name}: conflicts")


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """kubeadm's cluster-info kubeconfig: one cluster (server and CA), no users.  It is
    public; a joiner trusts it only once the CA's hash matches its join token."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "", "cluster": {"server": server,
                                              "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "contexts": None, "current-context": "", "preferences": {}, "users": None}, sort_keys=False)


async def ensure_cluster_info(registry: Registry, config: ApiServerConfig) -> None:
    """kube-public/cluster-info, rewritten at each start so it follows a replaced CA.  The
    CA is the one client certificates are checked against, which also signs the serving
    certificate in every set-up pinnace makes."""
    if config.client_ca is None:
        return  # no TLS client CA configured: nothing a joiner could pin
    try:
        ca_pem = config.client_ca.read_bytes()
    except OSError as e:
        log.warning("cluster-info not published: cannot read %s: %s", config.client_ca, e)
        return
    host = config.advertise_address
    host = f"[{host}]" if ":" in host else host
    await _put(registry, "", "v1", "configmaps", "kube-public", {
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": cluster_info_kubeconfig(f"https://{host}:{config.port}", ca_pem)}})
