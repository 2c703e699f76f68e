"""Queries for instance moves (cold migrations, resizes) and their claims."""

from __future__ import annotations

from typing import Any

from controller.db.database import cached, db, is_sqlite
from controller.db.instances import ensure_usage_row
from controller.db.models import Instance, InstanceMove, NodeUsage


def get_move(instance_id: str) -> InstanceMove | None:
    return InstanceMove.get_or_none(InstanceMove.instance_id == instance_id)


def insert_move(**fields: Any) -> InstanceMove:
    return InstanceMove.create(**fields)


def update_move_if(move_id: str, expect_phase: str, fields: dict[str, Any], now: float) -> int:
    """Compare-and-set on the move's phase: a racing change of the same move loses."""
    return (
        InstanceMove.update(**fields, update_time=now)
        .where((InstanceMove.id == move_id) & (InstanceMove.phase == expect_phase))
        .execute()
    )


def locked_move(instance_id: str) -> InstanceMove | None:
    """In a write transaction: the instance's move, its row locked on
    PostgreSQL (SQLite's write lock already serialises), so a racing phase
    change or disk upload waits for the caller's decision."""
    query = InstanceMove.select().where(InstanceMove.instance_id == instance_id)
    if not is_sqlite():
        query = query.for_update()
    return query.first()


def delete_move_if(move_id: str, expect_phase: str) -> int:
    """Compare-and-set delete: only while the move is still in `expect_phase`."""
    return (
        InstanceMove.delete()
        .where((InstanceMove.id == move_id) & (InstanceMove.phase == expect_phase))
        .execute()
    )


def delete_move(move_id: str) -> int:
    return InstanceMove.delete().where(InstanceMove.id == move_id).execute()


def all_moves() -> list[InstanceMove]:
    return list(InstanceMove.select().order_by(InstanceMove.id))


def any_move_touching(node_id: str) -> bool:
    """Whether moves_touching has anything: a node's desired state asks on
    every change to it and the answer is almost always no, which a plain-SQL
    probe gives for a tenth of what building the peewee select costs."""
    sql = (
        f"SELECT 1 FROM {InstanceMove._meta.table_name} "
        f"WHERE source_node_id = {db.param} OR target_node_id = {db.param} LIMIT 1"
    )
    return db.execute_sql(sql, (node_id, node_id)).fetchone() is not None


def moves_touching(node_id: str) -> list[InstanceMove]:
    """Moves from or to the node (what its desired state needs to know)."""
    query = InstanceMove.select().where(
        (InstanceMove.source_node_id == node_id) | (InstanceMove.target_node_id == node_id)
    )
    return cached("moves touching", query, [node_id, node_id])


def node_may_read_disk(node_id: str, sha256: str) -> bool:
    """Whether a move's disk blob belongs to an instance now on the node."""
    query = (
        InstanceMove.select(InstanceMove.id)
        .join(Instance, on=(Instance.id == InstanceMove.instance_id))
        .where((InstanceMove.disk_sha256 == sha256) & (Instance.node == node_id))
    )
    return query.exists()


def claim_growth(
    node_id: str, vcpus: int, ram_mb: int, disk_gb: int, caps: tuple[float, float, float]
) -> bool:
    """Adds a resize's growth (each part may be negative) to a node's claims
    only if the result still fits under `caps`: one conditional UPDATE, so a
    racing create or resize for the same room cannot both fit."""
    ensure_usage_row(node_id)
    cond = NodeUsage.node == node_id
    for column, delta, cap in (
        (NodeUsage.vcpus_used, vcpus, caps[0]),
        (NodeUsage.ram_mb_used, ram_mb, caps[1]),
        (NodeUsage.disk_gb_used, disk_gb, caps[2]),
    ):
        if delta > 0:  # what shrinks always fits
            cond &= column + delta <= cap
    n = (
        NodeUsage.update(
            vcpus_used=NodeUsage.vcpus_used + vcpus,
            ram_mb_used=NodeUsage.ram_mb_used + ram_mb,
            disk_gb_used=NodeUsage.disk_gb_used + disk_gb,
        )
        .where(cond)
        .execute()
    )
    return n == 1


def release_growth(node_id: str, vcpus: int, ram_mb: int, disk_gb: int) -> None:
    NodeUsage.update(
        vcpus_used=NodeUsage.vcpus_used - vcpus,
        ram_mb_used=NodeUsage.ram_mb_used - ram_mb,
        disk_gb_used=NodeUsage.disk_gb_used - disk_gb,
    ).where(NodeUsage.node == node_id).execute()
