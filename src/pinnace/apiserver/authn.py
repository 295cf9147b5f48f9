"""Authentication: x509 client certificates (CN = user, O = groups), static
bearer tokens, bootstrap tokens (``<id>.<secret>`` checked against the Secret
``kube-system/bootstrap-token-<id>``) and service-account JWTs (bound and legacy;
:mod:`pinnace.apiserver.serviceaccounts`).  Health and version endpoints, and a GET of
the kube-public/cluster-info ConfigMap (how a joining node finds the CA), are open
to anonymous callers, as in Kubernetes; anything else without credentials gets 401."""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hmac
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..pki import peer_subject
from . import errors

if TYPE_CHECKING:
    from .registry import Registry
    from .serviceaccounts import ServiceAccountTokens

log = logging.getLogger(__name__)

ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")
# kubeadm grants system:anonymous exactly this read; a joiner needs it before it trusts the CA.
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
USER = web.RequestKey("user", dict)

# Bootstrap tokens (k8s.io/cluster-bootstrap/token/api).
BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_NAMESPACE = "kube-system"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_GROUP = "system:bootstrappers"
BOOTSTRAP_EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    # user.Info's Extra (e.g. the pod a service-account token is bound to).
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "uid": self.uid, "groups": list(self.groups)}
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


@dataclass(frozen=True)
class TokenResult:
    """What a bearer token authenticates as: the user (None: not authenticated), the
    audiences it was accepted for, and why it was refused."""
    user: User | None
    audiences: tuple[str, ...] = ()
    error: str = ""


def load_token_file(path: str | Path) -> dict[str, User]:
    """Kubernetes' static token file: ``token,user,uid[,"group1,group2"]`` per line."""
    tokens: dict[str, User] = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}: each line needs token,user,uid[,groups]")
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            tokens[row[0].strip()] = User(row[1].strip(), row[2].strip(), groups)
    return tokens


def secret_value(secret: dict[str, Any], key: str) -> str | None:
    """A Secret's value as text: ``data`` (base64) wins; ``stringData`` too, because this
    server stores it as sent instead of merging it into ``data``."""
    raw = (secret.get("data") or {}).get(key)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    value = (secret.get("stringData") or {}).get(key)
    return value if isinstance(value, str) else None


def parse_rfc3339(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def bootstrap_token_user(secret: dict[str, Any], token_id: str, token_secret: str,
                         now: dt.datetime | None = None) -> User | None:
    """The user ``<token_id>.<token_secret>`` authenticates as by ``secret``, or None when
    that Secret does not vouch for it (wrong type or id, usage off, expired, being
    deleted, bad extra groups, wrong secret) -- the rules of the upstream authenticator."""
    meta = secret.get("metadata") or {}
    if secret.get("type") != BOOTSTRAP_SECRET_TYPE or meta.get("name") != BOOTSTRAP_SECRET_PREFIX + token_id:
        return None
    if meta.get("deletionTimestamp"):
        return None
    if secret_value(secret, "token-id") != token_id:
        return None
    stored = secret_value(secret, "token-secret") or ""
    # Constant time: the id is public, so only the secret's bytes must not leak by timing.
    if not hmac.compare_digest(stored.encode(), token_secret.encode()):
        return None
    if secret_value(secret, "usage-bootstrap-authentication") != "true":
        return None
    expiration = secret_value(secret, "expiration")
    if expiration:
        try:
            expired = parse_rfc3339(expiration) <= (now or dt.datetime.now(dt.UTC))
        except ValueError:
            expired = True  # an unreadable expiration must not mean "forever"
        if expired:
            return None
    extra = [g.strip() for g in (secret_value(secret, "auth-extra-groups") or "").split(",") if g.strip()]
    if any(not BOOTSTRAP_EXTRA_GROUP_RE.match(g) for g in extra):
        return None  # upstream refuses the token rather than dropping a bad group
    groups = (BOOTSTRAP_GROUP, *dict.fromkeys(g for g in extra if g != BOOTSTRAP_GROUP), "system:authenticated")
    return User(BOOTSTRAP_USER_PREFIX + token_id, "", groups)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class Authenticator:
    def __init__(self, tokens: dict[str, User] | None = None, registry: Registry | None = None,
                 service_accounts: ServiceAccountTokens | None = None):
        self.tokens = tokens or {}
        # Where bootstrap token Secrets are read (the API server passes its registry).
        self.registry = registry
        # Service-account JWTs; None when the server signs none (then they are refused).
        self.service_accounts = service_accounts

    @property
    def api_audiences(self) -> tuple[str, ...]:
        """The audiences a token must be good for to call this API server (``--api-audiences``)."""
        return self.service_accounts.api_audiences if self.service_accounts is not None else ()

    async def user_for_bootstrap_token(self, token: str, registry: Registry | None) -> User | None:
        m = BOOTSTRAP_TOKEN_RE.match(token)
        if m is None or registry is None:
            return None
        rtype = registry.resources.get("", "v1", "secrets")
        if rtype is None:
            return None
        try:
            # From storage, not the watch cache: a token created a moment ago must work.
            secret, _ = await registry.read(rtype, BOOTSTRAP_NAMESPACE, BOOTSTRAP_SECRET_PREFIX + m.group(1))
        except errors.ApiError as e:
            if e.code != 404:
                log.warning("bootstrap token %s: cannot read its Secret: %s", m.group(1), e)
            return None
        return bootstrap_token_user(secret, m.group(1), m.group(2))

    def user_for_token(self, token: str) -> User | None:
        for known, user in self.tokens.items():
            if hmac.compare_digest(known, token):
                return user
        return None

    async def authenticate_token(self, token: str, audiences: tuple[str, ...] = ()) -> TokenResult:
        """A bearer token, for ``audiences`` (default: the API audiences).  Static and
        bootstrap tokens are audience-agnostic: they are good for the API audiences only."""
        implicit = self.api_audiences
        wanted = tuple(audiences) or implicit
        agnostic = tuple(a for a in wanted if a in implicit) if implicit and audiences else wanted
        user = self.user_for_token(token)
        if user is None and BOOTSTRAP_TOKEN_RE.match(token):
            user = await self.user_for_bootstrap_token(token, self.registry)
        if user is not None:
            if "system:authenticated" not in user.groups:
                user = User(user.name, user.uid, (*user.groups, "system:authenticated"), user.extra)
            if implicit and audiences and not agnostic:
                return TokenResult(None, (), "token audiences are invalid for the target audiences")
            return TokenResult(user, agnostic)
        if self.service_accounts is not None:
            from ..pki.serviceaccount import InvalidToken

            try:
                found = await self.service_accounts.authenticate(token, wanted)
            except InvalidToken as e:
                log.debug("service-account token refused: %s", e)
                return TokenResult(None, (), f"[invalid bearer token, {e}]")
            if found is not None:
                return TokenResult(found[0], found[1])
        return TokenResult(None, (), "invalid bearer token")

    def user_for_certificate(self, request: web.Request) -> User | None:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport else None
        if peercert:
            cn, orgs = peer_subject(peercert)
            if cn:
                return User(cn, "", (*orgs, "system:authenticated"))
        return None

    async def authenticate(self, request: web.Request) -> User | None:
        token = _bearer(request)
        if token is not None:
            # A bad token is refused even if a certificate came too.
            return (await self.authenticate_token(token)).user
        return self.user_for_certificate(request)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        user = await self.authenticate(request)
        if user is None:
            if request.path in ANONYMOUS_PATHS or request.path.startswith(("/readyz/", "/livez/", "/healthz/")) or (
                    _anonymous_cluster_info(request)):
                request[USER] = User("system:anonymous", "", ("system:unauthenticated",)).as_dict()
                return await handler(request)
            err = errors.unauthorized()
            return web.json_response(err.status(), status=401)
        request[USER] = user.as_dict()
        return await handler(request)


def _anonymous_cluster_info(request: web.Request) -> bool:
    """A credential-less GET (not a watch) of kube-public/cluster-info."""
    return (request.method == "GET" and request.path == CLUSTER_INFO_PATH and "Authorization" not in request.headers
            and request.query.get("watch") not in ("true", "1"))
