"""A container's environment: service vars, envFrom, env values with $(VAR), valueFrom sources."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from pinnace.client.rest import ApiException
from pinnace.kubelet.env import (
    ContainerConfigError,
    EnvWarning,
    field_value,
    format_map,
    is_env_var_name,
    resolve_env,
    resource_value,
    service_env_vars,
    service_links,
)


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.gets: list[tuple[str, str]] = []

    def add(self, plural: str, name: str, data: dict[str, str], namespace: str = "ns") -> None:
        if plural == "secrets":
            data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.objects[(plural, namespace, name)] = {"metadata": {"name": name, "namespace": namespace},
                                                  "data": data}

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        self.gets.append((plural, name))
        try:
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise ApiException(404, "NotFound", f'{plural} "{name}" not found') from None


POD = {
    "metadata": {"name": "web-0", "namespace": "ns", "uid": "uid-1", "labels": {"app": "web", "tier": "fe"},
                 "annotations": {"note": 'say "hi"'}},
    "spec": {"nodeName": "node-a", "serviceAccountName": "robot",
             "containers": [{"name": "app"},
                            {"name": "side", "resources": {"limits": {"cpu": "2", "memory": "64Mi"}}}]},
    "status": {"podIP": "10.42.0.9"},
}


async def env_of(client: FakeClient, container: dict[str, Any], *, service_env: dict[str, str] | None = None,
                 warnings: list[EnvWarning] | None = None, **kw: Any) -> dict[str, str]:
    return await resolve_env(client, POD, {"name": "app", **container}, node_ip="192.168.1.5",
                             pod_ip="10.42.0.7", service_env=service_env, warnings=warnings, **kw)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


# ---- order and envFrom ----------------------------------------------------------------------


async def test_service_then_envfrom_then_env_later_wins(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"A": "from-cm", "B": "from-cm", "ONLY_CM": "1"})
    client.add("secrets", "sec", {"B": "from-secret", "PASSWORD": "pw"})
    env = await env_of(client, {
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}],
        "env": [{"name": "A", "value": "from-env"}],
    }, service_env={"A": "svc", "C": "svc", "KUBERNETES_SERVICE_HOST": "10.43.0.1"})
    assert env == {"A": "from-env", "B": "from-secret", "C": "svc", "ONLY_CM": "1", "PASSWORD": "pw",
                   "KUBERNETES_SERVICE_HOST": "10.43.0.1"}


async def test_envfrom_prefix_and_invalid_keys_are_skipped_with_a_warning(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"1badkey": "x", "2alsobad": "y", "good": "z", "dotted.name": "ok"})
    client.add("secrets", "sec", {"bad key": "x"})
    warnings: list[EnvWarning] = []
    env = await env_of(client, {"envFrom": [{"configMapRef": {"name": "cfg"}},
                                            {"prefix": "P_", "configMapRef": {"name": "cfg"}},
                                            {"secretRef": {"name": "sec"}}]}, warnings=warnings)
    # A prefix can make a key valid.
    assert env == {"good": "z", "dotted.name": "ok", "P_1badkey": "x", "P_2alsobad": "y", "P_good": "z",
                   "P_dotted.name": "ok"}
    assert warnings == [
        EnvWarning("InvalidEnvironmentVariableNames",
                   "Keys [1badkey, 2alsobad] from the EnvFrom configMap ns/cfg were skipped since they are "
                   "considered invalid environment variable names."),
        EnvWarning("InvalidEnvironmentVariableNames",
                   "Keys [bad key] from the EnvFrom secret ns/sec were skipped since they are considered "
                   "invalid environment variable names."),
    ]
    assert client.gets.count(("configmaps", "cfg")) == 1  # fetched once per resolution


async def test_envfrom_missing_object(client: FakeClient) -> None:
    assert await env_of(client, {"envFrom": [{"configMapRef": {"name": "nope", "optional": True}},
                                             {"secretRef": {"name": "nope", "optional": True}}]}) == {}
    with pytest.raises(ContainerConfigError, match=r'^configmap "nope" not found$') as e:
        await env_of(client, {"envFrom": [{"configMapRef": {"name": "nope"}}]})
    assert e.value.reason == "CreateContainerConfigError"
    with pytest.raises(ContainerConfigError, match=r'^secret "nope" not found$'):
        await env_of(client, {"envFrom": [{"secretRef": {"name": "nope"}}]})


# ---- env values and $(VAR) ------------------------------------------------------------------


async def test_value_expansion_against_earlier_variables(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"HOST": "db"})
    env = await env_of(client, {
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "PORT", "value": "5432"},
            {"name": "URL", "value": "pg://$(HOST):$(PORT)/$(DB)"},  # DB is defined later: stays literal
            {"name": "DB", "value": "main"},
            {"name": "ESCAPED", "value": "$$(PORT) costs $$5"},
            {"name": "SVC", "value": "$(MY_SERVICE_HOST)"},
            {"name": "EMPTY"},
        ],
    }, service_env={"MY_SERVICE_HOST": "10.43.0.10"})
    assert env["URL"] == "pg://db:5432/$(DB)"
    assert env["ESCAPED"] == "$(PORT) costs $5"
    assert env["SVC"] == "10.43.0.10"
    assert env["EMPTY"] == ""


async def test_value_from_is_never_expanded(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"raw": "$(PORT)"})
    env = await env_of(client, {"env": [{"name": "PORT", "value": "1"},
                                        {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                                          "key": "raw"}}},
                                        {"name": "USES", "value": "<$(RAW)>"}]})
    assert env["RAW"] == "$(PORT)"
    assert env["USES"] == "<$(PORT)>"


# ---- configMapKeyRef / secretKeyRef ---------------------------------------------------------


async def test_key_refs(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"k": "v"})
    client.add("secrets", "sec", {"pw": "s3cr3t"})
    env = await env_of(client, {"env": [
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
    ]})
    assert env == {"K": "v", "PW": "s3cr3t"}


@pytest.mark.parametrize(("ref", "message"), [
    ({"configMapKeyRef": {"name": "cfg", "key": "missing"}}, "couldn't find key missing in ConfigMap ns/cfg"),
    ({"secretKeyRef": {"name": "sec", "key": "missing"}}, "couldn't find key missing in Secret ns/sec"),
    ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
    ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
])
async def test_key_ref_missing_is_a_config_error(client: FakeClient, ref: dict[str, Any], message: str) -> None:
    client.add("configmaps", "cfg", {"k": "v"})
    client.add("secrets", "sec", {"k": "v"})
    with pytest.raises(ContainerConfigError) as e:
        await env_of(client, {"env": [{"name": "X", "valueFrom": ref}]})
    assert str(e.value) == message


async def test_optional_key_ref_missing_leaves_the_variable_unset(client: FakeClient) -> None:
    client.add("configmaps", "cfg", {"X": "from-envfrom"})
    env = await env_of(client, {"envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nokey", "optional": True}}},
        {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
    ]})
    assert env == {"X": "from-envfrom"}


async def test_api_errors_other_than_not_found_are_config_errors() -> None:
    class Broken(FakeClient):
        async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
            raise ApiException(500, "InternalError", "etcd is down")

    with pytest.raises(ContainerConfigError, match="couldn't get configmap ns/cfg: etcd is down"):
        await env_of(Broken(), {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k",
                                                                                        "optional": True}}}]})


# ---- fieldRef -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "web-0"),
    ("metadata.namespace", "ns"),
    ("metadata.uid", "uid-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['absent']", ""),
    ("metadata.annotations['note']", 'say "hi"'),
    ("spec.nodeName", "node-a"),
    ("spec.serviceAccountName", "robot"),
    ("status.hostIP", "192.168.1.5"),
    ("status.hostIPs", "192.168.1.5,fd00::5"),
    ("status.podIP", "10.42.0.7"),
    ("status.podIPs", "10.42.0.7,fd00:42::7"),
])
async def test_field_ref(client: FakeClient, path: str, want: str) -> None:
    env = await env_of(client, {"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": path}}}]},
                       pod_ips=["10.42.0.7", "fd00:42::7"], host_ips=["192.168.1.5", "fd00::5"])
    assert env == {"F": want}


async def test_field_ref_unsupported(client: FakeClient) -> None:
    with pytest.raises(ContainerConfigError, match=r"unsupported fieldPath: spec\.containers"):
        await env_of(client, {"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]})


def test_field_value_defaults_and_maps() -> None:
    assert field_value(POD, "status.podIP") == "10.42.0.9"  # from the pod when the kubelet has none
    assert field_value(POD, "status.podIPs", pod_ip="10.0.0.1") == "10.0.0.1"
    assert field_value(POD, "metadata.labels") == 'app="web"\ntier="fe"'
    assert format_map({"b": 'q"\n', "a": "x"}) == 'a="x"\nb="q\\"\\n"'


# ---- resourceFieldRef -----------------------------------------------------------------------


@pytest.mark.parametrize(("resources", "resource", "divisor", "want"), [
    ({"limits": {"cpu": "250m"}}, "limits.cpu", None, "1"),  # cpu rounds up to whole divisors
    ({"limits": {"cpu": "250m"}}, "limits.cpu", "1m", "250"),
    ({"limits": {"cpu": "1500m"}}, "limits.cpu", "100m", "15"),
    ({"requests": {"cpu": "2"}}, "requests.cpu", "1", "2"),
    ({"limits": {"memory": "128Mi"}}, "limits.memory", "1Mi", "128"),
    ({"limits": {"memory": "1Gi"}}, "limits.memory", None, "1073741824"),
    ({"requests": {"memory": "100M"}}, "requests.memory", "1Mi", "96"),  # 95.37 -> 96
    ({"limits": {"ephemeral-storage": "2Gi"}}, "limits.ephemeral-storage", "1Gi", "2"),
    ({}, "limits.cpu", "1m", "4000"),  # unset limit: node allocatable
    ({}, "limits.memory", "1Mi", "8192"),
    ({}, "requests.cpu", None, "0"),  # unset requests do not fall back
])
def test_resource_value(resources: dict[str, Any], resource: str, divisor: str | None, want: str) -> None:
    alloc = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"}
    assert resource_value({"resources": resources}, resource, divisor, alloc) == want


async def test_resource_field_ref_in_env(client: FakeClient) -> None:
    env = await env_of(client, {
        "resources": {"limits": {"memory": "32Mi"}},
        "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "side",
                                                                        "resource": "limits.cpu"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
    }, node_allocatable={"cpu": "3500m"})
    assert env == {"MEM": "32", "SIDE_CPU": "2", "CPU": "4"}
    with pytest.raises(ContainerConfigError, match=r"unsupported container resource : limits\.gpu"):
        await env_of(client, {"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]})


@pytest.mark.parametrize(("name", "ok"), [("A_B", True), ("my.env-name", True), ("_x", True), ("1abc", False),
                                          ("a b", False), ("..x", False), ("", False), ("a=b", False)])
def test_is_env_var_name(name: str, ok: bool) -> None:
    assert is_env_var_name(name) is ok


# ---- service links --------------------------------------------------------------------------


def svc(name: str, namespace: str, cluster_ip: str | None, ports: list[dict[str, Any]],
        type_: str = "ClusterIP") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "ports": ports}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


KUBERNETES = svc("kubernetes", "default", "10.43.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])


def test_service_variables_as_docker_links() -> None:
    """[sig-node] Pods should contain environment variables for services [NodeConformance] [Conformance]"""
    env = service_env_vars([svc("fooservice", "ns", "10.43.12.7", [{"port": 8765, "protocol": "TCP"}])])
    assert env == {
        "FOOSERVICE_SERVICE_HOST": "10.43.12.7",
        "FOOSERVICE_SERVICE_PORT": "8765",
        "FOOSERVICE_PORT": "tcp://10.43.12.7:8765",
        "FOOSERVICE_PORT_8765_TCP": "tcp://10.43.12.7:8765",
        "FOOSERVICE_PORT_8765_TCP_PROTO": "tcp",
        "FOOSERVICE_PORT_8765_TCP_PORT": "8765",
        "FOOSERVICE_PORT_8765_TCP_ADDR": "10.43.12.7",
    }


def test_service_variables_named_ports_dashes_and_ipv6() -> None:
    env = service_env_vars([svc("my-db", "ns", "fd00::7", [
        {"name": "sql", "port": 5432}, {"name": "metrics-http", "port": 9187, "protocol": "UDP"}])])
    assert env["MY_DB_SERVICE_HOST"] == "fd00::7"
    assert env["MY_DB_SERVICE_PORT"] == "5432"  # the first port
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432"
    assert env["MY_DB_SERVICE_PORT_METRICS_HTTP"] == "9187"
    assert env["MY_DB_PORT"] == "tcp://[fd00::7]:5432"
    assert env["MY_DB_PORT_9187_UDP"] == "udp://[fd00::7]:9187"
    assert env["MY_DB_PORT_9187_UDP_PROTO"] == "udp"


def test_service_links_of_the_pod_namespace_and_always_kubernetes() -> None:
    services = [
        KUBERNETES,
        svc("web", "ns", "10.43.0.20", [{"port": 80}]),
        svc("other", "elsewhere", "10.43.0.21", [{"port": 80}]),
        svc("headless", "ns", "None", [{"port": 80}]),
        svc("external", "ns", None, [{"port": 80}], type_="ExternalName"),
        svc("pending", "ns", "", [{"port": 80}]),
    ]
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    names = {k.split("_SERVICE_HOST")[0] for k in service_links(pod, services) if k.endswith("_SERVICE_HOST")}
    assert names == {"KUBERNETES", "WEB"}  # headless and ExternalName services have no variables
    env = service_links(pod, services)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"

    # enableServiceLinks: false keeps only the master service's variables.
    off = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"enableServiceLinks": False}}
    assert {k for k in service_links(off, services) if k.endswith("_SERVICE_HOST")} == {"KUBERNETES_SERVICE_HOST"}

    # A service named "kubernetes" in the pod's own namespace wins over default/kubernetes, whatever the
    # order (the kubelet's getServiceEnvVarMap), unless service links are off.
    mine = svc("kubernetes", "ns", "10.43.0.99", [{"port": 443}])
    assert service_links(pod, [KUBERNETES, mine])["KUBERNETES_SERVICE_HOST"] == "10.43.0.99"
    assert service_links(pod, [mine, KUBERNETES])["KUBERNETES_SERVICE_HOST"] == "10.43.0.99"
    assert service_links(off, [mine, KUBERNETES])["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"


async def test_user_env_wins_over_service_variables(client: FakeClient) -> None:
    service_env = service_links({"metadata": {"namespace": "ns"}, "spec": {}},
                                [KUBERNETES, svc("web", "ns", "10.43.0.20", [{"port": 80}])])
    env = await env_of(client, {"env": [{"name": "WEB_SERVICE_HOST", "value": "mine"},
                                        {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"}]},
                       service_env=service_env)
    assert env["WEB_SERVICE_HOST"] == "mine"
    assert env["URL"] == "http://mine:80"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
