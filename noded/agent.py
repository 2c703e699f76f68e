"""The node agent: one long-lived session with the controller.

Up: a hello with the host inventory, then a heartbeat every interval (usage,
observed guests, the inventory again when it changed). Down: a welcome, the
desired state in full, then changes, each with a revision; the reconcile loop
applies them and the agent acknowledges the revision. When the session breaks
(controller restart, network) the agent reconnects with exponential backoff
and jitter; the controller sends the full desired state again and the
reconcile loop, being level-triggered, just converges."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kumo import desired
from kumo.errorinfo import error_reason
from kumo.keys import key_pem, make_csr, new_key
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc, node_pb2
from noded import __version__
from noded.certcheck import CertificateDoctor
from noded.console import ConsoleServer
from noded.endpoints import ControllerEndpoints
from noded.hypervisor.base import Guest, HostFacts, HostUsage, HypervisorDriver
from noded.metrics import NodeMetrics
from noded.reconcile import PassResult, Reconciler, Step, record_desired
from noded.state import Credentials, CurrentCredentials, StateDir

log = logging.getLogger("kumo.noded")

# A controller taking in a whole fleet at once (after a restart) may be slow to
# answer; giving up early would only add to its load.
WELCOME_TIMEOUT = 60.0

# The controller no longer accepts this node's certificate: retrying cannot help.
FATAL_REASONS = {"NODE_UNKNOWN", "NODE_DELETED", "CERT_REVOKED", "NOT_A_NODE"}

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # We do our own backoff; don't let a channel sit in its own long one.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # No bandwidth-delay probe on the session: it pinged the controller after every ack that came
    # (a ping and its ack per heartbeat, which 10,000 nodes make 2,000 a second for the controller
    # to answer). The session carries small messages; blobs and snapshots go over another channel
    # (noded.compute), which keeps the probe. A full desired state still gets a 1 MiB window.
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 1024 * 1024),
]


# Renew the certificate at this fraction of its lifetime; ask again after
# this many seconds without an answer.
RENEW_AT = 2 / 3
RENEW_RETRY = 60.0

# A certificate the node port refused this many times in a row will not be
# accepted on the next try either: the daemon stops (exit status 4).
MAX_CERT_REFUSALS = 3
# A fenced node asks for a session again this often (at random in [half, all]),
# so that an admin's unfence takes effect within seconds.
FENCED_RETRY = 4.0


class Fatal(Exception):
    """The session cannot be re-established (the node was deleted, ...)."""


class Renewed(Exception):
    """This node has a new certificate: reconnect with it at once."""


class CertificateRefused(Fatal):
    """The node port refused this node's certificate at the TLS handshake,
    several times in a row (another cloud's CA, forged, expired)."""


class Backoff:
    """Exponential backoff with full jitter: a fleet that lost its controller
    does not come back in lockstep."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


_POWER = {
    "RUNNING": pb.GUEST_POWER_STATE_RUNNING,
    "PAUSED": pb.GUEST_POWER_STATE_PAUSED,
    "SHUTDOWN": pb.GUEST_POWER_STATE_SHUTDOWN,
    "CRASHED": pb.GUEST_POWER_STATE_CRASHED,
    "STOPPED": pb.GUEST_POWER_STATE_STOPPED,
}


def inventory_pb(
    f: HostFacts,
    tunnel_ip: str = "",
    storage_backends: tuple[str, ...] = ("local",),
    migration: tuple[str, str, int] = ("", "", 0),
) -> node_pb2.NodeInventory:
    return node_pb2.NodeInventory(
        hostname=f.hostname[:255],
        vcpus=f.vcpus,
        memory_mb=f.memory_mb,
        disk_gb=f.disk_gb,
        virt_type=f.virt_type,
        driver=f.driver,
        arch=f.arch,
        cpu_model=f.cpu_model[:255],
        libvirt_version=f.libvirt_version,
        qemu_version=f.qemu_version,
        agent_version=__version__,
        kernel=f.kernel[:128],
        tunnel_ip=tunnel_ip,
        storage_backends=storage_backends,
        migration_address=migration[0],
        migration_uri=migration[1],
        migration_port=migration[2],
    )


def usage_pb(u: HostUsage, guests: list[Guest]) -> node_pb2.NodeUsage:
    running = [g for g in guests if g.power_state == "RUNNING"]
    return node_pb2.NodeUsage(
        memory_free_mb=u.memory_free_mb,
        disk_free_gb=u.disk_free_gb,
        load_1m=u.load_1m,
        guests_running=len(running),
        guest_vcpus=sum(g.vcpus for g in running),
        guest_memory_mb=sum(g.memory_mb for g in running),
    )


def guest_pb(g: Guest) -> pb.GuestStatus:
    return pb.GuestStatus(
        instance_id=g.instance_id,
        domain_name=g.domain_name,
        power_state=_POWER.get(g.power_state, pb.GUEST_POWER_STATE_UNSPECIFIED),
        vcpus=g.vcpus,
        memory_mb=g.memory_mb,
    )


class Agent:
    def __init__(
        self,
        creds: Credentials | CurrentCredentials,
        driver: HypervisorDriver,
        state_dir: StateDir | None = None,
        heartbeat_seconds: float | None = None,
        reconcile_seconds: float = 30.0,
        steps: list[Step] | None = None,
        guest_reporter: Callable[[list[Guest]], list[pb.GuestStatus]] | None = None,
        volume_reporter: Callable[[], list[pb.VolumeStatus]] | None = None,
        periodic: list[tuple[float, Callable[[], None]]] | None = None,
        on_rtt: Callable[[float], None] | None = None,
        facts_refresh_seconds: float = 60.0,
        tunnel_ip: str = "",
        migration: tuple[str, str, int] = ("", "", 0),
        metrics: NodeMetrics | None = None,
        doctor: CertificateDoctor | None = None,
        max_cert_refusals: int = MAX_CERT_REFUSALS,
        storage_backends: tuple[str, ...] = ("local",),
        consoles: ConsoleServer | None = None,
        endpoints: ControllerEndpoints | None = None,
    ) -> None:
        # Serves the consoles the controller asks for (ConsoleOpen), on the session's channel.
        self.consoles = consoles
        self.current = (
            creds if isinstance(creds, CurrentCredentials) else CurrentCredentials(creds, state_dir)
        )
        # The controllers to open the session with, one at a time.
        self.endpoints = endpoints or ControllerEndpoints(self.current.get().identity.node_endpoint)
        # Says why a session could not open when a certificate is the reason.
        self.doctor = doctor or CertificateDoctor(self.current.get, endpoint=self.endpoints.current)
        self.max_cert_refusals = max_cert_refusals
        self.cert_refusals = 0
        self.driver = driver
        # What heartbeats say about guests (the compute feature adds faults,
        # reboot generations, snapshots); and blocking chores run every N s.
        self.guest_reporter = guest_reporter or (lambda guests: [guest_pb(g) for g in guests])
        # What heartbeats say about volumes (from memory: no I/O in the event loop).
        self.volume_reporter = volume_reporter or list
        self.periodic = periodic or []
        self.state_dir = state_dir
        self.heartbeat_override = heartbeat_seconds
        self.metrics = metrics
        if metrics is not None and on_rtt is None:
            on_rtt = metrics.heartbeat_rtt_seconds.observe
        self.on_rtt = on_rtt
        self.facts_refresh = facts_refresh_seconds
        # This node's VXLAN underlay address, for the controller's overlay peers.
        self.tunnel_ip = tunnel_ip
        # (address, hypervisor URI, tunnel port) where other nodes send live migrations.
        self.migration = migration
        self.storage_backends = storage_backends
        self.backoff = Backoff()
        self.reconciler = Reconciler(
            driver,
            [record_desired(state_dir), *(steps or [])],
            period=reconcile_seconds,
            on_applied=self._send_ack,
            metrics=metrics,
        )
        if state_dir is not None:
            self.reconciler.applied_revision = state_dir.load_desired_revision()
        self.desired = pb.NodeDesiredState()
        self.revision = 0
        self.connected = asyncio.Event()
        self.sessions = 0
        self._call: Any = None
        self._stub: Any = None
        self._write_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._facts: HostFacts | None = None
        self._sent: dict[int, float] = {}  # heartbeat seq -> when it was sent
        self._rotate = asyncio.Event()  # the desired state asks for a new certificate
        self._renewal_key: ec.EllipticCurvePrivateKey | None = None

    @property
    def creds(self) -> Credentials:
        return self.current.get()

    @property
    def node_id(self) -> str:
        return self.creds.identity.node_id

    async def _driver(self, fn: Callable[[], Any]) -> Any:
        if self.driver.blocking:
            return await asyncio.get_running_loop().run_in_executor(None, fn)
        return fn()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Runs until stop(); raises Fatal when the controller refuses this node for good."""
        reconciler = asyncio.create_task(self.reconciler.run())
        chores = [asyncio.create_task(self._every(period, fn)) for period, fn in self.periodic]
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                sessions = self.sessions
                fenced = False
                try:
                    await self._session()
                    if self._stopping.is_set():
                        break
                    log.warning("session ended by the controller", extra={"node_id": self.node_id})
                except Fatal:
                    raise
                except Renewed:
                    log.info("reconnecting with the renewed certificate", extra={"node_id": self.node_id})
                    self.backoff.reset()
                    continue
                except grpc.RpcError as exc:
                    code = exc.code() if hasattr(exc, "code") else None
                    reason = error_reason(exc)
                    if code == grpc.StatusCode.UNAUTHENTICATED and reason in FATAL_REASONS:
                        log.error(
                            f"the controller refused this node's certificate: {exc.details()} [{reason}]",
                            extra={"node_id": self.node_id, "reason": reason},
                        )
                        raise Fatal(f"the controller refuses this node: {exc.details()}") from None
                    if reason == "NODE_FENCED":
                        # Fenced: no session, so no desired state and no reconcile
                        # (it starts no guest, not even one it ran before the
                        # fence); it asks again, every few seconds, until re-admitted.
                        fenced = True
                        self.reconciler.forget_desired()
                        log.warning(
                            f"the controller refuses a session: {exc.details()} [{reason}]",
                            extra={"node_id": self.node_id, "reason": reason},
                        )
                    else:
                        log.warning(
                            "session lost",
                            extra={
                                "node_id": self.node_id,
                                "code": getattr(code, "name", "?"),
                                "error": exc.details(),
                            },
                        )
                    if code == grpc.StatusCode.UNAVAILABLE and self.sessions == sessions:
                        await self._check_certificate()
                except (ConnectionError, TimeoutError, OSError) as exc:
                    log.warning("session lost", extra={"node_id": self.node_id, "error": str(exc)})
                except Exception:
                    # A daemon keeps going: log the bug and reconnect.
                    log.exception("session failed", extra={"node_id": self.node_id})
                finally:
                    self.connected.clear()
                    self._call = None
                    if self.metrics is not None:
                        self.metrics.session_connected.set(0)
                if time.monotonic() - started > 60:
                    self.backoff.reset()  # it was a good session; start over quickly
                delay = random.uniform(FENCED_RETRY / 2, FENCED_RETRY) if fenced else self.backoff.next()
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            for task in (reconciler, *chores):
                task.cancel()
            await asyncio.gather(reconciler, *chores, return_exceptions=True)

    async def _check_certificate(self) -> None:
        """After a session that never opened: was a certificate the reason?
        Stops the agent (CertificateRefused) after `max_cert_refusals` in a row."""
        diagnosis = await asyncio.get_running_loop().run_in_executor(None, self.doctor.diagnose)
        if diagnosis is None:
            self.cert_refusals = 0
            return
        if not diagnosis.refused:
            log.warning(diagnosis.message, extra={"node_id": self.node_id})
            return
        self.cert_refusals += 1
        message = f"the controller refused this node's certificate: {diagnosis.message}"
        log.warning(
            message,
            extra={"node_id": self.node_id, "refusals": self.cert_refusals, "of": self.max_cert_refusals},
        )
        if self.cert_refusals >= self.max_cert_refusals:
            raise CertificateRefused(message)

    async def _every(self, period: float, fn: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            try:
                await loop.run_in_executor(None, fn)
            except Exception:
                log.exception("periodic chore failed")

    async def _session(self) -> None:
        c = self.creds
        creds = grpc.ssl_channel_credentials(c.ca_pem, c.key_pem, c.cert_pem)
        endpoint = self.endpoints.current()
        try:
            async with grpc.aio.secure_channel(endpoint, creds, options=CHANNEL_OPTIONS) as channel:
                await self._session_on(channel, endpoint)
        except Renewed:
            raise
        except BaseException:
            if not self._stopping.is_set():
                self.endpoints.failed(endpoint)
            raise
        if not self._stopping.is_set():
            self.endpoints.failed(endpoint)  # the controller ended it: maybe it is stopping

    async def _session_on(self, channel: Any, endpoint: str) -> None:
        """One session on `channel` (to `endpoint`), until it ends."""
        self._stub = node_agent_pb2_grpc.NodeAgentServiceStub(channel)
        call = self._stub.Session()
        self._facts = await self._driver(self.driver.host_facts)
        assert self._facts is not None
        await _write(
            call,
            pb.SessionRequest(
                hello=pb.NodeHello(
                    inventory=inventory_pb(
                        self._facts, self.tunnel_ip, self.storage_backends, self.migration
                    ),
                    applied_revision=self.reconciler.applied_revision,
                )
            ),
        )
        first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
            await _raise_status(call)
            raise ConnectionError("the controller did not welcome the session")
        interval = (
            self.heartbeat_override or first.welcome.heartbeat_interval.ToTimedelta().total_seconds() or 5.0
        )
        self.endpoints.learn(list(first.welcome.controller_node_endpoints))
        self._call = call
        self.sessions += 1
        if self.metrics is not None:
            self.metrics.sessions_opened.inc()
            self.metrics.session_connected.set(1)
        self.backoff.reset()
        self.cert_refusals = 0
        self.connected.set()
        log.info(
            "session open",
            extra={"node_id": self.node_id, "heartbeat_seconds": interval, "controller": endpoint},
        )
        tasks = {
            asyncio.create_task(self._heartbeats(call, interval), name="heartbeats"),
            asyncio.create_task(self._read(call), name="read"),
            asyncio.create_task(self._renewals(call), name="renewals"),
            asyncio.create_task(self._stopping.wait(), name="stop"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first_done = done.pop()
            if first_done.get_name() == "stop":
                call.cancel()
                return
            first_done.result()  # raises why the session ended
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, call: Any) -> None:
        """Handles what the controller sends until the stream ends (then raises its status)."""
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                await _raise_status(call)
                return
            self._handle(msg)

    async def _renewals(self, call: Any) -> None:
        """Renews this node's certificate at 2/3 of its lifetime, or at once
        when the desired state asks for a rotation; the answer comes in `_handle`."""
        while True:
            cert = x509.load_pem_x509_certificate(self.creds.cert_pem)
            start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
            due = start + (end - start) * RENEW_AT
            try:
                await asyncio.wait_for(self._rotate.wait(), max(0.0, due - time.time()))
            except TimeoutError:
                pass
            self._renewal_key = new_key()
            csr = make_csr(self._renewal_key, self.creds.identity.name).decode()
            log.info(
                "renewing this node's certificate",
                extra={
                    "node_id": self.node_id,
                    "rotation": self._rotate.is_set(),
                    "expires": cert.not_valid_after_utc.isoformat(),
                },
            )
            async with self._write_lock:
                await _write(
                    call, pb.SessionRequest(renew_certificate=pb.RenewCertificateRequest(csr_pem=csr))
                )
            await asyncio.sleep(RENEW_RETRY)  # no answer yet: ask again

    def _renewed(self, cert_pem: bytes) -> None:
        key = self._renewal_key
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca_certs = x509.load_pem_x509_certificates(self.creds.ca_pem)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if (
            key is None
            or cert.public_key().public_numbers() != key.public_key().public_numbers()  # type: ignore[union-attr]
            or not names
            or names[0].value != self.node_id
            or not any(_issued_by(cert, ca) for ca in ca_certs)
        ):
            raise ConnectionError(
                "the renewed certificate is not for this node's new key from its CA; resyncing"
            )
        self.current.replace(key_pem(key), cert_pem)
        self._renewal_key = None
        self._rotate.clear()
        log.info(
            "certificate renewed",
            extra={
                "node_id": self.node_id,
                "serial": format(cert.serial_number, "x"),
                "expires": cert.not_valid_after_utc.isoformat(),
            },
        )
        raise Renewed()

    def _handle(self, msg: pb.SessionResponse) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "certificate":
            self._renewed(msg.certificate.certificate_pem.encode())
        if kind == "heartbeat_ack":
            sent = self._sent.pop(msg.heartbeat_ack.seq, None)
            if sent is not None and self.on_rtt is not None:
                self.on_rtt(time.perf_counter() - sent)
        elif kind == "desired_state":
            update = msg.desired_state
            if not update.full and update.base_revision != self.revision:
                raise ConnectionError(
                    f"desired-state change for revision {update.base_revision}, have {self.revision}; resyncing"
                )
            self.desired = desired.apply(self.desired, update)
            self.revision = update.revision
            log.info(
                "desired state",
                extra={
                    "node_id": self.node_id,
                    "revision": update.revision,
                    "full": update.full,
                    "at": time.time(),  # when it arrived (the boot-latency benchmark's stages)
                },
            )
            self.reconciler.set_desired(self.desired, self.revision)
            if self.desired.rotate_certificate:
                self._rotate.set()
        elif kind == "console_open" and self.consoles is not None:
            self.consoles.start(self._stub, msg.console_open)

    async def _heartbeats(self, call: Any, interval: float) -> None:
        self._sent = {}
        seq = 0
        last_facts = time.monotonic()
        # Start at a random point of the interval so a fleet spreads out.
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            seq += 1
            usage, guests = await self._driver(self._observe)
            hb = pb.Heartbeat(
                seq=seq,
                usage=usage_pb(usage, guests),
                guests=self.guest_reporter(guests),
                volumes=self.volume_reporter(),
            )
            if time.monotonic() - last_facts >= self.facts_refresh:
                last_facts = time.monotonic()
                facts = await self._driver(self.driver.host_facts)
                if facts != self._facts:
                    self._facts = facts
                    hb.inventory.CopyFrom(
                        inventory_pb(facts, self.tunnel_ip, self.storage_backends, self.migration)
                    )
            self._sent[seq] = time.perf_counter()
            async with self._write_lock:
                await _write(call, pb.SessionRequest(heartbeat=hb))
            # A controller that stopped answering for long is as good as gone (a
            # dead connection is found sooner by keepalive). A merely slow one is
            # not: reconnecting would only add to its load.
            patience = max(6 * interval, 60.0)
            if any(time.perf_counter() - t > patience for t in self._sent.values()):
                raise TimeoutError(f"no heartbeat ack for {patience:g} s; reconnecting")
            await asyncio.sleep(interval)

    def _observe(self) -> tuple[HostUsage, list[Guest]]:
        return self.driver.usage(), self.driver.list_guests()

    async def _send_ack(self, result: PassResult) -> None:
        call = self._call
        if call is None:
            return  # the next hello carries the applied revision
        try:
            async with self._write_lock:
                await _write(
                    call,
                    pb.SessionRequest(
                        ack=pb.DesiredStateAck(revision=result.revision, error=result.error[:4000])
                    ),
                )
        except (grpc.RpcError, ConnectionError) as exc:
            log.info("could not acknowledge; the session is going away", extra={"error": str(exc)})


async def _raise_status(call: Any) -> None:
    """Raises the call's final status as a grpc.RpcError if it failed."""
    code = await call.code()
    if code != grpc.StatusCode.OK:
        details = await call.details()
        trailers = await call.trailing_metadata()
        raise grpc.aio.AioRpcError(code, await call.initial_metadata(), trailers, details)


async def _write(call: Any, msg: pb.SessionRequest) -> None:
    """Writes to the stream; if the call is over, raises why (its status)."""
    try:
        await call.write(msg)
    except asyncio.InvalidStateError:
        await _raise_status(call)
        raise ConnectionError("the session is closed") from None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
