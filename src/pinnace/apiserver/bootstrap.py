"""What every cluster has from its first start: the system namespaces, the
``kubernetes`` Service and its endpoints (pointing at this API server), the
system PriorityClasses, and kube-public/cluster-info (the CA for joining nodes).
Idempotent: run at every start."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import yaml

from . import errors
from .registry import Registry, RequestContext

if TYPE_CHECKING:
    from .server import ApiServerConfig

log = logging.getLogger(__name__)

SYSTEM = RequestContext(user="system:apiserver", groups=("system:masters",), field_manager="kube-apiserver")
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


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
    address = config.advertise_address
    await _put(registry, "", "v1", "endpoints", "default", {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": config.port, "protocol": "TCP"}]}]})
    await _put(registry, "discovery.k8s.io", "v1", "endpointslices", "default", {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": config.port, "protocol": "TCP"}]})
    await ensure_cluster_info(registry, config)


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
