"""What the registry holds per node in memory: its session (the outbox the
session's stream reads, and what it last sent), its liveness and last reports,
and the frozen copy readers on other threads get."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.errors import KumoError
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_pb2

READY = "READY"
DOWN = "DOWN"

RESYNC = object()  # outbox marker: recompute the desired state and send a change
# A session recomputes its node's desired state once per slot of this length
# at most: in a burst of changes (a create bumps every node with a port on its
# network) the changes that arrive meanwhile go out together, at the slot's
# end, when every other session waiting does too (next_resync_slot). After a
# quiet spell a change goes at once.
RESYNC_INTERVAL = 0.5


def next_resync_slot(now: float) -> float:
    """The first multiple of RESYNC_INTERVAL after `now` on the monotonic
    clock: every session that recomputed in one slot waits for the same
    instant, so a burst that changes many nodes is read in one batch (see
    domain/desired_batches.py) instead of one per session's own timer."""
    return (now // RESYNC_INTERVAL + 1) * RESYNC_INTERVAL


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
        self.next_resync = next_resync_slot(time.monotonic())

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
    # Read-only: the last heartbeat's own fields (or the database's copy, cluster.py).
    guests: Sequence[pb.GuestStatus] = field(default_factory=list)
    applied_revision: int = 0
    address: str = ""
    session: Session | None = None
    volumes: Sequence[pb.VolumeStatus] = field(default_factory=list)
    # A heartbeat came since this controller started (so `volumes` is real).
    heard: bool = False
    # Several controllers: the one holding the session as the database says
    # (this controller's id while it holds it), where it serves, and whether
    # it reported in lately; the rest above then comes from the database too.
    holder: str = ""
    holder_endpoint: str = ""
    holder_up: bool = False
    # The database's text of the last inventory, usage and guests copied (cluster.py).
    db_inventory: str = ""
    db_usage: str = ""
    db_guests: str = ""


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
    # The session lives on another controller (`connected` is True then, and
    # `guests` are what that one last wrote to the database).
    elsewhere: bool = False
    controller_id: str = ""


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
