"""Controller benchmark: a big Deployment on simulated nodes, end to end.

Runs real processes: ``pinnace apiserver`` (SQLite), ``pinnace simulate-nodes``,
``pinnace scheduler`` and ``pinnace controller-manager``.  Measures the time
from creating an N-replica Deployment to all N pods available, then from
changing its image to the rolling update being complete (every pod replaced,
``Progressing=NewReplicaSetAvailable``).  Prints JSON.

    python bench/controllers.py --nodes 300 --replicas 3000
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

from bench.scheduler import wait_nodes

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1", "resources": {
                                      "requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


def rolled_out(d: dict, replicas: int) -> bool:
    s = d.get("status") or {}
    progressing = next((c for c in s.get("conditions") or [] if c["type"] == "Progressing"), {})
    return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and s.get("updatedReplicas") == replicas and s.get("replicas") == replicas
            and s.get("availableReplicas") == replicas and progressing.get("reason") == "NewReplicaSetAvailable")


async def until_rolled_out(session: aiohttp.ClientSession, url: str, replicas: int, start: float,
                           timeout: float) -> dict:
    """Poll the Deployment; return the elapsed time, a progress trace (available pods per
    ~5 s) and the extremes its status showed (fewest available, most pods)."""
    trace: list[tuple[float, int]] = []
    fewest_available, most_pods = replicas, 0
    while True:
        async with session.get(url) as r:
            d = await r.json()
        elapsed = time.perf_counter() - start
        s = d.get("status") or {}
        fewest_available = min(fewest_available, s.get("availableReplicas", 0))
        most_pods = max(most_pods, s.get("replicas", 0))
        if not trace or elapsed - trace[-1][0] >= 5:
            trace.append((round(elapsed, 1), s.get("availableReplicas", 0)))
            print(f"  {elapsed:6.1f}s  updated={s.get('updatedReplicas', 0)} "
                  f"available={s.get('availableReplicas', 0)} total={s.get('replicas', 0)}", file=sys.stderr)
        if rolled_out(d, replicas):
            return {"seconds": round(elapsed, 2), "fewest_available": fewest_available, "most_pods": most_pods,
                    "available_over_time": trace}
        if elapsed > timeout:
            return {"seconds": None, "timed_out_after": timeout, "last_status": s, "fewest_available": fewest_available,
                    "most_pods": most_pods, "available_over_time": trace}
        await asyncio.sleep(0.25)


async def measure(base: str, sslctx, nodes: int, replicas: int, timeout: float) -> dict:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sslctx)) as session:
        await wait_nodes(session, base, nodes)
        url = f"{base}{DEPLOYMENTS}/bench"
        print(f"creating a {replicas}-replica Deployment on {nodes} nodes", file=sys.stderr)
        start = time.perf_counter()
        async with session.post(base + DEPLOYMENTS, data=orjson.dumps(deployment(replicas)),
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()
        create = await until_rolled_out(session, url, replicas, start, timeout)
        print("rolling update (new image)", file=sys.stderr)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}
        start = time.perf_counter()
        async with session.patch(url, data=orjson.dumps(patch),
                                 headers={"Content-Type": "application/strategic-merge-patch+json"}) as r:
            assert r.status == 200, await r.text()
        update = await until_rolled_out(session, url, replicas, start, timeout)
        return {"create_to_all_available": create, "rolling_update": update}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--replicas", type=int, default=3000)
    ap.add_argument("--start-delay", type=float, default=0.2, help="simulated container start time (s)")
    ap.add_argument("--timeout", type=float, default=600, help="give up on a phase after this many seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-ctrl-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp) / "data"
        server = stack.enter_context(run_server(data, "--storage", f"sqlite://{data}/state.db", command="apiserver"))
        procs = []
        for cmd in (["simulate-nodes", "--count", str(args.nodes), "--start-delay", str(args.start_delay),
                     "--delete-grace-cap", "0.1"],
                    ["scheduler", "--no-leader-elect"],
                    ["controller-manager", "--no-leader-elect"]):
            procs.append(subprocess.Popen([sys.executable, "-m", "pinnace.cli", *cmd, "--kubeconfig",
                                           str(server.kubeconfig)], stdout=subprocess.DEVNULL,
                                          stderr=open(data / f"{cmd[0]}.log", "wb")))
        try:
            results = asyncio.run(measure(server.url, server.ssl_context(), args.nodes, args.replicas,
                                          args.timeout))
        finally:
            for p in procs:
                stop_process(p)
    out = {"benchmark": "controllers", "nodes": args.nodes, "replicas": args.replicas,
           "start_delay": args.start_delay, "cpus": os.cpu_count(), "python": sys.version.split()[0],
           "results": results}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
