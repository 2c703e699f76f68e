"""The volume and snapshot states, limits and the checks that need nothing but
their arguments."""

from __future__ import annotations

from controller.db.models import Volume
from controller.domain import instances as instances_mod
from controller.errors import FailedPrecondition, InvalidArgument
from kumo.v1 import volume_pb2 as pb

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


def wrong_state(row: Volume, verb: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"cannot {verb} volume {row.name!r}: it is {STATE_NAMES.get(row.state)}",
        reason="VOLUME_WRONG_STATE",
        state=STATE_NAMES.get(row.state),
    )


def check_size(size_gb: int, allow_zero: bool) -> None:
    if size_gb == 0 and allow_zero:
        return
    if not 1 <= size_gb <= MAX_SIZE_GB:
        raise InvalidArgument(f"size_gb must be between 1 and {MAX_SIZE_GB}, got {size_gb}")
