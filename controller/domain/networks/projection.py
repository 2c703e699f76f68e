"""The networks part of a node's desired state: the ports of its instances,
their networks (with subnets and the other nodes that hold ports of them: the
VXLAN peers and the names of every port on them: see dns.py) and their
security groups (with every member's addresses)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import Node, Port, Subnet
from controller.domain.networks.addresses import SLAAC
from controller.domain.networks.changes import NodeChanges
from controller.domain.networks.dns import NamedPort, assign_names, network_domain
from controller.domain.networks.routers import prefix_of
from controller.domain.networks.snat import NOT_RUNNING, snat_nodes
from controller.domain.node_registry import NodeRegistry, tunnel_host, tunnel_ip
from kumo.v1 import node_agent_pb2 as npb


class NodeProjection:
    def __init__(self, registry: NodeRegistry, changes: NodeChanges, dns_domain: str = "kumo") -> None:
        self.registry = registry
        self.changes = changes
        self.dns_domain = dns_domain

    def tunnel_ip(self, node_id: str, db_address: str = "") -> str:
        """The node's VXLAN endpoint: from its live inventory, else its
        recorded address."""
        live = self.registry.snapshot(node_id)
        if live is not None:
            found = tunnel_ip(live.inventory, live.address)
            if found:
                return found
        return tunnel_host(db_address)

    def tunnel_moved(self, node_id: str) -> None:
        """Registry listener: the nodes that hold peers of this node's ports
        get its new tunnel address (else only at the next change there)."""
        with write_transaction():
            networks = {p.network_id for p in store.node_ports(node_id, NOT_RUNNING)}
            nodes = self.changes.bump(store.nodes_with_ports(network_ids=networks) - {node_id})
        self.changes.notify(nodes)

    def contribute(self, node_row: Any, state: npb.NodeDesiredState) -> None:
        """The networks part of a node's desired state (a fixed number of
        queries per node, however many ports)."""
        ports = store.node_ports(node_row.id, NOT_RUNNING)
        if not ports:
            return
        ids = [p.id for p in ports]
        net_ids = sorted({p.network_id for p in ports})
        named = store.named_ports(net_ids, NOT_RUNNING)
        ips = store.port_ips(ids + [pid for _, pid, _ in named])
        names = self._names(named, ips)
        groups = store.port_groups(ids)
        by_instance: dict[str, list[Port]] = defaultdict(list)
        for p in ports:
            state.ports.append(
                npb.DesiredPort(
                    id=p.id,
                    network_id=p.network_id,
                    mac_address=p.mac_address,
                    fixed_ips=[npb.FixedIp(subnet_id=s, ip_address=ip) for s, ip in ips.get(p.id, [])],
                    instance_id=p.instance_id,
                    security_group_ids=groups.get(p.id, []),
                    dns_name=names.get(p.id, ""),
                )
            )
            by_instance[p.instance_id].append(p)
        for inst in state.instances:
            nics = sorted(by_instance.get(inst.id, []), key=lambda p: (p.nic_index, p.id))
            if nics:
                del inst.port_ids[:]
                inst.port_ids.extend(p.id for p in nics)
        records: dict[str, list[npb.DnsRecord]] = defaultdict(list)
        for net_id, pid, _ in named:
            records[net_id].append(
                npb.DnsRecord(hostname=names[pid], ip_addresses=[ip for _, ip in ips.get(pid, [])])
            )
        external = self._routes(node_row.id, ids, set(net_ids), state)
        self._networks(node_row.id, sorted(set(net_ids) | external), state, records)
        self._security_groups({g for gs in groups.values() for g in gs}, state)

    @staticmethod
    def _names(named: list[tuple[str, str, str]], ips: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
        """port id -> its name in its network, for every port of the networks."""
        by_net: dict[str, list[NamedPort]] = defaultdict(list)
        for net_id, pid, instance_name in named:
            by_net[net_id].append(NamedPort(pid, instance_name, tuple(ip for _, ip in ips.get(pid, []))))
        return {pid: name for ports in by_net.values() for pid, name in assign_names(ports).items()}

    def _networks(
        self,
        node_id: str,
        net_ids: list[str],
        state: npb.NodeDesiredState,
        records: dict[str, list[npb.DnsRecord]],
    ) -> None:
        """The networks of the node's ports, with subnets, VXLAN peers and names."""
        subnets: dict[str, list[Subnet]] = defaultdict(list)
        for s in store.subnets_of(net_ids):
            subnets[s.network_id].append(s)
        peers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for net_id, peer_node, mac in store.peer_ports(net_ids, node_id, NOT_RUNNING):
            peers[net_id][peer_node].append(mac)
        addresses: dict[str, str] = {}
        peer_nodes = {n for by_node in peers.values() for n in by_node}
        if peer_nodes:
            addresses = dict(Node.select(Node.id, Node.address).where(Node.id.in_(list(peer_nodes))).tuples())
        tunnel = {n: self.tunnel_ip(n, addresses.get(n, "")) for n in peer_nodes}
        for net in store.networks_by_id(net_ids):
            state.networks.append(
                npb.DesiredNetwork(
                    id=net.id,
                    vni=net.vni,
                    mtu=net.mtu,
                    external_routable=net.external_routable,
                    external=net.external,
                    network_type=net.network_type,
                    physical_network=net.physical_network,
                    segmentation_id=net.segmentation_id,
                    subnets=[
                        npb.DesiredSubnet(
                            id=s.id,
                            cidr=s.cidr,
                            ip_version=s.ip_version,
                            gateway_ip=s.gateway_ip,
                            dns_servers=json.loads(s.dns_servers),
                            ipv6_slaac=s.ipv6_address_mode == SLAAC,
                        )
                        for s in subnets.get(net.id, [])
                    ],
                    peers=[
                        npb.OverlayPeer(node_id=n, tunnel_ip=tunnel[n], mac_addresses=macs)
                        for n, macs in sorted(peers.get(net.id, {}).items())
                    ],
                    dns_domain=network_domain(net.name, net.id, self.dns_domain),
                    dns_records=records.get(net.id, []),
                )
            )

    @staticmethod
    def _routes(
        node_id: str, port_ids: list[str], net_ids: set[str], state: npb.NodeDesiredState
    ) -> set[str]:
        """The floating IPs of the node's ports, and the routers of its
        networks with this node's SNAT address for each (distributed: see
        snat.py; the first node uses the router's own). The external networks
        they need."""
        external: set[str] = set()
        gateways: dict[tuple[str, int], str] = {}  # (address port id, IP version) -> "address/prefix"

        def with_prefix(port_id: str, version: int = 4) -> str:
            if (port_id, version) not in gateways:
                subnet_id, ip = router_store.port_address(port_id, version)
                sub = store.get_subnet(subnet_id) if subnet_id else None
                gateways[port_id, version] = f"{ip}/{prefix_of(sub.cidr)}" if sub is not None else ""
            return gateways[port_id, version]

        for f in router_store.floating_ips_of_ports(port_ids):
            port = store.get_port(f.port_id)
            if port is None or not with_prefix(f.address_port_id):
                continue
            state.floating_ips.append(
                npb.DesiredFloatingIp(
                    id=f.id,
                    external_network_id=f.network_id,
                    floating_address=with_prefix(f.address_port_id),
                    fixed_ip_address=f.fixed_ip_address,
                    port_id=f.port_id,
                    network_id=port.network_id,
                )
            )
            external.add(f.network_id)
        router_ids = router_store.routers_of_networks(net_ids)
        running = router_store.nodes_of_routers(router_ids, NOT_RUNNING)
        interfaces = router_store.interfaces_of(router_ids)
        own = router_store.snat_ports(router_ids)
        for r in router_store.routers_by_id(router_ids):
            if not r.gateway_port_id:
                continue
            if node_id in snat_nodes(running.get(r.id, {node_id})):
                address_port = own.get(r.id, {}).get(node_id, "")
            else:
                address_port = r.gateway_port_id
            gw = store.get_port(r.gateway_port_id)
            address = with_prefix(address_port) if address_port else ""
            if gw is None or not address:
                continue
            ext_subnets = store.subnets_of([gw.network_id])
            ext_gw = [s.gateway_ip for s in ext_subnets if s.ip_version == 4]
            ext_gw6 = [s.gateway_ip for s in ext_subnets if s.ip_version == 6 and s.gateway_ip]
            subs = interfaces.get(r.id, [])
            state.routers.append(
                npb.DesiredRouter(
                    id=r.id,
                    external_network_id=gw.network_id,
                    gateway_address=address,
                    external_gateway_ip=ext_gw[0] if ext_gw else "",
                    interface_cidrs=[s.cidr for s in subs],
                    interface_network_ids=sorted({s.network_id for s in subs}),
                    gateway_address6=with_prefix(address_port, 6),
                    external_gateway_ip6=ext_gw6[0] if ext_gw6 else "",
                )
            )
            external.add(gw.network_id)
        return external

    @staticmethod
    def _security_groups(group_ids: set[str], state: npb.NodeDesiredState) -> None:
        """The groups of the node's ports with their rules, and the groups
        their rules name as remotes (members only: a remote's own rules do not
        apply here)."""
        rules = store.rules_of(group_ids)
        remote = {r.remote_group_id for rs in rules.values() for r in rs if r.remote_group_id} - group_ids
        if remote:
            rules.update(store.rules_of(remote))
        all_groups = group_ids | remote
        members = store.group_member_ips(all_groups)
        for g in sorted(all_groups):
            state.security_groups.append(
                npb.DesiredSecurityGroup(
                    id=g,
                    rules=[
                        npb.DesiredSecurityGroupRule(
                            id=r.id,
                            direction=r.direction,
                            ip_version=r.ip_version,
                            protocol=r.protocol,
                            port_range_min=r.port_range_min,
                            port_range_max=r.port_range_max,
                            remote_cidr=r.remote_cidr,
                            remote_group_id=r.remote_group_id or "",
                        )
                        for r in (rules.get(g, []) if g in group_ids else [])
                    ],
                    member_ips=members.get(g, []),
                )
            )
