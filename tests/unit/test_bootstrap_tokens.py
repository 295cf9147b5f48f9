"""Bootstrap tokens, join tokens, the bootstrap-token authenticator's Secret rules, and
the kubelet client CSR checks of the certificate controllers."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pinnace.apiserver.authn import bootstrap_token_user
from pinnace.controllers.certificates import (
    APPROVED_MESSAGE,
    SELF_APPROVED_MESSAGE,
    approval_message,
    certificate_duration,
    kubelet_client_problem,
    needs_signing,
    parse_csr,
    sign,
)
from pinnace.kubelet.bootstrap import csr_object, make_csr, valid_kubeconfig
from pinnace.kubelet.tokens import (
    DEFAULT_GROUP,
    JoinToken,
    TokenError,
    TokenInfo,
    bootstrap_token_secret,
    ca_cert_hash,
    ca_hash_matches,
    format_join_token,
    format_token_table,
    generate_bootstrap_token,
    parse_join_token,
    short_duration,
    token_info,
)
from pinnace.pki import CertificateAuthority, write_kubeconfig

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))


# -- token format --------------------------------------------------------------------------


def test_generated_tokens_have_the_bootstrap_format_and_differ():
    seen = {generate_bootstrap_token() for _ in range(50)}
    assert len(seen) == 50
    for token_id, secret in seen:
        assert re.fullmatch(r"[a-z0-9]{6}", token_id) and re.fullmatch(r"[a-z0-9]{16}", secret)


def test_join_token_round_trip(ca):
    text = format_join_token(ca.pem, "abcdef", "0123456789abcdef")
    assert text.startswith("K10") and text.endswith("::abcdef.0123456789abcdef")
    join = parse_join_token(text)
    assert join == JoinToken("abcdef", "0123456789abcdef", ca_cert_hash(ca.pem))
    assert str(join) == text and join.bearer == "abcdef.0123456789abcdef"


def test_bare_bootstrap_token_parses_without_ca_hash():
    assert parse_join_token(" abcdef.0123456789abcdef\n") == JoinToken("abcdef", "0123456789abcdef", None)


@pytest.mark.parametrize("text", [
    "", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef", "abcdef:0123456789abcdef",
    "K10deadbeef::abcdef.0123456789abcdef",  # hash too short
    "K10" + "a" * 64 + "::server:password",  # k3s username:password credentials
    "K10" + "a" * 64 + "::abcdef.short",
    "K10" + "g" * 64 + "::abcdef.0123456789abcdef",
])
def test_malformed_join_tokens_are_refused(text):
    with pytest.raises(TokenError):
        parse_join_token(text)


def test_ca_hash_is_sha256_of_the_der_certificate(ca):
    der = ca.cert.public_bytes(serialization.Encoding.DER)
    assert ca_cert_hash(ca.pem) == hashlib.sha256(der).hexdigest()
    # PEM formatting does not matter for the DER hash; the raw-PEM hash (k3s) also matches.
    assert ca_hash_matches(ca.pem.replace(b"\n", b"\r\n"), ca_cert_hash(ca.pem))
    assert ca_hash_matches(ca.pem, hashlib.sha256(ca.pem).hexdigest())
    assert ca_hash_matches(ca.pem, "sha256:" + ca_cert_hash(ca.pem).upper())
    assert not ca_hash_matches(ca.pem, "0" * 64)
    with pytest.raises(TokenError):
        ca_cert_hash(b"not a certificate")


# -- the Secret --------------------------------------------------------------------------


def _decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_token_secret_has_the_kubeadm_fields():
    s = bootstrap_token_secret("abcdef", "0123456789abcdef", 3600, now=NOW, description="node join")
    assert s["type"] == "bootstrap.kubernetes.io/token"
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert _decoded(s) == {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                           "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                           "expiration": "2025-01-01T13:00:00Z", "auth-extra-groups": DEFAULT_GROUP,
                           "description": "node join"}
    assert "expiration" not in _decoded(bootstrap_token_secret("abcdef", "0123456789abcdef", None))


def test_authenticator_accepts_a_valid_token():
    s = bootstrap_token_secret("abcdef", "0123456789abcdef", 3600, now=NOW)
    user = bootstrap_token_user(s, "abcdef", "0123456789abcdef", now=NOW)
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", DEFAULT_GROUP, "system:authenticated")


def _with(secret: dict, **data: str | None) -> dict:
    out = {**secret, "data": dict(secret["data"])}
    for k, v in data.items():
        key = k.replace("_", "-")
        if v is None:
            out["data"].pop(key, None)
        else:
            out["data"][key] = base64.b64encode(v.encode()).decode()
    return out


@pytest.mark.parametrize("change", [
    lambda s: {**s, "type": "Opaque"},
    lambda s: {**s, "metadata": {**s["metadata"], "name": "bootstrap-token-zzzzzz"}},
    lambda s: {**s, "metadata": {**s["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"}},
    lambda s: _with(s, token_id="zzzzzz"),
    lambda s: _with(s, token_secret="ffffffffffffffff"),
    lambda s: _with(s, usage_bootstrap_authentication=None),
    lambda s: _with(s, usage_bootstrap_authentication="false"),
    lambda s: _with(s, expiration="2025-01-01T11:59:59Z"),  # expired a second ago
    lambda s: _with(s, expiration="2025-01-01T12:00:00Z"),  # expires now
    lambda s: _with(s, expiration="next tuesday"),
    lambda s: _with(s, auth_extra_groups="system:masters"),  # must stay under system:bootstrappers:
    lambda s: {**s, "data": {**s["data"], "token-secret": "%%%"}},  # not base64
], ids=["type", "name", "deleting", "id", "secret", "no-usage", "usage-false", "expired", "expires-now",
        "bad-expiration", "bad-group", "bad-base64"])
def test_authenticator_refuses(change):
    s = bootstrap_token_secret("abcdef", "0123456789abcdef", 3600, now=NOW)
    assert bootstrap_token_user(change(s), "abcdef", "0123456789abcdef", now=NOW) is None


def test_authenticator_reads_stringdata_and_no_expiration():
    s = {"type": "bootstrap.kubernetes.io/token",
         "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
         "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                        "usage-bootstrap-authentication": "true"}}
    user = bootstrap_token_user(s, "abcdef", "0123456789abcdef", now=NOW)
    assert user is not None and user.groups == ("system:bootstrappers", "system:authenticated")


def test_token_list_table():
    s = bootstrap_token_secret("abcdef", "0123456789abcdef", 23 * 3600 + 59 * 60, now=NOW, description="d")
    info = token_info(s)
    assert info == TokenInfo("abcdef", dt.datetime(2025, 1, 2, 11, 59, tzinfo=dt.UTC),
                             ("authentication", "signing"), "d", (DEFAULT_GROUP,))
    forever = token_info(bootstrap_token_secret("ghijkl", "0123456789abcdef", None))
    table = format_token_table([info, forever], now=NOW).splitlines()
    assert table[0].split() == ["ID", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    assert table[1].split() == ["abcdef", "23h", "2025-01-02T11:59:00Z", "authentication,signing", "d", DEFAULT_GROUP]
    assert table[2].split()[:3] == ["ghijkl", "<forever>", "<never>"]
    assert "0123456789abcdef" not in "\n".join(table)  # no secrets on screen
    expired = format_token_table([info], now=NOW + dt.timedelta(days=2)).splitlines()[1]
    assert expired.split()[1] == "<invalid>"
    assert token_info({**s, "type": "Opaque"}) is None
    assert [short_duration(x) for x in (5, 300, 7200, 3 * 86400)] == ["5s", "5m", "2h", "3d"]


# -- CSR checks ----------------------------------------------------------------------------


def _request(cn: str = "system:node:n1", orgs: tuple[str, ...] = ("system:nodes",),
             sans: list[x509.GeneralName] | None = None) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


CLIENT = ["digital signature", "client auth"]


def test_kubelet_client_request_is_recognised():
    assert kubelet_client_problem(_request(), CLIENT) is None
    assert kubelet_client_problem(_request(), ["client auth", "key encipherment", "digital signature"]) is None


@pytest.mark.parametrize(("request_args", "usages"), [
    ({"cn": "admin"}, CLIENT),
    ({"cn": "system:node:"}, CLIENT),
    ({"orgs": ("system:masters",)}, CLIENT),
    ({"orgs": ("system:nodes", "system:masters")}, CLIENT),
    ({"orgs": ()}, CLIENT),
    ({"sans": [x509.DNSName("n1.example")]}, CLIENT),
    ({}, ["client auth"]),
    ({}, ["digital signature"]),
    ({}, [*CLIENT, "server auth"]),
    ({}, [*CLIENT, "client auth"]),
], ids=["cn", "empty-node", "org", "extra-org", "no-org", "san", "no-digsig", "no-clientauth", "server-auth",
        "duplicate"])
def test_other_requests_are_not_kubelet_client_requests(request_args, usages):
    assert kubelet_client_problem(_request(**request_args), usages) is not None


def _csr(username: str, groups: list[str]) -> dict:
    return {"spec": {"username": username, "groups": groups}}


def test_who_may_have_a_kubelet_client_certificate():
    req = _request("system:node:n1")
    assert approval_message(_csr("system:bootstrap:abcdef", ["system:bootstrappers", "system:authenticated"]),
                            req) == APPROVED_MESSAGE
    assert approval_message(_csr("system:node:n1", ["system:nodes", "system:authenticated"]),
                            req) == SELF_APPROVED_MESSAGE
    assert approval_message(_csr("system:node:n2", ["system:nodes"]), req) is None  # another node
    assert approval_message(_csr("system:bootstrap:abcdef", ["system:authenticated"]), req) is None
    assert approval_message(_csr("alice", ["system:bootstrappers"]), req) is None
    assert approval_message({"spec": {}}, req) is None


def test_csr_object_from_the_agent_is_what_the_controllers_want():
    _key, req = make_csr("worker-1")
    obj = csr_object(req, {"username": "system:bootstrap:abcdef", "groups": ["system:bootstrappers"]})
    assert obj["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert obj["metadata"]["name"].startswith("node-csr-")
    parsed = parse_csr(obj)
    assert kubelet_client_problem(parsed, obj["spec"]["usages"]) is None
    assert approval_message(obj, parsed) == APPROVED_MESSAGE
    with pytest.raises(ValueError):
        parse_csr({"spec": {"request": base64.b64encode(b"junk").decode()}})


def test_needs_signing():
    base = {"spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet"}}
    approved = {**base, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    assert not needs_signing(base)
    assert needs_signing(approved)
    assert not needs_signing({**approved, "status": {**approved["status"], "certificate": "eA=="}})
    assert not needs_signing({**approved, "spec": {"signerName": "example.com/other"}})
    failed = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}]}
    assert not needs_signing({**base, "status": failed})


def test_certificate_duration():
    year = dt.timedelta(days=365)
    assert certificate_duration(None) == year
    assert certificate_duration(3600) == dt.timedelta(hours=1)
    assert certificate_duration(60) == dt.timedelta(minutes=10)  # the API's floor
    assert certificate_duration(10 * 365 * 86400) == year


def test_sign_issues_a_client_certificate(ca):
    req = _request("system:node:n1")
    cert = sign(req, CLIENT, ca.cert, ca.key, dt.timedelta(hours=2), now=NOW)
    assert cert.subject == req.subject and cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment and not ku.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=2)
    # Never beyond the CA's own end.
    late = sign(req, CLIENT, ca.cert, ca.key, dt.timedelta(days=365), now=ca.cert.not_valid_after_utc
                - dt.timedelta(days=1))
    assert late.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_valid_kubeconfig(ca, tmp_path):
    def kubeconfig(cn: str, days: float) -> None:
        cert, key = ca.issue(cn, ("system:nodes",), client=True)
        key_path, cert_path = tmp_path / "k.key", tmp_path / "k.crt"
        assert key is not None
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_kubeconfig(tmp_path / "kubelet.kubeconfig", "https://127.0.0.1:6443", ca.pem, cert_path, key_path)

    path = tmp_path / "kubelet.kubeconfig"
    assert not valid_kubeconfig(path, "n1")  # missing
    kubeconfig("system:node:n1", 365)
    assert valid_kubeconfig(path, "n1")
    assert not valid_kubeconfig(path, "n2")  # another node's identity
    # Expiring within a day: bootstrap again.
    assert not valid_kubeconfig(path, "n1", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=364.5))
    path.write_text("garbage: [")
    assert not valid_kubeconfig(path, "n1")
