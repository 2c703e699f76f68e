"""Volume snapshots: made on the volume's node (they claim no disk), within
the project's snapshot quota; CREATING -> AVAILABLE once the node lists them,
DELETING -> gone once it no longer does (the sync does both)."""

from __future__ import annotations

from controller import clock
from controller.auth.principal import Principal
from controller.db import images as image_store
from controller.db import nodes as node_store
from controller.db import volumes as store
from controller.db.database import write_transaction
from controller.db.models import VolumeSnapshot
from controller.domain import idempotency
from controller.domain.idempotency import RequestKey
from controller.domain.node_registry import NodeRegistry
from controller.domain.quotas import Quotas
from controller.domain.volumes.lookups import find_volume, get_snapshot
from controller.domain.volumes.states import (
    AVAILABLE,
    CREATING,
    IN_USE,
    SNAP_CREATING,
    SNAP_DELETING,
    wrong_state,
)
from controller.errors import FailedPrecondition


class Snapshots:
    def __init__(self, quotas: Quotas, registry: NodeRegistry) -> None:
        self.quotas = quotas
        self.registry = registry

    def _notify(self, node_id: str) -> None:
        self.registry.notify_threadsafe(node_id)

    def create_snapshot(
        self, caller: Principal, name: str, description: str, volume_ref: str, request_key: RequestKey
    ) -> VolumeSnapshot:
        if request_key:
            existing = idempotency.lookup(request_key, "volume_snapshot", caller.project_id)
            if existing:
                return get_snapshot(caller, existing)
        vol = find_volume(caller, volume_ref)
        with write_transaction():
            image_store.lock_project(vol.project_id)  # lock order: project, volume, node
            # After the lock: a racing twin's key is committed or not begun.
            existing = idempotency.lookup(request_key, "volume_snapshot", caller.project_id)
            if existing:
                return get_snapshot(caller, existing)
            vol = store.get_volume_for_update(vol.id) or vol
            if vol.state not in (AVAILABLE, IN_USE):
                raise wrong_state(vol, "snapshot")
            self.quotas.charge(vol.project_id, {"snapshots": 1}, caller.project_name)
            now = clock.now()
            row = store.insert_snapshot(
                id=clock.new_id(),
                project=vol.project_id,
                name=name,
                description=description,
                volume=vol.id,
                node_id=vol.node_id,
                size_gb=vol.size_gb,
                state=SNAP_CREATING,
                create_time=now,
                update_time=now,
            )
            node_store.bump_desired_revision(vol.node_id, now)
            if request_key:
                idempotency.record(request_key, "volume_snapshot", caller.project_id, row.id)
        self._notify(vol.node_id)
        return row

    def delete_snapshot(self, caller: Principal, snapshot_id: str) -> None:
        with write_transaction():
            row = get_snapshot(caller, snapshot_id)
            if row.state == SNAP_DELETING:
                return
            now = clock.now()
            if store.update_snapshot_if(row.id, (row.state,), {"state": SNAP_DELETING}, now) != 1:
                raise FailedPrecondition(
                    f"volume snapshot {row.name!r} changed state; try again",
                    reason="VOLUME_SNAPSHOT_WRONG_STATE",
                )
            # Counted after the compare-and-set has the row: a racing create
            # from this snapshot either committed (and is counted) or will
            # find the snapshot DELETING.
            n = store.volumes_from_snapshot(row.id, (CREATING,))
            if n:
                raise FailedPrecondition(
                    f"volume snapshot {row.name!r} is the source of {n} volume(s) being made",
                    reason="VOLUME_SNAPSHOT_IN_USE",
                )
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
