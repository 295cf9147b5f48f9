"""The ``runc`` container runtime: real OCI containers, one per Kubernetes container.

A pod sandbox is the pod's shared namespaces, *pinned* (bind-mounted on files the kubelet
owns, :mod:`pinnace.kubelet.mounts`) rather than held by a pause container: IPC, UTS (unless
``hostNetwork``; every container sets the pod's hostname in it) and, with a pod network, the
network namespace.  Every container of the pod joins them; each has its own PID namespace.
No pause process means one runc container (two runc runs, a runc init, a shim) less per pod:
about a third of a pod's start-up CPU.  A sandbox is ready while its pins are mounted; a
reboot (or a kubelet in another mount namespace) loses them, and the kubelet then replaces
the sandbox as it would after a pause container died.  (A sandbox made by an earlier
version, with a pause container -- its record has the ``pid`` -- is not ready: the kubelet
replaces it, and stopping it still stops the pause container.)

Networking: with a ``network`` (:class:`pinnace.kubelet.network.CniNetwork`), every sandbox
but a ``hostNetwork`` one gets its own network namespace, pinned by the network and wired by
CNI; every container of the pod joins it (``Sandbox.netns_path``), and ``Sandbox.ip`` is the
address CNI gave it.  ``sandbox.json`` records the attachment (written before CNI ADD runs, so
a crash mid-way can still be undone); stopping a sandbox releases it (CNI DEL in reverse
order, then the namespace file), as containerd does.

Without a ``network`` (``--pod-network host``) no pod gets its own network namespace: every
container uses the node's network (``Sandbox.netns_path`` is None, ``Sandbox.ip`` is the
node's ``host_ip``), while IPC and UTS (hostname = the pod's hostname) are per pod.  Two pods
listening on one port clash, as ``hostNetwork`` pods do.

/etc/resolv.conf is written from ``SandboxConfig.dns`` (the kubelet applies dnsPolicy; None or
empty: a copy of the host's), /etc/hosts from the pod IP, hostname, domain and hostAliases
(hostNetwork pods: the host's file and the aliases).

Layout under ``state_dir``::

    rootfs-cache/<digest>/          each image unpacked once, keyed by manifest digest;
                                    the read-only lower layer of every container's overlay
    sandboxes/<id>/                 sandbox.json, hosts, hostname, resolv.conf, ns/{ipc,uts},
                                    shm/ (a tmpfs: the pod's /dev/shm)
    containers/<id>/                container.json (labels, times, ...), bundle/config.json,
                                    bundle/rootfs (the overlay mount), upper/, work/
    runc/state, runc/shims/<id>     runc's ``--root`` and the shims (see runc.py)

Root filesystems: an overlayfs mount per container (lower = the image cache, upper
and work dirs in the container dir), so a container's writes never reach the cache
and creating a container copies nothing.  Where overlay cannot be mounted (a state dir
on overlayfs or a filesystem without ``d_type``, a kernel without overlay), each
container gets its own full unpack instead; the log says which.

Logs: the per-container shim (runc.py, ``log_format="cri"``) copies stdout/stderr into
``ContainerConfig.log_path`` in the CRI log format.  The shim outlives the kubelet, so
logs keep flowing and exit statuses (with OOM kills) are recorded while the kubelet is
down or restarting; a new ``RuncRuntime`` over the same ``state_dir`` finds everything.

Stopping sends the image's STOPSIGNAL (SIGTERM by default), then SIGKILL after the timeout.

Status is cheap (the kubelet polls it every second per container): the exit status
is the shim's ``exit.json``; "running" is our record of a successful start plus a
liveness check of the shim's pid.  ``runc state`` runs only when the shim died without
recording an exit.

cgroups: ``<cgroup_parent>/pod<uid>/<container id>``, cgroupfs driver; a relative
``cgroup_parent`` is under the kubelet's own cgroup.

stdin (``stdin: true``): a FIFO ``containers/<id>/stdin`` the shim gives the container
and ``kubectl attach`` writes into (:meth:`RuncRuntime.stdin_path`).  With ``stdinOnce``
the shim copies the FIFO into the container's stdin and closes that once the first attach
session's writer has gone (:meth:`RuncRuntime.close_stdin` asks for it too): the
container reads EOF.  ``tty: true`` containers run on a terminal (``process.terminal``;
the shim holds its master, logs its output as ``stdout`` and copies the FIFO into it);
:meth:`RuncRuntime.resize_container` sets its size.  ``kubectl exec -t`` gets a real
terminal (:mod:`.ttyexec`).

Every container of a pod shares the pod's /dev/shm (a 64 MiB tmpfs in the sandbox dir,
as containerd's), so POSIX shared memory works across them, as it does in Kubernetes.

Not supported yet: a shared PID namespace (shareProcessNamespace), hostIPC/hostPID,
seccomp and AppArmor profiles, garbage collection of ``rootfs-cache`` for removed images.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from pinnace.images.service import ImageService
from pinnace.images.store import LocalImage
from pinnace.kubelet import dnsconfig, mounts
from pinnace.kubelet.cni import DEFAULT_BIN_DIRS
from pinnace.kubelet.network import CniNetwork
from pinnace.kubelet.runtime import ocispec, ttyexec
from pinnace.kubelet.runtime.base import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    RuntimeError_,
    Sandbox,
    SandboxConfig,
)
from pinnace.kubelet.runtime.runc import ExitStatus, Runc, RuncError, cgroup_dirs
from pinnace.kubelet.runtime.stdio import ExecProcess

log = logging.getLogger(__name__)

START_ERROR_EXIT_CODE = 128  # what Kubernetes shows for a failed start ("StartError")
UNKNOWN_EXIT_CODE = 255  # containerd's code for a lost exit status
ETC_FILES = ("hosts", "hostname", "resolv.conf")
# The pod's /dev/shm, shared by its containers (as containerd's sandbox shm; Docker's size).
SHM_SIZE = 64 * 1024 * 1024
SHM_FLAGS = 2 | 4 | 8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
_SAFE = re.compile(r"[^\w.-]")


def _utc(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # atomic: a crash never leaves half a record


def _default_host_ip() -> str:
    """The address of the interface with the default route (a UDP connect sends nothing)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return str(s.getsockname()[0])
    return "127.0.0.1"


# ---- mounts -----------------------------------------------------------------------------------


def _mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    for p in (lower, upper, work):
        if any(c in str(p) for c in ",:\\"):  # overlay's option syntax has no portable escaping
            raise OSError(errno.EINVAL, f"path {p} cannot be an overlay option")
    mounts.mount("overlay", target, "overlay", f"lowerdir={lower},upperdir={upper},workdir={work}")


def _remove_tree(path: Path) -> None:
    """rmtree, but never through a mount: that would delete what the mount shows (an image
    cache, a volume)."""
    left = mounts.mounts_under(path)
    if left:
        raise RuntimeError_(f"not removing {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


class RuncRuntime:
    """CRI's RuntimeService over runc; see the module docstring."""

    name = "runc"

    def __init__(self, state_dir: Path, images: ImageService, runc: Runc | None = None, *,
                 host_ip: str | None = None, cgroup_parent: str = "/pinnace", network: Any | None = None):
        """``network``: a :class:`pinnace.kubelet.network.CniNetwork` giving each sandbox its own
        network namespace; None: every pod on the node's network."""
        self.state_dir = Path(state_dir)
        self.images = images
        self.runc = runc or Runc(self.state_dir)
        self.host_ip = host_ip or _default_host_ip()
        self.network = network
        if not cgroup_parent or ".." in cgroup_parent.split("/"):
            raise ValueError(f"invalid cgroup_parent {cgroup_parent!r}")
        self.cgroup_parent = cgroup_parent.rstrip("/") or "/"
        self._containers = self.state_dir / "containers"
        self._sandboxes = self.state_dir / "sandboxes"
        self._cache = self.state_dir / "rootfs-cache"
        self._records: dict[str, dict[str, Any]] = {}  # container.json contents, by id
        self._exits: dict[str, ExitStatus] = {}  # exit statuses seen (they never change)
        self._lost: set[str] = set()  # containers whose shim died without an exit status
        self._unpack_locks: dict[str, asyncio.Lock] = {}
        # Pod lifecycle events: the kubelet's callback, called with a container's id as soon as
        # its shim has recorded its exit -- no waiting for the next status poll.
        self.on_container_exit: Callable[[str], None] | None = None
        self.runc.on_exit = lambda cid: self.on_container_exit(cid) if self.on_container_exit else None

    async def close(self) -> None:
        """Stop the shim server; the shims keep running the containers without us."""
        self.runc.close()

    # ---- records ---------------------------------------------------------------------------

    def _container_dir(self, container_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", container_id or ""):
            raise RuntimeError_(f"invalid container id {container_id!r}")
        return self._containers / container_id

    def _record(self, container_id: str) -> dict[str, Any] | None:
        rec = self._records.get(container_id)
        if rec is None:
            try:
                rec = json.loads((self._container_dir(container_id) / "container.json").read_text())
            except FileNotFoundError:
                return None
            except (OSError, ValueError) as e:
                raise RuntimeError_(f"container {container_id}: corrupt state: {e}") from e
            self._records[container_id] = rec
        return rec

    def _must(self, container_id: str) -> dict[str, Any]:
        rec = self._record(container_id)
        if rec is None:
            raise RuntimeError_(f"container {container_id} not found")
        return rec

    def _save(self, rec: dict[str, Any]) -> None:
        _write_json(self._container_dir(rec["id"]) / "container.json", rec)
        self._records[rec["id"]] = rec

    def _cgroup(self, pod_uid: str, name: str) -> str:
        parent = "" if self.cgroup_parent == "/" else self.cgroup_parent
        return f"{parent}/pod{_SAFE.sub('_', pod_uid)}/{name}"

    # ---- sandboxes ---------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: SandboxConfig) -> Sandbox:
        sid = secrets.token_hex(32)
        d = self._sandboxes / sid
        d.mkdir(parents=True)
        own_net = self.network is not None and not config.host_network
        pins = self._pins(sid, config)
        record: dict[str, Any] = {"id": sid, "config": asdict(config), "ip": self.host_ip,
                                  "cgroups_path": self._cgroup(config.pod_uid, sid), "created_at": time.time(),
                                  "namespaces": {kind: str(p) for kind, p in pins.items()}}
        attachment: dict[str, Any] | None = None
        try:
            _write_json(d / "sandbox.json", record)  # before acting: a crash mid-way can be undone
            await mounts.pin_namespaces(pins)
            (d / "shm").mkdir()
            mounts.mount("shm", d / "shm", "tmpfs", f"mode=1777,size={SHM_SIZE}", SHM_FLAGS)
            if own_net:
                attachment = self.network.plan(sid, config)
                record["network"], record["ip"] = attachment, None
                _write_json(d / "sandbox.json", record)
                await self.network.attach(attachment)
                record["ip"] = attachment["ip"]
            self._write_etc_files(d, config, record["ip"])
        except Exception as e:
            if attachment is not None:
                try:
                    await self.network.detach(attachment)
                except Exception as undo:
                    # Keep the record: removing the sandbox later retries the release.
                    log.warning("runc runtime: releasing the network of failed sandbox %s: %s", sid[:12], undo)
                    raise RuntimeError_(f"pod sandbox: {e}") from e
            with contextlib.suppress(OSError, RuntimeError_):
                self._unpin(record)
                mounts.unmount(d / "shm")
                await asyncio.to_thread(_remove_tree, d)
            if isinstance(e, RuntimeError_):
                raise
            raise RuntimeError_(f"pod sandbox: {e}") from e
        _write_json(d / "sandbox.json", record)
        return self._sandbox_from(sid, record)

    def _pins(self, sid: str, config: SandboxConfig) -> dict[str, Path]:
        """Where the sandbox's IPC and UTS namespaces are pinned (UTS: not for hostNetwork,
        which keeps the node's)."""
        ns_dir = self._sandboxes / sid / "ns"
        return {"ipc": ns_dir / "ipc"} if config.host_network else {"ipc": ns_dir / "ipc", "uts": ns_dir / "uts"}

    def _unpin(self, record: dict[str, Any]) -> None:
        for path in (record.get("namespaces") or {}).values():
            mounts.unpin(path)

    def _sandbox_from(self, sid: str, record: dict[str, Any]) -> Sandbox:
        """The Sandbox ``sandbox.json`` describes (what a restarted kubelet adopts); ready
        while all of its namespaces are pinned."""
        known = {f.name for f in fields(SandboxConfig)}
        raw = record.get("config") or {}
        try:
            config = SandboxConfig(**{k: v for k, v in raw.items() if k in known})
        except TypeError:  # no (complete) record: a sandbox whose creation was cut short
            config = SandboxConfig(pod_uid=raw.get("pod_uid", ""), name=raw.get("name", ""),
                                   namespace=raw.get("namespace", ""), hostname=raw.get("hostname", ""))
        namespaces = dict(record.get("namespaces") or {})
        net = record.get("network")
        ip = record.get("ip") or self.host_ip
        if net:
            ip = record.get("ip")
            if not net.get("released"):
                namespaces["net"] = net["netns"]
        ready = (bool(record.get("namespaces")) and not record.get("stopped")
                 and all(map(mounts.is_pinned, namespaces.values())))
        return Sandbox(id=sid, config=config, ip=ip, netns_path=namespaces.get("net"),
                       ipc_path=namespaces.get("ipc"), uts_path=namespaces.get("uts"),
                       ready=ready, created_at=_utc(record.get("created_at")))

    async def list_pod_sandboxes(self) -> list[Sandbox]:
        """Every sandbox dir, ready (its namespaces are pinned) or not: one whose namespaces are
        gone, or whose creation was cut short (no complete ``sandbox.json``), is listed too, so
        that it can be removed."""
        try:
            dirs = sorted(p for p in self._sandboxes.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name))
        except FileNotFoundError:
            return []
        out = []
        for d in dirs:
            try:
                record = json.loads((d / "sandbox.json").read_text())
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError) as e:
                log.warning("runc runtime: sandbox %s has no usable sandbox.json (%s)", d.name[:12], e)
                record = {}
            out.append(self._sandbox_from(d.name, record))
        out.sort(key=lambda s: s.created_at or dt.datetime.min.replace(tzinfo=dt.UTC))
        return out

    def _write_etc_files(self, d: Path, config: SandboxConfig, pod_ip: str | None) -> None:
        """/etc/hosts, /etc/hostname and /etc/resolv.conf, bind-mounted into every container."""
        if config.host_network:
            # The host's names, as the kubelet gives hostNetwork pods.
            hostname = socket.gethostname()
            node_hosts = _read_host_file("/etc/hosts") or f"127.0.0.1\tlocalhost\n{self.host_ip}\t{hostname}\n"
            hosts = dnsconfig.host_network_hosts(node_hosts, config.host_aliases)
        else:
            hostname = config.hostname
            hosts = dnsconfig.managed_hosts([pod_ip or self.host_ip], hostname, config.domain, config.host_aliases)
        (d / "hosts").write_text(hosts)
        (d / "hostname").write_text(hostname + "\n")
        # containerd's rule: an empty DNS config means a copy of the host's resolv.conf.
        resolv = dnsconfig.resolv_conf(dnsconfig.DnsConfig.from_dict(config.dns)) if config.dns else ""
        (d / "resolv.conf").write_text(resolv or _read_host_file("/etc/resolv.conf"))
        for name in ETC_FILES:
            os.chmod(d / name, 0o644)

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        """Release its network and stop its containers; from then on it is not ready (CRI's
        SANDBOX_NOTREADY), though its namespaces stay pinned until it is removed.  The network
        first, while its containers may still hold the namespace (as containerd does while the
        pause container runs)."""
        if (self._sandboxes / sandbox.id).exists():
            record = self._read_record(sandbox.id)
            if record and not record.get("stopped"):
                record["stopped"] = True
                _write_json(self._sandboxes / sandbox.id / "sandbox.json", record)
            try:
                await self._release_network(sandbox.id)
            except RuntimeError_ as e:  # removing the sandbox tries again
                log.warning("runc runtime: %s", e)
        await asyncio.gather(*(self.stop_container(cid, 0) for cid in self._sandbox_containers(sandbox.id)))
        if (self._sandboxes / sandbox.id).exists():
            if self._read_record(sandbox.id).get("pid"):  # an earlier version's pause container
                await self._kill_and_wait(sandbox.id, signal.SIGKILL, self.runc.timeout)

    def _read_record(self, sandbox_id: str) -> dict[str, Any]:
        try:
            record = json.loads((self._sandboxes / sandbox_id / "sandbox.json").read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    async def _release_network(self, sandbox_id: str) -> None:
        """CNI DEL and the namespace file, once (the record says it is done)."""
        record = self._read_record(sandbox_id)
        net = record.get("network")
        if not net or net.get("released"):
            return
        network = self.network
        if network is None:  # a sandbox from a run with a pod network: release it all the same
            network = CniNetwork(self.state_dir / "cni", bin_dirs=net.get("bin_dirs") or DEFAULT_BIN_DIRS)
        try:
            await network.detach(net, netns=self._netns_through_container(sandbox_id))
        except Exception as e:
            raise RuntimeError_(f"pod sandbox {sandbox_id}: releasing its network: {e}") from e
        net["released"] = True
        _write_json(self._sandboxes / sandbox_id / "sandbox.json", record)

    def _netns_through_container(self, sandbox_id: str) -> str | None:
        """The sandbox's network namespace through one of its running containers: what CNI
        DEL is given when the pinned file is not mounted in our mount namespace (a kubelet
        started anew in another one)."""
        for cid in self._sandbox_containers(sandbox_id):
            rec = self._record(cid)
            path = f"/proc/{rec.get('pid')}/ns/net" if rec else ""
            if rec and rec.get("started_at") and self._exit(cid) is None and os.path.exists(path):
                return path
        return None

    async def check_pod_sandbox_network(self, sandbox: Sandbox) -> str | None:
        """CNI CHECK of the sandbox's network: None when it is fine (or the sandbox has none),
        else what is wrong."""
        record = self._read_record(sandbox.id)
        net = record.get("network")
        if not net or net.get("released") or self.network is None:
            return None
        try:
            await self.network.check(net)
        except Exception as e:
            return str(e)
        return None

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        await self.stop_pod_sandbox(sandbox)
        for cid in self._sandbox_containers(sandbox.id):
            await self.remove_container(cid)
        d = self._sandboxes / sandbox.id
        if not d.exists():
            return
        record = self._read_record(sandbox.id)
        cgroups_path = record.get("cgroups_path") or self._cgroup(sandbox.config.pod_uid, sandbox.id)
        if record.get("pid"):  # an earlier version's pause container
            try:
                await self.runc.delete(sandbox.id, force=True)
            except RuncError as e:
                raise RuntimeError_(f"pod sandbox {sandbox.id}: {e}") from e
        await self._release_network(sandbox.id)
        try:
            await asyncio.to_thread(self._unpin, record)
            await asyncio.to_thread(mounts.unmount, d / "shm")
        except OSError as e:
            raise RuntimeError_(f"pod sandbox {sandbox.id}: {e}") from e
        await asyncio.to_thread(_remove_tree, d)
        self._rmdir_cgroups(cgroups_path.rsplit("/", 1)[0])

    def _sandbox_containers(self, sandbox_id: str) -> list[str]:
        out = []
        for cid in self._container_ids():
            with contextlib.suppress(RuntimeError_):
                rec = self._record(cid)
                if rec is not None and rec["sandbox_id"] == sandbox_id:
                    out.append(cid)
        return out

    def _rmdir_cgroups(self, pod_cgroup: str) -> None:
        """Remove the pod's cgroup (runc removes only each container's own)."""
        for d in cgroup_dirs(pod_cgroup.rstrip("/")):
            with contextlib.suppress(FileNotFoundError):
                try:
                    d.rmdir()
                except OSError as e:  # still has containers: a leak worth knowing about
                    log.warning("runc runtime: cannot remove cgroup %s: %s", d, e)

    # ---- containers --------------------------------------------------------------------------

    async def create_container(self, sandbox: Sandbox, config: ContainerConfig) -> str:
        sandbox_dir = self._sandboxes / sandbox.id
        if not sandbox_dir.exists():
            raise RuntimeError_(f"pod sandbox {sandbox.id} not found")
        ref = config.image_ref or config.image
        image = await self.images.resolve(ref)
        if image is None:
            raise RuntimeError_(f"image {ref!r} is not present")
        cid = secrets.token_hex(32)
        d = self._container_dir(cid)
        rootfs = d / "bundle" / "rootfs"
        rootfs.mkdir(parents=True)
        mode = ""
        try:
            lower, mode = await self._make_rootfs(image, d, rootfs)
            spec = self._container_spec(sandbox, config, image, lower, cid)
            _write_json(d / "bundle" / "config.json", spec)
            rec = {"id": cid, "sandbox_id": sandbox.id, "name": config.name, "image": config.image,
                   "image_ref": image.ref, "labels": dict(config.labels), "log_path": str(config.log_path),
                   "rootfs": mode, "cgroups_path": spec["linux"]["cgroupsPath"], "created_at": time.time(),
                   "stop_signal": _stop_signal(config.image_config or ocispec.runtime_config(image.config)),
                   "started_at": None, "pid": None, "start_error": None}
            self._save(rec)
            config.log_path.parent.mkdir(parents=True, exist_ok=True)
            stdin = None
            if config.stdin:  # what kubectl attach writes, the shim gives the container (see stdin_path)
                stdin = d / "stdin"
                os.mkfifo(stdin, 0o600)
            rec["pid"] = await self.runc.create(cid, d / "bundle", config.log_path, config.log_path,
                                                log_format="cri", stdin=stdin, stdin_once=config.stdin_once)
            self._save(rec)
        except Exception as e:
            # Undo everything: a failed create must not leave a mount or a half container.
            self._records.pop(cid, None)
            with contextlib.suppress(RuncError):
                await self.runc.delete(cid, force=True)
            if mode == "overlay":
                with contextlib.suppress(OSError):
                    mounts.unmount(rootfs)
            with contextlib.suppress(RuntimeError_):
                await asyncio.to_thread(_remove_tree, d)
            if isinstance(e, RuntimeError_):
                raise
            raise RuntimeError_(str(e)) from e
        return cid

    async def _make_rootfs(self, image: LocalImage, d: Path, rootfs: Path) -> tuple[Path, str]:
        """Mount ``rootfs`` as an overlay over the image cache; (the image's files, mode)."""
        lower = await self._cached_image(image)
        upper, work = d / "upper", d / "work"
        upper.mkdir()
        work.mkdir()
        try:
            _mount_overlay(lower, upper, work, rootfs)
            return lower, "overlay"
        except OSError as e:
            log.warning("runc runtime: overlay mount failed (%s); unpacking %s for container %s instead",
                        e, image.ref, d.name[:12])
        shutil.rmtree(upper)
        shutil.rmtree(work)
        await self.images.unpack(image, rootfs)
        return rootfs, "copy"

    async def _cached_image(self, image: LocalImage) -> Path:
        """The image unpacked once into the cache (keyed by manifest digest)."""
        key = _SAFE.sub("_", image.manifest_digest.replace("sha256:", ""))
        dest = self._cache / key
        lock = self._unpack_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not dest.exists():
                tmp = self._cache / f".{key}-{secrets.token_hex(4)}"
                try:
                    await self.images.unpack(image, tmp)
                    tmp.rename(dest)  # atomic: a crash mid-unpack leaves only a .tmp dir
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        return dest

    def _container_spec(self, sandbox: Sandbox, config: ContainerConfig, image: LocalImage, image_root: Path,
                        cid: str) -> dict[str, Any]:
        image_config = dict(config.image_config or ocispec.runtime_config(image.config))
        user = image_config.get("User")
        if user and not re.fullmatch(r"\d+(:\d+)?", user):
            try:
                image_config["User"] = ocispec.resolve_image_user(user, image_root)
            except ValueError:
                if _run_as_user(config) is None:
                    raise
                image_config.pop("User")  # runAsUser wins; the name does not matter
        host_net = sandbox.config.host_network
        hostname = socket.gethostname() if host_net else sandbox.config.hostname
        sandbox_dir = self._sandboxes / sandbox.id
        mounts = [ocispec.BindMount(m.host_path, m.container_path, m.read_only) for m in config.mounts]
        taken = {str(Path(m.container_path)) for m in config.mounts}
        read_only_root = bool(config.security_context.get("readOnlyRootFilesystem"))
        mounts += [ocispec.BindMount(str(sandbox_dir / name), f"/etc/{name}", read_only_root)
                   for name in ETC_FILES if f"/etc/{name}" not in taken]
        if "/dev/shm" not in taken and (sandbox_dir / "shm").is_dir():  # (not in an earlier version's sandbox)
            mounts.append(ocispec.BindMount(str(sandbox_dir / "shm"), "/dev/shm"))
        container = {
            "name": config.name,
            # The kubelet already expanded $(VAR)s: escape "$" so build_spec's expansion is the identity.
            "command": [a.replace("$", "$$") for a in config.args],
            "workingDir": config.working_dir,
            "securityContext": config.security_context,
            "resources": config.resources,
            "tty": config.tty,
        }
        spec = ocispec.build_spec(
            container, image_config=image_config, env={"HOSTNAME": hostname, **config.env},
            pod_security_context=config.pod_security_context, mounts=mounts,
            hostname=None if host_net else sandbox.config.hostname,  # set in the pod's UTS namespace
            netns_path=sandbox.netns_path, ipc_path=sandbox.ipc_path, uts_path=sandbox.uts_path,
            host_network=host_net, cgroups_path=self._cgroup(sandbox.config.pod_uid, cid),
            annotations={"io.kubernetes.cri.container-type": "container",
                         "io.kubernetes.cri.sandbox-id": sandbox.id})
        if sandbox.netns_path is None:
            if not host_net and self._read_record(sandbox.id).get("network"):
                # Never fall back to the node's network for a pod that has its own.
                raise RuntimeError_(f"pod sandbox {sandbox.id}: its network namespace is gone")
            _use_host_network(spec)
        return spec

    async def start_container(self, container_id: str) -> None:
        rec = self._must(container_id)
        if rec["started_at"] is not None or rec["start_error"] or self._exit(container_id) is not None:
            raise RuntimeError_(f"container {container_id} is not in the created state")
        try:
            await self.runc.start(container_id)
        except RuncError as e:
            rec["start_error"] = {"message": str(e), "at": time.time()}
            self._save(rec)
            with contextlib.suppress(RuncError):
                await self.runc.kill(container_id, signal.SIGKILL)
            raise RuntimeError_(str(e)) from e
        rec["started_at"] = time.time()
        self._save(rec)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        rec = self._record(container_id)
        if rec is None:
            return  # CRI: stopping a removed container is not an error
        status = await self.container_status(container_id)
        if status.state == "exited":
            return
        if status.state == "running" and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await self._kill_and_wait(container_id, rec.get("stop_signal") or signal.SIGTERM, timeout)
                return
        await self._kill_and_wait(container_id, signal.SIGKILL, self.runc.timeout)

    async def _kill_and_wait(self, container_id: str, sig: int, timeout: float) -> None:
        """Signal init and wait (at most ``timeout`` seconds, else TimeoutError) for its exit."""
        try:
            await self.runc.kill(container_id, sig)
        except RuncError as e:  # already stopped (or gone): waiting tells
            log.debug("runc runtime: kill %s %s: %s", container_id[:12], sig, e)
        try:
            await asyncio.wait_for(self.runc.wait(container_id, poll=0.05), timeout)
        except RuncError:  # gone altogether: nothing to wait for
            pass

    async def remove_container(self, container_id: str) -> None:
        rec = self._record(container_id)
        if rec is None:
            return  # already removed
        try:
            await self.runc.delete(container_id, force=True)
        except RuncError as e:
            raise RuntimeError_(f"container {container_id}: {e}") from e
        d = self._container_dir(container_id)
        rootfs = d / "bundle" / "rootfs"
        if rec.get("rootfs") == "overlay":
            try:
                mounts.unmount(rootfs)
            except OSError as e:
                raise RuntimeError_(f"container {container_id}: {e}") from e
        await asyncio.to_thread(_remove_tree, d)
        self._records.pop(container_id, None)
        self._exits.pop(container_id, None)
        self._lost.discard(container_id)

    def _exit(self, container_id: str) -> ExitStatus | None:
        status = self._exits.get(container_id)
        if status is None:
            status = self.runc.exit_status(container_id)
            if status is not None:
                self._exits[container_id] = status
        return status

    async def container_status(self, container_id: str) -> ContainerStatus:
        rec = self._must(container_id)
        status = ContainerStatus(id=container_id, state="unknown", created_at=_utc(rec["created_at"]),
                                 started_at=_utc(rec["started_at"]), pid=rec.get("pid"), labels=dict(rec["labels"]),
                                 sandbox_id=rec.get("sandbox_id"))
        exit_status = self._exit(container_id)
        if exit_status is None and not self.runc.shim_alive(container_id):
            # The shim is gone without a record (killed, or it wrote one just now): re-read,
            # then ask runc as the last resort.
            exit_status = self._exit(container_id) or await self._lost_exit(container_id)
        if rec.get("start_error"):
            err = rec["start_error"]
            status.state, status.exit_code, status.reason = "exited", START_ERROR_EXIT_CODE, "StartError"
            status.message, status.started_at = err["message"], None
            status.finished_at = _utc(exit_status.finished_at if exit_status else err["at"])
        elif exit_status is not None:
            status.state, status.exit_code = "exited", exit_status.exit_code
            status.finished_at = _utc(exit_status.finished_at)
            status.reason = exit_status.reason
            if container_id in self._lost:
                status.reason = "Unknown"
                status.message = "the container's shim died without recording its exit status"
            elif exit_status.oom_killed:
                status.message = "the container exceeded its memory limit and was killed by the OOM killer"
        else:
            status.state = "running" if rec["started_at"] is not None else "created"
        return status

    async def _lost_exit(self, container_id: str) -> ExitStatus | None:
        try:
            state = await self.runc.state(container_id)
        except RuncError:
            state = {"status": "stopped"}
        if state.get("status") in ("created", "running", "paused"):
            return None  # the container lives on without its shim: its status will be lost
        status = ExitStatus(UNKNOWN_EXIT_CODE, finished_at=time.time())  # as containerd reports a lost status
        self._exits[container_id] = status
        self._lost.add(container_id)
        return status

    def _container_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self._containers.iterdir() if (p / "container.json").exists())
        except FileNotFoundError:
            return []

    async def list_containers(self) -> list[ContainerStatus]:
        out = []
        for cid in self._container_ids():
            try:
                out.append(await self.container_status(cid))
            except RuntimeError_ as e:  # removed meanwhile, or a corrupt record: skip it
                log.debug("runc runtime: skipping container %s: %s", cid[:12], e)
        out.sort(key=lambda s: s.created_at or dt.datetime.min.replace(tzinfo=dt.UTC))
        return out

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float) -> ExecResult:
        status = await self.container_status(container_id)
        if status.state != "running":
            raise RuntimeError_(f"container {container_id} is not running")
        if not cmd:
            raise RuntimeError_("no command specified")
        pid_file = self._container_dir(container_id) / f"exec-{secrets.token_hex(6)}.pid"
        # `runc exec` takes process.env/user/cwd/capabilities from the bundle's config.json.
        proc = await asyncio.create_subprocess_exec(
            self.runc.binary, "--root", str(self.runc.root), "exec", "--pid-file", str(pid_file), container_id,
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError) as e:
            # Kill the process in the container (killing only runc would leave it running), then
            # let runc reap it: killed first, runc would orphan it to PID 1 as a zombie, which
            # holds up the teardown of the container's pid namespace until PID 1 reaps it.
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if isinstance(e, TimeoutError):
                raise TimeoutError(f"command {cmd!r} timed out after {timeout}s") from None
            raise
        finally:
            pid_file.unlink(missing_ok=True)
        assert proc.returncode is not None
        return ExecResult(exit_code=proc.returncode, stdout=out, stderr=err)

    async def exec_process(self, container_id: str, cmd: list[str], *, tty: bool = False,
                           stdin: bool = False) -> ExecProcess:
        """``kubectl exec``: ``runc exec`` with pipes; with ``tty``, on a new terminal whose
        master side runc hands us over a console socket (see :mod:`.ttyexec`).  ``kill``
        kills the command itself (runc cannot pass SIGKILL on)."""
        status = await self.container_status(container_id)
        if status.state != "running":
            raise RuntimeError_(f"container {container_id} is not running")
        if not cmd:
            raise RuntimeError_("no command specified")
        pid_file = self._container_dir(container_id) / f"exec-{secrets.token_hex(6)}.pid"
        if tty:
            return await ttyexec.start(self.runc.binary, self.runc.root, container_id, cmd, pid_file, stdin=stdin,
                                       timeout=self.runc.timeout)
        proc = await asyncio.create_subprocess_exec(
            self.runc.binary, "--root", str(self.runc.root), "exec", "--pid-file", str(pid_file), container_id, *cmd,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        handle = ExecProcess.from_process(proc)

        def kill() -> None:
            if proc.returncode is None:  # runc still waits for the command: the pid is the command's
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        handle.kill, handle.close = kill, lambda: pid_file.unlink(missing_ok=True)
        return handle

    def stdin_path(self, container_id: str) -> Path | None:
        """The FIFO that is the container's stdin, for ``kubectl attach`` to write into; None
        when it has none (``stdin`` unset in its spec) or it was closed."""
        path = self._container_dir(container_id) / "stdin"
        return path if path.exists() else None

    async def close_stdin(self, container_id: str) -> None:
        """``stdinOnce``: the first attach session ended, no more input: the container reads
        EOF once it has read what the FIFO held (a terminal stays open: only the copying into
        it ends); later attach sessions get no stdin."""
        path = self._container_dir(container_id) / "stdin"
        if path.exists():
            try:
                self.runc.close_stdin(container_id)
            except RuncError as e:  # exited meanwhile, or no stdinOnce: the FIFO is held read-write
                log.debug("runc runtime: close stdin of %s: %s", container_id[:12], e)
        path.unlink(missing_ok=True)

    def resize_container(self, container_id: str, width: int, height: int) -> None:
        """Set the size of a ``tty`` container's terminal (``kubectl attach -t`` resizes)."""
        self._must(container_id)
        try:
            self.runc.resize(container_id, width, height)
        except RuncError as e:
            raise RuntimeError_(str(e)) from e

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI's ReopenContainerLog (log rotation): the shim writes a new file at the log path."""
        self._must(container_id)
        try:
            self.runc.reopen_log(container_id)
        except RuncError as e:
            raise RuntimeError_(str(e)) from e


def _use_host_network(spec: dict[str, Any]) -> None:
    """Drop the new network namespace build_spec asked for: without a pod network, pods use the
    node's."""
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]


def _stop_signal(image_config: Mapping[str, Any]) -> int:
    """The image's STOPSIGNAL ("SIGQUIT", "QUIT", "3"), which Kubernetes sends instead of SIGTERM."""
    value = str(image_config.get("StopSignal") or "").strip().upper()
    if value.isdigit():
        return int(value)
    if value:
        with contextlib.suppress(AttributeError):
            return int(getattr(signal, value if value.startswith("SIG") else "SIG" + value))
        log.warning("runc runtime: unknown image StopSignal %r; using SIGTERM", value)
    return int(signal.SIGTERM)


def _run_as_user(config: ContainerConfig) -> Any:
    value = config.security_context.get("runAsUser")
    return config.pod_security_context.get("runAsUser") if value is None else value


def _read_host_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


__all__ = ["RuncRuntime"]
