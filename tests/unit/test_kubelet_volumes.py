"""The kubelet's volume manager over a temp dir with a fake API client: every volume
type, the AtomicWriter layout and updates, modes, optional sources, path escapes, subPath."""

from __future__ import annotations

import base64
import copy
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from pinnace.client.rest import ApiException
from pinnace.kubelet.runtime.base import Mount
from pinnace.kubelet.volumes import (
    DATA_DIR,
    AtomicWriter,
    FileProjection,
    VolumeError,
    VolumeManager,
    validate_path,
)

UID = "uid-1"


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.token_error: ApiException | None = ApiException(404, "NotFound", "the server could not find "
                                                             "the requested resource")
        self.tokens_issued = 0

    def put(self, plural: str, name: str, obj: dict[str, Any], namespace: str = "ns") -> None:
        self.objects[(plural, namespace, name)] = {"metadata": {"name": name, "namespace": namespace}, **obj}

    def configmap(self, name: str, data: dict[str, str], **extra: Any) -> None:
        self.put("configmaps", name, {"data": data, **extra})

    def secret(self, name: str, data: dict[str, bytes]) -> None:
        self.put("secrets", name, {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}})

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        try:
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise ApiException(404, "NotFound", f'{plural} "{name}" not found',
                               {"details": {"name": name, "kind": plural}}) from None

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                      content_type: str = "application/json") -> Any:
        self.requests.append((method, path, body))
        if self.token_error is not None:
            raise self.token_error
        self.tokens_issued += 1
        return {"status": {"token": f"token-{self.tokens_issued}", "expirationTimestamp": "2099-01-01T00:00:00Z"}}


def pod(volumes: list[dict[str, Any]], containers: list[dict[str, Any]] | None = None, **meta: Any) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "ns", "uid": UID, "labels": {"app": "web"}, **meta},
            "spec": {"serviceAccountName": "robot", "volumes": volumes,
                     "containers": containers or [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}]}}


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def vm(client: FakeClient, tmp_path: Path) -> VolumeManager:
    return VolumeManager(client, tmp_path / "pods", node_ip="192.168.1.5",
                         node_allocatable={"cpu": "4", "memory": "8Gi"}, run_as_root=False)


def vol_dir(tmp_path: Path, plugin: str, name: str) -> Path:
    return tmp_path / "pods" / UID / "volumes" / f"kubernetes.io~{plugin}" / name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Sync helpers: ruff's ASYNC240 keeps blocking path calls out of coroutine bodies.
def is_mount(path: str | Path) -> bool:
    return os.path.ismount(path)


def exists(path: str | Path) -> bool:
    return os.path.lexists(path)


def is_dir(path: str | Path) -> bool:
    return os.path.isdir(path)


def realpath(path: str | Path) -> str:
    return os.path.realpath(path)


def visible(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if not p.name.startswith("..")}


# ---- emptyDir -------------------------------------------------------------------------------


async def test_empty_dir(vm: VolumeManager, tmp_path: Path) -> None:
    p = pod([{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
             {"name": "mem", "emptyDir": {"medium": "Memory"}}])
    dirs = await vm.setup(p)
    assert dirs["scratch"] == str(vol_dir(tmp_path, "empty-dir", "scratch"))
    assert mode(Path(dirs["scratch"])) == 0o777
    assert vm.size_limits(UID) == {"scratch": 1 << 30}
    # Not root: a plain dir and a warning, once.
    assert is_dir(dirs["mem"]) and not is_mount(dirs["mem"])
    await vm.setup(p)
    warnings = vm.pop_warnings(UID)
    assert len(warnings) == 1 and "cannot mount tmpfs" in warnings[0]
    # setup is idempotent and keeps what the container wrote.
    (Path(dirs["scratch"]) / "f").write_text("kept")
    assert await vm.setup(p) == dirs
    assert (Path(dirs["scratch"]) / "f").read_text() == "kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs needs root")
async def test_memory_empty_dir_is_tmpfs_when_root(client: FakeClient, tmp_path: Path) -> None:
    vm = VolumeManager(client, tmp_path / "pods", run_as_root=True)
    try:
        dirs = await vm.setup(pod([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]))
    except VolumeError:
        pytest.skip("mount not permitted here")
    try:
        if not is_mount(dirs["mem"]):
            pytest.skip("tmpfs mount not permitted here: " + "; ".join(vm.pop_warnings(UID)))
        assert mode(Path(dirs["mem"])) == 0o777
        assert os.statvfs(dirs["mem"]).f_blocks * os.statvfs(dirs["mem"]).f_frsize == 1 << 20
    finally:
        await vm.teardown(UID)
    assert not is_mount(dirs["mem"]) and not exists(dirs["mem"])


# ---- hostPath -------------------------------------------------------------------------------


async def test_host_path_types(vm: VolumeManager, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(host / "sock"))
    try:
        dirs = await vm.setup(pod([
            {"name": "made", "hostPath": {"path": str(host / "a/b"), "type": "DirectoryOrCreate"}},
            {"name": "dir", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "newfile", "hostPath": {"path": str(host / "new"), "type": "FileOrCreate"}},
            {"name": "file", "hostPath": {"path": str(host / "file"), "type": "File"}},
            {"name": "sock", "hostPath": {"path": str(host / "sock"), "type": "Socket"}},
            {"name": "any", "hostPath": {"path": str(host / "missing")}},
        ]))
    finally:
        sock.close()
    assert dirs["made"] == str(host / "a/b") and (host / "a/b").is_dir()
    assert (host / "new").is_file()
    assert dirs["any"] == str(host / "missing")  # type "": no checks


@pytest.mark.parametrize(("path", "kind", "message"), [
    ("missing", "Directory", "hostPath type check failed: {} is not a directory"),
    ("file", "Directory", "hostPath type check failed: {} is not a directory"),
    (".", "File", "hostPath type check failed: {} is not a file"),
    ("file", "Socket", "hostPath type check failed: {} is not a socket file"),
    ("nodir/f", "FileOrCreate", "No such file or directory"),  # the parent is not created
    ("file", "Sideways", "Sideways is an invalid volume type"),
])
async def test_host_path_type_failures(vm: VolumeManager, tmp_path: Path, path: str, kind: str,
                                       message: str) -> None:
    (tmp_path / "file").write_text("x")
    full = str(tmp_path / path)
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod([{"name": "h", "hostPath": {"path": full, "type": kind}}]))
    assert message.format(full) in str(e.value)
    assert str(e.value).startswith('MountVolume.SetUp failed for volume "h" : ')


# ---- configMap and the AtomicWriter ---------------------------------------------------------


async def test_configmap_layout(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.configmap("cfg", {"a.conf": "A", "b.conf": "B"}, binaryData={"bin": base64.b64encode(b"\0\1").decode()})
    dirs = await vm.setup(pod([{"name": "config", "configMap": {"name": "cfg"}}]))
    d = Path(dirs["config"])
    assert d == vol_dir(tmp_path, "configmap", "config")
    assert visible(d) == {"a.conf", "b.conf", "bin"}
    data_target = os.readlink(d / DATA_DIR)
    assert data_target.startswith("..") and len(data_target.split(".")) == 4  # ..YYYY_MM_DD_hh_mm_ss.N
    assert (d / data_target).is_dir() and not (d / data_target).is_symlink()
    assert os.readlink(d / "a.conf") == "..data/a.conf"
    assert (d / "a.conf").read_text() == "A" and (d / "bin").read_bytes() == b"\0\1"
    assert mode(d / "a.conf") == 0o644
    assert mode(d / data_target) == 0o755


async def test_configmap_items_and_modes(vm: VolumeManager, client: FakeClient) -> None:
    client.configmap("cfg", {"a": "A", "b": "B", "c": "C"})
    dirs = await vm.setup(pod([{"name": "config", "configMap": {
        "name": "cfg", "defaultMode": 0o440,
        "items": [{"key": "a", "path": "nested/dir/a.txt"}, {"key": "b", "path": "b.sh", "mode": 0o755}]}}]))
    d = Path(dirs["config"])
    assert visible(d) == {"nested", "b.sh"}
    assert os.readlink(d / "nested") == "..data/nested"
    assert (d / "nested/dir/a.txt").read_text() == "A"
    assert mode(d / "nested/dir/a.txt") == 0o440
    assert mode(d / "b.sh") == 0o755


async def test_configmap_missing(vm: VolumeManager, client: FakeClient) -> None:
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod([{"name": "config", "configMap": {"name": "gone"}}]))
    assert str(e.value) == 'MountVolume.SetUp failed for volume "config" : configmap "gone" not found'
    assert e.value.errors == {"config": str(e.value)}
    # Optional: an empty volume.
    dirs = await vm.setup(pod([{"name": "config", "configMap": {"name": "gone", "optional": True}}]))
    assert visible(Path(dirs["config"])) == set() and (Path(dirs["config"]) / DATA_DIR).is_dir()


async def test_configmap_missing_item_key(vm: VolumeManager, client: FakeClient) -> None:
    client.configmap("cfg", {"a": "A"})
    items = [{"key": "a", "path": "a"}, {"key": "nope", "path": "nope"}]
    with pytest.raises(VolumeError, match="configmap references non-existent config key: nope"):
        await vm.setup(pod([{"name": "c", "configMap": {"name": "cfg", "items": items}}]))
    dirs = await vm.setup(pod([{"name": "c", "configMap": {"name": "cfg", "items": items, "optional": True}}]))
    assert visible(Path(dirs["c"])) == {"a"}


@pytest.mark.parametrize("path", ["../evil", "a/../../evil", "/etc/evil", "..data", "..2024_01_01", ""])
async def test_item_path_escape_refused(vm: VolumeManager, client: FakeClient, tmp_path: Path, path: str) -> None:
    client.configmap("cfg", {"a": "A"})
    with pytest.raises(VolumeError, match="invalid path"):
        await vm.setup(pod([{"name": "c", "configMap": {"name": "cfg", "items": [{"key": "a", "path": path}]}}]))
    assert not exists(tmp_path / "evil") and not exists("/etc/evil")
    assert not list(vol_dir(tmp_path, "configmap", "c").iterdir())


async def test_atomic_update_on_refresh(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.configmap("cfg", {"a": "old-a", "b": "old-b", "dropped": "x"})
    p = pod([{"name": "c", "configMap": {"name": "cfg"}}])
    d = Path((await vm.setup(p))["c"])
    old_ts = os.readlink(d / DATA_DIR)

    assert await vm.refresh(p) == []  # unchanged: nothing rewritten
    assert os.readlink(d / DATA_DIR) == old_ts

    client.configmap("cfg", {"a": "new-a", "b": "new-b", "added": "y"})
    assert await vm.refresh(p) == []
    new_ts = os.readlink(d / DATA_DIR)
    assert new_ts != old_ts
    assert not (d / old_ts).exists()  # the old generation is removed as a whole
    assert visible(d) == {"a", "b", "added"}  # the dropped key's link is gone
    assert {n: (d / n).read_text() for n in ("a", "b", "added")} == {"a": "new-a", "b": "new-b", "added": "y"}
    # Readers that resolve through ..data see one generation: every file lives in the new dir.
    assert {realpath(d / n) for n in ("a", "b")} == {str(d / new_ts / "a"), str(d / new_ts / "b")}
    assert not (d / "..data_tmp").exists()


async def test_refresh_keeps_content_when_source_fails(vm: VolumeManager, client: FakeClient) -> None:
    client.configmap("cfg", {"a": "A"})
    p = pod([{"name": "c", "configMap": {"name": "cfg"}}, {"name": "o", "configMap": {"name": "cfg",
                                                                                        "optional": True}}])
    dirs = await vm.setup(p)
    del client.objects[("configmaps", "ns", "cfg")]
    failures = await vm.refresh(p)
    assert failures == ['MountVolume.SetUp failed for volume "c" : configmap "cfg" not found']
    assert (Path(dirs["c"]) / "a").read_text() == "A"
    assert visible(Path(dirs["o"])) == set()  # optional and deleted: emptied, as the kubelet does
    assert vm.pop_warnings(UID) == failures


def test_atomic_writer_mode_change_rewrites(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    assert w.write({"f": FileProjection(b"x", 0o644)})
    assert not w.write({"f": FileProjection(b"x", 0o644)})
    assert w.write({"f": FileProjection(b"x", 0o600)})
    assert mode(tmp_path / "f") == 0o600


def test_validate_path() -> None:
    assert validate_path("a/./b") == "a/b"
    for bad in ("..", "../x", "x/..", "/x", "..x", "a" * 256):
        with pytest.raises(VolumeError):
            validate_path(bad)


# ---- secret ---------------------------------------------------------------------------------


async def test_secret(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.secret("creds", {"user": b"admin", "key": b"\xffbinary"})
    dirs = await vm.setup(pod([
        {"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "i", "secret": {"secretName": "creds", "items": [{"key": "user", "path": "u", "mode": 0o600}]}},
        {"name": "o", "secret": {"secretName": "nope", "optional": True}},
    ]))
    s = Path(dirs["s"])
    assert s == vol_dir(tmp_path, "secret", "s")
    assert (s / "user").read_bytes() == b"admin" and (s / "key").read_bytes() == b"\xffbinary"
    assert mode(s / "user") == 0o400
    assert visible(Path(dirs["i"])) == {"u"} and mode(Path(dirs["i"]) / "u") == 0o600
    assert visible(Path(dirs["o"])) == set()
    with pytest.raises(VolumeError, match='secret "nope" not found'):
        await vm.setup(pod([{"name": "x", "secret": {"secretName": "nope"}}]))
    with pytest.raises(VolumeError, match="references non-existent secret key: zzz"):
        await vm.setup(pod([{"name": "x", "secret": {"secretName": "creds", "items": [{"key": "zzz",
                                                                                        "path": "z"}]}}]))


# ---- downwardAPI ----------------------------------------------------------------------------


async def test_downward_api(vm: VolumeManager, tmp_path: Path) -> None:
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
             {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}, "mode": 0o600},
             {"path": "res/mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                      "divisor": "1Mi"}},
             {"path": "res/cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu",
                                                      "divisor": "1m"}}]
    p = pod([{"name": "info", "downwardAPI": {"items": items}}])
    d = Path((await vm.setup(p))["info"])
    assert d == vol_dir(tmp_path, "downward-api", "info")
    assert (d / "labels").read_text() == 'app="web"'
    assert (d / "name").read_text() == "web-0"
    assert mode(d / "app") == 0o600 and mode(d / "name") == 0o644
    assert (d / "res/mem").read_text() == "64"
    assert (d / "res/cpu").read_text() == "4000"  # no limit: node allocatable
    # Labels change on the live pod: refresh re-projects them.
    p["metadata"]["labels"] = {"app": "web", "version": "2"}
    await vm.refresh(p)
    assert (d / "labels").read_text() == 'app="web"\nversion="2"'


# ---- projected ------------------------------------------------------------------------------


def projected(token: bool = True) -> dict[str, Any]:
    sources: list[dict[str, Any]] = [
        {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "config/a"}]}},
        {"secret": {"name": "creds"}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]
    if token:
        sources.append({"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 600}})
    return {"name": "all", "projected": {"defaultMode": 0o440, "sources": sources}}


async def test_projected_without_token_api(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.configmap("cfg", {"a": "A"})
    client.secret("creds", {"pw": b"s"})
    d = Path((await vm.setup(pod([projected()])))["all"])
    assert d == vol_dir(tmp_path, "projected", "all")
    assert visible(d) == {"config", "pw", "ns"}  # the token source wrote nothing
    assert (d / "config/a").read_text() == "A" and (d / "pw").read_text() == "s" and (d / "ns").read_text() == "ns"
    assert mode(d / "pw") == 0o440
    warnings = vm.pop_warnings(UID)
    assert len(warnings) == 1 and "does not serve serviceaccounts/token (404)" in warnings[0]
    method, path, _ = client.requests[0]
    assert (method, path) == ("POST", "/api/v1/namespaces/ns/serviceaccounts/robot/token")
    await vm.refresh(pod([projected()]))
    assert len(client.requests) == 1  # not asked again for a while


async def test_projected_with_token_api(vm: VolumeManager, client: FakeClient) -> None:
    client.token_error = None
    client.configmap("cfg", {"a": "A"})
    client.secret("creds", {"pw": b"s"})
    p = pod([projected()])
    d = Path((await vm.setup(p))["all"])
    assert (d / "token").read_text() == "token-1" and mode(d / "token") == 0o440
    body = client.requests[0][2]
    assert body["spec"]["audiences"] == ["vault"] and body["spec"]["expirationSeconds"] == 600
    assert body["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": UID}
    await vm.refresh(p)
    assert len(client.requests) == 1  # the cached token is still fresh


async def test_projected_missing_service_account_is_an_error(vm: VolumeManager, client: FakeClient) -> None:
    client.configmap("cfg", {"a": "A"})
    client.secret("creds", {"pw": b"s"})
    client.token_error = ApiException(404, "NotFound", 'serviceaccounts "robot" not found',
                                      {"details": {"name": "robot", "kind": "serviceaccounts"}})
    with pytest.raises(VolumeError, match='serviceaccounts "robot" not found'):
        await vm.setup(pod([projected()]))


async def test_projected_reports_every_failing_source(vm: VolumeManager) -> None:
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod([projected(token=False)]))
    assert 'configmap "cfg" not found, secret "creds" not found' in str(e.value)


# ---- persistentVolumeClaim ------------------------------------------------------------------


def claim(client: FakeClient, name: str, pv: dict[str, Any] | None, phase: str = "Bound",
          owner: str | None = None) -> None:
    meta: dict[str, Any] = {"uid": f"pvc-{name}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": owner,
                                    "controller": True}]
    client.put("persistentvolumeclaims", name, {"spec": {"volumeName": f"pv-{name}" if pv else ""},
                                                "status": {"phase": phase}})
    client.objects[("persistentvolumeclaims", "ns", name)]["metadata"].update(meta)
    if pv is not None:
        client.put("persistentvolumes", f"pv-{name}", {"spec": {**pv, "claimRef": {"name": name, "namespace": "ns",
                                                                                   "uid": f"pvc-{name}"}}},
                   namespace="")


async def test_pvc_host_path_and_local(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    claim(client, "hp", {"hostPath": {"path": str(tmp_path / "hp"), "type": "DirectoryOrCreate"}})
    claim(client, "loc", {"local": {"path": str(tmp_path / "local")}})
    claim(client, "eph-scratch", {"local": {"path": str(tmp_path / "local")}}, owner=UID)
    p = pod([{"name": "a", "persistentVolumeClaim": {"claimName": "hp"}},
             {"name": "b", "persistentVolumeClaim": {"claimName": "loc", "readOnly": True}},
             {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}],
            containers=[{"name": "app", "volumeMounts": [{"name": "a", "mountPath": "/a"},
                                                          {"name": "b", "mountPath": "/b"}]}])
    p["metadata"]["name"] = "eph"
    dirs = await vm.setup(p)
    assert dirs == {"a": str(tmp_path / "hp"), "b": str(tmp_path / "local"), "scratch": str(tmp_path / "local")}
    mounts = vm.mounts_for(p, p["spec"]["containers"][0], dirs)
    assert mounts == [Mount(str(tmp_path / "hp"), "/a", False), Mount(str(tmp_path / "local"), "/b", True)]


@pytest.mark.parametrize(("setup_claim", "message"), [
    (lambda c: None, 'persistentvolumeclaim "data" not found'),
    (lambda c: claim(c, "data", None, phase="Pending"),
     "PVC ns/data has non-bound phase ('Pending') or empty pvc.Spec.VolumeName ('')"),
    (lambda c: claim(c, "data", {"nfs": {"server": "nas", "path": "/x"}}),
     "persistentvolume 'pv-data' has unsupported type nfs: only hostPath and local PersistentVolumes are supported"),
    (lambda c: claim(c, "data", {"local": {"path": "/does/not/exist"}}), "does not exist on this node"),
])
async def test_pvc_failures(vm: VolumeManager, client: FakeClient, setup_claim: Any, message: str) -> None:
    setup_claim(client)
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    assert message in str(e.value)


async def test_unsupported_type_does_not_block_other_volumes(vm: VolumeManager, tmp_path: Path) -> None:
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod([{"name": "n", "nfs": {"server": "nas", "path": "/"}}, {"name": "e", "emptyDir": {}}]))
    assert list(e.value.errors) == ["n"] and "volume type 'nfs' is not supported" in str(e.value)
    assert vol_dir(tmp_path, "empty-dir", "e").is_dir()


# ---- mounts ---------------------------------------------------------------------------------


async def test_mounts_read_only_and_sub_paths(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.configmap("cfg", {"app.conf": "conf"})
    container = {"name": "app", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPath": "logs/app", "readOnly": True},
        {"name": "data", "mountPath": "/mine", "subPathExpr": "pods/$(POD_NAME)"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "cfg", "mountPath": "/etc/cfg"},
    ]}
    p = pod([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}], [container])
    dirs = await vm.setup(p)
    data, cfg = Path(dirs["data"]), Path(dirs["cfg"])
    mounts = vm.mounts_for(p, container, dirs, env={"POD_NAME": "web-0"})
    ts = os.readlink(cfg / DATA_DIR)
    assert mounts == [
        Mount(str(data), "/data", False),
        Mount(str(data / "logs/app"), "/logs", True),
        Mount(str(data / "pods/web-0"), "/mine", False),
        Mount(str(cfg / ts / "app.conf"), "/etc/app.conf", True),  # the resolved file; data volumes are read-only
        Mount(str(cfg), "/etc/cfg", True),
    ]
    assert (data / "logs/app").is_dir() and mode(data / "logs/app") == 0o777  # created with the volume's mode


@pytest.mark.parametrize("sub", ["../other", "a/../../x", "/etc", "link/passwd", "abs"])
async def test_sub_path_escape_refused(vm: VolumeManager, tmp_path: Path, sub: str) -> None:
    p = pod([{"name": "data", "emptyDir": {}}])
    dirs = await vm.setup(p)
    os.symlink("../../../../..", Path(dirs["data"]) / "link")
    os.symlink("/etc", Path(dirs["data"]) / "abs")
    container = {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": sub}]}
    with pytest.raises(VolumeError, match='failed to prepare subPath for volumeMount "data" of container "app"'):
        vm.mounts_for(p, container, dirs)


async def test_mount_of_unknown_volume(vm: VolumeManager) -> None:
    p = pod([])
    with pytest.raises(VolumeError, match='cannot find volume "nope" to mount into container "app"'):
        vm.mounts_for(p, {"name": "app", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, {})


# ---- teardown -------------------------------------------------------------------------------


async def test_teardown(vm: VolumeManager, client: FakeClient, tmp_path: Path) -> None:
    client.configmap("cfg", {"a": "A"})
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("x")
    await vm.setup(pod([{"name": "e", "emptyDir": {}}, {"name": "c", "configMap": {"name": "cfg"}},
                        {"name": "h", "hostPath": {"path": str(host)}}]))
    await vm.teardown(UID)
    assert not (tmp_path / "pods" / UID / "volumes").exists()
    assert (host / "keep").read_text() == "x"
    await vm.teardown(UID)  # idempotent
