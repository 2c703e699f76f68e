"""Node liveness and sessions, kept in memory on the node server's event loop.

A heartbeat touches memory only: the node's last-seen time, usage and guests.
What must outlive the process goes to the database in batches from here: state
changes (READY/DOWN), inventory, applied revisions at once (within a flush
tick), last-heartbeat time and usage every `heartbeat_flush_seconds`. A
monitor task marks nodes DOWN when no heartbeat came within the grace period.

Threading: everything that changes this state runs on the event loop thread.
Other threads (the admin API, enrollment) call the `*_threadsafe` methods,
which hand the work to the loop; readers (`snapshot`) get a consistent copy
taken under a lock."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from controller import clock
from controller.db import nodes as store
from controller.db.database import db
from controller.errors import KumoError, Unauthenticated, Unavailable
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_pb2

log = logging.getLogger("kumo.nodes")

READY = "READY"
DOWN = "DOWN"

RESYNC = object()  # outbox marker: recompute the desired state and send a change
# A session recomputes its node's desired state at most this often: in a burst
# of changes (a create bumps every node with a port on its network) the changes
# that arrive meanwhile go out together. After a quiet spell a change goes at once.
RESYNC_INTERVAL = 0.5


@dataclass(eq=False)
class Session:
    node_id: str
    peer: str
    outbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    # What this session last sent, to compute deltas from.
    sent_state: pb.NodeDesiredState | None = None
    sent_revision: int = 0
    resync_pending: bool = False
    # Not before this (monotonic): set after each recompute, see RESYNC_INTERVAL.
    next_resync: float = 0.0
    closed: bool = False
    # Why the controller ended the session (None: the node did, or shutdown).
    close_error: KumoError | None = None
    opened: float = field(default_factory=time.monotonic)

    def request_resync(self) -> None:
        """Runs on the event loop (notify_threadsafe brings callers there)."""
        if self.resync_pending or self.closed:
            return
        self.resync_pending = True
        delay = self.next_resync - time.monotonic()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._queue_resync)
        else:
            self._queue_resync()

    def _queue_resync(self) -> None:
        if not self.closed:
            self.outbox.put_nowait(RESYNC)

    def resynced(self) -> None:
        """The session took RESYNC off its outbox and recomputes now."""
        self.resync_pending = False
        self.next_resync = time.monotonic() + RESYNC_INTERVAL

    def close(self, error: KumoError | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.close_error = error
            self.outbox.put_nowait(None)


@dataclass(eq=False)
class Live:
    node_id: str
    status: str = DOWN
    last_seen: float = 0.0  # monotonic
    last_seen_wall: float = 0.0
    usage: node_pb2.NodeUsage | None = None
    inventory: node_pb2.NodeInventory | None = None
    guests: list[pb.GuestStatus] = field(default_factory=list)
    applied_revision: int = 0
    address: str = ""
    session: Session | None = None
    volumes: list[pb.VolumeStatus] = field(default_factory=list)
    # A heartbeat came since this controller started (so `volumes` is real).
    heard: bool = False


@dataclass(frozen=True)
class LiveView:
    """A copy of a node's live state for API readers on other threads."""

    status: str
    connected: bool
    last_seen_wall: float
    usage: node_pb2.NodeUsage | None
    inventory: node_pb2.NodeInventory | None
    guests: tuple[pb.GuestStatus, ...]
    applied_revision: int
    address: str
    # The volumes the node reported in its last heartbeat; `heard`: there
    # was one since this controller started (else `volumes` is just empty).
    volumes: tuple[pb.VolumeStatus, ...] = ()
    heard: bool = False


def tunnel_host(address: str) -> str:
    """The host of a gRPC peer string ("ipv4:10.0.0.5:4242", "ipv6:[fd00::1]:4242")."""
    if address.startswith("ipv4:"):
        return address[5:].rsplit(":", 1)[0]
    if address.startswith("ipv6:"):
        host = address[5:].rsplit(":", 1)[0]
        return host.strip("[]").split("%")[0]
    return ""


def tunnel_ip(inventory: node_pb2.NodeInventory | None, address: str) -> str:
    """Where other nodes send the node's overlay traffic: the address it
    reports, else the one its session comes from."""
    if inventory is not None and inventory.tunnel_ip:
        return inventory.tunnel_ip
    return tunnel_host(address)


def _log_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("tunnel listener failed", exc_info=done.exception())


def usage_json(usage: node_pb2.NodeUsage | None) -> str:
    if usage is None:
        return "{}"
    return json.dumps(
        {
            "memory_free_mb": usage.memory_free_mb,
            "disk_free_gb": usage.disk_free_gb,
            "load_1m": usage.load_1m,
            "guests_running": usage.guests_running,
            "guest_vcpus": usage.guest_vcpus,
            "guest_memory_mb": usage.guest_memory_mb,
        }
    )


def inventory_columns(inv: node_pb2.NodeInventory) -> dict[str, Any]:
    return {c: getattr(inv, c) for c in store.INVENTORY_COLUMNS}


class Stats:
    """Heartbeat figures for the periodic log line (and the fleet benchmark)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.started = time.monotonic()
        self.samples: list[float] = []
        self.lags: list[float] = []
        self.gc_pauses: list[float] = getattr(self, "gc_pauses", [])
        self._gc_start = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    def add(self, seconds: float) -> None:
        self.count += 1
        if len(self.samples) < 200_000:
            self.samples.append(seconds)

    def summary(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        s = sorted(self.samples)

        def pct(p: float) -> float:
            return round(s[min(len(s) - 1, int(p * len(s)))] * 1e6, 1) if s else 0.0

        lags = sorted(self.lags)
        pauses, self.gc_pauses = self.gc_pauses, []
        return {
            "gc_max_ms": round(max(pauses, default=0.0) * 1e3, 1),
            "loop_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1e3, 1) if lags else 0.0,
            "loop_lag_max_ms": round(lags[-1] * 1e3, 1) if lags else 0.0,
            "heartbeats": self.count,
            "per_second": round(self.count / elapsed, 1),
            "handler_p50_us": pct(0.50),
            "handler_p99_us": pct(0.99),
            "handler_max_us": round(s[-1] * 1e6, 1) if s else 0.0,
        }


class NodeRegistry:
    def __init__(
        self,
        grace_seconds: float,
        heartbeat_seconds: float,
        stats_log_seconds: float = 60.0,
        flush_seconds: float = 1.0,
        heartbeat_flush_seconds: float = 10.0,
    ) -> None:
        self.grace = grace_seconds
        self.heartbeat_interval = heartbeat_seconds
        self.stats_log_seconds = stats_log_seconds
        self.flush_seconds = flush_seconds
        self.heartbeat_flush_seconds = heartbeat_flush_seconds
        self.live: dict[str, Live] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stats = Stats()
        self._lock = threading.Lock()  # guards readers' copies against the loop's writes
        self._pending = store.PendingWrites({}, {}, {}, {})
        self._heartbeat_dirty: set[str] = set()
        self._last_heartbeat_flush = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        # The writer uses the database of the controller that makes the registry.
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="node-flush", initializer=db.bind_thread, initargs=(db.obj,)
        )
        self._tunnel_listeners: list[Callable[[str], None]] = []

    def watch_tunnels(self, listener: Callable[[str], None]) -> None:
        """listener(node_id) runs on a worker thread when a node's tunnel
        address moves, so the nodes that send it overlay traffic are told
        (the composition root subscribes the networks feature)."""
        self._tunnel_listeners.append(listener)

    # Start and stop (on the loop)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        rows = await self.loop.run_in_executor(self._writer, store.all_node_liveness)
        now = time.monotonic()
        with self._lock:
            for node_id, status, last_wall, applied, address in rows:
                live = Live(
                    node_id,
                    status=status,
                    last_seen_wall=last_wall,
                    applied_revision=applied,
                    address=address,
                )
                if status == READY:
                    # The controller was away, not necessarily the node: give it
                    # a grace period from now to reconnect before calling it DOWN.
                    live.last_seen = now
                self.live[node_id] = live
        self._tasks = [
            asyncio.create_task(self._monitor(), name="node-monitor"),
            asyncio.create_task(self._flusher(), name="node-flush"),
            asyncio.create_task(self._gc_keeper(), name="node-gc"),
        ]
        if self.stats_log_seconds > 0:
            gc.callbacks.append(self.stats.on_gc)
            self._tasks.append(asyncio.create_task(self._stats_logger(), name="node-stats"))
            self._tasks.append(asyncio.create_task(self._lag_probe(), name="node-lag"))
        log.info("node registry ready", extra={"nodes": len(rows)})

    async def shutdown(self) -> None:
        for live in list(self.live.values()):
            if live.session is not None:
                live.session.close(Unavailable("the controller is shutting down; reconnect"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush(force=True)
        self._writer.shutdown(wait=True)

    # Sessions (on the loop)

    def _get(self, node_id: str) -> Live:
        live = self.live.get(node_id)
        if live is None:
            with self._lock:
                live = self.live.setdefault(node_id, Live(node_id))
        return live

    def open_session(self, node_id: str, hello: pb.NodeHello, peer: str) -> Session:
        live = self._get(node_id)
        old = live.session
        if old is not None:
            old.close(
                Unavailable("a newer session of this node replaced this one", reason="SESSION_REPLACED")
            )
        session = Session(node_id, peer)
        before = tunnel_ip(live.inventory, live.address)
        with self._lock:
            live.session = session
            live.address = peer
            live.inventory = hello.inventory
            live.applied_revision = hello.applied_revision
        self._tunnel_check(node_id, before, tunnel_ip(hello.inventory, peer))
        self._pending.inventories[node_id] = inventory_columns(hello.inventory)
        self._pending.sessions[node_id] = (hello.applied_revision, peer)
        self._seen(live)
        session.request_resync()  # the first desired-state update: in full
        log.info("node session opened", extra={"node_id": node_id, "peer": peer})
        return session

    def _tunnel_check(self, node_id: str, before: str, after: str) -> None:
        if before and after != before and self.loop is not None:
            log.info("node tunnel address moved", extra={"node_id": node_id, "from": before, "to": after})
            for listener in self._tunnel_listeners:
                done = self.loop.run_in_executor(None, listener, node_id)
                done.add_done_callback(_log_failure)

    def close_session(self, session: Session) -> None:
        session.closed = True
        live = self.live.get(session.node_id)
        if live is not None and live.session is session:
            with self._lock:
                live.session = None
            log.info("node session closed", extra={"node_id": session.node_id})

    def heartbeat(self, session: Session, hb: pb.Heartbeat) -> pb.SessionResponse:
        start = time.perf_counter()
        live = self.live.get(session.node_id)
        if live is None or live.session is not session:
            raise Unauthenticated("this session is no longer valid", reason="SESSION_GONE")
        with self._lock:
            live.usage = hb.usage
            live.guests = list(hb.guests)
            live.volumes = list(hb.volumes)
            live.heard = True
            moved = None
            if hb.HasField("inventory"):
                moved = tunnel_ip(live.inventory, live.address), tunnel_ip(hb.inventory, live.address)
                live.inventory = hb.inventory
                self._pending.inventories[live.node_id] = inventory_columns(hb.inventory)
        if moved is not None:
            self._tunnel_check(live.node_id, *moved)
        self._seen(live)
        self._heartbeat_dirty.add(live.node_id)
        ack = pb.SessionResponse(heartbeat_ack=pb.HeartbeatAck(seq=hb.seq))
        self.stats.add(time.perf_counter() - start)
        return ack

    def acked(self, session: Session, ack: pb.DesiredStateAck) -> None:
        live = self.live.get(session.node_id)
        if live is None or live.session is not session:
            return
        with self._lock:
            live.applied_revision = ack.revision
        self._pending.sessions[live.node_id] = (ack.revision, live.address)
        if ack.error:
            log.warning(
                "node could not apply its desired state",
                extra={"node_id": live.node_id, "revision": ack.revision, "error": ack.error[:500]},
            )

    def _seen(self, live: Live) -> None:
        live.last_seen = time.monotonic()
        live.last_seen_wall = clock.now()
        if live.status != READY:
            self._set_status(live, READY)

    def _set_status(self, live: Live, status: str) -> None:
        with self._lock:
            live.status = status
        self._pending.statuses[live.node_id] = status
        log.info(f"node {status.lower()}", extra={"node_id": live.node_id})

    # From other threads

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is stopping; nothing to tell

    def notify_threadsafe(self, node_id: str) -> None:
        """The node's desired state changed: its session (if any) sends the change."""
        self._call(self._notify, node_id)

    def _notify(self, node_id: str) -> None:
        live = self.live.get(node_id)
        if live is not None and live.session is not None:
            live.session.request_resync()

    def enrolled_threadsafe(self, node_id: str) -> None:
        self._call(self._get, node_id)

    def forget_threadsafe(self, node_id: str) -> None:
        """The node was deleted: end its session and drop what is pending for it."""
        self._call(self._forget, node_id)

    def _forget(self, node_id: str) -> None:
        with self._lock:
            live = self.live.pop(node_id, None)
        if live is not None and live.session is not None:
            live.session.close(Unauthenticated("this node has been deleted", reason="NODE_DELETED"))
        for pending in (
            self._pending.heartbeats,
            self._pending.statuses,
            self._pending.inventories,
            self._pending.sessions,
        ):
            pending.pop(node_id, None)  # type: ignore[attr-defined]
        self._heartbeat_dirty.discard(node_id)

    def capacities(self) -> dict[str, tuple[bool, node_pb2.NodeInventory | None]]:
        """Every known node's (READY?, inventory), under one lock: what the
        scheduler needs, without a snapshot per node."""
        with self._lock:
            return {nid: (live.status == READY, live.inventory) for nid, live in self.live.items()}

    def snapshot(self, node_id: str) -> LiveView | None:
        with self._lock:
            live = self.live.get(node_id)
            if live is None:
                return None
            return LiveView(
                live.status,
                live.session is not None,
                live.last_seen_wall,
                live.usage,
                live.inventory,
                tuple(live.guests),
                live.applied_revision,
                live.address,
                volumes=tuple(live.volumes),
                heard=live.heard,
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            ready = sum(1 for x in self.live.values() if x.status == READY)
            connected = sum(1 for x in self.live.values() if x.session is not None)
            return {"nodes": len(self.live), "ready": ready, "connected": connected}

    # Background tasks (on the loop)

    async def _monitor(self) -> None:
        tick = max(0.1, min(1.0, self.grace / 4))
        while True:
            await asyncio.sleep(tick)
            deadline = time.monotonic() - self.grace
            for live in list(self.live.values()):
                if live.status == READY and live.last_seen < deadline:
                    self._set_status(live, DOWN)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self._flush()

    async def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._heartbeat_dirty and (
            force or now - self._last_heartbeat_flush >= self.heartbeat_flush_seconds
        ):
            for node_id in self._heartbeat_dirty:
                live = self.live.get(node_id)
                if live is not None:
                    self._pending.heartbeats[node_id] = (live.last_seen_wall, live.usage)  # type: ignore[assignment]
            self._heartbeat_dirty = set()
            self._last_heartbeat_flush = now
        if self._pending.empty():
            return
        batch, self._pending = self._pending, store.PendingWrites({}, {}, {}, {})
        assert self.loop is not None
        try:
            await self.loop.run_in_executor(self._writer, self._write, batch)
        except Exception:
            log.exception("writing node state failed; will retry")
            self._pending.requeue(batch)

    @staticmethod
    def _write(batch: store.PendingWrites) -> None:
        # Usage is turned into JSON here, off the event loop.
        rows = store.PendingWrites(
            {nid: (t, usage_json(usage)) for nid, (t, usage) in batch.heartbeats.items()},  # type: ignore[arg-type]
            batch.statuses,
            batch.inventories,
            batch.sessions,
        )
        store.flush(rows, clock.now())

    async def _gc_keeper(self, every: float = 5.0, thaw_every: float = 3600.0) -> None:
        """Thousands of sessions are many long-lived objects, and a full garbage
        collection rescans them all: pauses of hundreds of milliseconds on the
        loop every session waits on (measured with 5,000 nodes). So what has
        survived a few seconds is frozen (gc.freeze, O(1)) and full collections
        skip it; once an hour everything is thawed and collected, so reference
        cycles that died while frozen are reclaimed after all."""
        last_thaw = time.monotonic()
        while True:
            await asyncio.sleep(every)
            if time.monotonic() - last_thaw >= thaw_every:
                gc.unfreeze()
                gc.collect()
                last_thaw = time.monotonic()
            gc.freeze()

    async def _lag_probe(self) -> None:
        """How late the event loop runs a timer: what every session waits on top of its own work."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.05)
            self.stats.lags.append(max(0.0, time.monotonic() - start - 0.05))

    async def _stats_logger(self) -> None:
        while True:
            await asyncio.sleep(self.stats_log_seconds)
            summary = self.stats.summary()
            self.stats.reset()
            log.info("node sessions", extra={**self.counts(), **summary})
