"""nftables for this node daemon's networks, as two tables it owns whole
(named after the daemon, so several daemons on one host never touch each
other's rules) and replaces atomically in one `nft -f` transaction:

- `bridge kumo_<owner>` (stateless, sees each frame's bridge port):
  anti-spoofing (a port sends only from its MAC and fixed IPs; DHCP discovery
  from 0.0.0.0 is allowed; IPv6 also from link-local and `::`, neighbour
  advertisements only for its own addresses, no router advertisements or
  redirects: only the node's bridge is a router), and what must not cross the
  VXLAN: DHCP and DHCPv6, router solicitations and advertisements (each node
  answers for its own ports), ARP and neighbour discovery for or from the
  gateway addresses, and any frame from or to the gateway's MAC (each node's
  bridge owns the gateway address and MAC for its own ports).
- `inet kumo_<owner>` (stateful: bridged IP reaches the inet hooks through
  br_netfilter, so conntrack works; this kernel has no bridge conntrack):
  security groups per port, matched by the port's fixed IPs on its bridge
  (trustworthy once anti-spoofing ran), and outbound NAT. No routing between
  two networks on the host; of the host itself, guests reach only DHCP, DNS
  on their own network's gateway addresses (the network's resolver, which
  nothing but its bridge reaches), and ICMP (their gateway). Ingress is
  default-drop except the rules, replies (established/related), DHCP and
  IPv6 neighbour discovery; egress likewise except that allowed packets go on
  to the destination port's ingress chain (`return`, not `accept`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kumo.v1 import node_agent_pb2 as pb
from noded.network.cmd import run


@dataclass
class NetPlan:
    short: str
    bridge: str
    vxlan: str  # "" when the network has no peers
    cidrs: list[str]
    gateways: list[str]
    external_routable: bool
    dns: bool = True  # its dnsmasq is its resolver on the gateways
    external: bool = False
    gateway_mac: str = ""  # the bridge's, the same on every node ("" for an external network)


@dataclass
class PortPlan:
    short: str
    tap: str
    bridge: str
    mac: str
    ips: list[str]
    security_group_ids: list[str] = field(default_factory=list)


@dataclass
class RouterPlan:
    """SNAT of a router's subnets (this node is its SNAT node)."""

    cidrs: list[str]
    bridges: list[str]  # of its interface networks on this node
    external_bridge: str
    gateway_ip: str
    host_local: bool  # the external network is this host's own (external_routable)
    gateway_ip6: str = ""  # NAT66 to this address ("": no IPv6 egress)


@dataclass
class FloatingPlan:
    """1:1 NAT between a floating IP and a port's fixed IP on this node."""

    floating_ip: str
    fixed_ip: str
    bridge: str  # the port's network's bridge
    external_bridge: str
    host_local: bool


def _set(items: list[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _v4(ips: list[str]) -> list[str]:
    return [i for i in ips if ipaddress.ip_address(i).version == 4]


def _v6(ips: list[str]) -> list[str]:
    return [i for i in ips if ipaddress.ip_address(i).version == 6]


def _cidrs(cidrs: list[str], version: int) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [n for n in (ipaddress.ip_network(c, strict=False) for c in cidrs) if n.version == version]


def _nd_targets(items: list[str]) -> str:
    """IPv6 addresses or prefixes as a set of 128-bit numbers, to match
    ND_TARGET against: this nft has no `icmpv6 taddr`."""
    out = []
    for item in items:
        net = ipaddress.ip_network(item, strict=False)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        out.append(f"{lo:#x}" if lo == hi else f"{lo:#x}-{hi:#x}")
    return _set(out)


def _rule(
    r: pb.DesiredSecurityGroupRule, groups: dict[str, pb.DesiredSecurityGroup], verdict: str
) -> str | None:
    """One security group rule as an nft rule; None when it can match nothing
    (a remote group with no member of the rule's IP version)."""
    version = r.ip_version or 4
    fam = "ip" if version == 4 else "ip6"
    parts = ["meta nfproto ipv4" if version == 4 else "meta nfproto ipv6"]
    side = "saddr" if r.direction == "ingress" else "daddr"
    if r.remote_cidr:
        parts.append(f"{fam} {side} {ipaddress.ip_network(r.remote_cidr, strict=False)}")
    elif r.remote_group_id:
        group = groups.get(r.remote_group_id)
        members = [
            m for m in (group.member_ips if group else []) if ipaddress.ip_address(m).version == version
        ]
        if not members:
            return None
        parts.append(f"{fam} {side} {_set(members)}")
    proto = r.protocol.lower()
    if proto in ("tcp", "udp"):
        parts.append(f"meta l4proto {proto}")
        lo, hi = r.port_range_min, r.port_range_max
        if lo or hi:
            lo, hi = lo or hi, hi or lo
            parts.append(f"th dport {lo}-{hi}" if lo != hi else f"th dport {lo}")
    elif proto == "icmp":
        parts.append("meta l4proto icmp")
    elif proto in ("icmpv6", "ipv6-icmp"):
        parts.append("meta l4proto ipv6-icmp")
    elif proto:
        parts.append(f"meta l4proto {proto}")
    parts.append(verdict)
    return " ".join(parts)


ND_IN = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept"
ND_OUT = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } return"
ND = "ether type ip6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }"
# The target address of a neighbour solicitation or advertisement: bits 64-191
# of the ICMPv6 message.
ND_TARGET = "@th,64,128"
LINK_LOCAL = "fe80::/10"
PRESENT = "present"


def render(
    table: str,
    nets: list[NetPlan],
    ports: list[PortPlan],
    groups: dict[str, pb.DesiredSecurityGroup],
    routers: list[RouterPlan] | None = None,
    floating: list[FloatingPlan] | None = None,
) -> str:
    """The whole nft script: both tables, made anew in one transaction."""
    routers, floating = routers or [], floating or []
    b: list[str] = []  # bridge table body
    b.append("  chain prerouting {\n    type filter hook prerouting priority -200; policy accept;")
    for p in ports:
        b.append(f'    iifname "{p.tap}" jump spoof_{p.short}')
    for n in nets:
        if n.vxlan:
            b.append(f'    iifname "{n.vxlan}" jump overlay_{n.short}')
    b.append("  }")
    external = {n.bridge for n in nets if n.external}
    for hook in ("forward", "output"):
        b.append(f"  chain {hook}_ {{\n    type filter hook {hook} priority -200; policy accept;")
        for n in nets:
            if n.vxlan:
                b.append(f'    oifname "{n.vxlan}" jump overlay_{n.short}')
        if hook == "forward":
            # A bridged guest's address is kumo's (its config drive): a DHCP
            # server on the LAN must not hand it another one.
            for p in ports:
                if p.bridge in external:
                    b.append(f'    oifname "{p.tap}" ether type ip udp sport 67 udp dport 68 drop')
        b.append("  }")
    for p in ports:
        v4, v6 = _v4(p.ips), _v6(p.ips)
        b.append(f"  chain spoof_{p.short} {{")
        b.append(f"    ether saddr != {p.mac} drop")
        b.append(f"    ether type arp arp saddr ether != {p.mac} drop")
        b.append(f"    ether type arp arp saddr ip != {_set(['0.0.0.0', *v4])} drop")
        b.append("    ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 return")
        if v4:
            b.append(f"    ether type ip ip saddr != {_set(v4)} drop")
        else:
            b.append("    ether type ip drop")
        b.append(f"    ether type ip6 ip6 saddr != {_set(['::', LINK_LOCAL, *v6])} drop")
        # Only the node's bridge is a router: no rogue prefixes or default routes.
        b.append("    ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } drop")
        # Neighbour advertisements only for its own addresses (as ARP above).
        own6 = _nd_targets([LINK_LOCAL, *v6])
        b.append(f"    ether type ip6 icmpv6 type nd-neighbor-advert {ND_TARGET} != {own6} drop")
        b.append("  }")
    for n in nets:
        if not n.vxlan:
            continue
        b.append(f"  chain overlay_{n.short} {{")
        if n.gateway_mac:
            # Every node's bridge has this MAC (the gateway of its own ports):
            # nothing to or from it crosses, as Neutron DVR keeps its
            # distributed routers' MACs off the tunnels. Otherwise a peer's
            # bridge would be heard at this bridge's own address (its IPv6
            # link-local address too, DAD failing on both).
            b.append(f"    ether saddr {n.gateway_mac} drop")
            b.append(f"    ether daddr {n.gateway_mac} drop")
        b.append("    ether type ip udp dport { 67, 68 } drop")
        b.append("    ether type ip6 udp dport { 546, 547 } drop")
        # Each node's bridge is the router of its own ports.
        b.append("    ether type ip6 icmpv6 type { nd-router-solicit, nd-router-advert, nd-redirect } drop")
        gw4, gw6 = _v4(n.gateways), _v6(n.gateways)
        if gw4:
            b.append(f"    ether type arp arp saddr ip {_set(gw4)} drop")
            b.append(f"    ether type arp arp daddr ip {_set(gw4)} drop")
        if gw6:
            b.append(f"    {ND} ip6 saddr {_set(gw6)} drop")
            b.append(f"    {ND} {ND_TARGET} {_nd_targets(gw6)} drop")
        b.append("  }")

    # An empty chain: listing it is how `exists` sees the table (cheaply).
    i: list[str] = [f"  chain {PRESENT} {{\n  }}"]  # inet table body
    chains: dict[str, list[str]] = {"forward": [], "input": [], "output": []}
    for n in nets:
        chains["input"].append(f'iifname "{n.bridge}" udp sport 68 udp dport 67 accept')
        chains["output"].append(f'oifname "{n.bridge}" udp sport 67 udp dport 68 accept')
        # The network's resolver, whatever the port's egress rules, as DHCP:
        # on its own gateway addresses only (not another network's, nor the
        # bridge's link-local address).
        # From anywhere else (the host's other links, the host itself) it
        # is no open resolver.
        for fam, gws in (("ip", _v4(n.gateways)), ("ip6", _v6(n.gateways))):
            if gws and n.dns:
                dns = f"{fam} daddr {_set(gws)} meta l4proto {{ tcp, udp }} th dport 53"
                chains["input"].append(f'iifname "{n.bridge}" {dns} accept')
                chains["input"].append(f'iifname != "{n.bridge}" {dns} drop')
    for hook in chains:
        chains[hook].append("ct state established,related accept")
    bridges = [n.bridge for n in nets]
    # Routed pairs: a router's subnets out to its external network (SNAT);
    # from the external network in only to floating IPs (DNAT), through the
    # ports' ingress rules like any other traffic.
    out_routes = {(b, r.external_bridge) for r in routers for b in r.bridges}
    out_routes |= {(f.bridge, f.external_bridge) for f in floating}
    in_routes = {(f.external_bridge, f.bridge) for f in floating}
    for src, dst in sorted(in_routes):
        chains["forward"].append(f'iifname "{src}" oifname "{dst}" jump from_external')
    if len(bridges) > 1:
        # The host routes (for NAT), but never from one network to another.
        for n in nets:
            others = [
                f'"{b}"' for b in bridges if b != n.bridge and (n.bridge, b) not in out_routes | in_routes
            ]
            if others:
                chains["forward"].append(f'iifname "{n.bridge}" oifname {_set(others)} drop')
    # A tenant network without a router (or outbound NAT) has no way out.
    routed_out = {b for r in routers if r.host_local for b in r.bridges}
    routed_out |= {f.bridge for f in floating if f.host_local}
    routed6 = {b for r in routers if r.gateway_ip6 for b in r.bridges}
    for n in nets:
        if not (n.external or n.external_routable or n.bridge in routed_out):
            chains["forward"].append(f'iifname "{n.bridge}" oifname != "kb-*" drop')
        elif n.bridge in routed_out and n.bridge not in routed6:
            # The host's own way out is for IPv4 (masqueraded); IPv6 only through a router's NAT66.
            chains["forward"].append(f'iifname "{n.bridge}" meta nfproto ipv6 oifname != "kb-*" drop')
    for p in ports:
        for fam, ips in (("ip", _v4(p.ips)), ("ip6", _v6(p.ips))):
            if not ips:
                continue
            src = f'iifname "{p.bridge}" {fam} saddr {_set(ips)} jump egress_{p.short}'
            dst = f'oifname "{p.bridge}" {fam} daddr {_set(ips)} jump ingress_{p.short}'
            chains["forward"] += [src, dst]
            chains["input"].append(src)
            chains["output"].append(dst)
    for f in floating:
        # The host's own traffic to a floating IP (a local address: routed to
        # lo) is DNATed in the output hook, whose out device stays lo, so it is
        # matched by its original destination to go through the port's ingress.
        for p in ports:
            if p.bridge == f.bridge and f.fixed_ip in p.ips:
                chains["output"].append(
                    f"ct original ip daddr {f.floating_ip} ip daddr {f.fixed_ip} jump ingress_{p.short}"
                )
    if bridges:
        # Of the host itself, guests reach DHCP and DNS (above) and ping their gateway;
        # nothing else (its services are not theirs), whatever their egress rules.
        names = _set([f'"{b}"' for b in bridges])
        chains["input"].append(f"iifname {names} meta l4proto {{ icmp, ipv6-icmp }} accept")
        chains["input"].append(f"iifname {names} drop")
    for hook, rules in chains.items():
        i.append(f"  chain {hook}_ {{\n    type filter hook {hook} priority 0; policy accept;")
        i += [f"    {r}" for r in rules]
        i.append("  }")
    for p in ports:
        ingress = ["udp sport 67 udp dport 68 accept", ND_IN]
        egress = ["udp sport 68 udp dport 67 return", ND_OUT]
        for gid in p.security_group_ids:
            g = groups.get(gid)
            for r in g.rules if g else []:
                if r.direction == "ingress":
                    line = _rule(r, groups, "accept")
                    if line:
                        ingress.append(line)
                elif r.direction == "egress":
                    line = _rule(r, groups, "return")
                    if line:
                        egress.append(line)
        i.append(f"  chain ingress_{p.short} {{")
        i += [f"    {r}" for r in ingress] + ["    drop", "  }"]
        i.append(f"  chain egress_{p.short} {{")
        i += [f"    {r}" for r in egress] + ["    drop", "  }"]
    if in_routes:
        i.append("  chain from_external {\n    ct status dnat return\n    drop\n  }")
    if floating:
        # To a floating IP: from the external network, and from this host.
        i.append("  chain prerouting_ {\n    type nat hook prerouting priority dstnat; policy accept;")
        for f in floating:
            i.append(f'    iifname "{f.external_bridge}" ip daddr {f.floating_ip} dnat ip to {f.fixed_ip}')
        i.append("  }")
        i.append("  chain output_nat {\n    type nat hook output priority -100; policy accept;")
        for f in floating:
            i.append(f"    ip daddr {f.floating_ip} dnat ip to {f.fixed_ip}")
        i.append("  }")
    nat = [n for n in nets if n.external_routable]
    if nat or routers or floating:
        i.append("  chain postrouting_ {\n    type nat hook postrouting priority srcnat; policy accept;")
        # A floating IP's port leaves from it; a router's subnets from the router's address.
        for f in floating:
            i.append(f'    oifname "{f.external_bridge}" ip saddr {f.fixed_ip} snat ip to {f.floating_ip}')
        for r in routers:
            # NAT66 as NAT44: one address per node on the external network, no
            # route to the tenant prefixes needed on the LAN's router.
            for fam, gw in (("ip", r.gateway_ip), ("ip6", r.gateway_ip6)):
                nets_of = [str(n) for n in _cidrs(r.cidrs, 4 if fam == "ip" else 6)]
                if gw and nets_of:
                    cidrs = _set(nets_of)
                    i.append(
                        f'    oifname "{r.external_bridge}" {fam} saddr {cidrs} {fam} daddr != {cidrs} snat {fam} to {gw}'
                    )
        # A host-local external network: beyond it is this host's own way out (IPv4).
        local = sorted(
            {str(c) for r in routers if r.host_local for c in _cidrs(r.cidrs, 4)}
            | {f"{f.fixed_ip}/32" for f in floating if f.host_local}
        )
        for c in local:
            net = ipaddress.ip_network(c, strict=False)
            i.append(f'    oifname != "kb-*" ip saddr {net} masquerade')
        for n in nat:
            for c in n.cidrs:
                net = ipaddress.ip_network(c, strict=False)
                if net.version == 4:
                    i.append(f'    oifname != "{n.bridge}" ip saddr {net} ip daddr != {net} masquerade')
        i.append("  }")

    out = []
    for family, body in (("bridge", b), ("inet", i)):
        # "add, delete, define" in one transaction: an atomic whole-table replace.
        out.append(f"table {family} {table}\ndelete table {family} {table}")
        out.append(f"table {family} {table} {{\n" + "\n".join(body) + "\n}")
    return "\n".join(out) + "\n"


def apply(script: str) -> None:
    run(["nft", "-f", "-"], stdin=script)


def exists(table: str) -> bool:
    """Whether the inet table is there, by listing its one empty chain: nft
    1.0 reads the whole ruleset for `list table` and even `list tables`,
    seconds every pass with thousands of rules."""
    return run(["nft", "list", "chain", "inet", table, PRESENT], check=False).returncode == 0


def remove(table: str) -> None:
    for family in ("bridge", "inet"):
        if run(["nft", "list", "table", family, table], check=False).returncode == 0:
            run(["nft", "delete", "table", family, table])
