"""Discovery documents: ``/api``, ``/apis``, group and group-version resource lists,
and aggregated discovery (``apidiscovery.k8s.io/v2``) which modern kubectl
asks for first to learn everything in one request."""

from __future__ import annotations

import hashlib
from typing import Any

from ..api.resources import ResourceRegistry, ResourceType

# Subresources the API server answers, with their verbs and the kind they speak.
SUBRESOURCES: dict[str, tuple[tuple[str, ...], tuple[str, str, str] | None]] = {
    "status": (("get", "patch", "update"), None),
    "scale": (("get", "patch", "update"), ("autoscaling", "v1", "Scale")),
    "binding": (("create",), ("", "v1", "Binding")),
    # kubectl drain looks for this entry (kind Eviction, group policy) to evict rather than delete.
    "eviction": (("create",), ("policy", "v1", "Eviction")),
    "finalize": (("update",), None),
    # serviceaccounts/token (TokenRequest); kubectl create token posts here.
    "token": (("create",), ("authentication.k8s.io", "v1", "TokenRequest")),
    "approval": (("get", "patch", "update"), None),
    # Proxied to the pod's kubelet (podproxy).
    "log": (("get",), ("", "v1", "Pod")),
    "exec": (("create", "get"), ("", "v1", "PodExecOptions")),
    "attach": (("create", "get"), ("", "v1", "PodAttachOptions")),
    "portforward": (("create", "get"), ("", "v1", "PodPortForwardOptions")),
}


def served_subresources(rtype: ResourceType) -> list[str]:
    return [s for s in rtype.subresources if s in SUBRESOURCES]


def _storage_hash(rtype: ResourceType) -> str:
    digest = hashlib.sha256(f"{rtype.group}/{rtype.version}/{rtype.kind}".encode()).digest()
    import base64

    return base64.b64encode(digest[:8]).decode()


def api_resource_list(resources: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for t in sorted(resources.in_group_version(group, version), key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        if "list" in t.verbs:
            entry["storageVersionHash"] = _storage_hash(t)
        items.append(entry)
        for sub in served_subresources(t):
            verbs, kind = SUBRESOURCES[sub]
            sub_entry: dict[str, Any] = {
                "name": f"{t.plural}/{sub}",
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind[2] if kind else t.kind,
                "verbs": list(verbs),
            }
            if kind and kind[0] != t.group:
                sub_entry["group"], sub_entry["version"] = kind[0], kind[1]
            items.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list(resources: ResourceRegistry) -> dict[str, Any]:
    groups = [_group_entry(g, vs) for g, vs in resources.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(resources: ResourceRegistry, group: str) -> dict[str, Any] | None:
    versions = resources.group_versions().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


# -- aggregated discovery -----------------------------------------------------------

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> str | None:
    """The aggregated discovery version the client prefers, if any (first match wins)."""
    for part in accept.split(","):
        p = part.replace(" ", "")
        if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
            if "v=v2beta1" in p:
                return "v2beta1"
            if "v=v2" in p:
                return "v2"
        elif p.startswith("application/json") and "as=" not in p:
            return None
    return None


def aggregated(resources: ResourceRegistry, legacy: bool, version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for ``/api`` (legacy=True) or ``/apis``."""
    items = []
    for group, versions in resources.group_versions().items():
        if (group == "") != legacy:
            continue
        vdocs = []
        for v in versions:
            vres = []
            for t in sorted(resources.in_group_version(group, v), key=lambda t: t.plural):
                entry: dict[str, Any] = {
                    "resource": t.plural,
                    "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                    "scope": "Namespaced" if t.namespaced else "Cluster",
                    "singularResource": t.singular,
                    "verbs": list(t.verbs),
                }
                if t.short_names:
                    entry["shortNames"] = list(t.short_names)
                if t.categories:
                    entry["categories"] = list(t.categories)
                subs = []
                for sub in served_subresources(t):
                    verbs, kind = SUBRESOURCES[sub]
                    g, ver, k = kind or (t.group, t.version, t.kind)
                    subs.append({"subresource": sub, "responseKind": {"group": g, "version": ver, "kind": k},
                                 "verbs": list(verbs)})
                if subs:
                    entry["subresources"] = subs
                vres.append(entry)
            vdocs.append({"version": v, "resources": vres, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vdocs})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
