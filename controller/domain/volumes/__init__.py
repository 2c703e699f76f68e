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
creates cannot overcommit a node; snapshots claim nothing (documented).

The parts, each a module here: `states` (states, limits, pure checks),
`lookups` (by id or name), `lifecycle` (the state machine above and boot
volumes), `snapshots`, `projection` (the volumes part of a node's desired
state), `sync` (what nodes observe -> states); `facade` has `Volumes`, which
builds them."""

from __future__ import annotations

from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import volumes as store
from controller.db.models import Instance
from controller.domain import desired_state
from controller.domain import instances as instances_mod
from controller.domain.identity import PROJECT_IN_USE_CHECKS
from controller.domain.nodes import NODE_IN_USE_CHECKS
from controller.domain.volumes.facade import Volumes
from kumo.v1 import node_pb2 as npb

__all__ = ["Volumes", "register_hooks"]


def _replace(hooks: list[Any], fn: Any) -> None:
    """Puts fn in a hook list, replacing one of the same name (a controller
    made again in the same process brings new domain objects)."""
    hooks[:] = [h for h in hooks if getattr(h, "__name__", "") != fn.__name__]
    hooks.append(fn)


def register_hooks(volumes: Volumes) -> None:
    """Wires volumes into the other features' extension points."""

    def contribute_volumes(node_row: Any, state: npb.NodeDesiredState) -> None:
        volumes.contribute(node_row, state)

    def volume_blob_reader(node_id: str, sha256: str) -> bool:
        return volumes.may_read_blob(node_id, sha256)

    def boot_volume_hook(caller: Principal, options: Any) -> Any:
        ref = options.get("boot_volume", "")
        if not ref:
            return None
        vol = volumes.find(caller, ref)

        def bind(row: Instance) -> set[str]:
            volumes.bind_boot(vol.id, row.id, clock.now())
            return set()

        return bind

    def free_instance_volumes(row: Instance) -> set[str]:
        volumes.release_instance(row.id)
        return set()

    _replace(desired_state.CONTRIBUTORS, contribute_volumes)
    _replace(instances_mod.BLOB_READERS, volume_blob_reader)
    _replace(instances_mod.CREATE_HOOKS, boot_volume_hook)
    _replace(instances_mod.GONE_HOOKS, free_instance_volumes)
    volumes.instances.boot_volumes = volumes
    if not any(kind == "volume" for kind, _ in PROJECT_IN_USE_CHECKS):
        PROJECT_IN_USE_CHECKS.append(("volume", store.count_in_project))
        PROJECT_IN_USE_CHECKS.append(("volume snapshot", store.count_snapshots_in_project))
        NODE_IN_USE_CHECKS.append(("volume", store.count_on_node))
