"""Networks, subnets, ports (IPAM), security groups, and how they reach the
nodes. See docs/networks.md.

IPAM: an address is a row of ip_allocation keyed by (subnet, address), a MAC
is unique on port, a VNI unique on network. Candidates are picked from what is
free now and inserted in a savepoint inside a write transaction; on SQLite the
single writer serialises creates, on PostgreSQL the unique key decides and the
loser tries the next candidate, so nothing is handed out twice.

Nodes: a node's desired state holds the ports of its instances, their
networks (with subnets and the other nodes that hold ports of them: the
VXLAN peers) and their security groups (with every member's addresses). Any
change to those bumps the desired revision of each node concerned in the
same transaction and tells its session after the commit."""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db import nodes as node_store
from controller.db.database import write_transaction
from controller.db.models import Instance, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from controller.domain.extensions import CreateBind
from controller.domain.identity import idempotent_create
from controller.domain.node_registry import tunnel_host, tunnel_ip
from controller.domain.nodes import Nodes
from controller.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    not_found,
)
from kumo.ids import is_uuid
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import network_pb2 as netpb
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.network")

DEFAULT_MTU = 1450  # 1500 less the VXLAN encapsulation
MIN_MTU, MAX_MTU = 576, 9000
MAX_VNI = 2**24 - 1
MAC_PREFIX = "fa:16:3e"  # locally administered, unicast
STATIC, SLAAC = netpb.IPV6_ADDRESS_MODE_STATIC, netpb.IPV6_ADDRESS_MODE_SLAAC
MAX_DNS = 5
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "")
DEFAULT_GROUP = "default"
# The node runs no guest of an instance in these states, so none of its ports.
NOT_RUNNING = (cpb.INSTANCE_STATE_DELETING, cpb.INSTANCE_STATE_ERROR)
INGRESS, EGRESS = "ingress", "egress"
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


# Address checks


def parse_cidr(value: str, field_name: str = "cidr") -> Net:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"{field_name} {value[:64]!r} is not a valid CIDR ({exc})") from None
    return net


def parse_ip(value: str, field_name: str) -> Addr:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument(f"{field_name} {value[:64]!r} is not a valid IP address") from None


def pools_json(pools: list[tuple[Addr, Addr]]) -> str:
    return json.dumps([[str(a), str(b)] for a, b in pools])


def subnet_pools(row: Subnet) -> list[tuple[Addr, Addr]]:
    return [(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in json.loads(row.allocation_pools)]


def check_subnet(
    cidr: str,
    ip_version: int,
    gateway: str,
    pools: list[tuple[str, str]],
    dns: list[str],
    ipv6_address_mode: int = 0,
) -> dict[str, Any]:
    """The subnet's columns from what a caller asked for, or INVALID_ARGUMENT."""
    net = parse_cidr(cidr)
    if ip_version not in (0, 4, 6):
        raise InvalidArgument(f"ip_version must be 4 or 6, got {ip_version}")
    if ip_version and ip_version != net.version:
        raise InvalidArgument(f"cidr {cidr} is IPv{net.version}, ip_version says {ip_version}")
    lo, hi = (8, 29) if net.version == 4 else (64, 120)
    if not lo <= net.prefixlen <= hi:
        raise InvalidArgument(
            f"an IPv{net.version} subnet's prefix must be /{lo} to /{hi}, got /{net.prefixlen}"
        )
    mode = check_ipv6_mode(net, ipv6_address_mode, gateway, bool(pools))
    first, last = net.network_address + 1, net.broadcast_address - (1 if net.version == 4 else 0)
    gw: Addr | None
    if gateway == "none":
        gw = None
    elif gateway:
        gw = parse_ip(gateway, "gateway_ip")
        if gw not in net or gw == net.network_address or (net.version == 4 and gw == net.broadcast_address):
            raise InvalidArgument(f"gateway_ip {gateway} is not a host address of {cidr}")
        if mode == SLAAC and (mac := eui64_mac(gw)):
            raise InvalidArgument(
                f"gateway_ip {gateway} is the EUI-64 address of a port MAC ({mac}); "
                "a SLAAC subnet's ports get those"
            )
    else:
        gw = first
    ranges: list[tuple[Addr, Addr]] = []
    if pools:
        for i, (start, end) in enumerate(pools):
            a = parse_ip(start, f"allocation_pools[{i}].start")
            b = parse_ip(end, f"allocation_pools[{i}].end")
            if a.version != net.version or b.version != net.version or a > b:
                raise InvalidArgument(
                    f"allocation_pools[{i}] {start}-{end} is not a range of IPv{net.version}"
                )
            if a < first or b > last:
                raise InvalidArgument(
                    f"allocation_pools[{i}] {start}-{end} is not inside {cidr}'s host addresses"
                )
            if gw is not None and a <= gw <= b:
                raise InvalidArgument(f"allocation_pools[{i}] {start}-{end} holds the gateway {gw}")
            ranges.append((a, b))
        ranges.sort()
        for (_, b1), (a2, _) in itertools.pairwise(ranges):
            if a2 <= b1:
                raise InvalidArgument("allocation_pools overlap")
    elif mode == SLAAC:
        pass  # no pools: each address is made from its port's MAC
    else:
        # Everything but the network, broadcast and gateway addresses.
        if gw is None:
            ranges = [(first, last)]
        else:
            ranges = [r for r in ((first, gw - 1), (gw + 1, last)) if r[0] <= r[1]]
    return {
        "cidr": str(net),
        "ip_version": net.version,
        "gateway_ip": "" if gw is None else str(gw),
        "allocation_pools": pools_json(ranges),
        "dns_servers": json.dumps(check_dns(dns)),
        "ipv6_address_mode": mode,
    }


def check_ipv6_mode(net: Net, mode: int, gateway: str, has_pools: bool) -> int:
    """The subnet's Ipv6AddressMode (STATIC for IPv6 without one), or
    INVALID_ARGUMENT."""
    if mode not in netpb.Ipv6AddressMode.values():
        raise InvalidArgument(f"ipv6_address_mode must be STATIC or SLAAC, got {mode}")
    if net.version == 4:
        if mode:
            raise InvalidArgument(f"ipv6_address_mode is for IPv6 subnets only; {net} is IPv4")
        return 0
    if mode != SLAAC:
        return STATIC
    if net.prefixlen != 64:
        raise InvalidArgument(
            f"a SLAAC subnet must be a /64 (guests fill the other 64 bits from their MAC), got /{net.prefixlen}"
        )
    if gateway == "none":
        raise InvalidArgument(
            "a SLAAC subnet needs a gateway: it is the router its router advertisements announce"
        )
    if has_pools:
        raise InvalidArgument("allocation_pools do not apply to SLAAC subnets: addresses come from MACs")
    return SLAAC


def check_dns(dns: list[str]) -> list[str]:
    if len(dns) > MAX_DNS:
        raise InvalidArgument(f"at most {MAX_DNS} dns_servers, got {len(dns)}")
    return [str(parse_ip(d, f"dns_servers[{i}]")) for i, d in enumerate(dns)]


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{random.randrange(256):02x}" for _ in range(3))


def eui64_address(cidr: str, mac: str) -> str:
    """The modified EUI-64 address of a MAC in a /64: the universal/local bit
    of the first octet flipped, ff:fe inserted in the middle (RFC 4291 2.5.1)."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.ip_network(cidr).network_address + int.from_bytes(iid, "big"))


def eui64_mac(addr: Addr) -> str | None:
    """The port MAC (one of ours: MAC_PREFIX) whose EUI-64 address this is, or None."""
    iid = (int(addr) & (2**64 - 1)).to_bytes(8, "big")
    if addr.version != 6 or iid[3:5] != b"\xff\xfe":
        return None
    mac = ":".join(f"{x:02x}" for x in bytes([iid[0] ^ 0x02]) + iid[1:3] + iid[5:])
    return mac if mac.startswith(MAC_PREFIX + ":") else None


def _free_addresses(row: Subnet, taken: set[str]) -> Iterator[str]:
    for start, end in subnet_pools(row):
        ip = start
        while ip <= end:
            s = str(ip)
            if s not in taken:
                yield s
            ip += 1


# Pools bigger than this are probed at a few random addresses before being
# scanned: reading every taken address of a big subnet, inside the write
# transaction, costs far more than a miss. Small pools hand out in order.
SCAN_LIMIT = 1024
PROBES = 8


def _random_addresses(row: Subnet, n: int) -> list[str]:
    pools = subnet_pools(row)
    sizes = [int(end) - int(start) + 1 for start, end in pools]
    total = sum(sizes)
    if total <= SCAN_LIMIT:
        return []
    out = []
    for _ in range(n):
        k = random.randrange(total)
        for (start, _end), size in zip(pools, sizes, strict=True):
            if k < size:
                out.append(str(start + k))
                break
            k -= size
    return out


def _mac_of_fixed(subnets: list[Subnet], fixed: list[tuple[str, str]]) -> str | None:
    """The MAC that an asked-for address on a SLAAC subnet is made from (the
    port gets it), or None: a random one."""
    slaac = {s.id for s in subnets if s.ipv6_address_mode == SLAAC}
    for subnet_id, ip in fixed:
        mac = eui64_mac(ipaddress.ip_address(ip)) if ip and subnet_id in slaac else None
        if mac:
            return mac
    return None


def _slaac_fixed_ip(sub: Subnet, ip: str, mac: str) -> str:
    """A port's address on a SLAAC subnet: the EUI-64 of its MAC; an asked-for
    address must be that one."""
    address = eui64_address(sub.cidr, mac)
    if ip and ip != address:
        prefix = ipaddress.ip_network(sub.cidr).network_address
        raise InvalidArgument(
            f"fixed IP {ip} on SLAAC subnet {sub.name!r} is not the EUI-64 address of the port's MAC: "
            f"give the subnet alone, or {prefix}f816:3eff:feXX:XXXX (the port then gets MAC "
            f"{MAC_PREFIX}:XX:XX:XX)",
            reason="SLAAC_ADDRESS_FIXED",
        )
    return address


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


class Networks:
    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    # Change plumbing

    def _bump(self, node_ids: Iterable[str]) -> set[str]:
        """Bumps the nodes' desired revision (inside the write transaction)."""
        now = clock.now()
        out = set(node_ids)
        for node_id in sorted(out):
            node_store.bump_desired_revision(node_id, now)
        return out

    def _notify(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.nodes.registry.notify_threadsafe(node_id)

    # Networks

    def _network_visible(self, caller: Principal, row: Network) -> bool:
        return caller.can_see(row.project_id) or row.shared

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
        for key in ("shared", "external_routable"):
            if fields.get(key) and not caller.is_admin:
                raise PermissionDenied(
                    f"only admins may set network.{key}", reason="ROLE_REQUIRED", required_role="admin"
                )

    @staticmethod
    def _check_mtu(mtu: int) -> int:
        if mtu == 0:
            return DEFAULT_MTU
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise InvalidArgument(f"mtu must be between {MIN_MTU} and {MAX_MTU}, got {mtu}")
        return mtu

    def create_network(self, caller: Principal, fields: dict[str, Any], request_id: str) -> Network:
        self._admin_only(caller, fields)
        fields["mtu"] = self._check_mtu(fields.get("mtu", 0))

        def make() -> Network:
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
            request_id,
            make,
            lambda i: self.get_network(caller, i),
            lambda n: n.id,
        )

    def update_network(self, caller: Principal, network_id: str, fields: dict[str, Any]) -> Network:
        self._admin_only(caller, {k: True for k in fields if k in ("shared", "external_routable")})
        if "mtu" in fields:
            fields["mtu"] = self._check_mtu(fields["mtu"])
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
                self._bump(store.nodes_with_ports(network_ids=[row.id]))
                if {"mtu", "external_routable"} & set(fields)
                else set()
            )
        self._notify(nodes)
        return self.get_network(caller, network_id)

    def delete_network(self, caller: Principal, network_id: str) -> None:
        with write_transaction():
            row = self._owned_network(caller, network_id)
            store.lock_network(row.id)
            bound = store.count_bound_ports(row.id)
            if bound:
                raise FailedPrecondition(
                    f"network {row.name!r} has {bound} port(s) bound to instances; delete those instances first",
                    reason="NETWORK_IN_USE",
                )
            groups = store.groups_of_ports(p.id for p in store.network_ports(row.id))
            store.delete_network(row.id)
            nodes = self._bump(store.nodes_with_ports(group_ids=groups))
        self._notify(nodes)

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
        request_id: str,
    ) -> Subnet:
        self.get_network(caller, network_id)  # NOT_FOUND before PERMISSION_DENIED

        touched: set[str] = set()

        def make() -> Subnet:
            net = self._owned_network(caller, network_id)
            store.lock_network(net.id)
            mine = ipaddress.ip_network(cidr_fields["cidr"])
            for other in store.subnets_of([net.id]):
                theirs = ipaddress.ip_network(other.cidr)
                if theirs.version == mine.version and theirs.overlaps(mine):
                    raise InvalidArgument(
                        f"cidr {mine} overlaps subnet {other.name!r} ({other.cidr}) of this network",
                        reason="SUBNET_OVERLAP",
                    )
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
                    if not self._take_any(port, row):
                        raise AlreadyExists(
                            f"port {port.id}'s EUI-64 address is already in use on this subnet",
                            reason="IP_ADDRESS_IN_USE",
                        )
                groups = store.groups_of_ports(p.id for p in ports)
            touched.update(self._bump(store.nodes_with_ports(network_ids=[net.id], group_ids=groups)))
            return row

        row = idempotent_create(
            "subnet",
            caller.project_id,
            request_id,
            make,
            lambda i: self.get_subnet(caller, i),
            lambda s: s.id,
        )
        self._notify(touched)
        return row

    def update_subnet(self, caller: Principal, subnet_id: str, fields: dict[str, Any]) -> Subnet:
        with write_transaction():
            row = self.get_subnet(caller, subnet_id)
            self._owned_network(caller, row.network_id)
            if "dns_servers" in fields:
                fields["dns_servers"] = json.dumps(check_dns(fields["dns_servers"]))
            store.update_subnet(row.id, fields, clock.now())
            nodes = (
                self._bump(store.nodes_with_ports(network_ids=[row.network_id]))
                if "dns_servers" in fields
                else set()
            )
        self._notify(nodes)
        return self.get_subnet(caller, subnet_id)

    def delete_subnet(self, caller: Principal, subnet_id: str) -> None:
        with write_transaction():
            row = self.get_subnet(caller, subnet_id)
            self._owned_network(caller, row.network_id)
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
            nodes = self._bump(store.nodes_with_ports(network_ids=[row.network_id], group_ids=groups))
        self._notify(nodes)

    # Security groups

    def _ensure_default_group(self, project_id: str) -> SecurityGroup:
        """The project's default group, made on first need (idempotent, race-safe)."""
        row = store.default_group(project_id)
        if row is not None:
            return row
        now = clock.now()
        gid = clock.new_id()
        rules = []
        for direction in (EGRESS, INGRESS):
            for version in (4, 6):
                rules.append(
                    {
                        "id": clock.new_id(),
                        "security_group": gid,
                        "direction": direction,
                        "ip_version": version,
                        "protocol": "",
                        "remote_group": gid if direction == INGRESS else None,
                        "create_time": now,
                    }
                )
        made = store.insert_default_group(
            {
                "id": gid,
                "project": project_id,
                "name": DEFAULT_GROUP,
                "description": "all egress; ingress from members of this group",
                "is_default": True,
                "create_time": now,
                "update_time": now,
            },
            rules,
        )
        if made is not None:
            return made
        row = store.default_group(project_id)
        if row is None:
            raise FailedPrecondition(
                f"this project has a security group named {DEFAULT_GROUP!r} that is not its default group",
                reason="SECURITY_GROUP_EXISTS",
            )
        return row

    def get_group(self, caller: Principal, group_id: str) -> SecurityGroup:
        row = store.get_group(group_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("security group", group_id)
        return row

    def find_group(self, caller: Principal, project_id: str, ref: str) -> SecurityGroup:
        """By id or name, in `project_id` (the project of the port it is for)."""
        if is_uuid(ref):
            row = store.get_group(ref)
        else:
            row = (
                self._ensure_default_group(project_id)
                if ref == DEFAULT_GROUP
                else store.find_group(project_id, ref)
            )
        if row is None or row.project_id != project_id or not caller.can_see(row.project_id):
            raise not_found("security group", ref)
        return row

    def list_groups(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[SecurityGroup], str]:
        if store.default_group(caller.project_id) is None:
            with write_transaction():
                self._ensure_default_group(caller.project_id)
        return store.list_groups(page_size, page_token, name, None if caller.is_admin else caller.project_id)

    def rules(self, group_ids: Iterable[str]) -> dict[str, list[SecurityGroupRule]]:
        return store.rules_of(group_ids)

    def create_group(self, caller: Principal, name: str, description: str, request_id: str) -> SecurityGroup:
        if name == DEFAULT_GROUP:
            raise AlreadyExists(
                f"{DEFAULT_GROUP!r} is the project's default group", reason="SECURITY_GROUP_EXISTS"
            )

        def make() -> SecurityGroup:
            now = clock.now()
            return store.insert_group(
                {
                    "id": clock.new_id(),
                    "project": caller.project_id,
                    "name": name,
                    "description": description,
                    "create_time": now,
                    "update_time": now,
                }
            )

        return idempotent_create(
            "security_group",
            caller.project_id,
            request_id,
            make,
            lambda i: self.get_group(caller, i),
            lambda g: g.id,
        )

    def update_group(self, caller: Principal, group_id: str, fields: dict[str, Any]) -> SecurityGroup:
        with write_transaction():
            row = self.get_group(caller, group_id)
            if (
                "name" in fields
                and fields["name"] != row.name
                and (row.is_default or fields["name"] == DEFAULT_GROUP)
            ):
                raise InvalidArgument(f"the name {DEFAULT_GROUP!r} belongs to the project's default group")
            store.update_group(row.id, fields, clock.now())
        return self.get_group(caller, group_id)

    def delete_group(self, caller: Principal, group_id: str) -> None:
        with write_transaction():
            row = self.get_group(caller, group_id)
            if row.is_default:
                raise FailedPrecondition(
                    "the project's default security group cannot be deleted", reason="SECURITY_GROUP_DEFAULT"
                )
            used = store.count_group_ports(row.id)
            if used:
                raise FailedPrecondition(
                    f"security group {row.name!r} is used by {used} port(s)", reason="SECURITY_GROUP_IN_USE"
                )
            nodes = store.nodes_with_ports(group_ids=[row.id])
            store.delete_group(row.id)
            nodes = self._bump(nodes)
        self._notify(nodes)

    def create_rule(self, caller: Principal, fields: dict[str, Any]) -> SecurityGroupRule:
        group = self.get_group(caller, fields["security_group"])
        remote = fields.get("remote_group")
        if remote:
            other = store.get_group(remote)
            if other is None or other.project_id != group.project_id:
                raise not_found("security group", remote)
        same = ("direction", "ip_version", "protocol", "port_range_min", "port_range_max", "remote_cidr")
        with write_transaction():
            self.get_group(caller, group.id)
            for r in store.rules_of([group.id]).get(group.id, []):
                if all(getattr(r, k) == fields[k] for k in same) and (r.remote_group_id or None) == remote:
                    raise AlreadyExists(
                        f"security group {group.name!r} has this rule already ({r.id})",
                        reason="SECURITY_GROUP_RULE_EXISTS",
                    )
            row = store.insert_rule({**fields, "id": clock.new_id(), "create_time": clock.now()})
            nodes = self._bump(store.nodes_with_ports(group_ids=[group.id]))
        self._notify(nodes)
        return row

    def delete_rule(self, caller: Principal, rule_id: str) -> None:
        with write_transaction():
            row = store.get_rule(rule_id)
            if row is None:
                raise not_found("security group rule", rule_id)
            group = store.get_group(row.security_group_id)
            if group is None or not caller.can_see(group.project_id):
                raise not_found("security group rule", rule_id)
            nodes = store.nodes_with_ports(group_ids=[group.id])
            store.delete_rule(row.id)
            nodes = self._bump(nodes)
        self._notify(nodes)

    # Ports

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
        subnets = {s.id: s for s in store.subnets_of([net.id])}
        out = []
        for i, (subnet_id, ip) in enumerate(wanted):
            if subnet_id and subnet_id not in subnets:
                raise not_found("subnet", subnet_id)
            if ip:
                addr = parse_ip(ip, f"fixed_ips[{i}].ip_address")
                holders = [s for s in subnets.values() if addr in ipaddress.ip_network(s.cidr)]
                if subnet_id:
                    holders = [s for s in holders if s.id == subnet_id]
                if not holders:
                    raise InvalidArgument(f"fixed IP {ip} is in no subnet of network {net.name!r}")
                sub = holders[0]
                cidr = ipaddress.ip_network(sub.cidr)
                if (
                    addr == cidr.network_address
                    or (cidr.version == 4 and addr == cidr.broadcast_address)
                    or str(addr) == sub.gateway_ip
                ):
                    raise InvalidArgument(
                        f"fixed IP {ip} is the network, broadcast or gateway address of {sub.cidr}"
                    )
                out.append((sub.id, str(addr)))
            elif subnet_id:
                out.append((subnet_id, ""))
            else:
                raise InvalidArgument(f"fixed_ips[{i}] needs a subnet_id or an ip_address")
        if len({s for s, _ in out}) != len(out):
            raise InvalidArgument("at most one fixed IP per subnet")
        return out

    def _allocate(
        self, port: Port, net: Network, subnets: list[Subnet], fixed: list[tuple[str, str]]
    ) -> None:
        """IPAM, inside the write transaction: takes the asked-for addresses, or
        one free address from the first IPv4 and the first static IPv6 subnet.
        And always one on every SLAAC subnet, the EUI-64 of the port's (stored)
        MAC: its guest configures those from the router advertisements anyway,
        and anti-spoofing lets through only addresses the port holds."""
        slaac = [s for s in subnets if s.ipv6_address_mode == SLAAC]
        asked = {subnet_id for subnet_id, _ in fixed}
        for sub in slaac:
            if sub.id not in asked and not self._take_any(port, sub):
                raise AlreadyExists(
                    f"IP address {eui64_address(sub.cidr, port.mac_address)} is already in use on "
                    f"subnet {sub.name!r}",
                    reason="IP_ADDRESS_IN_USE",
                )
        if not fixed:
            for version in (4, 6):
                of_version = [s for s in subnets if s.ip_version == version and s.ipv6_address_mode != SLAAC]
                if not of_version:
                    continue
                for sub in of_version:
                    if self._take_any(port, sub):
                        break
                else:
                    raise ResourceExhausted(
                        f"no free IPv{version} address left on network {net.name!r}",
                        reason="IP_POOL_EXHAUSTED",
                    )
            return
        by_id = {s.id: s for s in subnets}
        for subnet_id, ip in fixed:
            sub = by_id.get(subnet_id)
            if sub is None:
                raise not_found("subnet", subnet_id)
            if sub.ipv6_address_mode == SLAAC:
                ip = _slaac_fixed_ip(sub, ip, port.mac_address)
            if ip:
                if not store.allocate(sub.id, ip, port.id):
                    raise AlreadyExists(
                        f"IP address {ip} is already in use on subnet {sub.name!r}",
                        reason="IP_ADDRESS_IN_USE",
                    )
            elif not self._take_any(port, sub):
                raise ResourceExhausted(
                    f"no free address left on subnet {sub.name!r}", reason="IP_POOL_EXHAUSTED"
                )

    @staticmethod
    def _take_any(port: Port, sub: Subnet) -> bool:
        """One address of the subnet for the port: on a SLAAC subnet the
        EUI-64 of its MAC (no pools), else a free one of the pools."""
        if sub.ipv6_address_mode == SLAAC:
            return store.allocate(sub.id, eui64_address(sub.cidr, port.mac_address), port.id)
        if any(store.allocate(sub.id, ip, port.id) for ip in _random_addresses(sub, PROBES)):
            return True
        taken = store.allocated(sub.id)
        # A racing controller may take a candidate after we read: try the next one.
        return any(store.allocate(sub.id, ip, port.id) for ip in _free_addresses(sub, taken))

    def _insert_port(
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
    ) -> Port:
        now = clock.now()
        subnets = store.subnets_of([net.id])
        wanted = _mac_of_fixed(subnets, fixed)
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
        self._allocate(row, net, subnets, fixed)
        store.set_port_groups(row.id, group_ids)
        return row

    def _groups_for(self, caller: Principal, project_id: str, refs: list[str]) -> list[str]:
        if not refs:
            return [self._ensure_default_group(project_id).id]
        return list(dict.fromkeys(self.find_group(caller, project_id, r).id for r in refs))

    def create_port(
        self,
        caller: Principal,
        network_id: str,
        name: str,
        description: str,
        fixed_ips: list[tuple[str, str]],
        group_refs: list[str],
        request_id: str,
    ) -> Port:
        net = self.get_network(caller, network_id)
        fixed = self._plan_fixed_ips(net, fixed_ips)
        for ref in group_refs:
            if ref != DEFAULT_GROUP:
                self.find_group(caller, caller.project_id, ref)

        def make() -> Port:
            self.get_network(caller, network_id)
            groups = self._groups_for(caller, caller.project_id, group_refs)
            return self._insert_port(caller.project_id, net, fixed, groups, name, description)

        return idempotent_create(
            "port", caller.project_id, request_id, make, lambda i: self.get_port(caller, i), lambda p: p.id
        )

    def update_port(
        self, caller: Principal, port_id: str, fields: dict[str, Any], group_refs: list[str] | None
    ) -> Port:
        with write_transaction():
            row = self.get_port(caller, port_id)
            nodes: set[str] = set()
            if group_refs is not None:
                before = store.port_groups([row.id]).get(row.id, [])
                groups = self._groups_for(caller, row.project_id, group_refs)
                nodes |= store.nodes_with_ports(group_ids=before)
                store.set_port_groups(row.id, groups)
                nodes |= store.nodes_with_ports(group_ids=groups)
            store.update_port(row.id, fields, clock.now())
            nodes = self._bump(nodes)
        self._notify(nodes)
        return self.get_port(caller, port_id)

    def delete_port(self, caller: Principal, port_id: str) -> None:
        with write_transaction():
            row = self.get_port(caller, port_id)
            if row.instance_id:
                raise FailedPrecondition(
                    f"port {row.id} is bound to instance {row.instance_id}; delete the instance first",
                    reason="PORT_IN_USE",
                )
            groups = store.port_groups([row.id]).get(row.id, [])
            store.delete_port(row.id)
            nodes = self._bump(store.nodes_with_ports(group_ids=groups))
        self._notify(nodes)

    # Instances: NICs at create, ports freed when gone, NICs in messages

    def prepare_nics(self, caller: Principal, options: Mapping[str, Any]) -> Any:
        """Resolves the NICs of a create before its write
        transaction; returns the bind step (or None with no NICs asked for)."""
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
                if port.id in seen_ports:
                    raise InvalidArgument(f"networks[{i}]: port {port.id} is asked for twice")
                seen_ports.add(port.id)
                plans.append(_NicPlan(port=port))
            else:
                net = self.find_network(caller, req.network)
                fixed = self._plan_fixed_ips(net, [("", req.fixed_ip)]) if req.fixed_ip else []
                for sub, ip in fixed:
                    if store.is_allocated(sub, ip):
                        raise AlreadyExists(f"IP address {ip} is already in use", reason="IP_ADDRESS_IN_USE")
                plans.append(_NicPlan(network=net, fixed=fixed))
        for ref in group_refs:
            if ref != DEFAULT_GROUP:
                self.find_group(caller, caller.project_id, ref)

        def bind(row: Instance) -> set[str]:
            groups = (
                self._groups_for(caller, caller.project_id, group_refs)
                if any(p.network for p in plans)
                else []
            )
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
                    self._insert_port(
                        caller.project_id,
                        plan.network,
                        plan.fixed,
                        groups,
                        instance_id=row.id,
                        nic_index=index,
                        auto_delete=True,
                    )
                    nets.add(plan.network.id)
            return self._bump(store.nodes_with_ports(network_ids=nets, group_ids=all_groups))

        return bind

    def prepare_create(self, caller: Principal, options: Mapping[str, Any]) -> CreateBind | None:
        """As an InstanceExtension: the NICs of a create."""
        return self.prepare_nics(caller, options)

    def may_read_blob(self, node_id: str, sha256: str) -> bool:
        return False  # ports use no image blobs

    def tunnel_moved(self, node_id: str) -> None:
        """A node's tunnel address moved (the registry tells): its peers get the new one."""
        self._tunnel_moved(node_id)

    def instance_gone(self, row: Instance) -> set[str]:
        """As an InstanceExtension: deletes the ports made for the instance, unbinds
        the ones it was given (in the transaction that deletes it)."""
        ports = store.ports_of_instances([row.id]).get(row.id, [])
        if not ports:
            return set()
        groups = store.groups_of_ports(p.id for p in ports)
        store.release_instance_ports(row.id, clock.now())
        return self._bump(store.nodes_with_ports(network_ids={p.network_id for p in ports}, group_ids=groups))

    def nics(self, instance_ids: list[str]) -> dict[str, list[Nic]]:
        by_instance = store.ports_of_instances(instance_ids)
        ips = store.port_ips(p.id for ps in by_instance.values() for p in ps)
        return {
            iid: [Nic(p.id, p.network_id, p.mac_address, [ip for _, ip in ips.get(p.id, [])]) for p in ports]
            for iid, ports in by_instance.items()
        }

    # The node's desired state

    def tunnel_ip(self, node_id: str, db_address: str = "") -> str:
        live = self.nodes.registry.snapshot(node_id)
        if live is not None:
            found = tunnel_ip(live.inventory, live.address)
            if found:
                return found
        return tunnel_host(db_address)

    def _tunnel_moved(self, node_id: str) -> None:
        """Registry listener: the nodes that hold peers of this node's ports
        get its new tunnel address (else only at the next change there)."""
        with write_transaction():
            networks = {p.network_id for p in store.node_ports(node_id, NOT_RUNNING)}
            nodes = self._bump(store.nodes_with_ports(network_ids=networks) - {node_id})
        self._notify(nodes)

    def contribute(self, node_row: Any, state: npb.NodeDesiredState) -> None:
        """The networks part of a node's desired state (a fixed number of
        queries per node, however many ports)."""
        ports = store.node_ports(node_row.id, NOT_RUNNING)
        if not ports:
            return
        ids = [p.id for p in ports]
        ips = store.port_ips(ids)
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
                )
            )
            by_instance[p.instance_id].append(p)
        for inst in state.instances:
            nics = sorted(by_instance.get(inst.id, []), key=lambda p: (p.nic_index, p.id))
            if nics:
                del inst.port_ids[:]
                inst.port_ids.extend(p.id for p in nics)
        net_ids = sorted({p.network_id for p in ports})
        subnets: dict[str, list[Subnet]] = defaultdict(list)
        for s in store.subnets_of(net_ids):
            subnets[s.network_id].append(s)
        peers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for net_id, peer_node, mac in store.peer_ports(net_ids, node_row.id, NOT_RUNNING):
            peers[net_id][peer_node].append(mac)
        addresses: dict[str, str] = {}
        peer_nodes = {n for by_node in peers.values() for n in by_node}
        if peer_nodes:
            from controller.db.models import Node

            addresses = dict(Node.select(Node.id, Node.address).where(Node.id.in_(list(peer_nodes))).tuples())
        tunnel = {n: self.tunnel_ip(n, addresses.get(n, "")) for n in peer_nodes}
        for net in store.networks_by_id(net_ids):
            state.networks.append(
                npb.DesiredNetwork(
                    id=net.id,
                    vni=net.vni,
                    mtu=net.mtu,
                    external_routable=net.external_routable,
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
                )
            )
        group_ids = {g for gs in groups.values() for g in gs}
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
