"""The official ``kubernetes`` Python client against a real ``pinnace server`` process.

Conformance: "watch-configmaps-closed-and-restarted", "ConfigMap, create, update
and delete", "Namespace patching".
"""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.support.server import run_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_client(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("pyclient")) as server:
        yield config.new_client_from_config(config_file=str(server.kubeconfig))


def test_create_list_with_selectors_patch_delete(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyns")))
    for i in range(5):
        core.create_namespaced_config_map("pyns", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm-{i}", labels={"parity": "odd" if i % 2 else "even"}),
            data={"i": str(i)}))
    odd = core.list_namespaced_config_map("pyns", label_selector="parity=odd")
    assert [c.metadata.name for c in odd.items] == ["cm-1", "cm-3"]
    by_name = core.list_namespaced_config_map("pyns", field_selector="metadata.name=cm-4")
    assert [c.metadata.name for c in by_name.items] == ["cm-4"]

    patched = core.patch_namespaced_config_map("cm-1", "pyns", {"data": {"extra": "yes"}})
    assert patched.data == {"i": "1", "extra": "yes"}

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("pyns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-1")))
    assert err.value.status == 409

    core.delete_namespaced_config_map("cm-1", "pyns")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("cm-1", "pyns")
    assert err.value.status == 404


def test_typed_apps_objects_round_trip(api_client):
    apps = client.AppsV1Api(api_client)
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="typed"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "typed"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "typed"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx:1.25")]))))
    created = apps.create_namespaced_deployment("default", dep)
    assert created.spec.strategy.type == "RollingUpdate"
    scale = apps.read_namespaced_deployment_scale("typed", "default")
    assert scale.spec.replicas == 2
    apps.patch_namespaced_deployment_scale("typed", "default", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("typed", "default").spec.replicas == 3
    apps.delete_namespaced_deployment("typed", "default")


def test_watch_resumes_from_resource_version(api_client):
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="watched", labels={"w": "1"}), data={"v": "0"}))
    rv = first.metadata.resource_version

    def writer():
        for v in range(1, 4):
            core.patch_namespaced_config_map("watched", "default", {"data": {"v": str(v)}})

    # First watch: read two events, then stop (the "closed" watch).
    w = watch.Watch()
    seen = []
    t = threading.Thread(target=writer)
    t.start()
    for event in w.stream(core.list_namespaced_config_map, "default", label_selector="w=1",
                          resource_version=rv, timeout_seconds=10):
        seen.append((event["type"], event["object"].data["v"], event["object"].metadata.resource_version))
        if len(seen) == 2:
            w.stop()
    t.join()
    assert [s[:2] for s in seen] == [("MODIFIED", "1"), ("MODIFIED", "2")]

    # Restart from the last version seen: exactly the rest, nothing missed or repeated.
    rest = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", label_selector="w=1",
                          resource_version=seen[-1][2], timeout_seconds=5):
        rest.append((event["type"], event["object"].data["v"]))
        if len(rest) == 1:
            w.stop()
    assert rest == [("MODIFIED", "3")]


def test_delete_namespace_removes_content(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    core.delete_namespace("doomed")
    w = watch.Watch()
    for event in w.stream(core.list_namespace, field_selector="metadata.name=doomed", timeout_seconds=30):
        if event["type"] == "DELETED":
            w.stop()
    with pytest.raises(ApiException) as err:
        core.read_namespace("doomed")
    assert err.value.status == 404
