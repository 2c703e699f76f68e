"""The nodes whose sessions live on other controllers, as the database has
them (several controllers on PostgreSQL): read every `peers_seconds` and
copied into the registry's entries of nodes without a session here, so
placement, the node and instance views and the network projection see every
node. A node whose session no live controller holds (its controller was lost,
or it closed and the node never came back) is marked DOWN by any controller
once its last heartbeat in the database and this controller's own view of it
are older than the grace period: a conditional UPDATE (still READY, still
held by that lost controller or none), so however many controllers try, one
succeeds and records the event."""

from __future__ import annotations

import base64
import json
import threading

from controller.db.nodes import ClusterRow
from controller.domain.node_registry.live import READY, Live
from controller.domain.node_registry.writer import StateWriter
from controller.errors import Unauthenticated
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_pb2


def _inventory(text: str) -> node_pb2.NodeInventory | None:
    return node_pb2.NodeInventory.FromString(base64.b64decode(text)) if text else None


def _guests(text: str) -> list[apb.GuestStatus]:
    return list(apb.Heartbeat.FromString(base64.b64decode(text)).guests) if text else []


def _usage(text: str) -> node_pb2.NodeUsage | None:
    values = json.loads(text) if text else {}
    return node_pb2.NodeUsage(**values) if values else None


def apply(
    entries: dict[str, Live],
    lock: threading.Lock,
    writer: StateWriter,
    *,
    me: str,
    grace: float,
    controller_lost_seconds: float,
    rows: list[ClusterRow],
    now: float,
    mono: float,
) -> None:
    """On the registry's loop: the database's view into the entries this
    controller (`me`) holds no session for; DOWN for nodes no live controller
    holds. `lock` is the one that guards the registry's readers' copies."""
    present = set()
    gone: list[Live] = []
    with lock:
        for row in rows:
            present.add(row.node_id)
            live = entries.get(row.node_id)
            if live is None:
                live = entries[row.node_id] = Live(row.node_id, last_seen=mono)
            if live.session is not None:
                continue  # held here: this controller's memory is the truth
            holder = "" if row.holder == me else row.holder
            up = bool(holder) and now - row.holder_seen <= controller_lost_seconds
            if up:
                live.last_seen = mono  # the grace period counts from when its controller was lost
            live.status = row.status
            live.holder, live.holder_endpoint, live.holder_up = holder, row.holder_endpoint, up
            live.last_seen_wall = row.last_heartbeat_time
            live.applied_revision = row.applied_revision
            live.address = row.address
            if row.inventory != live.db_inventory:
                live.inventory, live.db_inventory = _inventory(row.inventory), row.inventory
            if row.usage != live.db_usage:
                live.usage, live.db_usage = _usage(row.usage), row.usage
            if row.guests != live.db_guests:
                live.guests, live.db_guests = _guests(row.guests), row.guests
            if (
                row.status == READY
                and not up
                and now - row.last_heartbeat_time > grace
                and mono - live.last_seen > grace
            ):
                writer.set_status(row.node_id, "DOWN", holder)
        for node_id in [n for n in entries if n not in present]:
            gone.append(entries.pop(node_id))
    for live in gone:  # deleted through another controller
        if live.session is not None:
            live.session.close(Unauthenticated("this node has been deleted", reason="NODE_DELETED"))
        writer.forget(live.node_id)
