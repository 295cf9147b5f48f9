"""Stale UDP conntrack entries, flushed with the ``conntrack`` tool.

UDP has no connection end, so a conntrack entry keeps steering a client's
packets to the endpoint chosen for its first packet (or keeps them un-NATed,
if that first packet met a service with no endpoints) for as long as the client
keeps talking.  So, as upstream kube-proxy does after each sync:

- endpoints that went away: delete entries DNATed to them through the service
  (``--orig-dst SERVICE_IP --dst-nat ENDPOINT_IP``, or by NodePort);
- services that got endpoints after having none: delete the entries to the
  service address (they were made while packets were rejected and would
  blackhole the flow).

:func:`stale_udp_commands` is pure; :func:`flush` runs the commands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .model import ServicePort, ServicePortKey
from .netns import CommandRunner

log = logging.getLogger(__name__)


def _addresses(sp: ServicePort) -> list[str]:
    return [sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips]


def stale_udp_commands(old: Mapping[ServicePortKey, ServicePort], new: Mapping[ServicePortKey, ServicePort]
                       ) -> list[list[str]]:
    """``conntrack`` argument lists (without the program name) for the UDP entries
    that the change from ``old`` to ``new`` left stale."""
    cmds: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def add(*args: str) -> None:
        if args not in seen:
            seen.add(args)
            cmds.append(["-D", "-p", "udp", *args])

    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        sp = after or before
        if sp is None or sp.protocol != "UDP":
            continue
        gone = set(before.reachable_endpoints if before else ()) - set(after.reachable_endpoints if after else ())
        for ep in sorted(gone):
            assert before is not None
            for ip in _addresses(before):
                add("--orig-dst", ip, "--orig-port-dst", str(before.port), "--dst-nat", ep.ip)
            if before.node_port:
                add("--orig-port-dst", str(before.node_port), "--dst-nat", ep.ip)
        if after is not None and after.has_endpoints and (before is None or not before.has_endpoints):
            for ip in _addresses(after):
                add("--orig-dst", ip, "--orig-port-dst", str(after.port))
            if after.node_port:
                add("--orig-port-dst", str(after.node_port))
    return cmds


async def flush(runner: CommandRunner, cmds: list[list[str]]) -> int:
    """Run ``conntrack`` for each of ``cmds``; returns how many failed (finding nothing
    to delete is not a failure)."""
    failed = 0
    for args in cmds:
        try:
            res = await runner.run("conntrack", *args, timeout=10.0)
        except FileNotFoundError:
            log.warning("conntrack is not installed: stale UDP flows are not flushed (apt-get install conntrack)")
            return len(cmds)
        if res.returncode != 0 and "0 flow entries" not in res.stderr:
            failed += 1
            log.warning("conntrack %s failed: %s", " ".join(args), res.stderr.strip())
    return failed


__all__ = ["flush", "stale_udp_commands"]
