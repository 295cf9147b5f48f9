"""Cluster PKI: a CA, the API server's serving certificate, client certificates,
and kubeconfig files.  Keys are ECDSA P-256 (fast to make, accepted by every
client).  Everything is written once under the data dir and reused."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# cryptography is imported where keys and certificates are made or read, not here: a node agent
# uses this module for peer_subject and kubeconfigs only, and should not keep ~9 MB of it resident.

CA_YEARS = 10
CERT_DAYS = 365


def _key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass
class CertPair:
    cert: Path
    key: Path


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path):
        self.cert, self.key, self.cert_path = cert, key, cert_path

    @classmethod
    def load_or_create(cls, directory: Path, common_name: str = "pinnace-ca") -> CertificateAuthority:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(cert, key, cert_path)
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(key_path, _pem_key(key))
        cert_path.write_bytes(_pem_cert(cert))
        return cls(cert, key, cert_path)

    @property
    def pem(self) -> bytes:
        return _pem_cert(self.cert)

    def issue(
        self,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server: bool = False,
        client: bool = False,
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        public_key: ec.EllipticCurvePublicKey | None = None,
        days: int = CERT_DAYS,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | None]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = None
        if public_key is None:
            key = _key()
            public_key = key.public_key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = dt.datetime.now(dt.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def issue_to_files(self, directory: Path, stem: str, common_name: str, organizations: tuple[str, ...] = (),
                       **kwargs) -> CertPair:
        pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
        if pair.cert.exists() and pair.key.exists() and _still_valid(pair.cert, kwargs):
            return pair
        cert, key = self.issue(common_name, organizations, **kwargs)
        assert key is not None
        _write_private(pair.key, _pem_key(key))
        pair.cert.write_bytes(_pem_cert(cert))
        return pair

    def ca_hash(self) -> str:
        """``sha256:<hex>`` of the CA's public key, as kubeadm's discovery hash pins it."""
        from cryptography.hazmat.primitives import hashes, serialization

        spki = self.cert.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        return "sha256:" + digest.finalize().hex()


def _still_valid(cert_path: Path, kwargs: dict) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
        return False
    wanted_ips = set(kwargs.get("ips", ()))
    wanted_dns = set(kwargs.get("dns_names", ()))
    if wanted_ips or wanted_dns:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
        return wanted_ips <= have and wanted_dns <= set(san.get_values_for_type(x509.DNSName))
    return True


@dataclass
class ServerPKI:
    ca: CertificateAuthority
    serving: CertPair
    admin: CertPair
    kubelet_client: CertPair | None = None


def server_pki(tls_dir: Path, service_ip: str, extra_sans: tuple[str, ...] = ()) -> ServerPKI:
    ca = CertificateAuthority.load_or_create(tls_dir)
    hostname = socket.gethostname()
    dns = ("localhost", hostname, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local", *[s for s in extra_sans if not _is_ip(s)])
    ips = ("127.0.0.1", "::1", service_ip, *[s for s in extra_sans if _is_ip(s)])
    serving = ca.issue_to_files(tls_dir, "serving", "kube-apiserver", server=True, dns_names=dns, ips=ips)
    admin = ca.issue_to_files(tls_dir, "admin", "admin", ("system:masters",), client=True)
    return ServerPKI(ca, serving, admin, kubelet_client_cert(ca, tls_dir))


# The identity kubeadm gives the API server towards kubelets (logs, exec, port-forward).
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"


def kubelet_client_cert(ca: CertificateAuthority, directory: Path) -> CertPair:
    """The API server's client certificate for calling kubelets (``apiserver-kubelet-client.crt``)."""
    return ca.issue_to_files(directory, "apiserver-kubelet-client", KUBELET_CLIENT_CN, ("system:masters",),
                             client=True)


def kubelet_serving_cert(ca: CertificateAuthority, directory: Path, node_name: str,
                         addresses: tuple[str, ...] = (), stem: str = "kubelet") -> CertPair:
    """A kubelet's HTTPS serving certificate (CN ``system:node:<name>``, O ``system:nodes``, as a
    kubelet-serving CSR would get) valid for the node name and ``addresses`` (IPs or DNS names):
    the API server dials the node's InternalIP or Hostname and verifies it against the cluster CA."""
    dns = tuple(dict.fromkeys((node_name, "localhost", *[a for a in addresses if not _is_ip(a)])))
    ips = tuple(dict.fromkeys(("127.0.0.1", *[a for a in addresses if _is_ip(a)])))
    return ca.issue_to_files(directory, stem, f"system:node:{node_name}", ("system:nodes",), server=True,
                             dns_names=dns, ips=ips)


def peer_subject(peercert: dict) -> tuple[str, list[str]]:
    """(common name, organizations) of a TLS peer certificate as ``ssl`` decodes it:
    the user and groups of x509 client authentication."""
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return cn, orgs


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, cert: Path | None = None, key: Path | None = None,
                     token: str | None = None, user: str = "admin", cluster: str = "pinnace") -> Path:
    """A kubeconfig with everything embedded, so it works when copied elsewhere."""
    creds: dict[str, str] = {}
    if cert and key:
        creds["client-certificate-data"] = base64.b64encode(cert.read_bytes()).decode()
        creds["client-key-data"] = base64.b64encode(key.read_bytes()).decode()
    if token:
        creds["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path
