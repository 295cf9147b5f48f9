"""``pinnace`` command line: one subcommand per component."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("pinnace")


def default_data_dir() -> Path:
    env = os.environ.get("PINNACE_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "pinnace"


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("15s", "1m30s", "500ms"; a bare number is seconds),
    as Kubernetes components' duration flags take them."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (examples: 15s, 1m30s, 500ms)")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _add_leader_election_flags(p: argparse.ArgumentParser, lease: str) -> None:
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help=f"elect a leader through the kube-system/{lease} Lease (default on)")
    p.add_argument("--leader-elect-lease-duration", type=go_duration, default=15.0, metavar="DURATION",
                   help="how long a standby waits after the last renewal before taking over (default 15s)")
    p.add_argument("--leader-elect-renew-deadline", type=go_duration, default=10.0, metavar="DURATION",
                   help="how long the leader keeps trying to renew before it steps down (default 10s)")
    p.add_argument("--leader-elect-retry-period", type=go_duration, default=2.0, metavar="DURATION",
                   help="time between attempts to acquire or renew (default 2s)")


def _add_node_ipam_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-cidr", default="10.42.0.0/16", help="range of pod IPs (default 10.42.0.0/16)")
    p.add_argument("--node-cidr-mask-size", type=int, default=24,
                   help="prefix length of each node's podCIDR, carved from --cluster-cidr (default 24)")
    p.add_argument("--allocate-node-cidrs", action=argparse.BooleanOptionalAction, default=True,
                   help="give nodes podCIDRs from --cluster-cidr (node IPAM controller; default on)")


def _node_ipam_options(args: argparse.Namespace) -> dict:
    return {"cluster_cidr": args.cluster_cidr, "node_cidr_mask_size": args.node_cidr_mask_size,
            "allocate_node_cidrs": args.allocate_node_cidrs}


def _leader_election_timing(args: argparse.Namespace) -> dict[str, float]:
    timing = {"lease_duration": args.leader_elect_lease_duration,
              "renew_deadline": args.leader_elect_renew_deadline,
              "retry_period": args.leader_elect_retry_period}
    if not timing["lease_duration"] > timing["renew_deadline"] > timing["retry_period"] > 0:
        raise SystemExit("error: need --leader-elect-lease-duration > --leader-elect-renew-deadline > "
                         "--leader-elect-retry-period > 0")
    return timing


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _run(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stop_event)`` on the fastest available loop until SIGINT/SIGTERM."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner())
    return 0


# -- server / apiserver ---------------------------------------------------------------


def _add_apiserver_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--https-port", type=int, default=6443, help="port of the API server (default 6443)")
    p.add_argument("--bind-address", default=None,
                   help="address to listen on (default 127.0.0.1; `server` whose pods get their own network "
                        "namespaces: 0.0.0.0, so that pods reach it at the node's address)")
    p.add_argument("--advertise-address", default=None, help="address clients and pods use for the API server")
    p.add_argument("--service-cidr", default="10.43.0.0/16", help="range of Service cluster IPs")
    p.add_argument("--service-node-port-range", default="30000-32767", help="range of NodePorts")
    p.add_argument("--token-auth-file", type=Path, default=None,
                   help="static bearer tokens: CSV lines token,user,uid[,\"group1,group2\"]")
    p.add_argument("--tls-san", action="append", default=[], help="extra name or IP for the serving certificate")
    p.add_argument("--compaction-interval", type=float, default=300.0, help="seconds between storage compactions")
    p.add_argument("--service-account-signing-key-file", type=Path, default=None, metavar="FILE",
                   help="private key (PEM, RSA or ECDSA) that signs service-account tokens "
                        "(default: DATA_DIR/tls/sa.key, made once)")
    p.add_argument("--service-account-key-file", type=Path, action="append", default=[], metavar="FILE",
                   help="public keys (PEM) that verify service-account tokens, repeatable "
                        "(the signing key's always does)")
    p.add_argument("--service-account-issuer", action="append", default=[], metavar="URL",
                   help="issuer of service-account tokens; the first signs, all are accepted, repeatable "
                        "(default https://kubernetes.default.svc.cluster.local)")
    p.add_argument("--api-audiences", default="", metavar="AUD[,AUD]",
                   help="audiences a token must be good for to call the API (default: the issuers)")
    p.add_argument("--service-account-max-token-expiration", type=go_duration, default=0.0, metavar="DURATION",
                   help="longest lifetime of a requested token (default: no cap)")
    p.add_argument("--service-account-jwks-uri", default="", metavar="URL",
                   help="jwks_uri published in /.well-known/openid-configuration (default: ISSUER/openid/v1/jwks)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_kubelet_flags(p: argparse.ArgumentParser, serving_flags: bool = False) -> None:
    if serving_flags:  # a standalone agent brings (or makes) its own serving certificate
        p.add_argument("--tls-cert-file", default=None, help="serving certificate (default: self-signed)")
        p.add_argument("--tls-private-key-file", default=None, help="serving key")
    p.add_argument("--node-name", default=None, help="name of this node (default: the host name)")
    p.add_argument("--node-ip", default=None, help="address of this node (default: of the default route)")
    p.add_argument("--runtime", choices=["auto", "runc", "process"], default="auto",
                   help="container runtime: runc (root and runc installed), process, or auto (default)")
    p.add_argument("--kubelet-port", type=int, default=10250, help="port of the kubelet's HTTPS API (default 10250)")
    from .kubelet.cni import DEFAULT_BIN_DIRS as DEFAULT_CNI_BIN_DIRS

    p.add_argument("--pod-network", choices=["auto", "cni", "host"], default="auto",
                   help="cni: a network namespace per pod wired by CNI plugins (runc only); host: pods share the "
                        "node's network; auto (default): cni with runc, root and the plugins present, else host")
    p.add_argument("--cni-bin-dir", default=":".join(DEFAULT_CNI_BIN_DIRS), metavar="DIRS",
                   help=f"where the CNI plugins are, colon-separated (default {':'.join(DEFAULT_CNI_BIN_DIRS)})")
    p.add_argument("--cni-conf-dir", default=None, metavar="DIR",
                   help="where the generated CNI conflist is written (default DATA_DIR/cni/net.d)")
    p.add_argument("--cluster-dns", default="10.43.0.10", metavar="IPS",
                   help="cluster DNS server(s) pods get with dnsPolicy ClusterFirst, comma-separated "
                        "(default 10.43.0.10; empty: pods fall back to the host's resolver)")
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain (default cluster.local)")
    p.add_argument("--proxy-mode", choices=["auto", "nftables", "iptables", "userspace", "none"], default="auto",
                   help="the node's kube-proxy: auto (default) is nftables if nft works, else iptables, and "
                        "userspace with the process runtime; none runs no proxy")
    p.add_argument("--container-log-max-size", default="10Mi", metavar="QUANTITY",
                   help="rotate a container's log when it reaches this size (default 10Mi; negative: never)")
    p.add_argument("--container-log-max-files", type=int, default=5, metavar="N",
                   help="at most N log files per container, the current one included (default 5; > 1)")


def _agent_network_options(args: argparse.Namespace) -> dict:
    """The AgentConfig fields of the pod network and DNS flags."""
    return {"pod_network": args.pod_network, "cni_bin_dirs": tuple(d for d in args.cni_bin_dir.split(":") if d),
            "cni_conf_dir": Path(args.cni_conf_dir) if args.cni_conf_dir else None,
            "cluster_dns": tuple(ip.strip() for ip in args.cluster_dns.split(",") if ip.strip()),
            "cluster_domain": args.cluster_domain, "proxy_mode": args.proxy_mode,
            "cluster_cidr": getattr(args, "cluster_cidr", None) or "10.42.0.0/16"}


def _apiserver_config(args: argparse.Namespace, data_dir: Path, storage: str):
    from .apiserver.admission import ClusterConfig
    from .apiserver.server import ApiServerConfig
    from .pki import server_pki

    lo, _, hi = args.service_node_port_range.partition("-")
    cluster = ClusterConfig(service_cidr=args.service_cidr, node_port_range=(int(lo), int(hi)))
    advertise = args.advertise_address or (args.bind_address if args.bind_address not in ("0.0.0.0", "::")
                                           else "127.0.0.1")
    pki = server_pki(data_dir / "tls", cluster.kubernetes_service_ip, (advertise, *args.tls_san))
    service_accounts = _service_account_config(args, data_dir / "tls")
    config = ApiServerConfig(
        storage=storage,
        bind_address=args.bind_address,
        port=args.https_port,
        advertise_address=advertise,
        tls_cert=pki.serving.cert,
        tls_key=pki.serving.key,
        client_ca=pki.ca.cert_path,
        token_auth_file=args.token_auth_file,
        kubelet_client_cert=pki.kubelet_client.cert if pki.kubelet_client else None,
        kubelet_client_key=pki.kubelet_client.key if pki.kubelet_client else None,
        cluster=cluster,
        compaction_interval=args.compaction_interval,
        service_accounts=service_accounts,
    )
    return config, pki


def _service_account_config(args: argparse.Namespace, tls_dir: Path):
    """kube-apiserver's service-account flags; the signing key defaults to one made once in ``tls_dir``."""
    from .apiserver.serviceaccounts import ServiceAccountConfig
    from .pki.serviceaccount import DEFAULT_ISSUER, ensure_signing_key

    signing = args.service_account_signing_key_file or ensure_signing_key(tls_dir)[0]
    issuers = tuple(args.service_account_issuer) or (DEFAULT_ISSUER,)
    audiences = tuple(a.strip() for a in args.api_audiences.split(",") if a.strip())
    return ServiceAccountConfig(signing_key_file=signing, key_files=tuple(args.service_account_key_file),
                                issuers=issuers, api_audiences=audiences,
                                max_token_expiration=int(args.service_account_max_token_expiration),
                                jwks_uri=args.service_account_jwks_uri)


def _server_address_defaults(args: argparse.Namespace) -> None:
    """Where ``pinnace server`` listens and what it advertises, when not given.  Pods in
    their own network namespaces reach the API server (the ``kubernetes`` Service) and
    cluster DNS through the addresses advertised in their endpoints, which loopback cannot
    be: then, as k3s, listen on every address and advertise the node's.  Pods on the node's
    network (or no agent) keep everything on loopback."""
    if args.bind_address is not None:
        return
    args.bind_address = "127.0.0.1"
    if args.no_agent or args.advertise_address:
        return
    from .kubelet import cni
    from .kubelet.agent import choose_pod_network, host_ip, runtime_name

    try:
        pod_network = choose_pod_network(args.pod_network, runtime_name(args.runtime),
                                         cni.split_bin_dirs(args.cni_bin_dir))
    except ValueError:
        return  # the agent reports it when it starts
    if pod_network == "cni":
        args.bind_address = "0.0.0.0"
        args.advertise_address = args.node_ip or host_ip()


def cmd_server(args: argparse.Namespace) -> int:
    from .apiserver.server import ApiServer
    from .controllers.manager import run_builtin_controllers
    from .pki import write_kubeconfig

    data_dir = Path(args.data_dir or default_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _server_address_defaults(args)
    config, pki = _apiserver_config(args, data_dir, f"sqlite://{data_dir / 'state.db'}")
    host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "127.0.0.1", "::") else config.bind_address

    async def main(stop: asyncio.Event) -> None:
        server = ApiServer(config)
        await server.start()
        kubeconfig = write_kubeconfig(data_dir / "kubeconfig", f"https://{host}:{server.port}", pki.ca.pem,
                                      pki.admin.cert, pki.admin.key)
        controllers = await run_builtin_controllers(kubeconfig, args.node_monitor_grace_period,
                                                    cluster_signing_cert_file=pki.ca.cert_path,
                                                    cluster_signing_key_file=pki.ca.cert_path.with_name("ca.key"),
                                                    root_ca_file=pki.ca.cert_path,
                                                    service_account_private_key_file=(
                                                        config.service_accounts.signing_key_file
                                                        if config.service_accounts else None),
                                                    **_node_ipam_options(args))
        scheduler = _start_scheduler(kubeconfig, None, leader_elect=False)
        dns = None if args.no_dns else await _start_cluster_dns(args, kubeconfig, server, config)
        simulator = None
        if args.simulate_nodes:
            from .simulate import NodeSimulator

            # Renew leases at a quarter of the grace period (the kubelet's 10 s of 40 s), so a
            # short grace period for tests does not make healthy nodes flap.
            lease_interval = min(10.0, args.node_monitor_grace_period / 4)
            simulator = NodeSimulator(kubeconfig=kubeconfig, count=args.simulate_nodes, lease_interval=lease_interval)
            await simulator.start()
        print(f"Pinnace is running: API server at https://{host}:{server.port} (storage: {data_dir / 'state.db'})",
              flush=True)
        print(f"Kubeconfig written to {kubeconfig}", flush=True)
        print(f"  export KUBECONFIG={kubeconfig}; kubectl get namespaces", flush=True)
        print("  or: pinnace kubectl get namespaces" + (f" --data-dir {data_dir}" if args.data_dir else ""),
              flush=True)
        agent = None
        if not args.no_agent:
            agent = await _start_local_agent(args, data_dir, pki, f"https://{host}:{server.port}")
            print(f"Node {agent.kubelet.node_name} runs pods with the {agent.kubelet.runtime.name} runtime",
                  flush=True)
        await stop.wait()
        print("Shutting down...", flush=True)
        if agent is not None:
            await agent.stop()
        if dns is not None:
            await dns.stop()
        if simulator is not None:
            await simulator.stop()
        await _stop_task(scheduler)
        await controllers.stop()
        await server.stop()

    _setup_logging(args.verbose)
    return _run(main)


async def _start_cluster_dns(args: argparse.Namespace, kubeconfig: Path, server, config):
    """Cluster DNS on the advertise address, published as the endpoints of kube-system/kube-dns
    (the Service's port 53 reaches whatever port it got through kube-proxy)."""
    from .apiserver.bootstrap import publish_dns_endpoints
    from .dns.cache import start_dns

    address = config.advertise_address
    try:
        dns = await start_dns(kubeconfig, address, args.cluster_dns_port, domain=args.cluster_domain)
    except OSError as e:
        if args.cluster_dns_port == 0:
            raise
        log.warning("cluster DNS cannot listen on %s:%d (%s); using a free port", address, args.cluster_dns_port,
                    e.strerror or e)
        dns = await start_dns(kubeconfig, address, 0, domain=args.cluster_domain)
    await publish_dns_endpoints(server.registry, address, dns.port)
    print(f"Cluster DNS for {args.cluster_domain} at {address}:{dns.port} "
          f"(Service kube-system/kube-dns, {config.cluster.dns_service_ip})", flush=True)
    return dns


async def _start_local_agent(args: argparse.Namespace, data_dir: Path, pki, server_url: str):
    """The server's own node: a kubelet with a node certificate issued straight from the CA."""
    from .kubelet.agent import AgentConfig, host_ip, start_agent
    from .pki import kubelet_serving_cert, write_kubeconfig

    node_name = args.node_name or socket.gethostname().lower()
    node_ip = args.node_ip or host_ip()
    tls = data_dir / "tls"
    client = pki.ca.issue_to_files(tls, "kubelet-client", f"system:node:{node_name}", ("system:nodes",),
                                   client=True)
    kubeconfig = write_kubeconfig(data_dir / "kubelet.kubeconfig", server_url, pki.ca.pem, client.cert, client.key,
                                  user=f"system:node:{node_name}")
    serving = kubelet_serving_cert(pki.ca, tls, node_name, (node_ip,))
    return await start_agent(AgentConfig(kubeconfig=kubeconfig, data_dir=data_dir / "agent", node_name=node_name,
                                         serving_cert=serving.cert, serving_key=serving.key,
                                         client_ca=pki.ca.cert_path, runtime=args.runtime, node_ip=node_ip,
                                         port=args.kubelet_port, **_agent_network_options(args),
                                         container_log_max_size=args.container_log_max_size,
                                         container_log_max_files=args.container_log_max_files))


def cmd_kubelet(args: argparse.Namespace) -> int:
    """A kubelet against an existing cluster, with its own kubeconfig and serving certificate."""
    from .kubelet.agent import start_agent

    data_dir = Path(args.data_dir or default_data_dir() / "agent").expanduser().resolve()
    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubelet.kubeconfig"))
    node_name = args.node_name or socket.gethostname().lower()

    async def main(stop: asyncio.Event) -> None:
        agent = await start_agent(_agent_config(args, kubeconfig, data_dir, node_name, Path(args.client_ca_file),
                                                serving))
        _release_free_memory()
        await stop.wait()
        await agent.stop()

    if not args.client_ca_file:
        print("error: --client-ca-file is required (the CA whose certificates may call this kubelet)",
              file=sys.stderr)
        return 2
    _setup_logging(args.verbose)
    try:
        cert, key = _in_child(lambda: [str(p) for p in _kubelet_serving_files(args, data_dir, node_name)])
    except CredentialsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    serving = (Path(cert), Path(key))
    return _run(main)


def _agent_config(args: argparse.Namespace, kubeconfig: Path, data_dir: Path, node_name: str, client_ca: Path,
                  serving: tuple[Path, Path]):
    from .kubelet.agent import AgentConfig

    cert, key = serving
    return AgentConfig(kubeconfig=kubeconfig, data_dir=data_dir, node_name=node_name, serving_cert=cert,
                       serving_key=key, client_ca=client_ca, runtime=args.runtime, node_ip=args.node_ip or "",
                       port=args.kubelet_port, **_agent_network_options(args),
                       container_log_max_size=args.container_log_max_size,
                       container_log_max_files=args.container_log_max_files)


def _kubelet_serving_files(args: argparse.Namespace, data_dir: Path, node_name: str) -> tuple[Path, Path]:
    """--tls-cert-file/--tls-private-key-file, else a self-signed pair as the kubelet makes one."""
    if args.tls_cert_file and args.tls_private_key_file:
        return Path(args.tls_cert_file), Path(args.tls_private_key_file)
    from .pki import CertificateAuthority, kubelet_serving_cert

    own = CertificateAuthority.load_or_create(data_dir / "pki", common_name=f"{node_name}-ca")
    pair = kubelet_serving_cert(own, data_dir / "pki", node_name, (args.node_ip,) if args.node_ip else ())
    return pair.cert, pair.key


def cmd_agent(args: argparse.Namespace) -> int:
    """Join a cluster with a token (TLS bootstrap), then run the kubelet."""
    from .kubelet.agent import start_agent

    data_dir = Path(args.data_dir or default_data_dir() / "agent").expanduser().resolve()
    node_name = args.node_name or socket.gethostname().lower()

    def join() -> list[str]:
        from .kubelet.bootstrap import BootstrapError, bootstrap

        try:
            kubeconfig = asyncio.run(bootstrap(args.server, args.token, data_dir, node_name))
        except BootstrapError as e:
            raise CredentialsError(str(e)) from e
        return [str(kubeconfig), *map(str, _kubelet_serving_files(args, data_dir, node_name))]

    async def main(stop: asyncio.Event) -> None:
        agent = await start_agent(_agent_config(args, Path(kubeconfig), data_dir, node_name, data_dir / "ca.crt",
                                                (Path(cert), Path(key))))
        _release_free_memory()
        print(f"Node {node_name} joined {args.server}; runtime {agent.kubelet.runtime.name}", flush=True)
        await stop.wait()
        await agent.stop()

    _setup_logging(args.verbose)
    try:
        kubeconfig, cert, key = _in_child(join)
    except CredentialsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return _run(main)


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the system once a node agent has started: compiling
    its modules and the first lists leave megabytes free but resident."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class CredentialsError(Exception):
    """A node's credentials could not be made; the message says why."""


def _in_child(work: Callable[[], list[str]]) -> list[str]:
    """``work()`` run in a forked child, its result back through a pipe: what makes or checks a
    node's certificates (the TLS bootstrap, the serving certificate) loads cryptography, ~9 MB the
    agent would keep resident for nothing.  CredentialsError carries the child's error.  Inline
    when threads run (a fork would copy their held locks)."""
    import threading

    if threading.active_count() > 1:
        return work()
    import json

    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(r)
        code = 0
        try:
            _exit_with_parent(parent)
            out: dict = {"result": work()}
        except CredentialsError as e:
            out, code = {"error": str(e)}, 1
        except BaseException as e:
            import traceback

            traceback.print_exc()
            out, code = {"error": f"{type(e).__name__}: {e}"}, 1
        try:
            with os.fdopen(w, "wb") as f:
                f.write(json.dumps(out).encode())
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            data = f.read()
    finally:
        os.waitpid(pid, 0)
    out = json.loads(data or b"{}")
    if "result" not in out:
        raise CredentialsError(out.get("error") or "the credentials process died")
    return out["result"]


def _exit_with_parent(parent: int) -> None:
    """SIGTERM this (forked) process when its parent dies, as the agent's own stop would."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def cmd_apiserver(args: argparse.Namespace) -> int:
    from .apiserver.server import ApiServer
    from .pki import write_kubeconfig

    data_dir = Path(args.data_dir or default_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite://{data_dir / 'state.db'}"
    args.bind_address = args.bind_address or "127.0.0.1"
    config, pki = _apiserver_config(args, data_dir, storage)

    async def main(stop: asyncio.Event) -> None:
        server = ApiServer(config)
        await server.start()
        host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "127.0.0.1", "::") else config.bind_address
        kubeconfig = write_kubeconfig(data_dir / "kubeconfig", f"https://{host}:{server.port}", pki.ca.pem,
                                      pki.admin.cert, pki.admin.key)
        print(f"API server at https://{host}:{server.port} on {storage}; kubeconfig: {kubeconfig}", flush=True)
        await stop.wait()
        await server.stop()

    _setup_logging(args.verbose)
    return _run(main)


def _start_scheduler(kubeconfig: Path, config: dict | None, leader_elect: bool,
                     timing: dict[str, float] | None = None) -> asyncio.Task[None]:
    """The scheduler talks to the API server over HTTP, like every other component."""
    from .client.rest import RestClient
    from .scheduler.scheduler import run_scheduler

    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-scheduler")

    async def run() -> None:
        try:
            await run_scheduler(client, config, leader_elect=leader_elect, **(timing or {}))
        finally:
            await client.close()

    return asyncio.create_task(run(), name="scheduler")


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def cmd_scheduler(args: argparse.Namespace) -> int:
    import yaml

    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubeconfig"))
    config = yaml.safe_load(Path(args.config).read_text()) if args.config else None
    timing = _leader_election_timing(args)

    async def main(stop: asyncio.Event) -> None:
        task = _start_scheduler(kubeconfig, config, leader_elect=args.leader_elect, timing=timing)
        done, _ = await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # surface a crash
        await _stop_task(task)

    _setup_logging(args.verbose)
    return _run(main)


def cmd_controller_manager(args: argparse.Namespace) -> int:
    from .controllers.manager import run_builtin_controllers, run_leader_elected

    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubeconfig"))
    timing = _leader_election_timing(args)
    if (args.cluster_signing_cert_file is None) != (args.cluster_signing_key_file is None):
        raise SystemExit("error: --cluster-signing-cert-file and --cluster-signing-key-file go together")
    # Passed only when set: without them the CSR signer does not run, as upstream.
    signing = {"cluster_signing_cert_file": args.cluster_signing_cert_file,
               "cluster_signing_key_file": args.cluster_signing_key_file} if args.cluster_signing_cert_file else {}
    # The tokens controller runs only with a signing key; the root CA defaults to the kubeconfig's.
    signing.update(root_ca_file=args.root_ca_file,
                   service_account_private_key_file=args.service_account_private_key_file)

    async def main(stop: asyncio.Event) -> None:
        if not args.leader_elect:
            controllers = await run_builtin_controllers(kubeconfig, args.node_monitor_grace_period, **signing,
                                                        **_node_ipam_options(args))
            await stop.wait()
            await controllers.stop()
            return
        task = asyncio.create_task(run_leader_elected(
            kubeconfig, node_monitor_grace_period=args.node_monitor_grace_period, **timing, **signing,
            **_node_ipam_options(args)))
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        await _stop_task(task)

    _setup_logging(args.verbose)
    return _run(main)


def cmd_simulate_nodes(args: argparse.Namespace) -> int:
    from .simulate import NodeSimulator, parse_labels, parse_taints

    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubeconfig"))
    try:
        labels, taints = parse_labels(args.labels), parse_taints(args.taints)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    async def main(stop: asyncio.Event) -> None:
        sim = NodeSimulator(kubeconfig=kubeconfig, count=args.count, name_prefix=args.name_prefix,
                            index_offset=args.index_offset, cpu=args.cpu, memory=args.memory, pods=args.pods,
                            labels=labels, taints=taints, zones=args.zones, start_delay=args.start_delay,
                            lease_interval=args.lease_interval, status_interval=args.status_interval,
                            max_in_flight=args.max_in_flight, delete_grace_cap=args.delete_grace_cap,
                            delete_nodes_on_exit=args.delete_nodes_on_exit)
        # Ctrl-C during a long registration (or an API server that is not up yet) must still stop cleanly.
        started, stopped = asyncio.create_task(sim.start()), asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                started.result()
                await stopped
        finally:
            started.cancel()
            stopped.cancel()
            await sim.stop()

    _setup_logging(args.verbose)
    return _run(main)


def cmd_dns(args: argparse.Namespace) -> int:
    """Cluster DNS from the API server's Services and EndpointSlices."""
    from .dns import start_dns
    from .dns.server import parse_upstream

    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubeconfig"))
    try:
        for u in args.upstream or ():
            parse_upstream(u)
    except ValueError as e:
        print(f"error: --upstream: {e}", file=sys.stderr)
        return 2

    async def main(stop: asyncio.Event) -> None:
        dns = await start_dns(kubeconfig, args.bind_address, args.port, args.cluster_domain, args.upstream or None)
        print(f"DNS for {args.cluster_domain} on {args.bind_address}:{dns.port} (UDP, TCP)", flush=True)
        try:
            await stop.wait()
        finally:
            await dns.stop()

    _setup_logging(args.verbose)
    return _run(main)


def cmd_proxy(args: argparse.Namespace) -> int:
    """kube-proxy: Services as nftables/iptables rules or a userspace proxy, for one node."""
    from .proxy import start_proxy

    kubeconfig = Path(args.kubeconfig or (default_data_dir() / "kubeconfig"))
    node_name = args.node_name or socket.gethostname().lower()

    async def main(stop: asyncio.Event) -> None:
        proxy = await start_proxy(kubeconfig, node_name, args.proxy_mode, cluster_cidr=args.cluster_cidr or None,
                                  pod_bridge=args.pod_bridge or None, pod_cidr=args.pod_cidr,
                                  node_ips=args.node_ip or (), min_sync_period=args.min_sync_period,
                                  full_sync_period=args.sync_period)
        print(f"Proxy for node {node_name} in {proxy.mode} mode", flush=True)
        try:
            await stop.wait()
        finally:
            await proxy.stop()

    _setup_logging(args.verbose)
    return _run(main)


# -- kubectl ---------------------------------------------------------------------------


def cmd_kubectl(argv: list[str]) -> int:
    data_dir = default_data_dir()
    rest = []
    i = 0
    while i < len(argv):  # --data-dir is ours; everything else is kubectl's
        if argv[i] == "--data-dir" and i + 1 < len(argv):
            data_dir = Path(argv[i + 1])
            i += 2
            continue
        if argv[i].startswith("--data-dir="):
            data_dir = Path(argv[i].split("=", 1)[1])
            i += 1
            continue
        rest.append(argv[i])
        i += 1
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("error: kubectl is not installed or not on PATH.\n"
              "Install it (https://kubernetes.io/docs/tasks/tools/), or use any Kubernetes client with\n"
              f"  KUBECONFIG={data_dir / 'kubeconfig'}", file=sys.stderr)
        return 127
    kubeconfig = data_dir / "kubeconfig"
    if not kubeconfig.exists():
        print(f"error: no kubeconfig at {kubeconfig}: start the cluster first with `pinnace server`"
              + (f" --data-dir {data_dir}" if os.environ.get("PINNACE_DATA_DIR") is None else ""), file=sys.stderr)
        return 1
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    os.execvpe(kubectl, [kubectl, *rest], env)
    return 0  # pragma: no cover - exec does not return


def cmd_image(args: argparse.Namespace) -> int:
    from .images.cli import run  # lazy: the other commands do not need the image code

    if not getattr(args, "image_command", None):
        print("usage: pinnace image {import,ls,rm,pull} ... (see pinnace image -h)", file=sys.stderr)
        return 2
    return run(args, Path(args.data_dir) if args.data_dir else default_data_dir())


def cmd_token(args: argparse.Namespace) -> int:
    from .kubelet.tokens import run  # lazy: only this command needs the token code

    if not getattr(args, "token_command", None):
        print("usage: pinnace token {create,list} ... (see pinnace token -h)", file=sys.stderr)
        return 2
    return run(args, Path(args.data_dir) if args.data_dir else default_data_dir())


def cmd_version(args: argparse.Namespace) -> int:
    from . import __version__
    from .api.schema import KUBERNETES_VERSION

    print(f"pinnace {__version__} (Kubernetes API v{KUBERNETES_VERSION})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinnace", description="A Kubernetes-compatible orchestrator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("server", help="run a single-node cluster (control plane, plus a node agent)")
    p.add_argument("--data-dir", default=None,
                   help=f"state, certificates and kubeconfig (default {default_data_dir()})")
    p.add_argument("--no-agent", action="store_true", help="run the control plane only")
    p.add_argument("--no-dns", action="store_true", help="run no cluster DNS server")
    p.add_argument("--cluster-dns-port", type=int, default=53, metavar="PORT",
                   help="port the cluster DNS server listens on, at the advertise address (default 53; taken or "
                        "0: a free port, which the kube-dns endpoints carry)")
    _add_kubelet_flags(p)
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                   help="seconds without heartbeats before a node becomes Ready=Unknown (default 40)")
    p.add_argument("--simulate-nodes", type=int, default=0, metavar="N",
                   help="also run N simulated nodes (no containers; see `pinnace simulate-nodes`)")
    _add_apiserver_flags(p)
    _add_node_ipam_flags(p)
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("apiserver", help="run the API server alone")
    p.add_argument("--data-dir", default=None, help="certificates and kubeconfig (and the SQLite file by default)")
    p.add_argument("--storage", default=None, help="sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT]")
    _add_apiserver_flags(p)
    p.set_defaults(func=cmd_apiserver)

    p = sub.add_parser("scheduler", help="run the scheduler against an API server")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--config", default=None, help="KubeSchedulerConfiguration file (YAML)")
    _add_leader_election_flags(p, "kube-scheduler")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("controller-manager", help="run the controllers against an API server")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    _add_leader_election_flags(p, "kube-controller-manager")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                   help="seconds without heartbeats before a node becomes Ready=Unknown (default 40)")
    p.add_argument("--cluster-signing-cert-file", type=Path, default=None, metavar="FILE",
                   help="CA certificate (PEM) that signs kubelet client certificates (CSR signer)")
    p.add_argument("--cluster-signing-key-file", type=Path, default=None, metavar="FILE",
                   help="private key (PEM) of --cluster-signing-cert-file")
    p.add_argument("--root-ca-file", type=Path, default=None, metavar="FILE",
                   help="CA published as kube-root-ca.crt and put in token Secrets (default: the kubeconfig's CA)")
    p.add_argument("--service-account-private-key-file", type=Path, default=None, metavar="FILE",
                   help="private key (PEM) that signs legacy service-account token Secrets (tokens controller)")
    p.add_argument("-v", "--verbose", action="store_true")
    _add_node_ipam_flags(p)
    p.set_defaults(func=cmd_controller_manager)

    p = sub.add_parser("simulate-nodes", help="run N simulated nodes (kwok-style) against an API server")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--count", type=int, required=True, help="how many nodes")
    p.add_argument("--name-prefix", default="sim-node-", help="node names are PREFIX0..PREFIX{N-1}")
    p.add_argument("--index-offset", type=int, default=0,
                   help="first node index (several simulators: disjoint names, CIDRs and IPs)")
    p.add_argument("--cpu", default="32", help="cpu capacity per node")
    p.add_argument("--memory", default="256Gi", help="memory capacity per node")
    p.add_argument("--pods", type=int, default=110, help="pod capacity per node")
    p.add_argument("--labels", default="", help="extra node labels: k=v,k2=v2")
    p.add_argument("--taints", default="", help="node taints: key=value:Effect,key:Effect")
    p.add_argument("--zones", type=int, default=3, help="spread nodes over zone-0..zone-{Z-1}")
    p.add_argument("--start-delay", type=float, default=0.5,
                   help="seconds from binding to Running (per pod: annotation sim.pinnace.io/start-delay)")
    p.add_argument("--lease-interval", type=float, default=10.0, help="seconds between lease renewals")
    p.add_argument("--status-interval", type=float, default=60.0, help="seconds between node status heartbeats")
    p.add_argument("--max-in-flight", type=int, default=16, help="concurrent API requests")
    p.add_argument("--delete-grace-cap", type=float, default=1.0,
                   help="longest a deleted pod takes to shut down (its grace period, capped)")
    p.add_argument("--delete-nodes-on-exit", action="store_true", help="delete the nodes and leases on exit")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_simulate_nodes)

    p = sub.add_parser("dns", help="run the cluster DNS server against an API server")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--bind-address", default="0.0.0.0", help="address to serve DNS on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=53, help="UDP and TCP port (default 53; 0 picks a free one)")
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain (default cluster.local)")
    p.add_argument("--upstream", action="append", default=None, metavar="IP[:PORT]",
                   help="resolver for names outside the cluster domain (repeatable; default: /etc/resolv.conf's)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_dns)

    p = sub.add_parser("proxy", help="run kube-proxy for a node (Service rules) against an API server")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--node-name", default=None, help="this node's name (default: the host name)")
    p.add_argument("--proxy-mode", choices=["auto", "nftables", "iptables", "userspace", "none"], default="auto",
                   help="auto (default): nftables if nft works, else iptables, else userspace")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16",
                   help="the pod network: cluster-IP traffic from outside it is masqueraded (default 10.42.0.0/16)")
    p.add_argument("--pod-bridge", default="cni0", help="bridge of the node's pods (default cni0)")
    p.add_argument("--pod-cidr", default=None, help="this node's pod CIDR (default: the Node's spec.podCIDR)")
    p.add_argument("--node-ip", action="append", default=None, metavar="IP",
                   help="address for userspace NodePorts (repeatable; default: the Node's addresses)")
    p.add_argument("--min-sync-period", type=go_duration, default=0.5, metavar="DURATION",
                   help="shortest time between two syncs; bursts of changes coalesce (default 500ms)")
    p.add_argument("--sync-period", type=go_duration, default=3600.0, metavar="DURATION",
                   help="time between full resyncs (default 1h)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("kubelet", help="run a node agent (kubelet) with an existing kubeconfig")
    p.add_argument("--kubeconfig", default=None, help="the node's kubeconfig (default DATA_DIR/../kubelet.kubeconfig)")
    p.add_argument("--data-dir", default=None, help="where pods, images and logs live")
    p.add_argument("--client-ca-file", default=None, help="CA of the API server's kubelet-client certificate")
    _add_kubelet_flags(p, serving_flags=True)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_kubelet)

    p = sub.add_parser("agent", help="join a cluster with a token and run a node agent")
    p.add_argument("--server", required=True, help="API server URL, https://HOST:PORT")
    p.add_argument("--token", required=True, help="join token from `pinnace token create`")
    p.add_argument("--data-dir", default=None, help="where credentials, pods, images and logs live")
    _add_kubelet_flags(p, serving_flags=True)
    p.add_argument("--cluster-cidr", default="10.42.0.0/16",
                   help="the cluster's pod network, for the proxy's masquerade rules (default 10.42.0.0/16)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("image", help="manage the node's images (import, ls, rm, pull)")
    isub = p.add_subparsers(dest="image_command", metavar="ACTION")
    ip = isub.add_parser("import", help="import an OCI layout dir, OCI archive or docker-archive tar")
    ip.add_argument("path", help="archive file or OCI layout directory")
    ip.add_argument("--name", default=None, help="name the image REF (default: the name in the archive)")
    ip = isub.add_parser("ls", help="list images")
    ip.add_argument("-o", "--output", choices=["table", "json"], default="table")
    ip = isub.add_parser("rm", help="remove an image reference (or image ID) and its unused content")
    ip.add_argument("ref")
    ip = isub.add_parser("pull", help="pull an image from a registry")
    ip.add_argument("ref")
    ip.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                    help="talk plain HTTP to this registry (repeatable)")
    for ip in isub.choices.values():
        ip.add_argument("--data-dir", default=None, help=f"node data directory (default {default_data_dir()})")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("token", help="manage bootstrap tokens for joining nodes (create, list)")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION")
    tp = tsub.add_parser("create", help="create a bootstrap token; prints the join token K10<ca-hash>::<id>.<secret>")
    tp.add_argument("--ttl", type=go_duration, default=86400.0, metavar="DURATION",
                    help="lifetime (default 24h; 0 = never expires)")
    tp.add_argument("--description", default="", help="a human-readable note stored with the token")
    tp.add_argument("--groups", action="append", default=None, metavar="GROUP",
                    help="extra group, system:bootstrappers:... (repeatable; "
                         "default system:bootstrappers:pinnace:default-node-token)")
    tsub.add_parser("list", help="list bootstrap tokens (ID, TTL, EXPIRES, ...)")
    for tp in tsub.choices.values():
        tp.add_argument("--data-dir", default=None, help=f"server data directory (default {default_data_dir()})")
        tp.add_argument("--kubeconfig", default=None, help="admin kubeconfig (default DATA_DIR/kubeconfig)")
    p.set_defaults(func=cmd_token)

    sub.add_parser("kubectl", help="run kubectl against this cluster (pinnace kubectl get pods)", add_help=False)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "kubectl":
        return cmd_kubectl(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
