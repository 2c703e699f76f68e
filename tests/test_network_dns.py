"""DNS for guests: each network's dnsmasq is its resolver on the gateway
address, forwarding to the host's resolvers (or `--dns-server`) unless the
subnet names its own servers, and answering the names of the network's
ports (this node's and other nodes'). Unit tests of the names, the upstream
choice, dnsmasq's command line and files, the nft rules and the config
drive; then, in network namespaces (root), a real node step whose guests get
the resolver by DHCP and resolve through it, with a test resolver in a "LAN"
namespace standing in for the host's upstream."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.domain.networks.dns import NamedPort, address_name, assign_names, dns_label, network_domain
from kumo.v1 import node_agent_pb2 as pb
from noded.network import bridge_name, firewall, guest, tap_name
from noded.network.dhcp import Dhcp, lease_lines, name_lines
from noded.network.names import short
from noded.network.resolvers import host_upstreams, nameservers, upstreams
from tests import netutil
from tests.waits import wait_until

NET = "d1d1d1d1-0000-4000-8000-000000000001"
NET2 = "d2d2d2d2-0000-4000-8000-000000000002"
P1 = "a1a1a1a1-0000-4000-8000-000000000001"
P2 = "a2a2a2a2-0000-4000-8000-000000000002"
V4, GW = "10.215.1.0/24", "10.215.1.1"
V4B, GWB = "10.215.2.0/24", "10.215.2.1"
LAN_HOST, LAN_RESOLVER = "198.51.100.1", "198.51.100.2"


# Names (controller/domain/networks/dns.py)


def test_names_are_dns_labels_unique_in_the_network() -> None:
    assert dns_label("Web_Server 01") == "web-server-01"
    assert dns_label("--x--") == "x"
    assert dns_label("ÜBER.host") == "ber-host"
    assert dns_label("a" * 80) == "a" * 63
    assert dns_label("***", "fallback") == "fallback"
    assert network_domain("App Net", NET, "kumo") == "app-net.kumo"
    assert network_domain("***", NET, "example.org") == "net-d1d1d1d100.example.org"
    assert address_name("10.0.0.5") == "host-10-0-0-5"
    assert address_name("fd00::5") == "host-fd00-5"
    ports = [
        NamedPort("11111111-aaaa", "Web", ("10.0.0.2",)),
        NamedPort("22222222-bbbb", "web", ("10.0.0.3",)),  # another instance, the same name
        NamedPort("33333333-cccc", "***", ("10.0.0.4",)),  # nothing DNS-safe: its address
        NamedPort("44444444-dddd", "***", ()),
    ]
    assert assign_names(ports) == {
        "11111111-aaaa": "web",  # the oldest port holds the name
        "22222222-bbbb": "web-222222",
        "33333333-cccc": "host-10-0-0-4",
        "44444444-dddd": "port-444444",
    }


# Upstreams (noded/network/resolvers.py)


def test_upstreams_are_the_hosts_resolvers_never_dnsmasq_itself(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# made by hand\nsearch example.org\nnameserver 192.0.2.53\nnameserver bogus\nnameserver 2001:db8::53 # v6\n"
    )
    assert nameservers(conf.read_text()) == ["192.0.2.53", "2001:db8::53"]
    resolved = tmp_path / "resolved.conf"
    assert host_upstreams(conf, resolved) == ["192.0.2.53", "2001:db8::53"]

    # A loopback stub: its real upstreams when systemd-resolved lists them,
    # else the stub itself (dnsmasq runs on the host and reaches it).
    conf.write_text("nameserver 127.0.0.53\n")
    assert host_upstreams(conf, resolved) == ["127.0.0.53"]
    resolved.write_text("nameserver 127.0.0.1\nnameserver 192.0.2.54\n")
    assert host_upstreams(conf, resolved) == ["192.0.2.54"]
    assert host_upstreams(tmp_path / "missing", resolved) == []

    # Configured servers win; the node's own gateways (dnsmasq itself),
    # link-local servers and repeats are dropped.
    own = [GW, "fd00:215::1"]
    assert upstreams([], own, host=["10.215.1.1", "192.0.2.53", "fe80::1", "192.0.2.53"]) == ["192.0.2.53"]
    assert upstreams(["192.0.2.9", "fd00:215::1"], own, host=["192.0.2.53"]) == ["192.0.2.9"]


# dnsmasq's command line and files


def named_network(dns_servers: list[str] | None = None) -> pb.DesiredNetwork:
    return pb.DesiredNetwork(
        id=NET,
        subnets=[netutil.desired_subnet("v4", V4, dns_servers=dns_servers or [])],
        dns_domain="dnsnet.kumo",
        dns_records=[
            pb.DnsRecord(hostname="self-vm", ip_addresses=["10.215.1.10"]),
            pb.DnsRecord(hostname="peer-vm", ip_addresses=["10.215.1.20", "fd00:215::20"]),
        ],
    )


def args_of(net: pb.DesiredNetwork, tmp: Path, ups: list[str]) -> list[str]:
    args = Dhcp(tmp)._args("kb-x", net, 1450, tmp / "pid", tmp / "hosts", tmp / "log", tmp / "names", ups)
    assert args is not None
    if shutil.which("dnsmasq"):
        check = netutil.sh(*args, "--test", check=False)
        assert check.returncode == 0, check.stderr
    return args


def test_dnsmasq_resolves_on_the_gateway_and_forwards(tmp_path: Path) -> None:
    args = args_of(named_network(), tmp_path, ["192.0.2.53", "2001:db8::53"])
    assert not [a for a in args if a.startswith("--port")]  # DNS on port 53
    for wanted in (
        "--interface=kb-x",
        "--bind-interfaces",
        "--except-interface=lo",
        "--no-resolv",  # never the host's resolv.conf, only what it is given
        "--no-hosts",
        f"--addn-hosts={tmp_path / 'names'}",
        "--domain-needed",
        "--bogus-priv",
        "--local=/dnsnet.kumo/",  # the network's names are never forwarded
        "--domain=dnsnet.kumo",
        f"--dhcp-option=tag:s0,option:dns-server,{GW}",  # the guests' resolver: their gateway
        "--server=192.0.2.53",
        "--server=2001:db8::53",
    ):
        assert wanted in args, wanted

    # A subnet with its own servers: DHCP hands those, nothing is forwarded.
    own = args_of(named_network(["192.0.2.99", "2001:db8::99"]), tmp_path, ["192.0.2.53"])
    assert "--dhcp-option=tag:s0,option:dns-server,192.0.2.99" in own
    assert not [a for a in own if a.startswith("--server")]
    assert "--local=/dnsnet.kumo/" in own  # the names still resolve on the gateway


def test_leases_carry_host_names_and_the_names_file_every_port() -> None:
    net = named_network()
    ports = [
        pb.DesiredPort(
            id=P1,
            network_id=NET,
            mac_address="52:54:00:D1:00:10",
            fixed_ips=[pb.FixedIp(subnet_id="v4", ip_address="10.215.1.10")],
            dns_name="self-vm",
        ),
        pb.DesiredPort(
            id=P2,
            network_id=NET,
            mac_address="52:54:00:d1:00:11",
            fixed_ips=[pb.FixedIp(subnet_id="v4", ip_address="10.215.1.11")],
        ),
    ]
    assert lease_lines(net, ports) == "52:54:00:d1:00:10,10.215.1.10,self-vm\n52:54:00:d1:00:11,10.215.1.11\n"
    assert name_lines(net) == (
        "10.215.1.20 peer-vm.dnsnet.kumo peer-vm\n"
        "fd00:215::20 peer-vm.dnsnet.kumo peer-vm\n"
        "10.215.1.10 self-vm.dnsnet.kumo self-vm\n"
    )


def test_rules_open_dns_on_the_own_gateway_only() -> None:
    nets = [
        firewall.NetPlan("a", "kb-a", "", [V4, "fd00:215::/64"], [GW, "fd00:215::1"], False),
        firewall.NetPlan("b", "kb-b", "", [V4B], [GWB], False),
    ]
    script = firewall.render("kumo_t", nets, [], {})
    dns = [line.strip() for line in script.splitlines() if "dport 53" in line]
    a4 = f"ip daddr {{ {GW} }} meta l4proto {{ tcp, udp }} th dport 53"
    a6 = "ip6 daddr { fd00:215::1 } meta l4proto { tcp, udp } th dport 53"
    b4 = f"ip daddr {{ {GWB} }} meta l4proto {{ tcp, udp }} th dport 53"
    # From its own bridge only: not from another network, a host link, the host.
    assert dns == [
        f'iifname "kb-a" {a4} accept',
        f'iifname != "kb-a" {a4} drop',
        f'iifname "kb-a" {a6} accept',
        f'iifname != "kb-a" {a6} drop',
        f'iifname "kb-b" {b4} accept',
        f'iifname != "kb-b" {b4} drop',
    ]
    # ... before the bridges' catch-all drop of the host's input.
    assert script.index("dport 53") < script.index('iifname { "kb-a", "kb-b" } drop')


def test_config_drive_hostname_is_the_ports_name() -> None:
    net = named_network()
    port = pb.DesiredPort(id=P1, network_id=NET, mac_address="52:54:00:d1:00:10", dns_name="self-vm")
    inst = pb.DesiredInstance(id="i", hostname="Self_VM", port_ids=[P1])
    assert guest.hostname(inst, {P1: port}, {NET: net}) == "self-vm.dnsnet.kumo"
    assert guest.hostname(pb.DesiredInstance(id="i", hostname="Self_VM"), {}, {}) == "Self_VM"
    # A static IPv6 subnet without servers: the gateway (the network's resolver).
    v6 = pb.DesiredNetwork(id=NET, subnets=[netutil.desired_subnet("v6", "fd00:215::/64")])
    p6 = pb.DesiredPort(
        id=P1,
        network_id=NET,
        mac_address="52:54:00:d1:00:10",
        fixed_ips=[pb.FixedIp(subnet_id="v6", ip_address="fd00:215::10")],
    )
    config = guest.network_config(pb.DesiredInstance(id="i", port_ids=[P1]), {P1: p6}, {NET: v6})
    assert '"dns_nameservers": [\n            "fd00:215::1"\n          ]' in config


# In namespaces: a real node step, guests, and a test resolver on the "LAN"


@pytest.fixture
def lan() -> Iterator[dict[str, str | Path]]:
    """A host namespace joined by a veth to a LAN namespace whose dnsmasq
    answers lan.test (and nothing else), and two guest namespaces."""
    netutil.need_root_networking()
    spaces = netutil.Namespaces()
    state = netutil.state_dir("kumo-netdns-")
    try:
        host, lan_ns, g1, g2 = (spaces.add(n) for n in ("kdns-h", "kdns-l", "kdns-g1", "kdns-g2"))
        netutil.sh("ip", "link", "add", "kdns-hl", "type", "veth", "peer", "name", "kdns-lh")
        netutil.sh("ip", "link", "set", "kdns-hl", "netns", host)
        netutil.sh("ip", "link", "set", "kdns-lh", "netns", lan_ns)
        for where, dev, addr in ((host, "kdns-hl", LAN_HOST), (lan_ns, "kdns-lh", LAN_RESOLVER)):
            netutil.ns(where, "ip", "addr", "add", f"{addr}/30", "dev", dev)
            netutil.ns(where, "ip", "link", "set", dev, "up")
        log = netutil.lan_resolver(lan_ns, LAN_RESOLVER, state)
        state.chmod(0o755)
        yield {"host": host, "lan": lan_ns, "g1": g1, "g2": g2, "state": state, "log": log}
    finally:
        spaces.cleanup()
        shutil.rmtree(state, ignore_errors=True)


def test_guests_resolve_through_their_gateway(lan: dict) -> None:  # type: ignore[type-arg]
    host, g1, g2, state = lan["host"], lan["g1"], lan["g2"], lan["state"]
    net = named_network()
    other = pb.DesiredNetwork(
        id=NET2,
        subnets=[netutil.desired_subnet("v4b", V4B, dns_servers=[LAN_RESOLVER])],
        dns_domain="other.kumo",
    )
    p1 = pb.DesiredPort(
        id=P1,
        network_id=NET,
        mac_address="52:54:00:d1:00:10",
        fixed_ips=[pb.FixedIp(subnet_id="v4", ip_address="10.215.1.10")],
        dns_name="self-vm",
    )
    p2 = pb.DesiredPort(
        id=P2,
        network_id=NET2,
        mac_address="52:54:00:d2:00:10",
        fixed_ips=[pb.FixedIp(subnet_id="v4b", ip_address="10.215.2.10")],
        dns_name="other-vm",
    )
    desired = pb.NodeDesiredState(networks=[net, other], ports=[p1, p2])
    node = state / "node"
    node.mkdir()
    netutil.apply_in(host, node, desired, dns_servers=[LAN_RESOLVER])
    netutil.add_guest(host, g1, tap_name(P1), bridge_name(NET), p1.mac_address, 1450)
    netutil.add_guest(host, g2, tap_name(P2), bridge_name(NET2), p2.mac_address, 1450)

    # DHCP: the gateway as resolver, the port's name and the network's domain.
    lease = netutil.dhcp_lease(g1, state)
    assert (lease.get("LEASE"), lease.get("DNS")) == ("10.215.1.10", GW)
    assert (lease.get("HOST"), lease.get("DOMAIN")) == ("self-vm", "dnsnet.kumo")
    # A subnet with its own servers: those.
    lease2 = netutil.dhcp_lease(g2, state)
    assert (lease2.get("LEASE"), lease2.get("DNS")) == ("10.215.2.10", LAN_RESOLVER)

    # Forwarded to the upstream; the network's names (a port on another node
    # too) answered by the gateway itself, never forwarded.
    assert netutil.lookup(g1, "lan.test", GW) == ["192.0.2.10"]
    assert netutil.lookup(g1, "peer-vm.dnsnet.kumo", GW) == ["10.215.1.20", "fd00:215::20"]
    assert netutil.lookup(g1, "peer-vm", GW) == ["10.215.1.20", "fd00:215::20"]
    assert netutil.lookup(g1, "self-vm.dnsnet.kumo", GW) == ["10.215.1.10"]
    assert netutil.lookup(g1, "nosuch.dnsnet.kumo", GW) == []
    seen = Path(lan["log"]).read_text()
    assert "lan.test" in seen and "dnsnet.kumo" not in seen and "peer-vm" not in seen

    # Only the own gateway: not the other network's (the host has it too),
    # nor the host's other addresses.
    assert netutil.lookup(g1, "lan.test", GWB) == []
    assert netutil.lookup(g1, "lan.test", LAN_HOST) == []
    # Nor is it an open resolver for the host's other links (a LAN host
    # that routes to the gateway through this host).
    netutil.ns(str(lan["lan"]), "ip", "route", "add", "10.215.0.0/16", "via", LAN_HOST)
    assert netutil.lookup(str(lan["lan"]), "lan.test", GW) == []
    # The other network's resolver answers its own guests, not g1's names.
    assert netutil.lookup(g2, "other-vm.other.kumo", GWB) == ["10.215.2.10"]
    assert netutil.lookup(g2, "peer-vm.dnsnet.kumo", GWB) == []

    # A new peer's name reaches the running dnsmasq (SIGHUP, no restart).
    pidfile = node / "network" / "dhcp" / f"{short(NET)}.pid"
    pid = pidfile.read_text()
    desired.networks[0].dns_records.append(pb.DnsRecord(hostname="late-vm", ip_addresses=["10.215.1.30"]))
    netutil.apply_in(host, node, desired, dns_servers=[LAN_RESOLVER])
    wait_until(
        lambda: netutil.lookup(g1, "late-vm.dnsnet.kumo", GW) == ["10.215.1.30"],
        what="the new name",
        base=20,
        explain=lambda: (
            pidfile.with_suffix(".log").read_text()[-1500:] + pidfile.with_suffix(".names").read_text()
        ),
    )
    assert pidfile.read_text() == pid

    netutil.apply_in(host, node, pb.NodeDesiredState())


def test_two_networks_with_one_gateway_address_have_one_resolver(tmp_path: Path) -> None:
    """dnsmasq binds DNS to the gateway address, not the bridge: of two
    networks on one node with the same gateway, the first (by id) resolves;
    the other gets only its own servers, and no rule opens DNS on its bridge."""
    from noded.network.step import _resolving

    a = named_network()
    b = pb.DesiredNetwork(id=NET2, subnets=[netutil.desired_subnet("v4", V4)], dns_domain="b.kumo")
    c = pb.DesiredNetwork(id="c", subnets=[netutil.desired_subnet("v4c", V4B)])
    assert _resolving({NET2: b, NET: a, "c": c}) == {NET, "c"}
    args = Dhcp(tmp_path)._args(
        "kb-x",
        b,
        1450,
        tmp_path / "pid",
        tmp_path / "hosts",
        tmp_path / "log",
        tmp_path / "names",
        ["192.0.2.53"],
        False,
    )
    assert args is not None and "--port=0" in args
    assert "--dhcp-option=tag:s0,option:dns-server" in args  # none: not the gateway nobody answers on
    assert not [x for x in args if x.startswith(("--server", "--local"))]
    plan = firewall.NetPlan("b", "kb-b", "", [V4], [GW], False, dns=False)
    assert "dport 53" not in firewall.render("kumo_t", [plan], [], {})


def test_the_clouds_dns_domain_is_a_setting(tmp_path: Path) -> None:
    from controller.config import load_config

    env = {"KUMO_DATA_DIR": str(tmp_path)}
    assert load_config(environ=env).dns_domain == "kumo"
    assert (
        load_config(environ={**env, "KUMO_DNS_DOMAIN": "Cloud.Example.ORG."}).dns_domain
        == "cloud.example.org"
    )
    for bad in ("", "a..b", "-x.kumo", "under_score", "x" * 64):
        with pytest.raises(ValueError, match="dns_domain"):
            load_config(environ={**env, "KUMO_DNS_DOMAIN": bad})


def test_noded_refuses_a_bad_dns_server(tmp_path: Path) -> None:
    from tests.nodeutil import run_noded

    proc = run_noded(
        ["run", "--state-dir", str(tmp_path), "--dns-server", "192.0.2.53", "--dns-server", "resolver"]
    )
    assert proc.returncode == 1 and "--dns-server" in proc.stderr and "resolver" in proc.stderr, proc.stderr
