"""A node's desired state, assembled from the features that place resources
on nodes, in the order the composition root gives them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack

from controller.db import nodes as store
from controller.db.database import db
from controller.domain.extensions import DesiredStateContributor
from controller.errors import FailedPrecondition, KumoError, Unauthenticated
from kumo.v1 import node_agent_pb2 as pb

# What a batch read gives per node: (revision, state), or why it has none.
Built = tuple[int, pb.NodeDesiredState] | KumoError


class DesiredStates:
    def __init__(
        self,
        contributors: Sequence[DesiredStateContributor],
        sharing: Sequence[Callable[[], AbstractContextManager[None]]] = (),
    ) -> None:
        """`sharing`: context managers entered around a batch of nodes read in
        one transaction, in which a contributor reads once what several nodes
        need (a network's ports, a group's members; see networks/projection.py)."""
        self.contributors = tuple(contributors)
        self.sharing = tuple(sharing)

    def for_node(self, node_id: str) -> tuple[int, pb.NodeDesiredState]:
        """The node's desired state and its revision, read in one transaction.

        A fenced node gets none: this read, which every session makes right
        after it opened and again on each change, is what makes fencing and
        session admission exclusive (Nodes.fence)."""
        built = self.for_nodes([node_id])[node_id]
        if isinstance(built, KumoError):
            raise built
        return built

    def for_nodes(self, node_ids: Iterable[str]) -> dict[str, Built]:
        """Each node's (revision, desired state), all read in one transaction
        (what the nodes share read once), or the error its session gets
        (deleted, fenced)."""
        out: dict[str, Built] = {}
        with db.atomic(), ExitStack() as stack:
            for share in self.sharing:
                stack.enter_context(share())
            for node_id in dict.fromkeys(node_ids):
                out[node_id] = self._build(node_id)
        return out

    def _build(self, node_id: str) -> Built:
        row = store.node_head(node_id)
        if row is None:
            return Unauthenticated("this node has been deleted", reason="NODE_DELETED")
        if row.fenced:
            return fenced_error()
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
