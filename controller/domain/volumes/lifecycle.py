"""The volume state machine: create (placement with a disk claim and quotas),
rename, delete, extend, attach and detach as compare-and-set state changes in
one write transaction each, and boot volumes (called by Instances.create).
Each change bumps the node's desired revision and tells its session after the
commit; the node reconciles and the sync folds back what it reports."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any

import peewee

from controller import clock
from controller.auth.principal import Principal
from controller.db import images as image_store
from controller.db import nodes as node_store
from controller.db import volumes as store
from controller.db.database import db, is_sqlite, write_transaction
from controller.db.models import Instance, Volume, VolumeSnapshot
from controller.domain import idempotency
from controller.domain import instances as instances_mod
from controller.domain.extensions import BootSource
from controller.domain.idempotency import RequestKey
from controller.domain.images import Images
from controller.domain.node_registry import NodeRegistry
from controller.domain.placement import Placement
from controller.domain.quotas import Quotas
from controller.domain.scheduler import Request, no_valid_host, schedule
from controller.domain.volumes.lookups import find_snapshot, find_volume, get_volume
from controller.domain.volumes.states import (
    ATTACHING,
    AVAILABLE,
    BOOT_DEVICE,
    CREATING,
    DELETING,
    DETACHING,
    DEVICES,
    ERROR,
    EXTENDING,
    IN_USE,
    MAX_ATTACHED,
    SNAP_AVAILABLE,
    SNAP_DELETING,
    SNAP_STATE_NAMES,
    check_size,
    wrong_state,
)
from controller.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted, not_found

log = logging.getLogger("kumo.volumes")


class VolumeLifecycle:
    def __init__(self, quotas: Quotas, images: Images, placement: Placement, registry: NodeRegistry) -> None:
        self.quotas = quotas
        self.images = images
        self.placement = placement
        self.ratios = placement.ratios
        self.registry = registry

    def _notify(self, node_id: str) -> None:
        self.registry.notify_threadsafe(node_id)

    def create(
        self,
        caller: Principal,
        name: str,
        description: str,
        size_gb: int,
        image_ref: str,
        snapshot_ref: str,
        request_key: RequestKey,
    ) -> Volume:
        if request_key:
            existing = idempotency.lookup(request_key, "volume", caller.project_id)
            if existing:
                return get_volume(caller, existing)
        if image_ref and snapshot_ref:
            raise InvalidArgument("set at most one of volume.source_image_id and volume.source_snapshot_id")
        check_size(size_gb, allow_zero=bool(image_ref or snapshot_ref))
        fields: dict[str, Any] = {}
        snap: VolumeSnapshot | None = None
        if image_ref:
            image = self.images.find_active(caller, image_ref)
            need = max(image.min_disk_gb, math.ceil(image.virtual_size_bytes / 1024**3), 1)
            fields.update(
                source_image_id=image.id,
                image_sha256=image.checksum_sha256,
                image_format=image.disk_format,
                image_size_bytes=image.size_bytes,
            )
            what = f"image {image.name!r}"
        elif snapshot_ref:
            snap = find_snapshot(caller, snapshot_ref)
            if snap.state != SNAP_AVAILABLE:
                raise FailedPrecondition(
                    f"volume snapshot {snap.name!r} is {SNAP_STATE_NAMES.get(snap.state)}, not available",
                    reason="VOLUME_SNAPSHOT_WRONG_STATE",
                    state=SNAP_STATE_NAMES.get(snap.state),
                )
            parent = store.get_volume(snap.volume_id)
            need = snap.size_gb
            fields.update(
                source_snapshot_id=snap.id, source_image_id=parent.source_image_id if parent else ""
            )
            what = f"volume snapshot {snap.name!r}"
        else:
            need = 1
            what = ""
        if size_gb == 0:
            size_gb = need
        elif size_gb < need:
            raise InvalidArgument(
                f"size_gb {size_gb} is too small: {what} needs at least {need} GiB",
                reason="VOLUME_TOO_SMALL",
                min_size_gb=need,
            )
        check_size(size_gb, allow_zero=False)

        # Rank nodes outside the write lock; the claim inside it re-checks.
        req = Request(0, 0, size_gb, required_node=snap.node_id if snap is not None else "")
        outcome = schedule(self.placement.candidates(), req, self.ratios, "spread")
        ranked = sorted(outcome.ranked, key=lambda c: (-c.free(self.ratios)[2], c.name))
        with write_transaction():
            image_store.lock_project(caller.project_id)  # then a racing twin's key is committed or not begun
            existing = idempotency.lookup(request_key, "volume", caller.project_id)
            if existing:
                return get_volume(caller, existing)
            self.quotas.charge(caller.project_id, {"volumes": 1, "volume_gb": size_gb}, caller.project_name)
            # The snapshot must still be there (a racing delete loses to us or
            # we to it, never both).
            if (
                snap is not None
                and store.update_snapshot_if(snap.id, (SNAP_AVAILABLE,), {}, clock.now()) != 1
            ):
                raise FailedPrecondition(
                    f"volume snapshot {snap.name!r} changed state; try again",
                    reason="VOLUME_SNAPSHOT_WRONG_STATE",
                )
            chosen = ""
            for cand in ranked:
                if store.claim_disk(cand.node_id, size_gb, cand.disk_gb * self.ratios.disk):
                    chosen = cand.node_id
                    break
            if not chosen:
                self.placement.record("volume", outcome, False)
                raise no_valid_host(outcome, req)
            now = clock.now()
            row = store.insert_volume(
                id=clock.new_id(),
                project=caller.project_id,
                name=name,
                description=description,
                size_gb=size_gb,
                state=CREATING,
                node=chosen,
                claimed_gb=size_gb,
                create_time=now,
                update_time=now,
                **fields,
            )
            node_store.bump_desired_revision(chosen, now)
            if request_key:
                idempotency.record(request_key, "volume", caller.project_id, row.id)
        self.placement.record("volume", outcome, True)  # committed
        self._notify(chosen)
        log.info("volume placed", extra={"volume": row.id, "node": chosen, "size_gb": size_gb})
        return row

    # Simple changes

    def update(self, caller: Principal, volume_id: str, fields: dict[str, Any]) -> Volume:
        row = get_volume(caller, volume_id)
        if fields:
            try:
                with db.atomic():
                    store.update_volume(row.id, fields, clock.now())
            except peewee.IntegrityError:  # the unique (project, name) index
                raise AlreadyExists(
                    f"a volume named {fields.get('name')!r} already exists", reason="VOLUME_EXISTS"
                ) from None
        return get_volume(caller, volume_id)

    def delete(self, caller: Principal, volume_id: str) -> None:
        with write_transaction():
            row = get_volume(caller, volume_id)
            row = store.get_volume_for_update(row.id) or row
            if row.state == DELETING:
                return
            if row.instance_id or row.state in (ATTACHING, IN_USE, DETACHING):
                raise FailedPrecondition(
                    f"volume {row.name!r} is attached to instance {row.instance_id}; detach it first",
                    reason="VOLUME_IN_USE",
                    instance_id=row.instance_id,
                )
            if row.state not in (CREATING, AVAILABLE, ERROR):
                raise wrong_state(row, "delete")
            n = store.count_snapshots_of(row.id)
            if n:
                going = store.count_snapshots_of(row.id, SNAP_DELETING)
                hint = (
                    f"wait until the node has removed {'it' if going == 1 else 'them'}"
                    if going == n
                    else "delete them first"
                )
                raise FailedPrecondition(
                    f"volume {row.name!r} has {n} snapshot(s)"
                    + (f", {going} being deleted" if going else "")
                    + f"; {hint}",
                    reason="VOLUME_HAS_SNAPSHOTS",
                )
            now = clock.now()
            if store.update_volume_if(row.id, (row.state,), {"state": DELETING}, now) != 1:
                raise wrong_state(row, "delete")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)

    def extend(self, caller: Principal, volume_id: str, new_size_gb: int) -> Volume:
        check_size(new_size_gb, allow_zero=False)
        with write_transaction():
            row = get_volume(caller, volume_id)
            image_store.lock_project(row.project_id)  # lock order: project, volume, node usage, node
            row = store.get_volume_for_update(row.id) or row
            if new_size_gb <= row.size_gb:
                raise InvalidArgument(
                    f"new_size_gb must be larger than the volume's size ({row.size_gb} GiB), got {new_size_gb}"
                )
            if row.state not in (AVAILABLE, IN_USE):
                raise wrong_state(row, "extend")
            add = new_size_gb - row.size_gb
            self.quotas.charge(row.project_id, {"volume_gb": add}, caller.project_name)
            cap = self._disk_cap(row.node_id)
            if not store.claim_disk(row.node_id, add, cap):
                raise ResourceExhausted(
                    f"node of volume {row.name!r} has no room for {add} more GiB",
                    reason="VOLUME_NODE_FULL",
                )
            now = clock.now()
            fields = {
                "state": EXTENDING,
                "size_gb": new_size_gb,
                "claimed_gb": row.claimed_gb + add,
                "fault": "",
            }
            if store.update_volume_if(row.id, (row.state,), fields, now) != 1:
                raise wrong_state(row, "extend")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return get_volume(caller, volume_id)

    def _disk_cap(self, node_id: str) -> float:
        return self.placement.disk_cap(node_id)

    # Attach and detach

    def attach(self, caller: Principal, volume_id: str, instance_id: str) -> Volume:
        with write_transaction():
            row = get_volume(caller, volume_id)
            row = store.get_volume_for_update(row.id) or row
            inst = instances_mod.visible_instance(caller, instance_id)
            if not is_sqlite():
                list(Instance.select(Instance.id).where(Instance.id == inst.id).for_update())
                inst = instances_mod.visible_instance(caller, instance_id)
            if inst.project_id != row.project_id:
                # Another project's instance is as good as missing.
                raise not_found("instance", instance_id)
            if row.state != AVAILABLE:
                raise wrong_state(row, "attach")
            if inst.state not in (instances_mod.ACTIVE, instances_mod.STOPPED):
                raise FailedPrecondition(
                    f"cannot attach a volume to instance {inst.name!r}: it is "
                    f"{instances_mod.STATE_NAMES.get(inst.state)}; it must be active or stopped",
                    reason="INSTANCE_WRONG_STATE",
                    state=instances_mod.STATE_NAMES.get(inst.state),
                )
            if inst.node_id != row.node_id:
                raise FailedPrecondition(
                    f"volume {row.name!r} is on another node than instance {inst.name!r} "
                    "(local volumes attach to instances on their own node)",
                    reason="VOLUME_ON_OTHER_NODE",
                )
            used = {v.device for v in store.volumes_of_instance(inst.id) if not v.boot}
            free = [d for d in DEVICES if d not in used]
            if not free:
                raise FailedPrecondition(
                    f"instance {inst.name!r} has {MAX_ATTACHED} volumes attached already",
                    reason="INSTANCE_VOLUME_LIMIT",
                )
            now = clock.now()
            fields = {
                "state": ATTACHING,
                "instance_id": inst.id,
                "device": free[0],
                "boot": False,
                "attach_time": now,
                "fault": "",
            }
            # The compare-and-set: of two racing attaches of one volume, one matches.
            if store.update_volume_if(row.id, (AVAILABLE,), fields, now) != 1:
                raise wrong_state(store.get_volume(row.id) or row, "attach")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return get_volume(caller, volume_id)

    def detach(self, caller: Principal, volume_id: str) -> Volume:
        with write_transaction():
            row = get_volume(caller, volume_id)
            row = store.get_volume_for_update(row.id) or row
            if row.boot:
                raise FailedPrecondition(
                    f"volume {row.name!r} is the boot volume of instance {row.instance_id}; "
                    "it goes back to available when the instance is deleted",
                    reason="VOLUME_IS_BOOT",
                )
            if not row.instance_id or row.state not in (ATTACHING, IN_USE, ERROR):
                raise wrong_state(row, "detach")
            now = clock.now()
            if store.update_volume_if(row.id, (row.state,), {"state": DETACHING}, now) != 1:
                raise wrong_state(row, "detach")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return get_volume(caller, volume_id)

    # Boot from volume (called by Instances.create)

    def boot_source(self, caller: Principal, ref: str) -> BootSource:
        row = find_volume(caller, ref)
        if row.project_id != caller.project_id:
            raise not_found("volume", ref)
        if row.state != AVAILABLE:
            raise wrong_state(row, "boot from")
        image = SimpleNamespace(
            id="",
            name=f"volume {row.name}",
            checksum_sha256="",
            disk_format=0,
            size_bytes=0,
            virtual_size_bytes=0,
            min_disk_gb=0,
            min_ram_mb=0,
        )
        return BootSource(row, image)

    @staticmethod
    def lock(volume_id: str) -> None:
        """Locks a volume row early in a write transaction (PostgreSQL), so
        every path takes project, volume, node usage, node in that order."""
        store.get_volume_for_update(volume_id)

    def bind_boot(self, volume_id: str, instance_id: str, now: float) -> None:
        """In the instance's create transaction: the volume becomes its boot
        volume, or the whole create is rolled back."""
        fields = {
            "state": IN_USE,
            "instance_id": instance_id,
            "device": BOOT_DEVICE,
            "boot": True,
            "attach_time": now,
            "fault": "",
        }
        if store.update_volume_if(volume_id, (AVAILABLE,), fields, now) != 1:
            row = store.get_volume(volume_id)
            raise FailedPrecondition(
                f"volume {row.name if row else volume_id!r} is no longer available to boot from",
                reason="VOLUME_WRONG_STATE",
            )

    def release_instance(self, instance_id: str) -> None:
        """In the transaction that deletes an instance's row: its volumes (the
        boot volume too) are free again."""
        now = clock.now()
        for v in store.volumes_of_instance(instance_id):
            fields: dict[str, Any] = {"instance_id": "", "device": "", "boot": False, "attach_time": 0}
            if v.state in (ATTACHING, IN_USE, DETACHING):
                fields["state"] = AVAILABLE
            store.update_volume(v.id, fields, now)
