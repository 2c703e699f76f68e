"""Address maths and field checks: pure functions of their arguments (no
database, no clock), so they are unit-tested without a controller.

A subnet's allocation pools are stored as JSON ``[[start, end], ...]``; a
SLAAC subnet has none, its ports' addresses are the modified EUI-64 of their
MACs."""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from controller.errors import InvalidArgument, not_found
from kumo.v1 import network_pb2 as netpb

if TYPE_CHECKING:
    from controller.db.models import Subnet

DEFAULT_MTU = 1450  # 1500 less the VXLAN encapsulation
MIN_MTU, MAX_MTU = 576, 9000
MAC_PREFIX = "fa:16:3e"  # locally administered, unicast
STATIC, SLAAC = netpb.IPV6_ADDRESS_MODE_STATIC, netpb.IPV6_ADDRESS_MODE_SLAAC
MAX_DNS = 5
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address

# Pools bigger than this are probed at a few random addresses before being
# scanned: reading every taken address of a big subnet, inside the write
# transaction, costs far more than a miss. Small pools hand out in order.
SCAN_LIMIT = 1024
PROBES = 8


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


def check_mtu(mtu: int) -> int:
    """A network's MTU (0: the default), or INVALID_ARGUMENT."""
    if mtu == 0:
        return DEFAULT_MTU
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidArgument(f"mtu must be between {MIN_MTU} and {MAX_MTU}, got {mtu}")
    return mtu


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


def check_no_overlap(cidr: str, others: list[Subnet]) -> None:
    """Two subnets of one network must not overlap (INVALID_ARGUMENT,
    SUBNET_OVERLAP): a guest could not tell which one an address is on."""
    mine = ipaddress.ip_network(cidr)
    for other in others:
        theirs = ipaddress.ip_network(other.cidr)
        if theirs.version == mine.version and theirs.overlaps(mine):
            raise InvalidArgument(
                f"cidr {mine} overlaps subnet {other.name!r} ({other.cidr}) of this network",
                reason="SUBNET_OVERLAP",
            )


def plan_fixed_ips(
    network_name: str, subnets: list[Subnet], wanted: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Checks asked-for (subnet id, address) pairs against the network's
    subnets: each address in one of them and a host address, not the network,
    broadcast or gateway one; at most one per subnet."""
    by_id = {s.id: s for s in subnets}
    out = []
    for i, (subnet_id, ip) in enumerate(wanted):
        if subnet_id and subnet_id not in by_id:
            raise not_found("subnet", subnet_id)
        if ip:
            addr = parse_ip(ip, f"fixed_ips[{i}].ip_address")
            holders = [s for s in by_id.values() if addr in ipaddress.ip_network(s.cidr)]
            if subnet_id:
                holders = [s for s in holders if s.id == subnet_id]
            if not holders:
                raise InvalidArgument(f"fixed IP {ip} is in no subnet of network {network_name!r}")
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


def mac_of_fixed(subnets: list[Subnet], fixed: list[tuple[str, str]]) -> str | None:
    """The MAC that an asked-for address on a SLAAC subnet is made from (the
    port gets it), or None: a random one."""
    slaac = {s.id for s in subnets if s.ipv6_address_mode == SLAAC}
    for subnet_id, ip in fixed:
        mac = eui64_mac(ipaddress.ip_address(ip)) if ip and subnet_id in slaac else None
        if mac:
            return mac
    return None


def slaac_fixed_ip(sub: Subnet, ip: str, mac: str) -> str:
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


def free_addresses(row: Subnet, taken: set[str]) -> Iterator[str]:
    """The subnet's pool addresses not in `taken`, in order."""
    for start, end in subnet_pools(row):
        ip = start
        while ip <= end:
            s = str(ip)
            if s not in taken:
                yield s
            ip += 1


def random_addresses(row: Subnet, n: int) -> list[str]:
    """`n` random pool addresses to probe first, or none for a pool of at most
    SCAN_LIMIT addresses (those hand out in order)."""
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


# kumo.v1.NetworkType
VXLAN, FLAT, VLAN = netpb.NETWORK_TYPE_VXLAN, netpb.NETWORK_TYPE_FLAT, netpb.NETWORK_TYPE_VLAN
PHYSNET = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_provider(fields: dict[str, Any]) -> dict[str, Any]:
    """A network's L2 fields: tenant networks are VXLAN with no physical
    network; an external one is FLAT or VLAN on a named physical network."""
    kind = fields.get("network_type") or (FLAT if fields.get("external") else VXLAN)
    physnet = fields.get("physical_network", "")
    vlan = fields.get("segmentation_id", 0)
    if kind not in (VXLAN, FLAT, VLAN):
        raise InvalidArgument(f"network.network_type {kind} is not a known type")
    if kind == VXLAN:
        if fields.get("external"):
            raise InvalidArgument("network.network_type: an external network is FLAT or VLAN")
        if physnet or vlan:
            raise InvalidArgument(
                "network.physical_network and segmentation_id are for FLAT and VLAN networks"
            )
    else:
        if not physnet:
            raise InvalidArgument("network.physical_network is required for FLAT and VLAN networks")
        if not PHYSNET.fullmatch(physnet):
            raise InvalidArgument(
                "network.physical_network must be 1-64 letters, digits, '-', '_' or '.', got "
                + repr(physnet[:64])
            )
        if kind == VLAN and not 1 <= vlan <= 4094:
            raise InvalidArgument(f"network.segmentation_id must be 1-4094 for a VLAN network, got {vlan}")
        if kind == FLAT and vlan:
            raise InvalidArgument("network.segmentation_id is for VLAN networks only")
    return {"network_type": kind, "physical_network": physnet, "segmentation_id": vlan}
