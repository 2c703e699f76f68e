"""A node's desired state, assembled from the features that place resources
on nodes, in the order the composition root gives them."""

from __future__ import annotations

from collections.abc import Sequence

from controller.db import nodes as store
from controller.db.database import db
from controller.domain.extensions import DesiredStateContributor
from controller.errors import FailedPrecondition, Unauthenticated
from kumo.v1 import node_agent_pb2 as pb


class DesiredStates:
    def __init__(self, contributors: Sequence[DesiredStateContributor]) -> None:
        self.contributors = tuple(contributors)

    def for_node(self, node_id: str) -> tuple[int, pb.NodeDesiredState]:
        """The node's desired state and its revision, read in one transaction.

        A fenced node gets none: this read, which every session makes right
        after it opened and again on each change, is what makes fencing and
        session admission exclusive (Nodes.fence)."""
        with db.atomic():
            row = store.get_node(node_id)
            if row is None:
                raise Unauthenticated("this node has been deleted", reason="NODE_DELETED")
            if row.fenced:
                raise fenced_error()
            state = pb.NodeDesiredState(enabled=row.enabled, rotate_certificate=row.cert_rotate_requested)
            for contributor in self.contributors:
                contributor.contribute(row, state)
            return row.desired_revision, state


def fenced_error() -> FailedPrecondition:
    """What a fenced node's session is told (at its hello, or when it is closed)."""
    return FailedPrecondition(
        "this node is fenced: an admin declared it powered off and its guests may run elsewhere; "
        "it gets no session until an admin re-admits it (kumo node unfence)",
        reason="NODE_FENCED",
    )
