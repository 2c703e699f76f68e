"""IPv6 on the node: router advertisements for SLAAC subnets from the
network's dnsmasq (no DHCPv6; DNS only on the bridge), what must not cross the
VXLAN (router solicitations and advertisements, neighbour discovery for or
from the gateway), anti-spoofing (no router advertisements from guests,
neighbour advertisements only for their own addresses), and the config
drive's IPv6 entries. Unit tests, then two "hosts" of network namespaces
joined by VXLAN (as in test_network_overlay.py) whose guests configure
themselves from their own host's advertisements. Needs root for the latter."""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.network import bridge_name, firewall, guest, tap_name, vxlan_name
from noded.network.dhcp import Dhcp
from tests import netutil
from tests.netutil import apply_in, ns, ping

NET = "a6a6a6a6-0000-4000-8000-000000000062"
V4, V6 = "10.62.0.0/24", "fd00:62::/64"
GW4, GW6 = "10.62.0.1", "fd00:62::1"


def eui64(prefix: str, mac: str) -> str:
    """The modified EUI-64 address of a MAC in a /64 (RFC 4291 2.5.1)."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.ip_network(prefix).network_address + int.from_bytes(iid, "big"))


def slaac_subnet(sid: str = "v6", cidr: str = V6, **kw: Any) -> pb.DesiredSubnet:
    return netutil.desired_subnet(sid, cidr, ipv6_slaac=True, **kw)


# Unit tests: dnsmasq's command line, the nft script, the config drive


def dnsmasq_args(net: pb.DesiredNetwork, tmp: Path, mtu: int = 1450) -> list[str] | None:
    return Dhcp(tmp)._args("kb-x", net, mtu, tmp / "pid", tmp / "hosts", tmp / "log", tmp / "names", [])


def test_dnsmasq_sends_router_advertisements_for_slaac_subnets(tmp_path: Path) -> None:
    dual = pb.DesiredNetwork(id=NET, subnets=[netutil.desired_subnet("v4", V4), slaac_subnet()])
    args = dnsmasq_args(dual, tmp_path)
    assert args is not None
    assert "--dhcp-range=set:s0,10.62.0.0,static,255.255.255.0,1h" in args
    assert "--dhcp-range=set:s1,fd00:62::,ra-only,64,1d" in args  # RAs only: no DHCPv6
    assert "--enable-ra" in args and "--ra-param=kb-x,mtu:1450,0" in args
    # No DNS server on the subnet: the network's resolver on the gateway
    # (never dnsmasq's link-local address, which the rules do not open).
    assert [a for a in args if "option6:" in a] == ["--dhcp-option=tag:s1,option6:dns-server,[fd00:62::1]"]
    if shutil.which("dnsmasq"):
        check = netutil.sh(*args, "--test", check=False)
        assert check.returncode == 0, check.stderr

    # A network with only a SLAAC subnet still gets its dnsmasq.
    only = dnsmasq_args(pb.DesiredNetwork(id=NET, subnets=[slaac_subnet()]), tmp_path)
    assert only is not None and "--dhcp-range=set:s0,fd00:62::,ra-only,64,1d" in only
    assert not [a for a in only if a.startswith("--dhcp-range") and "ra-only" not in a]

    # The subnet's IPv6 DNS servers go into the advertisements (RDNSS).
    dns = slaac_subnet(dns_servers=["fd00:62::53", "10.62.0.53"])
    with_dns = dnsmasq_args(pb.DesiredNetwork(id=NET, subnets=[dns]), tmp_path)
    assert with_dns is not None and "--dhcp-option=tag:s0,option6:dns-server,[fd00:62::53]" in with_dns
    assert not [a for a in with_dns if a.startswith("--server=")]  # its own servers: nothing to forward

    # Below IPv6's minimum MTU: no MTU option (dnsmasq would refuse to start).
    low = dnsmasq_args(pb.DesiredNetwork(id=NET, subnets=[slaac_subnet()]), tmp_path, mtu=1200)
    assert low is not None and not [a for a in low if a.startswith("--ra-param")]

    # Static IPv6 subnets, and SLAAC without a gateway: nothing to serve.
    static = netutil.desired_subnet("v6", V6)
    no_gw = pb.DesiredSubnet(id="v6", cidr=V6, ip_version=6, ipv6_slaac=True)
    for subnets in ([static], [no_gw]):
        assert dnsmasq_args(pb.DesiredNetwork(id=NET, subnets=subnets), tmp_path) is None


def as_number(ip: str) -> str:
    return f"{int(ipaddress.ip_address(ip)):#x}"


def test_rules_for_ipv6() -> None:
    mac = "52:54:00:62:00:0a"
    mine = eui64(V6, mac)
    net = firewall.NetPlan(
        short="n62",
        bridge="kb-n62",
        vxlan="kv-n62",
        cidrs=[V4, V6],
        gateways=[GW4, GW6],
        external_routable=False,
    )
    port = firewall.PortPlan(short="p62", tap="tp-p62", bridge="kb-n62", mac=mac, ips=["10.62.0.10", mine])
    script = firewall.render("kumo_test", [net], [port], {})
    lines = [line.strip() for line in script.splitlines()]
    link_local = f"{as_number('fe80::')}-{as_number('febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff')}"
    for wanted in (
        # The port: from its EUI-64 address, link-local or :: (DAD) only; no
        # router advertisements; neighbour advertisements for its own addresses.
        f"ether type ip6 ip6 saddr != {{ ::, fe80::/10, {mine} }} drop",
        "ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } drop",
        "ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != "
        f"{{ {link_local}, {as_number(mine)} }} drop",
        # The VXLAN: no DHCPv6, no router discovery, no neighbour discovery
        # for or from the gateway.
        "ether type ip6 udp dport { 546, 547 } drop",
        "ether type ip6 icmpv6 type { nd-router-solicit, nd-router-advert, nd-redirect } drop",
        f"ether type ip6 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} ip6 saddr {{ {GW6} }} drop",
        "ether type ip6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,64,128 "
        f"{{ {as_number(GW6)} }} drop",
        f"ether type arp arp daddr ip {{ {GW4} }} drop",
        # A guest solicits its host's router advertisements and gets them.
        firewall.ND_IN,
        firewall.ND_OUT,
        'iifname { "kb-n62" } meta l4proto { icmp, ipv6-icmp } accept',
    ):
        assert wanted in lines, wanted
    # No IPv6 gateway: no neighbour discovery rule for one.
    v4_only = firewall.NetPlan("n4", "kb-n4", "kv-n4", [V4], [GW4], False)
    assert "ip6 saddr {" not in firewall.render("kumo_test", [v4_only], [], {})
    if os.geteuid() == 0 and shutil.which("nft"):  # the kernel takes it (checked, not applied)
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_config_drive_ipv6_entries() -> None:
    static6 = pb.DesiredSubnet(
        id="st", cidr="fd00:63::/64", ip_version=6, gateway_ip="fd00:63::1", dns_servers=["fd00:63::53"]
    )
    no_gw = pb.DesiredSubnet(id="ng", cidr="fd00:64::/80", ip_version=6)
    second_slaac = slaac_subnet("v6b", "fd00:65::/64")
    slaac = slaac_subnet(dns_servers=["fd00:62::53"])
    net = pb.DesiredNetwork(
        id=NET, subnets=[netutil.desired_subnet("v4", V4), slaac, static6, no_gw, second_slaac]
    )
    mac1, mac2 = "52:54:00:62:00:0a", "52:54:00:62:00:0b"
    ports = {
        "p1": pb.DesiredPort(
            id="p1",
            network_id=NET,
            mac_address=mac1,
            fixed_ips=[
                pb.FixedIp(subnet_id="v4", ip_address="10.62.0.10"),
                pb.FixedIp(subnet_id="v6", ip_address=eui64(V6, mac1)),
                pb.FixedIp(subnet_id="st", ip_address="fd00:63::10"),
                pb.FixedIp(subnet_id="ng", ip_address="fd00:64::10"),
                pb.FixedIp(subnet_id="v6b", ip_address=eui64("fd00:65::/64", mac1)),
            ],
        ),
        # IPv6 only: no DHCP (nothing would answer it).
        "p2": pb.DesiredPort(
            id="p2",
            network_id=NET,
            mac_address=mac2,
            fixed_ips=[pb.FixedIp(subnet_id="v6", ip_address=eui64(V6, mac2))],
        ),
    }
    inst = pb.DesiredInstance(id="vm", port_ids=["p1", "p2"])
    config = json.loads(guest.network_config(inst, ports, {NET: net}))
    assert [c["subnets"] for c in config["config"]] == [
        [
            {"type": "dhcp"},
            {"type": "ipv6_slaac", "dns_nameservers": ["fd00:62::53"]},  # once, however many
            {
                "type": "static6",
                "address": "fd00:63::10/64",
                "gateway": "fd00:63::1",
                "dns_nameservers": ["fd00:63::53"],
            },
            {"type": "static6", "address": "fd00:64::10/80"},
        ],
        [{"type": "ipv6_slaac", "dns_nameservers": ["fd00:62::53"]}],
    ]
    with pytest.raises(RuntimeError, match="subnet v6 of port p1 is not in the desired state"):
        guest.network_config(inst, ports, {})


# Packets: what the guests send and see, through AF_PACKET sockets made in
# their namespaces (no tcpdump or ndisc6 on this host).

ETH_P_IPV6 = 0x86DD
RS, RA, NS, NA = 133, 134, 135, 136
_libc = ctypes.CDLL(None, use_errno=True)


def packet_socket(netns: str, dev: str) -> socket.socket:
    """A raw socket on a device of a namespace: made by a thread that entered
    the namespace (a socket stays in the namespace it was made in)."""
    made: list[Any] = []

    def make() -> None:
        try:
            with open(f"/var/run/netns/{netns}") as f:
                if _libc.setns(f.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
            s.bind((dev, ETH_P_IPV6))
            made.append(s)
        except OSError as exc:
            made.append(exc)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if isinstance(made[0], OSError):
        raise made[0]
    return made[0]


@dataclass
class Icmp6:
    src_mac: str
    src: str
    dst: str
    type: int
    message: bytes

    def options(self) -> dict[int, list[bytes]]:
        """A router advertisement's options by type."""
        out: dict[int, list[bytes]] = {}
        rest = self.message[16:]
        while len(rest) >= 8 and rest[1]:
            out.setdefault(rest[0], []).append(rest[: rest[1] * 8])
            rest = rest[rest[1] * 8 :]
        return out


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def receive(sock: socket.socket, want: Callable[[Icmp6], bool], timeout: float) -> Icmp6 | None:
    """The first ICMPv6 message received (not sent) on the socket that `want`
    accepts, within `timeout` seconds; queued ones first."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame, addr = sock.recvfrom(65535)
        except TimeoutError:
            return None
        if addr[2] == socket.PACKET_OUTGOING or len(frame) < 58 or frame[20] != 58:
            continue
        ip = ipaddress.IPv6Address
        msg = Icmp6(_mac(frame[6:12]), str(ip(frame[22:38])), str(ip(frame[38:54])), frame[54], frame[54:])
        if want(msg):
            return msg
    return None


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(src_mac: str, src: str, dst: str, message: bytes) -> bytes:
    """An Ethernet frame with an ICMPv6 message (hop limit 255, as neighbour
    discovery needs) to a link-local multicast group."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    pseudo = s + d + struct.pack("!I3xB", len(message), 58)
    message = message[:2] + struct.pack("!H", _checksum(pseudo + message)) + message[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(message), 58, 255) + s + d
    eth = b"\x33\x33" + d[12:] + bytes.fromhex(src_mac.replace(":", "")) + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + message


def router_solicitation(mac: str) -> bytes:
    """From :: (as before DAD): the router answers to all nodes."""
    return frame(mac, "::", "ff02::2", struct.pack("!BBHI", RS, 0, 0, 0))


def router_advertisement(mac: str, prefix: str) -> bytes:
    """A router for 30 minutes, with an autonomous on-link /64 prefix."""
    net = ipaddress.ip_network(prefix)
    message = struct.pack("!BBHBBHII", RA, 0, 0, 64, 0, 1800, 0, 0)
    message += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + net.network_address.packed
    message += b"\x01\x01" + bytes.fromhex(mac.replace(":", ""))
    return frame(mac, eui64("fe80::/64", mac), "ff02::1", message)


def neighbor_advertisement(mac: str, src: str, target: str, lladdr: str) -> bytes:
    """Unsolicited, with the override flag: a receiver with an entry for the
    target takes `lladdr`."""
    message = struct.pack("!BBHI", NA, 0, 0, 0x20000000) + ipaddress.IPv6Address(target).packed
    message += b"\x02\x01" + bytes.fromhex(lladdr.replace(":", ""))
    return frame(mac, src, "ff02::1", message)


# Two hosts joined by VXLAN, guests that configure themselves

UNDERLAY = {"a": "198.51.100.61", "b": "198.51.100.62"}
GUESTS = {  # name: (host, MAC); gc is the one that misbehaves
    "ga": ("a", "52:54:00:62:00:0a"),
    "gb": ("b", "52:54:00:62:00:0b"),
    "gc": ("a", "52:54:00:62:00:0c"),
}
SG = "5b5b5b5b-0000-4000-8000-000000000062"


def port_id(name: str) -> str:
    return f"{name[1] * 8}-0000-4000-8000-0000000000{name[1] * 2}"


def v4_of(name: str) -> str:
    return f"10.62.0.{10 + sorted(GUESTS).index(name)}"


def desired(host: str) -> pb.NodeDesiredState:
    other = "b" if host == "a" else "a"
    rules = [
        pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
        pb.DesiredSecurityGroupRule(id="e6", direction="egress", ip_version=6),
        pb.DesiredSecurityGroupRule(id="i4", direction="ingress", ip_version=4, protocol="icmp"),
        pb.DesiredSecurityGroupRule(id="i6", direction="ingress", ip_version=6, protocol="ipv6-icmp"),
    ]
    peer = pb.OverlayPeer(
        node_id=f"node-{other}",
        tunnel_ip=UNDERLAY[other],
        mac_addresses=[mac for h, mac in GUESTS.values() if h == other],
    )
    state = pb.NodeDesiredState(
        security_groups=[pb.DesiredSecurityGroup(id=SG, rules=rules)],
        networks=[
            pb.DesiredNetwork(
                id=NET,
                vni=4162,
                mtu=1450,
                subnets=[netutil.desired_subnet("v4", V4), slaac_subnet()],
                peers=[peer],
            )
        ],
    )
    state.ports.extend(port(name) for name, (h, _) in GUESTS.items() if h == host)
    return state


def port(name: str) -> pb.DesiredPort:
    mac = GUESTS[name][1]
    v4 = pb.FixedIp(subnet_id="v4", ip_address=v4_of(name))
    v6 = pb.FixedIp(subnet_id="v6", ip_address=eui64(V6, mac))
    return pb.DesiredPort(
        id=port_id(name), network_id=NET, mac_address=mac, fixed_ips=[v4, v6], security_group_ids=[SG]
    )


def ip_json(netns: str, *args: str) -> Any:
    return json.loads(ns(netns, "ip", "-j", *args).stdout or "[]")


def global6(netns: str) -> list[str]:
    """The guest's global IPv6 addresses that passed DAD."""
    out = ip_json(netns, "-6", "addr", "show", "dev", "eth0", "scope", "global")
    return [a["local"] for i in out for a in i["addr_info"] if "local" in a and not a.get("tentative")]


def routers(netns: str) -> list[str]:
    return [r.get("gateway", "") for r in ip_json(netns, "-6", "route", "show", "default")]


def gateway_mac(netns: str) -> str:
    out = ip_json(netns, "-6", "neigh", "show", GW6, "dev", "eth0")
    return out[0].get("lladdr", "") if out else ""


def bridge(host: str) -> tuple[str, str]:
    """The host's bridge: its MAC and link-local address (once DAD is done)."""
    netns, br = f"kbt-6{host}", bridge_name(NET)

    def link_local() -> str:
        out = ip_json(netns, "-6", "addr", "show", "dev", br, "scope", "link")
        done = [a["local"] for i in out for a in i["addr_info"] if "local" in a and not a.get("tentative")]
        return done[0] if done else ""

    ll = until(link_local)
    assert ll, f"host {host}'s bridge has no link-local address"
    return ip_json(netns, "link", "show", "dev", br)[0]["address"], ll


def until(check: Callable[[], Any], timeout: float = 15) -> Any:
    """Polls `check` until it is true (or the time is up); its last value."""
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.fixture
def hosts() -> Iterator[dict[str, Path]]:
    spaces = {f"kbt-6{h}": addr for h, addr in UNDERLAY.items()}
    with netutil.two_hosts(spaces, [f"kbt-6{name}" for name in GUESTS], "kumo-v6-") as states:
        yield {h: states[f"kbt-6{h}"] for h in UNDERLAY}


def test_slaac_from_each_hosts_own_router_advertisements(hosts: dict[str, Path], tmp_path: Path) -> None:
    for h in UNDERLAY:
        apply_in(f"kbt-6{h}", hosts[h], desired(h), UNDERLAY[h])
    sockets: dict[str, socket.socket] = {}
    try:
        for name, (h, mac) in GUESTS.items():
            netutil.add_guest(
                f"kbt-6{h}", f"kbt-6{name}", tap_name(port_id(name)), bridge_name(NET), mac, 1450
            )
            sockets[name] = packet_socket(f"kbt-6{name}", "eth0")
        check_slaac(sockets)
        check_no_router_but_the_host(sockets)
        # DHCPv4 as before, next to the RAs (last: the test's DHCP client
        # flushes every address of the guest's NIC).
        assert netutil.dhcp("kbt-6gb", tmp_path) == v4_of("gb")
    finally:
        for s in sockets.values():
            s.close()
    for h in UNDERLAY:
        apply_in(f"kbt-6{h}", hosts[h], pb.NodeDesiredState(), UNDERLAY[h])
        assert "kumo_" not in ns(f"kbt-6{h}", "nft", "list", "ruleset").stdout
        assert netutil.sh("ip", "netns", "pids", f"kbt-6{h}").stdout.strip() == ""


def check_slaac(sockets: dict[str, socket.socket]) -> None:
    mac_a, ll_a = bridge("a")
    mac_b, ll_b = bridge("b")
    for h in UNDERLAY:
        conf = f"/proc/sys/net/ipv6/conf/{bridge_name(NET)}"
        sysctl = ns(f"kbt-6{h}", "cat", f"{conf}/disable_ipv6", f"{conf}/forwarding", f"{conf}/accept_ra")
        assert sysctl.stdout.split() == ["0", "1", "0"]
        # The host's own setting is left alone: RAs go out without it.
        assert ns(f"kbt-6{h}", "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"
        # DHCPv4 and DNS listen; no DHCPv6, and DNS only on the bridge's
        # addresses (the gateways; its link-local one, which the rules close).
        listening = ns(f"kbt-6{h}", "ss", "-Hlnup").stdout
        assert ":547" not in listening and ":67" in listening
        dns = {
            line.split()[3].rsplit(":", 1)[0].strip("[]").split("%")[0]
            for line in listening.splitlines()
            if line.split()[3].endswith(":53")
        }
        assert {GW4, GW6} <= dns and all(a in (GW4, GW6) or a.startswith("fe80:") for a in dns), dns

    # Each guest makes exactly the EUI-64 address of its MAC (its port's
    # fixed IP), and its router is its own host's bridge.
    for name, (h, mac) in GUESTS.items():
        mine = eui64(V6, mac)
        assert until(lambda n=name, m=mine: global6(f"kbt-6{n}") == [m]), global6(f"kbt-6{name}")
        assert until(lambda n=name: routers(f"kbt-6{n}")) == [ll_a if h == "a" else ll_b]

    # An advertisement, asked for from :: so that it goes to all nodes: on
    # the prefix (autonomous, on-link), the MTU, no DHCPv6 (M, O clear), no
    # DNS server but the gateway (RDNSS); and it does not cross the overlay
    # (both bridges have the network's one gateway MAC and link-local
    # address, so what arrives at the other host's VXLAN device is watched).
    assert (mac_a, ll_a) == (mac_b, ll_b), "the hosts' bridges are different gateways"
    overlay = {h: packet_socket(f"kbt-6{h}", vxlan_name(NET)) for h in UNDERLAY}
    for asker, other, ll in (("ga", "b", ll_a), ("gb", "a", ll_b)):
        sockets[asker].send(router_solicitation(GUESTS[asker][1]))
        ra = receive(sockets[asker], lambda m, ll=ll: m.type == RA and m.src == ll and m.dst == "ff02::1", 5)
        assert ra is not None, f"{asker} got no router advertisement from its host"
        assert ra.message[5] & 0xC0 == 0 and struct.unpack("!H", ra.message[6:8])[0] > 0
        opts = ra.options()
        (prefix,) = opts[3]
        assert prefix[2] == 64 and prefix[3] & 0xC0 == 0xC0
        assert ipaddress.IPv6Address(prefix[16:32]) == ipaddress.IPv6Address("fd00:62::")
        assert [struct.unpack("!I", o[4:8])[0] for o in opts[5]] == [1450]
        assert [ipaddress.IPv6Address(o[8:24]) for o in opts[25]] == [ipaddress.IPv6Address(GW6)]  # RDNSS
        crossed = receive(overlay[other], lambda m, ll=ll: m.type == RA and m.src == ll, 0.5)
        assert crossed is None, f"host {other} got the other host's router advertisement"
    for sock in overlay.values():
        sock.close()

    # Ping the gateway (its own host's bridge), and each other across VXLAN.
    for name, mac in (("ga", mac_a), ("gb", mac_b)):
        assert ping(f"kbt-6{name}", GW6), f"{name} cannot reach its gateway"
        neigh = ns(f"kbt-6{name}", "ip", "-6", "neigh", "show", GW6, "dev", "eth0").stdout
        # Its own host's bridge, as a router (the bridge's per-device forwarding).
        assert mac in neigh and "router" in neigh, f"{name}'s gateway answered from elsewhere: {neigh}"
    assert ping("kbt-6ga", eui64(V6, GUESTS["gb"][1]), count=2)
    assert ping("kbt-6gb", eui64(V6, GUESTS["ga"][1]), count=2)
    # Host a's own solicitation (from the gateway address) for gb does not
    # cross either: gb keeps its own host's bridge as the gateway.
    ping("kbt-6a", eui64(V6, GUESTS["gb"][1]))
    assert gateway_mac("kbt-6gb") == mac_b


def check_no_router_but_the_host(sockets: dict[str, socket.socket]) -> None:
    """gc on host a claims to be a router and the gateway: its neighbour ga
    takes neither; a neighbour advertisement for gc's own address passes
    (it comes last: once ga has it, ga has had the others)."""
    mac_a, ll_a = bridge("a")
    ga, gc = "kbt-6ga", GUESTS["gc"][1]
    gc_ip = eui64(V6, gc)
    assert ping(ga, gc_ip)  # ga has an entry for gc's address
    sockets["gc"].send(router_advertisement(gc, "2001:db8:bad::/64"))
    sockets["gc"].send(neighbor_advertisement(gc, gc_ip, GW6, gc))
    sockets["gc"].send(neighbor_advertisement(gc, gc_ip, gc_ip, "02:00:00:00:00:99"))
    assert until(lambda: "02:00:00:00:00:99" in ns(ga, "ip", "-6", "neigh", "show", gc_ip).stdout, 5)
    assert gateway_mac(ga) == mac_a, "a guest's neighbour advertisement took the gateway address"
    assert routers(ga) == [ll_a], "a guest's router advertisement was taken"
    assert global6(ga) == [eui64(V6, GUESTS["ga"][1])]
    # The same advertisement, had it come through, would have been taken.
    with packet_socket("kbt-6a", bridge_name(NET)) as on_bridge:
        on_bridge.send(router_advertisement(gc, "2001:db8:bad::/64"))
        assert until(lambda: eui64("fe80::/64", gc) in routers(ga), 5)
