"""The kubelet's volume manager: a pod's volumes as host directories, and the
container mounts over them.

    vm = VolumeManager(client, Path("/var/lib/pinnace/pods"), node_ip="10.0.0.5",
                       node_allocatable=node["status"]["allocatable"])
    dirs = await vm.setup(pod)                       # before the sandbox's first container
    mounts = vm.mounts_for(pod, container, dirs)     # -> ContainerConfig.mounts
    await vm.refresh(pod)                            # periodically: ConfigMap/Secret updates
    await vm.teardown(pod_uid)                       # after the pod's containers are gone

Layout follows the kubelet: ``<pods_dir>/<uid>/volumes/kubernetes.io~<plugin>/<name>``.
ConfigMap, Secret, downward API and projected volumes are written with the
kubelet's AtomicWriter scheme (a timestamped dir, a ``..data`` symlink swapped by
``rename``, and ``key -> ..data/key`` links) so a container sees an update all at
once.  hostPath and PVCs bound to hostPath/local PVs resolve to the host path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pinnace.client.rest import ApiException, resource_path
from pinnace.kubelet import mounts
from pinnace.kubelet.env import configmap_data, field_value, pod_resource_value, secret_data
from pinnace.kubelet.runtime.base import Mount
from pinnace.kubelet.runtime.ocispec import expand

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644  # ConfigMap/Secret/DownwardAPI/Projected defaultMode
DEFAULT_TOKEN_SECONDS = 3600
DATA_DIR = "..data"
_NEW_DATA_DIR = "..data_tmp"
_MAX_PATH, _MAX_NAME = 4096, 255

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Volume kinds the kubelet always mounts read-only (API data volumes) and re-syncs.
DATA_KINDS = ("configMap", "secret", "downwardAPI", "projected")
# Secrets (and projected tokens) live on tmpfs when we may mount, never on disk.
_MEMORY_BACKED = ("secret", "projected")


class ApiClient(Protocol):
    """What the volume manager needs of :class:`pinnace.client.rest.RestClient`."""

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict: ...

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any: ...


class VolumeError(ValueError):
    """A volume could not be set up or mounted; the message is event-ready
    (reason ``FailedMount``). ``errors`` maps volume name -> message. A ValueError
    so a failing ``mounts_for`` (subPath) surfaces as CreateContainerConfigError."""

    reason = "FailedMount"

    def __init__(self, message: str, errors: Mapping[str, str] | None = None):
        super().__init__(message)
        self.errors = dict(errors or {})


# ---- AtomicWriter ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = DEFAULT_MODE


def validate_path(path: str) -> str:
    """AtomicWriter's validatePath: relative, no ``..`` element, not ``..``-prefixed
    (reserved for ``..data`` and the timestamped dirs). Returns the cleaned path."""
    if not path:
        raise VolumeError(f"invalid path: must not be empty: {path!r}")
    if path.startswith("/"):
        raise VolumeError(f"invalid path: must be relative path: {path}")
    if len(path) > _MAX_PATH:
        raise VolumeError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    items = path.split("/")
    if ".." in items:
        raise VolumeError(f"invalid path: must not contain '..': {path}")
    if any(len(i) > _MAX_NAME for i in items):
        raise VolumeError(f"invalid path: filenames must be less than or equal to {_MAX_NAME} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise VolumeError(f"invalid path: must not start with '..': {path}")
    clean = os.path.normpath(path)
    if clean in (".", "") or clean.startswith(".."):
        raise VolumeError(f"invalid path: {path}")
    return clean


class AtomicWriter:
    """kubelet's pkg/volume/util/atomic_writer.go: project a payload into ``target``
    so readers see the old set of files or the new one, never a mix. Not
    thread-safe: the caller serialises writes to one target."""

    def __init__(self, target: Path):
        self.target = target

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Project ``payload`` (relative path -> content); False when nothing changed."""
        clean = {validate_path(p): f for p, f in payload.items()}
        old_ts = self._current_ts_dir()
        remove: set[str] = set()
        if old_ts is not None:
            remove = self._paths_to_remove(clean, self.target / old_ts)
            if not remove and not self._differs(clean, self.target / old_ts):
                return False
        ts_dir = self._new_ts_dir()
        try:
            self._write_payload(clean, ts_dir)
            self._create_user_visible(clean)
            tmp_link = self.target / _NEW_DATA_DIR
            tmp_link.unlink(missing_ok=True)
            os.symlink(ts_dir.name, tmp_link)
            os.rename(tmp_link, self.target / DATA_DIR)  # the atomic switch
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise
        for p in remove:
            if "/" not in p:  # only top-level links live outside the data dir
                (self.target / p).unlink(missing_ok=True)
        if old_ts is not None:
            shutil.rmtree(self.target / old_ts, ignore_errors=True)
        return True

    def _current_ts_dir(self) -> str | None:
        try:
            return os.readlink(self.target / DATA_DIR)
        except FileNotFoundError:
            return None

    @staticmethod
    def _paths_to_remove(payload: Mapping[str, FileProjection], old: Path) -> set[str]:
        current = {str(p.relative_to(old)) for p in old.rglob("*")} if old.is_dir() else set()
        wanted: set[str] = set()
        for p in payload:
            while p:  # every parent of a new file stays
                wanted.add(p)
                p = os.path.dirname(p)
        return current - wanted

    @staticmethod
    def _differs(payload: Mapping[str, FileProjection], old: Path) -> bool:
        # Compares modes too (the kubelet compares content only, so a defaultMode
        # change would not reach a running pod).
        for rel, f in payload.items():
            path = old / rel
            try:
                if path.read_bytes() != f.data or stat.S_IMODE(path.lstat().st_mode) != f.mode:
                    return True
            except OSError:
                return True
        return False

    def _new_ts_dir(self) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        while True:  # os.MkdirTemp: the prefix and a random number
            path = self.target / f"{stamp}{random.randrange(1 << 32)}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            path.chmod(0o755)  # group/other must traverse it, whatever the umask
            return path

    @staticmethod
    def _write_payload(payload: Mapping[str, FileProjection], ts_dir: Path) -> None:
        for rel, f in payload.items():
            path = ts_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            path.chmod(f.mode)  # bypass the umask

    def _create_user_visible(self, payload: Mapping[str, FileProjection]) -> None:
        for rel in payload:
            top = rel.split("/", 1)[0]
            link = self.target / top
            if not link.is_symlink():
                os.symlink(f"{DATA_DIR}/{top}", link)


# ---- pod state ------------------------------------------------------------------------------


@dataclass
class _Token:
    token: str
    issued: dt.datetime
    expires: dt.datetime

    def needs_refresh(self, now: dt.datetime) -> bool:
        # The kubelet's token manager: renew after 80% of the TTL, or after 24h.
        ttl = (self.expires - self.issued).total_seconds()
        age = (now - self.issued).total_seconds()
        return now >= self.expires or age > 0.8 * ttl or age > 24 * 3600


@dataclass
class _PodState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirs: dict[str, str] = field(default_factory=dict)
    size_limits: dict[str, int] = field(default_factory=dict)
    tokens: dict[tuple[str, str, int], _Token] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)

    def warn(self, message: str) -> None:
        # Once per pod: setup and refresh run again and again.
        if message not in self.warned:
            self.warned.add(message)
            self.warnings.append(message)


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def _volume_kind(volume: Mapping[str, Any]) -> str:
    kinds = [k for k, v in volume.items() if k != "name" and v is not None]
    if len(kinds) != 1:
        raise VolumeError(f"volume {volume.get('name')!r} must have exactly one source, got {kinds}")
    return kinds[0]


def _mode(value: Any, default: int) -> int:
    return int(value) & 0o7777 if value is not None else default


# ---- the manager ----------------------------------------------------------------------------


class VolumeManager:
    """Sets up, re-syncs and tears down the volumes of the pods on this node."""

    TOKEN_API_RETRY = 600.0  # seconds before asking an API server without TokenRequest again

    def __init__(self, client: ApiClient, pods_dir: str | Path, *, node_ip: str = "",
                 node_allocatable: Mapping[str, Any] | None = None, run_as_root: bool | None = None):
        self.client = client
        self.pods_dir = Path(pods_dir)
        self.node_ip = node_ip
        self.node_allocatable = dict(node_allocatable or {})
        self.run_as_root = os.geteuid() == 0 if run_as_root is None else run_as_root
        self._pods: dict[str, _PodState] = {}
        self._token_api_missing_until = 0.0

    # -- public API -----------------------------------------------------------------------

    async def setup(self, pod: Mapping[str, Any]) -> dict[str, str]:
        """Make every volume of ``pod`` ready; volume name -> host path. Idempotent (a
        second call retries failures and re-syncs data). Raises :class:`VolumeError`
        naming every volume that failed; the others are set up regardless."""
        state = self._state(str(_meta(pod).get("uid", "")))
        errors: dict[str, str] = {}
        async with state.lock:
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                name = str(volume.get("name", ""))
                try:
                    state.dirs[name] = await self._setup_volume(pod, volume, state)
                except (VolumeError, OSError, ValueError, ApiException) as e:
                    errors[name] = f'MountVolume.SetUp failed for volume "{name}" : {_message(e)}'
        if errors:
            raise VolumeError("; ".join(errors.values()), errors)
        return dict(state.dirs)

    def mounts_for(self, pod: Mapping[str, Any], container: Mapping[str, Any], volume_dirs: Mapping[str, str],
                   env: Mapping[str, str] | None = None) -> list[Mount]:
        """The container's ``volumeMounts`` as runtime mounts. ``subPath`` is resolved
        (symlinks included) and refused if it leaves the volume; ``subPathExpr`` is
        expanded against ``env`` (the container's resolved environment)."""
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        cname = container.get("name", "")
        mounts = []
        for vm in container.get("volumeMounts") or []:
            name = vm.get("name", "")
            if name not in volumes or name not in volume_dirs:
                raise VolumeError(f'cannot find volume "{name}" to mount into container "{cname}"')
            host = volume_dirs[name]
            sub = vm.get("subPath") or ""
            if vm.get("subPathExpr"):
                sub = expand(str(vm["subPathExpr"]), env or {})
            if sub:
                host = _sub_path(host, sub, name, cname)
            read_only = bool(vm.get("readOnly")) or _forced_read_only(volumes[name])
            mounts.append(Mount(host_path=host, container_path=str(vm.get("mountPath", "")), read_only=read_only))
        return mounts

    async def refresh(self, pod: Mapping[str, Any]) -> list[str]:
        """Re-project ConfigMap/Secret/downward API/projected volumes of a running pod
        (call periodically). A failing volume keeps its old content; the failures are
        returned (and kept for :meth:`pop_warnings`)."""
        state = self._state(str(_meta(pod).get("uid", "")))
        failures = []
        async with state.lock:
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                kind = next((k for k in DATA_KINDS if volume.get(k) is not None), None)
                target = self._plugin_dir(pod, kind or "", str(volume.get("name", "")))
                if kind is None or not target.is_dir():
                    continue  # not a data volume, or never set up
                try:
                    await self._write_data(pod, volume, kind, target, state)
                except (VolumeError, OSError, ValueError, ApiException) as e:
                    msg = f'MountVolume.SetUp failed for volume "{volume["name"]}" : {_message(e)}'
                    failures.append(msg)
                    state.warn(msg)
        return failures

    async def teardown(self, pod_uid: str) -> None:
        """Unmount (tmpfs) and delete the pod's volume dirs; host paths are untouched."""
        state = self._pods.get(pod_uid)
        if state is None:
            await self._remove_volumes(pod_uid)
            return
        async with state.lock:  # not while a refresh is writing
            await self._remove_volumes(pod_uid)
            self._pods.pop(pod_uid, None)

    async def _remove_volumes(self, pod_uid: str) -> None:
        root = self.pods_dir / pod_uid / "volumes"
        for mountpoint in sorted(mounts.mounts_under(root), key=len, reverse=True):
            await asyncio.to_thread(mounts.unmount, mountpoint)
        if _exists(root):
            await asyncio.to_thread(shutil.rmtree, root)

    def pop_warnings(self, pod_uid: str) -> list[str]:
        """Event-worthy warnings since the last call (tmpfs unavailable, no TokenRequest API, ...)."""
        state = self._pods.get(pod_uid)
        if state is None:
            return []
        out, state.warnings = state.warnings, []
        return out

    def size_limits(self, pod_uid: str) -> dict[str, int]:
        """emptyDir ``sizeLimit`` in bytes by volume name, for the eviction manager."""
        state = self._pods.get(pod_uid)
        return dict(state.size_limits) if state else {}

    # -- per kind -------------------------------------------------------------------------

    def _state(self, uid: str) -> _PodState:
        if not uid:
            raise VolumeError("pod has no metadata.uid")
        return self._pods.setdefault(uid, _PodState())

    def _plugin_dir(self, pod: Mapping[str, Any], kind: str, name: str) -> Path:
        return self.pods_dir / str(_meta(pod)["uid"]) / "volumes" / PLUGIN_DIRS.get(kind, kind) / name

    async def _setup_volume(self, pod: Mapping[str, Any], volume: Mapping[str, Any], state: _PodState) -> str:
        kind, name = _volume_kind(volume), str(volume["name"])
        source = volume[kind] or {}
        if kind == "emptyDir":
            return await self._empty_dir(pod, name, source, state)
        if kind == "hostPath":
            return check_host_path(str(source.get("path", "")), str(source.get("type") or ""))
        if kind in DATA_KINDS:
            target = self._plugin_dir(pod, kind, name)
            await self._make_dir(target, 0o755, memory=kind in _MEMORY_BACKED, size=None, state=state,
                                 what=f"{kind} volume {name!r}")
            await self._write_data(pod, volume, kind, target, state)
            return str(target)
        if kind == "persistentVolumeClaim":
            return await self._claim_path(_meta(pod).get("namespace") or "default", str(source.get("claimName", "")))
        if kind == "ephemeral":
            return await self._ephemeral_path(pod, name)
        raise VolumeError(f"volume type {kind!r} is not supported by this kubelet")

    async def _empty_dir(self, pod: Mapping[str, Any], name: str, source: Mapping[str, Any],
                         state: _PodState) -> str:
        medium = source.get("medium") or ""
        if medium not in ("", "Memory"):
            raise VolumeError(f"emptyDir medium {medium!r} is not supported")
        size = None
        if source.get("sizeLimit") is not None:
            from pinnace.api.validation import parse_quantity  # a big module a node rarely needs

            size = int(parse_quantity(source["sizeLimit"]))
        if size is not None:
            state.size_limits[name] = size
        target = self._plugin_dir(pod, "emptyDir", name)
        await self._make_dir(target, 0o777, memory=medium == "Memory", size=size, state=state,
                             what=f"emptyDir {name!r} (medium Memory)", warn_disk=medium == "Memory")
        return str(target)

    async def _make_dir(self, target: Path, mode: int, *, memory: bool, size: int | None, state: _PodState,
                        what: str, warn_disk: bool = False) -> None:
        """Create ``target`` (idempotent); mount a tmpfs on it when ``memory`` and root."""
        needs_mount = _make_dir(target)
        if memory and self.run_as_root and needs_mount:
            opts = f"mode={mode:o}" + (f",size={size}" if size else "")
            try:
                await asyncio.to_thread(mounts.mount, "tmpfs", target, "tmpfs", opts)
            except OSError as e:
                state.warn(f"{what}: tmpfs mount failed ({e}); using a directory on disk")
        elif memory and not self.run_as_root and warn_disk:
            state.warn(f"{what}: not running as root, cannot mount tmpfs; using a directory on disk")
        os.chmod(target, mode)  # emptyDir is world-writable, whatever the umask

    async def _write_data(self, pod: Mapping[str, Any], volume: Mapping[str, Any], kind: str, target: Path,
                          state: _PodState) -> None:
        payload = await self._payload(pod, kind, volume[kind] or {}, state)
        await asyncio.to_thread(AtomicWriter(target).write, payload)

    # -- payloads -------------------------------------------------------------------------

    async def _payload(self, pod: Mapping[str, Any], kind: str, source: Mapping[str, Any],
                       state: _PodState) -> dict[str, FileProjection]:
        default = _mode(source.get("defaultMode"), DEFAULT_MODE)
        if kind == "configMap":
            return await self._configmap_payload(pod, source, default)
        if kind == "secret":
            return await self._secret_payload(pod, source, default, name_key="secretName")
        if kind == "downwardAPI":
            return self._downward_payload(pod, source, default)
        return await self._projected_payload(pod, source, default, state)

    async def _get(self, plural: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return await self.client.get("v1", plural, name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def _configmap_payload(self, pod: Mapping[str, Any], source: Mapping[str, Any],
                                 default: int) -> dict[str, FileProjection]:
        name, optional = str(source.get("name", "")), bool(source.get("optional"))
        cm = await self._get("configmaps", name, _namespace(pod))
        if cm is None:
            if optional:
                return {}
            raise VolumeError(f'configmap "{name}" not found')
        return _items_payload(configmap_data(cm), source.get("items"), default, optional,
                              "configmap references non-existent config key")

    async def _secret_payload(self, pod: Mapping[str, Any], source: Mapping[str, Any], default: int,
                              name_key: str) -> dict[str, FileProjection]:
        name, optional = str(source.get(name_key, "")), bool(source.get("optional"))
        secret = await self._get("secrets", name, _namespace(pod))
        if secret is None:
            if optional:
                return {}
            raise VolumeError(f'secret "{name}" not found')
        return _items_payload(secret_data(secret), source.get("items"), default, optional,
                              "references non-existent secret key")

    def _downward_payload(self, pod: Mapping[str, Any], source: Mapping[str, Any],
                          default: int) -> dict[str, FileProjection]:
        payload = {}
        for item in source.get("items") or []:
            path = validate_path(str(item.get("path", "")))
            try:
                if item.get("fieldRef") is not None:
                    value = field_value(pod, str(item["fieldRef"].get("fieldPath", "")), node_ip=self.node_ip)
                else:
                    value = pod_resource_value(pod, None, item.get("resourceFieldRef") or {}, self.node_allocatable)
            except ValueError as e:
                raise VolumeError(f"downwardAPI item {path}: {e}") from e
            payload[path] = FileProjection(value.encode(), _mode(item.get("mode"), default))
        return payload

    async def _projected_payload(self, pod: Mapping[str, Any], source: Mapping[str, Any], default: int,
                                 state: _PodState) -> dict[str, FileProjection]:
        payload: dict[str, FileProjection] = {}
        errors = []
        for src in source.get("sources") or []:
            try:
                payload.update(await self._projection(pod, src, default, state))
            except (VolumeError, ApiException) as e:
                errors.append(_message(e))
        if errors:  # like the kubelet, report every failing source at once
            raise VolumeError(", ".join(errors))
        return payload

    async def _projection(self, pod: Mapping[str, Any], src: Mapping[str, Any], default: int,
                          state: _PodState) -> dict[str, FileProjection]:
        if src.get("configMap") is not None:
            return await self._configmap_payload(pod, src["configMap"], default)
        if src.get("secret") is not None:
            return await self._secret_payload(pod, src["secret"], default, name_key="name")
        if src.get("downwardAPI") is not None:
            return self._downward_payload(pod, src["downwardAPI"], default)
        if src.get("serviceAccountToken") is not None:
            return await self._token_payload(pod, src["serviceAccountToken"], default, state)
        raise VolumeError("unsupported projected volume source " + ", ".join(sorted(src)))

    async def _token_payload(self, pod: Mapping[str, Any], src: Mapping[str, Any], default: int,
                             state: _PodState) -> dict[str, FileProjection]:
        path = validate_path(str(src.get("path", "")))
        token = await self._token(pod, str(src.get("audience") or ""),
                                  int(src.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS), state)
        return {} if token is None else {path: FileProjection(token.encode(), default)}

    async def _token(self, pod: Mapping[str, Any], audience: str, seconds: int, state: _PodState) -> str | None:
        """A bound service-account token via TokenRequest, cached until 80% of its TTL;
        None (and a warning) when the API server does not serve ``serviceaccounts/token``."""
        meta, spec = _meta(pod), pod.get("spec") or {}
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        key = (sa, audience, seconds)
        now = dt.datetime.now(dt.UTC)
        cached = state.tokens.get(key)
        if cached is not None and not cached.needs_refresh(now):
            return cached.token
        loop_now = asyncio.get_running_loop().time()
        if loop_now < self._token_api_missing_until:
            return cached.token if cached else None
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else [], "expirationSeconds": seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                            "uid": meta.get("uid")}}}
        path = resource_path("v1", "serviceaccounts", _namespace(pod), sa, "token")
        try:
            resp = await self.client.request("POST", path, body=body)
        except ApiException as e:
            if not _token_api_missing(e, sa):
                raise
            self._token_api_missing_until = loop_now + self.TOKEN_API_RETRY
            state.warn(f"serviceAccountToken for {sa!r}: the API server does not serve "
                                  f"serviceaccounts/token ({e.status}); no token written")
            return cached.token if cached else None
        status = (resp or {}).get("status") or {}
        if not status.get("token"):
            raise VolumeError(f"TokenRequest for service account {sa!r} returned no token")
        expires = _parse_time(status.get("expirationTimestamp")) or now + dt.timedelta(seconds=seconds)
        state.tokens[key] = _Token(status["token"], now, expires)
        return status["token"]

    # -- claims ---------------------------------------------------------------------------

    async def _claim_path(self, namespace: str, claim: str) -> str:
        pvc = await self._get("persistentvolumeclaims", claim, namespace)
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        return await self._bound_path(namespace, pvc)

    async def _ephemeral_path(self, pod: Mapping[str, Any], volume: str) -> str:
        # Generic ephemeral volume: the PVC "<pod>-<volume>" the ephemeral controller made.
        meta = _meta(pod)
        claim = f"{meta.get('name')}-{volume}"
        pvc = await self._get("persistentvolumeclaims", claim, _namespace(pod))
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        owners = (pvc.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == meta.get("uid") and o.get("controller") for o in owners):
            raise VolumeError(f"PVC {_namespace(pod)}/{claim} was not created for pod "
                              f"{_namespace(pod)}/{meta.get('name')} (pod is not owner)")
        return await self._bound_path(_namespace(pod), pvc)

    async def _bound_path(self, namespace: str, pvc: Mapping[str, Any]) -> str:
        meta, spec = pvc.get("metadata") or {}, pvc.get("spec") or {}
        phase, pv_name = (pvc.get("status") or {}).get("phase", ""), spec.get("volumeName") or ""
        if phase != "Bound" or not pv_name:
            raise VolumeError(f"PVC {namespace}/{meta.get('name')} has non-bound phase ({phase!r}) or empty "
                              f"pvc.Spec.VolumeName ({pv_name!r})")
        pv = await self._get("persistentvolumes", pv_name, "")
        if pv is None:
            raise VolumeError(f'persistentvolume "{pv_name}" not found')
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") and ref.get("uid") != meta.get("uid"):
            raise VolumeError(f"persistentvolume {pv_name!r} is bound to another claim "
                              f"({ref.get('namespace')}/{ref.get('name')})")
        return pv_host_path(pv)


# ---- pure helpers ---------------------------------------------------------------------------


def _namespace(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("namespace") or "default")


def _message(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return e.message or str(e)
    return str(e)


def _forced_read_only(volume: Mapping[str, Any]) -> bool:
    kind = _volume_kind(volume)
    return kind in DATA_KINDS or (kind == "persistentVolumeClaim" and bool(volume[kind].get("readOnly")))


def _items_payload(data: Mapping[str, bytes], items: Any, default: int, optional: bool,
                   missing: str) -> dict[str, FileProjection]:
    """ConfigMap/Secret keys as files: every key, or just ``items`` (key -> path, mode)."""
    if not items:
        return {validate_path(k): FileProjection(v, default) for k, v in data.items()}
    payload = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{missing}: {key}")
        payload[validate_path(str(item.get("path", "")))] = FileProjection(data[key], _mode(item.get("mode"),
                                                                                              default))
    return payload


def check_host_path(path: str, kind: str = "") -> str:
    """hostPath ``type`` checks (pkg/volume/hostpath); creates for the *OrCreate types."""
    if not path.startswith("/"):
        raise VolumeError(f"hostPath {path!r} must be an absolute path")
    p = Path(path)
    checks = {
        "Directory": (p.is_dir, "is not a directory"), "File": (p.is_file, "is not a file"),
        "Socket": (lambda: _is(p, stat.S_ISSOCK), "is not a socket file"),
        "CharDevice": (lambda: _is(p, stat.S_ISCHR), "is not a character device"),
        "BlockDevice": (lambda: _is(p, stat.S_ISBLK), "is not a block device"),
    }
    if kind == "":
        return path  # no checks, as the kubelet
    if kind == "DirectoryOrCreate":
        if not os.path.lexists(p):
            p.mkdir(parents=True, mode=0o755)
            p.chmod(0o755)
        kind = "Directory"
    elif kind == "FileOrCreate":
        if not os.path.lexists(p):
            # Like the kubelet, the parent directory is not created.
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
        kind = "File"
    if kind not in checks:
        raise VolumeError(f"{kind} is an invalid volume type")
    ok, what = checks[kind]
    if not ok():
        raise VolumeError(f"hostPath type check failed: {path} {what}")
    return path


def _is(p: Path, pred: Any) -> bool:
    try:
        return bool(pred(p.stat().st_mode))
    except OSError:
        return False


def pv_host_path(pv: Mapping[str, Any]) -> str:
    """The host path of a hostPath or local PersistentVolume; other kinds are unsupported."""
    spec, name = pv.get("spec") or {}, (pv.get("metadata") or {}).get("name")
    if spec.get("hostPath") is not None:
        return check_host_path(str(spec["hostPath"].get("path", "")), str(spec["hostPath"].get("type") or ""))
    if spec.get("local") is not None:
        path = str(spec["local"].get("path", ""))
        if not os.path.exists(path):
            raise VolumeError(f"local volume {name!r}: path {path!r} does not exist on this node")
        return path
    kinds = sorted(k for k in spec if k not in _PV_NON_SOURCE)
    raise VolumeError(f"persistentvolume {name!r} has unsupported type {', '.join(kinds) or 'none'}: only "
                      "hostPath and local PersistentVolumes are supported")


_PV_NON_SOURCE = {"accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity",
                  "persistentVolumeReclaimPolicy", "storageClassName", "volumeMode", "volumeAttributesClassName"}


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _make_dir(target: Path) -> bool:
    """mkdir -p; whether ``target`` is not yet a mount point."""
    target.mkdir(parents=True, exist_ok=True)
    return not os.path.ismount(target)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_sub_path(volume_dir: str, sub: str) -> str:
    """``volume_dir/sub`` with symlinks resolved; created as a directory (with the
    volume's mode) when missing; VolumeError if it would leave the volume."""
    parts = PurePosixPath(sub).parts
    if sub.startswith("/") or ".." in parts:
        raise VolumeError(f"subPath {sub!r} must be a relative path without '..'")
    root = os.path.realpath(volume_dir)
    if not os.path.isdir(root):
        raise VolumeError(f"subPath {sub!r}: volume path {volume_dir} is not a directory")
    candidate = os.path.join(root, sub)
    resolved = os.path.realpath(candidate)
    if not _within(resolved, root):
        raise VolumeError(f"subPath {sub!r} escapes the volume (resolves to {resolved})")
    if not os.path.lexists(candidate):
        mode = stat.S_IMODE(os.stat(root).st_mode)
        os.makedirs(resolved, mode=mode, exist_ok=True)
        os.chmod(resolved, mode)
    return resolved


def _sub_path(host: str, sub: str, volume: str, container: str) -> str:
    try:
        return resolve_sub_path(host, sub)
    except (VolumeError, OSError) as e:
        raise VolumeError(f'failed to prepare subPath for volumeMount "{volume}" of container "{container}": '
                          f"{e}") from e


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _token_api_missing(e: ApiException, sa: str) -> bool:
    """404/405 meaning "no such subresource", not "no such service account"."""
    if e.status == 405:
        return True
    details = (e.body or {}).get("details") or {}
    return e.status == 404 and not (details.get("name") == sa and details.get("kind") == "serviceaccounts")


__all__ = ["DATA_KINDS", "DEFAULT_MODE", "PLUGIN_DIRS", "AtomicWriter", "FileProjection", "VolumeError",
           "VolumeManager", "check_host_path", "pv_host_path", "resolve_sub_path", "validate_path"]
