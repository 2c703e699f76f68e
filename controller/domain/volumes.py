"""Volumes (Cinder's job) on the local storage backend: a volume lives on one
node, which makes it (empty, from an image blob, or from a snapshot of a
volume on that node), grows it, snapshots it and attaches it to its guests.

Every verb checks and records what should happen, in one write transaction
with a compare-and-set on the volume's state, bumps the node's desired
revision and tells its session; the node reconciles. The sync pass folds what
the node reports (Heartbeat.volumes, GuestStatus.attached_volume_ids) back
into states:

    CREATING   -> AVAILABLE  the node reports the volume with size_gb > 0
               -> ERROR      the node reports a fault for it
    ATTACHING  -> IN_USE     the guest's definition has it attached
    DETACHING  -> AVAILABLE  the guest no longer has it (or is gone)
    EXTENDING  -> IN_USE or AVAILABLE (as before) once size_gb >= the new size
    DELETING   -> (row gone, disk claim freed) once the node no longer reports it
    any attached state -> AVAILABLE once its instance row is gone

Snapshots: CREATING -> AVAILABLE once listed in VolumeStatus.snapshot_ids;
DELETING -> gone once no longer listed.

Disk: a volume claims its size on its node's node_usage.disk_gb_used (the same
counter instance root disks claim), with a conditional UPDATE, so racing
creates cannot overcommit a node; snapshots claim nothing (documented)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import peewee

from controller import clock
from controller.auth.principal import Principal
from controller.config import ControllerConfig
from controller.db import identity as identity_store
from controller.db import images as image_store
from controller.db import nodes as node_store
from controller.db import volumes as store
from controller.db.database import db, is_sqlite, write_transaction
from controller.db.models import Instance, Node, Volume, VolumeSnapshot
from controller.domain import instances as instances_mod
from controller.domain.extensions import BootSource, CreateBind
from controller.domain.images import Images
from controller.domain.nodes import Nodes
from controller.domain.periodic import Periodic
from controller.domain.placement import Placement
from controller.domain.scheduler import Request, no_valid_host, schedule
from controller.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted, not_found
from kumo.ids import is_uuid
from kumo.v1 import node_agent_pb2 as npb
from kumo.v1 import volume_pb2 as pb

log = logging.getLogger("kumo.volumes")

CREATING = pb.VOLUME_STATE_CREATING
AVAILABLE = pb.VOLUME_STATE_AVAILABLE
ATTACHING = pb.VOLUME_STATE_ATTACHING
IN_USE = pb.VOLUME_STATE_IN_USE
DETACHING = pb.VOLUME_STATE_DETACHING
EXTENDING = pb.VOLUME_STATE_EXTENDING
DELETING = pb.VOLUME_STATE_DELETING
ERROR = pb.VOLUME_STATE_ERROR
STATE_NAMES = {v: k.removeprefix("VOLUME_STATE_").lower() for k, v in pb.VolumeState.items()}

SNAP_CREATING = pb.VOLUME_SNAPSHOT_STATE_CREATING
SNAP_AVAILABLE = pb.VOLUME_SNAPSHOT_STATE_AVAILABLE
SNAP_DELETING = pb.VOLUME_SNAPSHOT_STATE_DELETING
SNAP_ERROR = pb.VOLUME_SNAPSHOT_STATE_ERROR
SNAP_STATE_NAMES = {
    v: k.removeprefix("VOLUME_SNAPSHOT_STATE_").lower() for k, v in pb.VolumeSnapshotState.items()
}

MAX_SIZE_GB = 16 * 1024
# Attached volumes per instance (vdc .. vdr).
MAX_ATTACHED = 16
DEVICES = [f"vd{chr(ord('c') + i)}" for i in range(MAX_ATTACHED)]
BOOT_DEVICE = "vda"
ERROR_INSTANCE = instances_mod.ERROR
# The states in which a volume with an instance_id is attached (or being).
ATTACHED_STATES = (ATTACHING, IN_USE, DETACHING, EXTENDING, ERROR)


@dataclass(frozen=True)
class Quotas:
    volumes: int
    gigabytes: int
    snapshots: int


def _wrong_state(row: Volume, verb: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"cannot {verb} volume {row.name!r}: it is {STATE_NAMES.get(row.state)}",
        reason="VOLUME_WRONG_STATE",
        state=STATE_NAMES.get(row.state),
    )


class Volumes:
    """Volumes and their snapshots. To instances it is an InstanceExtension
    (frees an instance's volumes when it goes, lets nodes read the image blobs
    of volumes made from images) and their BootVolumes; to nodes a
    DesiredStateContributor."""

    def __init__(self, cfg: ControllerConfig, images: Images, placement: Placement, nodes: Nodes) -> None:
        self.images = images
        self.placement = placement
        self.nodes = nodes
        self.ratios = placement.ratios
        self.quotas = Quotas(cfg.quota_volumes, cfg.quota_volume_gb, cfg.quota_volume_snapshots)
        self.sync_period = cfg.instance_sync_seconds
        self._sync = Periodic("volume-sync", self.sync_period, self.sync_once, log)

    # Lookups

    def get(self, caller: Principal, volume_id: str) -> Volume:
        row = store.get_volume(volume_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("volume", volume_id)
        return row

    def find(self, caller: Principal, ref: str) -> Volume:
        """By id or by name (the caller's project's; admins: any, if unique)."""
        if is_uuid(ref):
            return self.get(caller, ref)
        rows = store.find_volume(None if caller.is_admin else caller.project_id, ref)
        if not rows:
            raise not_found("volume", ref)
        if len(rows) > 1:
            raise InvalidArgument(f"more than one volume is named {ref!r}; use its id")
        return rows[0]

    def list(
        self, caller: Principal, page_size: int, page_token: str, name: str, state: int
    ) -> tuple[list[Volume], str]:
        return store.list_volumes(
            page_size, page_token, None if caller.is_admin else caller.project_id, name, state
        )

    def get_snapshot(self, caller: Principal, snapshot_id: str) -> VolumeSnapshot:
        row = store.get_snapshot(snapshot_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("volume snapshot", snapshot_id)
        return row

    def find_snapshot(self, caller: Principal, ref: str) -> VolumeSnapshot:
        if is_uuid(ref):
            return self.get_snapshot(caller, ref)
        rows = store.find_snapshot(None if caller.is_admin else caller.project_id, ref)
        if not rows:
            raise not_found("volume snapshot", ref)
        if len(rows) > 1:
            raise InvalidArgument(f"more than one volume snapshot is named {ref!r}; use its id")
        return rows[0]

    def list_snapshots(
        self, caller: Principal, page_size: int, page_token: str, name: str, volume_id: str
    ) -> tuple[list[VolumeSnapshot], str]:
        if volume_id:
            self.get(caller, volume_id)
        return store.list_snapshots(
            page_size, page_token, None if caller.is_admin else caller.project_id, name, volume_id
        )

    # Create

    @staticmethod
    def _check_size(size_gb: int, allow_zero: bool) -> None:
        if size_gb == 0 and allow_zero:
            return
        if not 1 <= size_gb <= MAX_SIZE_GB:
            raise InvalidArgument(f"size_gb must be between 1 and {MAX_SIZE_GB}, got {size_gb}")

    def _check_quota(self, project_id: str, project_name: str, add_volumes: int, add_gb: int) -> None:
        count, gb = store.project_usage(project_id)
        q = self.quotas
        for what, used, add, limit in (
            ("volumes", count, add_volumes, q.volumes),
            ("volume GiB", gb, add_gb, q.gigabytes),
        ):
            if add and used + add > limit:
                raise ResourceExhausted(
                    f"quota exceeded for {what}: project {project_name or project_id!r} uses {used} of "
                    f"{limit}, this needs {add} more",
                    reason="QUOTA_EXCEEDED",
                    resource=what,
                    limit=limit,
                    used=used,
                )

    def create(
        self,
        caller: Principal,
        name: str,
        description: str,
        size_gb: int,
        image_ref: str,
        snapshot_ref: str,
        request_id: str,
    ) -> Volume:
        if request_id:
            existing = identity_store.idempotent_lookup(request_id, "volume", caller.project_id)
            if existing:
                return self.get(caller, existing)
        if image_ref and snapshot_ref:
            raise InvalidArgument("set at most one of volume.source_image_id and volume.source_snapshot_id")
        self._check_size(size_gb, allow_zero=bool(image_ref or snapshot_ref))
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
            snap = self.find_snapshot(caller, snapshot_ref)
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
        self._check_size(size_gb, allow_zero=False)

        # Rank nodes outside the write lock; the claim inside it re-checks.
        req = Request(0, 0, size_gb, required_node=snap.node_id if snap is not None else "")
        outcome = schedule(self.placement.candidates(), req, self.ratios, "spread")
        ranked = sorted(outcome.ranked, key=lambda c: (-c.free(self.ratios)[2], c.name))
        with write_transaction():
            if request_id:
                existing = identity_store.idempotent_lookup(request_id, "volume", caller.project_id)
                if existing:
                    return self.get(caller, existing)
            image_store.lock_project(caller.project_id)
            self._check_quota(caller.project_id, caller.project_name, 1, size_gb)
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
            if request_id:
                identity_store.idempotent_record(request_id, "volume", caller.project_id, row.id, now)
        self.nodes.registry.notify_threadsafe(chosen)
        log.info("volume placed", extra={"volume": row.id, "node": chosen, "size_gb": size_gb})
        return row

    # Simple changes

    def update(self, caller: Principal, volume_id: str, fields: dict[str, Any]) -> Volume:
        row = self.get(caller, volume_id)
        if fields:
            try:
                with db.atomic():
                    store.update_volume(row.id, fields, clock.now())
            except peewee.IntegrityError:  # the unique (project, name) index
                raise AlreadyExists(
                    f"a volume named {fields.get('name')!r} already exists", reason="VOLUME_EXISTS"
                ) from None
        return self.get(caller, volume_id)

    def _notify(self, node_id: str) -> None:
        self.nodes.registry.notify_threadsafe(node_id)

    def delete(self, caller: Principal, volume_id: str) -> None:
        with write_transaction():
            row = self.get(caller, volume_id)
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
                raise _wrong_state(row, "delete")
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
                raise _wrong_state(row, "delete")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)

    def extend(self, caller: Principal, volume_id: str, new_size_gb: int) -> Volume:
        self._check_size(new_size_gb, allow_zero=False)
        with write_transaction():
            row = self.get(caller, volume_id)
            image_store.lock_project(row.project_id)  # lock order: project, volume, node usage, node
            row = store.get_volume_for_update(row.id) or row
            if new_size_gb <= row.size_gb:
                raise InvalidArgument(
                    f"new_size_gb must be larger than the volume's size ({row.size_gb} GiB), got {new_size_gb}"
                )
            if row.state not in (AVAILABLE, IN_USE):
                raise _wrong_state(row, "extend")
            add = new_size_gb - row.size_gb
            self._check_quota(row.project_id, caller.project_name, 0, add)
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
                raise _wrong_state(row, "extend")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return self.get(caller, volume_id)

    def _disk_cap(self, node_id: str) -> float:
        return self.placement.disk_cap(node_id)

    # Attach and detach

    def attach(self, caller: Principal, volume_id: str, instance_id: str) -> Volume:
        with write_transaction():
            row = self.get(caller, volume_id)
            row = store.get_volume_for_update(row.id) or row
            inst = instances_mod.visible_instance(caller, instance_id)
            if not is_sqlite():
                list(Instance.select(Instance.id).where(Instance.id == inst.id).for_update())
                inst = instances_mod.visible_instance(caller, instance_id)
            if inst.project_id != row.project_id:
                # Another project's instance is as good as missing.
                raise not_found("instance", instance_id)
            if row.state != AVAILABLE:
                raise _wrong_state(row, "attach")
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
                raise _wrong_state(store.get_volume(row.id) or row, "attach")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return self.get(caller, volume_id)

    def detach(self, caller: Principal, volume_id: str) -> Volume:
        with write_transaction():
            row = self.get(caller, volume_id)
            row = store.get_volume_for_update(row.id) or row
            if row.boot:
                raise FailedPrecondition(
                    f"volume {row.name!r} is the boot volume of instance {row.instance_id}; "
                    "it goes back to available when the instance is deleted",
                    reason="VOLUME_IS_BOOT",
                )
            if not row.instance_id or row.state not in (ATTACHING, IN_USE, ERROR):
                raise _wrong_state(row, "detach")
            now = clock.now()
            if store.update_volume_if(row.id, (row.state,), {"state": DETACHING}, now) != 1:
                raise _wrong_state(row, "detach")
            node_store.bump_desired_revision(row.node_id, now)
        self._notify(row.node_id)
        return self.get(caller, volume_id)

    # As an InstanceExtension and BootVolumes (called by Instances)

    def prepare_create(self, caller: Principal, options: Mapping[str, Any]) -> CreateBind | None:
        """A boot volume is bound through BootVolumes (Instances.create asks for it)."""
        return None

    def instance_gone(self, row: Instance) -> set[str]:
        self.release_instance(row.id)
        return set()

    def boot_source(self, caller: Principal, ref: str) -> BootSource:
        row = self.find(caller, ref)
        if row.project_id != caller.project_id:
            raise not_found("volume", ref)
        if row.state != AVAILABLE:
            raise _wrong_state(row, "boot from")
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

    # Snapshots

    def create_snapshot(
        self, caller: Principal, name: str, description: str, volume_ref: str, request_id: str
    ) -> VolumeSnapshot:
        if request_id:
            existing = identity_store.idempotent_lookup(request_id, "volume_snapshot", caller.project_id)
            if existing:
                return self.get_snapshot(caller, existing)
        vol = self.find(caller, volume_ref)
        with write_transaction():
            if request_id:
                existing = identity_store.idempotent_lookup(request_id, "volume_snapshot", caller.project_id)
                if existing:
                    return self.get_snapshot(caller, existing)
            image_store.lock_project(vol.project_id)  # lock order: project, volume, node
            vol = store.get_volume_for_update(vol.id) or vol
            if vol.state not in (AVAILABLE, IN_USE):
                raise _wrong_state(vol, "snapshot")
            used = store.count_snapshots_in_project(vol.project_id)
            if used + 1 > self.quotas.snapshots:
                raise ResourceExhausted(
                    f"quota exceeded for volume snapshots: the project uses {used} of {self.quotas.snapshots}",
                    reason="QUOTA_EXCEEDED",
                    resource="volume snapshots",
                    limit=self.quotas.snapshots,
                    used=used,
                )
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
            if request_id:
                identity_store.idempotent_record(
                    request_id, "volume_snapshot", caller.project_id, row.id, now
                )
        self._notify(vol.node_id)
        return row

    def delete_snapshot(self, caller: Principal, snapshot_id: str) -> None:
        with write_transaction():
            row = self.get_snapshot(caller, snapshot_id)
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

    # Node-facing

    def of_instances(self, instance_ids: list[str]) -> list[Volume]:
        """The volumes attached to (or booting) these instances, in attach order."""
        return store.volumes_of_instances(instance_ids)

    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        return store.uses_image_blob(node_id, sha256)

    def contribute(self, node_row: Node, state: npb.NodeDesiredState) -> None:
        """The volumes part of a node's desired state, and the volumes of the
        instances the instances contributor put there (it runs first)."""
        snaps: dict[str, list[str]] = {}
        for s in store.snapshots_on_node(node_row.id):
            if s.state in (SNAP_CREATING, SNAP_AVAILABLE):
                snaps.setdefault(s.volume_id, []).append(s.id)
        for v in store.volumes_on_node(node_row.id):
            if v.state == DELETING:
                continue
            state.volumes.append(
                npb.DesiredVolume(
                    id=v.id,
                    size_gb=v.size_gb,
                    image_sha256=v.image_sha256,
                    image_format=v.image_format,
                    image_size_bytes=v.image_size_bytes,
                    source_snapshot_id=v.source_snapshot_id,
                    snapshot_ids=snaps.get(v.id, []),
                )
            )
        if not state.instances:
            return
        by_instance: dict[str, list[Volume]] = {}
        for v in store.volumes_of_instances([i.id for i in state.instances]):
            by_instance.setdefault(v.instance_id, []).append(v)
        for inst in state.instances:
            for v in by_instance.get(inst.id, []):
                if v.boot:
                    inst.boot_volume_id = v.id
                    inst.image_sha256 = ""
                elif v.state in ATTACHED_STATES and v.state != DETACHING:
                    inst.volume_ids.append(v.id)

    # Sync: what nodes observe -> volume and snapshot states

    def start_sync(self) -> None:
        self._sync.start()

    def stop_sync(self) -> None:
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
            live = self.nodes.registry.snapshot(node_id)
            # Absence counts only from a node that is connected and has reported.
            up = live is not None and live.connected and live.heard
            statuses = {s.volume_id: s for s in live.volumes} if live is not None else {}
            guests = {g.instance_id: g for g in live.guests} if live is not None else {}
            bump = False
            for row in by_node.get(node_id, []):
                update = self._observe(row, statuses.get(row.id), guests, instances, up)
                if update is None:
                    continue
                with write_transaction():
                    if update == "delete":
                        if store.delete_volume(row.id):
                            store.release_disk(node_id, row.claimed_gb)
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
                        store.delete_snapshot(snap.id)
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

    @staticmethod
    def _observe(
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
