"""Networks and subnets: who may see and change them, VNIs, and which nodes a
change concerns (those holding ports of the network)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import Network, Subnet
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.domain.networks.addresses import SLAAC, check_dns, check_mtu, check_no_overlap, check_provider
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.ipam import Ipam
from controller.domain.quotas import Quotas
from controller.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    not_found,
)
from kumo.ids import is_uuid

MAX_VNI = 2**24 - 1


class Topology:
    """Networks and their subnets."""

    def __init__(self, changes: NodeChanges, ipam: Ipam, quotas: Quotas) -> None:
        self.quotas = quotas
        self.changes = changes
        self.ipam = ipam

    # Networks

    def _network_visible(self, caller: Principal, row: Network) -> bool:
        return caller.can_see(row.project_id) or row.shared or row.external

    def get_network(self, caller: Principal, network_id: str) -> Network:
        row = store.get_network(network_id)
        if row is None or not self._network_visible(caller, row):
            raise not_found("network", network_id)
        return row

    def find_network(self, caller: Principal, ref: str) -> Network:
        """By id or name (the caller's own first, then shared ones)."""
        if is_uuid(ref):
            return self.get_network(caller, ref)
        rows = store.find_networks(ref, None if caller.is_admin else caller.project_id)
        if not rows:
            raise not_found("network", ref)
        own = [r for r in rows if r.project_id == caller.project_id]
        if len(own) == 1:
            return own[0]
        if len(rows) > 1:
            raise InvalidArgument(f"more than one network is named {ref!r}; use its id")
        return rows[0]

    def _owned_network(self, caller: Principal, network_id: str) -> Network:
        row = self.get_network(caller, network_id)
        if not caller.can_see(row.project_id):
            raise PermissionDenied(
                f"network {row.name!r} is shared with your project, not owned by it",
                reason="NETWORK_NOT_OWNER",
            )
        return row

    def list_networks(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[Network], str]:
        return store.list_networks(
            page_size, page_token, name, None if caller.is_admin else caller.project_id
        )

    @staticmethod
    def _admin_only(caller: Principal, fields: Mapping[str, Any]) -> None:
        for key in ("shared", "external_routable", "external", "network_type", "physical_network"):
            if fields.get(key) and not caller.is_admin:
                raise PermissionDenied(
                    f"only admins may set network.{key}", reason="ROLE_REQUIRED", required_role="admin"
                )

    def create_network(self, caller: Principal, fields: dict[str, Any], request_key: RequestKey) -> Network:
        self._admin_only(caller, fields)
        fields["mtu"] = check_mtu(fields.get("mtu", 0))
        fields.update(check_provider(fields))

        def make() -> Network:
            self.quotas.charge(caller.project_id, {"networks": 1}, caller.project_name)
            now = clock.now()
            for _ in range(32):
                row = store.insert_network(
                    {
                        **fields,
                        "id": clock.new_id(),
                        "project": caller.project_id,
                        "vni": random.randint(1, MAX_VNI),
                        "create_time": now,
                        "update_time": now,
                    }
                )
                if row is not None:
                    return row
            raise ResourceExhausted("could not find a free VNI; try again", reason="VNI_EXHAUSTED")

        return idempotent_create(
            "network",
            caller.project_id,
            request_key,
            make,
            lambda i: self.get_network(caller, i),
            lambda n: n.id,
        )

    def update_network(self, caller: Principal, network_id: str, fields: dict[str, Any]) -> Network:
        self._admin_only(caller, {k: True for k in fields if k in ("shared", "external_routable")})
        if "mtu" in fields:
            fields["mtu"] = check_mtu(fields["mtu"])
        with write_transaction():
            row = self._owned_network(caller, network_id)
            if fields.get("shared") is False and row.shared:
                foreign = store.count_foreign_ports(row.id, row.project_id)
                if foreign:
                    raise FailedPrecondition(
                        f"network {row.name!r} has {foreign} port(s) of other projects; it must stay shared",
                        reason="NETWORK_IN_USE",
                    )
            store.update_network(row.id, fields, clock.now())
            nodes = (
                self.changes.bump(store.nodes_with_ports(network_ids=[row.id]))
                if {"mtu", "external_routable"} & set(fields)
                else set()
            )
        self.changes.notify(nodes)
        return self.get_network(caller, network_id)

    def delete_network(self, caller: Principal, network_id: str) -> None:
        with write_transaction():
            row = self._owned_network(caller, network_id)
            store.lock_network(row.id)
            if router_store.routers_of_networks([row.id]):
                raise FailedPrecondition(
                    f"network {row.name!r} has subnets on a router; remove those router interfaces first",
                    reason="NETWORK_IN_USE",
                )
            bound = store.count_bound_ports(row.id) + router_store.device_ports_on(row.id)
            if bound:
                raise FailedPrecondition(
                    f"network {row.name!r} has {bound} port(s) bound to instances, routers or floating IPs; "
                    "delete those first",
                    reason="NETWORK_IN_USE",
                )
            ports = store.network_ports(row.id)
            groups = store.groups_of_ports(p.id for p in ports)
            router_store.release_port_floating_ips([p.id for p in ports], clock.now())
            if not store.delete_network(row.id):
                # A racing delete won while we waited for the row lock: what it
                # removed it has given back; giving it back twice would undercount.
                raise not_found("network", network_id)
            self.quotas.release(row.project_id, {"networks": 1})
            for p in ports:  # unbound ports, of other projects too on a shared network
                self.quotas.release(p.project_id, {"ports": 1})
            nodes = self.changes.bump(store.nodes_with_ports(group_ids=groups))
        self.changes.notify(nodes)

    def subnet_ids(self, network_ids: list[str]) -> dict[str, list[str]]:
        """network id -> its subnet ids, for a page of networks in one query."""
        out: dict[str, list[str]] = defaultdict(list)
        for s in store.subnets_of(network_ids):
            out[s.network_id].append(s.id)
        return out

    # Subnets

    def get_subnet(self, caller: Principal, subnet_id: str) -> Subnet:
        row = store.get_subnet(subnet_id)
        if row is None:
            raise not_found("subnet", subnet_id)
        net = store.get_network(row.network_id)
        if net is None or not self._network_visible(caller, net):
            raise not_found("subnet", subnet_id)
        return row

    def subnet_project(self, row: Subnet) -> str:
        return row.network.project_id

    def list_subnets(
        self, caller: Principal, page_size: int, page_token: str, name: str, network_id: str
    ) -> tuple[list[Subnet], str]:
        if network_id:
            self.get_network(caller, network_id)
        return store.list_subnets(
            page_size, page_token, name, network_id, None if caller.is_admin else caller.project_id
        )

    def create_subnet(
        self,
        caller: Principal,
        network_id: str,
        name: str,
        description: str,
        cidr_fields: dict[str, Any],
        request_key: RequestKey,
    ) -> Subnet:
        self.get_network(caller, network_id)  # NOT_FOUND before PERMISSION_DENIED

        touched: set[str] = set()

        def make() -> Subnet:
            net = self._owned_network(caller, network_id)
            store.lock_network(net.id)
            check_no_overlap(cidr_fields["cidr"], store.subnets_of([net.id]))
            now = clock.now()
            row = store.insert_subnet(
                {
                    **cidr_fields,
                    "id": clock.new_id(),
                    "network": net.id,
                    "name": name,
                    "description": description,
                    "create_time": now,
                    "update_time": now,
                }
            )
            groups: set[str] = set()
            if row.ipv6_address_mode == SLAAC:
                # Every port of the network holds its address here too.
                ports = store.network_ports(net.id)
                for port in ports:
                    if not self.ipam.take_any(port, row):
                        raise AlreadyExists(
                            f"port {port.id}'s EUI-64 address is already in use on this subnet",
                            reason="IP_ADDRESS_IN_USE",
                        )
                groups = store.groups_of_ports(p.id for p in ports)
            touched.update(self.changes.bump(store.nodes_with_ports(network_ids=[net.id], group_ids=groups)))
            return row

        row = idempotent_create(
            "subnet",
            caller.project_id,
            request_key,
            make,
            lambda i: self.get_subnet(caller, i),
            lambda s: s.id,
        )
        self.changes.notify(touched)
        return row

    def update_subnet(self, caller: Principal, subnet_id: str, fields: dict[str, Any]) -> Subnet:
        with write_transaction():
            row = self.get_subnet(caller, subnet_id)
            self._owned_network(caller, row.network_id)
            if "dns_servers" in fields:
                fields["dns_servers"] = json.dumps(check_dns(fields["dns_servers"]))
            store.update_subnet(row.id, fields, clock.now())
            nodes = (
                self.changes.bump(store.nodes_with_ports(network_ids=[row.network_id]))
                if "dns_servers" in fields
                else set()
            )
        self.changes.notify(nodes)
        return self.get_subnet(caller, subnet_id)

    def delete_subnet(self, caller: Principal, subnet_id: str) -> None:
        with write_transaction():
            row = self.get_subnet(caller, subnet_id)
            self._owned_network(caller, row.network_id)
            if router_store.interface_router(row.id):
                raise FailedPrecondition(
                    f"subnet {row.name!r} is on a router; remove the router interface first",
                    reason="SUBNET_IN_USE",
                )
            groups: set[str] = set()
            if row.ipv6_address_mode == SLAAC:
                # Its addresses came with the subnet; they go with it.
                groups = store.groups_of_ports(store.release_allocations(row.id))
            elif used := store.count_allocations(row.id):
                raise FailedPrecondition(
                    f"subnet {row.name!r} has {used} address(es) held by ports; delete those ports first",
                    reason="SUBNET_IN_USE",
                )
            store.delete_subnet(row.id)
            nodes = self.changes.bump(store.nodes_with_ports(network_ids=[row.network_id], group_ids=groups))
        self.changes.notify(nodes)
