"""Node-port certificate refusals are named on both sides: the controller logs
which certificate it refused and why, `CheckCertificate` tells the node, and a
real kumo-noded whose certificate is refused says so and exits with status 4
after a few tries. Every case is a real certificate over real TLS: none,
another cloud's CA, a forged one with the same subject and issuer name, an
expired one from our own CA, a replaced (revoked) one, a deleted node's."""

from __future__ import annotations

import datetime
import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller import pki
from kumo import keys
from kumo.errorinfo import error_reason
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_agent_pb2_grpc
from kumo.v1 import node_pb2 as pb
from tests.harness import Client, ControllerProc, rpc_error
from tests.nodeutil import (
    NodedProc,
    SessionClient,
    enroll,
    free_port,
    hello,
    make_token,
    node_channel,
    nodes,
    run_noded,
)

Certs = tuple[bytes, bytes]  # key PEM, certificate PEM


def our_ca(controller: ControllerProc) -> pki.CertificateAuthority:
    return pki.CertificateAuthority(
        x509.load_pem_x509_certificate(controller.ca_pem),
        serialization.load_pem_private_key((Path(controller.data_dir) / "pki" / "ca.key").read_bytes(), None),  # type: ignore[arg-type]
    )


def node_cert(
    issuer: x509.Name,
    signer: object,
    node_id: str,
    *,
    not_after: datetime.timedelta = datetime.timedelta(days=1),
) -> Certs:
    """A node client certificate as the controller makes them, but signed by
    `signer` under the issuer name `issuer`, valid until now + `not_after`."""
    key = keys.new_key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kumo-nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                ]
            )
        )
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    return keys.key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def other_ca(controller: ControllerProc, node_id: str) -> Certs:
    other = pki._new_ca()
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another cloud's CA")])
    return node_cert(other_name, other.key, node_id)


def forged(controller: ControllerProc, node_id: str) -> Certs:
    """Self-made: the same subject and issuer name as a real one, another key."""
    return node_cert(our_ca(controller).cert.subject, keys.new_key(), node_id)


def expired(controller: ControllerProc, node_id: str) -> Certs:
    ca = our_ca(controller)
    return node_cert(ca.cert.subject, ca.key, node_id, not_after=-datetime.timedelta(hours=1))


def replaced(controller: ControllerProc, node_id: str) -> Certs:
    """From our CA, for the node, but not the certificate it holds."""
    ca = our_ca(controller)
    return node_cert(ca.cert.subject, ca.key, node_id)


TLS_REFUSED: dict[str, tuple[Callable[[ControllerProc, str], Certs], str]] = {
    "another cloud's CA": (other_ca, "CERT_OTHER_CA"),
    "forged, same subject": (forged, "CERT_BAD_SIGNATURE"),
    "expired": (expired, "CERT_EXPIRED"),
}


def check(controller: ControllerProc, cert_pem: bytes | str) -> apb.CheckCertificateResponse:
    pem = cert_pem.decode() if isinstance(cert_pem, bytes) else cert_pem
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    return stub.CheckCertificate(apb.CheckCertificateRequest(certificate_pem=pem), timeout=10)


def controller_log(controller: ControllerProc) -> str:
    path = Path(controller.data_dir).parent / f"{Path(controller.data_dir).name}-controller.log"
    return path.read_text(errors="replace")


def serial_of(cert_pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")


def wait_log(controller: ControllerProc, *needles: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = controller_log(controller)
        lines = [line for line in text.splitlines() if all(n in line for n in needles)]
        if lines:
            return lines[-1]
        assert time.monotonic() < deadline, f"no controller log line with {needles}"
        time.sleep(0.1)


@pytest.mark.parametrize("what", list(TLS_REFUSED))
def test_tls_refusals_are_explained_and_logged(controller: ControllerProc, admin: Client, what: str) -> None:
    make, reason = TLS_REFUSED[what]
    e = enroll(controller, make_token(admin), f"refused-{reason.lower().replace('_', '-')}")
    key, cert = make(controller, e.node_id)
    # The node port's TLS layer refuses it: no node RPC runs.
    s = SessionClient(node_channel(controller, key, cert), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, what
    # The public port says why, and the controller logs which certificate.
    answer = check(controller, cert)
    assert not answer.accepted and answer.reason == reason, (what, answer)
    line = wait_log(controller, "node certificate refused", f"serial={serial_of(cert)}")
    assert "warning" in line and f"reason={reason}" in line and f"CN={e.node_id}" in line
    assert "sha256=" in line and "issuer=" in line
    # The node's real certificate is still fine.
    assert check(controller, e.cert_pem).accepted


def test_refusals_after_the_handshake_are_logged(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "refused-after-tls")
    key, stale = replaced(controller, e.node_id)
    s = SessionClient(node_channel(controller, key, stale), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert error_reason(info.value) == "CERT_REVOKED"
    line = wait_log(controller, "node certificate refused", f"serial={serial_of(stale)}")
    assert "where=session" in line and "reason=CERT_REVOKED" in line
    assert check(controller, stale).reason == "CERT_REVOKED"
    ghost_key, ghost = replaced(controller, str(uuid.uuid4()))
    s = SessionClient(node_channel(controller, ghost_key, ghost), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert error_reason(info.value) == "NODE_UNKNOWN"
    assert check(controller, ghost).reason == "NODE_UNKNOWN"
    # No client certificate at all: refused at the handshake.
    s = SessionClient(node_channel(controller, None, None), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_check_certificate_validates_its_field(controller: ControllerProc) -> None:
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    for pem, fragment in (("", "is required"), ("x" * 20_000, "at most")):
        err = rpc_error(stub.CheckCertificate, apb.CheckCertificateRequest(certificate_pem=pem), timeout=10)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "certificate_pem" in err.details()
        assert fragment in err.details()
    assert check(controller, "not a certificate").reason == "CERT_UNREADABLE"


def _joined_state(controller: ControllerProc, admin: Client, tmp_path: Path, name: str) -> tuple[Path, str]:
    state = tmp_path / name
    result = run_noded(
        ["join", controller.endpoint, make_token(admin), "--state-dir", str(state), "--name", name]
    )
    assert result.returncode == 0, result.stderr
    return state, json.loads((state / "node.json").read_text())["node_id"]


@pytest.mark.parametrize("what", list(TLS_REFUSED))
def test_noded_names_the_refusal_and_exits(
    controller: ControllerProc, admin: Client, tmp_path: Path, what: str
) -> None:
    make, reason = TLS_REFUSED[what]
    state, node_id = _joined_state(controller, admin, tmp_path, f"daemon-{reason.lower().replace('_', '-')}")
    key, cert = make(controller, node_id)
    (state / "node.key").write_bytes(key)
    (state / "node.crt").write_bytes(cert)
    proc = NodedProc(state, ["--driver", "fake"]).start()
    started = time.monotonic()
    try:
        assert proc.proc is not None
        rc = proc.proc.wait(60)
    finally:
        proc.stop()
    took = time.monotonic() - started
    log = proc.log()
    assert rc == 4, log
    assert "the controller refused this node's certificate:" in log and f"[{reason}]" in log, log
    assert "Traceback" not in log
    assert took < 45, f"took {took:.1f} s to give up"
    wait_log(controller, "node certificate refused", f"serial={serial_of(cert)}", "where=check")


def test_noded_exits_when_its_node_is_deleted(
    controller: ControllerProc, admin: Client, tmp_path: Path
) -> None:
    state, node_id = _joined_state(controller, admin, tmp_path, "daemon-deleted")
    nodes(admin).DeleteNode(pb.DeleteNodeRequest(id=node_id))
    proc = NodedProc(state, ["--driver", "fake"]).start()
    try:
        assert proc.proc is not None and proc.proc.wait(60) == 3
    finally:
        proc.stop()
    log = proc.log()
    assert "the controller refused this node's certificate:" in log and "NODE_UNKNOWN" in log, log


def test_a_controller_that_went_away_is_not_a_refusal(
    controller: ControllerProc, admin: Client, tmp_path: Path
) -> None:
    """A node port that does not answer (here: the node's endpoint points at a
    closed port) is a network matter: the daemon keeps retrying."""
    state, _ = _joined_state(controller, admin, tmp_path, "daemon-unreachable")
    identity = json.loads((state / "node.json").read_text())
    identity["node_endpoint"] = f"127.0.0.1:{free_port()}"
    (state / "node.json").write_text(json.dumps(identity))
    proc = NodedProc(state, ["--driver", "fake"]).start()
    try:
        deadline = time.monotonic() + 30
        while proc.log().count("session lost") < 4:
            assert proc.proc is not None and proc.proc.poll() is None, proc.log()
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.2)
        assert "refused this node's certificate" not in proc.log()
    finally:
        proc.stop()
    shutil.rmtree(state)


def test_noded_says_when_it_does_not_trust_the_controller(
    controller: ControllerProc, admin: Client, tmp_path: Path
) -> None:
    """The other direction: the node's pinned CA is not the one the node port's
    certificate chains to. The node names that, does not blame its own
    certificate, and keeps retrying (the controller may come back as itself)."""
    state, _ = _joined_state(controller, admin, tmp_path, "daemon-distrust")
    (state / "ca.crt").write_bytes(pki._new_ca().cert_pem)
    proc = NodedProc(state, ["--driver", "fake"]).start()
    try:
        deadline = time.monotonic() + 30
        while proc.log().count("does not trust the certificate of the controller") < 3:
            assert proc.proc is not None and proc.proc.poll() is None, proc.log()
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.2)
        assert "refused this node's certificate" not in proc.log()
    finally:
        proc.stop()
