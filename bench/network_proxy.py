"""kube-proxy convergence benchmark: prints JSON.

An in-process API server (SQLite in a temp dir) and the proxy (nftables mode by
default) programming a network namespace this benchmark creates and deletes.
Creates N Services x M endpoints (one EndpointSlice each) through the API as fast
as it takes them, and measures

* ``converge_after_last_write_s``: from the last create answered to the proxy's
  rules covering every Service with all its endpoints (the issue's goal: < 2 s
  for 1,000 x 10);
* ``total_s``: from the first create to converged, and how many syncs it took;
* ``one_change_s``: one Service's endpoints changed -> applied;
* ``cold_start_s``: a fresh proxy starting with all of them already there, until
  its first (full) sync is applied.

The rules are checked in the namespace afterwards (elements of the service map).

    sudo python bench/network_proxy.py [--services 1000] [--endpoints 10] [--mode nftables]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from pinnace.apiserver.server import ApiServer, ApiServerConfig
from pinnace.pki import server_pki, write_kubeconfig
from pinnace.proxy import start_proxy

NODE = "bench-node"


def service(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})


def endpoint_slice(i: int, endpoints: int, gen: int = 0) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-x", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.42.{(i * endpoints + e) // 250 % 250}.{(i * endpoints + e) % 250 + 1}"],
                           "conditions": {"ready": True}, "nodeName": f"node-{(e + gen) % 5}"}
                          for e in range(endpoints)]}


async def pool(n: int, concurrency: int, fn) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def converged(proxy, services: int, endpoints: int) -> bool:
    applied = proxy.applied
    return len(applied) >= services and all(len(sp.endpoints) == endpoints for sp in applied.values())


async def wait(pred, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while not pred():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("proxy did not converge")
        await asyncio.sleep(0.005)
    return time.perf_counter()


def measure(services: int = 1000, endpoints: int = 10, mode: str = "nftables", concurrency: int = 64) -> dict:
    """Run the benchmark (in a network namespace made and deleted here); the JSON-able result."""
    netns = f"pn-bench-proxy-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pinnace-bench-proxy-") as tmp:
            return asyncio.run(_measure(Path(tmp), netns, services, endpoints, mode, concurrency))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


async def _measure(tmp: Path, netns: str, services: int, endpoints: int, mode: str, concurrency: int) -> dict:
    pki = server_pki(tmp / "pki", "10.43.0.1")
    server = ApiServer(ApiServerConfig(storage=f"sqlite://{tmp}/state.db", port=0, tls_cert=pki.serving.cert,
                                       tls_key=pki.serving.key, client_ca=pki.ca.cert_path))
    await server.start()
    base = f"https://127.0.0.1:{server.port}"
    kubeconfig = write_kubeconfig(tmp / "kubeconfig", base, pki.ca.pem, pki.admin.cert, pki.admin.key)
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    ctx.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency))
    proxy = None
    try:
        proxy = await start_proxy(kubeconfig, NODE, mode, netns=netns, sync_timeout=30)
        base_syncs = proxy.stats.count
        hdrs = {"Content-Type": "application/json"}

        async def create(i: int) -> None:
            async with session.post(f"{base}/api/v1/namespaces/default/services", data=service(i),
                                    headers=hdrs) as r:
                assert r.status == 201, await r.text()
            async with session.post(f"{base}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                                    data=orjson.dumps(endpoint_slice(i, endpoints)), headers=hdrs) as r:
                assert r.status == 201, await r.text()

        # The default/kubernetes Service has no slice here: it is not counted.
        def done() -> bool:
            return sum(1 for sp in proxy.applied.values() if len(sp.endpoints) == endpoints) >= services

        t0 = time.perf_counter()
        await pool(services, concurrency, create)
        t_written = time.perf_counter()
        t_done = await wait(done)
        syncs = proxy.stats.count - base_syncs

        # One change in a big table.
        path = f"{base}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/svc-0-x"
        async with session.get(path) as r:
            current = await r.json()
        changed = endpoint_slice(0, endpoints - 1, gen=1)
        changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        t1 = time.perf_counter()
        async with session.put(path, data=orjson.dumps(changed), headers=hdrs) as r:
            assert r.status == 200, await r.text()
        key = ("default", "svc-0", "http", "TCP")
        t_one = await wait(lambda: key in proxy.applied and len(proxy.applied[key].endpoints) == endpoints - 1)

        rules = _service_map_size(netns) if mode == "nftables" else None
        last_sync = proxy.stats.last_seconds
        await proxy.stop()
        proxy = None

        # Cold start: everything exists, a new proxy does one full sync.
        t2 = time.perf_counter()
        proxy = await start_proxy(kubeconfig, NODE, mode, netns=netns, sync_timeout=120)
        t_cold = time.perf_counter()
        cold_sync = proxy.stats.last_seconds
        return {
            "mode": mode, "services": services, "endpoints_per_service": endpoints,
            "create_s": round(t_written - t0, 3),
            "converge_after_last_write_s": round(t_done - t_written, 3),
            "total_s": round(t_done - t0, 3),
            "syncs": syncs,
            "one_change_s": round(t_one - t1, 3), "one_change_sync_s": round(last_sync, 3),
            "cold_start_s": round(t_cold - t2, 3), "cold_start_sync_s": round(cold_sync, 3),
            "service_map_elements": rules,
            "goal_converge_s": 2.0,
        }
    finally:
        if proxy is not None:
            await proxy.stop()
        await session.close()
        await server.stop()


def _service_map_size(netns: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", netns, "nft", "-j", "list", "map", "ip", "pinnace-proxy",
                          "service-ips"], capture_output=True, text=True, check=True).stdout
    for item in json.loads(out)["nftables"]:
        if "map" in item:
            return len(item["map"].get("elem") or ())
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--mode", choices=["nftables", "iptables"], default="nftables")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("-v", "--verbose", action="store_true", help="log each proxy sync")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("pinnace.proxy").setLevel(logging.DEBUG)
    print(json.dumps(measure(args.services, args.endpoints, args.mode, args.concurrency), indent=2))


if __name__ == "__main__":
    main()
