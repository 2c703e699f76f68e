"""The node's network step on this host itself (root; no libvirt): a bridge
with the gateway addresses, dnsmasq with exactly the static leases, nftables
rules from the security groups; a second pass changes nothing; removal
leaves nothing; two node daemons never remove each other's things. Also the
guest's NICs and network-config (no root)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.network import NetworkStep, bridge_name, guest, links, tap_name, vxlan_name
from noded.network.cmd import NetworkError
from noded.network.names import short
from tests import netutil

NET = "e7e7e7e7-0000-4000-8000-000000000001"
NET2 = "e8e8e8e8-0000-4000-8000-000000000002"
SG = "5c5c5c5c-0000-4000-8000-000000000001"
P1 = "b1b1b1b1-0000-4000-8000-000000000001"
P2 = "b2b2b2b2-0000-4000-8000-000000000002"


def network(nid: str = NET, third: int = 7, external: bool = False, peers: int = 0) -> pb.DesiredNetwork:
    return pb.DesiredNetwork(
        id=nid,
        vni=7000 + third,
        mtu=1400,
        external_routable=external,
        subnets=[
            netutil.desired_subnet(f"v4-{third}", f"10.213.{third}.0/24", dns_servers=["10.213.0.53"]),
            netutil.desired_subnet(f"v6-{third}", f"fd00:213:{third}::/64"),
        ],
        peers=[pb.OverlayPeer(node_id="peer", tunnel_ip="203.0.113.9", mac_addresses=["52:54:00:ee:00:09"])][
            :peers
        ],
    )


def port(pid: str, mac: str, ip: str, nid: str = NET, third: int = 7) -> pb.DesiredPort:
    return pb.DesiredPort(
        id=pid,
        network_id=nid,
        mac_address=mac,
        fixed_ips=[pb.FixedIp(subnet_id=f"v4-{third}", ip_address=ip)],
        instance_id="vm",
        security_group_ids=[SG],
    )


def group(*rules: pb.DesiredSecurityGroupRule) -> pb.DesiredSecurityGroup:
    return pb.DesiredSecurityGroup(id=SG, rules=list(rules), member_ips=["10.213.7.10", "10.213.7.11"])


HTTP = pb.DesiredSecurityGroupRule(
    id="http", direction="ingress", ip_version=4, protocol="tcp", port_range_min=80, port_range_max=80
)
ICMP = pb.DesiredSecurityGroupRule(id="icmp", direction="ingress", ip_version=4, protocol="icmp")
EGRESS = pb.DesiredSecurityGroupRule(id="out", direction="egress", ip_version=4)


@pytest.fixture
def steps() -> Iterator[list[NetworkStep]]:
    netutil.need_root_networking()
    made: list[NetworkStep] = []
    dirs: list[Path] = []

    def make() -> NetworkStep:
        d = netutil.state_dir("kumo-netnode-")
        dirs.append(d)
        made.append(NetworkStep(d, tunnel_ip="127.0.0.1"))
        return made[-1]

    made_fn = make
    try:
        yield made_fn  # type: ignore[misc]
    finally:
        for s in made:
            try:
                s.teardown_all()
            except Exception:
                pass
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def dnsmasq_pid(step: NetworkStep, nid: str = NET) -> int | None:
    return step.dhcp.pid(short(nid))


def nft(table: str) -> str:
    out = ""
    for family in ("bridge", "inet"):
        out += netutil.sh("nft", "list", "table", family, table, check=False).stdout
    return out


def test_bridge_dhcp_rules_and_removal(steps) -> None:  # type: ignore[no-untyped-def]
    step = steps()
    desired = pb.NodeDesiredState(
        networks=[network()],
        ports=[port(P1, "52:54:00:e7:00:10", "10.213.7.10")],
        security_groups=[group(HTTP, EGRESS)],
    )
    step(desired)
    br = bridge_name(NET)
    info = links.link(br)
    assert info is not None and info["mtu"] == 1400 and "UP" in info["flags"]
    assert info["ifalias"] == f"kumo {step.owner} {NET}"
    addrs = netutil.sh("ip", "-br", "addr", "show", "dev", br).stdout
    assert "10.213.7.1/24" in addrs and "fd00:213:7::1/64" in addrs
    assert links.link(vxlan_name(NET)) is None  # no peers, no overlay

    pid = dnsmasq_pid(step)
    assert pid is not None
    dhcp_dir = step.dir / "dhcp"
    assert (dhcp_dir / f"{short(NET)}.hosts").read_text() == "52:54:00:e7:00:10,10.213.7.10\n"
    args = (dhcp_dir / f"{short(NET)}.args").read_text().split("\0")
    for wanted in (
        "--bind-interfaces",
        f"--interface={br}",
        "--conf-file=/dev/null",
        "--dhcp-range=set:s0,10.213.7.0,static,255.255.255.0,1h",
        "--dhcp-option=tag:s0,option:router,10.213.7.1",
        "--dhcp-option=tag:s0,option:dns-server,10.213.0.53",
        "--dhcp-option=option:mtu,1400",
    ):
        assert wanted in args

    rules = nft(step.table)
    tap = tap_name(P1)
    assert f'iifname "{tap}" jump spoof_{short(P1)}' in rules
    assert "ether saddr != 52:54:00:e7:00:10 drop" in rules
    assert f'oifname "{br}" ip daddr 10.213.7.10 jump ingress_{short(P1)}' in rules
    assert "tcp dport 80 accept" in rules
    assert "masquerade" not in rules  # not external-routable (NAT: see test_network_overlay)

    # A second pass (same process, then a restarted daemon) changes nothing.
    ifindex = info["ifindex"]
    step(desired)
    NetworkStep(step.dir.parent, "127.0.0.1")(desired)
    assert links.link(br)["ifindex"] == ifindex  # type: ignore[index]
    assert dnsmasq_pid(step) == pid

    # A new port: the lease file grows, dnsmasq re-reads it (same process).
    desired.ports.append(port(P2, "52:54:00:e7:00:11", "10.213.7.11"))
    desired.security_groups[0].CopyFrom(group(ICMP, EGRESS))
    step(desired)
    assert (dhcp_dir / f"{short(NET)}.hosts").read_text().splitlines() == [
        "52:54:00:e7:00:10,10.213.7.10",
        "52:54:00:e7:00:11,10.213.7.11",
    ]
    assert dnsmasq_pid(step) == pid
    rules = nft(step.table)
    assert "tcp dport 80" not in rules and "icmp accept" in rules.replace("meta l4proto icmp", "icmp")
    assert f"spoof_{short(P2)}" in rules

    # The network goes: nothing of it is left.
    step(pb.NodeDesiredState())
    assert links.link(br) is None
    assert not os.path.exists(f"/proc/{pid}")
    assert nft(step.table) == ""
    assert list(dhcp_dir.glob("*")) == []
    assert json.loads((step.dir / "owned.json").read_text()) == {"networks": {}, "table": False}


def test_overlay_device_and_forwarding_entries(steps) -> None:  # type: ignore[no-untyped-def]
    step = steps()
    desired = pb.NodeDesiredState(networks=[network(peers=1)])
    step(desired)
    vx = vxlan_name(NET)
    info = links.link(vx)
    assert info is not None and info["master"] == bridge_name(NET)
    assert info["linkinfo"]["info_data"]["id"] == 7007
    assert links.fdb_entries(vx) == {
        ("00:00:00:00:00:00", "203.0.113.9"),
        ("52:54:00:ee:00:09", "203.0.113.9"),
    }
    # The remote port moved to another node; the old entries go.
    desired.networks[0].peers[0].tunnel_ip = "203.0.113.10"
    step(desired)
    assert links.fdb_entries(vx) == {
        ("00:00:00:00:00:00", "203.0.113.10"),
        ("52:54:00:ee:00:09", "203.0.113.10"),
    }
    rules = nft(step.table)
    assert f'iifname "{vx}" jump overlay_{short(NET)}' in rules
    assert "arp daddr ip 10.213.7.1 drop" in rules
    # No more peers: no more overlay device.
    del desired.networks[0].peers[:]
    step(desired)
    assert links.link(vx) is None


def test_two_daemons_keep_to_their_own(steps) -> None:  # type: ignore[no-untyped-def]
    a, b = steps(), steps()
    assert a.table != b.table
    a(pb.NodeDesiredState(networks=[network(NET, 7)], ports=[port(P1, "52:54:00:e7:00:10", "10.213.7.10")]))
    b(
        pb.NodeDesiredState(
            networks=[network(NET2, 8)], ports=[port(P2, "52:54:00:e8:00:10", "10.213.8.10", NET2, 8)]
        )
    )
    # b may not take a's bridge, even when told about the same network.
    with pytest.raises(NetworkError, match="not ours"):
        b(
            pb.NodeDesiredState(
                networks=[network(NET2, 8), network(NET, 7)],
                ports=[port(P2, "52:54:00:e8:00:10", "10.213.8.10", NET2, 8)],
            )
        )
    assert links.link(bridge_name(NET)) is not None
    # Each removes only its own.
    a(pb.NodeDesiredState())
    assert links.link(bridge_name(NET)) is None
    assert links.link(bridge_name(NET2)) is not None
    assert dnsmasq_pid(b, NET2) is not None
    assert f"spoof_{short(P2)}" in nft(b.table)
    b(pb.NodeDesiredState())
    assert links.link(bridge_name(NET2)) is None
    assert nft(b.table) == ""


def test_dhcp_and_security_group_with_a_guest(steps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A "guest" namespace on the host's bridge gets exactly its fixed IP; the
    host reaches it only as its security group allows."""
    step = steps()
    spaces = netutil.Namespaces()
    try:
        mac = "52:54:00:e7:00:10"
        desired = pb.NodeDesiredState(
            networks=[network()], ports=[port(P1, mac, "10.213.7.10")], security_groups=[group(EGRESS)]
        )
        step(desired)
        g = spaces.add("kbt-hg")
        netutil.add_guest(None, g, tap_name(P1), bridge_name(NET), mac, 1400)
        assert netutil.dhcp(g, tmp_path) == "10.213.7.10"
        # Another MAC on the same bridge gets nothing.
        g2 = spaces.add("kbt-hg2")
        netutil.add_guest(None, g2, "kbt-stranger", bridge_name(NET), "52:54:00:e7:00:99", 1400)
        assert netutil.dhcp(g2, tmp_path) == ""
        # Once it is a port, dnsmasq (told by SIGHUP, not restarted) answers it.
        pid = dnsmasq_pid(step)
        desired.ports.append(port(P2, "52:54:00:e7:00:99", "10.213.7.11"))
        step(desired)
        assert dnsmasq_pid(step) == pid
        assert netutil.dhcp(g2, tmp_path) == "10.213.7.11"
        # A bridge made anew (someone deleted it) gets the guest's tap back.
        netutil.sh("ip", "link", "del", bridge_name(NET))
        step(desired)
        assert links.link(tap_name(P1))["master"] == bridge_name(NET)  # type: ignore[index]
        assert dnsmasq_pid(step) != pid  # restarted on the new bridge
        assert netutil.dhcp(g, tmp_path) == "10.213.7.10"
        assert not netutil.ping(None, "10.213.7.10")  # no ICMP rule
        desired.security_groups[0].CopyFrom(group(ICMP, EGRESS))
        step(desired)
        assert netutil.ping(None, "10.213.7.10")
        # The guest reaches its gateway (egress allowed; the reply is established).
        assert netutil.ping(g, "10.213.7.1")
    finally:
        spaces.cleanup()
        netutil.sh("ip", "link", "del", "kbt-stranger", check=False)


def test_guest_nics_and_network_config() -> None:
    ports = {
        P1: port(P1, "52:54:00:E7:00:10", "10.213.7.10"),
        P2: port(P2, "52:54:00:e7:00:11", "10.213.7.11"),
    }
    inst = pb.DesiredInstance(id="vm", port_ids=[P2, P1])
    nics = guest.interfaces(inst, ports, {NET: network()})
    assert len(nics) == 2
    assert '<mac address="52:54:00:e7:00:11"/>' in nics[0]
    assert f'<source bridge="{bridge_name(NET)}"/>' in nics[0]
    assert f'<target dev="{tap_name(P2)}"/>' in nics[0]
    assert "<model type='virtio'/>" in nics[0] and "<mtu size='1400'/>" in nics[0]
    config = json.loads(guest.network_config(inst, ports, {NET: network()}))
    assert config["version"] == 1
    assert [(c["name"], c["mac_address"], c["subnets"]) for c in config["config"]] == [
        ("eth0", "52:54:00:e7:00:11", [{"type": "dhcp"}]),
        ("eth1", "52:54:00:e7:00:10", [{"type": "dhcp"}]),
    ]
    assert guest.network_config(pb.DesiredInstance(id="vm"), ports, {}) == ""
    with pytest.raises(RuntimeError, match="not in the desired state"):
        guest.interfaces(pb.DesiredInstance(id="vm", port_ids=["nope"]), ports, {})
    assert all(len(n) <= 15 for n in (bridge_name(NET), vxlan_name(NET), tap_name(P1), tap_name("x" * 99)))


def test_tunnel_ip_default_and_inventory() -> None:
    from noded.agent import inventory_pb
    from noded.hypervisor.base import HostFacts
    from noded.network.step import default_tunnel_ip

    assert default_tunnel_ip("127.0.0.1:7444") == "127.0.0.1"
    assert default_tunnel_ip("no-such-host.invalid:7444") == ""
    facts = HostFacts(
        hostname="h",
        vcpus=1,
        memory_mb=1,
        disk_gb=1,
        virt_type="qemu",
        driver="libvirt",
        arch="x86_64",
        cpu_model="",
        libvirt_version="",
        qemu_version="",
        kernel="",
    )
    assert inventory_pb(facts, "198.51.100.7").tunnel_ip == "198.51.100.7"


UPGRADE = """
import json, subprocess, sys
from noded.network import links
def show():
    dev = json.loads(subprocess.run(["ip", "-j", "addr", "show", "kb-upg"], capture_output=True, text=True).stdout)[0]
    return dev["address"], sorted(a["local"] for a in dev["addr_info"] if a["family"] == "inet6")
links.ensure_bridge("kb-upg", 1450, "kumo t n")  # as made before gateway MACs
# A port with carrier: the kernel gives a bridge a link-local address only then.
subprocess.run(["ip", "link", "add", "upg0", "type", "veth", "peer", "name", "upg1"], check=True)
subprocess.run(["ip", "link", "set", "upg0", "master", "kb-upg", "up"], check=True)
subprocess.run(["ip", "link", "set", "upg1", "up"], check=True)
old = show()
made = links.ensure_bridge("kb-upg", 1450, "kumo t n", sys.argv[1])
again = links.ensure_bridge("kb-upg", 1450, "kumo t n", sys.argv[1])
print(json.dumps([old, show(), made, again]))
"""


def test_a_bridge_made_before_gateway_macs_gets_its_mac_and_link_local_address() -> None:
    """An existing bridge (its MAC the kernel's) takes the network's gateway
    MAC and the link-local address of it at the next pass, reported as made
    anew (dnsmasq restarts on it); a further pass changes nothing."""
    netutil.need_root_networking()
    spaces = netutil.Namespaces()
    try:
        where = spaces.add("kbt-upg")
        out = netutil.ns(where, sys.executable, "-c", UPGRADE, "fa:16:3f:0a:0b:0c")
        (old_mac, _), (mac, ll), made, again = json.loads(out.stdout)
        assert old_mac != mac == "fa:16:3f:0a:0b:0c"
        assert ll == ["fe80::f816:3fff:fe0a:b0c"] and made is True and again is False
    finally:
        spaces.cleanup()
