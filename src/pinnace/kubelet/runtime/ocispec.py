"""An OCI runtime spec (runc's ``config.json``) for one Kubernetes container.

Pure functions: the kubelet resolves everything that needs the API or the disk
(``valueFrom``, volumes, the sandbox's namespaces) and passes plain values in.

    spec = build_spec(pod["spec"]["containers"][0], image_config=image.config,
                      env={"GREETING": "hi"}, hostname="web-0",
                      mounts=[("/var/lib/pinnace/pods/uid/volumes/data", "/data", False)],
                      netns_path="/proc/1234/ns/net", cgroups_path="/pinnace/pod-uid/web")

The rules follow the kubelet and containerd's CRI plugin: command/args against the
image's Entrypoint/Cmd, ``$(VAR)`` expansion, securityContext -> user and
capabilities, resources -> cgroup values as ``MilliCPUToShares``/``MilliCPUToQuota``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's (and Docker's) default set. runc's `spec` template has only AUDIT_WRITE, KILL
# and NET_BIND_SERVICE, which breaks ordinary images (chown, setuid in entrypoints); what a
# Kubernetes container gets by default is the CRI runtime's set below.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# Every capability up to CAP_CHECKPOINT_RESTORE (40), in kernel order: privileged and add: [ALL].
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_KNOWN_CAPS = frozenset(ALL_CAPABILITIES)

# runc's `spec` defaults; a privileged container gets neither list.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# kubelet's cm.MilliCPUToShares / MilliCPUToQuota constants.
CPU_PERIOD = 100_000
MIN_QUOTA = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144


class BindMount(NamedTuple):
    """A volume as the container sees it: a host path bind-mounted at ``destination``."""

    source: str
    destination: str
    read_only: bool = False


EnvInput = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[Mapping[str, str]] | None


# ---- $(VAR) expansion --------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (third_party/forked/golang/expansion).

    ``$(NAME)`` becomes the value when NAME is defined and stays as written otherwise;
    ``$$`` is an escaped ``$`` (so ``$$(NAME)`` yields the literal ``$(NAME)``); any other
    ``$``, an unterminated ``$(`` and a trailing ``$`` are kept.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # incomplete reference: keep "$(" and carry on after it
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(env[name] if name in env else f"$({name})")
                i = close + 1
        else:  # "$x": not an expression, both characters are kept
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def resolve_env(env_vars: Sequence[Mapping[str, Any]], resolved: Mapping[str, str] | None = None,
                service_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A container's ``env`` list as the kubelet's makeEnvironmentVariables computes it.

    ``value`` is expanded against the variables defined before it (and ``service_env``);
    a ``valueFrom`` entry takes ``resolved[name]`` verbatim -- the caller looked it up, and
    Kubernetes never expands those. Service variables the container did not define are kept.
    """
    resolved = resolved or {}
    service_env = dict(service_env or {})
    out: dict[str, str] = {}
    for i, var in enumerate(env_vars):
        name = var.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"env[{i}]: name is required")
        if var.get("value"):
            out[name] = expand(str(var["value"]), {**service_env, **out})
        elif var.get("valueFrom") is not None:
            if name not in resolved:
                raise ValueError(f"env[{i}] ({name}): valueFrom was not resolved by the caller")
            out[name] = str(resolved[name])
        else:
            out[name] = ""
    return {**{k: v for k, v in service_env.items() if k not in out}, **out}


def _env_pairs(env: EnvInput) -> list[tuple[str, str]]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        items: Iterable[Any] = env.items()
    else:
        items = env
    pairs = []
    for item in items:
        if isinstance(item, Mapping):
            name, value = item.get("name"), item.get("value", "")
        else:
            name, value = item
        if not isinstance(name, str) or not name or "=" in name:
            raise ValueError(f"invalid environment variable name {name!r}")
        pairs.append((name, "" if value is None else str(value)))
    return pairs


def _merge_env(base: list[str], overrides: Iterable[str]) -> list[str]:
    """containerd's replaceOrAppendEnvValues: same name replaces in place, new names append."""
    out = list(base)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for entry in overrides:
        name = entry.split("=", 1)[0]
        if name in index:
            out[index[name]] = entry
        else:
            index[name] = len(out)
            out.append(entry)
    return out


# ---- image config --------------------------------------------------------------------------


def runtime_config(image_config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The Cmd/Entrypoint/Env part of an image config; takes the whole config blob
    (``LocalImage.config``) or just its ``config`` object."""
    if not image_config:
        return {}
    inner = image_config.get("config")
    if isinstance(inner, Mapping):
        return inner
    if "rootfs" in image_config or "architecture" in image_config:
        return {}  # a whole blob without a runtime config
    return image_config


def container_args(container: Mapping[str, Any], image_config: Mapping[str, Any] | None,
                   env: Mapping[str, str]) -> list[str]:
    """process.args: ``command`` replaces Entrypoint and ``args`` replaces Cmd (an absent or
    empty list counts as not given; ``command`` alone also drops Cmd), then ``$(VAR)``
    expansion of command and args with the container's environment."""
    cfg = runtime_config(image_config)
    command = _str_list(container.get("command"), "command")
    args = _str_list(container.get("args"), "args")
    command = [expand(c, env) for c in command]
    args = [expand(a, env) for a in args]
    if command:
        argv = command + args
    else:
        entrypoint = _str_list(cfg.get("Entrypoint"), "image Entrypoint")
        argv = entrypoint + (args or _str_list(cfg.get("Cmd"), "image Cmd"))
    if not argv:
        raise ValueError("no command specified: the container has no command/args and the image no Entrypoint/Cmd")
    return argv


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings, got {value!r}")
    return list(value)


# ---- user ------------------------------------------------------------------------------


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFE:
        raise ValueError(f"{what} must be an integer uid/gid, got {value!r}")
    return value


def parse_image_user(user: str | None) -> tuple[int | None, int | None]:
    """Image ``User`` ("", "1000", "1000:100") as (uid, gid); names need :func:`resolve_image_user`."""
    if not user:
        return None, None
    uid_s, _, gid_s = user.partition(":")
    if not uid_s.isdigit() or (gid_s and not gid_s.isdigit()):
        raise ValueError(f"image user {user!r} is not numeric: resolve it against the rootfs "
                         "(resolve_image_user) or set securityContext.runAsUser")
    return int(uid_s), int(gid_s) if gid_s else None


def resolve_image_user(user: str, rootfs: str | Path) -> str:
    """A named image user ("nobody", "app:staff") made numeric from the rootfs's /etc/passwd
    and /etc/group, so :func:`build_spec` can stay pure. Without a group, the user's primary
    group is used, as containerd does."""
    name, _, group = user.partition(":")
    passwd = _read_db(Path(rootfs), "etc/passwd")
    uid: str | None = name if name.isdigit() else None
    gid: str | None = None
    for fields in passwd:
        if len(fields) >= 4 and (fields[0] == name or fields[2] == name):
            uid, gid = fields[2], fields[3]
            break
    if uid is None:
        raise ValueError(f"image user {name!r} not found in the image's /etc/passwd")
    if group:
        gid = group if group.isdigit() else None
        for fields in _read_db(Path(rootfs), "etc/group") if gid is None else []:
            if len(fields) >= 3 and fields[0] == group:
                gid = fields[2]
                break
        if gid is None:
            raise ValueError(f"image group {group!r} not found in the image's /etc/group")
    return f"{uid}:{gid}" if gid is not None else uid


def _read_db(rootfs: Path, rel: str) -> list[list[str]]:
    path = (rootfs / rel).resolve()
    root = rootfs.resolve()
    if root not in path.parents:  # a symlink out of the rootfs: don't read the host's file
        return []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def process_user(security_context: Mapping[str, Any], pod_security_context: Mapping[str, Any],
                 image_user: str | None) -> dict[str, Any]:
    """process.user: runAsUser/runAsGroup (container over pod) else the image's numeric User;
    additionalGids = the pod's supplementalGroups plus fsGroup, as the kubelet passes them."""
    def pick(key: str) -> Any:
        value = security_context.get(key)
        return pod_security_context.get(key) if value is None else value

    run_as_user, run_as_group = pick("runAsUser"), pick("runAsGroup")
    img_uid, img_gid = parse_image_user(image_user) if run_as_user is None else (None, None)
    uid = _id(run_as_user, "runAsUser") if run_as_user is not None else (img_uid or 0)
    if run_as_group is not None:
        gid = _id(run_as_group, "runAsGroup")
    else:
        gid = img_gid or 0
    if pick("runAsNonRoot") and uid == 0:
        raise ValueError("runAsNonRoot is set but the container would run as root (uid 0)")
    extra: list[int] = []
    for g in list(pod_security_context.get("supplementalGroups") or []) + (
            [pod_security_context["fsGroup"]] if pod_security_context.get("fsGroup") is not None else []):
        g = _id(g, "supplementalGroups/fsGroup")
        if g not in extra:
            extra.append(g)
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        user["additionalGids"] = extra
    return user


# ---- capabilities ----------------------------------------------------------------------


def _cap_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"invalid capability {name!r}")
    upper = name.strip().upper()
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in _KNOWN_CAPS:
        raise ValueError(f"unknown capability {name!r}")
    return cap


def capability_set(capabilities: Mapping[str, Any] | None, privileged: bool = False) -> list[str]:
    """The effective set, as containerd's WithCapabilities: ``ALL`` in add/drop first, then
    individual adds, then individual drops (a cap both added and dropped ends up dropped).
    Names are accepted with or without ``CAP_`` and in any case."""
    if privileged:
        return list(ALL_CAPABILITIES)
    add = list((capabilities or {}).get("add") or [])
    drop = list((capabilities or {}).get("drop") or [])
    caps = list(DEFAULT_CAPABILITIES)
    if any(str(c).upper() == "ALL" for c in add):
        caps = list(ALL_CAPABILITIES)
    if any(str(c).upper() == "ALL" for c in drop):
        caps = []
    for c in add:
        if str(c).upper() != "ALL" and (cap := _cap_name(c)) not in caps:
            caps.append(cap)
    dropped = {_cap_name(c) for c in drop if str(c).upper() != "ALL"}
    return [c for c in caps if c not in dropped]


def _capabilities(caps: list[str]) -> dict[str, list[str]]:
    # No inheritable/ambient: a non-root user loses them on exec, as in Docker and containerd.
    return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}


# ---- mounts -------------------------------------------------------------------------------


def default_mounts(privileged: bool = False) -> list[dict[str, Any]]:
    """runc's `spec` mounts; a privileged container gets /sys and the cgroup fs writable."""
    sys_mode = "rw" if privileged else "ro"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_mode]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode]},
    ]


def _clean_abs(path: Any, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{what} must be an absolute path, got {path!r}")
    if ".." in PurePosixPath(path).parts:
        raise ValueError(f"{what} must not contain '..': {path!r}")
    return str(PurePosixPath(path))


def bind_mount(mount: BindMount | tuple[str, str, bool] | Sequence[Any]) -> dict[str, Any]:
    if len(mount) != 3:
        raise ValueError(f"a mount is (source, destination, read_only), got {mount!r}")
    source, destination, read_only = mount
    if not isinstance(read_only, bool):
        raise ValueError(f"read_only must be a bool, got {read_only!r}")
    return {"destination": _clean_abs(destination, "mount destination"), "type": "bind",
            "source": _clean_abs(source, "mount source"),
            "options": ["rbind", "rprivate", "ro" if read_only else "rw"]}


def all_mounts(extra: Iterable[Any], privileged: bool = False) -> list[dict[str, Any]]:
    """Default mounts, minus any a volume replaces (e.g. the sandbox's /dev/shm), then the
    binds with parents before children, as containerd orders them."""
    binds = [bind_mount(m) for m in extra]
    dests = [b["destination"] for b in binds]
    dupes = {d for d in dests if dests.count(d) > 1}
    if dupes:
        raise ValueError(f"more than one mount at {sorted(dupes)}")
    replaced = set(dests)
    binds.sort(key=lambda m: len(PurePosixPath(m["destination"]).parts))  # stable: keeps given order per depth
    return [m for m in default_mounts(privileged) if m["destination"] not in replaced] + binds


# ---- namespaces -------------------------------------------------------------------------


def namespaces(*, netns_path: str | None = None, ipc_path: str | None = None, uts_path: str | None = None,
               pid_path: str | None = None, host_network: bool = False, host_ipc: bool = False,
               host_pid: bool = False) -> list[dict[str, str]]:
    """linux.namespaces: new ones, or a sandbox's joined by path; a host* flag leaves the
    namespace out (the host's). hostNetwork also shares the host's UTS, as containerd does."""
    def ns(kind: str, path: str | None, host: bool, flag: str) -> list[dict[str, str]]:
        if host:
            if path:
                raise ValueError(f"{kind}: cannot both join {path!r} and use the host's namespace ({flag})")
            return []
        return [{"type": kind, "path": _clean_abs(path, f"{kind} namespace path")} if path else {"type": kind}]

    return (ns("pid", pid_path, host_pid, "hostPID") + ns("network", netns_path, host_network, "hostNetwork")
            + ns("ipc", ipc_path, host_ipc, "hostIPC") + ns("uts", uts_path, host_network, "hostNetwork")
            + [{"type": "mount"}])


# ---- resources -------------------------------------------------------------------------


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """kubelet's MilliCPUToShares: 1 CPU = 1024 shares, at least 2 (also for no request)."""
    if milli_cpu <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli_cpu * 1024 // 1000))


def milli_cpu_to_quota(milli_cpu: int, period: int = CPU_PERIOD) -> int:
    """kubelet's MilliCPUToQuota: the CFS quota for ``period``; 0 (no limit) for no cpu limit."""
    if milli_cpu <= 0:
        return 0
    return max(MIN_QUOTA, milli_cpu * period // 1000)


def _quantity(resources: Mapping[str, Any], kind: str, name: str) -> int:
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        return 0
    from pinnace.scheduler.model import quantity_value  # the scheduler's model: only for pods with resources

    try:
        q = quantity_value(name, value)  # millicores for cpu, bytes for memory; rounds up
    except (ValueError, TypeError) as e:
        raise ValueError(f"resources.{kind}.{name}: invalid quantity {value!r}: {e}") from None
    if q < 0:
        raise ValueError(f"resources.{kind}.{name}: must not be negative, got {value!r}")
    return q


def linux_resources(resources: Mapping[str, Any] | None, *, pids_limit: int | None = None,
                    privileged: bool = False) -> dict[str, Any]:
    """linux.resources from a container's requests/limits, as the kubelet's
    generateLinuxContainerResources: shares from requests.cpu (limits.cpu when there is no
    request), CFS quota from limits.cpu, memory.limit from limits.memory."""
    resources = resources or {}
    out: dict[str, Any] = {"devices": [{"allow": privileged, "access": "rwm"}]}
    cpu_request = _quantity(resources, "requests", "cpu")
    cpu_limit = _quantity(resources, "limits", "cpu")
    cpu: dict[str, Any] = {"shares": milli_cpu_to_shares(cpu_request or cpu_limit)}
    if cpu_limit:
        cpu["quota"] = milli_cpu_to_quota(cpu_limit)
        cpu["period"] = CPU_PERIOD
    out["cpu"] = cpu
    memory_limit = _quantity(resources, "limits", "memory")
    if memory_limit:
        out["memory"] = {"limit": memory_limit}
    if pids_limit is not None:
        if isinstance(pids_limit, bool) or not isinstance(pids_limit, int) or pids_limit == 0 or pids_limit < -1:
            raise ValueError(f"pids_limit must be a positive integer (or -1 for unlimited), got {pids_limit!r}")
        out["pids"] = {"limit": pids_limit}
    return out


# ---- the spec ---------------------------------------------------------------------------


def build_spec(
    container: Mapping[str, Any],
    *,
    image_config: Mapping[str, Any] | None = None,
    env: EnvInput = None,
    pod_security_context: Mapping[str, Any] | None = None,
    rootfs: str = "rootfs",
    hostname: str | None = None,
    mounts: Iterable[BindMount | tuple[str, str, bool]] = (),
    netns_path: str | None = None,
    ipc_path: str | None = None,
    uts_path: str | None = None,
    pid_path: str | None = None,
    host_network: bool = False,
    host_ipc: bool = False,
    host_pid: bool = False,
    cgroups_path: str | None = None,
    pids_limit: int | None = None,
    oom_score_adj: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OCI runtime spec for ``container`` (a pod spec's container object).

    ``env`` is the container's final environment (see :func:`resolve_env`), used as given
    and for ``$(VAR)`` in command/args. ``image_config`` is the image's config (whole blob
    or its ``config`` object) with a numeric ``User`` (see :func:`resolve_image_user`).
    ``mounts`` are the volumes as (host source, container destination, read_only).
    Raises ValueError for input runc would reject or Kubernetes forbids.
    """
    if not isinstance(container, Mapping):
        raise ValueError("container must be a mapping (a pod spec container)")
    cfg = runtime_config(image_config)
    sc: Mapping[str, Any] = container.get("securityContext") or {}
    psc: Mapping[str, Any] = pod_security_context or {}
    privileged = bool(sc.get("privileged"))
    ape = sc.get("allowPrivilegeEscalation")
    if privileged and ape is False:
        raise ValueError("securityContext: allowPrivilegeEscalation cannot be false when privileged is true")
    if hostname is not None and host_network:
        raise ValueError("hostname cannot be set with hostNetwork: the container shares the host's UTS namespace")

    container_env = _env_pairs(env)
    env_map = dict(container_env)
    image_env = cfg.get("Env") or []
    if not isinstance(image_env, list) or not all(isinstance(e, str) for e in image_env):
        raise ValueError(f"image Env must be a list of strings, got {image_env!r}")
    tty = bool(container.get("tty"))
    process_env = _merge_env([DEFAULT_PATH], image_env)
    if hostname:
        process_env = _merge_env(process_env, [f"HOSTNAME={hostname}"])
    if tty:
        process_env = _merge_env(process_env, ["TERM=xterm"])
    process_env = _merge_env(process_env, [f"{k}={v}" for k, v in container_env])

    cwd = container.get("workingDir") or cfg.get("WorkingDir") or "/"
    cwd = _clean_abs(cwd, "workingDir")
    caps = capability_set(sc.get("capabilities"), privileged)
    process: dict[str, Any] = {
        "terminal": tty,
        "user": process_user(sc, psc, cfg.get("User")),
        "args": container_args(container, image_config, env_map),
        "env": process_env,
        "cwd": cwd,
        "capabilities": _capabilities(caps),
        "noNewPrivileges": ape is False,
    }
    if oom_score_adj is not None:
        if isinstance(oom_score_adj, bool) or not isinstance(oom_score_adj, int) or not -1000 <= oom_score_adj <= 1000:
            raise ValueError(f"oom_score_adj must be an integer in [-1000, 1000], got {oom_score_adj!r}")
        process["oomScoreAdj"] = oom_score_adj

    linux: dict[str, Any] = {
        "resources": linux_resources(container.get("resources"), pids_limit=pids_limit, privileged=privileged),
        "namespaces": namespaces(netns_path=netns_path, ipc_path=ipc_path, uts_path=uts_path, pid_path=pid_path,
                                 host_network=host_network, host_ipc=host_ipc, host_pid=host_pid),
    }
    if cgroups_path is not None:
        if not isinstance(cgroups_path, str) or not cgroups_path or ".." in cgroups_path.split("/"):
            raise ValueError(f"invalid cgroups_path {cgroups_path!r}")
        linux["cgroupsPath"] = cgroups_path
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)

    if not isinstance(rootfs, str) or not rootfs:
        raise ValueError("rootfs must be a path")
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": bool(sc.get("readOnlyRootFilesystem"))},
        "mounts": all_mounts(mounts, privileged),
        "linux": linux,
    }
    if hostname:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62})?", hostname):
            raise ValueError(f"invalid hostname {hostname!r}")
        spec["hostname"] = hostname
    if annotations:
        spec["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return spec
