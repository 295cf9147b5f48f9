"""API server benchmark: creates, gets, lists and watch delivery with N concurrent clients.

Starts a real ``pinnace server --no-agent`` (SQLite) or ``pinnace apiserver
--storage etcd://`` (against a real etcd it starts on loopback), measures, stops
everything, and prints one JSON document.

    python bench/api.py --backend sqlite --clients 32 --pods 5000
    python bench/api.py --backend etcd --clients 32 --pods 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.etcd import run_etcd
from tests.support.server import run_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def summary(latencies: list[float], elapsed: float) -> dict:
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else lat * 99
    return {"count": len(lat), "seconds": round(elapsed, 3), "per_second": round(len(lat) / elapsed, 1),
            "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}


def pod(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{i}", "labels": {
        "app": "bench", "shard": str(i % 10)}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                                                         "command": ["sleep", "3600"]}]}})


async def run_clients(n_clients: int, total: int, op) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n_clients)))
    return latencies, time.perf_counter() - start


async def bench(base: str, sslctx: ssl.SSLContext, clients: int, pods: int, lists: int) -> dict:
    ns_path = "/api/v1/namespaces/default/pods"
    results: dict = {}
    conn = aiohttp.TCPConnector(ssl=sslctx, limit=clients + 8)
    async with aiohttp.ClientSession(connector=conn) as session:
        created_at: dict[str, float] = {}
        delivered: list[float] = []
        watch_ready = asyncio.Event()
        done = asyncio.Event()

        async def watcher() -> None:
            async with session.get(base + ns_path + "?watch=true&resourceVersion=0&allowWatchBookmarks=true",
                                   timeout=aiohttp.ClientTimeout(total=None)) as resp:
                watch_ready.set()
                buf = b""
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        ev = orjson.loads(line)
                        if ev["type"] == "ADDED":
                            name = ev["object"]["metadata"]["name"]
                            sent = created_at.get(name)
                            if sent is not None:
                                delivered.append(now - sent)
                    if len(delivered) >= pods:
                        done.set()
                        return

        watch_task = asyncio.create_task(watcher())
        await watch_ready.wait()

        async def create(i: int) -> None:
            created_at[f"bench-{i}"] = time.perf_counter()
            async with session.post(base + ns_path, data=pod(i),
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"create failed: {resp.status}")

        lat, elapsed = await run_clients(clients, pods, create)
        results["create"] = summary(lat, elapsed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 30)
        watch_task.cancel()
        results["watch_delivery"] = summary(delivered, elapsed) if delivered else {"count": 0}

        async def get(i: int) -> None:
            async with session.get(f"{base}{ns_path}/bench-{i % pods}") as resp:
                await resp.read()

        lat, elapsed = await run_clients(clients, pods, get)
        results["get"] = summary(lat, elapsed)

        async def list_some(i: int) -> None:
            async with session.get(f"{base}{ns_path}?labelSelector=shard%3D{i % 10}") as resp:
                await resp.read()

        lat, elapsed = await run_clients(min(clients, 8), lists, list_some)
        results["list_selector_10pct"] = summary(lat, elapsed)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "etcd"], default="sqlite")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--lists", type=int, default=200)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp) / "data"
        if args.backend == "etcd":
            endpoint = stack.enter_context(run_etcd())
            server = stack.enter_context(run_server(data, "--storage", f"etcd://{endpoint}", command="apiserver"))
        else:
            server = stack.enter_context(run_server(data))
        time.sleep(1.0)
        idle_rss = rss_mb(server.proc.pid)
        results = asyncio.run(bench(server.url, server.ssl_context(), args.clients, args.pods, args.lists))
        results["server_rss_mb"] = {"idle": round(idle_rss, 1), "after": round(rss_mb(server.proc.pid), 1)}
    out = {"benchmark": "api", "backend": args.backend, "clients": args.clients, "pods": args.pods,
           "cpus": os.cpu_count(), "python": sys.version.split()[0], "results": results}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
