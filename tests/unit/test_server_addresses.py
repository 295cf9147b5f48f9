"""Where `pinnace server` listens and what it advertises when the flags leave it open:
pods in their own network namespaces must reach the API server and cluster DNS at
an address that is not loopback."""

from __future__ import annotations

import os
import shutil

import pytest

from pinnace.cli import _server_address_defaults, build_parser
from pinnace.kubelet import cni


def args(*argv: str):
    return build_parser().parse_args(["server", *argv])


def test_pods_on_the_node_network_keep_everything_on_loopback() -> None:
    a = args("--pod-network", "host")
    _server_address_defaults(a)
    assert (a.bind_address, a.advertise_address) == ("127.0.0.1", None)


def test_no_agent_keeps_loopback() -> None:
    a = args("--no-agent")
    _server_address_defaults(a)
    assert (a.bind_address, a.advertise_address) == ("127.0.0.1", None)


def test_explicit_addresses_win() -> None:
    a = args("--bind-address", "127.0.0.2", "--pod-network", "cni")
    _server_address_defaults(a)
    assert (a.bind_address, a.advertise_address) == ("127.0.0.2", None)


CNI_POSSIBLE = os.geteuid() == 0 and shutil.which("runc") and not cni.missing_plugins(cni.DEFAULT_BIN_DIRS)


@pytest.mark.skipif(not CNI_POSSIBLE, reason="CNI pod networks need root, runc and the CNI plugins")
def test_cni_pods_get_the_node_address_advertised() -> None:
    a = args("--pod-network", "cni", "--runtime", "runc", "--node-ip", "192.0.2.7")
    _server_address_defaults(a)  # only inspects the machine: nothing is configured
    assert (a.bind_address, a.advertise_address) == ("0.0.0.0", "192.0.2.7")
