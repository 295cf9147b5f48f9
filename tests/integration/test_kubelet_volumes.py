"""The kubelet's volume manager and env resolution against the in-process API server:
ConfigMap/Secret volumes set up from real objects, an update reaching the pod on refresh."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pinnace.client.rest import RestClient
from pinnace.kubelet.env import resolve_env
from pinnace.kubelet.volumes import DATA_DIR, VolumeManager

UID = "6f1c2b1e-0000-4000-8000-000000000001"


@pytest.fixture
async def client(api) -> AsyncIterator[RestClient]:
    c = RestClient.from_kubeconfig(api.kubeconfig, user_agent="test-kubelet-volumes")
    try:
        yield c
    finally:
        await c.close()


def is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def pod() -> dict:
    container = {"name": "app", "image": "busybox",
                 "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config",
                                                                                 "key": "greeting"}}},
                         {"name": "MSG", "value": "$(GREETING), world"}],
                 "envFrom": [{"secretRef": {"name": "app-secret"}, "prefix": "SECRET_"}],
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                                  {"name": "creds", "mountPath": "/run/creds"},
                                  {"name": "token", "mountPath": "/var/run/secrets/tokens"}]}
    return {"metadata": {"name": "web-0", "namespace": "default", "uid": UID},
            "spec": {"containers": [container], "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "creds", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
                {"name": "token", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "app-config", "items": [{"key": "greeting", "path": "greeting"}]}}]}},
            ]}}


async def test_volumes_follow_configmap_updates(client: RestClient, tmp_path: Path) -> None:
    await client.create("v1", "configmaps", {"metadata": {"name": "app-config"},
                                             "data": {"greeting": "hello", "app.yaml": "level: info\n"}}, "default")
    await client.create("v1", "secrets", {"metadata": {"name": "app-secret"},
                                          "data": {"password": base64.b64encode(b"pw1").decode()}}, "default")
    vm = VolumeManager(client, tmp_path / "pods")
    p = pod()
    try:
        dirs = await vm.setup(p)
        config, creds, token = (Path(dirs[n]) for n in ("config", "creds", "token"))
        assert (config / "app.yaml").read_text() == "level: info\n"
        assert (creds / "password").read_bytes() == b"pw1"
        assert os.stat(creds / "password").st_mode & 0o777 == 0o400
        # This API server has no serviceaccounts/token subresource: the token source is skipped.
        assert {f.name for f in token.iterdir() if not f.name.startswith("..")} == {"greeting"}
        warnings = vm.pop_warnings(UID)
        assert any("serviceaccounts/token (404)" in w for w in warnings)
        if os.geteuid() == 0 and not any("tmpfs mount failed" in w for w in warnings):
            assert is_mount(creds)  # secrets stay off disk

        env = await resolve_env(client, p, p["spec"]["containers"][0], node_ip="10.0.0.5", pod_ip="10.42.0.3",
                                service_env={"KUBERNETES_SERVICE_HOST": "10.43.0.1"})
        assert env == {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "SECRET_password": "pw1", "GREETING": "hello",
                       "MSG": "hello, world"}

        old = os.readlink(config / DATA_DIR)
        cm = await client.get("v1", "configmaps", "app-config", "default")
        cm["data"] = {"greeting": "bonjour", "app.yaml": "level: debug\n"}
        await client.update("v1", "configmaps", cm, "default")
        assert await vm.refresh(p) == []
        assert os.readlink(config / DATA_DIR) != old
        assert (config / "app.yaml").read_text() == "level: debug\n"
        assert (config / "greeting").read_text() == "bonjour"
        assert (token / "greeting").read_text() == "bonjour"  # projected sources follow too
        assert (creds / "password").read_bytes() == b"pw1"
    finally:
        await vm.teardown(UID)
    assert not (tmp_path / "pods" / UID / "volumes").exists()
