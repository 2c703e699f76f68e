"""Volumes and snapshots by id or name, as the caller may see them: another
project's answers NOT_FOUND like a missing one."""

from __future__ import annotations

from controller.auth.principal import Principal
from controller.db import volumes as store
from controller.db.models import Volume, VolumeSnapshot
from controller.errors import InvalidArgument, not_found
from kumo.ids import is_uuid


def get_volume(caller: Principal, volume_id: str) -> Volume:
    row = store.get_volume(volume_id)
    if row is None or not caller.can_see(row.project_id):
        raise not_found("volume", volume_id)
    return row


def find_volume(caller: Principal, ref: str) -> Volume:
    """By id or by name (the caller's project's; admins: any, if unique)."""
    if is_uuid(ref):
        return get_volume(caller, ref)
    rows = store.find_volume(None if caller.is_admin else caller.project_id, ref)
    if not rows:
        raise not_found("volume", ref)
    if len(rows) > 1:
        raise InvalidArgument(f"more than one volume is named {ref!r}; use its id")
    return rows[0]


def list_volumes(
    caller: Principal, page_size: int, page_token: str, name: str, state: int
) -> tuple[list[Volume], str]:
    return store.list_volumes(
        page_size, page_token, None if caller.is_admin else caller.project_id, name, state
    )


def get_snapshot(caller: Principal, snapshot_id: str) -> VolumeSnapshot:
    row = store.get_snapshot(snapshot_id)
    if row is None or not caller.can_see(row.project_id):
        raise not_found("volume snapshot", snapshot_id)
    return row


def find_snapshot(caller: Principal, ref: str) -> VolumeSnapshot:
    if is_uuid(ref):
        return get_snapshot(caller, ref)
    rows = store.find_snapshot(None if caller.is_admin else caller.project_id, ref)
    if not rows:
        raise not_found("volume snapshot", ref)
    if len(rows) > 1:
        raise InvalidArgument(f"more than one volume snapshot is named {ref!r}; use its id")
    return rows[0]


def list_snapshots(
    caller: Principal, page_size: int, page_token: str, name: str, volume_id: str
) -> tuple[list[VolumeSnapshot], str]:
    if volume_id:
        get_volume(caller, volume_id)
    return store.list_snapshots(
        page_size, page_token, None if caller.is_admin else caller.project_id, name, volume_id
    )
