"""Network benchmark (issue 6): prints JSON.

* ``datapath``: HTTP requests/s and latency to one pod through its ClusterIP versus
  straight to the pod IP, from another node of a real three-node cluster on a test
  network (tests/support/netcluster.py: runc pods, CNI, kube-proxy in nftables mode).
  Goal: the ClusterIP path within 10% of the direct one.
* ``proxy``: seconds for kube-proxy to converge after 1,000 Services x 10 endpoints
  are created (bench/network_proxy.py).  Goal < 2 s.
* ``dns``: cluster DNS queries/s (bench/network_dns.py).  Goal >= 10,000/s.

    sudo python bench/network.py [--only datapath|proxy|dns] [--seconds 5]

Needs root, runc, busybox-static, the CNI plugins and nft; everything runs inside
network namespaces the benchmark creates and deletes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.netcluster import IMAGE, network_cluster
from tests.support.waiting import wait_until

# The load generator, run inside node-2's namespace: C connections in a loop for S seconds,
# one HTTP/1.0 request each (busybox httpd closes after every response).
LOAD = r"""
import asyncio, json, sys, time
host, port, seconds, conc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lat = []
async def worker(deadline):
    while time.monotonic() < deadline:
        t = time.perf_counter()
        r, w = await asyncio.open_connection(host, port)
        w.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        await w.drain()
        await r.read()
        w.close()
        lat.append(time.perf_counter() - t)
async def main():
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(worker(deadline) for _ in range(conc)))
asyncio.run(main())
lat.sort()
print(json.dumps({"requests_per_s": round(len(lat) / seconds, 1), "p50_ms": round(lat[len(lat) // 2] * 1e3, 2),
                  "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 2), "requests": len(lat)}))
"""


def datapath(seconds: float, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-net-") as tmp, network_cluster(Path(tmp)) as c:
        k = c.k
        web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"nodeName": "node-3", "containers": [{
                   "name": "web", "image": IMAGE, "imagePullPolicy": "Never",
                   "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && "
                                           "exec httpd -f -p 8080 -h /www"],
                   "ports": [{"containerPort": 8080}]}]}}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
        k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [web, svc]}))
        pod_ip = wait_until(lambda: k.json("get", "pod", "web")["status"].get("podIP"), timeout=90, what="pod IP")
        cluster_ip = k.json("get", "service", "web")["spec"]["clusterIP"]
        wait_until(lambda: k.json("get", "endpoints", "web").get("subsets"), timeout=60, what="endpoints")
        node2 = c.machine("node-2")

        def load(host: str, port: int) -> dict:
            out = node2.run(sys.executable, "-c", LOAD, host, str(port), str(seconds), str(concurrency),
                            timeout=seconds + 60).stdout
            return json.loads(out)

        load(pod_ip, 8080)  # warm up (ARP, conntrack, page cache)
        direct = load(pod_ip, 8080)
        via_service = load(cluster_ip, 80)
        return {"direct": direct, "cluster_ip": via_service, "concurrency": concurrency, "seconds": seconds,
                "cluster_ip_vs_direct": round(via_service["requests_per_s"] / direct["requests_per_s"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["datapath", "proxy", "dns"], default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    result: dict = {}
    if args.only in (None, "proxy"):
        from bench.network_proxy import measure

        result["proxy"] = measure(services=1000, endpoints=10, mode="nftables")
    if args.only in (None, "dns"):
        from bench.network_dns import bench_dns

        result["dns"] = bench_dns(qps_duration=args.seconds)["dns"]
    if args.only in (None, "datapath"):
        result["datapath"] = datapath(args.seconds, args.concurrency)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
