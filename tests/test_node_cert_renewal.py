"""Node certificates renew themselves through the session, and an admin can
force a rotation: real controllers, real kumo-noded daemons (fake hypervisor:
only the session matters here), real certificates over real mTLS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from kumo import keys
from kumo.errorinfo import error_reason
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_agent_pb2_grpc
from kumo.v1 import node_pb2 as pb
from tests.harness import Client, ControllerProc, cli_login, run_cli
from tests.nodeutil import (
    NodedProc,
    SessionClient,
    enroll,
    hello,
    make_token,
    node_channel,
    nodes,
    run_noded,
    wait_for,
)

LIFETIME = 9  # seconds: a renewal at 2/3, so every ~6 s


def serial(cert_pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")


def check(controller: ControllerProc, cert_pem: bytes) -> apb.CheckCertificateResponse:
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    return stub.CheckCertificate(apb.CheckCertificateRequest(certificate_pem=cert_pem.decode()), timeout=10)


class StateWatch:
    """Polls a node's state in the background and records every one seen,
    from the first poll (taken at once, so a fast rotation is still sampled)
    to a last one when stopped."""

    def __init__(self, admin: Client, node_id: str) -> None:
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(admin, node_id), daemon=True)
        self._thread.start()

    def _run(self, admin: Client, node_id: str) -> None:
        while True:
            self.seen.add(nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).state)
            if self._stop.wait(0.2):
                self.seen.add(nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).state)
                return

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        return self.seen


def start_node(
    controller: ControllerProc, admin: Client, tmp_path: Path, name: str
) -> tuple[NodedProc, str, Path]:
    state = tmp_path / name
    joined = run_noded(
        ["join", controller.endpoint, make_token(admin), "--state-dir", str(state), "--name", name]
    )
    assert joined.returncode == 0, joined.stderr
    node_id = json.loads((state / "node.json").read_text())["node_id"]
    proc = NodedProc(state, ["--driver", "fake", "--heartbeat-seconds", "1"]).start()
    wait_for(
        lambda: nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).state == pb.NODE_STATE_READY,
        30,
        what=f"{name} READY",
    )
    return proc, node_id, state


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProc]:
    data = tmp_path_factory.mktemp("renew-ctl") / "data"
    data.mkdir()
    proc = ControllerProc(data, extra_env={"KUMO_NODE_CERT_LIFETIME_SECONDS": str(LIFETIME)}).start()
    yield proc
    proc.stop()


def test_certificates_renew_before_they_expire_without_an_outage(
    short_lived: ControllerProc, tmp_path: Path
) -> None:
    admin = short_lived.login()
    proc, node_id, state = start_node(short_lived, admin, tmp_path, "renewing")
    first_cert = (state / "node.crt").read_bytes()
    first_key = (state / "node.key").read_bytes()
    watch = StateWatch(admin, node_id)
    try:
        serials = [serial(first_cert)]

        def renewed_again() -> bool:
            now = nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).certificate_serial
            if now != serials[-1]:
                serials.append(now)
            return len(serials) >= 3

        # Two renewals in a row, each well before the certificate it replaces expires.
        wait_for(renewed_again, 4 * LIFETIME, what="two renewals")
    finally:
        seen = watch.stop()
    assert seen == {pb.NODE_STATE_READY}, f"states seen while renewing: {seen}"
    assert proc.proc is not None and proc.proc.poll() is None, proc.log()
    # The daemon keeps what it was given; the controller holds the same serial.
    current = (state / "node.crt").read_bytes()
    assert serial(current) in serials[-2:]
    log = proc.log()
    assert log.count("certificate renewed") >= 2 and "Traceback" not in log, log
    assert "session lost" not in log and "refused" not in log, log
    # The first certificate is refused: replaced, or by now expired.
    assert check(short_lived, first_cert).reason in ("CERT_REVOKED", "CERT_EXPIRED")
    s = SessionClient(node_channel(short_lived, first_key, first_cert), hello())
    with pytest.raises(grpc.RpcError):
        s.read()
    proc.stop()


def test_admin_forces_a_rotation(controller: ControllerProc, admin: Client, tmp_path: Path) -> None:
    proc, node_id, state = start_node(controller, admin, tmp_path, "rotating")
    old_cert, old_key = (state / "node.crt").read_bytes(), (state / "node.key").read_bytes()
    before = nodes(admin).GetNode(pb.GetNodeRequest(id=node_id))
    assert before.certificate_serial == serial(old_cert)
    watch = StateWatch(admin, node_id)
    try:
        nodes(admin).RotateNodeCertificate(pb.RotateNodeCertificateRequest(id=node_id))
        wait_for(
            lambda: (
                nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).certificate_serial
                != before.certificate_serial
            ),
            30,
            what="the rotated certificate in use",
        )
    finally:
        seen = watch.stop()
    assert seen == {pb.NODE_STATE_READY}, seen
    new_cert, new_key = (state / "node.crt").read_bytes(), (state / "node.key").read_bytes()
    assert (
        new_key != old_key
        and serial(new_cert) == nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).certificate_serial
    )
    # The old certificate (not expired: the default lifetime) is refused at once.
    assert check(controller, old_cert).reason == "CERT_REVOKED"
    s = SessionClient(node_channel(controller, old_key, old_cert), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert error_reason(info.value) == "CERT_REVOKED"
    assert check(controller, new_cert).accepted
    # The rotation is done: the node does not renew again on its own.
    log = proc.log()
    assert log.count("certificate renewed") == 1, log

    # The CLI verb, by name.
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cli")}
    assert cli_login(controller, tmp_path / "cli").returncode == 0
    result = run_cli(["node", "rotate-certificate", "rotating", "-o", "json"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == node_id
    wait_for(lambda: proc.log().count("certificate renewed") == 2, 30, what="the CLI's rotation")
    proc.stop()


def test_a_renewed_certificate_takes_over_only_when_a_session_uses_it(
    controller: ControllerProc, admin: Client
) -> None:
    e = enroll(controller, make_token(admin), "renew-by-hand")
    s = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello())
    s.read_kind("desired_state")
    key = keys.new_key()
    s.send(
        apb.SessionRequest(
            renew_certificate=apb.RenewCertificateRequest(csr_pem=keys.make_csr(key, "x").decode())
        )
    )
    new_cert = s.read_kind("certificate").certificate.certificate_pem.encode()
    s.close()
    cert = x509.load_pem_x509_certificate(new_cert)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # Issued, not yet used: both are accepted, and asking (CheckCertificate) changes nothing.
    assert check(controller, new_cert).accepted and check(controller, e.cert_pem).accepted
    assert nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id)).certificate_serial == serial(e.cert_pem)
    # A session with the new one makes it the node's; the old one is refused from then on.
    s = SessionClient(node_channel(controller, keys.key_pem(key), new_cert), hello())
    s.read_kind("desired_state")
    s.close()
    assert nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id)).certificate_serial == serial(new_cert)
    assert check(controller, e.cert_pem).reason == "CERT_REVOKED"
    old = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello())
    with pytest.raises(grpc.RpcError) as info:
        old.read()
    assert error_reason(info.value) == "CERT_REVOKED"
