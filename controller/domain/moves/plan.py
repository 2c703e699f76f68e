"""Pure parts of a move: its phases, the token a node echoes once a phase is
applied, and the claim and quota arithmetic (no database, no clock)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.db.models import Instance, InstanceMove

MIGRATE = "migrate"
RESIZE = "resize"

# The source stops the guest (and uploads a node-local root disk).
STOPPING = "stopping"
# The instance is on its new node (or has its new sizes) and starts there.
ARRIVING = "arriving"
# A resize waits for ConfirmResize or RevertResize (VERIFY_RESIZE).
VERIFY = "verify"
# RevertResize: back to the old node and sizes, with the disk from before.
REVERTING = "reverting"


@dataclass(frozen=True)
class Sizes:
    vcpus: int
    ram_mb: int
    disk_gb: int

    def minus(self, other: Sizes) -> Sizes:
        return Sizes(self.vcpus - other.vcpus, self.ram_mb - other.ram_mb, self.disk_gb - other.disk_gb)


def old_sizes(move: InstanceMove) -> Sizes:
    return Sizes(move.old_vcpus, move.old_ram_mb, move.old_disk_gb)


def new_sizes(move: InstanceMove) -> Sizes:
    return Sizes(move.new_vcpus, move.new_ram_mb, move.new_disk_gb)


def token(move: InstanceMove) -> str:
    """What DesiredInstance.move_step carries and GuestStatus.move_step echoes."""
    return f"{move.id}:{move.phase}"


def extra_quota(move: InstanceMove, row: Instance) -> dict[str, int]:
    """The quota a move holds beyond what the instance row's sizes count: a
    resize charges its growth at the start, so the project holds the larger of
    the old and new sizes until the move ends."""
    return {
        "vcpus": max(move.old_vcpus, move.new_vcpus) - row.vcpus,
        "ram_mb": max(move.old_ram_mb, move.new_ram_mb) - row.ram_mb,
    }


def growth_quota(old: Sizes, new: Sizes) -> dict[str, int]:
    return {"vcpus": max(0, new.vcpus - old.vcpus), "ram_mb": max(0, new.ram_mb - old.ram_mb)}
