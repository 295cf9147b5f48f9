"""Calling CNI plugins, as the CNI specification (1.0.0) and libcni describe it.

    plugins = CniPlugins(["/usr/lib/cni", "/opt/cni/bin"])
    conflist = bridge_conflist("10.42.3.0/24", ipam_data_dir="/var/lib/pinnace/agent/cni/networks")
    rt = RuntimeConf(container_id=sandbox_id, netns="/run/.../netns/<id>", ifname="eth0",
                     args=[("K8S_POD_NAMESPACE", "default"), ...],
                     capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80,
                                                        "protocol": "tcp"}]})
    result = await plugins.add_list(conflist, rt)      # the final plugin's Result
    await plugins.check_list(conflist, rt, result)
    await plugins.del_list(conflist, rt, result)       # in reverse order

A plugin is an executable named by ``type``, found in the bin dirs (CNI_PATH).  It gets the
operation in environment variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
CNI_ARGS, CNI_PATH) and its network configuration on stdin, and prints a Result (ADD) or an
error object (non-zero exit).  A configuration list runs its plugins in order, each getting the
list's ``name`` and ``cniVersion`` and, after the first, the previous plugin's result as
``prevResult``; CHECK and DEL get the cached result of the ADD as ``prevResult``; DEL runs in
reverse.  ``runtimeConfig`` carries only the capabilities a plugin declares
(``"capabilities": {"portMappings": true}``).

The loopback interface is brought up by the ``loopback`` plugin, called on its own with
CNI_IFNAME=lo (as containerd does).

Debian's containernetworking-plugins 1.1.1 support spec versions 0.1.0 to 1.0.0; 1.0.0 is
used here (CHECK needs 0.4.0 or later).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"
DEFAULT_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's package, then the upstream tarball's place
REQUIRED_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
NETWORK_NAME = "pinnace"
BRIDGE_NAME = "cni0"
CONFLIST_NAME = "10-pinnace.conflist"
PLUGIN_TIMEOUT = 60.0


class CniError(Exception):
    """A plugin failed: its error object (``code``, ``msg``, ``details``) or why it could not run."""

    def __init__(self, plugin: str, command: str, msg: str, code: int = 0, details: str = ""):
        self.plugin, self.command, self.code, self.msg, self.details = plugin, command, code, msg, details
        text = f"plugin type={plugin!r} failed ({command.lower()}): {msg}"
        if details and details != msg:
            text += f": {details}"
        super().__init__(text)


def bridge_conflist(pod_cidr: str, *, ipam_data_dir: str | Path, bridge: str = BRIDGE_NAME,
                    name: str = NETWORK_NAME, cni_version: str = CNI_VERSION, ip_masq: bool = True
                    ) -> dict[str, Any]:
    """The node's pod network: a ``bridge`` (gateway = the podCIDR's first address, hairpin so
    a pod reaches itself through a Service) with ``host-local`` addresses from the podCIDR
    (allocations kept under ``ipam_data_dir``), and ``portmap`` for hostPorts.  ``ip_masq``:
    the plugin masquerades everything leaving the podCIDR -- pods on other nodes too, so
    callers that know the cluster CIDR turn it off and masquerade only what leaves the
    cluster (:class:`pinnace.kubelet.network.ClusterMasquerade`)."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    default = "0.0.0.0/0" if net.version == 4 else "::/0"
    return {
        "cniVersion": cni_version,
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": ip_masq, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net)}]], "routes": [{"dst": default}],
                      "dataDir": str(ipam_data_dir)}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def loopback_conf(cni_version: str = CNI_VERSION) -> dict[str, Any]:
    return {"cniVersion": cni_version, "name": "cni-loopback", "type": "loopback"}


def write_conflist(conf_dir: str | Path, conflist: Mapping[str, Any], filename: str = CONFLIST_NAME) -> Path:
    """Write ``conflist`` atomically (a reader never sees half a file); returns its path."""
    d = Path(conf_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / filename
    tmp = path.with_name(f".{filename}.tmp")
    tmp.write_text(json.dumps(conflist, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_conflist(path: str | Path) -> dict[str, Any]:
    """A configuration list from disk (a single plugin configuration is wrapped into a list)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    if "plugins" not in data:
        if "type" not in data:
            raise ValueError(f"{path}: neither a configuration list nor a plugin configuration")
        data = {"cniVersion": data.get("cniVersion", CNI_VERSION), "name": data.get("name", ""), "plugins": [data]}
    if not isinstance(data["plugins"], list) or not data["plugins"]:
        raise ValueError(f"{path}: no plugins")
    return data


def find_plugin(bin_dirs: Iterable[str | Path], plugin_type: str) -> Path | None:
    for d in bin_dirs:
        p = Path(d) / plugin_type
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def missing_plugins(bin_dirs: Iterable[str | Path], names: Iterable[str] = REQUIRED_PLUGINS) -> list[str]:
    dirs = list(bin_dirs)
    return [n for n in names if find_plugin(dirs, n) is None]


def split_bin_dirs(value: str | Sequence[str]) -> list[str]:
    """``--cni-bin-dir``: a colon-separated list (or already a list)."""
    items = value.split(":") if isinstance(value, str) else list(value)
    return [d for d in items if d]


@dataclass
class RuntimeConf:
    """What one attachment passes to every plugin (libcni's RuntimeConf)."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: list[tuple[str, str]] = field(default_factory=list)  # CNI_ARGS, in order
    capability_args: dict[str, Any] = field(default_factory=dict)  # runtimeConfig, by capability name

    def to_dict(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "netns": self.netns, "ifname": self.ifname,
                "args": [list(a) for a in self.args], "capability_args": self.capability_args}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeConf:
        return cls(str(d["container_id"]), str(d.get("netns") or ""), str(d.get("ifname") or "eth0"),
                   [(str(k), str(v)) for k, v in d.get("args") or []], dict(d.get("capability_args") or {}))


def plugin_config(conflist: Mapping[str, Any], plugin: Mapping[str, Any], rt: RuntimeConf,
                  prev_result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON one plugin of a list gets: the list's name and version, the capabilities it
    declares in ``runtimeConfig``, and ``prevResult``."""
    conf = dict(plugin)
    conf["name"], conf["cniVersion"] = conflist["name"], conflist["cniVersion"]
    declared = plugin.get("capabilities") or {}
    runtime_config = {k: v for k, v in rt.capability_args.items() if declared.get(k)}
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    else:
        conf.pop("runtimeConfig", None)
    if prev_result is not None:
        conf["prevResult"] = prev_result
    else:
        conf.pop("prevResult", None)
    return conf


def result_ips(result: Mapping[str, Any] | None, ifname: str = "eth0") -> list[str]:
    """The addresses (without prefix length) a Result gives the sandbox interface ``ifname``;
    all its addresses when it names no interfaces."""
    if not result:
        return []
    interfaces = result.get("interfaces") or []
    out = []
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(interfaces):
            iface = interfaces[idx]
            if iface.get("name") != ifname or not iface.get("sandbox"):
                continue
        with contextlib.suppress(ValueError):
            out.append(str(ipaddress.ip_interface(str(ip.get("address", ""))).ip))
    return out


def has_ipv6(result: Mapping[str, Any] | None) -> bool:
    return any(":" in str(ip.get("address", "")) for ip in (result or {}).get("ips") or [])


def portmap_ipv6_check_bug(result: Mapping[str, Any] | None) -> Callable[[CniError], bool]:
    """portmap up to 1.2 (Debian's 1.1.1) checks IPv6 rules even for an attachment that has no
    IPv6 address and fails CHECK: containernetworking/plugins#819."""
    def spurious(e: CniError) -> bool:
        return e.plugin == "portmap" and "ipv6" in e.msg.lower() and not has_ipv6(result)

    return spurious


def _version_at_least(version: str, minimum: tuple[int, ...]) -> bool:
    try:
        return tuple(int(p) for p in version.split(".")[:3]) >= minimum
    except ValueError:
        return False


class CniPlugins:
    """Runs plugins found in ``bin_dirs`` (CNI_PATH)."""

    def __init__(self, bin_dirs: Iterable[str | Path] = DEFAULT_BIN_DIRS, *, timeout: float = PLUGIN_TIMEOUT):
        self.bin_dirs = [str(d) for d in bin_dirs]
        self.timeout = timeout

    def _env(self, command: str, rt: RuntimeConf) -> dict[str, str]:
        env = dict(os.environ)  # plugins run iptables & co. through PATH
        env.update(CNI_COMMAND=command, CNI_CONTAINERID=rt.container_id, CNI_NETNS=rt.netns, CNI_IFNAME=rt.ifname,
                   CNI_PATH=":".join(self.bin_dirs), CNI_ARGS=";".join(f"{k}={v}" for k, v in rt.args))
        if command == "VERSION":
            for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"):
                env.pop(k)
        return env

    async def exec(self, conf: Mapping[str, Any], command: str, rt: RuntimeConf) -> dict[str, Any] | None:
        """Run one plugin; its parsed stdout (None when it printed nothing)."""
        plugin_type = str(conf.get("type") or "")
        path = find_plugin(self.bin_dirs, plugin_type)
        if path is None:
            raise CniError(plugin_type, command, f"failed to find plugin {plugin_type!r} in path {self.bin_dirs}")
        proc = await asyncio.create_subprocess_exec(
            str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._env(command, rt))
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(json.dumps(conf).encode())
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            try:
                obj = json.loads(out)
                raise CniError(plugin_type, command, str(obj.get("msg") or ""), int(obj.get("code") or 0),
                               str(obj.get("details") or ""))
            except (ValueError, AttributeError):
                text = (out or err).decode(errors="replace").strip()
                raise CniError(plugin_type, command, text or f"exit status {proc.returncode}") from None
        if err.strip():
            log.debug("cni: %s %s: %s", plugin_type, command, err.decode(errors="replace").strip())
        if not out.strip():
            return None
        try:
            result = json.loads(out)
        except ValueError as e:
            raise CniError(plugin_type, command, f"invalid result: {e}") from None
        if not isinstance(result, dict):
            raise CniError(plugin_type, command, "invalid result: not an object")
        return result

    async def version(self, plugin_type: str) -> dict[str, Any]:
        """The plugin's VERSION answer (``supportedVersions``)."""
        result = await self.exec({"cniVersion": CNI_VERSION, "type": plugin_type}, "VERSION",
                                 RuntimeConf(container_id="", netns=""))
        return result or {}

    async def add_list(self, conflist: Mapping[str, Any], rt: RuntimeConf) -> dict[str, Any]:
        """ADD each plugin in order, chaining results; the final result."""
        prev: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            result = await self.exec(plugin_config(conflist, plugin, rt, prev), "ADD", rt)
            if result is not None:
                prev = result
        return prev or {"cniVersion": conflist["cniVersion"]}

    async def check_list(self, conflist: Mapping[str, Any], rt: RuntimeConf, cached: Mapping[str, Any] | None,
                         *, spurious: Callable[[CniError], bool] | None = None) -> None:
        """CHECK each plugin in order against the cached ADD result (skipped when the list
        disables it or predates CHECK); raises CniError.  ``spurious`` tells errors known to be
        wrong (a plugin's bug), which are logged and passed over."""
        if conflist.get("disableCheck") in (True, "true") or not _version_at_least(str(conflist["cniVersion"]),
                                                                                   (0, 4, 0)):
            return
        if cached is None:
            raise CniError(str(conflist["plugins"][0].get("type")), "CHECK", "no cached result for the attachment")
        for plugin in conflist["plugins"]:
            try:
                await self.exec(plugin_config(conflist, plugin, rt, cached), "CHECK", rt)
            except CniError as e:
                if spurious is None or not spurious(e):
                    raise
                log.debug("cni: ignoring a spurious CHECK failure: %s", e)

    async def del_list(self, conflist: Mapping[str, Any], rt: RuntimeConf,
                       cached: Mapping[str, Any] | None) -> None:
        """DEL each plugin in reverse order (with the cached ADD result when there is one)."""
        for plugin in reversed(conflist["plugins"]):
            await self.exec(plugin_config(conflist, plugin, rt, cached), "DEL", rt)

    async def add(self, conf: Mapping[str, Any], rt: RuntimeConf) -> dict[str, Any] | None:
        return await self.exec(conf, "ADD", rt)

    async def delete(self, conf: Mapping[str, Any], rt: RuntimeConf) -> None:
        await self.exec(conf, "DEL", rt)


__all__ = ["BRIDGE_NAME", "CNI_VERSION", "CONFLIST_NAME", "DEFAULT_BIN_DIRS", "NETWORK_NAME", "REQUIRED_PLUGINS",
           "CniError", "CniPlugins", "RuntimeConf", "bridge_conflist", "find_plugin", "has_ipv6", "load_conflist",
           "loopback_conf", "missing_plugins", "plugin_config", "portmap_ipv6_check_bug", "result_ips",
           "split_bin_dirs", "write_conflist"]
