"""Joining a node by bootstrap token against an in-process API server with the CSR
approving and signing controllers: token create -> cluster-info -> CSR -> certificate
-> a kubeconfig that is system:node:<name>."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pinnace import cli
from pinnace.client.rest import ApiException, ClientConfig, RestClient
from pinnace.controllers.certificates import APPROVED_MESSAGE, CSRApprovingController, CSRSigningController
from pinnace.kubelet.bootstrap import BootstrapError, bootstrap, csr_object
from pinnace.kubelet.tokens import bootstrap_token_secret, create_token, format_join_token
from tests.support.cluster import Cluster, running
from tests.support.waiting import eventually

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


def certificate_controllers(api, pki_dir: Path) -> AbstractAsyncContextManager[Cluster]:
    return running(api, nodes=0, scheduler=False, controllers=[
        lambda c, f, r: CSRApprovingController(c, f, r),
        lambda c, f, r: CSRSigningController(c, f, r, cert_file=pki_dir / "ca.crt", key_file=pki_dir / "ca.key"),
    ])


def ca_pem(pki_dir: Path) -> bytes:
    return (pki_dir / "ca.crt").read_bytes()


async def new_join_token(api, pki_dir: Path, ttl: float | None = 3600) -> str:
    admin = RestClient.from_kubeconfig(api.kubeconfig)
    try:
        token_id, secret = await create_token(admin, ttl)
    finally:
        await admin.close()
    return format_join_token(ca_pem(pki_dir), token_id, secret)


def bearer_client(api, pki_dir: Path, token: str) -> RestClient:
    import ssl

    return RestClient(ClientConfig(api.base, ssl.create_default_context(cadata=ca_pem(pki_dir).decode()),
                                   token=token))


async def anonymous(api, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(api.base + path, ssl=False, headers=headers or {}) as resp:
        return resp.status, await resp.json(content_type=None)


async def whoami(client: RestClient) -> dict:
    review = await client.create("authentication.k8s.io/v1", "selfsubjectreviews",
                                 {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]


async def test_cluster_info_is_public_and_nothing_else_is(api, pki_dir):
    status, cm = await anonymous(api, CLUSTER_INFO)
    assert status == 200, cm
    config = yaml.safe_load(cm["data"]["kubeconfig"])
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) == ca_pem(pki_dir)
    assert config["users"] is None  # public: no credentials in it
    for path in ("/api/v1/namespaces/kube-public/configmaps", "/api/v1/namespaces/kube-system/configmaps/x",
                 CLUSTER_INFO + "?watch=true", "/api/v1/nodes"):
        status, body = await anonymous(api, path)
        assert status == 401 and body["reason"] == "Unauthorized", (path, body)
    # A bad token is refused even where anonymous reads are allowed.
    status, _ = await anonymous(api, CLUSTER_INFO, {"Authorization": "Bearer abcdef.0123456789abcdef"})
    assert status == 401


async def test_node_joins_with_a_bootstrap_token(api, pki_dir, tmp_path, capsys):
    # The CLI: `pinnace token create` prints the join token, `list` shows it.
    rc = await asyncio.to_thread(cli.main, ["token", "create", "--ttl", "3h", "--kubeconfig", str(api.kubeconfig),
                                            "--description", "for worker-1"])
    join = capsys.readouterr().out.strip()
    assert rc == 0 and join.startswith("K10") and "::" in join
    token_id = join.rpartition("::")[2].split(".")[0]
    rc = await asyncio.to_thread(cli.main, ["token", "list", "--kubeconfig", str(api.kubeconfig)])
    listing = capsys.readouterr().out
    assert rc == 0 and token_id in listing and "for worker-1" in listing and " 2h " in listing, listing

    node_dir = tmp_path / "node"
    async with certificate_controllers(api, pki_dir):
        kubeconfig = await bootstrap(api.base, join, node_dir, "worker-1", timeout=20)
    assert kubeconfig == node_dir / "kubelet.kubeconfig"
    assert {p.name for p in node_dir.iterdir()} == {"kubelet.key", "kubelet.crt", "ca.crt", "kubelet.kubeconfig"}
    assert (node_dir / "kubelet.key").stat().st_mode & 0o077 == 0
    assert (node_dir / "ca.crt").read_bytes() == ca_pem(pki_dir)

    node = RestClient.from_kubeconfig(kubeconfig)
    try:
        assert (await node.list("v1", "nodes"))["kind"] == "NodeList"
        me = await whoami(node)
        assert me["username"] == "system:node:worker-1"
        assert "system:nodes" in me["groups"] and "system:authenticated" in me["groups"]
    finally:
        await node.close()

    status, csrs = await api.call("GET", CSRS)
    [csr] = csrs["items"]
    assert csr["spec"]["username"] == f"system:bootstrap:{token_id}"
    approved = next(c for c in csr["status"]["conditions"] if c["type"] == "Approved")
    assert (approved["reason"], approved["message"]) == ("AutoApproved", APPROVED_MESSAGE)
    cert = x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=366)

    # A restart reuses the certificate: no token needed, no new CSR.
    assert await bootstrap(api.base, None, node_dir, "worker-1", timeout=5) == kubeconfig
    assert len((await api.call("GET", CSRS))[1]["items"]) == 1


async def test_wrong_ca_hash_is_refused_before_any_credential_is_sent(api, pki_dir, tmp_path):
    join = await new_join_token(api, pki_dir)
    _, _, creds = join.partition("::")
    with pytest.raises(BootstrapError, match="does not match the CA hash"):
        await bootstrap(api.base, "K10" + "0" * 64 + "::" + creds, tmp_path / "node", "worker-1", timeout=5)
    with pytest.raises(BootstrapError, match="does not pin the cluster CA"):
        await bootstrap(api.base, creds, tmp_path / "node", "worker-1", timeout=5)
    assert (await api.call("GET", CSRS))[1]["items"] == []
    assert not (tmp_path / "node").exists()


async def test_expired_unknown_and_wrong_tokens_get_401(api, pki_dir, tmp_path):
    admin = RestClient.from_kubeconfig(api.kubeconfig)
    try:
        expired = bootstrap_token_secret("exp1re", "0123456789abcdef", 60,
                                         now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2))
        unusable = bootstrap_token_secret("noauth", "0123456789abcdef", 3600)
        unusable["data"]["usage-bootstrap-authentication"] = base64.b64encode(b"false").decode()
        for s in (expired, unusable):
            await admin.create("v1", "secrets", s, namespace="kube-system")
    finally:
        await admin.close()
    good = (await new_join_token(api, pki_dir)).rpartition("::")[2]
    good_id = good.split(".")[0]

    for token in ("exp1re.0123456789abcdef", "noauth.0123456789abcdef", "zzzzzz.0123456789abcdef",
                  f"{good_id}.ffffffffffffffff"):
        client = bearer_client(api, pki_dir, token)
        try:
            with pytest.raises(ApiException) as e:
                await client.list("v1", "nodes")
            assert e.value.status == 401 and e.value.body["kind"] == "Status", token
            assert e.value.reason == "Unauthorized"
        finally:
            await client.close()

    client = bearer_client(api, pki_dir, good)
    try:
        me = await whoami(client)
    finally:
        await client.close()
    assert me["username"] == f"system:bootstrap:{good_id}"
    assert me["groups"] == ["system:bootstrappers", "system:bootstrappers:pinnace:default-node-token",
                            "system:authenticated"]

    join = format_join_token(ca_pem(pki_dir), "exp1re", "0123456789abcdef")
    with pytest.raises(BootstrapError, match="refused the bootstrap token"):
        await bootstrap(api.base, join, tmp_path / "node", "worker-1", timeout=5)


def _request(cn: str, orgs: tuple[str, ...]) -> x509.CertificateSigningRequest:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    key = ec.generate_private_key(ec.SECP256R1())
    return x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())


async def test_only_kubelet_client_requests_of_entitled_requesters_are_approved(api, pki_dir, tmp_path):
    join = await new_join_token(api, pki_dir)
    async with certificate_controllers(api, pki_dir):
        kubeconfig = await bootstrap(api.base, join, tmp_path / "node", "worker-1", timeout=20)
        boot = bearer_client(api, pki_dir, join.rpartition("::")[2])
        node = RestClient.from_kubeconfig(kubeconfig)
        try:
            boot_identity, node_identity = await whoami(boot), await whoami(node)
            refused = {
                "masters": (boot, csr_object(_request("system:node:evil", ("system:masters",)), boot_identity)),
                "admin": (boot, csr_object(_request("admin", ("system:nodes",)), boot_identity)),
                "other-node": (node, csr_object(_request("system:node:worker-2", ("system:nodes",)),
                                                node_identity)),
            }
            server_auth = csr_object(_request("system:node:worker-3", ("system:nodes",)), boot_identity)
            server_auth["spec"]["usages"] = ["digital signature", "server auth"]
            refused["server-auth"] = (boot, server_auth)
            for client, obj in refused.values():
                await client.create("certificates.k8s.io/v1", "certificatesigningrequests", obj)
            # Renewal by the node itself is approved and signed, which shows the controllers
            # have seen everything created before it.
            renewal = csr_object(_request("system:node:worker-1", ("system:nodes",)), node_identity)
            await node.create("certificates.k8s.io/v1", "certificatesigningrequests", renewal)
            await eventually(lambda: api.call("GET", f"{CSRS}/{renewal['metadata']['name']}"),
                             lambda r: (r[1].get("status") or {}).get("certificate"), timeout=10)
            await asyncio.sleep(0.3)
        finally:
            await boot.close()
            await node.close()
    for what, (_client, obj) in refused.items():
        _, csr = await api.call("GET", f"{CSRS}/{obj['metadata']['name']}")
        assert not (csr.get("status") or {}).get("conditions"), what
        assert not (csr.get("status") or {}).get("certificate"), what


async def test_signer_fails_an_approved_request_that_is_not_a_kubelet_client_one(api, pki_dir):
    # A human approved it by mistake: the signer still refuses, with a Failed condition.
    obj = csr_object(_request("admin", ("system:masters",)))
    status, _ = await api.call("POST", CSRS, obj)
    assert status == 201
    name = obj["metadata"]["name"]
    _, csr = await api.call("GET", f"{CSRS}/{name}")
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "ByHand", "message": "oops"}]}
    status, body = await api.call("PUT", f"{CSRS}/{name}/approval", csr)
    assert status == 200, body
    async with certificate_controllers(api, pki_dir):
        _, csr = await eventually(lambda: api.call("GET", f"{CSRS}/{name}"),
                                  lambda r: len((r[1].get("status") or {}).get("conditions") or []) == 2)
    failed = csr["status"]["conditions"][1]
    assert failed["type"] == "Failed" and failed["reason"] == "SignerValidationFailure"
    assert "certificate" not in csr["status"]


def test_signing_key_must_belong_to_the_certificate(pki_dir, tmp_path):
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "other.key").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="is not the key"):
        CSRSigningController(None, _NoFactory(), object(), cert_file=pki_dir / "ca.crt",  # type: ignore[arg-type]
                             key_file=tmp_path / "other.key")


class _NoFactory:
    def informer(self, *_args):
        class _Inf:
            def add_event_handler(self, **_kw):
                return None
        return _Inf()
