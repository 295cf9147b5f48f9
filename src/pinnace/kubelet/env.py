"""A container's environment as the kubelet's ``makeEnvironmentVariables`` builds it.

    env = await resolve_env(client, pod, container, node_ip="10.0.0.5", pod_ip="10.42.0.7",
                            service_env=service_vars, node_allocatable=node["status"]["allocatable"],
                            warnings=events)

Order (later wins): service variables (:func:`service_links`), then ``envFrom`` sources in
order, then ``env``.
``env[].value`` is ``$(VAR)``-expanded against what is defined before it; ``valueFrom``
values never are.  A missing object or key that is not ``optional`` raises
:class:`ContainerConfigError` with Kubernetes' message; the kubelet shows it as the
container's ``CreateContainerConfigError``.

The field and resource selectors here are shared with downward API volumes.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from pinnace.client.rest import ApiException
from pinnace.kubelet.runtime.ocispec import expand


class ObjectReader(Protocol):
    """What resolution needs of :class:`pinnace.client.rest.RestClient`."""

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict: ...


class ContainerConfigError(Exception):
    """The container cannot be configured; ``str(e)`` is the status message."""

    reason = "CreateContainerConfigError"


EnvError = ContainerConfigError  # the name the kubelet's container_env catches


@dataclass(frozen=True)
class EnvWarning:
    """An event the kubelet should record on the pod (type Warning)."""

    reason: str
    message: str


# validation.IsEnvVarName: the kubelet skips envFrom keys that fail it.
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SUBSCRIPT_RE = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")
# Fields only the env form (not downward API volumes) may use, per API validation;
# we answer them in both places.
_POD_SPEC_FIELDS = ("spec.nodeName", "spec.serviceAccountName")
# Limits that fall back to node allocatable when unset (MergeContainerResourceLimits).
_ALLOCATABLE_FALLBACK = ("cpu", "memory", "ephemeral-storage")


# ---- pure helpers ---------------------------------------------------------------------------


def is_env_var_name(name: str) -> bool:
    """Kubernetes' IsEnvVarName (letters, digits, ``-._``; no leading digit; not ``..``-prefixed)."""
    if not _ENV_NAME_RE.fullmatch(name):
        return False
    return name not in (".", "..") and not name.startswith("..")


def format_map(m: Mapping[str, str] | None) -> str:
    """fieldpath.FormatMap: ``key="value"`` lines, sorted, Go-quoted, no trailing newline."""
    return "\n".join(f"{k}={_go_quote(str(v))}" for k, v in sorted((m or {}).items()))


def _go_quote(s: str) -> str:
    # strconv.Quote for the characters labels/annotations realistically carry.
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def field_value(pod: Mapping[str, Any], path: str, *, node_ip: str = "", pod_ip: str = "",
                pod_ips: Sequence[str] | None = None, host_ips: Sequence[str] | None = None) -> str:
    """A ``fieldRef.fieldPath`` of the pod (env vars and downward API volumes).

    ``status.*`` comes from the arguments -- the kubelet knows them before the API
    object does. Raises ValueError for a path Kubernetes does not support.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    sub = _SUBSCRIPT_RE.match(path)
    if sub:
        table = meta.get(sub.group(1).split(".")[1]) or {}
        return str(table.get(sub.group(2), ""))
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount"),
              "status.hostIP": node_ip, "status.podIP": pod_ip or (pod.get("status") or {}).get("podIP")}
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]))
    if path == "status.podIPs":
        return ",".join(pod_ips if pod_ips is not None else ([pod_ip] if pod_ip else []))
    if path == "status.hostIPs":
        return ",".join(host_ips if host_ips is not None else ([node_ip] if node_ip else []))
    raise ValueError(f"unsupported fieldPath: {path}")


def _find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == name:
            return c
    raise ValueError(f"container {name!r} not found in pod")


def resource_value(container: Mapping[str, Any], resource: str, divisor: Any = None,
                   node_allocatable: Mapping[str, Any] | None = None) -> str:
    """``resourceFieldRef``: ``limits.cpu`` etc. divided by ``divisor``, rounded up
    (ExtractContainerResourceValue). An unset limit is the node's allocatable."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (name in _ALLOCATABLE_FALLBACK or name.startswith("hugepages-")):
        raise ValueError(f"unsupported container resource : {resource}")
    amounts = dict((container.get("resources") or {}).get(kind) or {})
    from pinnace.api.validation import parse_quantity  # a big module a node rarely needs

    if kind == "limits" and name in _ALLOCATABLE_FALLBACK and name not in amounts:
        amounts[name] = (node_allocatable or {}).get(name, "0")
    value = parse_quantity(amounts.get(name, "0"))
    div = parse_quantity(divisor) if divisor not in (None, "", 0, "0") else Decimal(1)
    if div == 0:
        div = Decimal(1)
    if name == "cpu":  # MilliValue of both, then ceil
        return str(math.ceil(Decimal(math.ceil(value * 1000)) / math.ceil(div * 1000)))
    return str(math.ceil(Decimal(math.ceil(value)) / math.ceil(div)))


def pod_resource_value(pod: Mapping[str, Any], container: Mapping[str, Any] | None, ref: Mapping[str, Any],
                       node_allocatable: Mapping[str, Any] | None = None) -> str:
    """``resourceFieldRef`` naming ``containerName`` (volumes) or defaulting to ``container`` (env)."""
    named = ref.get("containerName")
    target = _find_container(pod, named) if named else container
    if target is None:
        raise ValueError("resourceFieldRef: containerName is required")
    return resource_value(target, str(ref.get("resource", "")), ref.get("divisor"), node_allocatable)


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's ``data`` decoded (the API carries it base64-encoded)."""
    return {k: base64.b64decode(v or "") for k, v in (secret.get("data") or {}).items()}


def configmap_data(cm: Mapping[str, Any], *, binary: bool = True) -> dict[str, bytes]:
    """A ConfigMap's ``data`` (and ``binaryData``, for volumes) as bytes."""
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    if binary:
        out.update({k: base64.b64decode(v or "") for k, v in (cm.get("binaryData") or {}).items()})
    return out


def env_from_pairs(data: Mapping[str, str], prefix: str = "") -> tuple[dict[str, str], list[str]]:
    """``envFrom`` entries: the valid ``prefix+key`` variables and the sorted invalid names."""
    good: dict[str, str] = {}
    bad: list[str] = []
    for key, value in data.items():
        name = prefix + key
        if is_env_var_name(name):
            good[name] = value
        else:
            bad.append(name)
    return good, sorted(bad)


# ---- Service links --------------------------------------------------------------------------

# Services whose variables every pod gets, whatever its namespace and enableServiceLinks.
MASTER_SERVICES = ("kubernetes",)


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def _has_cluster_ip(service: Mapping[str, Any]) -> bool:
    # Headless ("None") and ExternalName (no clusterIP) services get no variables.
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_env_vars(services: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The variables of each service (the kubelet's envvars.FromServices): ``{SVC}_SERVICE_HOST``,
    ``{SVC}_SERVICE_PORT`` (the first port), ``{SVC}_SERVICE_PORT_{NAME}`` per named port, and the
    Docker-link ones: ``{SVC}_PORT`` (first port) and per port ``{SVC}_PORT_{port}_{PROTO}`` with
    ``_PROTO``, ``_PORT`` and ``_ADDR``.  ``SVC`` is the name upper-cased with ``-`` as ``_``."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        if not _has_cluster_ip(svc) or not ports:
            continue
        ip, prefix = str(spec["clusterIP"]), _env_name(str((svc.get("metadata") or {}).get("name", "")))
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(str(p['name']))}"] = str(p.get("port"))
        for i, p in enumerate(ports):
            proto = str(p.get("protocol") or "TCP")
            url = f"{proto.lower()}://{_join_host_port(ip, int(p.get('port') or 0))}"
            if i == 0:
                env[f"{prefix}_PORT"] = url  # Docker special-cases the first port
            port_prefix = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = proto.lower()
            env[f"{port_prefix}_PORT"] = str(p.get("port"))
            env[f"{port_prefix}_ADDR"] = ip
    return env


def service_links(pod: Mapping[str, Any], services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The service variables a pod gets (the kubelet's getServiceEnvVarMap): those of the
    services of its namespace when ``enableServiceLinks`` (default true), and always those of
    ``default/kubernetes``.  ``services``: every Service the kubelet knows."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    links = spec.get("enableServiceLinks")
    links = True if links is None else bool(links)
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        if not _has_cluster_ip(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name", "")), str(meta.get("namespace") or "default")
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and links:
            chosen[name] = svc
    return service_env_vars(list(chosen.values()))


# ---- API lookups ----------------------------------------------------------------------------


class _Objects:
    """ConfigMaps and Secrets of one namespace, each fetched once per resolution."""

    _KIND = {"configmaps": "configmap", "secrets": "secret"}

    def __init__(self, client: ObjectReader, namespace: str):
        self.client, self.namespace = client, namespace
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    async def get(self, plural: str, name: str, optional: bool) -> dict[str, Any] | None:
        """The object; None when it is missing and ``optional``."""
        key = (plural, name)
        if key not in self._cache:
            try:
                self._cache[key] = await self.client.get("v1", plural, name, self.namespace)
            except ApiException as e:
                if e.status != 404:
                    raise ContainerConfigError(f"couldn't get {self._KIND[plural]} {self.namespace}/{name}: "
                                               f"{e.message or e}") from e
                self._cache[key] = None
        obj = self._cache[key]
        if obj is None and not optional:
            raise ContainerConfigError(f'{self._KIND[plural]} "{name}" not found')
        return obj

    async def strings(self, plural: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = await self.get(plural, name, optional)
        if obj is None:
            return None
        if plural == "secrets":
            return {k: v.decode(errors="replace") for k, v in secret_data(obj).items()}
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}


async def _env_from(objects: _Objects, source: Mapping[str, Any], warnings: list[EnvWarning]) -> dict[str, str]:
    if source.get("configMapRef") is not None:
        ref, plural, what = source["configMapRef"], "configmaps", "configMap"
    elif source.get("secretRef") is not None:
        ref, plural, what = source["secretRef"], "secrets", "secret"
    else:
        return {}
    name = str(ref.get("name", ""))
    data = await objects.strings(plural, name, bool(ref.get("optional")))
    if data is None:
        return {}
    good, bad = env_from_pairs(data, str(source.get("prefix") or ""))
    if bad:
        warnings.append(EnvWarning(
            "InvalidEnvironmentVariableNames",
            f"Keys [{', '.join(bad)}] from the EnvFrom {what} {objects.namespace}/{name} were skipped since "
            "they are considered invalid environment variable names."))
    return good


async def _key_ref(objects: _Objects, ref: Mapping[str, Any], plural: str) -> str | None:
    """A configMapKeyRef/secretKeyRef value; None when optional and missing."""
    name, key, optional = str(ref.get("name", "")), str(ref.get("key", "")), bool(ref.get("optional"))
    data = await objects.strings(plural, name, optional)
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        kind = "ConfigMap" if plural == "configmaps" else "Secret"
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {objects.namespace}/{name}")
    return data[key]


@dataclass(frozen=True)
class _PodContext:
    node_ip: str
    pod_ip: str
    pod_ips: Sequence[str] | None
    host_ips: Sequence[str] | None
    node_allocatable: Mapping[str, Any] | None


async def _value_from(objects: _Objects, pod: Mapping[str, Any], container: Mapping[str, Any],
                      source: Mapping[str, Any], ctx: _PodContext) -> str | None:
    if source.get("configMapKeyRef") is not None:
        return await _key_ref(objects, source["configMapKeyRef"], "configmaps")
    if source.get("secretKeyRef") is not None:
        return await _key_ref(objects, source["secretKeyRef"], "secrets")
    try:
        if source.get("fieldRef") is not None:
            return field_value(pod, str(source["fieldRef"].get("fieldPath", "")), node_ip=ctx.node_ip,
                               pod_ip=ctx.pod_ip, pod_ips=ctx.pod_ips, host_ips=ctx.host_ips)
        if source.get("resourceFieldRef") is not None:
            return pod_resource_value(pod, container, source["resourceFieldRef"], ctx.node_allocatable)
    except ValueError as e:
        raise ContainerConfigError(str(e)) from e
    raise ContainerConfigError("valueFrom: unsupported source " + ", ".join(sorted(source)))


# ---- the entry point ------------------------------------------------------------------------


async def resolve_env(client: ObjectReader, pod: Mapping[str, Any], container: Mapping[str, Any], *,
                      node_ip: str, pod_ip: str, service_env: Mapping[str, str] | None,
                      node_allocatable: Mapping[str, Any] | None = None, pod_ips: Sequence[str] | None = None,
                      host_ips: Sequence[str] | None = None, warnings: list[EnvWarning] | None = None,
                      ) -> dict[str, str]:
    """The container's final environment (before the image's own ``Env``, which the runtime merges).

    Appends event-worthy problems (invalid envFrom keys) to ``warnings``; raises
    :class:`ContainerConfigError` when a required ConfigMap/Secret or key is missing.
    """
    warnings = warnings if warnings is not None else []
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    objects = _Objects(client, namespace)
    ctx = _PodContext(node_ip, pod_ip, pod_ips, host_ips, node_allocatable)
    env: dict[str, str] = dict(service_env or {})
    for source in container.get("envFrom") or []:
        env.update(await _env_from(objects, source, warnings))
    for i, var in enumerate(container.get("env") or []):
        name = var.get("name")
        if not isinstance(name, str) or not name:
            raise ContainerConfigError(f"env[{i}]: name is required")
        if var.get("value"):
            # Service variables are already in ``env``, below everything defined here.
            env[name] = expand(str(var["value"]), env)
        elif var.get("valueFrom") is not None:
            value = await _value_from(objects, pod, container, var["valueFrom"], ctx)
            if value is not None:  # an optional miss leaves the variable unset (not even shadowing envFrom)
                env[name] = value
        else:
            env[name] = ""
    return env


__all__ = ["ContainerConfigError", "EnvError", "EnvWarning", "ObjectReader", "configmap_data", "env_from_pairs",
           "field_value", "format_map", "is_env_var_name", "pod_resource_value",
           "resolve_env", "resource_value", "secret_data", "service_env_vars", "service_links"]
