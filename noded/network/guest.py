"""What a guest sees of its networks: one virtio NIC per port on the
network's bridge (its tap named after the port, so nftables can match it),
and the NoCloud network-config on its config drive (DHCP on each NIC: the
node's dnsmasq answers with exactly the port's fixed IP; SLAAC on IPv6 SLAAC
subnets, whose router advertisements give the port's EUI-64 fixed IP; the
address itself on other IPv6 subnets), and its host name: its first port's
name in that port's network."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from xml.sax.saxutils import quoteattr

from kumo.v1 import node_agent_pb2 as pb
from noded.network.names import bridge_name, tap_name
from noded.network.step import effective_mtu


def _ports(d: pb.DesiredInstance, ports: dict[str, pb.DesiredPort]) -> list[pb.DesiredPort]:
    missing = [pid for pid in d.port_ids if pid not in ports]
    if missing:
        raise RuntimeError(f"ports {', '.join(missing)} of instance {d.id} are not in the desired state")
    return [ports[pid] for pid in d.port_ids]


def interfaces(
    d: pb.DesiredInstance, ports: dict[str, pb.DesiredPort], networks: dict[str, pb.DesiredNetwork]
) -> list[str]:
    """libvirt <interface> elements, eth0 first."""
    out = []
    for p in _ports(d, ports):
        net = networks.get(p.network_id)
        mtu = effective_mtu(net) if net is not None else 0
        mtu_xml = f"\n      <mtu size='{mtu}'/>" if mtu else ""
        out.append(
            f"""<interface type='bridge'>
      <mac address={quoteattr(p.mac_address.lower())}/>
      <source bridge={quoteattr(bridge_name(p.network_id))}/>
      <target dev={quoteattr(tap_name(p.id))}/>
      <model type='virtio'/>{mtu_xml}
    </interface>"""
        )
    return out


def hostname(
    d: pb.DesiredInstance, ports: dict[str, pb.DesiredPort], networks: dict[str, pb.DesiredNetwork]
) -> str:
    """The guest's host name for the config drive: its eth0 port's name in
    that network's domain (`web1.app.kumo`, the name the network's resolver
    answers; cloud-init sets the host name from its first label), else the
    instance's own host name."""
    if d.port_ids:
        p = ports.get(d.port_ids[0])
        net = networks.get(p.network_id) if p is not None else None
        if p is not None and p.dns_name:
            return f"{p.dns_name}.{net.dns_domain}" if net is not None and net.dns_domain else p.dns_name
    return d.hostname


def _subnets(p: pb.DesiredPort, net: pb.DesiredNetwork | None) -> list[dict[str, Any]]:
    """A NIC's cloud-init (v1) subnets: DHCP first, unless the port has only
    IPv6 addresses; then SLAAC (once) or a static address per IPv6 fixed IP."""
    subnets = {s.id: s for s in net.subnets} if net is not None else {}
    if net is not None and net.external:
        return _bridged(p, subnets)
    v6 = [ip for ip in p.fixed_ips if ipaddress.ip_address(ip.ip_address).version == 6]
    out: list[dict[str, Any]] = [] if v6 and len(v6) == len(p.fixed_ips) else [{"type": "dhcp"}]
    for ip in v6:
        s = subnets.get(ip.subnet_id)
        if s is None:
            raise RuntimeError(f"subnet {ip.subnet_id} of port {p.id} is not in the desired state")
        if s.ipv6_slaac:
            if any(e["type"] == "ipv6_slaac" for e in out):
                continue
            entry: dict[str, Any] = {"type": "ipv6_slaac"}
        else:
            prefix = ipaddress.ip_network(s.cidr, strict=False).prefixlen
            entry = {"type": "static6", "address": f"{ip.ip_address}/{prefix}"}
            if s.gateway_ip:
                entry["gateway"] = s.gateway_ip
        if s.dns_servers:
            entry["dns_nameservers"] = list(s.dns_servers)
        elif s.gateway_ip and not s.ipv6_slaac:
            # The network's resolver on the gateway (SLAAC subnets say so
            # in their router advertisements).
            entry["dns_nameservers"] = [s.gateway_ip]
        out.append(entry)
    return out


def _bridged(p: pb.DesiredPort, subnets: dict[str, pb.DesiredSubnet]) -> list[dict[str, Any]]:
    """A bridged guest's NIC on a provider network: each fixed IP static, the
    LAN's gateway and the subnet's DNS servers (the node serves no DHCP or DNS
    on the LAN: the LAN's resolvers are the subnet's `dns_servers`)."""
    out: list[dict[str, Any]] = []
    for ip in p.fixed_ips:
        s = subnets.get(ip.subnet_id)
        if s is None:
            raise RuntimeError(f"subnet {ip.subnet_id} of port {p.id} is not in the desired state")
        prefix = ipaddress.ip_network(s.cidr, strict=False).prefixlen
        v4 = ipaddress.ip_address(ip.ip_address).version == 4
        entry: dict[str, Any] = {
            "type": "static" if v4 else "static6",
            "address": f"{ip.ip_address}/{prefix}",
        }
        if s.gateway_ip:
            entry["gateway"] = s.gateway_ip
        if s.dns_servers:
            entry["dns_nameservers"] = list(s.dns_servers)
        out.append(entry)
    return out


def network_config(
    d: pb.DesiredInstance, ports: dict[str, pb.DesiredPort], networks: dict[str, pb.DesiredNetwork]
) -> str:
    """NoCloud network-config, version 1 (JSON is YAML), each NIC matched by
    MAC: DHCP, then its IPv6 addresses (SLAAC or static). Empty when the guest
    has no NIC."""
    config = [
        {
            "type": "physical",
            "name": f"eth{i}",
            "mac_address": p.mac_address.lower(),
            "subnets": _subnets(p, networks.get(p.network_id)),
        }
        for i, p in enumerate(_ports(d, ports))
    ]
    if not config:
        return ""
    return json.dumps({"version": 1, "config": config}, indent=2) + "\n"
