"""A node's desired state, assembled from the features that place resources
on nodes, in the order the composition root gives them."""

from __future__ import annotations

from collections.abc import Sequence

from controller.db import nodes as store
from controller.db.database import db
from controller.domain.extensions import DesiredStateContributor
from controller.errors import Unauthenticated
from kumo.v1 import node_agent_pb2 as pb


class DesiredStates:
    def __init__(self, contributors: Sequence[DesiredStateContributor]) -> None:
        self.contributors = tuple(contributors)

    def for_node(self, node_id: str) -> tuple[int, pb.NodeDesiredState]:
        """The node's desired state and its revision, read in one transaction."""
        with db.atomic():
            row = store.get_node(node_id)
            if row is None:
                raise Unauthenticated("this node has been deleted", reason="NODE_DELETED")
            state = pb.NodeDesiredState(enabled=row.enabled, rotate_certificate=row.cert_rotate_requested)
            for contributor in self.contributors:
                contributor.contribute(row, state)
            return row.desired_revision, state
