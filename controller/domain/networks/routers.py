"""Routers: a project's way out. A router has an external gateway (a port on
an external network holding the router's address: SNAT for its subnets) and
interfaces on tenant subnets (a subnet is on at most one router: the key of
router_interface decides races). A tenant network without a router has no
way out."""

from __future__ import annotations

import ipaddress
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import Network, Router, Subnet
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.domain.networks.addresses import check_no_overlap
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.ports import Ports
from controller.domain.networks.snat import Snat
from controller.domain.networks.topology import Topology
from controller.errors import AlreadyExists, FailedPrecondition, not_found

GATEWAY = "router_gateway"


def external_network(net: Network) -> Network:
    if not net.external:
        raise FailedPrecondition(
            f"network {net.name!r} is not an external network", reason="NETWORK_NOT_EXTERNAL"
        )
    return net


class Routers:
    def __init__(self, changes: NodeChanges, topology: Topology, ports: Ports, snat: Snat) -> None:
        self.changes = changes
        self.topology = topology
        self.ports = ports
        self.snat = snat

    def get_router(self, caller: Principal, router_id: str) -> Router:
        row = router_store.get_router(router_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("router", router_id)
        return row

    def _locked(self, caller: Principal, router_id: str) -> Router:
        row = router_store.lock_router(router_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("router", router_id)
        return row

    def list_routers(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[Router], str]:
        return router_store.list_routers(
            page_size, page_token, name, None if caller.is_admin else caller.project_id
        )

    def details(self, rows: list[Router]) -> tuple[dict[str, list[Subnet]], dict[str, tuple[str, str]]]:
        """Per router: its interface subnets; (network id, address) of its
        gateway. A fixed number of queries for a page of routers."""
        interfaces = router_store.interfaces_of(r.id for r in rows)
        gw_ports = [r.gateway_port_id for r in rows if r.gateway_port_id]
        networks = router_store.port_networks(gw_ports)
        ips = store.port_ips(gw_ports)
        gateways = {
            r.id: (
                networks.get(r.gateway_port_id, ""),
                next(iter(ip for _, ip in ips.get(r.gateway_port_id, [])), ""),
            )
            for r in rows
            if r.gateway_port_id
        }
        return interfaces, gateways

    def _nodes(self, router_id: str) -> set[str]:
        """The nodes whose desired state holds the router: those with ports on its subnets' networks."""
        nets = {s.network_id for s in router_store.interfaces_of([router_id]).get(router_id, [])}
        return store.nodes_with_ports(network_ids=nets)

    def _set_gateway(self, caller: Principal, row: Router, network_id: str) -> None:
        """Inside the write transaction: the gateway port on the network ("" clears
        it), and the nodes' SNAT addresses on it."""
        old = store.get_port(row.gateway_port_id) if row.gateway_port_id else None
        if old is not None and old.network_id == network_id:
            return
        if old is not None and router_store.floating_ips_of_router(row.id):
            raise FailedPrecondition(
                f"router {row.name!r} routes floating IPs; disassociate them before changing its gateway",
                reason="ROUTER_IN_USE",
            )
        port_id = None
        if network_id:
            net = external_network(self.topology.get_network(caller, network_id))
            if not store.subnets_of([net.id]):
                raise FailedPrecondition(
                    f"external network {net.name!r} has no subnet to take an address from",
                    reason="EXTERNAL_NETWORK_NO_SUBNET",
                )
            port_id = self.ports.insert_port(
                row.project_id, net, [], [], device_owner=GATEWAY, device_id=row.id
            ).id
        router_store.update_router(row.id, {"gateway_port": port_id}, clock.now())
        self.snat.sync([row.id])
        if old is not None:
            store.delete_port(old.id)

    def create_router(
        self, caller: Principal, fields: dict[str, Any], gateway_network_id: str, request_key: RequestKey
    ) -> Router:
        if gateway_network_id:
            external_network(self.topology.get_network(caller, gateway_network_id))

        def make() -> Router:
            now = clock.now()
            row = router_store.insert_router(
                {
                    **fields,
                    "id": clock.new_id(),
                    "project": caller.project_id,
                    "create_time": now,
                    "update_time": now,
                }
            )
            if gateway_network_id:
                self._set_gateway(caller, row, gateway_network_id)
            return row

        made = idempotent_create(
            "router",
            caller.project_id,
            request_key,
            make,
            lambda i: self.get_router(caller, i),
            lambda r: r.id,
        )
        return self.get_router(caller, made.id)

    def update_router(
        self, caller: Principal, router_id: str, fields: dict[str, Any], gateway_network_id: str | None
    ) -> Router:
        with write_transaction():
            row = self._locked(caller, router_id)
            nodes: set[str] = set()
            if gateway_network_id is not None:
                self._set_gateway(caller, row, gateway_network_id)
                nodes = self.changes.bump(self._nodes(row.id))
            if fields:
                router_store.update_router(row.id, fields, clock.now())
        self.changes.notify(nodes)
        return self.get_router(caller, router_id)

    def delete_router(self, caller: Principal, router_id: str) -> None:
        with write_transaction():
            row = self._locked(caller, router_id)
            if n := router_store.count_interfaces(row.id):
                raise FailedPrecondition(
                    f"router {row.name!r} has {n} interface(s); remove them first", reason="ROUTER_IN_USE"
                )
            self._set_gateway(caller, row, "")
            router_store.delete_router(row.id)

    def _interface_subnet(self, caller: Principal, row: Router, subnet_id: str) -> Subnet:
        sub = self.topology.get_subnet(caller, subnet_id)
        net = store.get_network(sub.network_id)
        assert net is not None
        if net.external:
            raise FailedPrecondition(
                f"subnet {sub.name!r} is on an external network; set it as the router's gateway instead",
                reason="NETWORK_EXTERNAL",
            )
        if net.project_id != row.project_id and not caller.is_admin:
            raise not_found("subnet", subnet_id)
        return sub

    def add_interface(self, caller: Principal, router_id: str, subnet_id: str) -> Router:
        self.get_router(caller, router_id)
        with write_transaction():
            row = self._locked(caller, router_id)
            sub = self._interface_subnet(caller, row, subnet_id)
            if not sub.gateway_ip:
                raise FailedPrecondition(
                    f"subnet {sub.name!r} has no gateway address for the router", reason="SUBNET_NO_GATEWAY"
                )
            if router_store.interface_router(sub.id):
                raise AlreadyExists(f"subnet {sub.name!r} is already on a router", reason="SUBNET_ON_ROUTER")
            check_no_overlap(sub.cidr, router_store.interfaces_of([row.id]).get(row.id, []))
            if not router_store.add_interface(row.id, sub.id):
                raise AlreadyExists(f"subnet {sub.name!r} is already on a router", reason="SUBNET_ON_ROUTER")
            # The router's first node may change: every node of the router hears.
            self.snat.sync([row.id])
            nodes = self.changes.bump(self._nodes(row.id))
        self.changes.notify(nodes)
        return self.get_router(caller, router_id)

    def remove_interface(self, caller: Principal, router_id: str, subnet_id: str) -> Router:
        with write_transaction():
            row = self._locked(caller, router_id)
            sub = self.topology.get_subnet(caller, subnet_id)
            if router_store.interface_router(sub.id) != row.id:
                raise not_found("router interface", subnet_id)
            if router_store.floating_ips_on_subnet_ports(sub.id):
                raise FailedPrecondition(
                    f"ports on subnet {sub.name!r} have floating IPs through this router; disassociate them first",
                    reason="ROUTER_INTERFACE_IN_USE",
                )
            router_store.remove_interface(row.id, sub.id)
            self.snat.sync([row.id])
            nodes = self.changes.bump(
                self._nodes(row.id) | store.nodes_with_ports(network_ids=[sub.network_id])
            )
        self.changes.notify(nodes)
        return self.get_router(caller, router_id)

    def router_for(self, subnet_id: str, external_network_id: str) -> Router | None:
        """The router that routes the subnet out to the external network, if any."""
        rid = router_store.interface_router(subnet_id)
        row = router_store.get_router(rid) if rid else None
        if row is None or not row.gateway_port_id:
            return None
        gw = store.get_port(row.gateway_port_id)
        return row if gw is not None and gw.network_id == external_network_id else None


def prefix_of(cidr: str) -> int:
    return ipaddress.ip_network(cidr, strict=False).prefixlen
