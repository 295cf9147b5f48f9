"""The node's masquerade for pod traffic leaving the cluster, loaded by the real nft in a
network namespace made (and deleted) by the test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid

import pytest

from pinnace.kubelet.network import ClusterMasquerade

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
                                reason="needs root, nft and ip")


def test_masquerades_only_traffic_leaving_the_cluster() -> None:
    netns = f"pn-masq-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        masq = ClusterMasquerade("10.42.0.0/16")

        async def apply_in_netns() -> None:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", netns, "nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate(masq.script("10.42.3.0/24").encode())
            assert proc.returncode == 0, err

        asyncio.run(apply_in_netns())
        asyncio.run(apply_in_netns())  # idempotent: the table is replaced, not duplicated
        ruleset = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"], capture_output=True,
                                 text=True, check=True).stdout
        assert ruleset.count(" masquerade\n") == 1
        assert "ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16" in ruleset
        assert 'oifname != "cni0"' in ruleset
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
