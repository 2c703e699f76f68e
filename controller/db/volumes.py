"""Queries for volumes, volume snapshots and the disk they claim on nodes."""

from __future__ import annotations

from typing import Any

from controller.db.database import cached, db, insert_unique, is_sqlite, padded
from controller.db.models import Instance, NodeUsage, Volume, VolumeSnapshot
from controller.db.paging import paginate

# Volumes


def insert_volume(**fields: Any) -> Volume:
    return insert_unique(Volume, "volume", fields.pop("name"), **fields)


def get_volume(volume_id: str) -> Volume | None:
    return Volume.get_or_none(Volume.id == volume_id)


def get_volume_for_update(volume_id: str) -> Volume | None:
    """Inside a write transaction: the row, locked on PostgreSQL (SQLite's
    write transaction already serialises writers)."""
    query = Volume.select().where(Volume.id == volume_id)
    if not is_sqlite():
        query = query.for_update()
    return query.first()


def find_volume(project_id: str | None, name: str) -> list[Volume]:
    query = Volume.select().where(Volume.name == name)
    if project_id is not None:
        query = query.where(Volume.project == project_id)
    return list(query.limit(2))


def list_volumes(
    page_size: int, page_token: str, project_id: str | None, name: str = "", state: int = 0
) -> tuple[list[Volume], str]:
    query = Volume.select()
    if project_id is not None:
        query = query.where(Volume.project == project_id)
    if name:
        query = query.where(Volume.name == name)
    if state:
        query = query.where(Volume.state == state)
    return paginate(query, (Volume.name, Volume.id), page_size, page_token)


def update_volume(volume_id: str, fields: dict[str, Any], now: float) -> int:
    return Volume.update(**fields, update_time=now).where(Volume.id == volume_id).execute()


def update_volume_if(
    volume_id: str, expect_states: tuple[int, ...], fields: dict[str, Any], now: float
) -> int:
    """Changes a volume only if it is still in one of `expect_states`
    (compare-and-set: of two racing changes, exactly one matches)."""
    return (
        Volume.update(**fields, update_time=now)
        .where((Volume.id == volume_id) & (Volume.state.in_(expect_states)))
        .execute()
    )


def delete_volume(volume_id: str) -> int:
    return Volume.delete().where(Volume.id == volume_id).execute()


def all_volumes() -> list[Volume]:
    return list(Volume.select().order_by(Volume.node, Volume.id))


def volumes_on_node(node_id: str) -> list[Volume]:
    return cached(
        "volumes on node", Volume.select().where(Volume.node == node_id).order_by(Volume.id), [node_id]
    )


def volumes_of_instance(instance_id: str) -> list[Volume]:
    return list(Volume.select().where(Volume.instance_id == instance_id).order_by(Volume.device, Volume.id))


def lock_volumes_of_instance(instance_id: str) -> None:
    """Inside a write transaction: locks the instance's volume rows (by id, one
    order for every caller) on PostgreSQL; SQLite's write lock covers them."""
    if not is_sqlite():
        list(
            Volume.select(Volume.id).where(Volume.instance_id == instance_id).order_by(Volume.id).for_update()
        )


def volumes_of_instances(instance_ids: list[str]) -> list[Volume]:
    if not instance_ids:
        return []
    ids = padded(instance_ids)
    query = Volume.select().where(Volume.instance_id.in_(ids)).order_by(Volume.device, Volume.id)
    return cached(("volumes of instances", len(ids)), query, ids)


def any_volume_for_node(node_id: str, instance_ids: list[str]) -> bool:
    """Whether volumes_for_node has anything: a plain-SQL probe (most nodes
    have no volume, and building the peewee select cost ten times the lookup)."""
    p = db.param
    marks = ", ".join([p] * len(instance_ids))
    by_instance = f" OR instance_id IN ({marks})" if instance_ids else ""
    sql = f"SELECT 1 FROM {Volume._meta.table_name} WHERE node_id = {p}{by_instance} LIMIT 1"
    return db.execute_sql(sql, (node_id, *instance_ids)).fetchone() is not None


def volumes_for_node(node_id: str, instance_ids: list[str]) -> list[Volume]:
    """The volumes on the node and those of the instances (volumes_on_node and
    volumes_of_instances in one query: a node's desired state reads both on
    every change to it, and most nodes have neither)."""
    where = Volume.node == node_id
    if not instance_ids:
        return cached("volumes for node", Volume.select().where(where), [node_id])
    ids = padded(instance_ids)
    query = Volume.select().where(where | Volume.instance_id.in_(ids))
    return cached(("volumes for node", len(ids)), query, [node_id, *ids])


def count_on_node(node_id: str) -> int:
    return Volume.select().where(Volume.node == node_id).count()


def count_in_project(project_id: str) -> int:
    return Volume.select().where(Volume.project == project_id).count()


def instance_states(instance_ids: list[str]) -> dict[str, int]:
    """{instance id: state} of those of `instance_ids` that still exist."""
    if not instance_ids:
        return {}
    query = Instance.select(Instance.id, Instance.state).where(Instance.id.in_(instance_ids)).tuples()
    return {r[0]: int(r[1]) for r in query}


def uses_image_blob(node_id: str, sha256: str) -> bool:
    return Volume.select(Volume.id).where((Volume.node == node_id) & (Volume.image_sha256 == sha256)).exists()


# Disk claims (shared with instances in node_usage)


def claim_disk(node_id: str, gb: int, cap: float) -> bool:
    """Adds `gb` to a node's disk claim only if it still fits under `cap`, in
    one statement: two racing claims cannot both fit."""
    NodeUsage.insert(node=node_id).on_conflict_ignore().execute()
    n = (
        NodeUsage.update(disk_gb_used=NodeUsage.disk_gb_used + gb)
        .where((NodeUsage.node == node_id) & (NodeUsage.disk_gb_used + gb <= cap))
        .execute()
    )
    return n == 1


def release_disk(node_id: str, gb: int) -> None:
    NodeUsage.update(disk_gb_used=NodeUsage.disk_gb_used - gb).where(NodeUsage.node == node_id).execute()


# Snapshots


def insert_snapshot(**fields: Any) -> VolumeSnapshot:
    return insert_unique(VolumeSnapshot, "volume snapshot", fields.pop("name"), **fields)


def get_snapshot(snapshot_id: str) -> VolumeSnapshot | None:
    return VolumeSnapshot.get_or_none(VolumeSnapshot.id == snapshot_id)


def find_snapshot(project_id: str | None, name: str) -> list[VolumeSnapshot]:
    query = VolumeSnapshot.select().where(VolumeSnapshot.name == name)
    if project_id is not None:
        query = query.where(VolumeSnapshot.project == project_id)
    return list(query.limit(2))


def list_snapshots(
    page_size: int, page_token: str, project_id: str | None, name: str = "", volume_id: str = ""
) -> tuple[list[VolumeSnapshot], str]:
    query = VolumeSnapshot.select()
    if project_id is not None:
        query = query.where(VolumeSnapshot.project == project_id)
    if name:
        query = query.where(VolumeSnapshot.name == name)
    if volume_id:
        query = query.where(VolumeSnapshot.volume == volume_id)
    return paginate(query, (VolumeSnapshot.name, VolumeSnapshot.id), page_size, page_token)


def snapshots_of(volume_id: str) -> list[VolumeSnapshot]:
    return list(VolumeSnapshot.select().where(VolumeSnapshot.volume == volume_id).order_by(VolumeSnapshot.id))


def snapshots_on_node(node_id: str) -> list[VolumeSnapshot]:
    query = VolumeSnapshot.select().where(VolumeSnapshot.node_id == node_id).order_by(VolumeSnapshot.id)
    return cached("snapshots on node", query, [node_id])


def all_snapshots() -> list[VolumeSnapshot]:
    return list(VolumeSnapshot.select())


def count_snapshots_of(volume_id: str, state: int | None = None) -> int:
    query = VolumeSnapshot.select().where(VolumeSnapshot.volume == volume_id)
    if state is not None:
        query = query.where(VolumeSnapshot.state == state)
    return query.count()


def count_snapshots_in_project(project_id: str) -> int:
    return VolumeSnapshot.select().where(VolumeSnapshot.project == project_id).count()


def volumes_from_snapshot(snapshot_id: str, states: tuple[int, ...]) -> int:
    return (
        Volume.select().where((Volume.source_snapshot_id == snapshot_id) & (Volume.state.in_(states))).count()
    )


def update_snapshot_if(
    snapshot_id: str, expect_states: tuple[int, ...], fields: dict[str, Any], now: float
) -> int:
    return (
        VolumeSnapshot.update(**fields, update_time=now)
        .where((VolumeSnapshot.id == snapshot_id) & (VolumeSnapshot.state.in_(expect_states)))
        .execute()
    )


def delete_snapshot(snapshot_id: str) -> int:
    return VolumeSnapshot.delete().where(VolumeSnapshot.id == snapshot_id).execute()


def move_snapshots(volume_id: str, node_id: str) -> None:
    """A shared volume's snapshots follow it to the node that does its work."""
    VolumeSnapshot.update(node_id=node_id).where(VolumeSnapshot.volume == volume_id).execute()
