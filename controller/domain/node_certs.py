"""Checking a node's client certificate in Python, so that a refusal says why.

The node port's TLS layer (gRPC core) verifies the chain itself and, when it
fails, closes the connection: the node sees "Socket closed", and the
controller's Python code never sees the certificate (grpcio can only require
and verify a client certificate, or not ask for one). So every certificate
check the node port relies on is repeated here, with a reason per failure:
on every session (after the TLS layer's check, which stays) and for
`CheckCertificate`, which a node calls on the public port when its handshake
fails. Each refusal is logged at warning, rate-limited, naming the
certificate (subject, issuer, serial, sha256)."""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from controller import clock
from controller.auth.decoding import LogLimiter
from controller.auth.principal import NodePrincipal
from controller.errors import Unauthenticated
from controller.pki import CertificateAuthority

log = logging.getLogger("kumo.nodes")

MAX_CERT_PEM = 16 * 1024
MAX_SIGNED_CACHE = 100_000

# (common name, serial hex, whether a session is opening with it)
Authenticate = Callable[[str, str, bool], NodePrincipal]


def certificate_facts(cert: x509.Certificate) -> dict[str, str]:
    """What a log line says to name a certificate."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


class NodeCertificates:
    """The node port's certificate rules, each refusal with its reason."""

    def __init__(self, ca: CertificateAuthority, authenticate: Authenticate, limiter: LogLimiter) -> None:
        self._ca = ca
        self._authenticate = authenticate
        self._limiter = limiter
        # (CA fingerprint, certificate sha256) of certificates whose signature was verified: the
        # same bytes stay signed, and verifying an ECDSA signature on every session opening was
        # a tenth of the controller's CPU while a fleet of thousands connected. Bounded (cleared
        # when full). Expiry, serial and node are checked on every call all the same.
        self._signed: set[tuple[str, bytes]] = set()

    def check_pem(self, pem: bytes, where: str, session: bool = False) -> NodePrincipal:
        """The node `pem` names if the node port accepts it; else Unauthenticated
        with the reason (and a warning line naming the certificate). Only a
        `session` opening with a renewed certificate makes it the node's."""
        if not pem:
            self._refused(None, "NO_CLIENT_CERT", "no client certificate was sent", where)
        if len(pem) > MAX_CERT_PEM:
            self._refused(None, "CERT_UNREADABLE", f"the certificate is over {MAX_CERT_PEM} bytes", where)
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            self._refused(None, "CERT_UNREADABLE", "the certificate is not a PEM X.509 certificate", where)
        return self.check(cert, where, session)

    def check(self, cert: x509.Certificate, where: str, session: bool = False) -> NodePrincipal:
        ca = self._ca.cert
        if cert.issuer != ca.subject:
            self._refused(
                cert,
                "CERT_OTHER_CA",
                f"it was issued by {cert.issuer.rfc4514_string()!r}, not by this cloud's CA "
                f"{ca.subject.rfc4514_string()!r} (sha256 {self._ca.fingerprint[:16]}...)",
                where,
            )
        signed = (self._ca.fingerprint, cert.fingerprint(hashes.SHA256()))
        try:
            if signed not in self._signed:
                cert.verify_directly_issued_by(ca)
                if len(self._signed) >= MAX_SIGNED_CACHE:
                    self._signed.clear()
                self._signed.add(signed)
        except (InvalidSignature, ValueError, TypeError):
            self._refused(
                cert,
                "CERT_BAD_SIGNATURE",
                "it names this cloud's CA as issuer but the CA did not sign it (forged, or from "
                "another CA with the same name)",
                where,
            )
        now = datetime.datetime.fromtimestamp(clock.now(), datetime.UTC)
        if now > cert.not_valid_after_utc:
            self._refused(
                cert, "CERT_EXPIRED", f"it expired at {cert.not_valid_after_utc.isoformat()}", where
            )
        if now < cert.not_valid_before_utc:
            self._refused(
                cert,
                "CERT_NOT_YET_VALID",
                f"it is valid only from {cert.not_valid_before_utc.isoformat()} (check the clocks)",
                where,
            )
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        try:
            return self._authenticate(
                str(names[0].value) if names else "", format(cert.serial_number, "x"), session
            )
        except Unauthenticated as exc:
            self._log(cert, exc.reason, exc.message, where)
            raise

    def _refused(self, cert: x509.Certificate | None, reason: str, why: str, where: str) -> NoReturn:
        self._log(cert, reason, why, where)
        raise Unauthenticated(why, reason=reason)

    def _log(self, cert: x509.Certificate | None, reason: str, why: str, where: str) -> None:
        facts = certificate_facts(cert) if cert is not None else {}
        self._limiter.log(
            log, logging.WARNING, "node certificate refused", reason=reason, why=why, where=where, **facts
        )
