"""What a guest sees of its networks: one virtio NIC per port on the
network's bridge (its tap named after the port, so nftables can match it),
and the NoCloud network-config on its config drive (DHCP on each NIC: the
node's dnsmasq answers with exactly the port's fixed IP)."""

from __future__ import annotations

import json
from xml.sax.saxutils import quoteattr

from kumo.v1 import node_pb2 as pb
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


def network_config(d: pb.DesiredInstance, ports: dict[str, pb.DesiredPort]) -> str:
    """NoCloud network-config, version 1 (JSON is YAML): DHCP on each NIC,
    matched by MAC. Empty when the guest has no NIC."""
    config = [
        {
            "type": "physical",
            "name": f"eth{i}",
            "mac_address": p.mac_address.lower(),
            "subnets": [{"type": "dhcp"}],
        }
        for i, p in enumerate(_ports(d, ports))
    ]
    if not config:
        return ""
    return json.dumps({"version": 1, "config": config}, indent=2) + "\n"
