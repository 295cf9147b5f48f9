"""The OCI runtime spec built for a Kubernetes container: args, env, user, caps, mounts, resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinnace.kubelet.runtime.ocispec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    BindMount,
    build_spec,
    capability_set,
    container_args,
    expand,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
    resolve_env,
    resolve_image_user,
)

IMAGE = {"config": {"Entrypoint": ["/entry"], "Cmd": ["default-arg"], "Env": ["PATH=/img/bin", "IMG=1"],
                    "WorkingDir": "/srv", "User": "1000:1000"}}


def spec(container: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return build_spec({"name": "c", "command": ["true"], **(container or {})}, **kw)


# ---- $(VAR) expansion: the cases of Kubernetes' expansion tests -------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("$(VAR_A)", "A"),
    ("___$(VAR_B)___", "___B___"),
    ("$(VAR_A)-$(VAR_B)", "A-B"),
    ("$(VAR_A)$(VAR_B)", "AB"),
    ("$(VAR_EMPTY)", ""),
    ("$(UNDEFINED)", "$(UNDEFINED)"),       # unresolvable: left as written
    ("$$(VAR_A)", "$(VAR_A)"),              # escaped reference
    ("$$$(VAR_A)", "$A"),                   # escaped $, then a reference
    ("$$$$(VAR_A)", "$$(VAR_A)"),
    ("$$", "$"),
    ("$", "$"),                             # trailing operator kept
    ("foo$", "foo$"),
    ("$VAR_A", "$VAR_A"),                   # not an expression
    ("$(VAR_A", "$(VAR_A"),                 # unterminated
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),  # the name runs to the first ")": "VAR_A$(VAR_B" is undefined
    ("$()", "$()"),
    ("$(VAR_A)$", "A$"),
    ("$(VAR_REF)", "$(VAR_A)"),             # values are not re-expanded
])
def test_expand(text: str, want: str) -> None:
    env = {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": "", "VAR_REF": "$(VAR_A)"}
    assert expand(text, env) == want


def test_resolve_env_expands_earlier_vars_only_and_never_valuefrom() -> None:
    env = resolve_env(
        [{"name": "A", "value": "a"},
         {"name": "B", "value": "$(A)-$(C)"},            # C is defined later: stays literal
         {"name": "C", "value": "c"},
         {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
         {"name": "D", "value": "$(SECRET)/$(SVC_HOST)"},
         {"name": "E"}],
        resolved={"SECRET": "$(A)"}, service_env={"SVC_HOST": "10.0.0.1", "A": "svc"})
    assert env == {"SVC_HOST": "10.0.0.1", "A": "a", "B": "a-$(C)", "C": "c", "SECRET": "$(A)",
                   "D": "$(A)/10.0.0.1", "E": ""}
    with pytest.raises(ValueError, match="not resolved"):
        resolve_env([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])


# ---- command / args against Entrypoint / Cmd (the table in the Kubernetes docs) ----------


@pytest.mark.parametrize(("container", "want"), [
    ({}, ["/entry", "default-arg"]),                                   # neither: image's both
    ({"command": ["/cmd"]}, ["/cmd"]),                                 # command only: Cmd ignored too
    ({"args": ["a1", "a2"]}, ["/entry", "a1", "a2"]),                  # args only: Entrypoint + args
    ({"command": ["/cmd"], "args": ["a1"]}, ["/cmd", "a1"]),           # both: image ignored
    ({"command": [], "args": []}, ["/entry", "default-arg"]),          # empty lists count as unset
])
def test_command_and_args(container: dict[str, Any], want: list[str]) -> None:
    assert container_args(container, IMAGE, {}) == want


def test_command_args_expand_container_env() -> None:
    c = {"command": ["/bin/echo"], "args": ["$(MESSAGE)", "$$(MESSAGE)", "$(NOPE)", "cost: $5"]}
    s = spec(c, env={"MESSAGE": "hello world"})
    assert s["process"]["args"] == ["/bin/echo", "hello world", "$(MESSAGE)", "$(NOPE)", "cost: $5"]


def test_image_env_is_not_used_for_expansion() -> None:
    s = spec({"command": ["echo", "$(IMG)"]}, image_config=IMAGE)
    assert s["process"]["args"] == ["echo", "$(IMG)"]


def test_no_command_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="no command"):
        build_spec({"name": "c"}, image_config={"config": {}})
    with pytest.raises(ValueError, match="list of strings"):
        spec({"command": "echo hi"})


# ---- env, cwd, hostname -----------------------------------------------------------------


def test_env_order_image_then_container_overrides() -> None:
    s = spec(image_config=IMAGE, env=[("IMG", "2"), ("NEW", "x=y")], hostname="web-0")
    assert s["process"]["env"] == ["PATH=/img/bin", "IMG=2", "HOSTNAME=web-0", "NEW=x=y"]
    assert s["hostname"] == "web-0"
    s = spec(env={"A": "1"})
    assert s["process"]["env"][0].startswith("PATH=/usr/local/sbin:")  # default PATH without an image one
    assert spec(env=[{"name": "A", "value": "1"}])["process"]["env"][-1] == "A=1"
    with pytest.raises(ValueError, match="environment variable name"):
        spec(env={"A=B": "1"})


def test_cwd() -> None:
    assert spec()["process"]["cwd"] == "/"
    assert spec(image_config=IMAGE)["process"]["cwd"] == "/srv"
    assert spec({"workingDir": "/work"}, image_config=IMAGE)["process"]["cwd"] == "/work"
    with pytest.raises(ValueError, match="workingDir"):
        spec({"workingDir": "relative"})


def test_whole_image_blob_or_config_section() -> None:
    blob = {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": []}, **IMAGE}
    assert build_spec({}, image_config=blob)["process"]["args"] == ["/entry", "default-arg"]
    assert build_spec({}, image_config=IMAGE["config"])["process"]["args"] == ["/entry", "default-arg"]


# ---- user -----------------------------------------------------------------------------


def test_user_from_security_context_pod_and_image() -> None:
    assert spec()["process"]["user"] == {"uid": 0, "gid": 0}
    assert spec(image_config=IMAGE)["process"]["user"] == {"uid": 1000, "gid": 1000}
    assert spec(image_config={"config": {"User": "33"}})["process"]["user"] == {"uid": 33, "gid": 0}
    pod = {"runAsUser": 2000, "runAsGroup": 3000, "supplementalGroups": [4000, 3000], "fsGroup": 5000}
    assert spec(image_config=IMAGE, pod_security_context=pod)["process"]["user"] == {
        "uid": 2000, "gid": 3000, "additionalGids": [4000, 3000, 5000]}
    c = {"securityContext": {"runAsUser": 7}}
    assert spec(c, image_config=IMAGE, pod_security_context=pod)["process"]["user"]["uid"] == 7  # container wins
    assert spec(c, image_config=IMAGE)["process"]["user"] == {"uid": 7, "gid": 0}  # image gid goes with image uid


def test_user_errors() -> None:
    with pytest.raises(ValueError, match="not numeric"):
        spec(image_config={"config": {"User": "nobody"}})
    with pytest.raises(ValueError, match="runAsNonRoot"):
        spec({"securityContext": {"runAsNonRoot": True}})
    with pytest.raises(ValueError, match="runAsUser"):
        spec({"securityContext": {"runAsUser": -1}})
    # a named image user does not matter once runAsUser is set
    assert spec({"securityContext": {"runAsUser": 5}}, image_config={"config": {"User": "nobody"}})


def test_resolve_image_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    assert resolve_image_user("nobody", tmp_path) == "65534:65534"
    assert resolve_image_user("nobody:staff", tmp_path) == "65534:50"
    assert resolve_image_user("123:7", tmp_path) == "123:7"
    with pytest.raises(ValueError, match="not found"):
        resolve_image_user("ghost", tmp_path)
    (tmp_path / "etc/passwd").unlink()
    (tmp_path / "etc/passwd").symlink_to("/etc/passwd")  # never read the host's
    with pytest.raises(ValueError, match="not found"):
        resolve_image_user("root", tmp_path)


# ---- capabilities, privileged, readonly root, no_new_privs ---------------------------


def test_default_capabilities() -> None:
    caps = spec()["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in caps["effective"] and "CAP_CHOWN" in caps["effective"]


def test_capabilities_add_drop_any_spelling() -> None:
    caps = capability_set({"add": ["NET_ADMIN", "CAP_SYS_TIME", "sys_ptrace"], "drop": ["MKNOD", "cap_net_raw"]})
    assert {"CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_SYS_PTRACE"} <= set(caps)
    assert "CAP_MKNOD" not in caps and "CAP_NET_RAW" not in caps
    assert capability_set({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}) == ["CAP_NET_BIND_SERVICE"]
    assert capability_set({"drop": ["all"]}) == []
    assert capability_set({"add": ["ALL"], "drop": ["CHOWN"]}) == [c for c in ALL_CAPABILITIES if c != "CAP_CHOWN"]
    assert "CAP_KILL" not in capability_set({"add": ["KILL"], "drop": ["KILL"]})  # drop wins
    with pytest.raises(ValueError, match="unknown capability"):
        capability_set({"add": ["FLY"]})


def test_privileged() -> None:
    s = spec({"securityContext": {"privileged": True, "capabilities": {"drop": ["ALL"]}}})
    assert s["process"]["capabilities"]["effective"] == list(ALL_CAPABILITIES)
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sys_mount = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "rw" in sys_mount["options"]
    with pytest.raises(ValueError, match="allowPrivilegeEscalation"):
        spec({"securityContext": {"privileged": True, "allowPrivilegeEscalation": False}})


def test_unprivileged_defaults() -> None:
    s = spec()
    assert s["ociVersion"] >= "1.0.2"
    assert s["linux"]["maskedPaths"] == list(MASKED_PATHS)
    assert s["linux"]["readonlyPaths"] == list(READONLY_PATHS)
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert s["root"] == {"path": "rootfs", "readonly": False}
    assert s["process"]["noNewPrivileges"] is False
    assert s["process"]["terminal"] is False
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert "ro" in s["mounts"][-1]["options"] and "ro" in s["mounts"][-2]["options"]


def test_readonly_root_and_no_new_privileges() -> None:
    s = spec({"securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}})
    assert s["root"]["readonly"] is True
    assert s["process"]["noNewPrivileges"] is True
    assert spec({"securityContext": {"allowPrivilegeEscalation": True}})["process"]["noNewPrivileges"] is False


# ---- resources ---------------------------------------------------------------------------


@pytest.mark.parametrize(("milli", "shares", "quota"), [
    (0, 2, 0), (1, 2, 1000), (5, 5, 1000), (10, 10, 1000), (100, 102, 10000), (250, 256, 25000),
    (1000, 1024, 100000), (1500, 1536, 150000), (4000, 4096, 400000),
])
def test_cpu_conversions(milli: int, shares: int, quota: int) -> None:
    assert milli_cpu_to_shares(milli) == shares
    assert milli_cpu_to_quota(milli) == quota


def test_resources_to_cgroup_values() -> None:
    r = spec({"resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                            "limits": {"cpu": "1.5", "memory": "128Mi"}}}, pids_limit=100)["linux"]["resources"]
    assert r["cpu"] == {"shares": 256, "quota": 150000, "period": 100000}
    assert r["memory"] == {"limit": 128 * 1024 * 1024}
    assert r["pids"] == {"limit": 100}


def test_resources_defaults() -> None:
    r = spec()["linux"]["resources"]  # best effort: minimum shares, no quota, no memory limit
    assert r["cpu"] == {"shares": 2} and "memory" not in r and "pids" not in r
    r = spec({"resources": {"limits": {"cpu": "500m", "memory": "1G"}}})["linux"]["resources"]
    assert r["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}  # request defaults to the limit
    assert r["memory"] == {"limit": 10**9}
    r = spec({"resources": {"limits": {"cpu": "1m"}, "requests": {"cpu": 0.001}}})["linux"]["resources"]
    assert r["cpu"] == {"shares": 2, "quota": 1000, "period": 100000}  # the minimums


def test_resource_errors() -> None:
    with pytest.raises(ValueError, match=r"resources.limits.memory"):
        spec({"resources": {"limits": {"memory": "lots"}}})
    with pytest.raises(ValueError, match=r"resources.requests.cpu"):
        spec({"resources": {"requests": {"cpu": "-1"}}})
    with pytest.raises(ValueError, match="pids_limit"):
        spec(pids_limit=0)


def test_cgroups_path_and_oom_score() -> None:
    s = spec(cgroups_path="/pinnace/pod-1/c", oom_score_adj=-997)
    assert s["linux"]["cgroupsPath"] == "/pinnace/pod-1/c"
    assert s["process"]["oomScoreAdj"] == -997
    assert "cgroupsPath" not in spec()["linux"]
    with pytest.raises(ValueError, match="cgroups_path"):
        spec(cgroups_path="/a/../b")


# ---- namespaces ----------------------------------------------------------------------------


def test_own_namespaces() -> None:
    assert spec()["linux"]["namespaces"] == [
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]


def test_join_a_sandbox() -> None:
    s = spec(netns_path="/proc/42/ns/net", ipc_path="/proc/42/ns/ipc", uts_path="/proc/42/ns/uts")
    assert s["linux"]["namespaces"] == [
        {"type": "pid"}, {"type": "network", "path": "/proc/42/ns/net"}, {"type": "ipc", "path": "/proc/42/ns/ipc"},
        {"type": "uts", "path": "/proc/42/ns/uts"}, {"type": "mount"}]
    with pytest.raises(ValueError, match="absolute"):
        spec(netns_path="proc/42/ns/net")


def test_host_network() -> None:
    s = spec(host_network=True)
    types = [n["type"] for n in s["linux"]["namespaces"]]
    assert types == ["pid", "ipc", "mount"]  # the host's network and UTS namespaces
    assert "hostname" not in s
    with pytest.raises(ValueError, match="hostname"):
        spec(host_network=True, hostname="x")
    with pytest.raises(ValueError, match="hostNetwork"):
        spec(host_network=True, netns_path="/proc/1/ns/net")
    assert [n["type"] for n in spec(host_pid=True, host_ipc=True)["linux"]["namespaces"]] == [
        "network", "uts", "mount"]


# ---- mounts --------------------------------------------------------------------------------


def test_bind_mounts() -> None:
    s = spec(mounts=[("/host/data/sub", "/data/sub", True), BindMount("/host/data", "/data"),
                     ("/host/shm", "/dev/shm", False)])
    dests = [m["destination"] for m in s["mounts"]]
    assert "/dev/shm" in dests and dests.count("/dev/shm") == 1  # the volume replaces the default
    assert dests.index("/data") < dests.index("/data/sub")  # parents first
    by_dest = {m["destination"]: m for m in s["mounts"]}
    assert by_dest["/data/sub"] == {"destination": "/data/sub", "type": "bind", "source": "/host/data/sub",
                                    "options": ["rbind", "rprivate", "ro"]}
    assert by_dest["/data"]["options"][-1] == "rw"
    assert by_dest["/dev/shm"]["type"] == "bind"


@pytest.mark.parametrize("mount", [("rel", "/d", False), ("/s", "d", False), ("/s", "/a/../etc", False),
                                   ("/s", "/d"), ("/s", "/d", "yes")])
def test_bad_mounts(mount: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        spec(mounts=[mount])
    with pytest.raises(ValueError, match="more than one"):
        spec(mounts=[("/a", "/d", False), ("/b", "/d", True)])


def test_tty_and_annotations() -> None:
    s = spec({"tty": True}, annotations={"io.kubernetes.pod.name": "p"})
    assert s["process"]["terminal"] is True and "TERM=xterm" in s["process"]["env"]
    assert s["annotations"] == {"io.kubernetes.pod.name": "p"}
