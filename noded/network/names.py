"""Kernel names of what the node makes for a network. Pure functions of the
network or port id, so the instances step (which names the guest's tap device)
and the network step (which matches it in nftables) agree without talking.
Linux interface names have at most 15 characters."""

from __future__ import annotations

import hashlib
import re

ID_CHARS = 10


def short(ident: str) -> str:
    """10 hex characters for an id: a UUID's own first characters (readable:
    `ip link` shows which network it is), else a hash."""
    hexed = re.sub(r"[^0-9a-f]", "", ident.lower())
    if len(hexed) >= ID_CHARS and len(hexed) == len(ident.replace("-", "")):
        return hexed[:ID_CHARS]
    return hashlib.sha256(ident.encode()).hexdigest()[:ID_CHARS]


def bridge_name(network_id: str) -> str:
    return f"kb-{short(network_id)}"


def vxlan_name(network_id: str) -> str:
    return f"kv-{short(network_id)}"


def vlan_name(network_id: str) -> str:
    """An external VLAN network's tagged device on its host interface."""
    return f"kl-{short(network_id)}"


def tap_name(port_id: str) -> str:
    return f"tp-{short(port_id)}"


GATEWAY_MAC_PREFIX = "fa:16:3f"  # ports' MACs are fa:16:3e (as Neutron's, whose DVR MACs are fa:16:3f)


def gateway_mac(network_id: str) -> str:
    """The MAC of a tenant network's gateway (its bridge) on every node: a
    function of the network id alone, so a guest moved to another node finds
    its gateway at the MAC its ARP/NDP cache already holds. Locally
    administered, unicast; two networks sharing one (24 bits of a hash) are
    harmless: they are different L2 segments, and a host may have two
    devices with one MAC."""
    digest = hashlib.sha256(f"kumo-gateway {network_id}".encode()).digest()
    return GATEWAY_MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])


def owner_tag(state_path: str) -> str:
    """Which node daemon made a device or table: several daemons may run on
    one host (tests, `make up`), and each removes only its own things."""
    return hashlib.sha256(state_path.encode()).hexdigest()[:8]


def table_name(owner: str) -> str:
    return f"kumo_{owner}"
