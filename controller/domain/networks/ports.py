"""Ports (a NIC's MAC, addresses and security groups) and the NICs of
instances: resolved at CreateInstance before its write transaction, bound
inside it, freed when the instance is gone. A MAC is unique on port."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import Instance, Network, Port
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.domain.networks.addresses import FLAT, VLAN, mac_of_fixed, plan_fixed_ips, random_mac
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.ipam import Ipam
from controller.domain.networks.security_groups import SecurityGroups
from controller.domain.networks.topology import Topology
from controller.domain.quotas import Quotas
from controller.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted, not_found


@dataclass
class NicRequest:
    """One NIC asked for in CreateInstance: a network (and maybe an address)
    or an existing port."""

    network: str = ""
    port_id: str = ""
    fixed_ip: str = ""


@dataclass
class _NicPlan:
    network: Network | None = None
    port: Port | None = None
    fixed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Nic:
    port_id: str
    network_id: str
    mac_address: str
    ip_addresses: list[str]


def device_port(port: Port) -> None:
    """A router's gateway or a floating IP's address is not a NIC: it goes
    with its router or floating IP."""
    if port.device_owner:
        raise FailedPrecondition(
            f"port {port.id} holds the address of {port.device_owner.replace('_', ' ')} {port.device_id}",
            reason="PORT_IN_USE",
        )


def no_nics_on(caller: Principal, net: Network) -> None:
    """NICs on a provider (FLAT/VLAN) network are bridged guests on the LAN:
    admins may make them, and every project on a `shared` one (as Neutron's
    provider networks); other projects only see the network."""
    if net.network_type in (FLAT, VLAN) and not (caller.is_admin or net.shared):
        raise FailedPrecondition(
            f"network {net.name!r} is a provider network; only admins put ports on it unless it is shared",
            reason="NETWORK_EXTERNAL",
        )


class Ports:
    def __init__(
        self, changes: NodeChanges, ipam: Ipam, topology: Topology, groups: SecurityGroups, quotas: Quotas
    ) -> None:
        self.changes = changes
        self.quotas = quotas
        self.ipam = ipam
        self.topology = topology
        self.groups = groups

    def get_port(self, caller: Principal, port_id: str) -> Port:
        row = store.get_port(port_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("port", port_id)
        return row

    def list_ports(
        self, caller: Principal, page_size: int, page_token: str, name: str, network_id: str, instance_id: str
    ) -> tuple[list[Port], str]:
        return store.list_ports(
            page_size,
            page_token,
            None if caller.is_admin else caller.project_id,
            name,
            network_id,
            instance_id,
        )

    def port_details(
        self, ports: list[Port]
    ) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[str]], dict[str, str]]:
        """(addresses, groups, node of the bound instance) per port id, in three queries."""
        ids = [p.id for p in ports]
        return (
            store.port_ips(ids),
            store.port_groups(ids),
            store.instance_nodes(p.instance_id for p in ports if p.instance_id),
        )

    def _plan_fixed_ips(self, net: Network, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Checks asked-for (subnet id, address) pairs against the network's subnets."""
        return plan_fixed_ips(net.name, store.subnets_of([net.id]), wanted)

    def insert_port(
        self,
        project_id: str,
        net: Network,
        fixed: list[tuple[str, str]],
        group_ids: list[str],
        name: str = "",
        description: str = "",
        instance_id: str = "",
        nic_index: int = 0,
        auto_delete: bool = False,
        device_owner: str = "",
        device_id: str = "",
    ) -> Port:
        if not device_owner:  # a router's or floating IP's address is counted as that
            self.quotas.charge(project_id, {"ports": 1})
        now = clock.now()
        subnets = store.subnets_of([net.id])
        wanted = mac_of_fixed(subnets, fixed)
        for _ in range(1 if wanted else 16):
            row = store.insert_port(
                {
                    "id": clock.new_id(),
                    "project": project_id,
                    "network": net.id,
                    "name": name,
                    "description": description,
                    "mac_address": wanted or random_mac(),
                    "instance_id": instance_id,
                    "nic_index": nic_index,
                    "auto_delete": auto_delete,
                    "device_owner": device_owner,
                    "device_id": device_id,
                    "create_time": now,
                    "update_time": now,
                }
            )
            if row is not None:
                break
        else:
            if wanted:
                raise AlreadyExists(
                    f"MAC address {wanted}, which the SLAAC fixed IP is made from, is another port's",
                    reason="IP_ADDRESS_IN_USE",
                )
            raise ResourceExhausted("could not find a free MAC address; try again", reason="MAC_EXHAUSTED")
        self.ipam.allocate(row, net, subnets, fixed)
        store.add_port_groups(row.id, group_ids)
        return row

    def create_port(
        self,
        caller: Principal,
        network_id: str,
        name: str,
        description: str,
        fixed_ips: list[tuple[str, str]],
        group_refs: list[str],
        request_key: RequestKey,
    ) -> Port:
        net = self.topology.get_network(caller, network_id)
        no_nics_on(caller, net)
        fixed = self._plan_fixed_ips(net, fixed_ips)
        self.groups.check_refs(caller, group_refs)

        def make() -> Port:
            self.topology.get_network(caller, network_id)
            groups = self.groups.groups_for(caller, caller.project_id, group_refs)
            return self.insert_port(caller.project_id, net, fixed, groups, name, description)

        return idempotent_create(
            "port", caller.project_id, request_key, make, lambda i: self.get_port(caller, i), lambda p: p.id
        )

    def update_port(
        self, caller: Principal, port_id: str, fields: dict[str, Any], group_refs: list[str] | None
    ) -> Port:
        with write_transaction():
            row = self.get_port(caller, port_id)
            nodes: set[str] = set()
            if group_refs is not None:
                before = store.port_groups([row.id]).get(row.id, [])
                groups = self.groups.groups_for(caller, row.project_id, group_refs)
                nodes |= store.nodes_with_ports(group_ids=before)
                store.set_port_groups(row.id, groups)
                nodes |= store.nodes_with_ports(group_ids=groups)
            store.update_port(row.id, fields, clock.now())
            nodes = self.changes.bump(nodes)
        self.changes.notify(nodes)
        return self.get_port(caller, port_id)

    def delete_port(self, caller: Principal, port_id: str) -> None:
        with write_transaction():
            row = self.get_port(caller, port_id)
            if row.instance_id:
                raise FailedPrecondition(
                    f"port {row.id} is bound to instance {row.instance_id}; delete the instance first",
                    reason="PORT_IN_USE",
                )
            device_port(row)
            groups = store.port_groups([row.id]).get(row.id, [])
            router_store.release_port_floating_ips([row.id], clock.now())
            if store.delete_port(row.id):
                self.quotas.release(row.project_id, {"ports": 1})
            nodes = self.changes.bump(store.nodes_with_ports(group_ids=groups))
        self.changes.notify(nodes)

    # Instances: NICs at create, ports freed when gone, NICs in messages

    def prepare_nics(self, caller: Principal, options: Mapping[str, Any]) -> Any:
        """Resolves the NICs of a create before its write
        transaction; returns the bind step (or None with no NICs asked for),
        which gives the nodes to tell and the NICs' networks."""
        requests: list[NicRequest] = list(options.get("networks") or [])
        group_refs: list[str] = list(options.get("security_groups") or [])
        if not requests:
            if group_refs:
                raise InvalidArgument("security_groups needs networks to apply to")
            return None
        plans: list[_NicPlan] = []
        seen_ports: set[str] = set()
        for i, req in enumerate(requests):
            if req.port_id:
                port = self.get_port(caller, req.port_id)
                if port.project_id != caller.project_id:
                    raise not_found("port", req.port_id)
                if port.instance_id:
                    raise FailedPrecondition(
                        f"port {port.id} is already bound to instance {port.instance_id}",
                        reason="PORT_IN_USE",
                    )
                device_port(port)
                if port.id in seen_ports:
                    raise InvalidArgument(f"networks[{i}]: port {port.id} is asked for twice")
                seen_ports.add(port.id)
                plans.append(_NicPlan(port=port))
            else:
                net = self.topology.find_network(caller, req.network)
                no_nics_on(caller, net)
                fixed = self._plan_fixed_ips(net, [("", req.fixed_ip)]) if req.fixed_ip else []
                for sub, ip in fixed:
                    if store.is_allocated(sub, ip):
                        raise AlreadyExists(f"IP address {ip} is already in use", reason="IP_ADDRESS_IN_USE")
                plans.append(_NicPlan(network=net, fixed=fixed))
        self.groups.check_refs(caller, group_refs)
        new_ports = any(p.network for p in plans)
        default = self.groups.existing_default(caller.project_id) if new_ports and not group_refs else ""

        def bind(row: Instance) -> tuple[set[str], set[str]]:
            """(nodes to tell, networks of the NICs)."""
            if default:
                groups = [default]
            elif new_ports:
                groups = self.groups.groups_for(caller, caller.project_id, group_refs)
            else:
                groups = []
            nets: set[str] = set()
            all_groups: set[str] = set(groups)
            now = clock.now()
            for index, plan in enumerate(plans):
                if plan.port is not None:
                    if not store.bind_port(plan.port.id, row.id, index, now):
                        raise FailedPrecondition(
                            f"port {plan.port.id} was bound to another instance meanwhile",
                            reason="PORT_IN_USE",
                        )
                    nets.add(plan.port.network_id)
                    all_groups.update(store.port_groups([plan.port.id]).get(plan.port.id, []))
                else:
                    assert plan.network is not None
                    if store.get_network(plan.network.id) is None:
                        raise not_found("network", plan.network.id)
                    self.insert_port(
                        caller.project_id,
                        plan.network,
                        plan.fixed,
                        groups,
                        instance_id=row.id,
                        nic_index=index,
                        auto_delete=True,
                    )
                    nets.add(plan.network.id)
            return self.changes.bump_nodes_with_ports(nets, all_groups), nets

        return bind

    def instance_gone(self, row: Instance) -> set[str]:
        """As an InstanceExtension: deletes the ports made for the instance, unbinds
        the ones it was given (in the transaction that deletes it)."""
        ports = store.ports_of_instances([row.id]).get(row.id, [])
        if not ports:
            return set()
        groups = store.groups_of_ports(p.id for p in ports)
        router_store.release_port_floating_ips([p.id for p in ports if p.auto_delete], clock.now())
        store.release_instance_ports(row.id, clock.now())
        for p in ports:
            if p.auto_delete:  # made for the instance, deleted with it
                self.quotas.release(p.project_id, {"ports": 1})
        return self.changes.bump(
            store.nodes_with_ports(network_ids={p.network_id for p in ports}, group_ids=groups)
        )

    def instance_moved(self, row: Instance, source: str, target: str, now: float) -> set[str]:
        """As an InstanceMoves: the ports (addresses unchanged) follow the
        instance, which is on `target` already; every node with a port on its
        networks or in its groups learns where it went."""
        ports = store.ports_of_instances([row.id]).get(row.id, [])
        if not ports:
            return set()
        groups = store.groups_of_ports(p.id for p in ports)
        nodes = store.nodes_with_ports(network_ids={p.network_id for p in ports}, group_ids=groups)
        return self.changes.bump(nodes | {target})

    def nics(self, instance_ids: list[str]) -> dict[str, list[Nic]]:
        return {
            iid: [Nic(*nic) for nic in nics] for iid, nics in store.instance_nic_rows(instance_ids).items()
        }
