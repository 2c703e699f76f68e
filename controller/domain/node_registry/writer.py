"""The batched writer: what must outlive the process goes from the registry's
memory to the database here, in batches on one worker thread, never on the
event loop. State changes, inventories and applied revisions go at the next
flush tick; last-heartbeat times and usage only every
`heartbeat_flush_seconds` (a heartbeat touches memory only). A failed write
is requeued under newer values and tried again at the next tick. A node's
status change (DOWN, READY) is an event, written in the same transaction."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller import clock
from controller.db import nodes as store
from controller.db.database import db, write_transaction
from controller.domain.events import EventLog, Outcome
from controller.domain.node_registry.live import DOWN, Live
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_pb2 as pb

log = logging.getLogger("kumo.nodes")


def usage_json(usage: pb.NodeUsage | None) -> str:
    """json.dumps of the usage's fields, formatted directly (a dict and
    json.dumps cost 10 times as much, per node per heartbeat flush; a real
    node's load changes with every heartbeat, so a cache would not spare it)."""
    if usage is None:
        return "{}"
    load = usage.load_1m
    if not math.isfinite(load):  # as json.dumps writes them: NaN, Infinity
        return json.dumps(_usage_fields(usage))
    return _USAGE_FORMAT % (
        usage.memory_free_mb,
        usage.disk_free_gb,
        load,
        usage.guests_running,
        usage.guest_vcpus,
        usage.guest_memory_mb,
    )


def _usage_fields(usage: pb.NodeUsage) -> dict[str, Any]:
    return {
        "memory_free_mb": usage.memory_free_mb,
        "disk_free_gb": usage.disk_free_gb,
        "load_1m": usage.load_1m,
        "guests_running": usage.guests_running,
        "guest_vcpus": usage.guest_vcpus,
        "guest_memory_mb": usage.guest_memory_mb,
    }


# %r of a finite float is what json.dumps writes for it (float.__repr__).
_USAGE_FORMAT = (
    '{"memory_free_mb": %d, "disk_free_gb": %d, "load_1m": %r, '
    '"guests_running": %d, "guest_vcpus": %d, "guest_memory_mb": %d}'
)


def guests_text(guests: Sequence[apb.GuestStatus]) -> str:
    return base64.b64encode(apb.Heartbeat(guests=guests).SerializeToString()).decode()


def inventory_columns(inv: pb.NodeInventory) -> dict[str, Any]:
    """The columns, and the whole inventory for the other controllers."""
    columns = {c: getattr(inv, c) for c in store.INVENTORY_COLUMNS}
    columns["inventory"] = base64.b64encode(inv.SerializeToString()).decode()
    return columns


class Encodings:
    """The database text of each node's last written usage and guests, on
    the writer's thread: most heartbeats repeat the last ones, and comparing
    messages (C, about 2 us a node) is some 40 times cheaper than encoding
    them again (JSON and base64; 7.5% of the controller at 10,000 nodes).
    It holds the messages last compared (those of a recent heartbeat, which
    the registry's `Live` holds too), never a stale text: equal messages
    encode to equal text."""

    def __init__(self) -> None:
        self._usage: dict[str, tuple[pb.NodeUsage | None, str]] = {}
        self._guests: dict[str, tuple[Sequence[apb.GuestStatus], str]] = {}

    def usage(self, node_id: str, usage: pb.NodeUsage | None) -> str:
        last = self._usage.get(node_id)
        text = last[1] if last is not None and last[0] == usage else usage_json(usage)
        self._usage[node_id] = (usage, text)
        return text

    def guests(self, node_id: str, guests: Sequence[apb.GuestStatus]) -> str:
        last = self._guests.get(node_id)
        text = last[1] if last is not None and last[0] == guests else guests_text(guests)
        self._guests[node_id] = (guests, text)
        return text

    def forget(self, node_id: str) -> None:
        self._usage.pop(node_id, None)
        self._guests.pop(node_id, None)


class StateWriter:
    """Runs on the event loop (bar `executor`'s thread): the registry records
    what changed in `pending` and marks heartbeats in `heartbeat_dirty`."""

    def __init__(self, heartbeat_flush_seconds: float, events: EventLog | None = None) -> None:
        self.heartbeat_flush_seconds = heartbeat_flush_seconds
        self.events = events
        self.pending = store.PendingWrites()
        self.heartbeat_dirty: set[str] = set()
        self._last_heartbeat_flush = time.monotonic()
        self.encodings = Encodings()
        # One thread: writes (and the registry's start-up read) never overlap.
        # The writer uses the database of the controller that makes the registry.
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="node-flush", initializer=db.bind_thread, initargs=(db.obj,)
        )

    def claim(self, node_id: str, controller_id: str) -> None:
        """This controller opened the node's session (written at the next tick)."""
        self.pending.releases.pop(node_id, None)
        self.pending.claims[node_id] = controller_id

    def release(self, node_id: str, controller_id: str) -> None:
        """Its session here ended: the record is cleared unless another took it."""
        self.pending.claims.pop(node_id, None)
        self.pending.releases[node_id] = controller_id

    def set_status(self, node_id: str, status: str, controller_id: str) -> None:
        """READY is written as is; DOWN only while this controller (or none) holds the session."""
        if status == DOWN:
            self.pending.statuses.pop(node_id, None)
            self.pending.downs[node_id] = controller_id
        else:
            self.pending.downs.pop(node_id, None)
            self.pending.statuses[node_id] = status

    def forget(self, node_id: str) -> None:
        """The node was deleted: nothing pending for it is written."""
        self.pending.forget(node_id)
        self.heartbeat_dirty.discard(node_id)
        try:
            self.executor.submit(self.encodings.forget, node_id)  # its thread's, as the writes
        except RuntimeError:
            pass  # shut down: nothing is written any more

    async def flush(
        self, loop: asyncio.AbstractEventLoop, live: Mapping[str, Live], force: bool = False
    ) -> None:
        now = time.monotonic()
        if self.heartbeat_dirty and (
            force or now - self._last_heartbeat_flush >= self.heartbeat_flush_seconds
        ):
            for node_id in self.heartbeat_dirty:
                node = live.get(node_id)
                if node is not None:
                    self.pending.heartbeats[node_id] = (node.last_seen_wall, node.usage, node.guests)  # type: ignore[assignment]
            self.heartbeat_dirty = set()
            self._last_heartbeat_flush = now
        if self.pending.empty():
            return
        batch, self.pending = self.pending, store.PendingWrites()
        try:
            await loop.run_in_executor(self.executor, self._write, batch)
        except Exception:
            log.exception("writing node state failed; will retry")
            self.pending.requeue(batch)

    def _write(self, batch: store.PendingWrites) -> None:
        # Usage and guests are serialized here, off the event loop (when they changed).
        enc = self.encodings
        rows = store.PendingWrites(
            {
                nid: (t, enc.usage(nid, usage), enc.guests(nid, guests))  # type: ignore[arg-type]
                for nid, (t, usage, guests) in batch.heartbeats.items()
            },
            batch.statuses,
            batch.inventories,
            batch.sessions,
            batch.claims,
            batch.releases,
            batch.downs,
        )
        with write_transaction():
            down = store.flush(rows, clock.now())
            if self.events is not None:
                for node_id, status in batch.statuses.items():
                    self._status_event(self.events, node_id, status)
                for node_id in down:
                    self._status_event(self.events, node_id, DOWN)

    @staticmethod
    def _status_event(events: EventLog, node_id: str, status: str) -> None:
        if status == DOWN:
            events.record(
                "node",
                node_id,
                "down",
                outcome=Outcome.failed("NODE_DOWN"),
                message="no heartbeat within the grace period: the node is lost",
            )
        else:
            events.record("node", node_id, status.lower(), message=f"the node is {status}")

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
