"""The networks part of a node's desired state: the ports of its instances,
their networks (with subnets and the other nodes that hold ports of them: the
VXLAN peers and the names of every port on them: see dns.py) and their
security groups (with every member's addresses)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from controller.db import networks as store
from controller.db import routers as router_store
from controller.db.database import write_transaction
from controller.db.models import Node, Port, Subnet
from controller.db.nodes import NodeHead
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
        self._shared = threading.local()  # the batch's _SharedReads (see shared_reads)

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

    @contextmanager
    def shared_reads(self) -> Iterator[None]:
        """Around a batch of nodes read in one transaction (DesiredStates):
        a network's subnets, ports, names and peers, and a group's rules and
        members, are read once for all of them (on this thread)."""
        self._shared.reads = _SharedReads()
        try:
            yield
        finally:
            self._shared.reads = None

    def contribute(self, node_row: NodeHead, state: npb.NodeDesiredState) -> None:
        """The networks part of a node's desired state (a fixed number of
        queries per node, however many ports; what its networks and groups
        need, once per batch of nodes)."""
        if not store.may_have_ports(node_row.id):  # a node without NICs: one cheap probe
            return
        ports = store.node_ports(node_row.id, NOT_RUNNING)
        if not ports:
            return
        shared = getattr(self._shared, "reads", None) or _SharedReads()
        ids = [p.id for p in ports]
        net_ids = sorted({p.network_id for p in ports})
        self._read_networks(shared, net_ids)
        own_ips = dict(store.port_ips(pid for pid in ids if pid not in shared.ips))
        groups = {pid: shared.port_groups[pid] for pid in ids if shared.port_groups.get(pid)}
        by_instance: dict[str, list[Port]] = defaultdict(list)
        for p in ports:
            view = shared.networks.get(p.network_id)
            state.ports.append(
                npb.DesiredPort(
                    id=p.id,
                    network_id=p.network_id,
                    mac_address=p.mac_address,
                    fixed_ips=[
                        npb.FixedIp(subnet_id=s, ip_address=ip)
                        for s, ip in shared.ips.get(p.id, own_ips.get(p.id, []))
                    ],
                    instance_id=p.instance_id,
                    security_group_ids=groups.get(p.id, []),
                    dns_name=view.names.get(p.id, "") if view is not None else "",
                )
            )
            by_instance[p.instance_id].append(p)
        for inst in state.instances:
            nics = sorted(by_instance.get(inst.id, []), key=lambda p: (p.nic_index, p.id))
            if nics:
                del inst.port_ids[:]
                inst.port_ids.extend(p.id for p in nics)
        external = self._routes(shared, node_row.id, ids, net_ids, state)
        own_nets = set(net_ids)
        all_nets = sorted(own_nets | external)
        self._read_networks(shared, all_nets)
        for net_id in all_nets:
            view = shared.networks.get(net_id)
            if view is None:
                continue
            state.networks.append(view.message)
            entry = state.networks[-1]
            if node_row.id in view.peer_index:  # a node is not its own peer
                del entry.peers[view.peer_index[node_row.id]]
            if net_id not in own_nets:  # an external network its routes need: no names
                entry.ClearField("dns_records")
        self._security_groups(shared, {g for gs in groups.values() for g in gs}, state)

    def _read_networks(self, shared: _SharedReads, net_ids: list[str]) -> None:
        """The networks' entries with every node that runs their ports as a
        peer, their ports' names and addresses, into `shared` (those not there yet)."""
        missing = [n for n in net_ids if n not in shared.networks]
        if not missing:
            return
        named = store.named_ports(missing, NOT_RUNNING)
        ips = store.port_ips(pid for _, pid, _ in named)
        shared.ips.update(ips)
        names = self._names(named, ips)
        records: dict[str, list[npb.DnsRecord]] = defaultdict(list)
        for net_id, pid, _ in named:
            records[net_id].append(
                npb.DnsRecord(hostname=names[pid], ip_addresses=[ip for _, ip in ips.get(pid, [])])
            )
        subnets: dict[str, list[Subnet]] = defaultdict(list)
        for s in store.subnets_of(missing):
            subnets[s.network_id].append(s)
        peers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for net_id, peer_node, mac in store.peer_ports(missing, NOT_RUNNING):
            peers[net_id][peer_node].append(mac)
        peer_nodes = {n for by_node in peers.values() for n in by_node} - set(shared.tunnels)
        if peer_nodes:
            addresses = dict(Node.select(Node.id, Node.address).where(Node.id.in_(list(peer_nodes))).tuples())
            for n in peer_nodes:
                shared.tunnels[n] = self.tunnel_ip(n, addresses.get(n, ""))
        shared.port_groups.update(store.network_port_groups(missing))
        for f in router_store.floating_ips_on_networks(missing):
            shared.floating[f.port_id] = f
        routers = router_store.network_routers(missing)
        for net_id in missing:
            shared.routers[net_id] = routers.get(net_id, set())
        for net in store.networks_by_id(missing):
            by_node = sorted(peers.get(net.id, {}).items())
            message = npb.DesiredNetwork(
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
                    npb.OverlayPeer(node_id=n, tunnel_ip=shared.tunnels[n], mac_addresses=macs)
                    for n, macs in by_node
                ],
                dns_domain=network_domain(net.name, net.id, self.dns_domain),
                dns_records=records.get(net.id, []),
            )
            shared.networks[net.id] = _NetworkView(
                message,
                {pid: names[pid] for n, pid, _ in named if n == net.id},
                {n: i for i, (n, _) in enumerate(by_node)},
            )

    @staticmethod
    def _names(named: list[tuple[str, str, str]], ips: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
        """port id -> its name in its network, for every port of the networks."""
        by_net: dict[str, list[NamedPort]] = defaultdict(list)
        for net_id, pid, instance_name in named:
            by_net[net_id].append(NamedPort(pid, instance_name, tuple(ip for _, ip in ips.get(pid, []))))
        return {pid: name for ports in by_net.values() for pid, name in assign_names(ports).items()}

    @staticmethod
    def _routes(
        shared: _SharedReads,
        node_id: str,
        port_ids: list[str],
        net_ids: list[str],
        state: npb.NodeDesiredState,
    ) -> set[str]:
        """The floating IPs of the node's ports, and the routers of its
        networks with this node's SNAT address for each (distributed: see
        snat.py; the first node uses the router's own). The external networks
        they need. Which ports have floating IPs and which routers the networks
        have come from `shared` (read with the networks, once per batch)."""
        external: set[str] = set()
        gateways: dict[tuple[str, int], str] = {}  # (address port id, IP version) -> "address/prefix"

        def with_prefix(port_id: str, version: int = 4) -> str:
            if (port_id, version) not in gateways:
                subnet_id, ip = router_store.port_address(port_id, version)
                sub = store.get_subnet(subnet_id) if subnet_id else None
                gateways[port_id, version] = f"{ip}/{prefix_of(sub.cidr)}" if sub is not None else ""
            return gateways[port_id, version]

        floating = sorted((shared.floating[p] for p in port_ids if p in shared.floating), key=lambda f: f.id)
        for f in floating:
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
        router_ids = {r for n in net_ids for r in shared.routers.get(n, ())}
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
    def _security_groups(shared: _SharedReads, group_ids: set[str], state: npb.NodeDesiredState) -> None:
        """The groups of the node's ports with their rules, and the groups
        their rules name as remotes (members only: a remote's own rules do not
        apply here)."""
        missing = group_ids - shared.rules.keys()
        if missing:
            rules = store.rules_of(missing)
            for g in missing:
                shared.rules[g] = rules.get(g, [])
        remote = {
            r.remote_group_id for g in group_ids for r in shared.rules[g] if r.remote_group_id
        } - group_ids
        all_groups = group_ids | remote
        missing = all_groups - shared.members.keys()
        if missing:
            members = store.group_member_ips(missing)
            for g in missing:
                shared.members[g] = members.get(g, [])
        for g in sorted(all_groups):
            key = (g, g in group_ids)
            message = shared.groups.get(key)
            if message is None:
                message = shared.groups[key] = npb.DesiredSecurityGroup(
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
                        for r in (shared.rules[g] if g in group_ids else [])
                    ],
                    member_ips=shared.members[g],
                )
            state.security_groups.append(message)


@dataclass
class _NetworkView:
    """A network's entry as every node that runs its ports gets it, but with
    all of them as peers (`peer_index`: where each is among them)."""

    message: npb.DesiredNetwork
    names: dict[str, str]  # port id -> its name in the network
    peer_index: dict[str, int]


@dataclass
class _SharedReads:
    """What the nodes of one batch share, read once (see shared_reads)."""

    networks: dict[str, _NetworkView] = field(default_factory=dict)
    ips: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # named ports' addresses
    tunnels: dict[str, str] = field(default_factory=dict)  # node id -> its VXLAN endpoint
    rules: dict[str, list[Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[tuple[str, bool], npb.DesiredSecurityGroup] = field(default_factory=dict)
    # Of every port on the networks read: its groups, its floating IP; each network's routers.
    port_groups: dict[str, list[str]] = field(default_factory=dict)
    floating: dict[str, Any] = field(default_factory=dict)  # port id -> FloatingIp
    routers: dict[str, set[str]] = field(default_factory=dict)
