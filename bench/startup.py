"""Time from starting ``pinnace server --no-agent`` to ``/readyz`` answering 200,
and the server's idle memory, over several fresh data dirs and one warm restart.

    python bench/startup.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.processes import free_port
from tests.support.server import wait_ready

from bench.api import rss_mb


def start_once(data: Path) -> tuple[float, float]:
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pinnace.cli", "server", "--no-agent", "--data-dir", str(data),
                             "--https-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(data, port, proc)
        ready = time.monotonic() - t0
        time.sleep(2.0)
        return ready, rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    fresh, warm, rss = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pinnace-start-") as tmp:
            data = Path(tmp) / "data"
            t, m = start_once(data)  # fresh: generates the CA and certificates
            fresh.append(t)
            rss.append(m)
            t, _ = start_once(data)  # warm: reuses them and the database
            warm.append(t)
    out = {"benchmark": "startup", "runs": args.runs, "cpus": os.cpu_count(), "python": sys.version.split()[0],
           "results": {"fresh_to_readyz_s": {"median": round(statistics.median(fresh), 3), "max": round(max(fresh), 3)},
                       "restart_to_readyz_s": {"median": round(statistics.median(warm), 3), "max": round(max(warm), 3)},
                       "idle_rss_mb": {"median": round(statistics.median(rss), 1), "max": round(max(rss), 1)}}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
