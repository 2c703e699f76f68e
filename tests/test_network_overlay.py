"""Overlay: two "hosts" made of network namespaces on this machine, joined by a
veth underlay, each running the node's network step (in a fresh process, as
noded would). A guest port on each host (a veth into a further namespace,
attached to the bridge with the port's MAC) gets its fixed IP by DHCP from its
own host and reaches the other across VXLAN, and resolves the other host's
ports' names through its own host's gateway; a third network, same subnet but
another VNI, stays isolated; security groups decide; teardown leaves nothing.
A network's gateway has one MAC (and link-local address) on both hosts, kept
off the overlay, so a guest moved from one host to the other keeps its ARP
and NDP entries for it. Needs root; no libvirt."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.network import bridge_name, tap_name
from noded.network.names import gateway_mac
from tests import netutil
from tests.netutil import apply_in, lookup, ns, ping
from tests.waits import wait_until

N1 = "a1a1a1a1-0000-4000-8000-000000000001"
N3 = "a3a3a3a3-0000-4000-8000-000000000003"
SUBNET = "10.61.0.0/24"  # on both networks: tenants may overlap, VNIs keep them apart
GW = "10.61.0.1"
UNDERLAY = {"a": "198.51.100.1", "b": "198.51.100.2"}
PORTS = {  # name: (host, network, mac, ip)
    "a1": ("a", N1, "52:54:00:61:00:a1", "10.61.0.10"),
    "b1": ("b", N1, "52:54:00:61:00:b1", "10.61.0.11"),
    "a3": ("a", N3, "52:54:00:61:00:a3", "10.61.0.12"),
    "b3": ("b", N3, "52:54:00:61:00:b3", "10.61.0.13"),
}
SG = "5a5a5a5a-0000-4000-8000-0000000000aa"


def port_id(name: str) -> str:
    return f"{name}{name}{name}{name}-0000-4000-8000-0000000000{name}"


def desired(host: str, icmp: bool = True) -> pb.NodeDesiredState:
    other = "b" if host == "a" else "a"
    rules = [pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4)]
    if icmp:
        rules.append(
            pb.DesiredSecurityGroupRule(id="icmp", direction="ingress", ip_version=4, protocol="icmp")
        )
    state = pb.NodeDesiredState(
        security_groups=[
            pb.DesiredSecurityGroup(id=SG, rules=rules, member_ips=[p[3] for p in PORTS.values()])
        ]
    )
    for net, vni in ((N1, 4101), (N3, 4103)):
        remote_macs = [mac for h, n, mac, _ in PORTS.values() if h == other and n == net]
        state.networks.append(
            pb.DesiredNetwork(
                id=net,
                vni=vni,
                mtu=1450,
                subnets=[netutil.desired_subnet(f"sub-{vni}", SUBNET)],
                peers=[
                    pb.OverlayPeer(
                        node_id=f"node-{other}", tunnel_ip=UNDERLAY[other], mac_addresses=remote_macs
                    )
                ],
                # Every port of the network, both hosts' (as the controller sends).
                dns_domain=f"net{vni}.kumo",
                dns_records=[
                    pb.DnsRecord(hostname=f"vm-{name}", ip_addresses=[ip])
                    for name, (_, n, _, ip) in PORTS.items()
                    if n == net
                ],
            )
        )
    for name, (h, net, mac, ip) in PORTS.items():
        if h == host:
            state.ports.append(
                pb.DesiredPort(
                    id=port_id(name),
                    network_id=net,
                    mac_address=mac,
                    fixed_ips=[pb.FixedIp(subnet_id=f"sub-{4101 if net == N1 else 4103}", ip_address=ip)],
                    instance_id=f"vm-{name}",
                    security_group_ids=[SG],
                )
            )
    return state


@pytest.fixture
def world() -> Iterator[dict]:
    hosts = {f"kbt-host{h}": addr for h, addr in UNDERLAY.items()}
    with netutil.two_hosts(hosts, [f"kbt-g{name}" for name in PORTS], "kumo-ovl-") as states:
        yield {"states": {h: states[f"kbt-host{h}"] for h in UNDERLAY}}


def host_state(h: str) -> tuple[list[str], str, str]:
    links = ns(f"kbt-host{h}", "ip", "-br", "link").stdout
    ours = [line.split()[0].split("@")[0] for line in links.splitlines() if line.startswith(("kb-", "kv-"))]
    rules = ns(f"kbt-host{h}", "nft", "list", "ruleset").stdout
    pids = netutil.sh("ip", "netns", "pids", f"kbt-host{h}").stdout.strip()
    return ours, rules, pids


def test_overlay_joins_two_hosts_and_keeps_networks_apart(world: dict, tmp_path: Path) -> None:
    states = world["states"]
    for h in UNDERLAY:
        apply_in(f"kbt-host{h}", states[h], desired(h), UNDERLAY[h])
    for name, (h, net, mac, _) in PORTS.items():
        netutil.add_guest(
            f"kbt-host{h}", f"kbt-g{name}", tap_name(port_id(name)), bridge_name(net), mac, 1450
        )

    # Each guest gets exactly its port's fixed IP, from its own host.
    for name, (_, _, _, ip) in PORTS.items():
        assert netutil.dhcp(f"kbt-g{name}", tmp_path) == ip, f"guest {name} did not get {ip} by DHCP"
    log_b = next((states["b"] / "network" / "dhcp").glob("*.log"), None)
    b_logs = "".join(p.read_text() for p in (states["b"] / "network" / "dhcp").glob("*.log"))
    assert log_b is not None and PORTS["b1"][2] in b_logs
    assert PORTS["a1"][2] not in b_logs, "DHCP crossed the overlay"

    # Each guest's gateway is its own host's bridge: ARP for it does not cross.
    for name in ("a1", "b1"):
        h = PORTS[name][0]
        assert ping(f"kbt-g{name}", "10.61.0.1")
        neigh = ns(f"kbt-g{name}", "ip", "neigh", "show", "10.61.0.1").stdout
        bridge_mac = json.loads(ns(f"kbt-host{h}", "ip", "-j", "link", "show", bridge_name(N1)).stdout)[0]
        assert bridge_mac["address"] in neigh, f"{name}'s gateway answered from elsewhere: {neigh}"

    # Same network, two hosts: L2 across VXLAN.
    assert ping("kbt-ga1", PORTS["b1"][3], count=2)
    assert ping("kbt-gb3", PORTS["a3"][3], count=2)
    # Another VNI, same subnet: isolated, on the other host and on the same one.
    assert not ping("kbt-ga1", PORTS["b3"][3])
    assert not ping("kbt-ga1", PORTS["a3"][3])

    # DNS: each guest's resolver is its own host's gateway, which answers
    # the names of the network's ports on the other host too. N3 has the same
    # gateway address as N1 on each host: only N1 (first by id) resolves
    # there, and N3's guests reach neither resolver (nor N1's names).
    assert lookup("kbt-gb1", "vm-a1.net4101.kumo", GW) == [PORTS["a1"][3]]
    assert lookup("kbt-ga1", "vm-b1", GW) == [PORTS["b1"][3]]
    assert lookup("kbt-gb3", "vm-a1.net4101.kumo", GW) == []
    assert lookup("kbt-gb3", "vm-a3.net4103.kumo", GW) == []

    # Idempotent: a second pass (a restarted noded) changes nothing that breaks traffic.
    apply_in("kbt-hosta", states["a"], desired("a"), UNDERLAY["a"])
    assert ping("kbt-ga1", PORTS["b1"][3])

    # Security group without the ICMP rule: the ping is dropped (ingress on b).
    apply_in("kbt-hostb", states["b"], desired("b", icmp=False), UNDERLAY["b"])
    assert not ping("kbt-ga1", PORTS["b1"][3])
    apply_in("kbt-hostb", states["b"], desired("b", icmp=True), UNDERLAY["b"])
    assert ping("kbt-ga1", PORTS["b1"][3])

    # Anti-spoofing: a guest that takes another address is dropped at its port.
    ns("kbt-ga1", "ip", "addr", "add", "10.61.0.99/24", "dev", "eth0")
    spoof = netutil.sh(
        "ip",
        "netns",
        "exec",
        "kbt-ga1",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "-I",
        "10.61.0.99",
        PORTS["b1"][3],
        check=False,
    )
    assert spoof.returncode != 0, "a spoofed source address went through"

    # Teardown: nothing is left on either host.
    for h in UNDERLAY:
        apply_in(f"kbt-host{h}", states[h], pb.NodeDesiredState(), UNDERLAY[h])
        links, rules, pids = host_state(h)
        assert links == [], f"host {h} kept {links}"
        assert "kumo_" not in rules, rules
        assert pids == "", f"host {h} kept processes {pids}"


def test_outbound_nat_and_no_routing_between_networks(tmp_path: Path) -> None:
    """An external-routable network reaches the outside through the host,
    masqueraded (the outside has no route back to the guest's subnet); two
    networks on one host are not routed to each other; of the host itself a
    guest reaches only DHCP and ICMP. In namespaces: ip_forward is theirs."""
    netutil.need_root_networking()
    spaces = netutil.Namespaces()
    state = netutil.state_dir("kumo-nat-")
    nat, other = "a5a5a5a5-0000-4000-8000-000000000005", "a6a6a6a6-0000-4000-8000-000000000006"
    nat_port, other_port = port_id("a5"), port_id("a6")

    def desired_nat(external: bool) -> pb.NodeDesiredState:
        out = pb.NodeDesiredState(
            security_groups=[
                pb.DesiredSecurityGroup(
                    id=SG,
                    rules=[
                        pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
                        pb.DesiredSecurityGroupRule(id="i4", direction="ingress", ip_version=4),
                    ],
                )
            ]
        )
        for nid, third, pid, mac, ext in (
            (nat, 65, nat_port, "52:54:00:65:00:0a", external),
            (other, 66, other_port, "52:54:00:66:00:0a", False),
        ):
            out.networks.append(
                pb.DesiredNetwork(
                    id=nid,
                    vni=third,
                    external_routable=ext,
                    subnets=[netutil.desired_subnet(f"s{third}", f"10.{third}.0.0/24")],
                )
            )
            out.ports.append(
                pb.DesiredPort(
                    id=pid,
                    network_id=nid,
                    mac_address=mac,
                    fixed_ips=[pb.FixedIp(subnet_id=f"s{third}", ip_address=f"10.{third}.0.10")],
                    security_group_ids=[SG],
                )
            )
        return out

    try:
        host, g5, g6, outside = (spaces.add(n) for n in ("kbt-nh", "kbt-ng5", "kbt-ng6", "kbt-nx"))
        netutil.sh("ip", "link", "add", "kbt-nh0", "type", "veth", "peer", "name", "kbt-nx0")
        netutil.sh("ip", "link", "set", "kbt-nh0", "netns", host)
        netutil.sh("ip", "link", "set", "kbt-nx0", "netns", outside)
        ns(host, "ip", "addr", "add", "198.51.100.65/30", "dev", "kbt-nh0")
        ns(host, "ip", "link", "set", "kbt-nh0", "up")
        ns(outside, "ip", "addr", "add", "198.51.100.66/30", "dev", "kbt-nx0")
        ns(outside, "ip", "link", "set", "kbt-nx0", "up")
        apply_in(host, state, desired_nat(True))
        netutil.add_guest(host, g5, tap_name(nat_port), bridge_name(nat), "52:54:00:65:00:0a", 1450)
        netutil.add_guest(host, g6, tap_name(other_port), bridge_name(other), "52:54:00:66:00:0a", 1450)
        assert netutil.dhcp(g5, tmp_path) == "10.65.0.10"
        assert netutil.dhcp(g6, tmp_path) == "10.66.0.10"
        assert ns(host, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert "masquerade" in ns(host, "nft", "list", "ruleset").stdout
        assert ping(g5, "198.51.100.66", count=2), "no way out through NAT"
        assert ping(g5, "10.65.0.1")  # its gateway
        assert not ping(g5, "10.66.0.10"), "the host routed between two networks"
        assert not ping(g6, "198.51.100.66"), "a network without NAT got out"
        # A TCP service of the host (listening on all addresses) is out of reach.
        listener = subprocess.Popen(
            ["ip", "netns", "exec", host, "busybox", "nc", "-ll", "-p", "2222", "-e", "/bin/true"]
        )
        try:
            wait_until(
                lambda: ns(host, "ss", "-ltnH", "sport = :2222").stdout.strip(),
                what="the host's test service listening",
                base=10,
                step=0.05,
            )
            reach = ns(outside, "busybox", "nc", "-w", "2", "198.51.100.65", "2222", check=False, timeout=10)
            assert reach.returncode == 0, "the host's test service does not answer at all"
            probe = ns(g5, "busybox", "nc", "-w", "2", "10.65.0.1", "2222", check=False, timeout=10)
            assert probe.returncode != 0, "a guest reached a service of its host"
        finally:
            listener.kill()
            listener.wait()
        apply_in(host, state, desired_nat(False))
        assert "masquerade" not in ns(host, "nft", "list", "ruleset").stdout
        assert not ping(g5, "198.51.100.66")
        apply_in(host, state, pb.NodeDesiredState())
        assert "kumo_" not in ns(host, "nft", "list", "ruleset").stdout
    finally:
        spaces.cleanup()
        shutil.rmtree(state, ignore_errors=True)


MOVER = "a7a7a7a7-0000-4000-8000-000000000007"
MOVER_PORT = port_id("a7")
MOVER_MAC = "52:54:00:62:00:a7"
MOVER_IP = "10.62.0.10"
MOVER_GW = "10.62.0.1"
MOVE_HOSTS = {"kbt-mva": "198.51.100.1", "kbt-mvb": "198.51.100.2"}


def mover_desired(on: str, here: str) -> pb.NodeDesiredState:
    """Host `here`'s desired state while the port runs on host `on`: the
    network on both (the controller would send it with another port on the
    other host), the port's MAC a remote one on the other."""
    other = next(h for h in MOVE_HOSTS if h != here)
    state = pb.NodeDesiredState(
        security_groups=[
            pb.DesiredSecurityGroup(
                id=SG,
                rules=[
                    pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
                    pb.DesiredSecurityGroupRule(id="e6", direction="egress", ip_version=6),
                ],
            )
        ],
        networks=[
            pb.DesiredNetwork(
                id=MOVER,
                vni=4107,
                mtu=1450,
                subnets=[netutil.desired_subnet("sub-4107", "10.62.0.0/24")],
                peers=[
                    pb.OverlayPeer(
                        node_id=other,
                        tunnel_ip=MOVE_HOSTS[other],
                        mac_addresses=[MOVER_MAC] if on == other else [],
                    )
                ],
            )
        ],
    )
    if on == here:
        state.ports.append(
            pb.DesiredPort(
                id=MOVER_PORT,
                network_id=MOVER,
                mac_address=MOVER_MAC,
                fixed_ips=[pb.FixedIp(subnet_id="sub-4107", ip_address=MOVER_IP)],
                instance_id="vm-mover",
                security_group_ids=[SG],
            )
        )
    return state


def gateway_neighbours(guest: str) -> dict[str, str]:
    """The guest's neighbour cache entries (address -> MAC) on eth0."""
    out = json.loads(ns(guest, "ip", "-j", "neigh", "show", "dev", "eth0").stdout or "[]")
    return {e["dst"]: e.get("lladdr", "") for e in out}


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of a MAC."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02
    words = [(b[0] << 8) | b[1], (b[2] << 8) | 0xFF, 0xFE00 | b[3], (b[4] << 8) | b[5]]
    return "fe80::" + ":".join(f"{w:x}" for w in words)


def test_a_guest_moved_to_another_host_keeps_its_gateway_neighbour(tmp_path: Path) -> None:
    """Each tenant network's gateway has one MAC on every node, so a guest
    that moves (a live migration) keeps a right ARP and NDP entry for it.
    The "guest" is a namespace whose eth0 goes to a "wire" namespace (a
    bridge with one link to each host's kumo bridge, named as the port's
    tap): its link never goes down, so the kernel keeps its neighbour cache,
    as a migrated guest's does. Moving switches the wire's links and the
    desired states; host a's network then goes altogether."""
    guest, wire = "kbt-mvg", "kbt-mvw"  # the guest; the hypervisors' wire it moves on
    tap = tap_name(MOVER_PORT)
    br = bridge_name(MOVER)
    gw_mac = gateway_mac(MOVER)
    with netutil.two_hosts(MOVE_HOSTS, [guest, wire], "kumo-mv-") as states:
        for h in MOVE_HOSTS:
            apply_in(h, states[h], mover_desired("kbt-mva", h), MOVE_HOSTS[h])
        netutil.sh(
            "ip", "link", "add", "eth0", "netns", guest, "type", "veth", "peer", "name", "g", "netns", wire
        )
        ns(guest, "ip", "link", "set", "eth0", "address", MOVER_MAC, "mtu", "1450", "up")
        ns(wire, "ip", "link", "add", "sw", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ns(wire, "ip", "link", "set", "g", "mtu", "1450", "master", "sw", "up")
        for h, end in (("kbt-mva", "wa"), ("kbt-mvb", "wb")):
            netutil.sh(
                "ip", "link", "add", tap, "netns", h, "type", "veth", "peer", "name", end, "netns", wire
            )
            ns(h, "ip", "link", "set", tap, "mtu", "1450", "master", br, "up")
            ns(wire, "ip", "link", "set", end, "mtu", "1450", "master", "sw")
        ns(wire, "ip", "link", "set", "wa", "up")
        ns(wire, "ip", "link", "set", "sw", "up")

        # Both hosts' bridges have the network's gateway MAC, and the same
        # link-local address, which passed DAD on both: the overlay does not
        # carry the gateway MAC (else each host hears the other's DAD).
        gw6 = link_local(gw_mac)
        for h in MOVE_HOSTS:
            dev = json.loads(ns(h, "ip", "-j", "link", "show", br).stdout)[0]
            assert dev["address"] == gw_mac, f"{h}'s bridge is at {dev['address']}, not {gw_mac}"
            wait_until(
                lambda h=h: (
                    (a := ns(h, "ip", "-6", "addr", "show", "dev", br).stdout)
                    and ("tentative" not in a or "dadfailed" in a)
                ),
                what=f"DAD of {h}'s bridge link-local address",
                base=10,
                step=0.2,
            )
            addrs = ns(h, "ip", "-6", "addr", "show", "dev", br).stdout
            assert gw6 in addrs and "dadfailed" not in addrs, addrs
            learned = ns(h, "bridge", "fdb", "show", "br", br).stdout
            assert not any(gw_mac in line and "kv-" in line for line in learned.splitlines()), learned

        # On host a: DHCP from its bridge, the gateway by ARP and by NDP.
        assert netutil.dhcp(guest, tmp_path) == MOVER_IP
        # (the test's udhcpc script flushed every address of eth0, its link-local one too)
        ns(guest, "ip", "addr", "replace", f"{link_local(MOVER_MAC)}/64", "dev", "eth0", "nodad")
        assert ping(guest, MOVER_GW)
        assert ns(guest, "ping", "-c", "1", "-W", "1", f"{gw6}%eth0", check=False).returncode == 0
        before = gateway_neighbours(guest)
        assert before.get(MOVER_GW) == gw_mac and before.get(gw6) == gw_mac, before

        # The move: the port's desired state goes to host b, the guest's wire
        # with it (b's first, so the guest's link never drops), then host a's
        # network goes: what answers now can only be host b's bridge.
        for h in MOVE_HOSTS:
            apply_in(h, states[h], mover_desired("kbt-mvb", h), MOVE_HOSTS[h])
        ns(wire, "ip", "link", "set", "wb", "up")
        ns(wire, "ip", "link", "set", "wa", "down")
        apply_in("kbt-mva", states["kbt-mva"], pb.NodeDesiredState(), MOVE_HOSTS["kbt-mva"])
        assert gateway_neighbours(guest) == before, "the guest's neighbour cache was flushed"
        assert ping(guest, MOVER_GW), "the moved guest does not reach its gateway with its cached entry"
        assert ns(guest, "ping", "-c", "1", "-W", "1", f"{gw6}%eth0", check=False).returncode == 0
        after = gateway_neighbours(guest)
        assert after.get(MOVER_GW) == gw_mac and after.get(gw6) == gw_mac, after
        # DHCP renews from host b at the same gateway.
        assert netutil.dhcp_lease(guest, tmp_path).get("ROUTER") == MOVER_GW
