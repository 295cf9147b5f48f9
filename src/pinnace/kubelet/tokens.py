"""Bootstrap tokens for joining nodes: the ``pinnace token create/list`` logic and the
join-token format.

A bootstrap token is ``<id>.<secret>`` (``[a-z0-9]{6}.[a-z0-9]{16}``), stored as the
Secret ``kube-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token``,
as kubeadm does.  What a node is given to join is k3s' *secure* token format::

    K10<ca-hash>::<id>.<secret>

``<ca-hash>`` is the lowercase hex SHA-256 of the cluster CA certificate's **DER**
encoding (its usual "fingerprint"; what k3s uses for custom CAs).  DER, not PEM, so
line wrapping or a trailing newline in a copy of the CA cannot change the hash.  A
joiner also accepts the SHA-256 of the PEM bytes it was served (k3s' self-signed-CA
hash), so tokens minted by k3s-style tooling work too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..api.times import format_time as rfc3339
from ..apiserver.authn import (
    BOOTSTRAP_EXTRA_GROUP_RE,
    BOOTSTRAP_NAMESPACE,
    BOOTSTRAP_SECRET_PREFIX,
    BOOTSTRAP_SECRET_TYPE,
    BOOTSTRAP_TOKEN_RE,
    parse_rfc3339,
    secret_value,
)

if TYPE_CHECKING:
    import argparse

    from ..client.rest import RestClient

DEFAULT_TTL = 24 * 3600.0  # kubeadm's default
DEFAULT_GROUP = "system:bootstrappers:pinnace:default-node-token"
JOIN_PREFIX = "K10"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_JOIN_RE = re.compile(r"^K10([0-9a-fA-F]{64})::(.+)$")


class TokenError(ValueError):
    """A join token or bootstrap token that cannot be used."""


@dataclass(frozen=True)
class JoinToken:
    token_id: str
    secret: str
    ca_hash: str | None = None  # hex sha256; None for a bare ``<id>.<secret>`` (no CA pinning)

    @property
    def bearer(self) -> str:
        return f"{self.token_id}.{self.secret}"

    def __str__(self) -> str:
        return f"{JOIN_PREFIX}{self.ca_hash}::{self.bearer}" if self.ca_hash else self.bearer


def generate_bootstrap_token() -> tuple[str, str]:
    """A fresh (id, secret) from the OS's CSPRNG."""
    return ("".join(secrets.choice(_ALPHABET) for _ in range(6)),
            "".join(secrets.choice(_ALPHABET) for _ in range(16)))


def parse_bootstrap_token(text: str) -> tuple[str, str]:
    m = BOOTSTRAP_TOKEN_RE.match(text.strip())
    if m is None:
        raise TokenError("a bootstrap token looks like abcdef.0123456789abcdef ([a-z0-9]{6}.[a-z0-9]{16})")
    return m.group(1), m.group(2)


def parse_join_token(text: str) -> JoinToken:
    """``K10<hex sha256>::<id>.<secret>``, or a bare ``<id>.<secret>`` (ca_hash None)."""
    text = text.strip()
    m = _JOIN_RE.match(text)
    if m is None:
        if text.startswith(JOIN_PREFIX):
            raise TokenError("a join token looks like K10<64 hex digits of the CA's sha256>::<id>.<secret>")
        token_id, secret = parse_bootstrap_token(text)
        return JoinToken(token_id, secret)
    ca_hash, credentials = m.groups()
    if ":" in credentials and "." not in credentials:
        raise TokenError("username:password join credentials are not supported; use a bootstrap token "
                         "(pinnace token create)")
    token_id, secret = parse_bootstrap_token(credentials)
    return JoinToken(token_id, secret, ca_hash.lower())


def _certificates(ca_pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as e:
        raise TokenError(f"not a PEM certificate bundle: {e}") from None
    return certs


def ca_cert_hash(ca_pem: bytes) -> str:
    """Hex SHA-256 of the DER encoding of the (first) CA certificate in ``ca_pem``."""
    from cryptography.hazmat.primitives import serialization

    der = _certificates(ca_pem)[0].public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def ca_hash_matches(ca_pem: bytes, expected: str) -> bool:
    """Whether ``expected`` pins this CA: the DER hash of any certificate in the bundle,
    or the hash of the PEM bytes exactly as served (k3s)."""
    from cryptography.hazmat.primitives import serialization

    expected = expected.lower().removeprefix("sha256:")
    candidates = [hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
                  for c in _certificates(ca_pem)]
    candidates.append(hashlib.sha256(ca_pem).hexdigest())
    return any(hmac.compare_digest(c, expected) for c in candidates)


def format_join_token(ca_pem: bytes, token_id: str, secret: str) -> str:
    return str(JoinToken(token_id, secret, ca_cert_hash(ca_pem)))


def bootstrap_token_secret(token_id: str, secret: str, ttl: float | None = DEFAULT_TTL, *,
                           groups: tuple[str, ...] = (DEFAULT_GROUP,), description: str = "",
                           now: dt.datetime | None = None) -> dict[str, Any]:
    """The Secret kubeadm would write for this token; ``ttl`` None or 0 means it never expires."""
    data = {"token-id": token_id, "token-secret": secret,
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true"}
    if ttl:
        data["expiration"] = rfc3339((now or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=ttl))
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    # ``data``, not ``stringData``: this API server does not merge stringData into data.
    return {"apiVersion": "v1", "kind": "Secret", "type": BOOTSTRAP_SECRET_TYPE,
            "metadata": {"name": BOOTSTRAP_SECRET_PREFIX + token_id, "namespace": BOOTSTRAP_NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def create_token(client: RestClient, ttl: float | None = DEFAULT_TTL, *,
                       groups: tuple[str, ...] = (DEFAULT_GROUP,), description: str = "") -> tuple[str, str]:
    """Create a bootstrap token Secret through the API; its (id, secret)."""
    from ..client.rest import ApiException

    bad = [g for g in groups if not BOOTSTRAP_EXTRA_GROUP_RE.match(g)]
    if bad:  # the authenticator would refuse the token outright
        raise TokenError(f"extra groups must match {BOOTSTRAP_EXTRA_GROUP_RE.pattern}: {', '.join(bad)}")
    for _ in range(5):  # an id clash (1 in 2 billion) just means: draw again
        token_id, secret = generate_bootstrap_token()
        obj = bootstrap_token_secret(token_id, secret, ttl, groups=groups, description=description)
        try:
            await client.create("v1", "secrets", obj, namespace=BOOTSTRAP_NAMESPACE)
        except ApiException as e:
            if e.status == 409:
                continue
            raise
        return token_id, secret
    raise TokenError("could not find a free token id")


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    expires: dt.datetime | None  # None: never
    usages: tuple[str, ...]
    description: str
    groups: tuple[str, ...]
    invalid_expiration: bool = False


def token_info(secret: dict[str, Any]) -> TokenInfo | None:
    """What ``token list`` shows of a Secret, or None if it is no bootstrap token."""
    name = (secret.get("metadata") or {}).get("name", "")
    token_id = secret_value(secret, "token-id") or ""
    if secret.get("type") != BOOTSTRAP_SECRET_TYPE or name != BOOTSTRAP_SECRET_PREFIX + token_id:
        return None
    expires, invalid = None, False
    if raw := secret_value(secret, "expiration"):
        try:
            expires = parse_rfc3339(raw)
        except ValueError:
            invalid = True
    usages = tuple(k.removeprefix("usage-bootstrap-") for k in sorted(secret.get("data") or {})
                   if k.startswith("usage-bootstrap-") and secret_value(secret, k) == "true")
    groups = tuple(g for g in (secret_value(secret, "auth-extra-groups") or "").split(",") if g)
    return TokenInfo(token_id, expires, usages, secret_value(secret, "description") or "", groups, invalid)


async def list_tokens(client: RestClient) -> list[TokenInfo]:
    body = await client.list("v1", "secrets", namespace=BOOTSTRAP_NAMESPACE,
                             fieldSelector=f"type={BOOTSTRAP_SECRET_TYPE}")
    infos = [token_info(s) for s in body.get("items") or []]
    return sorted((i for i in infos if i is not None), key=lambda i: i.token_id)


def short_duration(seconds: float) -> str:
    """Kubernetes' ShortHumanDuration (what kubeadm prints as TTL): 45s, 12m, 23h, 6d, 2y."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    if s < 120 * 60:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    if s < 365 * 24 * 3600 * 8:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


def format_token_table(tokens: list[TokenInfo], now: dt.datetime | None = None) -> str:
    """kubeadm token list's columns, with the ID instead of the whole token: the list is
    for managing tokens, and need not put secrets on a screen."""
    now = now or dt.datetime.now(dt.UTC)
    rows = [("ID", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")]
    for t in tokens:
        if t.invalid_expiration:
            ttl, expires = "<invalid>", "<invalid>"
        elif t.expires is None:
            ttl, expires = "<forever>", "<never>"
        else:
            left = (t.expires - now).total_seconds()
            ttl, expires = ("<invalid>" if left <= 0 else short_duration(left)), rfc3339(t.expires)
        rows.append((t.token_id, ttl, expires, ",".join(t.usages) or "<none>", t.description or "<none>",
                     ",".join(t.groups) or "<none>"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _cluster_ca_pem(kubeconfig: Path) -> bytes:
    import yaml

    cfg = yaml.safe_load(kubeconfig.read_text())
    ctx_name = cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        return Path(cluster["certificate-authority"]).read_bytes()
    raise TokenError(f"{kubeconfig}: the cluster has no CA; cannot make a CA-pinning join token")


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """``pinnace token create|list`` with the admin kubeconfig of ``data_dir``."""
    from ..client.rest import ApiException, RestClient

    kubeconfig = Path(args.kubeconfig) if getattr(args, "kubeconfig", None) else data_dir / "kubeconfig"
    if not kubeconfig.exists():
        print(f"error: no kubeconfig at {kubeconfig}: start the cluster first with `pinnace server`",
              file=sys.stderr)
        return 1

    async def main() -> int:
        client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-token")
        try:
            if args.token_command == "create":
                ca_pem = _cluster_ca_pem(kubeconfig)
                token_id, secret = await create_token(client, args.ttl or None,
                                                      groups=tuple(args.groups or (DEFAULT_GROUP,)),
                                                      description=args.description)
                print(format_join_token(ca_pem, token_id, secret))
            else:
                print(format_token_table(await list_tokens(client)))
            return 0
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except (ApiException, TokenError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


__all__ = ["DEFAULT_GROUP", "JoinToken", "TokenError", "TokenInfo", "bootstrap_token_secret", "ca_cert_hash",
           "ca_hash_matches", "create_token", "format_join_token", "format_token_table", "list_tokens",
           "parse_join_token", "run"]
