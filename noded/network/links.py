"""Bridges, their gateway addresses, and VXLAN devices with their forwarding
entries, through iproute2 (`ip`, `bridge`). Every function is idempotent:
it reads what the kernel has and changes only the difference."""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

from noded.network.cmd import NetworkError, run, run_json

VXLAN_PORT = 4789
ZERO_MAC = "00:00:00:00:00:00"


def link(name: str) -> dict[str, Any] | None:
    """The device's details (`ip -d -j link show`), or None when it does not exist."""
    out = run_json(["ip", "-d", "-j", "link", "show", "dev", name])
    return out[0] if out else None


def delete_link(name: str) -> None:
    if link(name) is not None:
        run(["ip", "link", "del", "dev", name])


def require_br_netfilter() -> None:
    """Security groups are enforced on bridged traffic only through
    br_netfilter: without it every port would be open, so refuse instead."""
    if Path("/proc/sys/net/bridge").is_dir():
        return
    subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not Path("/proc/sys/net/bridge").is_dir():
        raise NetworkError(
            "the br_netfilter kernel module is not loaded and modprobe could not load it; "
            "security groups cannot be enforced without it"
        )


def ensure_bridge(name: str, mtu: int, alias: str, mac: str = "") -> bool:
    """A bridge without STP (a leaf: nothing loops), passing bridged IP to the
    inet netfilter hooks (br_netfilter), where security groups are stateful.
    `mac`: its address, set explicitly (a bridge otherwise takes the lowest
    of its ports' MACs, which differs from node to node and changes as ports
    come and go); its IPv6 link-local address is the EUI-64 of it
    (`addrgenmode eui64`), so that too is the same on every node. A bridge
    with another MAC gets it by a down/up (the kernel derives the link-local
    address only when the device comes up). True when it was made (or its
    addresses were renewed) now: what listens on it must start again."""
    have = link(name)
    if have is not None and have.get("ifalias", "") != alias:
        raise NetworkError(f"{name} exists and is not ours ({have.get('ifalias', '')!r}); not touching it")
    if have is None:
        require_br_netfilter()
        bridge_opts = [
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "nf_call_iptables",
            "1",
            "nf_call_ip6tables",
            "1",
        ]
        address = ["address", mac] if mac else []
        run(["ip", "link", "add", name, *address, "type", "bridge", *bridge_opts])
        run(["ip", "link", "set", "dev", name, "alias", alias])
        if mac:
            run(["ip", "link", "set", "dev", name, "addrgenmode", "eui64"])
        have = link(name) or {}
        made = True
    else:
        made = False
    if mac and have.get("address", "").lower() != mac.lower():
        # A bridge made before gateway MACs were fixed: renew its link-local
        # address with the MAC (a short outage of this network on this node, once).
        run(["ip", "link", "set", "dev", name, "down"])
        run(["ip", "link", "set", "dev", name, "address", mac, "addrgenmode", "eui64"])
        have = link(name) or {}
        made = True
    if have.get("mtu") != mtu:
        run(["ip", "link", "set", "dev", name, "mtu", str(mtu)])
    if "UP" not in have.get("flags", []):
        run(["ip", "link", "set", "dev", name, "up"])
    return made


def ensure_ipv6_router(name: str) -> None:
    """The bridge as the IPv6 router of its ports, by the device's own sysctls
    (the host's `all`/`default` ones stay as they are): IPv6 on
    (`disable_ipv6=0`: the gateway address, the link-local address router
    advertisements come from); router behaviour on this device
    (`forwarding=1`: its neighbour advertisements carry the router flag,
    without which a guest drops the default route learned from an
    advertisement at its next reachability check; this does not make the
    host route IPv6, which is `all.forwarding`); and no router advertisement
    taken (`accept_ra=0`: a guest's, or another node's, never configures the host)."""
    conf = Path("/proc/sys/net/ipv6/conf") / name
    if not conf.is_dir():
        raise NetworkError(f"no IPv6 on {name}: IPv6 is off on this host, or the MTU is below 1280")
    for key, value in (("disable_ipv6", "0"), ("accept_ra", "0"), ("forwarding", "1")):
        ensure_sysctl(conf / key, value)


def ensure_sysctl(path: Path, value: str) -> None:
    """A sysctl (its /proc/sys file) set to `value`, written only when it differs."""
    if path.read_text().strip() != value:
        path.write_text(f"{value}\n")


def ensure_addresses(name: str, wanted: set[str]) -> list[str]:
    """Exactly `wanted` (addr/prefix) as global addresses on the device
    (link-local IPv6 addresses are the kernel's and stay), in one `ip -batch`.
    IPv4 addresses of one subnet after the first are the kernel's
    "secondaries", which by default go when the first (primary) goes: with
    `promote_secondaries` on this device, removing one floating or SNAT
    address of an external network leaves the others where they are."""
    out = run_json(["ip", "-j", "addr", "show", "dev", name]) or []
    have = set()
    for ifc in out:
        for a in ifc.get("addr_info", []):
            if a.get("scope") == "global":
                have.add(str(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")))
    wanted = {str(ipaddress.ip_interface(w)) for w in wanted}
    if have == wanted:
        return []
    if any(":" not in a for a in wanted | have):
        ensure_sysctl(Path("/proc/sys/net/ipv4/conf") / name / "promote_secondaries", "1")
    lines = [f"addr del {extra} dev {name}" for extra in sorted(have - wanted)]
    for missing in sorted(wanted - have):
        # nodad: the gateway address is ours by construction; no 1 s wait for DAD.
        lines.append(f"addr add {missing} dev {name}" + (" nodad" if ":" in missing else ""))
    run(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")
    return sorted(wanted - have)


def announce(name: str, addresses: list[str]) -> None:
    """Gratuitous ARP (a request and a reply, broadcast) for each IPv4 address
    (addr/prefix) from the device's MAC: a floating or SNAT address that has
    just come to this node, e.g. with its guest's live migration, is found
    here at once by the LAN, whose neighbour entries still name the node it
    was on. Linux hosts and most routers update an entry they have from it."""
    dev = link(name)
    v4 = [ipaddress.ip_interface(a).ip for a in addresses if ":" not in a]
    if dev is None or not v4:
        return
    mac = bytes.fromhex(dev["address"].replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((name, 0))
        for ip in v4:
            for op, target_mac in ((1, bytes(6)), (2, b"\xff" * 6)):
                arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + ip.packed + target_mac + ip.packed
                s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)


def links_by_name() -> dict[str, dict[str, Any]]:
    """Every device's summary (`ip -j link show`) by name, in one call."""
    return {d["ifname"]: d for d in run_json(["ip", "-j", "link", "show"]) or [] if "ifname" in d}


def ensure_vlan(name: str, parent: str, vlan_id: int, alias: str) -> None:
    """A VLAN device of ours on the host interface; made anew if its id or parent differ."""
    have = link(name)
    if have is not None and have.get("ifalias", "") != alias:
        raise NetworkError(f"{name} exists and is not ours ({have.get('ifalias', '')!r}); not touching it")
    info = (have or {}).get("linkinfo", {}).get("info_data", {})
    if have is not None and (info.get("id") != vlan_id or have.get("link") != parent):
        run(["ip", "link", "del", "dev", name])
        have = None
    if have is None:
        run(["ip", "link", "add", "link", parent, "name", name, "type", "vlan", "id", str(vlan_id)])
        run(["ip", "link", "set", "dev", name, "alias", alias])


def set_master(name: str, bridge: str) -> None:
    run(["ip", "link", "set", "dev", name, "master", bridge, "up"])


def ensure_vxlan(name: str, vni: int, local: str, bridge: str, mtu: int, alias: str) -> None:
    """A VXLAN device enslaved to the bridge; remade when its VNI or local
    address changed (the kernel cannot change them in place). `nolearning`:
    where remote MACs live comes from the controller, not from flooding."""
    have = link(name)
    if have is not None:
        data = have.get("linkinfo", {}).get("info_data", {})
        if have.get("ifalias", "") != alias:
            raise NetworkError(f"{name} exists and is not ours; not touching it")
        if data.get("id") != vni or data.get("local") != local:
            run(["ip", "link", "del", "dev", name])
            have = None
    if have is None:
        vxlan_opts = ["id", str(vni), "local", local, "dstport", str(VXLAN_PORT), "nolearning"]
        run(["ip", "link", "add", name, "type", "vxlan", *vxlan_opts])
        run(["ip", "link", "set", "dev", name, "alias", alias])
        have = link(name) or {}
    if have.get("mtu") != mtu:
        run(["ip", "link", "set", "dev", name, "mtu", str(mtu)])
    if have.get("master") != bridge:
        run(["ip", "link", "set", "dev", name, "master", bridge])
    if "UP" not in have.get("flags", []):
        run(["ip", "link", "set", "dev", name, "up"])


def fdb_entries(vxlan: str) -> set[tuple[str, str]]:
    """(mac, remote tunnel ip) forwarding entries of a VXLAN device."""
    out = run_json(["bridge", "-j", "fdb", "show", "dev", vxlan]) or []
    return {(e["mac"].lower(), e["dst"]) for e in out if e.get("dst") and "master" not in e}


def ensure_fdb(vxlan: str, wanted: set[tuple[str, str]]) -> None:
    """Exactly `wanted` on the device: the all-zero MAC once per peer (where
    broadcast and unknown unicast go: head-end replication), and each remote
    port's MAC to its node."""
    have = fdb_entries(vxlan)
    for mac, dst in sorted(have - wanted):
        run(["bridge", "fdb", "del", mac, "dev", vxlan, "dst", dst], check=False)
    for mac, dst in sorted(wanted - have):
        if mac == ZERO_MAC:
            run(["bridge", "fdb", "append", mac, "dev", vxlan, "dst", dst])
        else:
            # One node holds a MAC: replace moves it when the port moved.
            run(["bridge", "fdb", "replace", mac, "dev", vxlan, "dst", dst, "self", "permanent"])
