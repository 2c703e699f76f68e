"""Joining a controller: pin its CA by the fingerprint in the join token, make
a key here, and trade a CSR and the token for a client certificate.

The CA is read from the TLS handshake of the controller's public port (the
controller sends it after its own certificate) without verifying anything
yet, then accepted only if its sha256 matches the token. From there every
call verifies the controller against that CA. A man in the middle cannot
produce a CA with the pinned fingerprint, so the node refuses to go on."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import ssl
import time

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from kumo import jointoken
from kumo.keys import key_pem, make_csr, new_key
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc
from noded.state import Credentials, NodeIdentity

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class JoinError(Exception):
    """Joining failed; the message says why and what to do."""


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise JoinError(f"address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def fetch_pinned_ca(address: str, fingerprint: str, timeout: float = 10.0) -> bytes:
    """The CA certificate (PEM) the controller at `address` presents in its
    TLS handshake whose sha256 is `fingerprint`; JoinError if there is none."""
    host, port = split_address(address)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # nothing is trusted yet: the fingerprint decides below
    ctx.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=None if _is_ip(host) else host) as tls,
        ):
            chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[union-attr]
            ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError) as exc:
        raise JoinError(f"cannot reach the controller at {address}: {exc}") from None
    seen = []
    for der in ders:
        if hashlib.sha256(der).hexdigest() == fingerprint:
            return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        seen.append(_describe(der))
    raise JoinError(
        f"refusing to join: the controller's CA does not match the join token's fingerprint. Expected a CA "
        f"with sha256 {fingerprint}; the server at {address} presented {'; '.join(seen) or 'no certificates'}. "
        "Either the token is for another controller, or someone is in the middle: check the address "
        "and the token."
    )


def _describe(der: bytes) -> str:
    """A certificate as a refusal names it: subject and sha256."""
    digest = hashlib.sha256(der).hexdigest()
    try:
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return f"an unreadable certificate (sha256 {digest})"
    return f"{subject!r} (sha256 {digest})"


def resolve_endpoint(advertised: str, joined_through: str) -> str:
    """The session endpoint the controller advertised; without a host (":7444")
    it is the host this node reached the controller at."""
    if advertised.startswith(":"):
        return join_address(split_address(joined_through)[0], int(advertised[1:]))
    return advertised


def _rpc_message(exc: grpc.RpcError) -> str:
    code = exc.code().name if hasattr(exc, "code") else "ERROR"
    return f"{exc.details() if hasattr(exc, 'details') else exc} [{code}]"


def join(address: str, token: str, name: str, node_endpoint: str = "", timeout: float = 30.0) -> Credentials:
    """Enrolls this host; returns what `StateDir.save` should keep."""
    try:
        parsed = jointoken.parse_token(token)
    except jointoken.JoinTokenFormatError as exc:
        raise JoinError(f"the join token is not valid: {exc}") from None
    if not NAME_RE.match(name):
        raise JoinError(f"node name {name!r} is not valid: use 1-63 letters, digits, '.', '_', '-'")
    ca_pem = fetch_pinned_ca(address, parsed.ca_fingerprint)

    with grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_pem)) as channel:
        stub = node_agent_pb2_grpc.NodeAgentServiceStub(channel)
        try:
            bundle = stub.GetCaBundle(pb.GetCaBundleRequest(), timeout=timeout)
            key = new_key()
            resp = stub.Enroll(
                pb.EnrollRequest(token=token, csr_pem=make_csr(key, name).decode(), name=name),
                timeout=timeout,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise JoinError(
                    f"no verified connection to the controller at {address}: its certificate must chain to "
                    f"the CA the join token pins (sha256 {parsed.ca_fingerprint[:16]}...) and name that "
                    f"address: {_rpc_message(exc)}"
                ) from None
            raise JoinError(f"the controller refused to enroll this node: {_rpc_message(exc)}") from None

    bundle_pem = bundle.ca_pem.encode()
    fps = {
        hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
        for c in x509.load_pem_x509_certificates(bundle_pem)
    }
    if parsed.ca_fingerprint not in fps:
        raise JoinError(
            "refusing to join: the controller's CA bundle does not hold the CA the join token's fingerprint "
            f"names (expected sha256 {parsed.ca_fingerprint}, the bundle has {', '.join(sorted(fps)) or 'none'})"
        )
    cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise JoinError(f"the certificate the controller sent is not signed by its CA: {exc}") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise JoinError("the certificate the controller sent is not for this node's key")
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != resp.node_id:
        raise JoinError("the certificate the controller sent does not name this node")

    endpoint = node_endpoint or resolve_endpoint(resp.node_endpoint, address)
    return Credentials(
        NodeIdentity(resp.node_id, name, address, endpoint, time.time()),
        key_pem(key),
        resp.certificate_pem.encode(),
        bundle_pem,
    )
