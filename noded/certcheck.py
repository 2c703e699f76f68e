"""Why a session could not open, when the reason is a certificate.

The node port's TLS layer refuses a client certificate it cannot verify by
closing the connection: gRPC reports "Socket closed", the same as a network
fault. So after a failed session the node repeats the handshake itself (with
Python's ssl, the same key, certificate and CA bundle) and tells apart: the
controller cannot be reached (not a certificate matter); this node does not
trust the controller's certificate; the controller refused this node's
certificate. For the last it asks the controller's public port why
(`CheckCertificate`), and falls back on what it can see itself (expired, not
issued by the CA this node joined)."""

from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc
from noded.enroll import split_address
from noded.state import Credentials

# The client preface and an empty SETTINGS frame: a port that accepted the
# handshake answers with its own SETTINGS, one that refused it closes.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


@dataclass(frozen=True)
class Diagnosis:
    """A certificate problem: `refused` when the controller refused this
    node's certificate, else this node does not trust the controller's."""

    refused: bool
    message: str


class CertificateDoctor:
    def __init__(
        self,
        creds: Callable[[], Credentials],
        timeout: float = 10.0,
        endpoint: Callable[[], str] | None = None,
    ) -> None:
        self._current = creds
        self.timeout = timeout
        # Which controller to check (the session's; default: the node's only endpoint).
        self._endpoint = endpoint or (lambda: self.creds.identity.node_endpoint)

    @property
    def creds(self) -> Credentials:
        return self._current()

    def diagnose(self) -> Diagnosis | None:
        """None when the handshake works or the controller cannot be reached."""
        endpoint = self._endpoint()
        try:
            accepted = self._handshake(endpoint)
        except ssl.SSLCertVerificationError as exc:
            return Diagnosis(
                False,
                f"this node does not trust the certificate of the controller at {endpoint}: "
                f"{exc.verify_message or exc.reason} (it must chain to the CA in this node's ca.crt, "
                "pinned when it joined)",
            )
        except ssl.SSLError:  # refused during the handshake (a TLS 1.2 alert)
            accepted = False
        except OSError:  # refused connection, timeout: not a certificate matter
            return None
        if accepted:
            return None
        return Diagnosis(True, self._ask_controller() or self._local_reason())

    def _handshake(self, endpoint: str) -> bool:
        """True if the node port accepted this node's certificate."""
        host, port = split_address(endpoint)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=self.creds.ca_pem.decode())
        ctx.set_alpn_protocols(["h2"])
        with tempfile.TemporaryDirectory(prefix="kumo-noded-") as tmp:  # mode 0700
            key, cert = Path(tmp) / "node.key", Path(tmp) / "node.crt"
            key.touch(0o600)
            key.write_bytes(self.creds.key_pem)
            cert.write_bytes(self.creds.cert_pem)
            ctx.load_cert_chain(cert, key)
        with (
            socket.create_connection((host, port), timeout=self.timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            try:
                tls.sendall(H2_PREFACE)
                return bool(tls.recv(9))
            except (ssl.SSLError, ConnectionResetError):  # the refusal's TLS alert
                return False

    def _ask_controller(self) -> str:
        """The controller's own reason, from its public port; empty if it cannot say."""
        address = self.creds.identity.controller
        try:
            with grpc.secure_channel(address, grpc.ssl_channel_credentials(self.creds.ca_pem)) as channel:
                answer = node_agent_pb2_grpc.NodeAgentServiceStub(channel).CheckCertificate(
                    pb.CheckCertificateRequest(certificate_pem=self.creds.cert_pem.decode()),
                    timeout=self.timeout,
                )
        except grpc.RpcError:
            return ""
        if answer.accepted:
            return (
                "the node port closed the TLS handshake although the controller's public port "
                f"({address}) accepts this certificate"
            )
        return f"{answer.message} [{answer.reason}]"

    def _local_reason(self) -> str:
        cert = x509.load_pem_x509_certificate(self.creds.cert_pem)
        now = datetime.datetime.now(datetime.UTC)
        serial = format(cert.serial_number, "x")
        if now > cert.not_valid_after_utc:
            return f"it expired at {cert.not_valid_after_utc.isoformat()} (serial {serial})"
        for ca in x509.load_pem_x509_certificates(self.creds.ca_pem):
            try:
                cert.verify_directly_issued_by(ca)
                break
            except (InvalidSignature, ValueError, TypeError):
                continue
        else:
            return (
                f"it (serial {serial}, issuer {cert.issuer.rfc4514_string()!r}) is not signed by the CA "
                "this node joined"
            )
        return (
            f"the node port closed the TLS handshake (certificate serial {serial}); the controller's "
            "public port could not be asked why, see the controller's log"
        )
