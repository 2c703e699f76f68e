"""The typed extension points through which one feature extends another.

Each is a Protocol that a feature's domain object implements; the composition
root (controller/assembly.py) hands the implementations to the feature they
extend, in the order given there. Nothing registers itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from controller.auth.principal import Principal
from controller.db.models import Instance
from controller.db.nodes import NodeHead
from kumo.v1 import node_agent_pb2 as npb

# Runs inside the transaction that inserts the instance (its failure rolls the
# whole create back); returns the ids of other nodes whose desired revision it
# bumped, told after the commit.
CreateBind = Callable[[Instance], set[str]]


class InstanceExtension(Protocol):
    """A feature that gives instances more (NICs, volumes)."""

    def prepare_create(self, caller: Principal, options: Mapping[str, Any]) -> CreateBind | None:
        """Resolves and checks what the create's extra `options` ask for, before
        the write transaction (so its errors change nothing); None: nothing to bind."""
        ...

    def instance_gone(self, row: Instance) -> set[str]:
        """In the transaction that finally deletes the instance's row: frees what
        the feature gave it; returns the nodes whose desired revision it bumped."""
        ...

    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        """Whether this feature's resources on the node use the image blob."""
        ...


class MoveNeeds(NamedTuple):
    """What a feature says about moving an instance to another node:
    `blocker` (why it cannot move, "" if it can), the storage `backends` the
    new node must reach, and whether its root disk comes along
    (`keeps_root`: it boots from a volume on a shared backend)."""

    blocker: str = ""
    backends: tuple[str, ...] = ()
    keeps_root: bool = False


class InstanceMoves(Protocol):
    """A feature whose resources follow an instance to another node (ports,
    volumes): in a cold migration, a resize elsewhere (domain/moves/) and an
    evacuation (domain/evacuation.py)."""

    def move_needs(self, row: Instance) -> MoveNeeds: ...

    def lock_moving(self, row: Instance) -> None:
        """First in the move's write transaction, before the claim on the new
        node: locks the rows `instance_moved` will write that other paths lock
        before node usage (volumes: project, volume, node usage, node)."""
        ...

    def instance_moved(self, row: Instance, source: str, target: str, now: float) -> set[str]:
        """In the transaction that moves the instance's row to `target`: moves
        what the feature gave it; returns the nodes whose desired revision it
        bumped."""
        ...


class UnfinishedMoves(Protocol):
    """A feature that moves instances over time (live migration, cold moves):
    an evacuation of a lost node first ends, as failed, its moves from or to
    that node, as a real cloud does: the claim on the other node goes, and
    the instance stays on the node it is recorded on (evacuated next when
    that is the lost one)."""

    def end_moves_on(self, lost_node: str) -> int:
        """Ends the unfinished moves touching `lost_node` that cannot go on
        without it (each in its own transaction); returns how many."""
        ...


@dataclass(frozen=True)
class BootSource:
    """What a create needs to boot from a volume: the volume, and an image-like
    record with no blob (no overlay is made)."""

    volume: Any
    image: Any
    # Where the instance may run: the volume's node (local backend), or any
    # node that reaches its shared backend.
    required_node: str = ""
    required_backend: str = ""


class BootVolumes(Protocol):
    """Volumes an instance can boot from (CreateInstance's boot_volume)."""

    def boot_source(self, caller: Principal, ref: str) -> BootSource: ...

    def lock(self, volume_id: str) -> None:
        """Locks the volume early in the create's write transaction (lock order:
        project, volume, node usage, node)."""
        ...

    def bind_boot(self, volume_id: str, instance_id: str, now: float, node_id: str = "") -> None:
        """In the create's transaction: the volume becomes the instance's boot
        volume (on `node_id`, the instance's node), or the whole create is
        rolled back."""
        ...


class DesiredStateContributor(Protocol):
    """A feature that places resources on nodes fills its part of a node's
    desired state. Contributors run in a fixed order, inside the read
    transaction that also reads the node's revision; a later one may add to
    entries an earlier one made (volumes and networks add to the instances')."""

    def contribute(self, node: NodeHead, state: npb.NodeDesiredState) -> None: ...


def combined_needs(features: Sequence[InstanceMoves], row: Instance) -> MoveNeeds:
    """What every feature says about moving the instance, as one: the first
    blocker, every backend the new node must reach, whether the root disk
    comes along."""
    blocker, backends, keeps_root = "", set(), False
    for ext in features:
        needs = ext.move_needs(row)
        blocker = blocker or needs.blocker
        backends |= set(needs.backends)
        keeps_root = keeps_root or needs.keeps_root
    return MoveNeeds(blocker, tuple(sorted(backends)), keeps_root)


class InUseCheck(NamedTuple):
    """Counts a kind of resource that keeps a project or a node from being
    deleted; `remedy` tells the caller what to do about them."""

    kind: str
    count: Callable[[str], int]
    remedy: str = "delete them first"
