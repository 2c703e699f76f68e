"""The volume sync: folds what nodes observe (Heartbeat.volumes,
GuestStatus.attached_volume_ids) back into volume and snapshot states; see the
state machine in the package docstring. `observe` decides one volume's change
from what its node says, without a database."""

from __future__ import annotations

import logging
from typing import Any

from controller import clock
from controller.db import nodes as node_store
from controller.db import volumes as store
from controller.db.database import write_transaction
from controller.db.models import Volume, VolumeSnapshot
from controller.domain.node_registry import NodeRegistry
from controller.domain.periodic import Periodic
from controller.domain.quotas import Quotas
from controller.domain.volumes.states import (
    ATTACHING,
    AVAILABLE,
    CREATING,
    DELETING,
    DETACHING,
    ERROR,
    ERROR_INSTANCE,
    EXTENDING,
    IN_USE,
    SNAP_AVAILABLE,
    SNAP_CREATING,
    SNAP_DELETING,
    SNAP_ERROR,
)
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.volumes")


class VolumeSync:
    def __init__(self, registry: NodeRegistry, period: float, quotas: Quotas) -> None:
        self.registry = registry
        self.quotas = quotas
        self._sync = Periodic("volume-sync", period, self.sync_once, log)

    def _notify(self, node_id: str) -> None:
        self.registry.notify_threadsafe(node_id)

    def start(self) -> None:
        self._sync.start()

    def stop(self) -> None:
        self._sync.stop()

    def sync_once(self) -> int:
        """One pass over every volume and snapshot; returns how many changed.
        Reads outside any transaction; each change is its own short write
        transaction with a compare-and-set on the state it was decided from."""
        changed = 0
        volumes = store.all_volumes()
        instances = store.instance_states(sorted({v.instance_id for v in volumes if v.instance_id}))
        by_node: dict[str, list[Volume]] = {}
        for v in volumes:
            by_node.setdefault(v.node_id, []).append(v)
        snaps_by_node: dict[str, list[VolumeSnapshot]] = {}
        for s in store.all_snapshots():
            snaps_by_node.setdefault(s.node_id, []).append(s)
        for node_id in sorted(set(by_node) | set(snaps_by_node)):
            live = self.registry.snapshot(node_id)
            # Absence counts only from a node that is connected and has reported.
            up = live is not None and live.connected and live.heard
            statuses = {s.volume_id: s for s in live.volumes} if live is not None else {}
            guests = {g.instance_id: g for g in live.guests} if live is not None else {}
            bump = False
            for row in by_node.get(node_id, []):
                update = observe(row, statuses.get(row.id), guests, instances, up)
                if update is None:
                    continue
                with write_transaction():
                    if update == "delete":
                        if store.delete_volume(row.id):
                            store.release_disk(node_id, row.claimed_gb)
                            self.quotas.release(row.project_id, {"volumes": 1, "volume_gb": row.size_gb})
                            log.info("volume deleted", extra={"volume": row.id})
                    else:
                        store.update_volume_if(row.id, (row.state,), update, clock.now())
                changed += 1
            vol_states = {v.id: v.state for v in by_node.get(node_id, [])}
            for snap in snaps_by_node.get(node_id, []):
                st = statuses.get(snap.volume_id)
                held = st is not None and snap.id in st.snapshot_ids
                if snap.state == SNAP_CREATING and held:
                    action: Any = {"state": SNAP_AVAILABLE, "fault": ""}
                elif (
                    snap.state == SNAP_CREATING
                    and st is not None
                    and st.fault
                    and vol_states.get(snap.volume_id) in (AVAILABLE, IN_USE)
                ):
                    action = {"state": SNAP_ERROR, "fault": st.fault}
                elif snap.state == SNAP_DELETING and up and not held:
                    action = "delete"
                else:
                    continue
                with write_transaction():
                    now = clock.now()
                    if action == "delete":
                        if store.delete_snapshot(snap.id):
                            self.quotas.release(snap.project_id, {"snapshots": 1})
                        log.info("volume snapshot deleted", extra={"snapshot": snap.id})
                    elif store.update_snapshot_if(snap.id, (SNAP_CREATING,), action, now) == 1 and (
                        action["state"] == SNAP_ERROR
                    ):
                        # An ERROR snapshot leaves the desired state.
                        node_store.bump_desired_revision(node_id, now)
                        bump = True
                changed += 1
            if bump:
                self._notify(node_id)
        return changed


def observe(
    row: Volume,
    st: npb.VolumeStatus | None,
    guests: dict[str, npb.GuestStatus],
    instances: dict[str, int],
    up: bool,
) -> Any:
    """Fields to change, "delete", or None."""
    if row.state == DELETING:
        return "delete" if up and st is None else None
    if row.instance_id and row.instance_id not in instances:
        # The instance is gone: the volume (boot volume too) is free again.
        fields: dict[str, Any] = {"instance_id": "", "device": "", "boot": False, "attach_time": 0}
        if row.state in (ATTACHING, IN_USE, DETACHING):
            fields["state"] = AVAILABLE
        return fields
    if row.state == CREATING and st is not None:
        if st.fault:
            return {"state": ERROR, "fault": st.fault}
        if st.size_gb > 0:
            return {"state": AVAILABLE, "fault": ""}
        return None
    if row.state in (EXTENDING, ERROR) and st is not None:
        # Grown (or, from ERROR, made or grown after all: the node keeps
        # trying while the volume is desired).
        if st.size_gb >= row.size_gb and not st.fault:
            return {"state": IN_USE if row.instance_id else AVAILABLE, "fault": ""}
        if st.fault and (row.state == EXTENDING or st.fault != row.fault):
            return {"state": ERROR, "fault": st.fault}
        return None
    guest = guests.get(row.instance_id) if row.instance_id else None
    if row.state == ATTACHING and guest is not None and row.id in guest.attached_volume_ids:
        return {"state": IN_USE}
    if row.state == DETACHING and up:
        # Detached once the guest's definition no longer has it; a guest
        # the node removed (its instance in ERROR) has nothing attached.
        gone_guest = guest is None and instances.get(row.instance_id) == ERROR_INSTANCE
        if gone_guest or (guest is not None and row.id not in guest.attached_volume_ids):
            return {"state": AVAILABLE, "instance_id": "", "device": "", "attach_time": 0, "fault": ""}
        # A guest that keeps the disk: the node's word on it, on the volume
        # (and gone again once the node stops saying so).
        fault = guest.fault if guest is not None and row.id in guest.fault else ""
        if fault != row.fault and (fault or row.id in row.fault):
            return {"fault": fault}
    return None
