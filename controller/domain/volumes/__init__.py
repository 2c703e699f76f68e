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

from controller.domain.volumes.facade import Volumes

__all__ = ["Volumes"]
