"""In-cluster authentication against a real in-process API server that signs
service-account tokens: TokenRequest (``serviceaccounts/token``), bound and legacy
tokens authenticating as their service account, the ServiceAccount admission plugin,
the ``kube-root-ca.crt`` publisher and the tokens controller, OIDC discovery, the real
``kubectl create token``, and a pod run by a node agent (process runtime) getting a
working projected token."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pinnace.apiserver.serviceaccounts import TOKEN_MOUNT_PATH, ServiceAccountConfig
from pinnace.controllers.rootcacertpublisher import RootCACertPublisher
from pinnace.controllers.serviceaccount import ServiceAccountController
from pinnace.controllers.serviceaccount_tokens import TokensController
from pinnace.kubelet.mounts import mounts_under
from pinnace.pki import serviceaccount as sat
from tests.integration.conftest import Api, serve_api
from tests.support.cluster import kubectl, running
from tests.support.images import IMAGE, busybox_archive
from tests.support.runc import remove_runc_containers, runc_skip_reason
from tests.support.waiting import eventually, get_or_none

pytestmark = pytest.mark.timeout(120)

NS = "auth"
ISSUER = sat.DEFAULT_ISSUER


@pytest.fixture
async def api(tmp_path, pki_dir) -> AsyncIterator[Api]:
    """The API server of tests/integration/conftest.py, signing service-account tokens."""
    signing_key, _ = sat.ensure_signing_key(tmp_path / "sa")
    async with serve_api(tmp_path, pki_dir, service_accounts=ServiceAccountConfig(signing_key_file=signing_key)) as a:
        status, body = await call(a, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        assert status == 201, body
        yield a


async def call(api: Api, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    return await api.call(method, path, body, headers={"Authorization": f"Bearer {token}"} if token else None)


async def create(api: Api, path: str, obj: dict) -> dict:
    status, body = await call(api, "POST", path, obj)
    assert status == 201, body
    return body


async def service_account(api: Api, name: str, **fields: Any) -> dict:
    return await create(api, f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": name}, **fields})


async def pod(api: Api, name: str, sa: str, **spec: Any) -> dict:
    return await create(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": name}, "spec": {
        "serviceAccountName": sa, "containers": [{"name": "app", "image": "busybox"}], **spec}})


async def request_token(api: Api, sa: str, spec: dict) -> tuple[int, Any]:
    return await call(api, "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})


async def whoami(api: Api, token: str) -> tuple[int, Any]:
    status, body = await call(api, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, token)
    return status, (body.get("status") or {}).get("userInfo") if status == 201 else body


async def get_api_status(api: Api, token: str) -> int:
    return (await call(api, "GET", "/api", token=token))[0]


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_pod_bound_token_authenticates_until_the_pod_is_deleted(api):
    """Conformance: '[sig-auth] ServiceAccounts should mount projected service account token
    [Conformance]' (the TokenRequest API the kubelet projects tokens with)."""
    sa = await service_account(api, "robot")
    p = await pod(api, "worker", "robot")
    # The ServiceAccount admission plugin mounted the kube-api-access volume.
    volume = next(v for v in p["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    assert {"name": volume["name"], "readOnly": True, "mountPath": TOKEN_MOUNT_PATH} in \
        p["spec"]["containers"][0]["volumeMounts"]

    before = int(time.time())
    status, tr = await request_token(api, "robot", {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "worker", "uid": p["metadata"]["uid"]}})
    assert status == 201, tr
    assert tr["kind"] == "TokenRequest" and tr["spec"]["audiences"] == [ISSUER]
    assert tr["spec"]["expirationSeconds"] == 3600
    expires = dt.datetime.fromisoformat(tr["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    assert before + 3600 <= expires.timestamp() <= time.time() + 3601
    token = tr["status"]["token"]
    claims = claims_of(token)
    assert claims["sub"] == f"system:serviceaccount:{NS}:robot" and claims["iss"] == ISSUER
    assert claims["kubernetes.io"]["pod"] == {"name": "worker", "uid": p["metadata"]["uid"]}
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "robot", "uid": sa["metadata"]["uid"]}

    assert await get_api_status(api, token) == 200
    status, me = await whoami(api, token)
    assert status == 201, me
    assert me["username"] == f"system:serviceaccount:{NS}:robot" and me["uid"] == sa["metadata"]["uid"]
    assert me["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
    assert me["extra"]["authentication.kubernetes.io/pod-name"] == ["worker"]
    assert me["extra"]["authentication.kubernetes.io/pod-uid"] == [p["metadata"]["uid"]]

    # TokenReview says the same, for the API audience.
    status, review = await call(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"kind": "TokenReview", "spec": {"token": token}})
    assert status == 201 and review["status"]["authenticated"] is True, review
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{NS}:robot"
    assert review["status"]["audiences"] == [ISSUER]

    # The pod goes (it never ran on a node, so at once): its tokens stop working.
    status, _ = await call(api, "DELETE", f"/api/v1/namespaces/{NS}/pods/worker")
    assert status == 200
    await eventually(lambda: get_api_status(api, token), lambda s: s == 401, what="401 after the pod is gone")
    status, review = await call(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"kind": "TokenReview", "spec": {"token": token}})
    assert review["status"]["authenticated"] is False and "invalidated" in review["status"]["error"]


async def test_token_request_validation(api):
    await service_account(api, "robot")
    p = await pod(api, "worker", "robot")
    await service_account(api, "other")
    status, body = await request_token(api, "robot", {"expirationSeconds": 300})
    assert status == 422 and "may not specify a duration less than 10 minutes" in body["message"], body
    status, body = await request_token(api, "ghost", {})
    assert status == 404 and body["details"] == {"name": "ghost", "kind": "serviceaccounts"}, body
    status, body = await request_token(api, "robot", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                         "name": "nope"}})
    assert status == 404 and body["details"]["kind"] == "pods", body
    status, body = await request_token(api, "robot", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                         "name": "worker", "uid": "stale"}})
    assert status == 409 and "does not match the UID in record" in body["message"], body
    status, body = await request_token(api, "other", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                         "name": "worker"}})
    assert status == 400 and "different serviceaccount name" in body["message"], body
    status, body = await request_token(api, "robot", {"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1",
                                                                         "name": "x"}})
    assert status == 400 and "cannot bind token to object of type" in body["message"], body
    # A token for another audience is no good for the API server, but TokenReview vouches for it there.
    status, tr = await request_token(api, "robot", {"audiences": ["vault"], "expirationSeconds": 7200})
    assert status == 201 and claims_of(tr["status"]["token"])["exp"] - claims_of(tr["status"]["token"])["iat"] == 7200
    assert await get_api_status(api, tr["status"]["token"]) == 401
    status, review = await call(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        "kind": "TokenReview", "spec": {"token": tr["status"]["token"], "audiences": ["vault"]}})
    assert review["status"]["authenticated"] is True and review["status"]["audiences"] == ["vault"], review
    # The kubelet's default request (3607 s, bound to a pod) gets a year, flagged stale after the hour.
    status, tr = await request_token(api, "robot", {"expirationSeconds": 3607, "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "worker", "uid": p["metadata"]["uid"]}})
    claims = claims_of(tr["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    status, body = await call(api, "GET", f"/api/v1/namespaces/{NS}/serviceaccounts/robot/token")
    assert status == 405, body


async def test_secret_and_node_bound_tokens_go_with_their_object(api):
    await service_account(api, "robot")
    secret = await create(api, f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "anchor"}})
    node = await create(api, "/api/v1/nodes", {"metadata": {"name": "anchor-node"}})
    tokens = {}
    for kind, obj, path in (("Secret", secret, f"/api/v1/namespaces/{NS}/secrets/anchor"),
                            ("Node", node, "/api/v1/nodes/anchor-node")):
        status, tr = await request_token(api, "robot", {"boundObjectRef": {
            "kind": kind, "apiVersion": "v1", "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}})
        assert status == 201, tr
        tokens[path] = tr["status"]["token"]
        assert claims_of(tokens[path])["kubernetes.io"][kind.lower()]["uid"] == obj["metadata"]["uid"]
        assert await get_api_status(api, tokens[path]) == 200
    for path, token in tokens.items():
        status, _ = await call(api, "DELETE", path)
        assert status == 200
        await eventually(lambda t=token: get_api_status(api, t), lambda s: s == 401, what=f"401 after {path}")


async def test_expired_and_forged_tokens_are_refused(api):
    sa = await service_account(api, "robot")
    signer = sat.Signer.from_file(api.server.config.service_accounts.signing_key_file)
    long_ago = int(time.time()) - 7200
    expired = signer.sign(sat.bound_claims(issuer=ISSUER, audiences=[ISSUER], service_account=sa, now=long_ago,
                                           expiration_seconds=3600))
    assert await get_api_status(api, expired) == 401
    fresh = signer.sign(sat.bound_claims(issuer=ISSUER, audiences=[ISSUER], service_account=sa,
                                         now=int(time.time()), expiration_seconds=3600))
    assert await get_api_status(api, fresh) == 200
    header, payload, sig = fresh.split(".")
    assert await get_api_status(api, f"{header}.{payload}.{sig[::-1]}") == 401
    # Another incarnation of the account: the uid in the token no longer matches.
    status, _ = await call(api, "DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/robot")
    assert status == 200
    await service_account(api, "robot")
    await eventually(lambda: get_api_status(api, fresh), lambda s: s == 401, what="401 for the old account's token")


async def test_legacy_token_secret_works_until_deleted(api, pki_dir):
    """Legacy tokens: the tokens controller fills a ``kubernetes.io/service-account-token``
    Secret; its token authenticates while the Secret exists, and goes with its account."""
    signing_key = api.server.config.service_accounts.signing_key_file
    ca = (pki_dir / "ca.crt").read_bytes()
    tokens = lambda c, f, r: TokensController(c, f, r, private_key_file=signing_key, root_ca=ca)  # noqa: E731
    async with running(api, nodes=0, scheduler=False, controllers=[tokens]):
        sa = await service_account(api, "deployer")
        await create(api, f"/api/v1/namespaces/{NS}/secrets", {
            "metadata": {"name": "deployer-token", "annotations": {"kubernetes.io/service-account.name": "deployer"}},
            "type": "kubernetes.io/service-account-token"})
        secret = await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/secrets/deployer-token"),
                                  lambda s: s and (s.get("data") or {}).get("token"), what="the token filled in")
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        assert data["ca.crt"] == ca and data["namespace"] == NS.encode()
        assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
        token = data["token"].decode()
        assert claims_of(token)["iss"] == "kubernetes/serviceaccount"
        status, me = await whoami(api, token)
        assert status == 201 and me["username"] == f"system:serviceaccount:{NS}:deployer", me

        status, _ = await call(api, "DELETE", f"/api/v1/namespaces/{NS}/secrets/deployer-token")
        assert status == 200
        await eventually(lambda: get_api_status(api, token), lambda s: s == 401, what="401 after the secret is gone")

        # A token Secret goes with its service account.
        await create(api, f"/api/v1/namespaces/{NS}/secrets", {
            "metadata": {"name": "deployer-token-2", "annotations": {"kubernetes.io/service-account.name": "deployer"}},
            "type": "kubernetes.io/service-account-token"})
        await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/secrets/deployer-token-2"),
                         lambda s: s and (s.get("data") or {}).get("token"), what="the second token")
        status, _ = await call(api, "DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/deployer")
        assert status == 200
        await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/secrets/deployer-token-2"),
                         lambda s: s is None, what="the token secret deleted with its account")


async def test_kube_root_ca_configmap_in_every_namespace(api, pki_dir):
    """Conformance: '[sig-auth] ServiceAccounts should guarantee kube-root-ca.crt exist in any
    namespace [Conformance]': created, recreated if deleted, reconciled if modified."""
    ca = (pki_dir / "ca.crt").read_bytes()
    publisher = lambda c, f, r: RootCACertPublisher(c, f, r, ca)  # noqa: E731
    path = "/api/v1/namespaces/fresh/configmaps/kube-root-ca.crt"
    async with running(api, nodes=0, scheduler=False, controllers=[publisher]):
        await create(api, "/api/v1/namespaces", {"metadata": {"name": "fresh"}})
        cm = await eventually(lambda: get_or_none(api, path), what="kube-root-ca.crt in a new namespace")
        assert cm["data"] == {"ca.crt": ca.decode()}
        assert await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt"))

        status, _ = await call(api, "DELETE", path)
        assert status == 200
        await eventually(lambda: get_or_none(api, path), lambda c: c and c["metadata"]["uid"] != cm["metadata"]["uid"],
                         what="kube-root-ca.crt recreated")

        cm = await get_or_none(api, path)
        cm["data"] = {"ca.crt": "not a ca", "extra": "x"}
        status, _ = await call(api, "PUT", path, cm)
        assert status == 200
        await eventually(lambda: get_or_none(api, path), lambda c: c and c["data"] == {"ca.crt": ca.decode()},
                         what="kube-root-ca.crt restored")


async def test_oidc_discovery(api):
    """Conformance: '[sig-auth] ServiceAccounts ServiceAccountIssuerDiscovery should support
    OIDC discovery of service account issuer [Conformance]': the discovery document and the
    JWKS verify a token the API server issued."""
    await service_account(api, "robot")
    status, tr = await request_token(api, "robot", {})
    token = tr["status"]["token"]
    async with api.session.get(api.base + "/.well-known/openid-configuration",
                               headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        doc = await resp.json()
    assert doc == {"issuer": ISSUER, "jwks_uri": "https://kubernetes.default.svc.cluster.local/openid/v1/jwks",
                   "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                   "id_token_signing_alg_values_supported": ["RS256"]}
    async with api.session.get(api.base + "/openid/v1/jwks", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/jwk-set+json"
        jwks = json.loads(await resp.read())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])

    def num(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    public = rsa.RSAPublicNumbers(num(key["e"]), num(key["n"])).public_key()
    h, p, s = token.split(".")
    public.verify(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), f"{h}.{p}".encode(), padding.PKCS1v15(),
                  hashes.SHA256())
    # Not for anonymous callers (upstream grants it to service accounts by RBAC).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(
            cafile=str(api.server.config.client_ca)))) as anon:
        async with anon.get(api.base + "/.well-known/openid-configuration") as resp:
            assert resp.status == 401


async def test_admission_requires_the_service_account(api):
    status, body = await call(api, "POST", f"/api/v1/namespaces/{NS}/pods", {
        "metadata": {"name": "lost"}, "spec": {"serviceAccountName": "ghost",
                                               "containers": [{"name": "app", "image": "busybox"}]}})
    assert status == 403 and 'serviceaccount "ghost" not found' in body["message"], body
    # No serviceaccount controller has ever run (no kube-system/default): pods still go in, tokenless.
    p = await pod(api, "orphan", "default")
    assert p["spec"]["serviceAccountName"] == "default"
    assert not any(v["name"].startswith("kube-api-access-") for v in p["spec"].get("volumes") or [])
    # Once one has, a missing default account is an error, as upstream.
    await create(api, "/api/v1/namespaces/kube-system/serviceaccounts", {"metadata": {"name": "default"}})
    status, body = await call(api, "POST", f"/api/v1/namespaces/{NS}/pods", {
        "metadata": {"name": "late"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
    assert status == 403 and 'serviceaccount "default" not found' in body["message"], body
    await service_account(api, "default")
    p = await pod(api, "late", "default")
    assert any(v["name"].startswith("kube-api-access-") for v in p["spec"]["volumes"])
    await service_account(api, "quiet", automountServiceAccountToken=False)
    p = await pod(api, "quiet", "quiet")
    assert not any(v["name"].startswith("kube-api-access-") for v in p["spec"].get("volumes") or [])
    p = await pod(api, "loud", "quiet", automountServiceAccountToken=True)  # the pod's word wins
    assert any(v["name"].startswith("kube-api-access-") for v in p["spec"]["volumes"])


@pytest.mark.slow
async def test_kubectl_create_token(api):
    """The real ``kubectl create token`` posts a TokenRequest; the token it prints works."""
    await service_account(api, "cli")
    p = await pod(api, "cli-pod", "cli")
    rc, out = await kubectl(api, "create", "token", "cli", "-n", NS, "--duration=20m")
    assert rc == 0, out
    token = out.strip()
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 1200 and claims["sub"] == f"system:serviceaccount:{NS}:cli"
    status, me = await whoami(api, token)
    assert status == 201 and me["username"] == f"system:serviceaccount:{NS}:cli"
    rc, out = await kubectl(api, "create", "token", "cli", "-n", NS, "--bound-object-kind=Pod",
                            "--bound-object-name=cli-pod", f"--bound-object-uid={p['metadata']['uid']}")
    assert rc == 0, out
    assert claims_of(out.strip())["kubernetes.io"]["pod"]["name"] == "cli-pod"
    rc, out = await kubectl(api, "auth", "whoami", f"--token={out.strip()}", "-o", "json")
    if rc == 0:  # kubectl >= 1.28
        assert json.loads(out)["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:cli"


async def test_process_runtime_pod_gets_a_working_projected_token(api, pki_dir, tmp_path):
    """Conformance: '[sig-auth] ServiceAccounts should mount an API token into pods
    [Conformance]': a pod run by a real node agent (process runtime) gets token, ca.crt and
    namespace in its service-account mount, and the token authenticates as the pod."""
    from pinnace.kubelet.agent import AgentConfig, start_agent
    from pinnace.pki import CertificateAuthority, kubelet_serving_cert

    ca = CertificateAuthority.load_or_create(pki_dir)
    node = "sa-node"
    serving = kubelet_serving_cert(ca, tmp_path, node, ("127.0.0.1",))
    controllers = [lambda c, f, r: RootCACertPublisher(c, f, r, ca.pem),
                   lambda c, f, r: ServiceAccountController(c, f, r)]
    async with running(api, nodes=0, scheduler=False, controllers=controllers):
        agent = await start_agent(AgentConfig(
            kubeconfig=api.kubeconfig, data_dir=tmp_path / "agent", node_name=node, serving_cert=serving.cert,
            serving_key=serving.key, client_ca=ca.cert_path, runtime="process", node_ip="127.0.0.1", port=0,
            backoff_base=1.0))
        try:
            await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/serviceaccounts/default"),
                             what="the default service account")
            p = await create(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "reader"}, "spec": {
                "nodeName": node, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "60"]}]}})
            assert p["spec"]["serviceAccountName"] == "default"
            await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/pods/reader"),
                             lambda q: q and (q.get("status") or {}).get("phase") == "Running", timeout=60,
                             what="the pod running")
            # The process runtime records the mounts it cannot apply: the service-account one
            # names the host directory the kubelet filled.
            host_dir = None
            for state in (tmp_path / "agent" / "runtime").rglob("containers/*/state.json"):
                for m in json.loads(state.read_text())["config"]["mounts"]:
                    if m["container_path"] == TOKEN_MOUNT_PATH:
                        host_dir = Path(m["host_path"])
            assert host_dir is not None
            token = (host_dir / "token").read_text()
            assert (host_dir / "ca.crt").read_bytes() == ca.pem
            assert (host_dir / "namespace").read_text() == NS
            status, me = await whoami(api, token)
            assert status == 201, me
            assert me["username"] == f"system:serviceaccount:{NS}:default"
            assert me["extra"]["authentication.kubernetes.io/pod-name"] == ["reader"]
            assert me["extra"]["authentication.kubernetes.io/node-name"] == [node]
            # Deleted, the pod's volumes (tmpfs mounts) are torn down by the kubelet.
            status, _ = await call(api, "DELETE", f"/api/v1/namespaces/{NS}/pods/reader")
            assert status == 200
            await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/pods/reader"), lambda q: q is None,
                             timeout=30, what="the pod gone")
            await eventually(lambda: mounts_under(tmp_path), lambda m: not m, what="its volumes unmounted")
        finally:
            await agent.stop()
            for mountpoint in sorted(mounts_under(tmp_path), key=len, reverse=True):
                proc = await asyncio.create_subprocess_exec("umount", mountpoint)
                await proc.wait()


@pytest.mark.skipif(runc_skip_reason() is not None, reason=str(runc_skip_reason()))
async def test_runc_container_reads_its_token_at_the_default_path(api, pki_dir, tmp_path):
    """Conformance: '[sig-auth] ServiceAccounts should mount an API token into pods
    [Conformance]': in a real (runc) container, token, ca.crt and namespace are at
    /var/run/secrets/kubernetes.io/serviceaccount, and the token authenticates as the pod."""
    from pinnace.images.service import ImageService
    from pinnace.kubelet.agent import AgentConfig, start_agent
    from pinnace.pki import CertificateAuthority, kubelet_serving_cert

    ca = CertificateAuthority.load_or_create(pki_dir)
    node = "sa-runc-node"
    serving = kubelet_serving_cert(ca, tmp_path, node, ("127.0.0.1",))
    data_dir = tmp_path / "agent"
    images = ImageService(data_dir)
    await images.import_archive(busybox_archive(tmp_path / "busybox.tar"))
    await images.close()
    controllers = [lambda c, f, r: RootCACertPublisher(c, f, r, ca.pem),
                   lambda c, f, r: ServiceAccountController(c, f, r)]
    pods = f"/api/v1/namespaces/{NS}/pods"
    async with running(api, nodes=0, scheduler=False, controllers=controllers):
        agent = await start_agent(AgentConfig(
            kubeconfig=api.kubeconfig, data_dir=data_dir, node_name=node, serving_cert=serving.cert,
            serving_key=serving.key, client_ca=ca.cert_path, runtime="runc", node_ip="127.0.0.1", port=0,
            backoff_base=1.0))
        try:
            await eventually(lambda: get_or_none(api, f"/api/v1/namespaces/{NS}/serviceaccounts/default"),
                             what="the default service account")
            d = TOKEN_MOUNT_PATH
            await create(api, pods, {"metadata": {"name": "reader"}, "spec": {
                "nodeName": node, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": [
                    "sh", "-c", f"cat {d}/token; echo; cat {d}/namespace; echo; cat {d}/ca.crt; sleep 60"]}]}})

            async def log() -> str:
                async with api.session.get(f"{api.base}{pods}/reader/log") as resp:
                    return await resp.text() if resp.status == 200 else ""

            out = await eventually(log, lambda text: "END CERTIFICATE" in text, timeout=60, what="the pod's output")
            token, namespace, ca_pem = out.split("\n", 2)
            assert namespace == NS and ca_pem.strip() == ca.pem.decode().strip()
            status, me = await whoami(api, token)
            assert status == 201, me
            assert me["username"] == f"system:serviceaccount:{NS}:default"
            assert me["extra"]["authentication.kubernetes.io/pod-name"] == ["reader"]
            status, _ = await call(api, "DELETE", f"{pods}/reader")
            assert status == 200
            await eventually(lambda: get_or_none(api, f"{pods}/reader"), lambda q: q is None, timeout=30,
                             what="the pod gone")
        finally:
            await agent.stop()
            remove_runc_containers(tmp_path)
            for mountpoint in sorted(mounts_under(tmp_path), key=len, reverse=True):
                proc = await asyncio.create_subprocess_exec("umount", mountpoint)
                await proc.wait()
