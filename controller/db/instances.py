"""Queries for instances, node usage claims and console logs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import peewee

from controller.db.database import (
    cached,
    cached_count,
    cached_first,
    cached_insert,
    cached_insert_new,
    cached_rows,
    db,
)
from controller.db.models import ConsoleLog, Instance, Node, NodeUsage
from controller.db.paging import paginate
from controller.errors import AlreadyExists


def insert_instance(**fields: Any) -> Instance:
    """Inserts in the caller's write transaction, with no savepoint of its
    own: a name taken raises ALREADY_EXISTS, which rolls that transaction back."""
    try:
        return cached_insert(Instance, **fields)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"an instance named {fields['name']!r} already exists in this project", reason="INSTANCE_EXISTS"
        ) from None


def get_instance(instance_id: str) -> Instance | None:
    return cached_first("instance", Instance.select().where(Instance.id == instance_id), [instance_id])


def list_instances(
    page_size: int,
    page_token: str,
    viewer: str | None,
    name: str = "",
    state: int = 0,
    project_id: str = "",
    node_id: str = "",
) -> tuple[list[Instance], str]:
    """`viewer`: the project whose instances the caller may see (None: all)."""
    query = Instance.select()
    if viewer is not None:
        query = query.where(Instance.project == viewer)
    if project_id:
        query = query.where(Instance.project == project_id)
    if node_id:
        query = query.where(Instance.node == node_id)
    if name:
        query = query.where(Instance.name == name)
    if state:
        query = query.where(Instance.state == state)
    return paginate(query, (Instance.name, Instance.id), page_size, page_token)


def update_instance(instance_id: str, fields: dict[str, Any], now: float) -> int:
    return Instance.update(**fields, update_time=now).where(Instance.id == instance_id).execute()


def update_instance_if(
    instance_id: str, expect_state: int, fields: dict[str, Any], now: float, expect_task: str | None = None
) -> int:
    """Changes an instance only if it is still in `expect_state` (and, when
    given, has task `expect_task`): compare-and-set."""
    cond = (Instance.id == instance_id) & (Instance.state == expect_state)
    if expect_task is not None:
        cond &= Instance.task == expect_task
    return Instance.update(**fields, update_time=now).where(cond).execute()


def move_instance(
    instance_id: str, source: str, target: str, fields: dict[str, Any], now: float, skip_state: int
) -> int:
    """Moves an instance to another node only if it is still on `source` and
    not in `skip_state` (being deleted): of two racing evacuations (or
    controllers), one matches."""
    return (
        Instance.update(**fields, node=target, update_time=now)
        .where((Instance.id == instance_id) & (Instance.node == source) & (Instance.state != skip_state))
        .execute()
    )


def instances_to_evacuate(node_id: str, skip_state: int, ha_only: bool = False) -> list[Instance]:
    """A lost node's instances that an evacuation moves (not in `skip_state`: being deleted)."""
    query = Instance.select().where((Instance.node == node_id) & (Instance.state != skip_state))
    if ha_only:
        query = query.where(Instance.ha == True)  # noqa: E712
    return list(query.order_by(Instance.id))


def nodes_with_ha_instances(skip_state: int) -> list[str]:
    """The nodes that hold `ha` instances (not in `skip_state`)."""
    query = (
        Instance.select(Instance.node)
        .where((Instance.ha == True) & (Instance.state != skip_state))  # noqa: E712
        .distinct()
    )
    return [node_id for (node_id,) in query.tuples()]


def delete_instance(instance_id: str) -> int:
    return Instance.delete().where(Instance.id == instance_id).execute()


def instances_on_node(node_id: str) -> list[Instance]:
    query = Instance.select().where(Instance.node == node_id).order_by(Instance.id)
    return cached("instances on node", query, [node_id])


class DesiredRow(NamedTuple):
    """The columns of an instance that a node's desired state carries, read
    as plain tuples: a node's state is rebuilt on every change to it, and
    peewee's model building for all of a node's instances was most of that."""

    id: str
    name: str
    image_id: str
    image_sha256: str
    image_format: int
    image_size_bytes: int
    vcpus: int
    ram_mb: int
    disk_gb: int
    state: int
    task: str
    reboot_generation: int
    reboot_hard: bool
    user_data: str
    public_key: str
    snapshot_image_id: str


_DESIRED_COLUMNS = [getattr(Instance, name) for name in DesiredRow._fields]


def desired_rows_on_node(node_id: str) -> list[DesiredRow]:
    """A node's instances (every state), by id, as DesiredRow."""
    query = Instance.select(*_DESIRED_COLUMNS).where(Instance.node == node_id).order_by(Instance.id)
    return [DesiredRow._make(r) for r in cached_rows("desired rows on node", query, [node_id])]


class SyncRow(NamedTuple):
    """The columns of an instance the sync reads on every pass (of every
    instance), as plain tuples: peewee's model building for each was most of a pass."""

    id: str
    node_id: str
    project_id: str
    state: int
    task: str
    fault: str
    snapshot_image_id: str
    reboot_generation: int
    vcpus: int
    ram_mb: int
    disk_gb: int


_SYNC_COLUMNS = [
    Instance.id,
    Instance.node,
    Instance.project,
    Instance.state,
    Instance.task,
    Instance.fault,
    Instance.snapshot_image_id,
    Instance.reboot_generation,
    Instance.vcpus,
    Instance.ram_mb,
    Instance.disk_gb,
]


def sync_rows() -> list[SyncRow]:
    """Every instance, as SyncRow."""
    return [SyncRow._make(r) for r in cached_rows("sync rows", Instance.select(*_SYNC_COLUMNS), [])]


def count_on_node(node_id: str) -> int:
    return Instance.select().where(Instance.node == node_id).count()


def count_in_project(project_id: str) -> int:
    return Instance.select().where(Instance.project == project_id).count()


def group_members(group_id: str) -> list[tuple[str, str]]:
    """(instance id, node id) of a server group's instances."""
    return list(
        Instance.select(Instance.id, Instance.node).where(Instance.server_group_id == group_id).tuples()
    )


def members_of_groups(group_ids: Iterable[str]) -> dict[str, list[str]]:
    """group id -> its instance ids, for a page of groups in one query."""
    ids = list(set(group_ids))
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    query = Instance.select(Instance.server_group_id, Instance.id).where(Instance.server_group_id.in_(ids))
    for group_id, instance_id in query.tuples():
        out.setdefault(group_id, []).append(instance_id)
    return out


# Capacity


def candidates(only: list[str] | None = None) -> list[tuple[Any, ...]]:
    """Every node (or those in `only`) with its capacity and what is claimed on
    it, as tuples: (id, name, enabled, vcpus, memory_mb, disk_gb, vcpus_used,
    ram_mb_used, disk_gb_used, maintenance)."""
    query = (
        Node.select(
            Node.id,
            Node.name,
            Node.enabled,
            Node.vcpus,
            Node.memory_mb,
            Node.disk_gb,
            peewee.fn.COALESCE(NodeUsage.vcpus_used, 0),
            peewee.fn.COALESCE(NodeUsage.ram_mb_used, 0),
            peewee.fn.COALESCE(NodeUsage.disk_gb_used, 0),
            Node.maintenance,
        )
        .join(NodeUsage, peewee.JOIN.LEFT_OUTER, on=(NodeUsage.node == Node.id))
        .tuples()
    )
    if only is not None:
        query = query.where(Node.id.in_(only))
    # The driver's rows as they are: every create reads up to SAMPLE of them,
    # and peewee's per-column conversion cost as much as the query itself.
    return cached_rows(("candidates", None if only is None else len(only)), query, [0, 0, 0, *(only or ())])


def ensure_usage_row(node_id: str) -> None:
    """The node's usage row, made if missing (the claims' UPDATE needs it)."""
    cached_insert_new(NodeUsage, node=node_id)


def claim(node_id: str, vcpus: int, ram_mb: int, disk_gb: int, caps: tuple[float, float, float]) -> bool:
    """Adds a claim to a node only if it still fits under `caps` (capacity
    times allocation ratio) and the node is enabled and not in maintenance.
    The check and the write are one statement, so two racing claims cannot
    both fit, on SQLite or PostgreSQL, and a ranking from a stale copy of the
    nodes (domain/usage_copy.py) cannot place on a node disabled meanwhile. The node's
    usage row is made on its first claim (without it the UPDATE changes nothing):
    a refused UPDATE is tried once more after an INSERT that does nothing when
    the row is there, three cached statements where a peewee-built EXISTS and
    INSERT cost more than the claim (a fleet's first claims are a fifth of a
    5,000-instance run on 1,000 nodes); the second UPDATE is still the check."""
    if _add_claim(node_id, vcpus, ram_mb, disk_gb, caps):
        return True
    ensure_usage_row(node_id)
    return _add_claim(node_id, vcpus, ram_mb, disk_gb, caps)


def _add_claim(node_id: str, vcpus: int, ram_mb: int, disk_gb: int, caps: tuple[float, float, float]) -> bool:
    params = [vcpus, ram_mb, disk_gb, 1, node_id, vcpus, caps[0], ram_mb, caps[1], disk_gb, caps[2], node_id]
    return cached_count("claim", lambda: _claim_query(node_id, vcpus, ram_mb, disk_gb, caps), params) == 1


def _claim_query(
    node_id: str, vcpus: int, ram_mb: int, disk_gb: int, caps: tuple[float, float, float]
) -> Any:
    return NodeUsage.update(
        vcpus_used=NodeUsage.vcpus_used + vcpus,
        ram_mb_used=NodeUsage.ram_mb_used + ram_mb,
        disk_gb_used=NodeUsage.disk_gb_used + disk_gb,
        instances=NodeUsage.instances + 1,
    ).where(
        (NodeUsage.node == node_id)
        & (NodeUsage.vcpus_used + vcpus <= caps[0])
        & (NodeUsage.ram_mb_used + ram_mb <= caps[1])
        & (NodeUsage.disk_gb_used + disk_gb <= caps[2])
        # As text: peewee building the subquery per claim cost as much as the rest of it.
        & peewee.SQL(
            f'EXISTS (SELECT 1 FROM "node" WHERE "id" = {db.param} AND "enabled" AND NOT "maintenance")',
            [node_id],
        )
    )


def release(node_id: str, vcpus: int, ram_mb: int, disk_gb: int) -> None:
    NodeUsage.update(
        vcpus_used=NodeUsage.vcpus_used - vcpus,
        ram_mb_used=NodeUsage.ram_mb_used - ram_mb,
        disk_gb_used=NodeUsage.disk_gb_used - disk_gb,
        instances=NodeUsage.instances - 1,
    ).where(NodeUsage.node == node_id).execute()


# Console logs


def get_console(instance_id: str) -> str:
    row = ConsoleLog.get_or_none(ConsoleLog.instance == instance_id)
    return row.data if row else ""


def put_console(instance_id: str, data: str, now: float) -> None:
    ConsoleLog.insert(instance=instance_id, data=data, update_time=now).on_conflict(
        conflict_target=[ConsoleLog.instance], update={ConsoleLog.data: data, ConsoleLog.update_time: now}
    ).execute()
