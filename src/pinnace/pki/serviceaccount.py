"""Service-account tokens: the signing key pair, JWTs (JWS compact form) and their
claims, as kube-apiserver's TokenRequest and kube-controller-manager's tokens
controller make them, and the JWKS that OIDC discovery publishes.

* Keys: RSA (RS256, what upstream generates and what kubeadm's ``sa.key`` is) or
  ECDSA (ES256/384/512).  Verification keys are read from PEM files holding public
  keys, private keys or certificates, several blocks per file, as
  ``--service-account-key-file`` takes them.
* Bound tokens (TokenRequest): ``iss``, ``sub`` ``system:serviceaccount:<ns>:<name>``,
  ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` and the private ``kubernetes.io`` claim
  naming the namespace, the service account and the object the token is bound to
  (pod, secret or node; a pod-bound token also names the pod's node).
* Legacy tokens (Secrets of type ``kubernetes.io/service-account-token``): issuer
  ``kubernetes/serviceaccount``, no audience, no expiry, flat
  ``kubernetes.io/serviceaccount/...`` claims.

Verification here is cryptographic and temporal only (signature, issuer, audience,
``exp``/``nbf`` with upstream's 60 s leeway); whether the service account and the
bound object still exist is the API server's part
(:mod:`pinnace.apiserver.serviceaccounts`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
NAMESPACE_GROUP_PREFIX = "system:serviceaccounts:"
# jwt.DefaultLeeway: clocks may disagree by this much on exp/nbf/iat, and a bound
# object deleted less than this long ago still vouches for its tokens.
LEEWAY = 60
# Upstream's names for the key files kubeadm writes next to the CA.
SIGNING_KEY_FILE, PUBLIC_KEY_FILE = "sa.key", "sa.pub"
RSA_BITS = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_EC_ALGS = {"secp256r1": ("ES256", hashes.SHA256, 32, "P-256"),
            "secp384r1": ("ES384", hashes.SHA384, 48, "P-384"),
            "secp521r1": ("ES512", hashes.SHA512, 66, "P-521")}


class InvalidToken(Exception):
    """A token that is ours (a JWT from an accepted issuer) but must not authenticate."""


# -- keys ---------------------------------------------------------------------------------------


def ensure_signing_key(directory: Path) -> tuple[Path, Path]:
    """``sa.key`` (private, 0600) and ``sa.pub`` in ``directory``: an RSA key pair made
    once and reused, so tokens outlive server restarts."""
    private, public = directory / SIGNING_KEY_FILE, directory / PUBLIC_KEY_FILE
    if private.exists():
        if not public.exists():
            _write(public, public_pem(load_private_key(private).public_key()), 0o644)
        return private, public
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    _write(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()), 0o600)
    _write(public, public_pem(key.public_key()), 0o644)
    return private, public


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # a reader never sees half a key


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: str | Path) -> PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: service-account signing keys must be RSA or ECDSA")
    return key


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith(b"-----END "):
                blocks.append(b"".join(current))
                current = []
    return blocks


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Every RSA/ECDSA public key in a PEM file: public keys, private keys (their public
    half) and certificates (their subject key), in file order."""
    keys: list[PublicKey] = []
    for block in _pem_blocks(Path(path).read_bytes()):
        kind = block.split(b"\n", 1)[0].decode(errors="replace")
        key: Any
        if "CERTIFICATE" in kind:
            key = x509.load_pem_x509_certificate(block).public_key()
        elif "PRIVATE KEY" in kind:
            key = serialization.load_pem_private_key(block, None).public_key()
        elif "PUBLIC KEY" in kind:
            key = serialization.load_pem_public_key(block)
        else:
            continue
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            keys.append(key)
    if not keys:
        raise ValueError(f"{path}: no RSA or ECDSA public key found")
    return keys


def key_id(key: PublicKey) -> str:
    """Upstream's ``kid``: unpadded base64url of the SHA-256 of the DER public key."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    return _ec_params(key)[0]


def _ec_params(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> tuple[str, type, int, str]:
    try:
        return _EC_ALGS[key.curve.name]
    except KeyError:
        raise ValueError(f"unsupported elliptic curve {key.curve.name}") from None


def jwk(key: PublicKey) -> dict[str, str]:
    """The key as a JSON Web Key, as ``/openid/v1/jwks`` lists it."""
    out = {"use": "sig", "kid": key_id(key), "alg": algorithm(key)}
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        out.update(kty="RSA", n=_b64(_int_bytes(nums.n)), e=_b64(_int_bytes(nums.e)))
    else:
        _, _, size, crv = _ec_params(key)
        pub = key.public_numbers()
        out.update(kty="EC", crv=crv, x=_b64(pub.x.to_bytes(size, "big")), y=_b64(pub.y.to_bytes(size, "big")))
    return out


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or any(c in text for c in "=+/ \n"):
        raise InvalidToken("malformed token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None


# -- JWS ----------------------------------------------------------------------------------------


class Signer:
    """Signs claims with one private key (RS256 or ES*), ``kid`` in the header."""

    def __init__(self, key: PrivateKey):
        self.key = key
        self.alg = algorithm(key)
        self.kid = key_id(key.public_key())

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        return cls(load_private_key(path))

    def sign(self, claims: dict[str, Any]) -> str:
        header = _b64(orjson.dumps({"alg": self.alg, "kid": self.kid}))
        payload = _b64(orjson.dumps(claims))
        signing_input = f"{header}.{payload}".encode()
        if isinstance(self.key, rsa.RSAPrivateKey):
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            _, hash_cls, size, _ = _ec_params(self.key)
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hash_cls())))
            sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return f"{header}.{payload}.{_b64(sig)}"


@dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def parse(token: str) -> Jwt:
    """The parts of a compact JWS, unverified.  Raises :class:`InvalidToken`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    try:
        header, claims = orjson.loads(_unb64(parts[0])), orjson.loads(_unb64(parts[1]))
    except orjson.JSONDecodeError:
        raise InvalidToken("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2]))


def signature_valid(token: Jwt, key: PublicKey) -> bool:
    alg = token.header.get("alg")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if alg != "RS256":
                return False
            key.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        name, hash_cls, size, _ = _ec_params(key)
        if alg != name or len(token.signature) != 2 * size:
            return False
        r = int.from_bytes(token.signature[:size], "big")
        s = int.from_bytes(token.signature[size:], "big")
        key.verify(encode_dss_signature(r, s), token.signing_input, ec.ECDSA(hash_cls()))
        return True
    except (InvalidSignature, ValueError):
        return False


# -- claims -------------------------------------------------------------------------------------


def username(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    return (ALL_GROUP, NAMESPACE_GROUP_PREFIX + namespace)


def _ref(obj: dict[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {"name": str(meta.get("name", "")), "uid": str(meta.get("uid", ""))}


def bound_claims(*, issuer: str, audiences: Sequence[str], service_account: dict[str, Any], now: int,
                 expiration_seconds: int, pod: dict[str, Any] | None = None, secret: dict[str, Any] | None = None,
                 node: dict[str, Any] | None = None, warn_after: int = 0) -> dict[str, Any]:
    """The claims of a TokenRequest token (``pkg/serviceaccount/claims.go``).  ``node`` is
    the bound node, or the node of the bound pod; ``warn_after`` (seconds) marks an
    extended kubelet token."""
    meta = service_account.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": _ref(service_account)}
    for key, obj in (("pod", pod), ("secret", secret), ("node", node)):
        if obj is not None:
            private[key] = _ref(obj)
    if warn_after:
        private["warnafter"] = now + warn_after
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": now, "sub": username(namespace, name)}


def legacy_claims(service_account: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """The claims of a token the tokens controller puts into a service-account-token Secret."""
    meta = service_account.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    return {"iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": str(meta.get("uid", "")),
            "sub": username(namespace, name)}


@dataclass(frozen=True)
class TokenIdentity:
    """What a verified token claims; the API server still checks the objects exist."""
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    legacy: bool = False
    pod: dict[str, str] | None = None
    secret: dict[str, str] | None = None
    node: dict[str, str] | None = None
    credential_id: str = ""


class Verifier:
    """Checks signature, issuer, audience and validity period of service-account JWTs."""

    def __init__(self, public_keys: Iterable[PublicKey], issuers: Sequence[str], api_audiences: Sequence[str],
                 legacy: bool = True):
        self.public_keys = list(public_keys)
        self.issuers = tuple(issuers)
        self.api_audiences = tuple(api_audiences)
        self.legacy = legacy

    def is_ours(self, token: str) -> Jwt | None:
        """The parsed token if it is a JWT from an issuer we vouch for; None otherwise
        (another authenticator may know it)."""
        if not looks_like_jwt(token):
            return None
        try:
            parsed = parse(token)
        except InvalidToken:
            return None
        iss = parsed.claims.get("iss")
        if iss in self.issuers or (self.legacy and iss == LEGACY_ISSUER):
            return parsed
        return None

    def verify(self, token: str, now: int, audiences: Sequence[str] = ()) -> TokenIdentity | None:
        """The identity ``token`` claims, None when it is not a service-account token of
        ours; :class:`InvalidToken` when it is but is not valid (signature, audience, time)."""
        parsed = self.is_ours(token)
        if parsed is None:
            return None
        if not any(signature_valid(parsed, k) for k in self._candidates(parsed)):
            raise InvalidToken("invalid signature")
        wanted = tuple(audiences) or self.api_audiences
        claims = parsed.claims
        if claims.get("iss") == LEGACY_ISSUER:
            return self._legacy(claims, wanted)
        aud = claims.get("aud")
        token_auds = (aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str))
        if not token_auds:
            token_auds = self.api_audiences  # upstream's implicit audiences
        matched = tuple(a for a in wanted if a in token_auds)
        if not matched:
            raise InvalidToken(f"token audiences {list(token_auds)!r} is invalid for the target audiences "
                               f"{list(wanted)!r}")
        _check_times(claims, now)
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise InvalidToken("token has no kubernetes.io claim")
        sa = private.get("serviceaccount") or {}
        namespace = private.get("namespace")
        if not isinstance(sa, dict) or not isinstance(namespace, str) or not namespace or not sa.get("name"):
            raise InvalidToken("token names no service account")
        if claims.get("sub") != username(namespace, str(sa["name"])):
            raise InvalidToken("token subject does not match its service account")
        jti = claims.get("jti")
        return TokenIdentity(namespace, str(sa["name"]), str(sa.get("uid", "")), matched,
                             pod=_claim_ref(private.get("pod")), secret=_claim_ref(private.get("secret")),
                             node=_claim_ref(private.get("node")),
                             credential_id=f"JTI={jti}" if isinstance(jti, str) and jti else "")

    def _candidates(self, parsed: Jwt) -> list[PublicKey]:
        # The kid picks the key when one matches; otherwise try them all (keys without kid).
        kid = parsed.header.get("kid")
        matching = [k for k in self.public_keys if kid and key_id(k) == kid]
        return matching or self.public_keys

    def _legacy(self, claims: dict[str, Any], wanted: tuple[str, ...]) -> TokenIdentity:
        def claim(name: str) -> str:
            value = claims.get("kubernetes.io/serviceaccount/" + name)
            if not isinstance(value, str) or not value:
                raise InvalidToken(f"token has no {name} claim")
            return value

        namespace, name = claim("namespace"), claim("service-account.name")
        if claims.get("sub") != username(namespace, name):
            raise InvalidToken("token subject does not match its service account")
        # Legacy tokens carry no audience: they are good for the API server's own.
        matched = tuple(a for a in wanted if a in self.api_audiences) if self.api_audiences else wanted
        if wanted and not matched:
            raise InvalidToken(f"token audiences {list(self.api_audiences)!r} is invalid for the target audiences "
                               f"{list(wanted)!r}")
        return TokenIdentity(namespace, name, claim("service-account.uid"), matched, legacy=True,
                             secret={"name": claim("secret.name"), "uid": ""})


def _claim_ref(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict) or not value.get("name"):
        return None
    return {"name": str(value["name"]), "uid": str(value.get("uid", ""))}


def _check_times(claims: dict[str, Any], now: int) -> None:
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    for value in (exp, nbf, iat):
        if value is not None and not isinstance(value, int | float):
            raise InvalidToken("malformed token times")
    if exp is None:
        raise InvalidToken("service account token has no expiry")
    if now > exp + LEEWAY:
        raise InvalidToken("service account token has expired")
    if (nbf is not None and now + LEEWAY < nbf) or (iat is not None and now + LEEWAY < iat):
        raise InvalidToken("service account token is not valid yet")
