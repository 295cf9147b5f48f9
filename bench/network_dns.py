"""Cluster DNS benchmark: queries per second of ``pinnace dns``.

Starts an in-process API server (SQLite) and the DNS server fed by its informers,
creates N Services (a third headless with two endpoints each), then runs
UDP clients in separate processes (pinned to other CPUs than the server where
the machine has them) that keep a window of queries in flight each, over the
Services' names (A, AAAA, SRV and NXDOMAIN questions).  Prints JSON.

    python bench/network_dns.py --services 1000 --duration 5 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnslib import QTYPE, DNSHeader, DNSQuestion, DNSRecord

from pinnace.apiserver.server import ApiServer, ApiServerConfig
from pinnace.client.rest import ApiException, RestClient
from pinnace.dns import start_dns
from pinnace.pki import server_pki, write_kubeconfig

NAMESPACE = "default"


def _service(i: int) -> dict:
    headless = i % 3 == 2
    spec: dict = {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "selector": {"app": f"b{i}"}}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": NAMESPACE},
            "spec": spec}


def _slice(i: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"svc-{i}-x", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.42.{i // 200}.{(i % 200) + j}"], "conditions": {"ready": True}}
                          for j in (0, 1)]}


def _queries(services: int, count: int, domain: str) -> list[bytes]:
    """A fixed mix of query packets (IDs rewritten per send): mostly A, some AAAA
    (NODATA), SRV, and names that do not exist."""
    rnd = random.Random(1)
    out = []
    for _ in range(count):
        i = rnd.randrange(services)
        roll = rnd.random()
        if roll < 0.7:
            name, qtype = f"svc-{i}.{NAMESPACE}.svc.{domain}", QTYPE.A
        elif roll < 0.8:
            name, qtype = f"svc-{i}.{NAMESPACE}.svc.{domain}", QTYPE.AAAA
        elif roll < 0.9:
            name, qtype = f"_http._tcp.svc-{i}.{NAMESPACE}.svc.{domain}", QTYPE.SRV
        else:
            name, qtype = f"missing-{i}.{NAMESPACE}.svc.{domain}", QTYPE.A
        out.append(DNSRecord(DNSHeader(id=0, rd=1), q=DNSQuestion(name, qtype)).pack())
    return out


def _client(port: int, packets: list[bytes], window: int, duration: float, cpus: list[int], out) -> None:
    """One load generator: ``window`` queries in flight on one UDP socket."""
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.1)  # a lost (or very late) reply must not stall the window for long
    sent: dict[int, float] = {}
    latencies: list[float] = []
    answered = errors = timed_out = 0
    seq = 0
    n = len(packets)
    clock = time.perf_counter

    def send() -> None:
        nonlocal seq
        qid = seq & 0xFFFF
        seq += 1
        sent[qid] = clock()
        sock.send(qid.to_bytes(2, "big") + packets[seq % n][2:])

    end = clock() + duration
    for _ in range(window):
        send()
    while True:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            timed_out += len(sent)
            sent.clear()
            if clock() >= end:
                break
            for _ in range(window):
                send()
            continue
        t0 = sent.pop(int.from_bytes(data[:2], "big"), None)
        if t0 is None:
            continue
        now = clock()
        answered += 1
        if data[3] & 0x0F not in (0, 3):  # NOERROR and NXDOMAIN are both right answers here
            errors += 1
        if answered % 16 == 0:
            latencies.append(now - t0)
        if now < end:
            send()
        elif not sent:
            break
    out.put({"answered": answered, "errors": errors, "timed_out": timed_out, "latencies": latencies})


async def _setup(tmp: Path, services: int) -> tuple[ApiServer, Path]:
    pki = server_pki(tmp / "tls", "10.43.0.1")
    config = ApiServerConfig(storage=f"sqlite://{tmp}/state.db", port=0, tls_cert=pki.serving.cert,
                             tls_key=pki.serving.key, client_ca=pki.ca.cert_path)
    server = ApiServer(config)
    await server.start()
    kubeconfig = write_kubeconfig(tmp / "kubeconfig", f"https://127.0.0.1:{server.port}", pki.ca.pem,
                                  pki.admin.cert, pki.admin.key)
    client = RestClient.from_kubeconfig(kubeconfig)
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            with contextlib.suppress(ApiException):
                await client.create("v1", "services", _service(i), NAMESPACE)
            if i % 3 == 2:
                with contextlib.suppress(ApiException):
                    await client.create("discovery.k8s.io/v1", "endpointslices", _slice(i), NAMESPACE)

    try:
        await asyncio.gather(*(create(i) for i in range(services)))
    finally:
        await client.close()
    return server, kubeconfig


async def _measure(services: int, duration: float, clients: int, window: int, domain: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-dns-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        api, kubeconfig = await _setup(tmp, services)
        load_s = time.perf_counter() - t0
        affinity = os.sched_getaffinity(0)
        t1 = time.perf_counter()
        dns = await start_dns(kubeconfig, "127.0.0.1", 0, domain, upstreams=[])  # returns once listed
        start_s = time.perf_counter() - t1
        try:
            assert sum(1 for (_, name) in dns.view.services if name.startswith("svc-")) == services

            # The server keeps CPU 0; the clients get the others (all of them on a 1-CPU machine).
            all_cpus = sorted(affinity)
            server_cpu, client_cpus = all_cpus[0], (all_cpus[1:] or all_cpus)
            if len(all_cpus) > 1:
                os.sched_setaffinity(0, {server_cpu})
            packets = _queries(services, 4096, domain)
            ctx = multiprocessing.get_context("spawn")
            out = ctx.Queue()
            procs = [ctx.Process(target=_client, args=(dns.port, packets, window, duration, client_cpus, out))
                     for _ in range(clients)]
            for p in procs:
                p.start()
            await asyncio.sleep(0)
            hits0, queries0 = dns.server.stats["cache_hits"], dns.server.stats["queries"]
            ru0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            results = []
            while len(results) < clients:  # the loop must keep serving while we wait
                with contextlib.suppress(Exception):
                    results.append(out.get_nowait())
                    continue
                await asyncio.sleep(0.05)
            ru1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for p in procs:
                p.join(5)
            queries = dns.server.stats["queries"] - queries0
            hits = dns.server.stats["cache_hits"] - hits0
            cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        finally:
            os.sched_setaffinity(0, affinity)  # the caller (bench/network.py) gets its CPUs back
            await dns.stop()
            await api.stop()
    answered = sum(r["answered"] for r in results)
    lat = sorted(x for r in results for x in r["latencies"])
    wall = w1 - w0
    return {
        "services": services,
        "load_services_s": round(load_s, 2),
        "dns_start_and_sync_s": round(start_s, 3),
        "clients": clients,
        "window_per_client": window,
        "duration_s": round(wall, 2),
        "queries_answered": answered,
        "queries_per_s": round(answered / duration),
        "errors": sum(r["errors"] for r in results),
        "timed_out_over_100ms": sum(r["timed_out"] for r in results),
        "latency_ms": {"p50": round(statistics.median(lat) * 1000, 3) if lat else None,
                       "p99": round(lat[int(len(lat) * 0.99)] * 1000, 3) if lat else None},
        "server_cpu_s": round(cpu_s, 2),
        "server_cpu_share": round(cpu_s / wall, 2),  # below 1: the server was not the bottleneck or shared its CPU
        "queries_per_server_cpu_s": round(queries / cpu_s) if cpu_s else None,
        "cache_hit_ratio": round(hits / queries, 4) if queries else None,
        "cpus": os.cpu_count(),
    }


def bench_dns(qps_duration: float = 5.0, services: int = 1000, clients: int = 2, window: int = 32,
              domain: str = "cluster.local") -> dict:
    """Run the benchmark; returns its JSON document."""
    try:
        import uvloop

        uvloop.install()  # what `pinnace dns` runs on
    except ImportError:
        pass
    return {"dns": asyncio.run(_measure(services, qps_duration, clients, window, domain))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of load")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--window", type=int, default=32, help="queries in flight per client")
    args = ap.parse_args()
    print(json.dumps(bench_dns(args.duration, args.services, args.clients, args.window), indent=2))


if __name__ == "__main__":
    main()
