"""Pod start-up benchmark on real containers: create → Running latency for one pod
and for N pods created at once, on the runc runtime with the image already present,
and the node agent's memory and CPU.  Prints JSON.

``first_pod_seconds`` is the node's first pod of the image (its layers are unpacked into
the runtime's rootfs cache then); ``one_pod_seconds`` a pod after it; ``*_bound`` the
control plane's share (create until the pod is bound to the node).

Runs real processes: ``pinnace server --no-agent`` (control plane) and a separate
``pinnace agent`` joined by token (so its RSS is the agent's alone).  Needs root,
runc and Debian's busybox-static.

    sudo python bench/podstart.py --pods 50
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.images import busybox_archive
from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.runc import remove_runc_containers
from tests.support.server import run_server, stop_process

from bench.api import summary
from pinnace.client.rest import RestClient

IMAGE = "pinnace.test/busybox:1"


def pinnace(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "pinnace.cli", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, summed over its CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def containers_cpu_seconds() -> float:
    """CPU seconds used in the containers' cgroups (the runc runtime's default parent, /pinnace):
    their processes from runc's init on, the pause containers' too."""
    v2 = Path("/sys/fs/cgroup/pinnace/cpu.stat")
    if v2.exists():
        return int(v2.read_text().split("usage_usec", 1)[1].split()[0]) / 1e6
    v1 = Path("/sys/fs/cgroup/cpuacct/pinnace/cpuacct.usage")
    return int(v1.read_text()) / 1e9 if v1.exists() else 0.0


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "podstart"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}


async def _start_all(kubeconfig: Path, names: list[str], timeout: float) -> tuple[list[float], list[float]]:
    """Create the pods (concurrently) and watch them: seconds from each create to the pod's
    first Running (container started) as the watch delivers it, and to its binding to the
    node (the control plane's share)."""
    client = RestClient.from_kubeconfig(kubeconfig)
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    bound: dict[str, float] = {}
    try:
        listed = await client.list("v1", "pods", "default")
        rv = listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            async for event in client.watch("v1", "pods", "default", resourceVersion=rv,
                                            labelSelector="bench=podstart", timeoutSeconds=int(timeout)):
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if name in created and name not in bound and (obj.get("spec") or {}).get("nodeName"):
                    bound[name] = time.perf_counter() - created[name]
                if name in created and name not in running and (obj.get("status") or {}).get("phase") == "Running":
                    running[name] = time.perf_counter() - created[name]
                    if len(running) == len(names):
                        return

        watcher = asyncio.create_task(watch())

        async def create(name: str) -> None:
            created[name] = time.perf_counter()
            await client.create("v1", "pods", pod(name), "default")

        await asyncio.gather(*(create(n) for n in names))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await watcher
        watcher.cancel()
    finally:
        await client.close()
    return sorted(running.values()), sorted(bound.values())


def start_all(kubeconfig: Path, names: list[str], timeout: float = 300) -> tuple[list[float], list[float]]:
    return asyncio.run(_start_all(kubeconfig, names, timeout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--runtime", default="runc", choices=["runc", "process"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-podstart-") as tmp:
        tmp_path = Path(tmp)
        agent_dir = tmp_path / "agent"
        archive = busybox_archive(tmp_path / "busybox.tar", tags=(IMAGE, "pinnace.test/busybox:app"))
        pinnace("image", "import", str(archive), "--data-dir", str(agent_dir))
        with run_server(tmp_path / "data") as server:
            token = pinnace("token", "create", "--data-dir", str(server.data_dir))
            with open(tmp_path / "agent.log", "wb") as log:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "pinnace.cli", "agent", "--server", server.url, "--token", token,
                     "--data-dir", str(agent_dir), "--runtime", args.runtime, "--node-ip", "127.0.0.1",
                     "--kubelet-port", "0", "--node-name", "bench-node", "--pod-network", "host",
                     "--proxy-mode", "none"],
                    stdout=log, stderr=subprocess.STDOUT)
            try:
                k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
                while k.run("get", "node", "bench-node", check=False).returncode != 0:
                    time.sleep(0.2)
                idle_rss = rss_mb(agent.pid)
                # The node's first container of the image unpacks it into the rootfs cache
                # (containerd does that at pull time): measured apart from the steady state.
                first, _ = start_all(server.kubeconfig, ["first"])
                k("delete", "pods", "-l", "bench=podstart", "--wait=true", timeout=120)
                one, one_bound = start_all(server.kubeconfig, ["single"])
                k("delete", "pods", "-l", "bench=podstart", "--wait=true", timeout=120)
                load = os.getloadavg()[0]
                cpu0 = (cpu_seconds(agent.pid), cpu_seconds(server.proc.pid), machine_busy_seconds(),
                        containers_cpu_seconds())
                many, many_bound = start_all(server.kubeconfig, [f"p{i}" for i in range(args.pods)])
                cpu1 = (cpu_seconds(agent.pid), cpu_seconds(server.proc.pid), machine_busy_seconds(),
                        containers_cpu_seconds())
                busy_rss = rss_mb(agent.pid)
                k("delete", "pods", "-l", "bench=podstart", "--wait=true", timeout=300)
            finally:
                stop_process(agent)
                remove_runc_containers(tmp_path)  # runc containers outlive the agent
    out = {"benchmark": "podstart", "runtime": args.runtime, "pods": args.pods, "cpus": os.cpu_count(),
           "python": sys.version.split()[0],
           "results": {"first_pod_seconds": round(first[0], 3) if first else None,
                       "one_pod_seconds": round(one[0], 3) if one else None,
                       "one_pod_bound_seconds": round(one_bound[0], 3) if one_bound else None,
                       "many_pods": {"running": len(many), **summary(many, max(many) if many else 0.0)},
                       # create -> bound to the node (scheduler and API server alone)
                       "many_pods_bound": summary(many_bound, max(many_bound) if many_bound else 0.0),
                       "agent_rss_mb": {"idle": idle_rss, f"with_{args.pods}_pods": busy_rss},
                       # CPU seconds spent while the N pods started: the agent process alone (not its
                       # shims and runc), the control plane, inside the containers, and the whole
                       # machine (all CPUs, whatever else runs).
                       "cpu_seconds_many": {"agent": round(cpu1[0] - cpu0[0], 2), "server": round(cpu1[1] - cpu0[1], 2),
                                            "containers": round(cpu1[3] - cpu0[3], 2),
                                            "machine": round(cpu1[2] - cpu0[2], 2)},
                       "load_before_many": round(load, 2)}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
