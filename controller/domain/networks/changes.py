"""How a network change reaches the nodes: bump the desired revision of each
node concerned inside the write transaction, tell their sessions after the
commit (a session told before the commit could read the old state)."""

from __future__ import annotations

from collections.abc import Iterable

from controller import clock
from controller.db import networks as store
from controller.db import nodes as node_store
from controller.domain.node_registry import NodeRegistry


class NodeChanges:
    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry

    def bump(self, node_ids: Iterable[str]) -> set[str]:
        """Bumps the nodes' desired revision (inside the write transaction)."""
        out = set(node_ids)
        node_store.bump_desired_revisions(out, clock.now())
        return out

    def bump_nodes_with_ports(self, network_ids: Iterable[str], group_ids: Iterable[str]) -> set[str]:
        """Bumps the nodes with ports on the networks or in the groups (see
        store.nodes_with_ports), inside the write transaction; returns them."""
        return store.bump_nodes_with_ports(network_ids, group_ids, clock.now())

    def notify(self, node_ids: Iterable[str]) -> None:
        """After the commit: each node's session sends its new desired state."""
        self.registry.notify_many_threadsafe(node_ids)
