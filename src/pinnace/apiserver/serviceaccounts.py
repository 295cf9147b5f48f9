"""Service accounts in the API server: the ``serviceaccounts/token`` subresource
(TokenRequest), authentication of service-account JWTs, OIDC discovery of the
issuer, and the ServiceAccount admission plugin.

* TokenRequest (``registry/core/serviceaccount/storage/token.go``): a token for the
  service account, optionally bound to a Pod, Secret or Node that must exist (and have
  the given uid); audiences default to the API audiences; ``expirationSeconds``
  (default 3600) at least 600 and at most 2^32, capped by
  ``--service-account-max-token-expiration``.  A kubelet's token for a pod asking for
  3607 s (what admission puts in ``kube-api-access-*``) gets a year with a
  ``warnafter`` claim, as upstream's ``--service-account-extend-token-expiration``.
* Authentication (``pkg/serviceaccount/claims.go`` and ``legacy.go``): a valid JWT
  authenticates while its service account (same uid) and its bound pod or secret
  (same uid, not deleted more than 60 s ago) exist; a legacy token while its Secret
  exists and still holds that very token.
* Discovery: ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``.
* Admission (``plugin/pkg/admission/serviceaccount``): a new pod gets
  ``serviceAccountName: default`` if it names none, must name an existing service
  account, and -- unless the pod or its service account opt out -- the projected
  ``kube-api-access-<suffix>`` volume (token, ``kube-root-ca.crt``'s ``ca.crt``, the
  namespace) mounted in every container at ``/var/run/secrets/kubernetes.io/serviceaccount``.
  Two departures, so an API server without a controller manager still takes pods and
  ``kubectl create ns x; kubectl run -n x`` does not race the serviceaccount controller:
  a pod create waits up to a second for a missing ``default`` account, and when no
  ``default`` account exists even in kube-system (no controller ever ran) the pod is
  admitted without a token instead of refused.

All of this is on only when the API server signs tokens (``ApiServerConfig.service_accounts``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson

from ..api.times import format_time, parse_time
from ..pki import serviceaccount as sa_tokens
from . import errors
from .authn import User, secret_value

if TYPE_CHECKING:
    from .registry import Registry, RequestContext

log = logging.getLogger(__name__)

DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# token.WarnOnlyBoundTokenExpirationSeconds / ExpirationExtensionSeconds.
WARN_ONLY_EXPIRATION_SECONDS = 3600 + 7
EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_SERVICE_ACCOUNT = "default"
# How long a pod create waits for the ``default`` service account of a namespace made a
# moment ago (the serviceaccount controller makes it within milliseconds).
DEFAULT_ACCOUNT_WAIT = 1.0
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # names.SimpleNameGenerator's alphabet


@dataclass
class ServiceAccountConfig:
    """kube-apiserver's ``--service-account-*`` and ``--api-audiences`` settings."""
    signing_key_file: Path
    # Verification keys; the signing key's public half is always among them.
    key_files: tuple[Path, ...] = ()
    # The first one signs; all are accepted.
    issuers: tuple[str, ...] = (sa_tokens.DEFAULT_ISSUER,)
    # Empty: the issuers.
    api_audiences: tuple[str, ...] = ()
    max_token_expiration: int = 0  # seconds; 0: no cap
    extend_token_expiration: bool = True
    jwks_uri: str = ""
    # Where default service accounts may show up late; the plugin waits this long for them.
    default_account_wait: float = DEFAULT_ACCOUNT_WAIT


class ServiceAccountTokens:
    """Issues and authenticates service-account tokens for one API server."""

    def __init__(self, config: ServiceAccountConfig, registry: Registry):
        self.config = config
        self.registry = registry
        self.signer = sa_tokens.Signer.from_file(config.signing_key_file)
        keys: list[sa_tokens.PublicKey] = [self.signer.key.public_key()]
        for path in config.key_files:
            for key in sa_tokens.load_public_keys(path):
                if sa_tokens.key_id(key) not in {sa_tokens.key_id(k) for k in keys}:
                    keys.append(key)
        self.public_keys = keys
        if not config.issuers:
            raise ValueError("at least one service-account issuer is required")
        self.issuer = config.issuers[0]
        self.api_audiences = tuple(config.api_audiences) or tuple(config.issuers)
        self.verifier = sa_tokens.Verifier(keys, config.issuers, self.api_audiences)

    # -- TokenRequest --------------------------------------------------------------------------

    async def token_request(self, namespace: str, name: str, body: Any, ctx: RequestContext) -> dict[str, Any]:
        """POST .../serviceaccounts/{name}/token: the TokenRequest with its status filled."""
        spec, out = _parse_token_request(body, name, namespace)
        sa, _ = await self.registry.read(self._rtype("serviceaccounts"), namespace, name)
        pod = secret = node = None
        ref = spec.get("boundObjectRef")
        if ref:
            kind, api_version, ref_name = ref.get("kind", ""), ref.get("apiVersion", ""), ref.get("name", "")
            group, _, version = api_version.rpartition("/")
            if group or kind not in ("Pod", "Secret", "Node"):
                raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
            if kind == "Pod":
                pod, _ = await self.registry.read(self._rtype("pods"), namespace, ref_name)
                if (pod.get("spec") or {}).get("serviceAccountName") != name:
                    raise errors.bad_request(f"cannot bind token for serviceaccount {name!r} to pod running with "
                                             "different serviceaccount name.")
                bound = pod
                node_name = (pod.get("spec") or {}).get("nodeName")
                if node_name:  # the pod's node goes into the claims when it exists
                    node = await self._lookup("nodes", "", node_name)
            elif kind == "Secret":
                secret, _ = await self.registry.read(self._rtype("secrets"), namespace, ref_name)
                bound = secret
            else:
                node, _ = await self.registry.read(self._rtype("nodes"), "", ref_name)
                bound = node
            uid = (bound.get("metadata") or {}).get("uid", "")
            if ref.get("uid") and ref["uid"] != uid:
                raise errors.conflict(kind, "", ref_name, f"the UID in the bound object reference ({ref['uid']}) "
                                      "does not match the UID in record. The object might have been deleted and "
                                      "then recreated")
        if not spec.get("audiences"):
            spec["audiences"] = list(self.api_audiences)
        if self.config.max_token_expiration > 0 and spec["expirationSeconds"] > self.config.max_token_expiration:
            spec["expirationSeconds"] = self.config.max_token_expiration
        requested = spec["expirationSeconds"]
        lifetime, warn_after = requested, 0
        if (self.config.extend_token_expiration and pod is not None and requested == WARN_ONLY_EXPIRATION_SECONDS
                and all(a in self.api_audiences for a in spec["audiences"])):
            # The kubelet's default token: valid a year, flagged stale after the hour.
            lifetime, warn_after = max(EXTENDED_EXPIRATION_SECONDS, self.config.max_token_expiration), requested
        now = int(time.time())
        claims = sa_tokens.bound_claims(issuer=self.issuer, audiences=spec["audiences"], service_account=sa,
                                        now=now, expiration_seconds=lifetime, pod=pod, secret=secret, node=node,
                                        warn_after=warn_after)
        out["spec"] = spec
        out["status"] = {"token": "" if ctx.dry_run else self.signer.sign(claims),
                         "expirationTimestamp": format_time(dt.datetime.fromtimestamp(now + requested, dt.UTC))}
        return out

    def _rtype(self, plural: str):
        rtype = self.registry.resources.get("", "v1", plural)
        assert rtype is not None
        return rtype

    async def _lookup(self, plural: str, namespace: str, name: str, uid: str = "") -> dict[str, Any] | None:
        """An object from the watch cache, or from storage when the cache does not have it
        (yet) or has another incarnation of it."""
        key = self._rtype(plural).key(namespace, name)
        cached = self.registry.cache.get(key)
        if cached is not None and (not uid or (cached.obj.get("metadata") or {}).get("uid") == uid):
            return cached.obj
        kv = await self.registry.store.get(key)
        return orjson.loads(kv.value) if kv is not None else None

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, token: str, audiences: Sequence[str] = ()) -> tuple[User, tuple[str, ...]] | None:
        """The user and matched audiences of a service-account token; None when the token is
        not one of ours.  Raises :class:`~pinnace.pki.serviceaccount.InvalidToken` for one of
        ours that must not authenticate."""
        now = int(time.time())
        ident = self.verifier.verify(token, now, audiences)
        if ident is None:
            return None
        stale = now - sa_tokens.LEEWAY
        sa = await self._lookup("serviceaccounts", ident.namespace, ident.name, ident.uid)
        if sa is None:
            raise sa_tokens.InvalidToken(f'serviceaccounts "{ident.name}" not found')
        sa_meta = sa.get("metadata") or {}
        if _deleted_before(sa_meta, stale):
            raise sa_tokens.InvalidToken(f"service account {ident.namespace}/{ident.name} has been deleted")
        if sa_meta.get("uid") != ident.uid:
            raise sa_tokens.InvalidToken(f"service account UID ({sa_meta.get('uid')}) does not match claim "
                                         f"({ident.uid})")
        extra: dict[str, list[str]] = {}
        if ident.secret is not None:
            secret = await self._lookup("secrets", ident.namespace, ident.secret["name"], ident.secret["uid"])
            if secret is None or _deleted_before(secret.get("metadata") or {}, stale):
                raise sa_tokens.InvalidToken("service account token has been invalidated")
            if ident.legacy:
                _check_legacy_secret(secret, sa, token)
            elif (secret.get("metadata") or {}).get("uid") != ident.secret["uid"]:
                raise sa_tokens.InvalidToken("secret UID does not match service account secret ref claim")
        if ident.pod is not None:
            pod = await self._lookup("pods", ident.namespace, ident.pod["name"], ident.pod["uid"])
            if pod is None or _deleted_before(pod.get("metadata") or {}, stale):
                raise sa_tokens.InvalidToken("service account token has been invalidated")
            if (pod.get("metadata") or {}).get("uid") != ident.pod["uid"]:
                raise sa_tokens.InvalidToken("pod UID does not match service account pod ref claim")
            extra[EXTRA_POD_NAME], extra[EXTRA_POD_UID] = [ident.pod["name"]], [ident.pod["uid"]]
        if ident.node is not None:
            if ident.pod is None and ident.secret is None:  # bound to the node itself: it must still be there
                node = await self._lookup("nodes", "", ident.node["name"], ident.node["uid"])
                if node is None or _deleted_before(node.get("metadata") or {}, stale) or (
                        (node.get("metadata") or {}).get("uid") != ident.node["uid"]):
                    raise sa_tokens.InvalidToken("service account token has been invalidated")
            extra[EXTRA_NODE_NAME] = [ident.node["name"]]
            if ident.node["uid"]:
                extra[EXTRA_NODE_UID] = [ident.node["uid"]]
        if ident.credential_id:
            extra[EXTRA_CREDENTIAL_ID] = [ident.credential_id]
        user = User(sa_tokens.username(ident.namespace, ident.name), ident.uid,
                    (*sa_tokens.groups(ident.namespace), "system:authenticated"), extra)
        return user, ident.audiences

    # -- OIDC discovery ------------------------------------------------------------------------

    def openid_configuration(self) -> dict[str, Any] | None:
        """The discovery document; None when the issuer is no https URL and no JWKS URI is
        configured (upstream then does not serve discovery)."""
        jwks_uri = self.config.jwks_uri
        if not jwks_uri:
            parsed = urlparse(self.issuer)
            if parsed.scheme != "https" or not parsed.netloc:
                return None
            jwks_uri = f"https://{parsed.netloc}{JWKS_PATH}"
        return {"issuer": self.issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": sorted({sa_tokens.algorithm(k) for k in self.public_keys})}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [sa_tokens.jwk(k) for k in self.public_keys]}

    # -- admission -----------------------------------------------------------------------------

    async def admit_pod(self, pod: dict[str, Any], ctx: RequestContext) -> None:
        """The ServiceAccount admission plugin, for a pod being created."""
        meta, spec = pod.setdefault("metadata", {}), pod.setdefault("spec", {})
        if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
            return  # a static pod's mirror: the kubelet owns it and it gets no credentials
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name  # the deprecated alias mirrors it, as conversion does
        namespace = meta.get("namespace", "")
        sa = await self._lookup("serviceaccounts", namespace, name)
        if sa is None and name == DEFAULT_SERVICE_ACCOUNT:
            if await self._lookup("serviceaccounts", "kube-system", DEFAULT_SERVICE_ACCOUNT) is None:
                # No serviceaccount controller has run (an API server alone): admit without a
                # token rather than refuse every pod, unlike upstream.
                return
            sa = await self._wait_for_account(namespace, name, self.config.default_account_wait)
        if sa is None:
            raise errors.forbidden("pods", "", meta.get("name", ""), f"error looking up service account "
                                   f'{namespace}/{name}: serviceaccount "{name}" not found')
        if _automount(sa, spec):
            mount_token_volume(spec)

    async def _wait_for_account(self, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        key = self._rtype("serviceaccounts").key(namespace, name)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            cached = self.registry.cache.get(key)
            if cached is not None:
                return cached.obj
        return await self._lookup("serviceaccounts", namespace, name)


def _parse_token_request(body: Any, name: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the defaulted spec, the response skeleton) of a TokenRequest body; 400/422 when bad."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a TokenRequest object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", "TokenRequest") or (
            api_version and not str(api_version).startswith("authentication.k8s.io/")):
        raise errors.bad_request(f"the body of serviceaccounts/token must be an authentication.k8s.io/v1 "
                                 f"TokenRequest, not {api_version}/{kind}")
    spec = dict(body.get("spec") or {})
    causes = []
    auds = spec.get("audiences")
    if auds is not None and (not isinstance(auds, list) or not all(isinstance(a, str) for a in auds)):
        causes.append({"reason": "FieldValueInvalid", "field": "spec.audiences",
                       "message": "Invalid value: must be a list of strings"})
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = spec["expirationSeconds"] = DEFAULT_EXPIRATION_SECONDS
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        causes.append({"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                       "message": f"Invalid value: {seconds!r}: must be an integer"})
    elif seconds < MIN_EXPIRATION_SECONDS:
        causes.append({"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                       "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"})
    elif seconds > MAX_EXPIRATION_SECONDS:
        causes.append({"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                       "message": f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"})
    ref = spec.get("boundObjectRef")
    if ref is not None and (not isinstance(ref, dict) or not ref.get("name")):
        causes.append({"reason": "FieldValueRequired", "field": "spec.boundObjectRef.name",
                       "message": "Required value"})
    if causes:
        raise errors.invalid("TokenRequest", "authentication.k8s.io", "", causes)
    meta = dict(body.get("metadata") or {})
    meta.update(name=name, namespace=namespace)
    meta.setdefault("creationTimestamp", None)
    out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": meta}
    return spec, out


def _deleted_before(meta: dict[str, Any], cutoff: int) -> bool:
    when = parse_time(meta.get("deletionTimestamp"))
    return when is not None and when.timestamp() < cutoff


def _check_legacy_secret(secret: dict[str, Any], sa: dict[str, Any], token: str) -> None:
    """legacy.go: the Secret must still hold this very token for this service account."""
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    sa_meta = sa.get("metadata") or {}
    if secret.get("type") != TOKEN_SECRET_TYPE or annotations.get(SA_NAME_ANNOTATION) != sa_meta.get("name"):
        raise sa_tokens.InvalidToken("service account token has been invalidated")
    if annotations.get(SA_UID_ANNOTATION) and annotations[SA_UID_ANNOTATION] != sa_meta.get("uid"):
        raise sa_tokens.InvalidToken("service account token has been invalidated")
    stored = secret_value(secret, "token") or ""
    if not hmac.compare_digest(stored.encode(), token.encode()):
        raise sa_tokens.InvalidToken("token does not match server's copy")


def _automount(sa: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if sa.get("automountServiceAccountToken") is not None:
        return bool(sa["automountServiceAccountToken"])
    return True


def token_volume(name: str) -> dict[str, Any]:
    """The projected ``kube-api-access-*`` volume, already defaulted (admission runs after
    defaulting): a token the kubelet requests, the cluster CA and the namespace."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}},
    ]}}


def mount_token_volume(spec: dict[str, Any]) -> None:
    """Mount the token volume at the default path in every container and init container that
    has nothing there yet, adding the volume if any of them needs it."""
    existing = next((v.get("name") for v in spec.get("volumes") or []
                     if str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)), None)
    name = existing or TOKEN_VOLUME_PREFIX + "".join(random.choice(_NAME_CHARS) for _ in range(5))
    needed = False
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            mounts = container.setdefault("volumeMounts", [])
            if any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needed = True
    if needed and existing is None:
        spec.setdefault("volumes", []).append(token_volume(name))
