"""Queries for instance moves (cold migrations, resizes) and their claims."""

from __future__ import annotations

from typing import Any

from controller.db.instances import ensure_usage_row
from controller.db.models import InstanceMove, NodeUsage


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


def delete_move(move_id: str) -> int:
    return InstanceMove.delete().where(InstanceMove.id == move_id).execute()


def all_moves() -> list[InstanceMove]:
    return list(InstanceMove.select().order_by(InstanceMove.id))


def moves_touching(node_id: str) -> list[InstanceMove]:
    """Moves from or to the node (what its desired state needs to know)."""
    return list(
        InstanceMove.select().where(
            (InstanceMove.source_node_id == node_id) | (InstanceMove.target_node_id == node_id)
        )
    )


def moves_with_disk(sha256: str) -> int:
    return InstanceMove.select().where(InstanceMove.disk_sha256 == sha256).count()


def claim_growth(
    node_id: str, vcpus: int, ram_mb: int, disk_gb: int, caps: tuple[float, float, float]
) -> bool:
    """Adds a resize's growth (each part may be negative) to a node's claims
    only if the result still fits under `caps`: one conditional UPDATE, so a
    racing create or resize for the same room cannot both fit."""
    ensure_usage_row(node_id)
    n = (
        NodeUsage.update(
            vcpus_used=NodeUsage.vcpus_used + vcpus,
            ram_mb_used=NodeUsage.ram_mb_used + ram_mb,
            disk_gb_used=NodeUsage.disk_gb_used + disk_gb,
        )
        .where(
            (NodeUsage.node == node_id)
            & ((vcpus <= 0) | (NodeUsage.vcpus_used + vcpus <= caps[0]))
            & ((ram_mb <= 0) | (NodeUsage.ram_mb_used + ram_mb <= caps[1]))
            & ((disk_gb <= 0) | (NodeUsage.disk_gb_used + disk_gb <= caps[2]))
        )
        .execute()
    )
    return n == 1


def release_growth(node_id: str, vcpus: int, ram_mb: int, disk_gb: int) -> None:
    NodeUsage.update(
        vcpus_used=NodeUsage.vcpus_used - vcpus,
        ram_mb_used=NodeUsage.ram_mb_used - ram_mb,
        disk_gb_used=NodeUsage.disk_gb_used - disk_gb,
    ).where(NodeUsage.node == node_id).execute()
