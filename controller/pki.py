"""The controller's certificate authority: made on first start, it signs the
server certificate and the client certificates of enrolled nodes. (Keys, CSRs
and writing secrets are in kumo.keys: kumo-noded uses them too.)"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kumo.keys import key_pem, new_key, write_private

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=825)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert_pem_bytes: bytes) -> str:
    """sha256 over the DER encoding, lowercase hex: what join tokens pin."""
    cert = x509.load_pem_x509_certificate(cert_pem_bytes)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)

    def _issue(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        usage: list[x509.ObjectIdentifier],
        serial: int,
        san: list[str] | None = None,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if san:
            builder = builder.add_extension(_san(san), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server_cert(self, names: list[str]) -> tuple[bytes, bytes]:
        key = new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumo-controller")])
        cert = self._issue(
            subject,
            key.public_key(),
            [ExtendedKeyUsageOID.SERVER_AUTH],
            x509.random_serial_number(),
            san=["localhost", "127.0.0.1", "::1", *names],
        )
        return cert_pem(cert), key_pem(key)

    def sign_node_csr(self, csr_pem: bytes, node_id: str, serial: int) -> bytes:
        """Signs a node's CSR; the subject is ours (the node id), not the CSR's."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is not valid")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("CSR key must be an EC key")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kumo-nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            ]
        )
        cert = self._issue(subject, public_key, [ExtendedKeyUsageOID.CLIENT_AUTH], serial)
        return cert_pem(cert)


def _new_ca() -> CertificateAuthority:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumo CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


@dataclass
class ServerPki:
    ca: CertificateAuthority
    server_cert_pem: bytes
    server_key_pem: bytes


def ensure_pki(ca_dir: Path, pki_dir: Path, server_names: list[str]) -> ServerPki:
    """Loads the CA (from `ca_dir`, shared by a control plane's controllers)
    and this controller's server certificate (in `pki_dir`, with a copy of the
    CA certificate for clients), making them on first start. The server
    certificate is remade when the wanted names change or the CA did."""
    for d in (ca_dir, pki_dir):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    ca_crt, ca_key = ca_dir / "ca.crt", ca_dir / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        ca = CertificateAuthority(
            x509.load_pem_x509_certificate(ca_crt.read_bytes()),
            serialization.load_pem_private_key(ca_key.read_bytes(), password=None),  # type: ignore[arg-type]
        )
    else:
        ca = _new_ca()
        write_private(ca_key, key_pem(ca.key))
        ca_crt.write_bytes(ca.cert_pem)
    copy = pki_dir / "ca.crt"
    if copy != ca_crt and (not copy.exists() or copy.read_bytes() != ca.cert_pem):
        copy.write_bytes(ca.cert_pem)

    srv_crt, srv_key, names_file = (
        pki_dir / "server.crt",
        pki_dir / "server.key",
        pki_dir / "server.names",
    )
    wanted = "\n".join([f"ca {ca.fingerprint}", *sorted(set(server_names))])
    if not (
        srv_crt.exists() and srv_key.exists() and names_file.exists() and names_file.read_text() == wanted
    ):
        cert, key = ca.issue_server_cert(server_names)
        write_private(srv_key, key)
        srv_crt.write_bytes(cert)
        names_file.write_text(wanted)
    return ServerPki(ca, srv_crt.read_bytes(), srv_key.read_bytes())
