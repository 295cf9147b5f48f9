"""Scheduler benchmark: N simulated nodes, M pods created through the API as fast
as it takes them; end-to-end scheduling throughput (first create → last bind) and
per-pod create → bind latency.  Runs real processes: ``pinnace apiserver``
(SQLite), ``pinnace simulate-nodes`` and ``pinnace scheduler``, and prints JSON.

    python bench/scheduler.py --nodes 1000 --pods 10000
    python bench/scheduler.py --nodes 1000 --pods 5000 --spread
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.server import run_server, stop_process

from bench.api import summary


def pod(i: int, spread: bool) -> bytes:
    spec: dict = {"containers": [{"name": "c", "image": "busybox", "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    labels = {"app": f"app-{i % 50}"}
    if spread:
        spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": labels},
                                               "topologyKey": "kubernetes.io/hostname"}}]}}
        spec["topologySpreadConstraints"] = [{"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone",
                                              "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": labels}}]
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"b{i}", "labels": labels},
                         "spec": spec})


async def wait_nodes(session: aiohttp.ClientSession, base: str, n: int) -> None:
    while True:
        async with session.get(base + "/api/v1/nodes?limit=1") as r:
            body = await r.json()
        have = len(body["items"]) + body["metadata"].get("remainingItemCount", 0)
        if have >= n:
            return
        await asyncio.sleep(0.5)


async def measure(base: str, sslctx, n_nodes: int, n_pods: int, spread: bool, clients: int) -> dict:
    conn = aiohttp.TCPConnector(ssl=sslctx, limit=clients + 4)
    async with aiohttp.ClientSession(connector=conn) as session:
        await wait_nodes(session, base, n_nodes)
        created: dict[str, float] = {}
        bound: dict[str, float] = {}
        all_bound = asyncio.Event()

        async def watch() -> None:
            url = base + "/api/v1/namespaces/default/pods?watch=true&resourceVersion=0"
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
                buf = b""
                async for chunk in r.content.iter_any():
                    now = time.perf_counter()
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        obj = orjson.loads(line)["object"]
                        name = obj["metadata"]["name"]
                        if obj.get("spec", {}).get("nodeName") and name not in bound:
                            bound[name] = now
                    if len(bound) >= n_pods:
                        all_bound.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        counter = iter(range(n_pods))

        async def creator() -> None:
            for i in counter:
                created[f"b{i}"] = time.perf_counter()
                async with session.post(base + "/api/v1/namespaces/default/pods", data=pod(i, spread),
                                        headers={"Content-Type": "application/json"}) as r:
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(clients)))
        create_done = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_bound.wait(), 600)
        watcher.cancel()
        last_bind = max(bound.values()) if bound else time.perf_counter()
        latencies = [bound[k] - created[k] for k in bound if k in created]
        return {
            "pods_bound": len(bound),
            "create_seconds": round(create_done - start, 2),
            "throughput_pods_per_s": round(len(bound) / (last_bind - start), 1),
            "create_to_bind": summary(latencies, last_bind - start),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--spread", action="store_true", help="pods with anti-affinity and topology spread")
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-sched-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp) / "data"
        server = stack.enter_context(run_server(data, "--storage", f"sqlite://{data}/state.db", command="apiserver"))
        procs = []
        # Pods stay bound-but-pending (a long start delay): the figure is the scheduler's alone.
        for cmd in (["simulate-nodes", "--count", str(args.nodes), "--start-delay", "100000"],
                    ["scheduler", "--no-leader-elect"]):
            procs.append(subprocess.Popen([sys.executable, "-m", "pinnace.cli", *cmd, "--kubeconfig",
                                           str(server.kubeconfig)], stdout=subprocess.DEVNULL,
                                          stderr=open(data / f"{cmd[0]}.log", "wb")))
        try:
            results = asyncio.run(measure(server.url, server.ssl_context(), args.nodes, args.pods, args.spread,
                                          args.clients))
        finally:
            for p in procs:
                stop_process(p)
    out = {"benchmark": "scheduler", "nodes": args.nodes, "pods": args.pods, "spread": args.spread,
           "cpus": os.cpu_count(), "python": sys.version.split()[0], "results": results}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
