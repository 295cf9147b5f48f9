"""Kubelet TLS bootstrapping: turn a join token into a node client certificate.

1. Read kube-public/cluster-info anonymously, *without* verifying TLS (we do not know
   the CA yet), and take the CA from its kubeconfig.
2. Trust that CA only if its hash is the one in the join token (``K10<hash>::...``);
   otherwise stop before any credential is sent.
3. From then on verify TLS against that CA and authenticate with the bootstrap token:
   make an EC key, post a CertificateSigningRequest (signer
   ``kubernetes.io/kube-apiserver-client-kubelet``, subject
   ``CN=system:node:<name>, O=system:nodes``) and wait for the controller manager to
   approve and sign it.
4. Write ``kubelet.key``, ``kubelet.crt``, ``ca.crt`` and ``kubelet.kubeconfig`` (client
   certificate auth) into the data dir.  A later start reuses that kubeconfig, with no
   token, while its certificate has more than a day left.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..client.rest import ApiException, ClientConfig, RestClient
from ..pki import write_kubeconfig
from .tokens import JoinToken, TokenError, ca_hash_matches, parse_join_token

log = logging.getLogger(__name__)

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
CSR_API = "certificates.k8s.io/v1"
CSR_PLURAL = "certificatesigningrequests"
RENEW_BEFORE = dt.timedelta(days=1)
DEFAULT_TIMEOUT = 300.0
KEY_FILE, CERT_FILE, CA_FILE, KUBECONFIG_FILE = "kubelet.key", "kubelet.crt", "ca.crt", "kubelet.kubeconfig"


class BootstrapError(Exception):
    """Joining the cluster failed; the message says why and what to check."""


def _private(path: Path, data: bytes) -> None:
    # Created 0600 from the start, written beside and renamed: never readable by others,
    # never half written.
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
    tmp.replace(path)


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def valid_kubeconfig(path: Path, node_name: str, now: dt.datetime | None = None) -> bool:
    """Whether ``path`` is a kubeconfig with this node's client certificate that is good
    for at least another day (kubelet's own rule for skipping bootstrap)."""
    try:
        cfg = yaml.safe_load(path.read_text())
        user = next(u["user"] for u in cfg["users"])
        if user.get("client-certificate-data"):
            pem = base64.b64decode(user["client-certificate-data"])
        else:
            pem = Path(user["client-certificate"]).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError, KeyError, TypeError, StopIteration, yaml.YAMLError):
        return False
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [f"system:node:{node_name}"]:
        return False  # another node's identity: the name changed, so join again
    return cert.not_valid_after_utc > (now or dt.datetime.now(dt.UTC)) + RENEW_BEFORE


async def fetch_cluster_ca(server_url: str, join: JoinToken, *, insecure_skip_ca_verification: bool = False,
                           timeout: float = 30.0) -> bytes:
    """The CA from cluster-info, once its hash matches the join token's.

    The read is anonymous and unverified on purpose: nothing secret is sent, and the hash
    check is what makes the answer trustworthy."""
    url = server_url.rstrip("/") + CLUSTER_INFO_PATH
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                s.get(url, ssl=False, headers={"Accept": "application/json"}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise BootstrapError(f"reading cluster-info from {server_url} failed: HTTP {resp.status}: "
                                     f"{body[:300].decode(errors='replace')}")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise BootstrapError(f"cannot reach the API server at {server_url}: {e}") from e
    try:
        kubeconfig = yaml.safe_load(orjson.loads(body)["data"]["kubeconfig"])
        ca_pem = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    except (ValueError, KeyError, IndexError, TypeError, yaml.YAMLError) as e:
        raise BootstrapError(f"cluster-info from {server_url} holds no usable CA: {e}") from e
    if join.ca_hash is None:
        if not insecure_skip_ca_verification:
            raise BootstrapError("the join token does not pin the cluster CA (K10<hash>::<id>.<secret>); refusing "
                                 "to trust whatever CA the server presents")
        log.warning("trusting the CA %s presented without verification", server_url)
        return ca_pem
    try:
        matches = ca_hash_matches(ca_pem, join.ca_hash)
    except TokenError as e:
        raise BootstrapError(f"cluster-info from {server_url}: {e}") from e
    if not matches:
        raise BootstrapError(f"the cluster CA served by {server_url} does not match the CA hash in the join token "
                             f"(sha256 {join.ca_hash}); refusing to join: wrong server, a stale token, or someone "
                             "in the middle")
    return ca_pem


def _ssl_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def make_csr(node_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.CertificateSigningRequest]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")])
    return key, x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def csr_object(request: x509.CertificateSigningRequest, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CSR object; named after its request, as the kubelet does, so a retry finds it."""
    der = request.public_bytes(serialization.Encoding.DER)
    spec: dict[str, Any] = {
        "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
        "signerName": KUBELET_CLIENT_SIGNER,
        "usages": ["digital signature", "client auth"],
    }
    if identity:
        # The API server should fill these from the requester (upstream overwrites anything
        # sent); this one does not yet, so say who we are as the server told us (whoami).
        spec.update({k: identity[k] for k in ("username", "uid", "groups") if identity.get(k)})
    return {"apiVersion": CSR_API, "kind": "CertificateSigningRequest",
            "metadata": {"name": f"node-csr-{hashlib.sha256(der).hexdigest()[:32]}"}, "spec": spec}


def _issued(csr: dict[str, Any]) -> bytes | None:
    """The signed certificate (PEM) once there; BootstrapError if it never will be."""
    status = csr.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") in ("Denied", "Failed") and c.get("status", "True") == "True":
            raise BootstrapError(f"certificate signing request {csr['metadata']['name']} was {c['type'].lower()}: "
                                 f"{c.get('reason', '')}: {c.get('message', '')}")
    cert = status.get("certificate")
    return base64.b64decode(cert) if cert else None


async def _wait_for_certificate(client: RestClient, name: str) -> bytes:
    """Watch the CSR until it carries a certificate; re-GET and re-watch if the watch ends."""
    while True:
        csr = await client.get(CSR_API, CSR_PLURAL, name)
        if (cert := _issued(csr)) is not None:
            return cert
        try:
            async for ev in client.watch(CSR_API, CSR_PLURAL, fieldSelector=f"metadata.name={name}",
                                         resourceVersion=csr["metadata"]["resourceVersion"], timeoutSeconds=60):
                if ev.get("type") == "DELETED":
                    raise BootstrapError(f"certificate signing request {name} was deleted before it was signed")
                if ev.get("type") in ("ADDED", "MODIFIED") and (cert := _issued(ev["object"])) is not None:
                    return cert
        except ApiException as e:
            if e.status != 410:
                raise
        except aiohttp.ClientError as e:
            log.debug("watching csr %s: %s; retrying", name, e)
            await asyncio.sleep(1.0)


def _check_certificate(cert_pem: bytes, key: ec.EllipticCurvePrivateKey, ca_pem: bytes) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(cert_pem)
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise BootstrapError("the signed certificate is not for the key we generated")
    for ca in x509.load_pem_x509_certificates(ca_pem):
        try:
            cert.verify_directly_issued_by(ca)
            return cert
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise BootstrapError("the signed certificate was not issued by the cluster CA")


async def bootstrap(server_url: str, join_token: str | None, data_dir: Path, node_name: str, *,
                    timeout: float = DEFAULT_TIMEOUT, insecure_skip_ca_verification: bool = False) -> Path:
    """Path of a kubeconfig with this node's client certificate, joining with ``join_token``
    unless ``data_dir`` already holds one valid for more than a day."""
    data_dir = Path(data_dir)
    kubeconfig = data_dir / KUBECONFIG_FILE
    if valid_kubeconfig(kubeconfig, node_name):
        log.info("using the existing node credentials in %s", kubeconfig)
        return kubeconfig
    if not join_token:
        raise BootstrapError(f"{kubeconfig} is missing or expiring and no join token was given")
    try:
        join = parse_join_token(join_token)
    except TokenError as e:
        raise BootstrapError(f"bad join token: {e}") from e
    ca_pem = await fetch_cluster_ca(server_url, join, insecure_skip_ca_verification=insecure_skip_ca_verification)

    client = RestClient(ClientConfig(server=server_url.rstrip("/"), ssl=_ssl_context(ca_pem), token=join.bearer),
                        user_agent=f"pinnace-kubelet/{node_name} bootstrap")
    try:
        async with asyncio.timeout(timeout):
            try:
                review = await client.create("authentication.k8s.io/v1", "selfsubjectreviews",
                                             {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
                identity = (review.get("status") or {}).get("userInfo") or {}
                key, request = make_csr(node_name)
                csr = csr_object(request, identity)
                name = csr["metadata"]["name"]
                await client.create(CSR_API, CSR_PLURAL, csr)
                log.info("posted certificate signing request %s for system:node:%s; waiting for approval", name,
                         node_name)
                cert_pem = await _wait_for_certificate(client, name)
            except ApiException as e:
                if e.status == 401:
                    raise BootstrapError("the API server refused the bootstrap token (unknown, expired or wrong "
                                         "secret): create a new one with `pinnace token create`") from e
                raise BootstrapError(f"joining through {server_url} failed: {e}") from e
    except TimeoutError:
        raise BootstrapError(f"no certificate for system:node:{node_name} within {timeout:.0f}s: is the controller "
                             "manager running with --cluster-signing-cert-file/--cluster-signing-key-file?") from None
    except (aiohttp.ClientError, ssl.SSLError) as e:
        raise BootstrapError(f"talking to {server_url} with the pinned CA failed: {e}") from e
    finally:
        await client.close()

    cert = _check_certificate(cert_pem, key, ca_pem)
    data_dir.mkdir(parents=True, exist_ok=True)
    _private(data_dir / KEY_FILE, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (data_dir / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (data_dir / CA_FILE).write_bytes(ca_pem)
    # The kubeconfig last: its presence means the rest is complete.
    tmp = write_kubeconfig(kubeconfig.with_name(KUBECONFIG_FILE + ".tmp"), server_url.rstrip("/"), ca_pem,
                           data_dir / CERT_FILE, data_dir / KEY_FILE, user=f"system:node:{node_name}")
    tmp.replace(kubeconfig)
    log.info("node %s joined: certificate valid until %s, kubeconfig %s", node_name,
             cert.not_valid_after_utc.isoformat(), kubeconfig)
    return kubeconfig


__all__ = ["BootstrapError", "bootstrap", "csr_object", "fetch_cluster_ca", "make_csr", "valid_kubeconfig"]
