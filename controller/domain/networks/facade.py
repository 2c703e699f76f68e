"""`Networks`, the one object the rest of the controller holds for the
feature: it builds the parts and hands out their methods, so callers need
not know which part does what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db.models import Instance
from controller.domain.extensions import CreateBind, MoveNeeds
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.floating_ips import FloatingIps
from controller.domain.networks.ipam import Ipam
from controller.domain.networks.ports import Ports
from controller.domain.networks.projection import NodeProjection
from controller.domain.networks.routers import Routers
from controller.domain.networks.security_groups import SecurityGroups
from controller.domain.networks.snat import Snat
from controller.domain.networks.topology import Topology
from controller.domain.nodes import Nodes
from controller.domain.quotas import Quotas


class Networks:
    """Networks, subnets, ports, security groups, routers, floating IPs and the networks part of a
    node's desired state, as one facade over its parts."""

    def __init__(self, nodes: Nodes, quotas: Quotas, dns_domain: str = "kumo") -> None:
        self.nodes = nodes
        changes = self.changes = NodeChanges(nodes.registry)
        ipam = Ipam()
        self.topology = Topology(changes, ipam, quotas)
        self.groups = SecurityGroups(changes, quotas)
        self.ports = Ports(changes, ipam, self.topology, self.groups, quotas)
        self.snat = Snat(self.ports)
        self.routers = Routers(changes, self.topology, self.ports, self.snat)
        self.floating_ips = FloatingIps(changes, self.topology, self.ports, self.routers, quotas)
        self.projection = NodeProjection(nodes.registry, changes, dns_domain)

        # Networks and subnets
        self.get_network = self.topology.get_network
        self.find_network = self.topology.find_network
        self.list_networks = self.topology.list_networks
        self.create_network = self.topology.create_network
        self.update_network = self.topology.update_network
        self.delete_network = self.topology.delete_network
        self.subnet_ids = self.topology.subnet_ids
        self.get_subnet = self.topology.get_subnet
        self.subnet_project = self.topology.subnet_project
        self.list_subnets = self.topology.list_subnets
        self.create_subnet = self.topology.create_subnet
        self.update_subnet = self.topology.update_subnet
        self.delete_subnet = self.topology.delete_subnet
        # Security groups
        self.get_group = self.groups.get_group
        self.find_group = self.groups.find_group
        self.list_groups = self.groups.list_groups
        self.rules = self.groups.rules
        self.create_group = self.groups.create_group
        self.update_group = self.groups.update_group
        self.delete_group = self.groups.delete_group
        self.create_rule = self.groups.create_rule
        self.delete_rule = self.groups.delete_rule
        # Ports, and the NICs of instances
        self.get_port = self.ports.get_port
        self.list_ports = self.ports.list_ports
        self.port_details = self.ports.port_details
        self.create_port = self.ports.create_port
        self.update_port = self.ports.update_port
        self.delete_port = self.ports.delete_port
        self.nics = self.ports.nics
        # Routers and floating IPs
        self.get_router = self.routers.get_router
        self.list_routers = self.routers.list_routers
        self.router_details = self.routers.details
        self.create_router = self.routers.create_router
        self.update_router = self.routers.update_router
        self.delete_router = self.routers.delete_router
        self.add_router_interface = self.routers.add_interface
        self.remove_router_interface = self.routers.remove_interface
        self.get_floating_ip = self.floating_ips.get_floating_ip
        self.list_floating_ips = self.floating_ips.list_floating_ips
        self.port_floating_ips = self.floating_ips.addresses_of_ports
        self.create_floating_ip = self.floating_ips.create_floating_ip
        self.update_floating_ip = self.floating_ips.update_floating_ip
        self.delete_floating_ip = self.floating_ips.delete_floating_ip
        # The node's desired state
        self.tunnel_ip = self.projection.tunnel_ip
        self.tunnel_moved = self.projection.tunnel_moved
        self.contribute = self.projection.contribute

    # As an InstanceExtension (domain/extensions.py)

    def prepare_create(self, caller: Principal, options: Mapping[str, Any]) -> CreateBind | None:
        """The NICs of a create, and the SNAT address its node may now need."""
        bind = self.ports.prepare_nics(caller, options)
        if bind is None:
            return None

        def bind_and_snat(row: Instance) -> set[str]:
            nodes, nets = bind(row)
            return nodes | self.changes.bump(self.snat.for_networks(nets))

        return bind_and_snat

    def instance_gone(self, row: Instance) -> set[str]:
        """As an InstanceExtension: its ports go, and the SNAT address its node
        no longer needs."""
        nets = {p.network_id for p in store.ports_of_instances([row.id]).get(row.id, [])}
        nodes = self.ports.instance_gone(row)
        return nodes | self.changes.bump(self.snat.for_networks(nets))

    @staticmethod
    def move_needs(row: Instance) -> MoveNeeds:
        """As an InstanceMoves: ports move anywhere (same addresses)."""
        return MoveNeeds()

    @staticmethod
    def lock_moving(row: Instance) -> None:
        """As an InstanceMoves: nothing to lock first (every path writes ports
        after node usage and nodes, as a move does)."""

    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        return False  # ports use no image blobs

    def instance_moved(self, row: Instance, source: str, target: str, now: float) -> set[str]:
        """As an InstanceMoves: the ports follow the instance (their binding is
        its node), and the SNAT addresses follow where its networks' guests now
        run (the new node may need one, the old one may not any more)."""
        nets = {p.network_id for p in store.ports_of_instances([row.id]).get(row.id, [])}
        nodes = self.ports.instance_moved(row, source, target, now)
        return nodes | self.changes.bump(self.snat.for_networks(nets))
