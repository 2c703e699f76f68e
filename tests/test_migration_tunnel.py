"""The node daemons' TLS tunnel for live migration streams
(noded/compute/migration_tunnel.py), with real TLS, real node certificates
from a kumo CA and real unix sockets: what a source's qemu writes reaches the
target's qemu socket and back; a plaintext client, a certificate from
another CA, a migration the target does not expect and a target that is not
the node named are all refused. On the host, only root and the guest user
reach the unix sockets (clients of other uids, SO_PEERCRED); a large
two-way random stream with slow readers crosses byte for byte."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.pki import CertificateAuthority, _new_ca
from kumo.keys import key_pem, make_csr, new_key
from noded.compute.migration_tunnel import LocalPeers, MigrationTunnel, TunnelError
from noded.hypervisor.libvirt_driver import parse_dac_label
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


# Who on the host may use the sockets: root and the hypervisor's guest user
# (uids of nobody on this machine stand for qemu's user and for a stranger;
# the clients run as those uids in a subprocess of the system python, which
# they can execute: the test's own interpreter is under root's 0700 home).
QEMU_UID, QEMU_GID = 64601, 64600
STRANGER_UID, STRANGER_GID = 64602, 64603
CLIENT = """
import socket, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(20)
try:
    c.connect(sys.argv[1])
except OSError as exc:
    print(f"REFUSED {exc.errno}")
    sys.exit(0)
got = b""
try:
    c.sendall(b"guest memory" * 1000)
    while len(got) < 12000 and (data := c.recv(65536)):
        got += data
except (BrokenPipeError, ConnectionResetError):
    pass
print(f"GOT {len(got)} {got[:12].decode()}" if got else "CLOSED")
"""
LISTENER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen()
print("LISTENING", flush=True)
conn, _ = s.accept()
print("ACCEPTED", flush=True)
while data := conn.recv(65536):
    conn.sendall(data)
"""


def as_user(uid: int, gid: int, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/python3", "-c", script, *args],
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def guarded(pair, tmp_path: Path) -> Iterator[tuple[MigrationTunnel, MigrationTunnel]]:
    """A source and a target whose guest user is QEMU_UID:QEMU_GID, their
    socket directories under a path every user may traverse (as a node's
    state directory is)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (clients of other uids)")
    _, _, ca = pair
    base = Path(tempfile.mkdtemp(prefix="kumo-tunnel-", dir="/var/tmp"))
    base.chmod(0o755)
    peers = LocalPeers((QEMU_UID, QEMU_GID))
    src_creds, tgt_creds = node_creds(ca, "node-src"), node_creds(ca, "node-tgt")
    source = MigrationTunnel(lambda: src_creds, base / "src", "127.0.0.1", 0, peers)
    target = MigrationTunnel(lambda: tgt_creds, base / "tgt", "127.0.0.1", 0, peers)
    source.start()
    target.start()
    try:
        yield source, target
    finally:
        source.stop()
        target.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_only_root_and_the_guest_user_reach_the_entrance(guarded) -> None:
    source, target = guarded
    st = source.dir.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o730, 0, QEMU_GID)
    target.expect("mig6")
    qemu = echo_server(target.dir / "mig6.m")
    try:
        with source.outgoing("mig6", "127.0.0.1", target.port, "node-tgt") as ends:
            entrance = Path(ends.memory).stat()
            assert (stat.S_IMODE(entrance.st_mode), entrance.st_gid) == (0o660, QEMU_GID)
            # The guest user: carried (the target's "qemu" answers in upper case).
            ok = as_user(QEMU_UID, QEMU_GID, CLIENT, ends.memory)
            assert ok.stdout.strip() == "GOT 12000 GUEST MEMORY", ok
            # Another uid in qemu's group passes the file modes; SO_PEERCRED refuses it.
            member = as_user(STRANGER_UID, QEMU_GID, CLIENT, ends.memory)
            assert member.stdout.strip() == "CLOSED", member
            # Anyone else does not even enter the directory.
            other = as_user(STRANGER_UID, STRANGER_GID, CLIENT, ends.memory)
            assert other.stdout.strip() == f"REFUSED {errno.EACCES}", other
    finally:
        qemu.close()


def test_the_target_carries_only_to_a_socket_of_the_guest_user(guarded) -> None:
    """A socket someone else put at the migration's path (qemu's group may
    make files there) gets nothing: the stream is refused."""
    source, target = guarded
    target.expect("mig7")
    path = target.dir / "mig7.m"
    squatter = subprocess.Popen(
        ["/usr/bin/python3", "-c", LISTENER, str(path)],
        user=STRANGER_UID,
        group=QEMU_GID,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "LISTENING"
        with source.outgoing("mig7", "127.0.0.1", target.port, "node-tgt") as ends:
            assert roundtrip(ends.memory, b"secret" * 100) == b""
    finally:
        squatter.kill()
        squatter.communicate(timeout=10)


def test_the_dac_label_names_the_guest_user() -> None:
    assert parse_dac_label("+64055:+64055") == (64055, 64055)
    assert parse_dac_label("+0:+0") == (0, 0)
    assert parse_dac_label("qemu:kvm") is None
    assert parse_dac_label("") is None


def test_a_large_stream_crosses_intact_both_ways_with_slow_readers(pair) -> None:
    """The tunnel is a byte pipe: a migration stream reordered, dropped or
    duplicated anywhere would corrupt the guest's memory on the target. 24 MiB
    of random bytes one way and 6 MiB back at once, written in pieces of
    random sizes and read by a target that takes small bites and pauses (the
    tunnel's buffers fill and drain many times): both arrive byte for byte."""
    source, target, _ = pair
    rng = random.Random(15)
    up, down = rng.randbytes(24 << 20), rng.randbytes(6 << 20)
    got: dict[str, str] = {}
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(target.dir / "mig8.m"))
    srv.listen()

    def send_pieces(conn: socket.socket, data: bytes, seed: int) -> None:
        pieces, at = random.Random(seed), 0
        while at < len(data):
            at += conn.send(data[at : at + pieces.randint(1, 300_000)])  # partial sends count

    def read_slowly(conn: socket.socket, size: int, seed: int, key: str) -> None:
        bites, digest, left, n = random.Random(seed), hashlib.sha256(), size, 0
        while left and (data := conn.recv(min(left, bites.choice((7, 512, 4096, 65536, 1 << 20))))):
            digest.update(data)
            left -= len(data)
            n += 1
            if n % 200 == 0:
                time.sleep(0.02)  # the reader stalls: back-pressure through both hops
        got[key] = digest.hexdigest() if not left else f"short by {left}"

    def qemu_target() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(60)
            sender = threading.Thread(target=send_pieces, args=(conn, down, 2))
            sender.start()
            read_slowly(conn, len(up), 3, "up")
            sender.join()

    serving = threading.Thread(target=qemu_target, daemon=True)
    serving.start()
    target.expect("mig8")
    try:
        with (
            source.outgoing("mig8", "127.0.0.1", target.port, "node-tgt") as ends,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c,
        ):
            c.settimeout(60)
            c.connect(ends.memory)
            reader = threading.Thread(target=read_slowly, args=(c, len(down), 4, "down"))
            reader.start()
            send_pieces(c, up, 5)
            reader.join(90)
            serving.join(90)
    finally:
        srv.close()
    assert got == {"up": hashlib.sha256(up).hexdigest(), "down": hashlib.sha256(down).hexdigest()}
