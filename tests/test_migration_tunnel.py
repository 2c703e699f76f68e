"""The node daemons' TLS tunnel for live migration streams
(noded/compute/migration_tunnel.py), with real TLS, real node certificates
from a kumo CA and real unix sockets: what a source's qemu writes reaches the
target's qemu socket and back; a plaintext client, a certificate from
another CA, a migration the target does not expect and a target that is not
the node named are all refused."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.pki import CertificateAuthority, _new_ca
from kumo.keys import key_pem, make_csr, new_key
from noded.compute.migration_tunnel import MigrationTunnel, TunnelError
from noded.state import Credentials, NodeIdentity
from tests.waits import wait_until


def node_creds(ca: CertificateAuthority, node_id: str) -> Credentials:
    key = new_key()
    cert = ca.sign_node_csr(make_csr(key, node_id), node_id, 1000 + len(node_id))
    identity = NodeIdentity(node_id, node_id, "127.0.0.1:1", "127.0.0.1:2", 0.0)
    return Credentials(identity, key_pem(key), cert, ca.cert_pem)


def echo_server(path: Path) -> socket.socket:
    """Stands for the target's qemu listening for the incoming migration:
    answers every chunk with its upper-case copy."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[MigrationTunnel, MigrationTunnel, CertificateAuthority]]:
    ca = _new_ca()
    src_creds, tgt_creds = node_creds(ca, "node-src"), node_creds(ca, "node-tgt")
    source = MigrationTunnel(lambda: src_creds, tmp_path / "src", "127.0.0.1", 0)
    target = MigrationTunnel(lambda: tgt_creds, tmp_path / "tgt", "127.0.0.1", 0)
    source.start()
    target.start()
    try:
        yield source, target, ca
    finally:
        source.stop()
        target.stop()


def roundtrip(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(20)
        c.connect(path)
        c.sendall(payload)
        got = b""
        while len(got) < len(payload) and (data := c.recv(65536)):
            got += data
    return got


def test_the_stream_crosses_over_tls_to_the_expected_migration(pair, tmp_path: Path) -> None:
    source, target, _ = pair
    target.expect("mig1")
    qemu = echo_server(target.dir / "mig1.m")
    try:
        payload = b"guest memory " * 100_000  # 1.3 MB: many TLS records
        with source.outgoing("mig1", "127.0.0.1", target.port, "node-tgt") as ends:
            assert Path(ends.memory).parent == source.dir
            assert roundtrip(ends.memory, payload) == payload.upper()
        assert not Path(ends.memory).exists()  # the entrance goes with the migration
    finally:
        qemu.close()


def test_the_target_refuses_what_it_does_not_expect(pair) -> None:
    source, target, _ = pair
    qemu = echo_server(target.dir / "other.m")
    try:
        target.expect("other")
        with source.outgoing("mig2", "127.0.0.1", target.port, "node-tgt") as ends:
            assert roundtrip(ends.memory, b"x" * 1000) == b""  # closed, nothing carried
        target.expect_only(set())
        assert not (target.dir / "other.m").exists()  # sockets of forgotten migrations go
    finally:
        qemu.close()


def test_the_source_refuses_a_target_that_is_not_the_node_named(pair) -> None:
    source, target, _ = pair
    target.expect("mig3")
    qemu = echo_server(target.dir / "mig3.m")
    try:
        with source.outgoing("mig3", "127.0.0.1", target.port, "node-someone-else") as ends:
            assert roundtrip(ends.memory, b"secret" * 100) == b""
    finally:
        qemu.close()


def test_plaintext_and_foreign_certificates_are_refused(pair, tmp_path: Path) -> None:
    _, target, _ = pair
    target.expect("mig4")
    # Plain TCP: the TLS server never answers with migration data.
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as plain:
        plain.sendall(b'{"migration_id": "mig4", "stream": "m"}\n')
        got = plain.recv(100)
        assert not got.startswith(b"OK")
    # A node certificate from another cloud's CA: the handshake fails.
    stranger = node_creds(_new_ca(), "node-src")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    key.write_bytes(stranger.key_pem)
    cert.write_bytes(stranger.cert_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", target.port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(b'{"migration_id": "mig4", "stream": "m"}\n')
        assert tls.recv(100) == b""  # TLS 1.3: the refusal arrives after the handshake
        raise ConnectionError("closed")


def test_no_tunnel_port_no_migration(pair) -> None:
    source, _, _ = pair
    with (
        pytest.raises(TunnelError, match="no migration tunnel"),
        source.outgoing("mig5", "127.0.0.1", 0, "node-tgt"),
    ):
        pass
    wait_until(lambda: not (source.dir / "mig5.m").exists(), what="no entrance left", base=5)
