"""Queries for live migrations and node drains (domain/migrations/)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee

from controller.db.database import cached, db
from controller.db.models import Instance, LiveMigration, Node, NodeDrain
from controller.db.paging import paginate

# kumo.v1.LiveMigrationState numbers of an unfinished migration.
PREPARING, RUNNING, COMPLETED, FAILED = 1, 2, 3, 4
UNFINISHED = (PREPARING, RUNNING)


def insert(**fields: Any) -> LiveMigration:
    return LiveMigration.create(**fields)


def get(migration_id: str) -> LiveMigration | None:
    return LiveMigration.get_or_none(LiveMigration.id == migration_id)


def unfinished() -> list[LiveMigration]:
    return list(LiveMigration.select().where(LiveMigration.state.in_(UNFINISHED)).order_by(LiveMigration.id))


def unfinished_of(instance_id: str) -> LiveMigration | None:
    """The instance's live migration under way, if any."""
    return (
        LiveMigration.select()
        .where((LiveMigration.instance_id == instance_id) & LiveMigration.state.in_(UNFINISHED))
        .first()
    )


def any_unfinished_on_node(node_id: str) -> bool:
    """Whether unfinished_on_node has anything (a plain-SQL probe: see moves.any_move_touching)."""
    p = db.param
    sql = (
        f"SELECT 1 FROM {LiveMigration._meta.table_name} WHERE state IN ({p}, {p}) "
        f"AND (source_node_id = {p} OR target_node_id = {p}) LIMIT 1"
    )
    return db.execute_sql(sql, (*UNFINISHED, node_id, node_id)).fetchone() is not None


def unfinished_on_node(node_id: str) -> list[LiveMigration]:
    """Unfinished migrations from or to the node."""
    query = (
        LiveMigration.select()
        .where(
            LiveMigration.state.in_(UNFINISHED)
            & ((LiveMigration.source_node_id == node_id) | (LiveMigration.target_node_id == node_id))
        )
        .order_by(LiveMigration.id)
    )
    return cached("unfinished migrations on node", query, [*UNFINISHED, node_id, node_id])


def update_if(migration_id: str, expect: Iterable[int], fields: dict[str, Any], now: float) -> int:
    """Compare-and-set on the migration's state."""
    return (
        LiveMigration.update(**fields, update_time=now)
        .where((LiveMigration.id == migration_id) & LiveMigration.state.in_(list(expect)))
        .execute()
    )


def list_migrations(
    page_size: int, page_token: str, instance_id: str, node_id: str, state: int
) -> tuple[list[LiveMigration], str]:
    query = LiveMigration.select()
    if instance_id:
        query = query.where(LiveMigration.instance_id == instance_id)
    if node_id:
        query = query.where(
            (LiveMigration.source_node_id == node_id) | (LiveMigration.target_node_id == node_id)
        )
    if state:
        query = query.where(LiveMigration.state == state)
    return paginate(query, (LiveMigration.create_time, LiveMigration.id), page_size, page_token)


def incoming_instances(node_id: str) -> peewee.ModelSelect:
    """Instance ids migrating to the node (a subquery)."""
    return LiveMigration.select(LiveMigration.instance_id).where(
        (LiveMigration.target_node_id == node_id) & LiveMigration.state.in_(UNFINISHED)
    )


def incoming(node_id: str) -> list[tuple[LiveMigration, Instance]]:
    rows = (
        LiveMigration.select(LiveMigration, Instance)
        .join(Instance, on=(LiveMigration.instance_id == Instance.id))
        .where((LiveMigration.target_node_id == node_id) & LiveMigration.state.in_(UNFINISHED))
        .order_by(LiveMigration.id)
    )
    return [(m, m.instance) for m in rows]


# Drains


def set_maintenance(node_id: str, on: bool, now: float) -> None:
    Node.update(maintenance=on, update_time=now).where(Node.id == node_id).execute()


def get_drain(node_id: str) -> NodeDrain | None:
    return NodeDrain.get_or_none(NodeDrain.node == node_id)


def drains_of(node_ids: Iterable[str]) -> dict[str, NodeDrain]:
    ids = list(set(node_ids))
    if not ids:
        return {}
    return {d.node_id: d for d in NodeDrain.select().where(NodeDrain.node.in_(ids))}


def put_drain(node_id: str, state: int, total: int, now: float, cold: bool = False) -> None:
    NodeDrain.insert(
        node=node_id, state=state, instances_total=total, start_time=now, end_time=0, cold=cold
    ).on_conflict(
        conflict_target=[NodeDrain.node],
        update={
            NodeDrain.state: state,
            NodeDrain.instances_total: total,
            NodeDrain.start_time: now,
            NodeDrain.end_time: 0,
            NodeDrain.cold: cold,
            NodeDrain.cold_started: 0,
        },
    ).execute()


def count_cold_start(node_id: str) -> None:
    NodeDrain.update(cold_started=NodeDrain.cold_started + 1).where(NodeDrain.node == node_id).execute()


def end_drain(node_id: str, expect: int, state: int, now: float) -> int:
    return (
        NodeDrain.update(state=state, end_time=now)
        .where((NodeDrain.node == node_id) & (NodeDrain.state == expect))
        .execute()
    )


def drains_in(state: int) -> list[NodeDrain]:
    return list(NodeDrain.select().where(NodeDrain.state == state).order_by(NodeDrain.node))


def drain_migrations(node_id: str, since: float) -> list[LiveMigration]:
    """The migrations a drain of the node made since it began."""
    return list(
        LiveMigration.select()
        .where((LiveMigration.drain_node_id == node_id) & (LiveMigration.create_time >= since))
        .order_by(LiveMigration.create_time, LiveMigration.id)
    )


def drain_counts(node_ids: Iterable[str], drains: dict[str, NodeDrain]) -> dict[str, tuple[int, int]]:
    """node id -> (migrated, failed) of each node's drain since it began: one
    query for the page of nodes, drained or not (so a page costs the same)."""
    ids = list(set(node_ids))
    out = {nid: (0, 0) for nid in drains}
    if not ids:
        return out
    query = LiveMigration.select(
        LiveMigration.drain_node_id, LiveMigration.state, LiveMigration.create_time
    ).where(LiveMigration.drain_node_id.in_(ids) & LiveMigration.state.in_([COMPLETED, FAILED]))
    for nid, state, created in query.tuples():
        drain = drains.get(nid)
        if drain is not None and created >= drain.start_time:
            ok, bad = out[nid]
            out[nid] = (ok + (state == COMPLETED), bad + (state == FAILED))
    return out
