"""CertificateSigningRequest controllers (kube-controller-manager's ``csrapproving``
and ``csrsigning``) for the signer ``kubernetes.io/kube-apiserver-client-kubelet``:
how a node that joined with a bootstrap token gets its client certificate.

- :class:`CSRApprovingController` approves a CSR when it asks for exactly a kubelet
  client certificate (``CN=system:node:<name>``, ``O=system:nodes``, no SANs, usages
  digital signature + client auth, key encipherment allowed) *and* its requester may
  have one: a bootstrap token user (``system:bootstrap:<id>`` in
  ``system:bootstrappers``), or that very node renewing (``spec.username`` equal to the
  CN, in ``system:nodes``).  Upstream asks RBAC (a SubjectAccessReview for
  ``certificatesigningrequests/nodeclient`` and ``/selfnodeclient``); this API server
  enforces no RBAC yet, so those two default grants are hard-wired here.  Anything else
  stays pending for a human (``kubectl certificate approve``).
- :class:`CSRSigningController` signs approved CSRs of that signer with the cluster CA
  and writes ``status.certificate`` through ``/status``; it runs only when given the CA
  (``--cluster-signing-cert-file`` / ``--cluster-signing-key-file``).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..api.times import now_time as now_rfc3339
from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.rest import ApiException, RestClient
from .base import QueueController

log = logging.getLogger(__name__)

API_VERSION = "certificates.k8s.io/v1"
PLURAL = "certificatesigningrequests"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_GROUP = "system:bootstrappers"
REQUIRED_USAGES = frozenset({"digital signature", "client auth"})
OPTIONAL_USAGES = frozenset({"key encipherment"})  # legacy kubelets with RSA keys ask for it
APPROVED_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."
SELF_APPROVED_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."
DEFAULT_DURATION = 365 * 24 * 3600.0  # kube-controller-manager's --cluster-signing-duration
MIN_EXPIRATION_SECONDS = 600  # the API's floor for spec.expirationSeconds
BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks a little behind ours


# -- pure checks -------------------------------------------------------------------------


def parse_csr(csr: dict[str, Any]) -> x509.CertificateSigningRequest:
    """The PKCS#10 request in ``spec.request`` (base64 of PEM).  ValueError if unreadable."""
    raw = (csr.get("spec") or {}).get("request") or ""
    try:
        pem = base64.b64decode(raw, validate=True)
    except ValueError as e:
        raise ValueError(f"spec.request is not base64: {e}") from None
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise ValueError("spec.request holds no PEM CERTIFICATE REQUEST block")
    return x509.load_pem_x509_csr(pem)


def _names(subject: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in subject.get_attributes_for_oid(oid)]


def kubelet_client_problem(request: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    """Why this is not a kubelet client certificate request, or None if it is one."""
    cns = _names(request.subject, NameOID.COMMON_NAME)
    if len(cns) != 1 or not cns[0].startswith(NODE_USER_PREFIX) or cns[0] == NODE_USER_PREFIX:
        return f'subject common name must be "{NODE_USER_PREFIX}<node name>"'
    if _names(request.subject, NameOID.ORGANIZATION_NAME) != [NODES_GROUP]:
        return f'subject organization must be exactly ["{NODES_GROUP}"]'
    others = {a.oid for a in request.subject} - {NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME}
    if others:
        return "subject must hold only a common name and an organization"
    try:
        request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return "no subject alternative names (DNS, email, IP, URI) are allowed"
    except x509.ExtensionNotFound:
        pass
    wanted = set(usages)
    if len(wanted) != len(usages) or not REQUIRED_USAGES <= wanted or not wanted <= REQUIRED_USAGES | OPTIONAL_USAGES:
        return 'usages must be "digital signature" and "client auth" (and optionally "key encipherment")'
    return None


def approval_message(csr: dict[str, Any], request: x509.CertificateSigningRequest) -> str | None:
    """The approval message if the requester may have this kubelet client certificate."""
    spec = csr.get("spec") or {}
    username, groups = spec.get("username") or "", spec.get("groups") or []
    cn = _names(request.subject, NameOID.COMMON_NAME)[0]
    if username.startswith(BOOTSTRAP_USER_PREFIX) and BOOTSTRAP_GROUP in groups:
        return APPROVED_MESSAGE  # a new node joining by bootstrap token (nodeclient)
    if username == cn and NODES_GROUP in groups:
        return SELF_APPROVED_MESSAGE  # a node renewing its own certificate (selfnodeclient)
    return None


def _condition(csr: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (csr.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status", "True") == "True":
            return c
    return None


def is_decided(csr: dict[str, Any]) -> bool:
    return _condition(csr, "Approved") is not None or _condition(csr, "Denied") is not None


def needs_signing(csr: dict[str, Any], signer: str = KUBELET_CLIENT_SIGNER) -> bool:
    spec = csr.get("spec") or {}
    return (spec.get("signerName") == signer and _condition(csr, "Approved") is not None
            and _condition(csr, "Denied") is None and _condition(csr, "Failed") is None
            and not (csr.get("status") or {}).get("certificate"))


def load_signing_ca(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, Any]:
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"{key_file}: unsupported CA key type {type(key).__name__}")
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ValueError(f"{key_file} is not the key of {cert_file}")
    return cert, key


def certificate_duration(expiration_seconds: int | None, max_duration: float = DEFAULT_DURATION) -> dt.timedelta:
    """min(requested, the signer's maximum); a request below the API's 10-minute floor gets the floor."""
    seconds = max_duration
    if expiration_seconds:
        seconds = min(max(int(expiration_seconds), MIN_EXPIRATION_SECONDS), max_duration)
    return dt.timedelta(seconds=seconds)


def sign(request: x509.CertificateSigningRequest, usages: list[str], ca_cert: x509.Certificate, ca_key: Any,
         duration: dt.timedelta, now: dt.datetime | None = None) -> x509.Certificate:
    """A client certificate for ``request``'s key and subject, never outliving the CA."""
    now = now or dt.datetime.now(dt.UTC)
    not_after = min(now + duration, ca_cert.not_valid_after_utc)
    public_key = request.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature="digital signature" in usages,
                                     key_encipherment="key encipherment" in usages, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                       critical=False)
    )
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    return builder.sign(ca_key, algorithm)


# -- controllers --------------------------------------------------------------------------


class _CSRController(QueueController):
    """Keys are ``/<name>`` (CSRs are cluster-scoped); a conflict means a stale cache."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None, *,
                 component: str, queue: str):
        super().__init__(client, factory, recorder, component=component, queue=queue, workers=1)
        self.csrs = self.informer(API_VERSION, PLURAL)
        self.csrs.add_event_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    def _cached(self, key: str) -> dict[str, Any] | None:
        return self.csrs.lister.get(key.rpartition("/")[2])


class CSRApprovingController(_CSRController):
    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None):
        super().__init__(client, factory, recorder, component="csrapproving-controller", queue="csrapproving")

    async def sync(self, key: str) -> None:
        csr = self._cached(key)
        if csr is None or is_decided(csr) or (csr.get("spec") or {}).get("signerName") != KUBELET_CLIENT_SIGNER:
            return
        name = csr["metadata"]["name"]
        try:
            request = parse_csr(csr)
        except ValueError as e:
            log.info("csr %s: not approving an unreadable request: %s", name, e)
            return
        problem = kubelet_client_problem(request, list((csr.get("spec") or {}).get("usages") or []))
        if problem is not None:
            log.info("csr %s: not a kubelet client certificate request, left for a human: %s", name, problem)
            return
        message = approval_message(csr, request)
        if message is None:
            log.info("csr %s: requester %r may not have a kubelet client certificate for %s; left pending", name,
                     (csr.get("spec") or {}).get("username"), _names(request.subject, NameOID.COMMON_NAME)[0])
            return
        updated = copy.deepcopy(csr)
        status = updated.setdefault("status", {})
        now = now_rfc3339()
        status.setdefault("conditions", []).append({
            "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now})
        # PUT with the cached resourceVersion: a concurrent decision makes this a 409, not a second condition.
        await self.client.update(API_VERSION, PLURAL, updated, sub="approval")
        log.info("csr %s: approved (%s)", name, message)


class CSRSigningController(_CSRController):
    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 cert_file: Path, key_file: Path, duration: float = DEFAULT_DURATION):
        super().__init__(client, factory, recorder, component="csrsigning-controller", queue="csrsigning")
        self.ca_cert, self.ca_key = load_signing_ca(cert_file, key_file)
        self.duration = duration

    async def sync(self, key: str) -> None:
        csr = self._cached(key)
        if csr is None or not needs_signing(csr):
            return
        name, spec = csr["metadata"]["name"], csr.get("spec") or {}
        usages = list(spec.get("usages") or [])
        try:
            request = parse_csr(csr)
            problem = None if request.is_signature_valid else "the request's signature does not verify"
            problem = problem or kubelet_client_problem(request, usages)
        except ValueError as e:
            problem = str(e)
        updated = copy.deepcopy(csr)
        status = updated.setdefault("status", {})
        if problem is not None:
            # The signer's own check (upstream's SignerValidationFailure): approval alone is not enough.
            now = now_rfc3339()
            status.setdefault("conditions", []).append({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": f"invalid {KUBELET_CLIENT_SIGNER} request: {problem}",
                "lastUpdateTime": now, "lastTransitionTime": now})
            await self.client.update(API_VERSION, PLURAL, updated, sub="status")
            log.warning("csr %s: approved but not signed: %s", name, problem)
            return
        cert = sign(request, usages, self.ca_cert, self.ca_key,
                    certificate_duration(spec.get("expirationSeconds"), self.duration))
        status["certificate"] = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
        await self.client.update(API_VERSION, PLURAL, updated, sub="status")
        log.info("csr %s: signed a certificate for %s valid until %s", name,
                 _names(request.subject, NameOID.COMMON_NAME)[0], cert.not_valid_after_utc.isoformat())


__all__ = ["KUBELET_CLIENT_SIGNER", "CSRApprovingController", "CSRSigningController", "approval_message",
           "certificate_duration", "kubelet_client_problem", "load_signing_ca", "parse_csr", "sign"]
