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

from kumo import desired
from kumo.errorinfo import error_reason
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc, node_pb2
from noded import __version__
from noded.hypervisor.base import Guest, HostFacts, HostUsage, HypervisorDriver
from noded.metrics import NodeMetrics
from noded.reconcile import PassResult, Reconciler, Step, record_desired
from noded.state import Credentials, StateDir

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
]


class Fatal(Exception):
    """The session cannot be re-established (the node was deleted, ...)."""


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


def inventory_pb(f: HostFacts, tunnel_ip: str = "") -> node_pb2.NodeInventory:
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
        creds: Credentials,
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
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.creds = creds
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
        self._write_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._facts: HostFacts | None = None
        self._sent: dict[int, float] = {}  # heartbeat seq -> when it was sent

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
                try:
                    await self._session()
                    if self._stopping.is_set():
                        break
                    log.warning("session ended by the controller", extra={"node_id": self.node_id})
                except Fatal:
                    raise
                except grpc.RpcError as exc:
                    code = exc.code() if hasattr(exc, "code") else None
                    reason = error_reason(exc)
                    if code == grpc.StatusCode.UNAUTHENTICATED and reason in FATAL_REASONS:
                        raise Fatal(f"the controller refuses this node: {exc.details()}") from None
                    log.warning(
                        "session lost",
                        extra={
                            "node_id": self.node_id,
                            "code": getattr(code, "name", "?"),
                            "error": exc.details(),
                        },
                    )
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
                delay = self.backoff.next()
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            for task in (reconciler, *chores):
                task.cancel()
            await asyncio.gather(reconciler, *chores, return_exceptions=True)

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
        async with grpc.aio.secure_channel(
            c.identity.node_endpoint, creds, options=CHANNEL_OPTIONS
        ) as channel:
            call = node_agent_pb2_grpc.NodeAgentServiceStub(channel).Session()
            self._facts = await self._driver(self.driver.host_facts)
            assert self._facts is not None
            await _write(
                call,
                pb.SessionRequest(
                    hello=pb.NodeHello(
                        inventory=inventory_pb(self._facts, self.tunnel_ip),
                        applied_revision=self.reconciler.applied_revision,
                    )
                ),
            )
            first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
            if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
                await _raise_status(call)
                raise ConnectionError("the controller did not welcome the session")
            interval = (
                self.heartbeat_override
                or first.welcome.heartbeat_interval.ToTimedelta().total_seconds()
                or 5.0
            )
            self._call = call
            self.sessions += 1
            if self.metrics is not None:
                self.metrics.sessions_opened.inc()
                self.metrics.session_connected.set(1)
            self.backoff.reset()
            self.connected.set()
            log.info("session open", extra={"node_id": self.node_id, "heartbeat_seconds": interval})
            tasks = {
                asyncio.create_task(self._heartbeats(call, interval), name="heartbeats"),
                asyncio.create_task(self._read(call), name="read"),
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

    def _handle(self, msg: pb.SessionResponse) -> None:
        kind = msg.WhichOneof("kind")
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
                extra={"node_id": self.node_id, "revision": update.revision, "full": update.full},
            )
            self.reconciler.set_desired(self.desired, self.revision)

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
                    hb.inventory.CopyFrom(inventory_pb(facts, self.tunnel_ip))
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
