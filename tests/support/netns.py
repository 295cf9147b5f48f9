"""Test networks made of network namespaces: several "machines" on one test bridge.

Network safety: everything here lives in namespaces this module creates and deletes.
The bridge sits in a namespace of its own (the "switch"); each machine is a namespace
with one veth whose other end is plugged into that bridge.  The host's own links,
addresses, routes and firewall are never touched: :func:`host_network_state` takes a
snapshot of them so a test can show that they are the same afterwards.

Processes run in a machine through ``nsenter --net`` (not ``ip netns exec``), so they
keep the host's mount namespace: the mounts a node agent makes (overlay root
filesystems, pinned pod namespaces) stay visible to the test's clean-up.

The test process itself stays on the host's network.  To reach a server inside a
machine it starts :mod:`tests.support.nsforward`, a forwarder listening on host
loopback and connecting from inside the namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .processes import free_port, stop_process

SUBNET = ipaddress.ip_network("192.168.213.0/24")  # the test bridge's; nothing on the host uses it


def netns_skip_reason() -> str | None:
    """Why test networks cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


@dataclass
class Machine:
    name: str
    netns: str
    ip: str

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def command(self, *cmd: str) -> list[str]:
        """``cmd`` run inside this machine's network namespace (host mount namespace)."""
        return ["nsenter", f"--net={self.netns_path}", "--", *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.command(*cmd), capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"[{self.name}] {' '.join(cmd)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr}{proc.stdout}")
        return proc


@dataclass
class Network:
    """Machines on one bridge; ``close()`` (or leaving :func:`network`) deletes it all."""

    prefix: str = field(default_factory=lambda: f"pn{secrets.token_hex(3)}")
    machines: dict[str, Machine] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    _made: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def create(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("link", "add", "br0", "type", "bridge", netns=self.switch)
        _ip("link", "set", "br0", "up", netns=self.switch)
        _ip("link", "set", "lo", "up", netns=self.switch)

    def add_machine(self, name: str) -> Machine:
        """A namespace with ``eth0`` on the bridge, the next address of :data:`SUBNET`,
        and a default route out of ``eth0`` (so the node's own traffic to Service IPs
        has a route before kube-proxy rewrites it, as on a real machine)."""
        index = len(self.machines) + 11
        address = str(SUBNET[index])
        netns = f"{self.prefix}-{name}"
        _ip("netns", "add", netns)
        self._made.append(netns)
        port = f"p{index}"
        # Made inside the switch namespace, then one end moved: never a link on the host.
        _ip("link", "add", port, "type", "veth", "peer", "name", "eth0", netns=self.switch)
        _ip("link", "set", "eth0", "netns", netns, netns=self.switch)
        _ip("link", "set", port, "master", "br0", netns=self.switch)
        _ip("link", "set", port, "up", netns=self.switch)
        _ip("addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("route", "add", "default", "dev", "eth0", netns=netns)
        machine = Machine(name, netns, address)
        self.machines[name] = machine
        return machine

    def start(self, machine: Machine | None, cmd: Sequence[str], log_path: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """A long-running process inside ``machine`` (None: on the host), stopped by :meth:`close`."""
        with open(log_path, "ab") as log:
            argv = machine.command(*cmd) if machine else list(cmd)
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.processes.append(proc)
        return proc

    def forward(self, machine: Machine, host: str, port: int, log_path: Path) -> int:
        """A port on host loopback that reaches ``host:port`` as seen from inside ``machine``."""
        local = free_port()
        # Started on the host: it binds there, then enters the machine's namespace to connect.
        proc = self.start(None, [sys.executable, "-m", "tests.support.nsforward", "--netns", machine.netns_path,
                                    "--listen", f"127.0.0.1:{local}", "--connect", f"{host}:{port}"], log_path)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                return local
            if proc.poll() is not None:
                raise RuntimeError(f"forwarder exited: {log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        raise RuntimeError("forwarder did not start")

    def stop_processes(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc)
        self.processes.clear()

    def close(self) -> None:
        self.stop_processes()
        for netns in reversed(self._made):
            _ip("netns", "del", netns, check=False)
        self._made.clear()


@contextlib.contextmanager
def network(*names: str) -> Iterator[Network]:
    net = Network()
    try:
        net.create()
        for name in names:
            net.add_machine(name)
        yield net
    finally:
        net.close()


def host_network_state() -> dict[str, str]:
    """What must be the same before and after a test: the host's links, addresses, routes
    (every table), rules, nftables ruleset and iptables rules, and the named namespaces."""
    def out(*cmd: str) -> str:
        if shutil.which(cmd[0]) is None:
            return ""
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return proc.stdout

    return {
        "links": out("ip", "-o", "link", "show"),
        "addresses": out("ip", "-o", "addr", "show"),
        "routes": out("ip", "route", "show", "table", "all"),
        "rules": out("ip", "rule", "show"),
        "nftables": out("nft", "list", "ruleset"),
        "iptables": "\n".join(line for line in out("iptables-save").splitlines() if not line.startswith("#")),
        "netns": out("ip", "netns", "list"),
    }


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The parts of :func:`host_network_state` that differ (link counters and ifindex-free
    lines compared as a whole)."""
    def norm(text: str) -> list[str]:
        return sorted(line.split(" link/", 1)[0] for line in text.splitlines() if line.strip())

    return {k: (before[k], after[k]) for k in before if norm(before[k]) != norm(after.get(k, ""))}
