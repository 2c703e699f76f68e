"""Routers and floating IPs on a node, in network namespaces: a "host"
namespace runs the node's network step (in a fresh process, as noded
would); a "LAN" namespace, joined by a veth to the host interface that the
external network's physical network maps to, stands in for the outside; the
guests are namespaces on the tenant bridge. From the LAN: ping and TCP to a
guest through its floating IP, security groups deciding; the guests reach
the LAN through SNAT (the floating IP for its port, the router's address for
the others) and past it through the LAN's router; moving the floating IP to
the second guest moves the traffic; a VLAN external network tags its frames;
and taking the floating IP and the router away leaves the host's rules,
addresses, routes and policy rules exactly as before. Needs root; no libvirt."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.network import bridge_name, tap_name
from tests import netutil
from tests.netutil import apply_in, ns, ping
from tests.waits import wait_until

TENANT = "b1b1b1b1-0000-4000-8000-000000000001"
EXT = "b2b2b2b2-0000-4000-8000-000000000002"
SG = "b3b3b3b3-0000-4000-8000-000000000003"
P1, P2 = "b4b4b4b4-0000-4000-8000-000000000004", "b5b5b5b5-0000-4000-8000-000000000005"
MAC1, MAC2 = "52:54:00:70:00:01", "52:54:00:70:00:02"
IP1, IP2 = "10.70.0.5", "10.70.0.6"
LAN_IP, ROUTER_IP, FIP = "192.0.2.100", "192.0.2.10", "192.0.2.20"
BEYOND = "203.0.113.7"  # an address past the LAN's router
HOST, G1, G2, LAN = "kbr-host", "kbr-g1", "kbr-g2", "kbr-lan"
UPLINK = "kbr-up"  # the host's interface on the LAN
PHYSNETS = {"lan": UPLINK}

# Echoes the peer's address back on TCP 9000: what the LAN sees as the source.
ECHO = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(8)
while True:
    c, peer = s.accept()
    c.sendall((peer[0] + "\\n").encode())
    c.close()
"""


def desired(
    router: bool = True,
    fip: bool = True,
    http: bool = True,
    vlan: int = 0,
    external: bool = True,
    fip_to: tuple[str, str] = (P1, IP1),
) -> pb.NodeDesiredState:
    rules = [
        pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
        pb.DesiredSecurityGroupRule(id="icmp", direction="ingress", ip_version=4, protocol="icmp"),
    ]
    if http:
        rules.append(
            pb.DesiredSecurityGroupRule(
                id="http",
                direction="ingress",
                ip_version=4,
                protocol="tcp",
                port_range_min=80,
                port_range_max=80,
            )
        )
    state = pb.NodeDesiredState(
        security_groups=[pb.DesiredSecurityGroup(id=SG, rules=rules, member_ips=[IP1, IP2])],
        networks=[
            pb.DesiredNetwork(
                id=TENANT, vni=4170, mtu=1450, subnets=[netutil.desired_subnet("st", "10.70.0.0/24")]
            )
        ],
    )
    for pid, mac, ip in ((P1, MAC1, IP1), (P2, MAC2, IP2)):
        state.ports.append(
            pb.DesiredPort(
                id=pid,
                network_id=TENANT,
                mac_address=mac,
                fixed_ips=[pb.FixedIp(subnet_id="st", ip_address=ip)],
                security_group_ids=[SG],
            )
        )
    if external and (router or fip):
        state.networks.append(
            pb.DesiredNetwork(
                id=EXT,
                external=True,
                network_type=3 if vlan else 2,
                physical_network="lan",
                segmentation_id=vlan,
                subnets=[netutil.desired_subnet("se", "192.0.2.0/24")],
            )
        )
    if router:
        state.routers.append(
            pb.DesiredRouter(
                id="r1",
                external_network_id=EXT,
                gateway_address=f"{ROUTER_IP}/24",
                external_gateway_ip="192.0.2.1",
                interface_cidrs=["10.70.0.0/24"],
                interface_network_ids=[TENANT],
            )
        )
    if fip:
        state.floating_ips.append(
            pb.DesiredFloatingIp(
                id="f1",
                external_network_id=EXT,
                floating_address=f"{FIP}/24",
                fixed_ip_address=fip_to[1],
                port_id=fip_to[0],
                network_id=TENANT,
            )
        )
    return state


def host_view() -> dict[str, str]:
    """What the router and floating IP may change on the host."""
    return {
        "nft": ns(HOST, "nft", "list", "ruleset").stdout,
        "addr": ns(HOST, "ip", "-br", "addr").stdout,
        # Every table, less the kernel's own link-local host routes (they come when DAD ends).
        "route": "".join(
            line
            for line in ns(HOST, "ip", "route", "show", "table", "all").stdout.splitlines(keepends=True)
            if not line.startswith("local fe80::")
        ),
        "rule": ns(HOST, "ip", "rule").stdout,
        "links": ns(HOST, "ip", "-br", "link").stdout,
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict]:
    netutil.need_root_networking()
    spaces = netutil.Namespaces()
    state = netutil.state_dir("kumo-rtr-")
    procs: list[subprocess.Popen] = []
    try:
        for name in (HOST, G1, G2, LAN):
            spaces.add(name)
        netutil.sh("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", LAN)
        netutil.sh("ip", "link", "set", UPLINK, "netns", HOST)
        ns(HOST, "ip", "link", "set", UPLINK, "up")  # the host's LAN interface, as an admin set it up
        ns(LAN, "ip", "link", "set", "eth0", "up")
        ns(LAN, "ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0")
        # The LAN's router (192.0.2.1), with the rest of the world behind it.
        ns(LAN, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
        ns(LAN, "ip", "addr", "add", f"{BEYOND}/32", "dev", "lo")
        apply_in(HOST, state, desired(router=False, fip=False), physical_networks=PHYSNETS)
        for g, pid, mac, ip in ((G1, P1, MAC1, IP1), (G2, P2, MAC2, IP2)):
            netutil.add_guest(HOST, g, tap_name(pid), bridge_name(TENANT), mac, 1450)
            ns(g, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            ns(g, "ip", "route", "add", "default", "via", "10.70.0.1")
            (tmp_path / g).mkdir()
            (tmp_path / g / "index.html").write_text(f"hello from {g}\n")
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", g, "busybox", "httpd", "-f", "-p", "80", "-h", str(tmp_path / g)]
                )
            )
        procs.append(subprocess.Popen(["ip", "netns", "exec", LAN, sys.executable, "-c", ECHO]))
        wait_until(
            lambda: ns(LAN, "ss", "-ltnH", "sport = :9000").stdout.strip(),
            what="the LAN echo server",
            base=10,
            step=0.05,
        )
        yield {"state": state, "tmp": tmp_path}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        spaces.cleanup()
        shutil.rmtree(state, ignore_errors=True)


def http(src: str, addr: str) -> str:
    out = ns(src, "curl", "-s", "-m", "3", f"http://{addr}/", check=False, timeout=15)
    return out.stdout.strip() if out.returncode == 0 else ""


def seen_by_lan(guest: str) -> str:
    out = ns(guest, "busybox", "nc", "-w", "3", LAN_IP, "9000", check=False, timeout=15)
    return out.stdout.strip()


def test_floating_ip_and_router_snat_through_a_lan(world: dict) -> None:
    state = world["state"]
    # A tenant network without a router has no way out.
    assert not ping(G1, LAN_IP)
    before = host_view()
    apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
    ext_bridge = bridge_name(EXT)
    assert ns(HOST, "ip", "-j", "link", "show", UPLINK).stdout.count(f'"master":"{ext_bridge}"') == 1
    # From the LAN: the guest, through its floating IP (ICMP and TCP).
    assert ping(LAN, FIP, count=2), "no answer from the floating IP"
    assert http(LAN, FIP) == f"hello from {G1}"
    assert http(HOST, FIP) == f"hello from {G1}"  # the host itself, through the output hook
    # Out: the floating IP's port leaves from it, the other through the router's SNAT.
    assert seen_by_lan(G1) == FIP
    assert seen_by_lan(G2) == ROUTER_IP
    # Past the LAN, through its router (the host's own routes lead elsewhere).
    assert ping(G2, BEYOND) and ping(G1, BEYOND)
    assert not ping(HOST, BEYOND), "the host's own routing changed"
    # Only floating IPs are reachable from outside: not the guests' own addresses.
    ns(LAN, "ip", "route", "add", "10.70.0.0/24", "via", ROUTER_IP)
    assert not http(LAN, IP2) and not http(LAN, IP1)
    # Idempotent: a second pass (a restarted noded) changes nothing.
    applied = host_view()
    apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
    assert host_view() == applied
    # Security groups apply to traffic through the floating IP: no rule, no TCP.
    apply_in(HOST, state, desired(http=False), physical_networks=PHYSNETS)
    assert not http(LAN, FIP), "a security group without the rule let TCP through the floating IP"
    assert not http(HOST, FIP), "the host's own TCP to the floating IP passed a group without the rule"
    assert ping(LAN, FIP)  # ICMP is still allowed
    apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
    assert http(LAN, FIP) == f"hello from {G1}"
    # Moved to the second guest: the traffic follows, both ways.
    apply_in(HOST, state, desired(fip_to=(P2, IP2)), physical_networks=PHYSNETS)
    assert http(LAN, FIP) == f"hello from {G2}"
    assert seen_by_lan(G2) == FIP and seen_by_lan(G1) == ROUTER_IP
    apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
    assert http(LAN, FIP) == f"hello from {G1}"
    # The floating IP goes: its port leaves through the router now, nothing answers on it.
    apply_in(HOST, state, desired(fip=False), physical_networks=PHYSNETS)
    assert not ping(LAN, FIP)
    assert seen_by_lan(G1) == ROUTER_IP
    # The router goes too: no way out, and the host is as it was.
    apply_in(HOST, state, desired(router=False, fip=False), physical_networks=PHYSNETS)
    assert not ping(G1, LAN_IP)
    after = host_view()
    for what in before:
        assert after[what] == before[what], f"{what} before:\n{before[what]}\nafter:\n{after[what]}"
    # The uplink is released from the bridge that went.
    assert ext_bridge not in ns(HOST, "ip", "-br", "link").stdout
    assert "master" not in ns(HOST, "ip", "-j", "link", "show", UPLINK).stdout


def vlan_supported() -> bool:
    probe = netutil.sh(
        "ip", "link", "add", "link", "lo", "name", "kbr-vlanprobe", "type", "vlan", "id", "5", check=False
    )
    netutil.sh("ip", "link", "del", "kbr-vlanprobe", check=False)
    return probe.returncode == 0


def test_vlan_external_network(world: dict) -> None:
    if not vlan_supported():
        pytest.skip("this kernel has no VLAN (8021q) support")
    state = world["state"]
    ns(LAN, "ip", "addr", "flush", "dev", "eth0")
    ns(LAN, "ip", "link", "add", "link", "eth0", "name", "eth0.30", "type", "vlan", "id", "30")
    ns(LAN, "ip", "link", "set", "eth0.30", "up")
    ns(LAN, "ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0.30")
    apply_in(HOST, state, desired(vlan=30), physical_networks=PHYSNETS)
    vlan_dev = "kl-" + EXT.replace("-", "")[:10]
    assert '"id":30' in ns(HOST, "ip", "-d", "-j", "link", "show", vlan_dev).stdout
    assert ping(LAN, FIP, count=2) and http(LAN, FIP) == f"hello from {G1}"
    apply_in(HOST, state, desired(router=False, fip=False), physical_networks=PHYSNETS)
    assert vlan_dev not in ns(HOST, "ip", "-br", "link").stdout


def test_unmapped_physical_network(world: dict) -> None:
    """A node that does not map the external network's physical network
    says so in the pass (and keeps the rest)."""
    state = world["state"]
    blob = state / "desired.bin"
    blob.write_bytes(desired().SerializeToString())
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            HOST,
            sys.executable,
            "-c",
            netutil.RUNNER,
            str(state),
            "",
            str(blob),
            "",
            "{}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=netutil.runner_env(),
        cwd=netutil.ROOT,
    )
    assert proc.returncode != 0 and "physical network 'lan' is not mapped" in proc.stderr
    assert ping(G1, "10.70.0.1"), "the tenant network went with the unmapped external one"
    apply_in(HOST, state, pb.NodeDesiredState(), physical_networks=PHYSNETS)
    assert "kumo_" not in ns(HOST, "nft", "list", "ruleset").stdout


def test_removing_the_first_external_address_keeps_the_others(world: dict) -> None:
    """The router's address is the external bridge's first (primary) IPv4
    address of the subnet; the floating IP's is a secondary, which the kernel
    removes with the primary unless promote_secondaries is on. One pass
    taking the router away must leave the floating IP answering."""
    state = world["state"]
    apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
    assert ping(LAN, FIP) and ping(LAN, ROUTER_IP)
    # A second pass touches no policy rule (a floating IP's /32 one was once
    # removed and made again every pass) and no address.
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", HOST, "ip", "monitor", "rule", "address"], stdout=subprocess.PIPE, text=True
    )
    try:
        apply_in(HOST, state, desired(), physical_networks=PHYSNETS)
        ns(HOST, "ip", "rule", "add", "priority", "999", "iif", "lo", "table", "999")  # a marker event
        ns(HOST, "ip", "rule", "del", "priority", "999", "iif", "lo", "table", "999")
        assert monitor.stdout is not None
        # Up to the marker; the kernel's own link-local addresses (they come when a bridge is up) aside.
        changed = []
        for line in monitor.stdout:
            if "999" in line:
                break
            if "fe80::" not in line and not line.startswith(" "):  # indented: an entry's details
                changed.append(line)
    finally:
        monitor.kill()
        monitor.wait()
    assert not changed, f"the second pass changed rules or addresses: {changed}"
    apply_in(HOST, state, desired(router=False), physical_networks=PHYSNETS)
    addrs = ns(HOST, "ip", "-br", "addr", "show", bridge_name(EXT)).stdout
    assert f"{FIP}/24" in addrs and ROUTER_IP not in addrs
    assert ping(LAN, FIP), "the floating IP went with the router's address"
    assert seen_by_lan(G1) == FIP
    apply_in(HOST, state, desired(router=False, fip=False), physical_networks=PHYSNETS)


P3, MAC3, BRIDGED_IP = "b6b6b6b6-0000-4000-8000-000000000006", "52:54:00:70:00:03", "192.0.2.50"
G3 = "kbr-g3"


def bridged(http: bool) -> pb.NodeDesiredState:
    """The external network with a bridged guest's port on it (no router, no
    floating IP), in a group of its own: ICMP in, and TCP 80 if `http`."""
    state = desired(router=False, fip=False)
    state.networks.append(
        pb.DesiredNetwork(
            id=EXT,
            external=True,
            network_type=2,
            physical_network="lan",
            subnets=[netutil.desired_subnet("se", "192.0.2.0/24", dns_servers=[LAN_IP])],
        )
    )
    rules = [
        pb.DesiredSecurityGroupRule(id="b-e4", direction="egress", ip_version=4),
        pb.DesiredSecurityGroupRule(id="b-icmp", direction="ingress", ip_version=4, protocol="icmp"),
    ]
    if http:
        rules.append(
            pb.DesiredSecurityGroupRule(
                id="b-http",
                direction="ingress",
                ip_version=4,
                protocol="tcp",
                port_range_min=80,
                port_range_max=80,
            )
        )
    state.security_groups.append(
        pb.DesiredSecurityGroup(id="sg-bridged", rules=rules, member_ips=[BRIDGED_IP])
    )
    state.ports.append(
        pb.DesiredPort(
            id=P3,
            network_id=EXT,
            mac_address=MAC3,
            fixed_ips=[pb.FixedIp(subnet_id="se", ip_address=BRIDGED_IP)],
            security_group_ids=["sg-bridged"],
        )
    )
    return state


def test_bridged_guest_on_the_external_network(world: dict) -> None:
    """A port directly on the provider network: the guest's tap on the
    external bridge with the uplink, a LAN address of kumo's, no NAT; the
    LAN reaches it as its group allows, it reaches the LAN and past it
    through the LAN's router, it cannot spoof, and a DHCP server on the LAN
    never reaches it."""
    state, tmp = world["state"], world["tmp"]
    apply_in(HOST, state, bridged(http=False), physical_networks=PHYSNETS)
    spaces = netutil.Namespaces()
    httpd = None
    try:
        spaces.add(G3)
        netutil.add_guest(HOST, G3, tap_name(P3), bridge_name(EXT), MAC3, 1450)
        # A DHCP server on the LAN: the bridged guest must not get its address from it.
        ns(
            LAN,
            "dnsmasq",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            "--dhcp-range=192.0.2.150,192.0.2.160",
            "--interface=eth0",
            "--bind-interfaces",
            f"--pid-file={tmp / 'lan-dhcp.pid'}",
            f"--dhcp-leasefile={tmp / 'lan-dhcp.leases'}",
        )
        assert netutil.dhcp(G3, tmp) == "", "the LAN's DHCP server reached a bridged guest"
        ns(G3, "ip", "addr", "add", f"{BRIDGED_IP}/24", "dev", "eth0")
        ns(G3, "ip", "route", "add", "default", "via", "192.0.2.1")
        (tmp / "g3").mkdir()
        (tmp / "g3" / "index.html").write_text("hello from the LAN guest\n")
        httpd = subprocess.Popen(
            ["ip", "netns", "exec", G3, "busybox", "httpd", "-f", "-p", "80", "-h", str(tmp / "g3")]
        )
        wait_until(
            lambda: ns(G3, "ss", "-ltnH", "sport = :80").stdout.strip(), what="httpd", base=10, step=0.05
        )
        # The LAN reaches it directly, as its group allows; it leaves with its own address.
        assert ping(LAN, BRIDGED_IP, count=2)
        assert not http(LAN, BRIDGED_IP), "TCP reached a bridged guest whose group has no rule for it"
        assert seen_by_lan(G3) == BRIDGED_IP
        assert ping(G3, BEYOND), "the bridged guest does not get past the LAN's router"
        apply_in(HOST, state, bridged(http=True), physical_networks=PHYSNETS)
        assert http(LAN, BRIDGED_IP) == "hello from the LAN guest"
        # No other address of the LAN: anti-spoofing drops it.
        ns(G3, "ip", "addr", "add", "192.0.2.51/24", "dev", "eth0")
        assert not ping(LAN, "192.0.2.51"), "a bridged guest answered from an address not its own"
        # The tenant network's guests stay apart from it (no router, nothing routed).
        assert not ping(G1, BRIDGED_IP)
        # Its port goes: the tap is off the rules, the LAN no longer reaches it.
        apply_in(HOST, state, desired(router=False, fip=False), physical_networks=PHYSNETS)
        assert "tp-" + P3.replace("-", "")[:10] not in ns(HOST, "nft", "list", "ruleset").stdout
    finally:
        if httpd is not None:
            httpd.kill()
            httpd.wait()
        spaces.cleanup()
        pid = tmp / "lan-dhcp.pid"
        if pid.exists():
            netutil.sh("kill", pid.read_text().strip(), check=False)


def test_bridged_guest_config_drive() -> None:
    """A bridged guest's config drive: its LAN address static, the LAN's
    gateway, the subnet's DNS servers (no DHCP: the node serves none on the
    LAN); a tenant NIC next to it still asks DHCP. Its NIC is on the external bridge."""
    from noded.network import guest

    state = bridged(http=False)
    ports = {p.id: p for p in state.ports}
    nets = {n.id: n for n in state.networks}
    inst = pb.DesiredInstance(id="vm", port_ids=[P3, P1])
    config = json.loads(guest.network_config(inst, ports, nets))
    assert [c["subnets"] for c in config["config"]] == [
        [
            {
                "type": "static",
                "address": f"{BRIDGED_IP}/24",
                "gateway": "192.0.2.1",
                "dns_nameservers": [LAN_IP],
            }
        ],
        [{"type": "dhcp"}],
    ]
    assert f'<source bridge="{bridge_name(EXT)}"/>' in guest.interfaces(inst, ports, nets)[0]


LAN6, LAN_ROUTER6, ROUTER6, BEYOND6 = "2001:db8:e::100", "2001:db8:e::1", "2001:db8:e::10", "2001:db8:ff::7"
GUEST6 = {G1: "2001:db8:70::5", G2: "2001:db8:70::6"}

ECHO6 = ECHO.replace("socket.socket()", "socket.socket(socket.AF_INET6)").replace(
    '("0.0.0.0", 9000)', '("::", 9001)'
)


def desired6(router: bool = True, egress6: bool = True) -> pb.NodeDesiredState:
    """desired() with IPv6 on the tenant and external networks: the router's
    IPv6 address on the LAN (NAT66) when `router`."""
    state = desired(router=router, fip=False, external=True)
    if not router:  # the external network stays, without the router
        state.networks.append(
            pb.DesiredNetwork(
                id=EXT,
                external=True,
                network_type=2,
                physical_network="lan",
                subnets=[netutil.desired_subnet("se", "192.0.2.0/24")],
            )
        )
    tenant = next(n for n in state.networks if n.id == TENANT)
    tenant.subnets.append(netutil.desired_subnet("st6", "2001:db8:70::/64"))
    ext = next(n for n in state.networks if n.id == EXT)
    ext.subnets.append(netutil.desired_subnet("se6", "2001:db8:e::/64"))
    for p, ip in zip(state.ports, GUEST6.values(), strict=True):
        p.fixed_ips.append(pb.FixedIp(subnet_id="st6", ip_address=ip))
    group = state.security_groups[0]
    group.member_ips.extend(GUEST6.values())
    if egress6:
        group.rules.append(pb.DesiredSecurityGroupRule(id="e6", direction="egress", ip_version=6))
    group.rules.append(
        pb.DesiredSecurityGroupRule(id="icmp6", direction="ingress", ip_version=6, protocol="icmpv6")
    )
    for r in state.routers:
        r.interface_cidrs.append("2001:db8:70::/64")
        r.gateway_address6 = f"{ROUTER6}/64"
        r.external_gateway_ip6 = LAN_ROUTER6
    return state


def view6() -> dict[str, str]:
    """host_view with the IPv6 policy rules, less the links' operational
    state (a bridge turns from UNKNOWN to UP on its own once its ports are up)."""
    view = {**host_view(), "rule6": ns(HOST, "ip", "-6", "rule").stdout}
    # IPv6 forwarding (on once, never off, as IPv4's) gives every link the
    # subnet-router anycast address of its link-local prefix.
    view["route"] = "".join(
        line for line in view["route"].splitlines(keepends=True) if not line.startswith("anycast fe80::")
    )
    for key in ("addr", "links"):
        view[key] = "\n".join(
            " ".join(line.split()[:1] + line.split()[2:]) for line in view[key].splitlines()
        )
    return view


def seen_by_lan6(guest: str) -> str:
    out = ns(guest, "busybox", "nc", "-w", "3", LAN6, "9001", check=False, timeout=15)
    return out.stdout.strip()


def test_ipv6_egress_through_the_router(world: dict) -> None:
    """NAT66 on the router's IPv6 address: the guests reach the LAN and past
    its router over IPv6 as over IPv4, seen from the router's address; the
    LAN never reaches their own addresses; no router or no egress rule, no way
    out; a second pass changes nothing; the host is as before once the
    router goes (IPv6 rules and routes too)."""
    state = world["state"]
    for addr in (f"{LAN6}/64", f"{LAN_ROUTER6}/64"):
        ns(LAN, "ip", "addr", "add", addr, "dev", "eth0", "nodad")
    ns(LAN, "ip", "addr", "add", f"{BEYOND6}/128", "dev", "lo")
    echo = subprocess.Popen(["ip", "netns", "exec", LAN, sys.executable, "-c", ECHO6])
    try:
        apply_in(HOST, state, desired6(router=False), physical_networks=PHYSNETS)
        for g, ip in GUEST6.items():
            ns(g, "ip", "addr", "add", f"{ip}/64", "dev", "eth0", "nodad")
            ns(g, "ip", "-6", "route", "add", "default", "via", "2001:db8:70::1")
        wait_until(
            lambda: ns(LAN, "ss", "-ltnH", "sport = :9001").stdout.strip(), what="echo6", base=10, step=0.05
        )
        assert ping(G1, "2001:db8:70::1"), "the guest does not reach its IPv6 gateway"
        assert not ping(G1, LAN6), "IPv6 got out without a router"
        before = view6()
        apply_in(HOST, state, desired6(), physical_networks=PHYSNETS)
        for g in GUEST6:
            assert ping(g, LAN6, count=2), f"{g} does not reach the LAN over IPv6"
            assert seen_by_lan6(g) == ROUTER6, f"{g} left without NAT66"
            assert ping(g, BEYOND6), f"{g} does not get past the LAN's IPv6 router"
        assert not ping(HOST, BEYOND6), "the host's own IPv6 routing changed"
        # Only replies come in: a route to the tenant prefix does not reach the guests.
        ns(LAN, "ip", "-6", "route", "add", "2001:db8:70::/64", "via", ROUTER6)
        assert not ping(LAN, GUEST6[G1])
        # Idempotent.
        applied = view6()
        apply_in(HOST, state, desired6(), physical_networks=PHYSNETS)
        assert view6() == applied
        # Security groups decide as for IPv4: no IPv6 egress rule, no way out (IPv4 still).
        apply_in(HOST, state, desired6(egress6=False), physical_networks=PHYSNETS)
        assert not ping(G1, LAN6) and ping(G1, LAN_IP)
        # The router goes: IPv6 out stops, and the host's rules, routes and addresses are as before.
        apply_in(HOST, state, desired6(router=False), physical_networks=PHYSNETS)
        assert not ping(G1, LAN6)
        after = view6()
        for what in before:
            assert after[what] == before[what], f"{what} before:\\n{before[what]}\\nafter:\\n{after[what]}"
    finally:
        echo.kill()
        echo.wait()
