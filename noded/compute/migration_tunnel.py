"""The live migration stream between node daemons, carried over TLS with the
nodes' own certificates from the cloud's CA (docs/nodes.md, "How the stream
is secured").

qemu on either side talks to a unix socket at the same path on both nodes
(libvirt's `unix://` migration and disks URIs); the node daemons carry the
bytes between those sockets:

    source qemu -> <dir>/<migration id>.<stream>   (the source daemon listens)
      -> TLS to the target's migration_address:migration_port, with the
         source's node certificate
      -> the target daemon checks it (the cloud's CA, a node's certificate),
         that it expects this migration, and connects to the same path on
         its side, where its qemu listens for the incoming migration.

Two streams per migration: `m` (memory and device state) and `d` (the NBD
copy of node-local disks). Node certificates are client certificates only
(no serverAuth), so the source checks the target's certificate itself:
issued by the cloud's CA, valid now, and naming the target node it expects.

On the host, only root and the user qemu runs guests as may use the
sockets (docs/nodes.md, "Who may use the sockets"): the directory is
root:<qemu's group> 0730 (qemu makes the target's socket there; nobody lists
it; nobody else enters it), the source's entrance root:<qemu's group> 0660,
and the daemon checks the other end of every unix connection with
SO_PEERCRED: the process that connects to an entrance, and the one that
listens on a target's socket, must run as root or as qemu's user.

qemu's own TLS (VIR_MIGRATE_TLS) is not used: libvirt takes its certificates
from one directory per libvirtd (qemu.conf `migrate_tls_x509_cert_dir`, read
when libvirtd starts; no per-migration parameter), which kumo does not own
and which cannot serve several clouds sharing one libvirtd, as the tests do.

All sockets run on one asyncio loop in a thread of its own (an SSL object
must not be read and written from two threads at once)."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from noded.state import Credentials

log = logging.getLogger("kumo.noded.migration")

STREAMS = ("m", "d")  # memory and device state; the disks' NBD copy
NODE_ORG = "kumo-nodes"  # controller/pki.py: the O of every node certificate
HEADER_MAX = 512
HANDSHAKE_SECONDS = 15.0
CHUNK = 256 * 1024


class TunnelError(Exception):
    """The tunnel could not be opened; the message says why."""


@dataclass(frozen=True)
class LocalPeers:
    """Who on this host may be at the other end of the tunnel's unix sockets:
    root and the hypervisor's guest user (`guest`: its uid and gid; None when
    the driver does not say, and then root alone)."""

    guest: tuple[int, int] | None = None

    @property
    def uids(self) -> frozenset[int]:
        return frozenset({0, os.geteuid()} | ({self.guest[0]} if self.guest else set()))

    @property
    def gid(self) -> int:
        return self.guest[1] if self.guest else 0


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected unix socket
    (the kernel's record from connect or listen time: SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def check_local_peer(writer: asyncio.StreamWriter, peers: LocalPeers, what: str) -> None:
    sock = writer.get_extra_info("socket")
    uid = peer_uid(sock) if sock is not None else -1
    if uid not in peers.uids:
        raise TunnelError(f"{what} runs as uid {uid}, not root or the hypervisor's guest user")


@dataclass(frozen=True)
class TunnelEnds:
    """The unix sockets libvirt is given for one outgoing migration."""

    memory: str
    disks: str


def _context(creds: Credentials, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with tempfile.TemporaryDirectory(prefix="kumo-tunnel-") as tmp:  # mode 0700
        key, cert = Path(tmp) / "node.key", Path(tmp) / "node.crt"
        key.touch(0o600)
        key.write_bytes(creds.key_pem)
        cert.write_bytes(creds.cert_pem)
        ctx.load_cert_chain(cert, key)
    if server:
        ctx.load_verify_locations(cadata=creds.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:  # the target's client-only certificate is checked by check_node_cert
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_node_cert(der: bytes | None, ca_pem: bytes, node_id: str = "") -> str:
    """The node id a peer's certificate names, if the cloud's CA issued it to a
    node and it is valid now (and names `node_id`, when given)."""
    if not der:
        raise TunnelError("the peer sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:  # InvalidSignature has no message
        raise TunnelError(
            f"the peer's certificate is not from this cloud's CA ({type(exc).__name__})"
        ) from None
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise TunnelError("the peer's certificate is not valid now")
    org = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if org != [NODE_ORG] or len(cn) != 1:
        raise TunnelError("the peer's certificate is not a node's")
    if node_id and cn[0] != node_id:
        raise TunnelError(f"the peer is node {cn[0]}, not the target {node_id}")
    return str(cn[0])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: list[int]) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
            count[0] += len(data)
        if writer.can_write_eof():
            writer.write_eof()
        else:  # TLS has no half-close: the whole connection ends (qemu's streams never half-close)
            writer.close()
    except (ConnectionError, ssl.SSLError, OSError):
        pass


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> int:
    """Copies both ways until both sides are done; the bytes a -> b."""
    sent, back = [0], [0]
    try:
        await asyncio.gather(_pipe(a[0], b[1], sent), _pipe(b[0], a[1], back))
    finally:
        for w in (a[1], b[1]):
            w.close()
            with suppress(Exception):
                await w.wait_closed()
    return sent[0]


class MigrationTunnel:
    """Both halves on one node: the TLS listener for incoming migrations the
    compute step says it expects, and the unix-socket entrances of outgoing
    ones. `creds` is asked at every connection (certificate renewals)."""

    def __init__(
        self,
        creds: Callable[[], Credentials],
        socket_dir: Path,
        address: str,
        port: int,
        peers: LocalPeers | None = None,
    ) -> None:
        self.creds = creds
        self.dir = Path(socket_dir)
        self.peers = peers or LocalPeers()
        self.address = address
        self.port = port
        self._expected: set[str] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._outgoing: dict[str, list[asyncio.base_events.Server]] = {}
        self._contexts: dict[tuple[bytes, bool], ssl.SSLContext] = {}

    # Life cycle

    def start(self) -> int:
        """Listens on address:port (port 0: any); the port it got."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # qemu (its group) makes the target's sockets here; nobody lists it,
        # and nobody but root and qemu's group enters it.
        if self.dir.stat().st_gid != self.peers.gid:
            os.chown(self.dir, -1, self.peers.gid)
        os.chmod(self.dir, 0o730)
        self._thread = threading.Thread(target=self._loop.run_forever, name="migration-tunnel", daemon=True)
        self._thread.start()
        self._server = self._run(self._listen())
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("migration tunnel listening", extra={"address": self.address, "port": self.port})
        return self.port

    def stop(self) -> None:
        if self._thread is None:
            return

        async def close() -> None:
            for server in [self._server, *(s for ss in self._outgoing.values() for s in ss)]:
                if server is not None:
                    server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = None

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def _ctx(self, server: bool) -> ssl.SSLContext:
        creds = self.creds()
        key = (creds.cert_pem, server)
        ctx = self._contexts.get(key)
        if ctx is None:
            self._contexts = {k: c for k, c in self._contexts.items() if k[0] == creds.cert_pem}
            ctx = self._contexts[key] = _context(creds, server)
        return ctx

    def _path(self, migration_id: str, stream: str) -> Path:
        return self.dir / f"{migration_id}.{stream}"

    # The target's half

    def expect(self, migration_id: str) -> None:
        with self._lock:
            self._expected.add(migration_id)

    def expect_only(self, migration_ids: set[str]) -> None:
        """The incoming migrations this node has prepared; the others' sockets go."""
        with self._lock:
            gone = self._expected - migration_ids
            self._expected = set(migration_ids)
        for mid in gone:
            for stream in STREAMS:
                self._path(mid, stream).unlink(missing_ok=True)

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._incoming, self.address, self.port, ssl=self._ctx(True))

    async def _incoming(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            source = check_node_cert(
                writer.get_extra_info("ssl_object").getpeercert(binary_form=True), self.creds().ca_pem
            )
            line = await asyncio.wait_for(reader.readline(), HANDSHAKE_SECONDS)
            head = json.loads(line[:HEADER_MAX] or b"{}")
            mid, stream = str(head.get("migration_id", "")), str(head.get("stream", ""))
            with self._lock:
                expected = mid in self._expected
            if not expected or stream not in STREAMS:
                raise TunnelError(f"no incoming migration {mid!r} (stream {stream!r}) is expected here")
            local = await asyncio.open_unix_connection(str(self._path(mid, stream)))
            try:
                # Only qemu's own socket: not one someone else put there first.
                check_local_peer(local[1], self.peers, "the process listening on the migration socket")
            except TunnelError:
                local[1].close()
                raise
        except (TimeoutError, TunnelError, ValueError, OSError) as exc:
            log.warning("migration tunnel refused", extra={"peer": str(peer), "error": str(exc)})
            with suppress(Exception):
                writer.write(f"ERR {exc}\n".encode()[:HEADER_MAX])
                await writer.drain()
            writer.close()
            return
        writer.write(b"OK\n")
        await writer.drain()
        got = await _splice((reader, writer), local)
        log.info(
            "migration tunnel stream done",
            extra={"migration": mid, "stream": stream, "source_node": source, "bytes": got},
        )

    # The source's half

    @contextmanager
    def outgoing(self, migration_id: str, host: str, port: int, node_id: str) -> Iterator[TunnelEnds]:
        """Listens on the migration's unix sockets while the block runs; each
        connection libvirt or qemu makes there is carried to the target."""
        if not port:
            raise TunnelError(f"target node {node_id} advertises no migration tunnel port")
        servers = []
        try:
            for stream in STREAMS:
                path = self._path(migration_id, stream)
                path.unlink(missing_ok=True)
                servers.append(self._run(self._entrance(path, migration_id, stream, host, port, node_id)))
            with self._lock:
                self._outgoing[migration_id] = servers
            yield TunnelEnds(str(self._path(migration_id, "m")), str(self._path(migration_id, "d")))
        finally:
            with self._lock:
                self._outgoing.pop(migration_id, None)

            async def close() -> None:
                for s in servers:
                    s.close()

            self._run(close())
            for stream in STREAMS:
                self._path(migration_id, stream).unlink(missing_ok=True)

    async def _entrance(
        self, path: Path, mid: str, stream: str, host: str, port: int, node_id: str
    ) -> asyncio.base_events.Server:
        async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                check_local_peer(writer, self.peers, "the process connecting to the migration entrance")
            except (TunnelError, OSError) as exc:
                log.warning(
                    "migration tunnel refused a local peer", extra={"migration": mid, "error": str(exc)}
                )
                writer.close()
                return
            try:
                remote = await asyncio.wait_for(
                    self._dial(mid, stream, host, port, node_id), HANDSHAKE_SECONDS
                )
            except (TimeoutError, TunnelError, OSError, ssl.SSLError) as exc:
                log.warning("migration tunnel failed", extra={"migration": mid, "error": str(exc)})
                writer.close()
                return
            sent = await _splice((reader, writer), remote)
            log.info(
                "migration tunnel stream sent", extra={"migration": mid, "stream": stream, "bytes": sent}
            )

        server = await asyncio.start_unix_server(carry, str(path))
        # The source's qemu (its group) may connect; nobody else (and SO_PEERCRED in `carry`).
        os.chown(path, -1, self.peers.gid)
        os.chmod(path, 0o660)
        return server

    async def _dial(
        self, mid: str, stream: str, host: str, port: int, node_id: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port, ssl=self._ctx(False))
        try:
            check_node_cert(
                writer.get_extra_info("ssl_object").getpeercert(binary_form=True),
                self.creds().ca_pem,
                node_id,
            )
            writer.write(json.dumps({"migration_id": mid, "stream": stream}).encode() + b"\n")
            await writer.drain()
            answer = await reader.readline()
        except BaseException:
            writer.close()
            raise
        if answer != b"OK\n":
            writer.close()
            raise TunnelError(f"the target refused the stream: {answer.decode(errors='replace').strip()}")
        return reader, writer
