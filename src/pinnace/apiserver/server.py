"""Assembling and running the API server: storage, watch cache, registry, HTTP app, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ..api.resources import BUILTIN, ResourceRegistry
from ..storage.base import KeyExists, Store, open_store
from . import bootstrap
from .admission import ClusterConfig
from .authn import Authenticator, User, load_token_file
from .endpointreconciler import EndpointReconciler
from .handlers import MAX_BODY, ApiHandlers, version_info
from .podproxy import PodProxy
from .registry import Registry
from .serviceaccounts import JWKS_PATH, OPENID_CONFIG_PATH, ServiceAccountConfig, ServiceAccountTokens
from .watchcache import WatchCache

log = logging.getLogger(__name__)


@dataclass
class ApiServerConfig:
    storage: str
    bind_address: str = "127.0.0.1"
    port: int = 6443
    advertise_address: str = "127.0.0.1"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    token_auth_file: Path | None = None
    # The API server's client certificate towards kubelets (pods/log); None: pods/log answers 503.
    kubelet_client_cert: Path | None = None
    kubelet_client_key: Path | None = None
    # Verifies kubelets' serving certificates; None: the client CA (the cluster CA).
    kubelet_certificate_authority: Path | None = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # Service-account tokens (TokenRequest, JWT authentication, OIDC discovery, the
    # ServiceAccount admission plugin); None: none of them.
    service_accounts: ServiceAccountConfig | None = None
    # Compaction keeps the history of the last interval, as Kubernetes does.
    compaction_interval: float = 300.0
    # This server's identity Lease (kube-system/apiserver-<id>) lives this long and is renewed,
    # and the kubernetes Service's endpoints reconciled, every interval.
    endpoint_lease_duration: float = 15.0
    endpoint_reconcile_interval: float = 5.0


class ApiServer:
    def __init__(self, config: ApiServerConfig, store: Store | None = None):
        self.config = config
        self.store = store or open_store(config.storage)
        self.cache = WatchCache(self.store)
        self.resources = ResourceRegistry(list(BUILTIN))
        self.registry = Registry(self.store, self.cache, self.resources, config.cluster)
        tokens = load_token_file(config.token_auth_file) if config.token_auth_file else {}
        self.authenticator = Authenticator(tokens, self.registry)
        self.service_accounts: ServiceAccountTokens | None = None
        if config.service_accounts is not None:
            self.service_accounts = ServiceAccountTokens(config.service_accounts, self.registry)
            self.authenticator.service_accounts = self.service_accounts
            self.registry.admission.service_accounts = self.service_accounts
        self.handlers = ApiHandlers(self.registry, f"{config.advertise_address}:{config.port}", version_info(),
                                    self.authenticator)
        self.handlers.pod_proxy = PodProxy(self.registry, config.kubelet_client_cert, config.kubelet_client_key,
                                           config.kubelet_certificate_authority)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.endpoint_reconciler: EndpointReconciler | None = None
        self.port = config.port

    def add_token(self, token: str, user: User) -> None:
        self.authenticator.tokens[token] = user

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.authenticator.middleware], client_max_size=MAX_BODY + 1024)
        if self.service_accounts is not None:
            app.router.add_get(OPENID_CONFIG_PATH, self._openid_configuration)
            app.router.add_get(JWKS_PATH, self._jwks)
        app.router.add_route("*", "/{tail:.*}", self.handlers.handle)
        return app

    async def _openid_configuration(self, request: web.Request) -> web.StreamResponse:
        assert self.service_accounts is not None
        doc = self.service_accounts.openid_configuration()
        if doc is None:  # no https issuer and no --service-account-jwks-uri: not served, as upstream
            return await self.handlers.handle(request)
        return web.json_response(doc, headers={"Cache-Control": "public, max-age=3600"})

    async def _jwks(self, request: web.Request) -> web.Response:
        assert self.service_accounts is not None
        return web.json_response(self.service_accounts.jwks(), content_type="application/jwk-set+json",
                                 headers={"Cache-Control": "public, max-age=3600"})

    def ssl_context(self) -> ssl.SSLContext | None:
        c = self.config
        if not c.tls_cert or not c.tls_key:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(c.tls_cert), str(c.tls_key))
        if c.client_ca:
            ctx.load_verify_locations(str(c.client_ca))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    async def start(self) -> None:
        await self.cache.start()
        await bootstrap.ensure_defaults(self.registry, self.config)
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind_address, self.config.port, ssl_context=self.ssl_context(),
                           backlog=1024, reuse_address=True)
        await site.start()
        if self.config.port == 0:
            server = site._server
            assert server is not None and server.sockets  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        # Now that the port is known: this server into the kubernetes Service's endpoints.
        self.endpoint_reconciler = EndpointReconciler(
            self.registry, self.config.advertise_address, self.port,
            lease_duration=self.config.endpoint_lease_duration, interval=self.config.endpoint_reconcile_interval)
        await self.endpoint_reconciler.start()
        self.handlers.ready = True
        self._tasks.append(asyncio.create_task(self._compact_periodically(), name="compaction"))
        log.info("API server listening on https://%s:%d", self.config.bind_address, self.port)

    async def _compact_periodically(self) -> None:
        previous = await self.store.current_revision()
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                current = await self.store.current_revision()
                if previous:
                    await self.store.compact(previous)
                    self.cache.forget_before(previous)
                previous = current
            except Exception:
                log.exception("compaction failed")

    async def stop(self) -> None:
        self.handlers.ready = False
        if self.endpoint_reconciler is not None:
            await self.endpoint_reconciler.stop()  # its Lease and address go while storage still works
            self.endpoint_reconciler = None
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.cache.close_watchers()  # lets open watch responses finish at once
        await self.handlers.pod_proxy.close()  # and followed logs
        if self._runner:
            await self._runner.cleanup()
        await self.cache.stop()
        await self.store.close()


__all__ = ["ApiServer", "ApiServerConfig", "KeyExists"]
