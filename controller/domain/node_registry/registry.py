"""The registry itself: node sessions and heartbeats on the event loop, the
thread-safe calls other threads make, the readers' copies, and the monitor
that marks a node DOWN when no heartbeat came within the grace period.

With several controllers on one database (`peers_seconds` > 0) the registry
also keeps, from the database, the nodes whose sessions live on other
controllers (see cluster.py), and sends changes to them through `notifier`."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from controller import clock
from controller.db import nodes as store
from controller.domain.events import EventLog
from controller.domain.node_registry import cluster
from controller.domain.node_registry.live import DOWN, READY, Live, LiveView, Session, tunnel_ip
from controller.domain.node_registry.loopstats import Stats, gc_keeper, lag_probe
from controller.domain.node_registry.notifier import PgNotifier
from controller.domain.node_registry.writer import StateWriter, inventory_columns
from controller.errors import FailedPrecondition, Unauthenticated, Unavailable
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_pb2

log = logging.getLogger("kumo.nodes")


def _log_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("tunnel listener failed", exc_info=done.exception())


class NodeRegistry:
    def __init__(
        self,
        grace_seconds: float,
        heartbeat_seconds: float,
        stats_log_seconds: float = 60.0,
        flush_seconds: float = 1.0,
        heartbeat_flush_seconds: float = 10.0,
        events: EventLog | None = None,
        controller_id: str = "",
        peers_seconds: float = 0.0,
        controller_lost_seconds: float = 15.0,
        notifier: PgNotifier | None = None,
    ) -> None:
        self.grace = grace_seconds
        self.controller_id = controller_id
        self.peers_seconds = peers_seconds
        self.controller_lost_seconds = controller_lost_seconds
        self.notifier = notifier
        self.heartbeat_interval = heartbeat_seconds
        self.stats_log_seconds = stats_log_seconds
        self.flush_seconds = flush_seconds
        self.heartbeat_flush_seconds = heartbeat_flush_seconds
        self.live: dict[str, Live] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stats = Stats()
        self._lock = threading.Lock()  # guards readers' copies against the loop's writes
        # ready_ids' answer, made again after a status or membership change
        # (under _lock): a list over 1,000 nodes per create was 1.7% of the
        # controller's time.
        self._ready: tuple[str, ...] | None = None
        self.writer = StateWriter(heartbeat_flush_seconds, events)
        self._tasks: list[asyncio.Task[None]] = []
        self._tunnel_listeners: list[Callable[[str], None]] = []

    def watch_tunnels(self, listener: Callable[[str], None]) -> None:
        """listener(node_id) runs on a worker thread when a node's tunnel
        address moves, so the nodes that send it overlay traffic are told
        (the composition root subscribes the networks feature)."""
        self._tunnel_listeners.append(listener)

    # Start and stop (on the loop)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        rows = await self.loop.run_in_executor(self.writer.executor, store.all_node_liveness)
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
            self._ready = None
        if self.peers_seconds > 0:
            await self._refresh_peers()
            self._tasks.append(asyncio.create_task(self._peers(), name="node-peers"))
        if self.notifier is not None:
            self.notifier.start(self._changed_threadsafe, self._resync_all_threadsafe)
        self._tasks += [
            asyncio.create_task(self._monitor(), name="node-monitor"),
            asyncio.create_task(self._flusher(), name="node-flush"),
            asyncio.create_task(gc_keeper(), name="node-gc"),
        ]
        if self.stats_log_seconds > 0:
            gc.callbacks.append(self.stats.on_gc)
            self._tasks.append(asyncio.create_task(self._stats_logger(), name="node-stats"))
            self._tasks.append(asyncio.create_task(lag_probe(self.stats), name="node-lag"))
        log.info("node registry ready", extra={"nodes": len(rows)})

    async def shutdown(self) -> None:
        if self.notifier is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.notifier.stop)
        for live in list(self.live.values()):
            if live.session is not None:
                live.session.close(Unavailable("the controller is shutting down; reconnect"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush(force=True)
        self.writer.shutdown()

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
            live.holder, live.holder_up = self.controller_id, True
        if self.controller_id:
            self.writer.claim(node_id, self.controller_id)
        self._tunnel_check(node_id, before, tunnel_ip(hello.inventory, peer))
        self.writer.pending.inventories[node_id] = inventory_columns(hello.inventory)
        self.writer.pending.sessions[node_id] = (hello.applied_revision, peer)
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
                live.holder = ""
            if self.controller_id:
                self.writer.release(session.node_id, self.controller_id)
            log.info("node session closed", extra={"node_id": session.node_id})

    def heartbeat(self, session: Session, hb: pb.Heartbeat) -> pb.SessionResponse:
        start = time.perf_counter()
        live = self.live.get(session.node_id)
        if live is None or live.session is not session:
            raise Unauthenticated("this session is no longer valid", reason="SESSION_GONE")
        with self._lock:
            live.usage = hb.usage
            # The message's own fields, not copies: nothing mutates them or the
            # message after it is read, and readers copy them (snapshot) or compare.
            live.guests = hb.guests
            live.volumes = hb.volumes
            live.heard = True
            moved = None
            if hb.HasField("inventory"):
                moved = tunnel_ip(live.inventory, live.address), tunnel_ip(hb.inventory, live.address)
                live.inventory = hb.inventory
                self.writer.pending.inventories[live.node_id] = inventory_columns(hb.inventory)
        if moved is not None:
            self._tunnel_check(live.node_id, *moved)
        self._seen(live)
        self.writer.heartbeat_dirty.add(live.node_id)
        ack = pb.SessionResponse(heartbeat_ack=pb.HeartbeatAck(seq=hb.seq))
        self.stats.add(time.perf_counter() - start)
        return ack

    def acked(self, session: Session, ack: pb.DesiredStateAck) -> None:
        live = self.live.get(session.node_id)
        if live is None or live.session is not session:
            return
        with self._lock:
            live.applied_revision = ack.revision
        self.writer.pending.sessions[live.node_id] = (ack.revision, live.address)
        if ack.error:
            log.warning(
                "node could not apply its desired state",
                extra={"node_id": live.node_id, "revision": ack.revision, "error": ack.error[:500]},
            )

    def send(self, node_id: str, msg: pb.SessionResponse) -> bool:
        """Queues a message on the node's session (on the loop); False when
        the node has no session here."""
        live = self.live.get(node_id)
        if live is None or live.session is None or live.session.closed:
            return False
        live.session.outbox.put_nowait(msg)
        return True

    def _seen(self, live: Live) -> None:
        live.last_seen = time.monotonic()
        live.last_seen_wall = clock.now()
        if live.status != READY:
            self._set_status(live, READY)

    def _set_status(self, live: Live, status: str) -> None:
        with self._lock:
            live.status = status
            self._ready = None
        self.writer.set_status(live.node_id, status, self.controller_id)
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
        """The node's desired state changed: its session (if any) sends the
        change; a session on another controller is told through the notifier."""
        self.notify_many_threadsafe((node_id,))

    def notify_many_threadsafe(self, node_ids: Iterable[str]) -> None:
        """notify_threadsafe for several nodes, in one hop to the loop."""
        ids = list(node_ids)
        if not ids:
            return
        if self.notifier is not None:
            for node_id in ids:
                live = self.live.get(node_id)
                if live is None or live.session is None:
                    self.notifier.publish(node_id)
        self._call(self._notify_many, ids)

    def _changed_threadsafe(self, node_ids: list[str]) -> None:
        """Another controller changed these nodes (on the notifier's thread)."""
        self._call(self._notify_many, node_ids)

    def _notify_many(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            self._notify(node_id)

    def _resync_all_threadsafe(self) -> None:
        """Notifications may have been missed: every session here resyncs."""
        self._call(self._notify_many, list(self.live))

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
            self._ready = None
        if live is not None and live.session is not None:
            live.session.close(Unauthenticated("this node has been deleted", reason="NODE_DELETED"))
        self.writer.forget(node_id)

    def fence_threadsafe(self, node_id: str) -> None:
        """The node was fenced: end a session it may have opened meanwhile."""
        self._call(self._fence, node_id)

    def _fence(self, node_id: str) -> None:
        live = self.live.get(node_id)
        if live is not None and live.session is not None:
            live.session.close(FailedPrecondition("this node has been fenced", reason="NODE_FENCED"))

    def capacities(
        self, only: Iterable[str] | None = None
    ) -> dict[str, tuple[bool, node_pb2.NodeInventory | None]]:
        """Every known node's (or those of `only` that are known) (READY?,
        inventory), under one lock: what the scheduler needs, without a
        snapshot per node (nodes whose sessions live on other controllers
        included, as the database has them). A create's sample passes `only`:
        a dict of every node per create was 6% of the controller's time."""
        with self._lock:
            if only is None:
                return {nid: (live.status == READY, live.inventory) for nid, live in self.live.items()}
            known = self.live
            return {
                nid: (live.status == READY, live.inventory)
                for nid in only
                if (live := known.get(nid)) is not None
            }

    def ready_ids(self) -> tuple[str, ...]:
        """The READY nodes' ids (a create samples from them)."""
        with self._lock:
            if self._ready is None:
                self._ready = tuple(nid for nid, live in self.live.items() if live.status == READY)
            return self._ready

    def snapshot(self, node_id: str) -> LiveView | None:
        with self._lock:
            live = self.live.get(node_id)
            if live is None:
                return None
            return LiveView(
                live.status,
                live.session is not None or (bool(live.holder) and live.holder_up),
                live.last_seen_wall,
                live.usage,
                live.inventory,
                tuple(live.guests),
                live.applied_revision,
                live.address,
                volumes=tuple(live.volumes),
                heard=live.heard,
                elsewhere=live.session is None and bool(live.holder) and live.holder_up,
                controller_id=live.holder if live.session is not None or live.holder_up else "",
            )

    def held_elsewhere(self, node_id: str) -> tuple[str, str] | None:
        """(controller id, its endpoint) when the node's session lives on another live controller."""
        with self._lock:
            live = self.live.get(node_id)
            if live is None or live.session is not None or not (live.holder and live.holder_up):
                return None
            return live.holder, live.holder_endpoint

    def liveness(self) -> list[tuple[str, bool, float]]:
        """(status, has a session, seconds since its last heartbeat) per known node, for metrics."""
        now = time.monotonic()
        with self._lock:
            return [
                (x.status, x.session is not None, now - x.last_seen if x.last_seen else 0.0)
                for x in self.live.values()
            ]

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
                if live.status != READY or live.last_seen >= deadline:
                    continue
                if self.peers_seconds <= 0 or live.session is not None or live.holder == self.controller_id:
                    self._set_status(live, DOWN)
                # else: another controller holds it, or none does (cluster.py)

    async def _peers(self) -> None:
        while True:
            await asyncio.sleep(self.peers_seconds)
            try:
                await self._refresh_peers()
            except Exception:
                log.exception("reading the other controllers' nodes failed; will retry")

    async def _refresh_peers(self) -> None:
        assert self.loop is not None
        rows = await self.loop.run_in_executor(self.writer.executor, store.cluster_rows)
        cluster.apply(
            self.live,
            self._lock,
            self.writer,
            me=self.controller_id,
            grace=self.grace,
            controller_lost_seconds=self.controller_lost_seconds,
            rows=rows,
            now=clock.now(),
            mono=time.monotonic(),
        )
        with self._lock:  # statuses and members may have changed
            self._ready = None

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self._flush()

    async def _flush(self, force: bool = False) -> None:
        assert self.loop is not None
        await self.writer.flush(self.loop, self.live, force)

    async def _stats_logger(self) -> None:
        while True:
            await asyncio.sleep(self.stats_log_seconds)
            summary = self.stats.summary()
            self.stats.reset()
            log.info("node sessions", extra={**self.counts(), **summary})
