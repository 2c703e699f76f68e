"""Queries for nodes and join tokens. Heartbeat-driven writes come in batches
(`flush`), one transaction for many nodes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import peewee

from controller.db.database import cached, cached_first, db, is_sqlite, padded, write_transaction
from controller.db.models import JoinToken, Node
from controller.db.paging import paginate
from controller.errors import AlreadyExists

INVENTORY_COLUMNS = (
    "hostname",
    "vcpus",
    "memory_mb",
    "disk_gb",
    "virt_type",
    "driver",
    "arch",
    "cpu_model",
    "libvirt_version",
    "qemu_version",
    "agent_version",
    "kernel",
)

# Join tokens


def insert_join_token(
    token_id: str,
    description: str,
    secret_hash: str,
    max_uses: int,
    expire_time: float,
    creator_user_id: str,
    now: float,
) -> JoinToken:
    return JoinToken.create(
        id=token_id,
        description=description,
        secret_hash=secret_hash,
        max_uses=max_uses,
        expire_time=expire_time,
        creator_user_id=creator_user_id,
        create_time=now,
    )


def get_join_token(token_id: str) -> JoinToken | None:
    return JoinToken.get_or_none(JoinToken.id == token_id)


def list_join_tokens(page_size: int, page_token: str) -> tuple[list[JoinToken], str]:
    return paginate(JoinToken.select(), (JoinToken.create_time, JoinToken.id), page_size, page_token)


def delete_join_token(token_id: str) -> int:
    return JoinToken.delete().where(JoinToken.id == token_id).execute()


def claim_join_token(token_id: str, now: float) -> bool:
    """Uses the token once if it is still valid. One conditional UPDATE, so
    two enrollments racing for the last use cannot both win."""
    n = (
        JoinToken.update(uses=JoinToken.uses + 1, last_use_time=now)
        .where(
            (JoinToken.id == token_id) & (JoinToken.uses < JoinToken.max_uses) & (JoinToken.expire_time > now)
        )
        .execute()
    )
    return n == 1


def prune_join_tokens(before: float) -> int:
    return JoinToken.delete().where(JoinToken.expire_time < before).execute()


# Nodes


def insert_node(
    node_id: str, name: str, cert_serial: str, cert_expire: float, token_id: str, now: float
) -> Node:
    try:
        with db.atomic():
            return Node.create(
                id=node_id,
                name=name,
                cert_serial=cert_serial,
                cert_expire_time=cert_expire,
                join_token_id=token_id,
                create_time=now,
                update_time=now,
            )
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a node named {name!r} already exists: delete it first or join with another --name",
            reason="NODE_EXISTS",
        ) from None


def get_node(node_id: str) -> Node | None:
    return cached_first("node", Node.select().where(Node.id == node_id), [node_id])


class NodeHead(NamedTuple):
    """The columns of a node that its desired state starts from (and that its
    contributors key on: `id`), read as a plain tuple: every change to a node
    rebuilds its state, and a whole Node model was the largest single read of it."""

    id: str
    enabled: bool
    fenced: bool
    cert_rotate_requested: bool
    desired_revision: int


def node_head(node_id: str) -> NodeHead | None:
    # Plain SQL, like node_auth_row: peewee's query and model building cost
    # more than the indexed lookup.
    row = db.execute_sql(
        "SELECT id, enabled, fenced, cert_rotate_requested, desired_revision FROM node "
        f"WHERE id = {db.param}",
        (node_id,),
    ).fetchone()
    if row is None:
        return None
    return NodeHead(row[0], bool(row[1]), bool(row[2]), bool(row[3]), int(row[4]))


def node_auth_row(node_id: str) -> tuple[str, str] | None:
    """(cert_serial, pending_cert_serial) for authenticating a session; one indexed lookup."""
    # Plain SQL: this runs for every session a node opens (thousands at once
    # after a controller restart), and peewee's query building costs more than
    # the lookup.
    row = db.execute_sql(
        f"SELECT cert_serial, pending_cert_serial FROM node WHERE id = {db.param}", (node_id,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def set_pending_cert(node_id: str, serial: str, expire: float, now: float) -> bool:
    """Records a renewed certificate and ends any rotation request; False if the node is gone."""
    return bool(
        Node.update(
            pending_cert_serial=serial,
            pending_cert_expire_time=expire,
            cert_rotate_requested=False,
            update_time=now,
        )
        .where(Node.id == node_id)
        .execute()
    )


def promote_pending_cert(node_id: str, serial: str, now: float) -> bool:
    """The node opened a session with its renewed certificate: from now on only it is accepted."""
    return bool(
        Node.update(
            cert_serial=Node.pending_cert_serial,
            cert_expire_time=Node.pending_cert_expire_time,
            pending_cert_serial="",
            pending_cert_expire_time=0,
            update_time=now,
        )
        .where((Node.id == node_id) & (Node.pending_cert_serial == serial))
        .execute()
    )


def request_cert_rotation(node_id: str, now: float) -> bool:
    return bool(
        Node.update(cert_rotate_requested=True, desired_revision=Node.desired_revision + 1, update_time=now)
        .where(Node.id == node_id)
        .execute()
    )


def list_nodes(page_size: int, page_token: str, name: str = "") -> tuple[list[Node], str]:
    query = Node.select()
    if name:
        query = query.where(Node.name == name)
    return paginate(query, (Node.name, Node.id), page_size, page_token)


def all_node_liveness() -> list[tuple[str, str, float, int, str]]:
    """(id, status, last_heartbeat_time, applied_revision, address) of every
    node, for a controller start."""
    return list(
        Node.select(Node.id, Node.status, Node.last_heartbeat_time, Node.applied_revision, Node.address)
        .tuples()
        .iterator()
    )


def set_enabled(node_id: str, enabled: bool, reason: str, now: float) -> int:
    """Flips the admin flag and bumps the desired revision, in one statement."""
    return (
        Node.update(
            enabled=enabled,
            disabled_reason=reason,
            desired_revision=Node.desired_revision + 1,
            update_time=now,
        )
        .where(Node.id == node_id)
        .execute()
    )


def set_fenced(node_id: str, fenced: bool, now: float) -> int:
    """Fences (or re-admits) a node, only if it is not so already:
    compare-and-set, so of two racing fences one answers NODE_ALREADY_FENCED."""
    return (
        Node.update(fenced=fenced, fence_time=now if fenced else 0, update_time=now)
        .where((Node.id == node_id) & (Node.fenced == (not fenced)))
        .execute()
    )


def is_fenced(node_id: str) -> bool:
    # Plain SQL, as node_auth_row: every session opening asks (peewee's query building was most
    # of its cost while thousands of nodes connected).
    row = db.execute_sql(f"SELECT fenced FROM node WHERE id = {db.param}", (node_id,)).fetchone()
    return bool(row and row[0])


def fenced_nodes() -> dict[str, float]:
    """node id -> when it was fenced, of every fenced node."""
    return dict(Node.select(Node.id, Node.fence_time).where(Node.fenced == True).tuples())  # noqa: E712


def delete_node(node_id: str) -> int:
    return Node.delete().where(Node.id == node_id).execute()


def bump_desired_revisions(node_ids: set[str], now: float) -> None:
    """bump_desired_revision for many nodes. SQLite: one statement (its write
    lock is the whole database's). PostgreSQL: one node at a time in id order,
    so two transactions bumping overlapping sets never lock rows in a cycle
    (an UPDATE of many rows locks them in scan order)."""
    if not node_ids:
        return
    if is_sqlite():
        ids = padded(sorted(node_ids))
        query = Node.update(desired_revision=Node.desired_revision + 1, update_time=now).where(
            Node.id.in_(ids)
        )
        cached(("bump revisions", len(ids)), query, [1, now, *ids])
        return
    for node_id in sorted(node_ids):
        bump_desired_revision(node_id, now)


def bump_desired_revision(node_id: str, now: float) -> int:
    """For features that change what a node should run: call in the same
    transaction as the change, then notify the node's session."""
    query = Node.update(desired_revision=Node.desired_revision + 1, update_time=now).where(Node.id == node_id)
    return cached("bump desired revision", query, [1, now, node_id])


@dataclass
class PendingWrites:
    """What the node sessions changed since the last flush."""

    # node id -> (last heartbeat wall time, usage JSON, guests)
    heartbeats: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    # node id -> READY
    statuses: dict[str, str] = field(default_factory=dict)
    # node id -> inventory column values
    inventories: dict[str, dict[str, Any]] = field(default_factory=dict)
    # node id -> (applied revision, address)
    sessions: dict[str, tuple[int, str]] = field(default_factory=dict)
    # node id -> the controller that now holds its session
    claims: dict[str, str] = field(default_factory=dict)
    # node id -> the controller whose session ended (cleared only if it still holds it)
    releases: dict[str, str] = field(default_factory=dict)
    # node id -> the controller it is marked DOWN for: only while that one (or
    # none) holds its session and it is READY, so a controller never marks
    # DOWN a node whose session lives on another
    downs: dict[str, str] = field(default_factory=dict)

    NAMES = ("heartbeats", "statuses", "inventories", "sessions", "claims", "releases", "downs")

    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.NAMES)

    def requeue(self, failed: PendingWrites) -> None:
        """Puts writes that failed back, under the ones made since."""
        for name in self.NAMES:
            mine = getattr(self, name)
            for key, value in getattr(failed, name).items():
                mine.setdefault(key, value)

    def forget(self, node_id: str) -> None:
        for name in self.NAMES:
            getattr(self, name).pop(node_id, None)


def _executemany(sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    rows = list(rows)
    if not rows:
        return
    sql = sql.replace("?", db.param)
    cursor = db.cursor()
    cursor.executemany(sql, rows)


def flush(pending: PendingWrites, now: float) -> list[str]:
    """Writes a batch of session changes in one transaction (rows of deleted
    nodes match nothing and are skipped); returns the nodes it marked DOWN."""
    with write_transaction():
        _executemany(
            "UPDATE node SET last_heartbeat_time = ?, usage = ?, guests = ? WHERE id = ?",
            ((t, usage, guests, nid) for nid, (t, usage, guests) in pending.heartbeats.items()),
        )
        # A claim makes the node READY too: a controller that marked it DOWN
        # (its old session's controller was lost) cannot outlive the new session.
        _executemany(
            "UPDATE node SET session_controller_id = ?, status = 'READY', last_heartbeat_time = ?"
            " WHERE id = ?",
            ((ctl, now, nid) for nid, ctl in pending.claims.items()),
        )
        _executemany(
            "UPDATE node SET session_controller_id = '' WHERE id = ? AND session_controller_id = ?",
            ((nid, ctl) for nid, ctl in pending.releases.items()),
        )
        _executemany(
            "UPDATE node SET status = ?, update_time = ? WHERE id = ?",
            ((status, now, nid) for nid, status in pending.statuses.items()),
        )
        _executemany(
            "UPDATE node SET applied_revision = ?, address = ? WHERE id = ?",
            ((rev, addr, nid) for nid, (rev, addr) in pending.sessions.items()),
        )
        cols = ", ".join(f"{c} = ?" for c in INVENTORY_COLUMNS)
        _executemany(
            f"UPDATE node SET {cols}, inventory = ?, update_time = ? WHERE id = ?",
            (
                (*(inv[c] for c in INVENTORY_COLUMNS), inv.get("inventory", ""), now, nid)
                for nid, inv in pending.inventories.items()
            ),
        )
        down = []
        sql = (
            "UPDATE node SET status = 'DOWN', update_time = ? WHERE id = ? AND status = 'READY'"
            " AND session_controller_id IN (?, '')"
        ).replace("?", db.param)
        for nid, ctl in pending.downs.items():
            if db.execute_sql(sql, (now, nid, ctl)).rowcount == 1:
                down.append(nid)
        return down


@dataclass(frozen=True)
class ClusterRow:
    """A node as the database has it, for the controllers not holding its session."""

    node_id: str
    status: str
    holder: str
    holder_seen: float  # when the holding controller last reported in (0: none, or unknown)
    holder_endpoint: str
    last_heartbeat_time: float
    applied_revision: int
    address: str
    usage: str  # JSON of NodeUsage
    guests: str  # see the Node model
    inventory: str


def cluster_rows() -> list[ClusterRow]:
    """Every node with its session's controller, in one query."""
    rows = db.execute_sql(
        "SELECT n.id, n.status, n.session_controller_id, COALESCE(c.last_seen_time, 0),"
        " COALESCE(c.endpoint, ''), n.last_heartbeat_time, n.applied_revision, n.address, n.usage,"
        " n.guests, n.inventory FROM node n LEFT JOIN controller c ON c.id = n.session_controller_id"
    ).fetchall()
    return [ClusterRow(*r) for r in rows]
