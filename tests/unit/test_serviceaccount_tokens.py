"""Service-account JWTs (pinnace.pki.serviceaccount): keys, claims as upstream's
``pkg/serviceaccount/claims.go`` writes them, and the checks that make a token
authenticate or not (signature, issuer, audience, expiry); the admission plugin's
token volume (pinnace.apiserver.serviceaccounts)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from pinnace.apiserver.serviceaccounts import (
    TOKEN_MOUNT_PATH,
    WARN_ONLY_EXPIRATION_SECONDS,
    _automount,
    mount_token_volume,
)
from pinnace.pki import serviceaccount as sat

ISSUER = sat.DEFAULT_ISSUER
NOW = 1_700_000_000
SA = {"metadata": {"name": "builder", "namespace": "ci", "uid": "sa-uid-1"}}
POD = {"metadata": {"name": "build-1", "namespace": "ci", "uid": "pod-uid-1"}}
NODE = {"metadata": {"name": "node-a", "uid": "node-uid-1"}}


@pytest.fixture(scope="module")
def key_files(tmp_path_factory) -> tuple[Path, Path]:
    return sat.ensure_signing_key(tmp_path_factory.mktemp("sa"))


@pytest.fixture(scope="module")
def signer(key_files) -> sat.Signer:
    return sat.Signer.from_file(key_files[0])


def verifier(signer: sat.Signer, audiences=(ISSUER,)) -> sat.Verifier:
    return sat.Verifier([signer.key.public_key()], [ISSUER], audiences)


def decode_part(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def pod_token(signer: sat.Signer, **overrides) -> str:
    args = {"issuer": ISSUER, "audiences": [ISSUER], "service_account": SA, "now": NOW,
            "expiration_seconds": 3600, "pod": POD, "node": NODE, **overrides}
    return signer.sign(sat.bound_claims(**args))


def test_signing_key_is_made_once_and_private(tmp_path):
    private, public = sat.ensure_signing_key(tmp_path)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    first = private.read_bytes()
    again, _ = sat.ensure_signing_key(tmp_path)
    assert again.read_bytes() == first  # reused, so tokens survive a restart
    key = sat.load_private_key(private)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert sat.load_public_keys(public)[0].public_numbers() == key.public_key().public_numbers()


def test_bound_token_claims_match_upstream(signer):
    token = pod_token(signer)
    header, claims = decode_part(token, 0), decode_part(token, 1)
    assert header == {"alg": "RS256", "kid": sat.key_id(signer.key.public_key())}
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:ci:builder"
    assert claims["iat"] == claims["nbf"] == NOW and claims["exp"] == NOW + 3600
    assert claims["jti"]
    assert claims["kubernetes.io"] == {
        "namespace": "ci", "serviceaccount": {"name": "builder", "uid": "sa-uid-1"},
        "pod": {"name": "build-1", "uid": "pod-uid-1"}, "node": {"name": "node-a", "uid": "node-uid-1"}}


def test_a_valid_token_names_its_account_and_bound_objects(signer):
    ident = verifier(signer).verify(pod_token(signer), NOW + 10)
    assert ident is not None
    assert (ident.namespace, ident.name, ident.uid) == ("ci", "builder", "sa-uid-1")
    assert ident.audiences == (ISSUER,)
    assert ident.pod == {"name": "build-1", "uid": "pod-uid-1"} and ident.node == {"name": "node-a",
                                                                                  "uid": "node-uid-1"}
    assert ident.credential_id.startswith("JTI=") and not ident.legacy


def test_expiry_and_not_before_with_upstream_leeway(signer):
    token = pod_token(signer, expiration_seconds=600)
    v = verifier(signer)
    assert v.verify(token, NOW + 600 + sat.LEEWAY) is not None  # within the 60 s leeway
    with pytest.raises(sat.InvalidToken, match="expired"):
        v.verify(token, NOW + 600 + sat.LEEWAY + 1)
    with pytest.raises(sat.InvalidToken, match="not valid yet"):
        v.verify(token, NOW - sat.LEEWAY - 5)


def test_audience_must_match(signer):
    token = pod_token(signer, audiences=["vault"])
    with pytest.raises(sat.InvalidToken, match="audiences"):
        verifier(signer).verify(token, NOW)  # not good for the API server
    ident = verifier(signer).verify(token, NOW, audiences=["other", "vault"])  # a TokenReview asking for vault
    assert ident is not None and ident.audiences == ("vault",)


def test_other_issuers_are_not_ours(signer):
    token = pod_token(signer, issuer="https://elsewhere.example")
    assert verifier(signer).verify(token, NOW) is None  # another authenticator may know it
    assert verifier(signer).verify("secret-token", NOW) is None
    assert verifier(signer).verify("abcdef.0123456789abcdef", NOW) is None


def test_tampered_tokens_are_rejected(signer, tmp_path):
    token = pod_token(signer)
    header, payload, sig = token.split(".")
    claims = decode_part(token, 1)
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    claims["sub"] = "system:serviceaccount:ci:admin"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    v = verifier(signer)
    with pytest.raises(sat.InvalidToken, match="signature"):
        v.verify(f"{header}.{forged}.{sig}", NOW)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(sat.InvalidToken, match="signature"):
        v.verify(f"{header}.{payload}.{flipped}", NOW)
    # alg "none" is never accepted: with a signature it fails the check, without one it is no JWS at all.
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(sat.InvalidToken, match="signature"):
        v.verify(f"{none_header}.{payload}.{sig}", NOW)
    assert v.verify(f"{none_header}.{payload}.", NOW) is None
    # Signed by a key the server does not know.
    other = sat.Signer.from_file(sat.ensure_signing_key(tmp_path)[0])
    with pytest.raises(sat.InvalidToken, match="signature"):
        v.verify(pod_token(other), NOW)


def test_legacy_tokens_have_no_expiry_and_the_api_audiences(signer):
    token = signer.sign(sat.legacy_claims(SA, "builder-token"))
    claims = decode_part(token, 1)
    assert claims["iss"] == "kubernetes/serviceaccount" and "exp" not in claims and "aud" not in claims
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "builder-token"
    ident = verifier(signer).verify(token, NOW + 10 * 365 * 86400)
    assert ident is not None and ident.legacy and ident.secret == {"name": "builder-token", "uid": ""}
    assert ident.audiences == (ISSUER,)
    with pytest.raises(sat.InvalidToken):
        verifier(signer).verify(token, NOW, audiences=["vault"])


def test_ecdsa_keys_sign_es256(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    signer = sat.Signer.from_file(path)
    token = pod_token(signer)
    assert decode_part(token, 0)["alg"] == "ES256"
    assert verifier(signer).verify(token, NOW) is not None
    jwk = sat.jwk(key.public_key())
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"


def test_jwks_entry_verifies_tokens(signer):
    jwk = sat.jwk(signer.key.public_key())
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["kid"] == sat.key_id(signer.key.public_key())

    def num(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    # What an OIDC relying party does with the JWKS: rebuild the key, check the signature.
    public = rsa.RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()
    token = pod_token(signer)
    header, payload, sig = token.split(".")
    public.verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), f"{header}.{payload}".encode(),
                  padding.PKCS1v15(), hashes.SHA256())


def test_verification_key_files_take_public_keys_private_keys_and_certificates(tmp_path, signer):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sa")])
    import datetime as dt

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ec_key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
            .sign(ec_key, hashes.SHA256()))
    bundle = tmp_path / "keys.pem"
    bundle.write_bytes(
        sat.public_pem(signer.key.public_key())
        + rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM))
    keys = sat.load_public_keys(bundle)
    assert [sat.key_id(k) for k in keys] == [sat.key_id(signer.key.public_key()), sat.key_id(rsa_key.public_key()),
                                            sat.key_id(ec_key.public_key())]
    (tmp_path / "empty.pem").write_text("nothing here\n")
    with pytest.raises(ValueError):
        sat.load_public_keys(tmp_path / "empty.pem")


# -- the admission plugin's volume -------------------------------------------------------------


def test_token_volume_is_mounted_in_every_container():
    """Conformance: '[sig-auth] ServiceAccounts should mount an API token into pods [Conformance]'
    (the kube-api-access volume that carries token, ca.crt and namespace)."""
    spec = {"initContainers": [{"name": "init"}],
            "containers": [{"name": "a"},
                           {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}
    mount_token_volume(spec)
    volume = spec["volumes"][-1]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == len("kube-api-access-") + 5
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_EXPIRATION_SECONDS,
                                                  "path": "token"}}
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mount = {"name": volume["name"], "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]  # left alone
    mount_token_volume(spec)  # again (an existing kube-api-access volume is reused)
    assert len(spec["volumes"]) == 2 and spec["containers"][0]["volumeMounts"] == [mount]


def test_automount_opt_out():
    """Conformance: '[sig-auth] ServiceAccounts should allow opting out of API token automount
    [Conformance]': the pod's setting wins, then the service account's, default on."""
    sa_default, sa_on, sa_off = {}, {"automountServiceAccountToken": True}, {"automountServiceAccountToken": False}
    for pod_setting, expected in ((None, (True, True, False)), (True, (True, True, True)),
                                  (False, (False, False, False))):
        spec = {} if pod_setting is None else {"automountServiceAccountToken": pod_setting}
        assert tuple(_automount(sa, spec) for sa in (sa_default, sa_on, sa_off)) == expected
