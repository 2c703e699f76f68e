"""Networks on this node: a Linux bridge per network with the gateway
addresses, dnsmasq for DHCP (one static lease per port), nftables for security
groups, anti-spoofing and outbound NAT, and a VXLAN device joining the bridge to
the other nodes of the network. See docs/networks.md, "On the node"."""

from __future__ import annotations

from noded.network.names import bridge_name, tap_name, vxlan_name
from noded.network.step import NetworkStep

__all__ = ["NetworkStep", "bridge_name", "tap_name", "vxlan_name"]
