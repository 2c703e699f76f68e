"""Floating IPs: an address of an external network's pool (held by a port
on it, so IPAM and its race safety are the ports'), given to at most one
port of the project at a time, and a port has at most one. Associating is a
compare-and-set on the floating IP's current port, so two requests giving one
floating IP to two ports cannot both win. The node where the port's guest
runs does the 1:1 NAT (distributed, as Neutron DVR: see docs/networks.md)."""

from __future__ import annotations

from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import FloatingIp
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.ports import Ports
from controller.domain.networks.routers import Routers, external_network
from controller.domain.networks.topology import Topology
from controller.domain.quotas import Quotas
from controller.errors import AlreadyExists, FailedPrecondition, not_found

FLOATING_IP = "floating_ip"


class FloatingIps:
    def __init__(
        self, changes: NodeChanges, topology: Topology, ports: Ports, routers: Routers, quotas: Quotas
    ) -> None:
        self.changes = changes
        self.topology = topology
        self.ports = ports
        self.routers = routers
        self.quotas = quotas

    def get_floating_ip(self, caller: Principal, fip_id: str) -> FloatingIp:
        row = router_store.get_floating_ip(fip_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("floating IP", fip_id)
        return row

    def list_floating_ips(
        self, caller: Principal, page_size: int, page_token: str, network_id: str, port_id: str
    ) -> tuple[list[FloatingIp], str]:
        return router_store.list_floating_ips(
            page_size, page_token, None if caller.is_admin else caller.project_id, network_id, port_id
        )

    def addresses_of_ports(self, port_ids: list[str]) -> dict[str, str]:
        """port id -> its floating IP's address (for the NICs of server show and lists)."""
        return {f.port_id: f.floating_ip_address for f in router_store.floating_ips_of_ports(port_ids)}

    def create_floating_ip(
        self, caller: Principal, network_id: str, port_id: str, description: str, request_key: RequestKey
    ) -> FloatingIp:
        net = external_network(self.topology.get_network(caller, network_id))
        touched: set[str] = set()

        def make() -> FloatingIp:
            # The project's floating_ips counter, in this transaction (controller/domain/quotas.py).
            self.quotas.charge(caller.project_id, {"floating_ips": 1}, caller.project_name)
            if not store.subnets_of([net.id]):
                raise FailedPrecondition(
                    f"external network {net.name!r} has no subnet to take an address from",
                    reason="EXTERNAL_NETWORK_NO_SUBNET",
                )
            fip_id = clock.new_id()
            holder = self.ports.insert_port(
                caller.project_id, net, [], [], device_owner=FLOATING_IP, device_id=fip_id
            )
            _, address = router_store.port_address(holder.id)
            if not address:
                raise FailedPrecondition(
                    f"external network {net.name!r} has no IPv4 subnet", reason="EXTERNAL_NETWORK_NO_SUBNET"
                )
            now = clock.now()
            row = router_store.insert_floating_ip(
                {
                    "id": fip_id,
                    "project": caller.project_id,
                    "network": net.id,
                    "address_port": holder.id,
                    "floating_ip_address": address,
                    "description": description,
                    "create_time": now,
                    "update_time": now,
                }
            )
            if port_id:
                touched.update(self._associate(caller, row, port_id))
            return row

        made = idempotent_create(
            "floating_ip",
            caller.project_id,
            request_key,
            make,
            lambda i: self.get_floating_ip(caller, i),
            lambda f: f.id,
        )
        self.changes.notify(touched)
        return self.get_floating_ip(caller, made.id)

    def _port_node(self, port_id: str | None) -> set[str]:
        port = store.get_port(port_id) if port_id else None
        if port is None or not port.instance_id:
            return set()
        return set(store.instance_nodes([port.instance_id]).values())

    def _associate(self, caller: Principal, row: FloatingIp, port_id: str) -> set[str]:
        """Inside the write transaction; the nodes concerned (bumped)."""
        if row.port_id == port_id:
            return set()
        port = self.ports.get_port(caller, port_id)
        if port.project_id != row.project_id or port.device_owner:
            raise not_found("port", port_id)
        if row.port_id:
            raise FailedPrecondition(
                f"floating IP {row.floating_ip_address} is given to port {row.port_id}; disassociate it first",
                reason="FLOATING_IP_ASSOCIATED",
            )
        subnet_id, fixed = router_store.port_address(port.id)
        if not fixed:
            raise FailedPrecondition(f"port {port.id} has no IPv4 fixed IP", reason="PORT_NO_FIXED_IP")
        router = self.routers.router_for(subnet_id, row.network_id)
        if router is None:
            raise FailedPrecondition(
                f"the subnet of port {port.id} is on no router with its gateway on the floating IP's network",
                reason="EXTERNAL_GATEWAY_MISSING",
            )
        fields = {"port": port.id, "fixed_ip_address": fixed, "router": router.id}
        if not router_store.associate(row.id, fields, clock.now(), expect_port=None):
            if router_store.floating_ips_of_ports([port.id]):
                raise AlreadyExists(
                    f"port {port.id} has a floating IP already", reason="PORT_HAS_FLOATING_IP"
                )
            raise FailedPrecondition(
                f"floating IP {row.floating_ip_address} was given to another port meanwhile",
                reason="FLOATING_IP_ASSOCIATED",
            )
        return self.changes.bump(self._port_node(port.id))

    def _disassociate(self, row: FloatingIp) -> set[str]:
        if not row.port_id:
            return set()
        nodes = self._port_node(row.port_id)
        router_store.update_floating_ip(
            row.id, {"port": None, "fixed_ip_address": "", "router": None}, clock.now()
        )
        return self.changes.bump(nodes)

    def update_floating_ip(
        self, caller: Principal, fip_id: str, fields: dict[str, Any], port_id: str | None
    ) -> FloatingIp:
        with write_transaction():
            row = self.get_floating_ip(caller, fip_id)
            nodes: set[str] = set()
            if port_id is not None:
                nodes = self._associate(caller, row, port_id) if port_id else self._disassociate(row)
            if fields:
                router_store.update_floating_ip(row.id, fields, clock.now())
        self.changes.notify(nodes)
        return self.get_floating_ip(caller, fip_id)

    def delete_floating_ip(self, caller: Principal, fip_id: str) -> None:
        with write_transaction():
            row = self.get_floating_ip(caller, fip_id)
            nodes = self._disassociate(row)
            if router_store.delete_floating_ip(row.id):
                self.quotas.release(row.project_id, {"floating_ips": 1})
            store.delete_port(row.address_port_id)
        self.changes.notify(nodes)
