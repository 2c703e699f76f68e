"""Distributed SNAT on two nodes, in network namespaces: two "hosts" joined
by an underlay veth (the tenant network spans them by VXLAN), each with an
uplink veth into one "LAN" namespace (a bridge there: the LAN switch, the
LAN's router and an echo server that answers with the peer's address), and
a guest namespace on each host. Each host runs its network step (in a fresh
process, as noded would) with the router told as the controller tells it:
the first node with the router's address, the second with its own. A guest
on either node reaches the LAN and past it through its own node's SNAT;
without its node's address (the old centralised SNAT) the second node's
guest has no way out. Needs root; no libvirt."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from kumo.v1 import node_agent_pb2 as pb
from noded.network import bridge_name, tap_name
from tests import netutil
from tests.netutil import apply_in, ns, ping
from tests.test_routers_node import ECHO
from tests.waits import wait_until

TENANT = "c1c1c1c1-0000-4000-8000-000000000001"
EXT = "c2c2c2c2-0000-4000-8000-000000000002"
SG = "c3c3c3c3-0000-4000-8000-000000000003"
UNDERLAY = {"a": "10.99.2.1", "b": "10.99.2.2"}
# host -> (port id, MAC, fixed IP, its node's SNAT address)
PORTS = {
    "a": ("c4c4c4c4-0000-4000-8000-000000000004", "52:54:00:72:00:0a", "10.72.0.5", "192.0.2.10"),
    "b": ("c5c5c5c5-0000-4000-8000-000000000005", "52:54:00:72:00:0b", "10.72.0.6", "192.0.2.11"),
}
LAN_IP, BEYOND = "192.0.2.100", "203.0.113.7"
LAN = "kbs-lan"
PHYSNETS = {"lan": "kbs-up"}


def host(h: str) -> str:
    return f"kbs-host{h}"


def guest(h: str) -> str:
    return f"kbs-g{h}"


def desired(h: str, snat: bool = True) -> pb.NodeDesiredState:
    """What the controller tells host `h`: its guest's port, the tenant
    network with the other host as VXLAN peer, the external network, and the
    router with this node's own SNAT address."""
    other = "b" if h == "a" else "a"
    pid, mac, ip, snat_ip = PORTS[h]
    rules = [
        pb.DesiredSecurityGroupRule(id="e4", direction="egress", ip_version=4),
        pb.DesiredSecurityGroupRule(id="icmp", direction="ingress", ip_version=4, protocol="icmp"),
    ]
    state = pb.NodeDesiredState(
        security_groups=[
            pb.DesiredSecurityGroup(id=SG, rules=rules, member_ips=[p[2] for p in PORTS.values()])
        ],
        networks=[
            pb.DesiredNetwork(
                id=TENANT,
                vni=4172,
                mtu=1450,
                subnets=[netutil.desired_subnet("st", "10.72.0.0/24")],
                peers=[
                    pb.OverlayPeer(node_id=other, tunnel_ip=UNDERLAY[other], mac_addresses=[PORTS[other][1]])
                ],
            ),
            pb.DesiredNetwork(
                id=EXT,
                external=True,
                network_type=2,
                physical_network="lan",
                subnets=[netutil.desired_subnet("se", "192.0.2.0/24")],
            ),
        ],
        ports=[
            pb.DesiredPort(
                id=pid,
                network_id=TENANT,
                mac_address=mac,
                fixed_ips=[pb.FixedIp(subnet_id="st", ip_address=ip)],
                security_group_ids=[SG],
            )
        ],
    )
    if snat:
        state.routers.append(
            pb.DesiredRouter(
                id="r1",
                external_network_id=EXT,
                gateway_address=f"{snat_ip}/24",
                external_gateway_ip="192.0.2.1",
                interface_cidrs=["10.72.0.0/24"],
                interface_network_ids=[TENANT],
            )
        )
    return state


@pytest.fixture
def world() -> Iterator[dict]:
    hosts = {host(h): addr for h, addr in UNDERLAY.items()}
    procs: list[subprocess.Popen] = []
    with netutil.two_hosts(hosts, [guest(h) for h in UNDERLAY] + [LAN], "kumo-snat-") as states:
        try:
            ns(LAN, "ip", "link", "add", "lanbr", "type", "bridge")
            ns(LAN, "ip", "link", "set", "lanbr", "up")
            for h in UNDERLAY:
                # The host's LAN interface (as the admin set it up), its other end on the LAN switch.
                netutil.sh("ip", "link", "add", f"kbs-l{h}", "type", "veth", "peer", "name", "kbs-up")
                netutil.sh("ip", "link", "set", "kbs-up", "netns", host(h))
                netutil.sh("ip", "link", "set", f"kbs-l{h}", "netns", LAN)
                ns(host(h), "ip", "link", "set", "kbs-up", "up")
                ns(LAN, "ip", "link", "set", f"kbs-l{h}", "master", "lanbr")
                ns(LAN, "ip", "link", "set", f"kbs-l{h}", "up")
            for addr in (f"{LAN_IP}/24", "192.0.2.1/24"):  # a LAN host and the LAN's router
                ns(LAN, "ip", "addr", "add", addr, "dev", "lanbr")
            ns(LAN, "ip", "addr", "add", f"{BEYOND}/32", "dev", "lo")
            for h in UNDERLAY:
                pid, mac, ip, _ = PORTS[h]
                apply_in(
                    host(h), states[host(h)], desired(h, snat=False), UNDERLAY[h], physical_networks=PHYSNETS
                )
                netutil.add_guest(host(h), guest(h), tap_name(pid), bridge_name(TENANT), mac, 1450)
                ns(guest(h), "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
                ns(guest(h), "ip", "route", "add", "default", "via", "10.72.0.1")
            procs.append(subprocess.Popen(["ip", "netns", "exec", LAN, sys.executable, "-c", ECHO]))
            wait_until(
                lambda: ns(LAN, "ss", "-ltnH", "sport = :9000").stdout.strip(),
                what="the LAN echo server",
                base=10,
                step=0.05,
            )
            yield {"states": {h: states[host(h)] for h in UNDERLAY}}
        finally:
            for p in procs:
                p.kill()
                p.wait()


def seen_by_lan(g: str) -> str:
    out = ns(g, "busybox", "nc", "-w", "3", LAN_IP, "9000", check=False, timeout=15)
    return out.stdout.strip()


def test_guests_on_both_nodes_get_out_through_their_own_node(world: dict) -> None:
    states = world["states"]
    # The tenant network spans the nodes; without a router nobody gets out.
    assert ping(guest("a"), PORTS["b"][2], count=2), "no VXLAN between the hosts"
    assert not ping(guest("a"), LAN_IP) and not ping(guest("b"), LAN_IP)
    # Centralised SNAT (the router on the first node only): the second node's guest stays in.
    apply_in(host("a"), states["a"], desired("a"), UNDERLAY["a"], physical_networks=PHYSNETS)
    assert ping(guest("a"), LAN_IP, count=2)
    assert not ping(guest("b"), LAN_IP), "a guest got out of a node that does no SNAT"
    # Distributed: the second node SNATs its own guests with its own address.
    apply_in(host("b"), states["b"], desired("b"), UNDERLAY["b"], physical_networks=PHYSNETS)
    for h in UNDERLAY:
        assert ping(guest(h), LAN_IP, count=2), f"the guest on node {h} does not reach the LAN"
        assert seen_by_lan(guest(h)) == PORTS[h][3], f"node {h}'s guest left from the wrong address"
        assert ping(guest(h), BEYOND), f"the guest on node {h} does not get past the LAN's router"
        assert not ping(host(h), BEYOND), "the host's own routing changed"
    # Each SNAT address is on exactly its own node: both answer ARP on the LAN from their own host.
    for h in UNDERLAY:
        assert ping(LAN, PORTS[h][3]), f"node {h}'s SNAT address does not answer on the LAN"
        addrs = ns(host(h), "ip", "-br", "addr", "show", bridge_name(EXT)).stdout
        other = PORTS["b" if h == "a" else "a"][3]
        assert f"{PORTS[h][3]}/24" in addrs and other not in addrs
    # East-west still crosses the overlay, not the LAN.
    assert ping(guest("b"), PORTS["a"][2])
    # Idempotent: a second pass changes nothing on either host.
    views = {h: ns(host(h), "nft", "list", "ruleset").stdout for h in UNDERLAY}
    for h in UNDERLAY:
        apply_in(host(h), states[h], desired(h), UNDERLAY[h], physical_networks=PHYSNETS)
        assert ns(host(h), "nft", "list", "ruleset").stdout == views[h]
    # The second node's router goes (its last guest of the router left): its guest stays in, its address goes.
    apply_in(host("b"), states["b"], desired("b", snat=False), UNDERLAY["b"], physical_networks=PHYSNETS)
    assert not ping(guest("b"), LAN_IP)
    assert PORTS["b"][3] not in ns(host("b"), "ip", "-br", "addr").stdout
    assert seen_by_lan(guest("a")) == PORTS["a"][3]
    for h in UNDERLAY:
        apply_in(host(h), states[h], pb.NodeDesiredState(), physical_networks=PHYSNETS)
        assert "kumo_" not in ns(host(h), "nft", "list", "ruleset").stdout


FLOATING = "192.0.2.50"


def with_floating_ip(h: str) -> pb.NodeDesiredState:
    """Host h's desired state with the floating IP on its guest's port (as after
    the guest's live migration to h: the controller moves the association's node)."""
    state = desired(h)
    pid, _, ip, _ = PORTS[h]
    state.floating_ips.append(
        pb.DesiredFloatingIp(
            id="f1",
            external_network_id=EXT,
            floating_address=f"{FLOATING}/24",
            fixed_ip_address=ip,
            port_id=pid,
            network_id=TENANT,
        )
    )
    return state


def lan_neighbour(ip: str) -> str:
    """The LAN host's neighbour entry for `ip` ("" when it has none)."""
    return ns(LAN, "ip", "neigh", "show", ip, "dev", "lanbr").stdout.strip()


def test_a_floating_ip_that_moves_nodes_is_announced_to_the_lan(world: dict) -> None:
    """The node a floating IP comes to sends gratuitous ARP: the LAN's neighbour
    entry (which still names the old node's MAC) turns to the new node's at
    once, without waiting for it to go stale and be probed again."""
    states = world["states"]
    macs = {
        h: ns(host(h), "cat", f"/sys/class/net/{bridge_name(EXT)}/address").stdout.strip() for h in UNDERLAY
    }
    for h in UNDERLAY:
        apply_in(host(h), states[h], desired(h), UNDERLAY[h], physical_networks=PHYSNETS)
    apply_in(host("a"), states["a"], with_floating_ip("a"), UNDERLAY["a"], physical_networks=PHYSNETS)
    assert ping(LAN, FLOATING, count=2), "the floating IP does not answer on node a"
    assert macs["a"] in lan_neighbour(FLOATING), lan_neighbour(FLOATING)
    # The guest "moved": the floating IP leaves node a and comes to node b.
    apply_in(host("a"), states["a"], desired("a"), UNDERLAY["a"], physical_networks=PHYSNETS)
    apply_in(host("b"), states["b"], with_floating_ip("b"), UNDERLAY["b"], physical_networks=PHYSNETS)
    # No traffic from the LAN in between: only the announcement can have changed the entry.
    wait_until(
        lambda: macs["b"] in lan_neighbour(FLOATING),
        what=f"the LAN's entry for {FLOATING} naming node b ({macs['b']})",
        base=5,
        step=0.05,
        explain=lambda: f"LAN neighbour: {lan_neighbour(FLOATING)!r}",
    )
    assert ping(LAN, FLOATING, count=1), "the floating IP does not answer on node b"
    # A pass that adds nothing announces nothing (the address is already there): idempotent.
    apply_in(host("b"), states["b"], with_floating_ip("b"), UNDERLAY["b"], physical_networks=PHYSNETS)
    for h in UNDERLAY:
        apply_in(host(h), states[h], pb.NodeDesiredState(), physical_networks=PHYSNETS)
