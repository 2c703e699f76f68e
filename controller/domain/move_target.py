"""Claiming a target node for an instance that leaves its node: live
migration, cold migration and a resize that must move all go through here.
The filters of a create (sizes, the storage backend the instance needs, its
server group's affinity or anti-affinity with the other members), never its
own node; ranked outside the write lock, then the best node that still fits
is claimed in the caller's write transaction (a conditional UPDATE, so racing
moves and creates for the last room never both win). Evacuations too: they
rank the nodes other than the lost one the same way.

Before the claim the features whose rows follow the instance lock them
(InstanceMoves.lock_moving): the order volume, then node usage, that a
create and an attach use, so a move and a boot-from-volume create of the
same volume cannot deadlock on PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from controller.db import compute as compute_store
from controller.db import instances as instance_store
from controller.db.database import is_sqlite
from controller.db.models import Instance, ServerGroup
from controller.domain.extensions import InstanceMoves
from controller.domain.placement import Placement
from controller.domain.scheduler import Outcome, Request, schedule
from kumo.v1 import compute_pb2 as cpb


def group_request(group: ServerGroup, req: Request, lock: bool = False, exclude: str = "") -> Request:
    """`req` with the group's policy and the nodes of its members (but
    `exclude`, the instance being placed again). `lock`: in the write
    transaction, serialises placements within the group (PostgreSQL)."""
    if lock and not is_sqlite():
        list(ServerGroup.select(ServerGroup.id).where(ServerGroup.id == group.id).for_update())
    nodes = frozenset(node for iid, node in instance_store.group_members(group.id) if iid != exclude)
    policy = "affinity" if group.policy == cpb.SERVER_GROUP_POLICY_AFFINITY else "anti-affinity"
    return replace(req, group_policy=policy, group_nodes=nodes)


@dataclass(frozen=True)
class Ranked:
    """A move's ranking: what it asks of a node, and the nodes in order."""

    row: Instance
    req: Request
    outcome: Outcome
    group: ServerGroup | None


class MoveTargets:
    def __init__(self, placement: Placement, moves: Sequence[InstanceMoves] = ()) -> None:
        self.placement = placement
        self.moves = tuple(moves)

    def rank(
        self,
        row: Instance,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
        required: str = "",
        backend: str = "",
        live: bool = False,
        also_backends: Collection[str] = (),
    ) -> Ranked:
        """Outside the write lock. `live`: the target must also take live
        migrations (and the source is rejected by name, SourceNodeFilter);
        a cold move ranks only the other nodes. `also_backends`: storage
        backends the target must have besides `backend` (the instance's other
        shared volumes)."""
        p = self.placement
        req = Request(
            vcpus,
            ram_mb,
            disk_gb,
            required_node=required,
            required_backend=backend,
            migrating_from=row.node_id if live else "",
        )
        group = compute_store.get_server_group(row.server_group_id) if row.server_group_id else None
        if group is not None:
            req = group_request(group, req, exclude=row.id)
        candidates = p.candidates()
        if not live:
            candidates = [c for c in candidates if c.node_id != row.node_id]
        if also_backends:
            need = set(also_backends)
            candidates = [c for c in candidates if need <= set(c.storage_backends)]
        return Ranked(row, req, schedule(candidates, req, p.ratios, p.weigher), group)

    def claim(self, ranked: Ranked) -> str:
        """In the caller's write transaction: the best ranked node that still
        fits (and still suits the group) is claimed; NO_VALID_HOST otherwise."""
        for ext in self.moves:
            ext.lock_moving(ranked.row)
        req = ranked.req
        if ranked.group is not None:
            req = group_request(ranked.group, req, lock=True, exclude=ranked.row.id)
        return self.placement.claim(ranked.outcome, req)

    def placed(self, ranked: Ranked) -> None:
        """After the claim's transaction committed: the placement's metrics."""
        self.placement.record("instance", ranked.outcome, True)
