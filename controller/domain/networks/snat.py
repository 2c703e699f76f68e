"""Distributed SNAT: every node running guests on a router's subnets SNATs
them itself, so they get out whichever node they run on. The first of those
nodes (by id) uses the router's own gateway address; each other one holds an
address of its own from the external network's pool (a port, device_owner
`router_snat`, keyed by (router, node)). `sync` makes the allocations match
where the router's guests run, inside the write transaction of whatever
changed that: an instance made or gone, an interface added or removed, the
gateway set, moved or cleared."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import db
from controller.domain.networks.ports import Ports
from controller.errors import ResourceExhausted
from kumo.v1 import compute_pb2 as cpb

SNAT = "router_snat"
# The node runs no guest of an instance in these states, so none of its ports.
NOT_RUNNING = (cpb.INSTANCE_STATE_DELETING, cpb.INSTANCE_STATE_ERROR)

log = logging.getLogger(__name__)


class _Taken(Exception):
    """Another transaction gave the node its address meanwhile."""


def snat_nodes(nodes: set[str]) -> list[str]:
    """Of the nodes running a router's guests, those that need an address of
    their own: all but the first, which uses the router's."""
    return sorted(nodes)[1:]


class Snat:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def sync(self, router_ids: Iterable[str]) -> set[str]:
        """Inside the write transaction: gives each node that needs one an
        address of the router, and takes it from the nodes that no longer do
        (or that hold one on a network that is no longer the gateway's).
        Returns the nodes whose SNAT changed (to bump). A full pool leaves the
        node without (logged; its guests' way out is a floating IP) and is
        tried again at the next change of the router's nodes."""
        ids = set(router_ids)
        if not ids:
            return set()
        rows = {r.id: r for r in router_store.routers_by_id(ids)}
        running = router_store.nodes_of_routers(ids, NOT_RUNNING)
        have = router_store.snat_ports(ids)
        held = router_store.port_networks(p for by_node in have.values() for p in by_node.values())
        gateways = router_store.port_networks(r.gateway_port_id for r in rows.values() if r.gateway_port_id)
        changed: set[str] = set()
        for rid in sorted(ids):
            row = rows.get(rid)
            ext_id = gateways.get(row.gateway_port_id, "") if row is not None and row.gateway_port_id else ""
            wanted = set(snat_nodes(running.get(rid, set()))) if ext_id else set()
            for node_id, port_id in sorted(have.get(rid, {}).items()):
                if node_id not in wanted or held.get(port_id) != ext_id:
                    router_store.delete_snat(rid, node_id)
                    store.delete_port(port_id)
                    changed.add(node_id)
            kept = {n for n, p in have.get(rid, {}).items() if n in wanted and held.get(p) == ext_id}
            missing = sorted(wanted - kept)
            if not missing or row is None:
                continue
            net = store.get_network(ext_id)
            if net is None:
                continue
            for node_id in missing:
                try:
                    with db.atomic():
                        port = self.ports.insert_port(
                            row.project_id, net, [], [], device_owner=SNAT, device_id=rid
                        )
                        if not router_store.insert_snat(rid, node_id, port.id):
                            raise _Taken
                    changed.add(node_id)
                except ResourceExhausted:
                    log.warning("no SNAT address left for a node", extra={"router": rid, "node": node_id})
                except _Taken:
                    pass
        return changed

    def for_networks(self, network_ids: Iterable[str]) -> set[str]:
        """`sync` for the routers of the networks (an instance's NICs changed)."""
        return self.sync(router_store.routers_of_networks(network_ids))
