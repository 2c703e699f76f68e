"""NetworkService against a real controller: CRUD, pagination, field masks,
IPAM rules (overlaps, pools, exhaustion under racing creates), tenancy
(shared networks), roles, and bad input for every RPC."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import network_pb2 as pb
from kumo.v1 import network_pb2_grpc
from tests.harness import Client, ControllerProc, error_reason, make_user, race, rpc_error, two_tenants

UNKNOWN = "00000000-0000-4000-8000-000000000000"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
EXISTS = grpc.StatusCode.ALREADY_EXISTS


def net(client: Client) -> Any:
    return client.stub(network_pb2_grpc.NetworkServiceStub)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def make_network(client: Client, name: str, **kw: Any) -> pb.Network:
    return net(client).CreateNetwork(pb.CreateNetworkRequest(network=pb.Network(name=name, **kw)))


def make_subnet(client: Client, network_id: str, name: str, cidr: str, **kw: Any) -> pb.Subnet:
    return net(client).CreateSubnet(
        pb.CreateSubnetRequest(subnet=pb.Subnet(name=name, network_id=network_id, cidr=cidr, **kw))
    )


def make_port(client: Client, network_id: str, **kw: Any) -> pb.Port:
    return net(client).CreatePort(pb.CreatePortRequest(port=pb.Port(network_id=network_id, **kw)))


def code_reason(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return exc.code(), error_reason(exc)


def eui64(mac: str, cidr: str) -> str:
    """The modified EUI-64 address of a MAC in a /64, spelled out by hand."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02  # the universal/local bit
    iid = f"{b[0]:02x}{b[1]:02x}:{b[2]:02x}ff:fe{b[3]:02x}:{b[4]:02x}{b[5]:02x}"
    prefix = ipaddress.ip_network(cidr).network_address.exploded[:19]  # the first four groups
    return str(ipaddress.ip_address(f"{prefix}:{iid}"))


def test_eui64_worked_example() -> None:
    assert eui64("fa:16:3e:11:22:33", "2001:db8::/64") == "2001:db8::f816:3eff:fe11:2233"
    assert eui64("00:00:00:00:00:00", "fd00:1:2:3::/64") == "fd00:1:2:3:200:ff:fe00:0"


def racing_ports(clients: list[Client], network_id: str) -> tuple[list[str], list[Any]]:
    """Each client makes a port on the network, all at once: the IPs the
    winners got, and the (code, reason) of each refusal."""
    results: list[Any] = []
    lock = threading.Lock()

    def worker(client: Client) -> None:
        try:
            out: Any = make_port(client, network_id).fixed_ips[0].ip_address
        except grpc.RpcError as exc:
            out = code_reason(exc)
        with lock:
            results.append(out)

    race(worker, [(c,) for c in clients])
    return [r for r in results if isinstance(r, str)], [r for r in results if not isinstance(r, str)]


@pytest.fixture(scope="module")
def world(controller: ControllerProc, admin: Client) -> dict[str, Any]:
    return two_tenants(controller, admin, "net")


def test_network_crud_mask_and_paging(world: dict[str, Any]) -> None:
    alice = world["alice"]
    n = make_network(alice, "crud")
    assert n.project_id == world["a"].id and n.mtu == 1450 and 1 <= n.vni < 2**24 and not n.shared
    assert net(alice).GetNetwork(pb.GetNetworkRequest(id=n.id)) == n
    others = [make_network(alice, f"page-{i}") for i in range(5)]
    assert len({o.vni for o in [n, *others]}) == 6
    seen, token = [], ""
    while True:
        page = net(alice).ListNetworks(pb.ListNetworksRequest(page_size=2, page_token=token))
        assert len(page.networks) <= 2
        seen += [x.name for x in page.networks]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and {"crud", *(o.name for o in others)} <= set(seen)
    assert [x.id for x in net(alice).ListNetworks(pb.ListNetworksRequest(name="crud")).networks] == [n.id]

    up = net(alice).UpdateNetwork(
        pb.UpdateNetworkRequest(
            network=pb.Network(id=n.id, name="crud2", description="d", mtu=1400, vni=5),
            update_mask=mask("name", "description", "mtu"),
        )
    )
    assert (up.name, up.description, up.mtu, up.vni) == ("crud2", "d", 1400, n.vni)
    exc = rpc_error(net(alice).UpdateNetwork, pb.UpdateNetworkRequest(network=pb.Network(id=n.id, name="x")))
    assert exc.code() == INVALID  # no mask
    exc = rpc_error(
        net(alice).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=n.id), update_mask=mask("vni")),
    )
    assert exc.code() == INVALID
    exc = rpc_error(
        net(alice).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=n.id, mtu=100), update_mask=mask("mtu")),
    )
    assert exc.code() == INVALID
    exc = rpc_error(
        net(alice).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=n.id, shared=True), update_mask=mask("shared")),
    )
    assert exc.code() == DENIED
    exc = rpc_error(make_network, alice, "page-0")
    assert code_reason(exc) == (EXISTS, "NETWORK_EXISTS")
    for o in others:
        net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=o.id))
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    assert code_reason(rpc_error(net(alice).GetNetwork, pb.GetNetworkRequest(id=n.id))) == (
        NOT_FOUND,
        "NETWORK_NOT_FOUND",
    )


def test_network_bad_input_and_roles(world: dict[str, Any]) -> None:
    alice, reader = world["alice"], world["reader"]
    for bad in ("", "bad name", "x" * 64):
        assert rpc_error(make_network, alice, bad).code() == INVALID
    assert rpc_error(make_network, alice, "m", mtu=70000).code() == INVALID
    assert code_reason(rpc_error(make_network, alice, "s", shared=True)) == (DENIED, "ROLE_REQUIRED")
    assert rpc_error(make_network, alice, "e", external_routable=True).code() == DENIED
    assert rpc_error(make_network, reader, "r").code() == DENIED
    assert rpc_error(net(alice).GetNetwork, pb.GetNetworkRequest(id="nope")).code() == INVALID
    assert rpc_error(net(alice).GetNetwork, pb.GetNetworkRequest(id=UNKNOWN)).code() == NOT_FOUND
    assert rpc_error(net(alice).DeleteNetwork, pb.DeleteNetworkRequest(id=UNKNOWN)).code() == NOT_FOUND
    assert rpc_error(net(alice).ListNetworks, pb.ListNetworksRequest(page_size=-1)).code() == INVALID
    assert rpc_error(net(alice).ListNetworks, pb.ListNetworksRequest(page_token="junk")).code() == INVALID
    n = make_network(alice, "ro")
    assert net(reader).GetNetwork(pb.GetNetworkRequest(id=n.id)).id == n.id
    assert rpc_error(net(reader).DeleteNetwork, pb.DeleteNetworkRequest(id=n.id)).code() == DENIED
    # request_id: a retried create returns the first network.
    r1 = net(alice).CreateNetwork(pb.CreateNetworkRequest(network=pb.Network(name="idem"), request_id="r-1"))
    r2 = net(alice).CreateNetwork(pb.CreateNetworkRequest(network=pb.Network(name="idem"), request_id="r-1"))
    assert r1.id == r2.id


def test_subnets_rules(world: dict[str, Any]) -> None:
    alice = world["alice"]
    n = make_network(alice, "subnets")
    s = make_subnet(alice, n.id, "s1", "10.10.0.0/24", dns_servers=["10.10.0.53"])
    assert (s.ip_version, s.gateway_ip, s.project_id) == (4, "10.10.0.1", world["a"].id)
    assert [(p.start, p.end) for p in s.allocation_pools] == [("10.10.0.2", "10.10.0.254")]
    assert list(net(alice).GetNetwork(pb.GetNetworkRequest(id=n.id)).subnet_ids) == [s.id]
    bad = [
        dict(cidr="10.10.0.0/33"),
        dict(cidr="10.10.1.1/24"),  # host bits set
        dict(cidr="banana"),
        dict(cidr=""),
        dict(cidr="10.0.0.0/30"),  # too small
        dict(cidr="10.20.0.0/24", gateway_ip="10.30.0.1"),
        dict(cidr="10.20.0.0/24", gateway_ip="10.20.0.255"),
        dict(cidr="10.20.0.0/24", ip_version=6),
        dict(cidr="10.20.0.0/24", allocation_pools=[pb.AllocationPool(start="10.20.0.10", end="10.20.1.5")]),
        dict(cidr="10.20.0.0/24", allocation_pools=[pb.AllocationPool(start="10.20.0.20", end="10.20.0.10")]),
        dict(cidr="10.20.0.0/24", allocation_pools=[pb.AllocationPool(start="10.20.0.1", end="10.20.0.10")]),
        dict(
            cidr="10.20.0.0/24",
            allocation_pools=[
                pb.AllocationPool(start="10.20.0.10", end="10.20.0.20"),
                pb.AllocationPool(start="10.20.0.15", end="10.20.0.30"),
            ],
        ),
        dict(cidr="10.20.0.0/24", dns_servers=["not-an-ip"]),
    ]
    for fields in bad:
        exc = rpc_error(make_subnet, alice, n.id, "bad", **fields)
        assert exc.code() == INVALID, (fields, exc.details())
    exc = rpc_error(make_subnet, alice, n.id, "over", "10.10.0.128/25")
    assert code_reason(exc) == (INVALID, "SUBNET_OVERLAP")
    exc = rpc_error(make_subnet, alice, n.id, "s1", "10.11.0.0/24")
    assert code_reason(exc) == (EXISTS, "SUBNET_EXISTS")
    assert rpc_error(make_subnet, alice, UNKNOWN, "x", "10.12.0.0/24").code() == NOT_FOUND
    assert rpc_error(make_subnet, world["bob"], n.id, "x", "10.12.0.0/24").code() == NOT_FOUND
    assert rpc_error(make_subnet, world["reader"], n.id, "x", "10.12.0.0/24").code() == DENIED

    pools = make_subnet(
        alice,
        n.id,
        "pools",
        "10.30.0.0/24",
        gateway_ip="10.30.0.254",
        allocation_pools=[pb.AllocationPool(start="10.30.0.100", end="10.30.0.101")],
    )
    assert pools.gateway_ip == "10.30.0.254"
    v6 = make_subnet(alice, n.id, "v6", "fd00:1::/64")
    assert (v6.ip_version, v6.gateway_ip) == (6, "fd00:1::1")
    nogw = make_subnet(alice, n.id, "nogw", "10.40.0.0/29", gateway_ip="none")
    assert nogw.gateway_ip == "" and nogw.allocation_pools[0].start == "10.40.0.1"

    up = net(alice).UpdateSubnet(
        pb.UpdateSubnetRequest(
            subnet=pb.Subnet(id=s.id, name="s1b", dns_servers=["1.1.1.1"], cidr="1.0.0.0/8"),
            update_mask=mask("name", "dns_servers"),
        )
    )
    assert (up.name, list(up.dns_servers), up.cidr) == ("s1b", ["1.1.1.1"], "10.10.0.0/24")
    exc = rpc_error(
        net(alice).UpdateSubnet, pb.UpdateSubnetRequest(subnet=pb.Subnet(id=s.id), update_mask=mask("cidr"))
    )
    assert exc.code() == INVALID
    listed = net(alice).ListSubnets(pb.ListSubnetsRequest(network_id=n.id, page_size=2))
    assert len(listed.subnets) == 2 and listed.next_page_token
    assert rpc_error(net(alice).ListSubnets, pb.ListSubnetsRequest(network_id="x")).code() == INVALID

    # A subnet with an address handed out cannot go; without, it can.
    port = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(subnet_id=pools.id)])
    assert [f.ip_address for f in port.fixed_ips] == ["10.30.0.100"]
    exc = rpc_error(net(alice).DeleteSubnet, pb.DeleteSubnetRequest(id=pools.id))
    assert code_reason(exc) == (PRECONDITION, "SUBNET_IN_USE")
    net(alice).DeletePort(pb.DeletePortRequest(id=port.id))
    net(alice).DeleteSubnet(pb.DeleteSubnetRequest(id=pools.id))
    assert rpc_error(net(alice).GetSubnet, pb.GetSubnetRequest(id=pools.id)).code() == NOT_FOUND
    assert rpc_error(net(alice).DeleteSubnet, pb.DeleteSubnetRequest(id=UNKNOWN)).code() == NOT_FOUND


SLAAC = pb.IPV6_ADDRESS_MODE_SLAAC
STATIC = pb.IPV6_ADDRESS_MODE_STATIC


def test_ipv6_address_modes(world: dict[str, Any]) -> None:
    alice = world["alice"]
    n = make_network(alice, "modes")
    v4 = make_subnet(alice, n.id, "modes-v4", "10.55.0.0/24")
    assert v4.ipv6_address_mode == pb.IPV6_ADDRESS_MODE_UNSPECIFIED
    slaac = make_subnet(alice, n.id, "modes-slaac", "2001:db8:55::/64", ipv6_address_mode=SLAAC)
    assert (slaac.ip_version, slaac.gateway_ip, slaac.ipv6_address_mode) == (6, "2001:db8:55::1", SLAAC)
    assert list(slaac.allocation_pools) == [], "addresses come from MACs, not pools"
    assert net(alice).GetSubnet(pb.GetSubnetRequest(id=slaac.id)) == slaac
    listed = net(alice).ListSubnets(pb.ListSubnetsRequest(network_id=n.id)).subnets
    assert {s.id: s.ipv6_address_mode for s in listed} == {v4.id: 0, slaac.id: SLAAC}
    # An IPv6 subnet without a mode is STATIC; STATIC may be asked for too.
    other = make_network(alice, "modes-static")
    plain = make_subnet(alice, other.id, "plain6", "fd00:55::/64")
    assert net(alice).GetSubnet(pb.GetSubnetRequest(id=plain.id)).ipv6_address_mode == STATIC
    asked = make_subnet(alice, other.id, "static6", "fd00:56::/80", ipv6_address_mode=STATIC)
    assert asked.ipv6_address_mode == STATIC

    bad = [
        (dict(cidr="10.56.0.0/24", ipv6_address_mode=SLAAC), "IPv6 subnets only"),
        (dict(cidr="10.56.0.0/24", ipv6_address_mode=STATIC), "IPv6 subnets only"),
        (dict(cidr="2001:db8:56::/80", ipv6_address_mode=SLAAC), "must be a /64"),
        (dict(cidr="2001:db8:56::/64", ipv6_address_mode=SLAAC, gateway_ip="none"), "needs a gateway"),
        (dict(cidr="2001:db8:56::/64", ipv6_address_mode=7), "must be STATIC or SLAAC"),
        (
            dict(
                cidr="2001:db8:56::/64",
                ipv6_address_mode=SLAAC,
                allocation_pools=[pb.AllocationPool(start="2001:db8:56::10", end="2001:db8:56::20")],
            ),
            "allocation_pools",
        ),
        (
            dict(
                cidr="2001:db8:56::/64", ipv6_address_mode=SLAAC, gateway_ip="2001:db8:56::f816:3eff:fe00:1"
            ),
            "EUI-64",
        ),
    ]
    for fields, words in bad:
        exc = rpc_error(make_subnet, alice, other.id, "bad", **fields)
        assert exc.code() == INVALID and words in exc.details(), (fields, exc.details())
    # The mode cannot change.
    exc = rpc_error(
        net(alice).UpdateSubnet,
        pb.UpdateSubnetRequest(
            subnet=pb.Subnet(id=slaac.id, ipv6_address_mode=STATIC), update_mask=mask("ipv6_address_mode")
        ),
    )
    assert exc.code() == INVALID and "ipv6_address_mode" in exc.details()
    assert net(alice).GetSubnet(pb.GetSubnetRequest(id=slaac.id)).ipv6_address_mode == SLAAC

    # A dual-stack port: a pool address, and the EUI-64 address of its own MAC.
    p = make_port(alice, n.id)
    assert [(f.subnet_id, f.ip_address) for f in p.fixed_ips] == [
        (v4.id, "10.55.0.2"),
        (slaac.id, eui64(p.mac_address, slaac.cidr)),
    ]
    only = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(subnet_id=slaac.id)])
    assert [f.ip_address for f in only.fixed_ips] == [eui64(only.mac_address, slaac.cidr)]
    # A fixed IP there is the EUI-64 of the port's MAC: the port gets that MAC.
    fixed = make_port(
        alice,
        n.id,
        fixed_ips=[
            pb.PortFixedIp(ip_address="10.55.0.9"),
            pb.PortFixedIp(subnet_id=slaac.id, ip_address="2001:db8:55::f816:3eff:fe12:3456"),
        ],
    )
    assert fixed.mac_address == "fa:16:3e:12:34:56"
    assert [f.ip_address for f in fixed.fixed_ips] == ["10.55.0.9", eui64("fa:16:3e:12:34:56", slaac.cidr)]
    exc = rpc_error(
        make_port, alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="2001:db8:55::f816:3eff:fe12:3456")]
    )
    assert code_reason(exc) == (EXISTS, "IP_ADDRESS_IN_USE")
    # Free on another network's SLAAC subnet, but its MAC is that port's.
    elsewhere = make_subnet(alice, other.id, "slaac2", "2001:db8:57::/64", ipv6_address_mode=SLAAC)
    exc = rpc_error(
        make_port,
        alice,
        other.id,
        fixed_ips=[pb.PortFixedIp(subnet_id=elsewhere.id, ip_address="2001:db8:57::f816:3eff:fe12:3456")],
    )
    assert code_reason(exc) == (EXISTS, "IP_ADDRESS_IN_USE") and "fa:16:3e:12:34:56" in exc.details()
    for wrong in (
        "2001:db8:55::5",  # no MAC in it
        "2001:db8:55::211:22ff:fe33:4455",  # the EUI-64 of 00:11:22:33:44:55, not a port MAC
    ):
        exc = rpc_error(make_port, alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address=wrong)])
        assert code_reason(exc) == (INVALID, "SLAAC_ADDRESS_FIXED"), wrong
        assert "EUI-64" in exc.details()
    assert len(net(alice).ListPorts(pb.ListPortsRequest(network_id=n.id)).ports) == 3
    for port in (p, only, fixed):
        net(alice).DeletePort(pb.DeletePortRequest(id=port.id))
    for network in (n, other):
        net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=network.id))


def test_every_port_holds_an_address_on_every_slaac_subnet(world: dict[str, Any]) -> None:
    """Guests configure every prefix their router advertises, and anti-spoofing
    passes only addresses a port holds: so a port holds the EUI-64 address of
    its MAC on each SLAAC subnet, also one added after it; deleting a SLAAC
    subnet frees those addresses with it."""
    alice = world["alice"]
    n = make_network(alice, "many-slaac")
    v4 = make_subnet(alice, n.id, "ms-v4", "10.58.0.0/24")
    early = make_port(alice, n.id)
    assert [f.subnet_id for f in early.fixed_ips] == [v4.id]
    a = make_subnet(alice, n.id, "ms-a", "2001:db8:58::/64", ipv6_address_mode=SLAAC)
    b = make_subnet(alice, n.id, "ms-b", "2001:db8:59::/64", ipv6_address_mode=SLAAC)

    def held(port_id: str) -> dict[str, str]:
        got = net(alice).GetPort(pb.GetPortRequest(id=port_id))
        return {f.subnet_id: f.ip_address for f in got.fixed_ips}

    mac = early.mac_address
    assert held(early.id) == {v4.id: "10.58.0.2", a.id: eui64(mac, a.cidr), b.id: eui64(mac, b.cidr)}
    late = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="10.58.0.7")])
    mac = late.mac_address
    assert held(late.id) == {v4.id: "10.58.0.7", a.id: eui64(mac, a.cidr), b.id: eui64(mac, b.cidr)}

    # A SLAAC subnet goes with its addresses; a pool subnet with ports on it does not.
    net(alice).DeleteSubnet(pb.DeleteSubnetRequest(id=a.id))
    assert set(held(early.id)) == set(held(late.id)) == {v4.id, b.id}
    exc = rpc_error(net(alice).DeleteSubnet, pb.DeleteSubnetRequest(id=v4.id))
    assert code_reason(exc) == (grpc.StatusCode.FAILED_PRECONDITION, "SUBNET_IN_USE")
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))


def test_ports_ipam(world: dict[str, Any]) -> None:
    alice = world["alice"]
    n = make_network(alice, "ports")
    s4 = make_subnet(alice, n.id, "v4", "10.50.0.0/29")
    s6 = make_subnet(alice, n.id, "v6", "fd00:50::/64")
    p = make_port(alice, n.id, name="p1")
    assert p.state == pb.PORT_STATE_DOWN and p.mac_address.startswith("fa:16:3e:")
    # Small pools hand out in order; big ones (this /64) at a random free address.
    assert [f.subnet_id for f in p.fixed_ips] == [s4.id, s6.id]
    assert p.fixed_ips[0].ip_address == "10.50.0.2"
    v6 = ipaddress.ip_address(p.fixed_ips[1].ip_address)
    assert v6 in ipaddress.ip_network("fd00:50::/64") and v6 != ipaddress.ip_address("fd00:50::1")
    default = net(alice).ListSecurityGroups(pb.ListSecurityGroupsRequest(name="default")).security_groups
    assert len(default) == 1 and default[0].is_default and list(p.security_group_ids) == [default[0].id]
    fixed = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="10.50.0.5")])
    assert [f.ip_address for f in fixed.fixed_ips] == ["10.50.0.5"]
    exc = rpc_error(make_port, alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="10.50.0.5")])
    assert code_reason(exc) == (EXISTS, "IP_ADDRESS_IN_USE")
    for bad in ("10.99.0.5", "10.50.0.1", "10.50.0.7", "10.50.0.0", "zzz"):
        exc = rpc_error(make_port, alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address=bad)])
        assert exc.code() == INVALID, bad
    assert rpc_error(make_port, alice, n.id, mac_address="fa:16:3e:00:00:01").code() == INVALID
    assert rpc_error(make_port, alice, UNKNOWN).code() == NOT_FOUND
    assert rpc_error(make_port, alice, "").code() == INVALID
    assert rpc_error(make_port, alice, n.id, security_group_ids=[UNKNOWN]).code() == NOT_FOUND
    assert rpc_error(make_port, world["reader"], n.id).code() == DENIED
    # /29: .2-.6 usable; .2 and .5 taken, three left, then exhausted.
    got = [make_port(alice, n.id).fixed_ips[0].ip_address for _ in range(3)]
    assert got == ["10.50.0.3", "10.50.0.4", "10.50.0.6"]
    assert code_reason(rpc_error(make_port, alice, n.id)) == (EXHAUSTED, "IP_POOL_EXHAUSTED")
    # Freed addresses come back.
    net(alice).DeletePort(pb.DeletePortRequest(id=fixed.id))
    assert make_port(alice, n.id).fixed_ips[0].ip_address == "10.50.0.5"

    sg = net(alice).CreateSecurityGroup(
        pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="web"))
    )
    up = net(alice).UpdatePort(
        pb.UpdatePortRequest(
            port=pb.Port(id=p.id, name="renamed", security_group_ids=[sg.id, "default"], network_id=UNKNOWN),
            update_mask=mask("name", "security_group_ids"),
        )
    )
    assert up.name == "renamed" and set(up.security_group_ids) == {sg.id, default[0].id}
    assert up.network_id == n.id
    exc = rpc_error(
        net(alice).UpdatePort, pb.UpdatePortRequest(port=pb.Port(id=p.id), update_mask=mask("mac_address"))
    )
    assert exc.code() == INVALID
    assert len(net(alice).ListPorts(pb.ListPortsRequest(network_id=n.id)).ports) == 5
    page = net(alice).ListPorts(pb.ListPortsRequest(network_id=n.id, page_size=3))
    assert len(page.ports) == 3 and page.next_page_token
    assert [x.id for x in net(alice).ListPorts(pb.ListPortsRequest(name="renamed")).ports] == [p.id]
    exc = rpc_error(net(alice).DeleteSecurityGroup, pb.DeleteSecurityGroupRequest(id=sg.id))
    assert code_reason(exc) == (PRECONDITION, "SECURITY_GROUP_IN_USE")
    # Deleting the network takes its unbound ports and subnets along.
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    assert rpc_error(net(alice).GetPort, pb.GetPortRequest(id=p.id)).code() == NOT_FOUND
    assert rpc_error(net(alice).GetSubnet, pb.GetSubnetRequest(id=s4.id)).code() == NOT_FOUND
    net(alice).DeleteSecurityGroup(pb.DeleteSecurityGroupRequest(id=sg.id))
    assert rpc_error(net(alice).DeletePort, pb.DeletePortRequest(id=UNKNOWN)).code() == NOT_FOUND


def test_concurrent_port_creates_never_share_an_address(world: dict[str, Any]) -> None:
    alice = world["alice"]
    n = make_network(alice, "race")
    make_subnet(alice, n.id, "tiny", "10.60.0.0/29")  # 5 usable addresses
    ips, losers = racing_ports([alice] * 12, n.id)
    assert len(ips) == 5 and len(set(ips)) == 5, (ips, losers)
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.60.0.0/29") for ip in ips)
    assert losers == [(EXHAUSTED, "IP_POOL_EXHAUSTED")] * 7
    ports = net(alice).ListPorts(pb.ListPortsRequest(network_id=n.id)).ports
    assert len({p.mac_address for p in ports}) == 5


def test_shared_network_tenancy(admin: Client, world: dict[str, Any]) -> None:
    alice, bob = world["alice"], world["bob"]
    private = make_network(alice, "private")
    make_subnet(alice, private.id, "p", "10.70.0.0/24")
    for call, req in (
        (net(bob).GetNetwork, pb.GetNetworkRequest(id=private.id)),
        (net(bob).DeleteNetwork, pb.DeleteNetworkRequest(id=private.id)),
        (net(bob).CreatePort, pb.CreatePortRequest(port=pb.Port(network_id=private.id))),
    ):
        assert code_reason(rpc_error(call, req)) == (NOT_FOUND, "NETWORK_NOT_FOUND")
    assert private.id not in {x.id for x in net(bob).ListNetworks(pb.ListNetworksRequest()).networks}
    assert not net(bob).ListSubnets(pb.ListSubnetsRequest()).subnets or all(
        s.network_id != private.id for s in net(bob).ListSubnets(pb.ListSubnetsRequest()).subnets
    )
    own_port = make_port(alice, private.id)
    assert rpc_error(net(bob).GetPort, pb.GetPortRequest(id=own_port.id)).code() == NOT_FOUND
    alice_groups = net(alice).ListSecurityGroups(pb.ListSecurityGroupsRequest()).security_groups
    assert (
        rpc_error(net(bob).GetSecurityGroup, pb.GetSecurityGroupRequest(id=alice_groups[0].id)).code()
        == NOT_FOUND
    )
    # An admin shares it: bob sees it, reads its subnets, makes ports on it,
    # but cannot change or delete it.
    net(admin).UpdateNetwork(
        pb.UpdateNetworkRequest(network=pb.Network(id=private.id, shared=True), update_mask=mask("shared"))
    )
    assert net(bob).GetNetwork(pb.GetNetworkRequest(id=private.id)).shared
    assert private.id in {x.id for x in net(bob).ListNetworks(pb.ListNetworksRequest()).networks}
    assert net(bob).ListSubnets(pb.ListSubnetsRequest(network_id=private.id)).subnets
    bob_port = make_port(bob, private.id)
    assert bob_port.project_id == world["b"].id
    bob_default = net(bob).ListSecurityGroups(pb.ListSecurityGroupsRequest(name="default")).security_groups[0]
    assert list(bob_port.security_group_ids) == [bob_default.id]
    exc = rpc_error(
        net(bob).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=private.id, name="mine"), update_mask=mask("name")),
    )
    assert code_reason(exc) == (DENIED, "NETWORK_NOT_OWNER")
    assert rpc_error(net(bob).DeleteNetwork, pb.DeleteNetworkRequest(id=private.id)).code() == DENIED
    assert rpc_error(make_subnet, bob, private.id, "b", "10.71.0.0/24").code() == DENIED
    # bob cannot use alice's groups on his port.
    exc = rpc_error(make_port, bob, private.id, security_group_ids=[alice_groups[0].id])
    assert exc.code() == NOT_FOUND
    # Unsharing with bob's port on it is refused.
    exc = rpc_error(
        net(admin).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=private.id, shared=False), update_mask=mask("shared")),
    )
    assert code_reason(exc) == (PRECONDITION, "NETWORK_IN_USE")
    net(bob).DeletePort(pb.DeletePortRequest(id=bob_port.id))


def test_security_groups(world: dict[str, Any]) -> None:
    alice = world["alice"]
    s = net(alice)
    groups = s.ListSecurityGroups(pb.ListSecurityGroupsRequest()).security_groups
    default = next(g for g in groups if g.name == "default")
    rules = {(r.direction, r.ip_version, r.remote_group_id) for r in default.rules}
    egress, ingress = pb.SECURITY_GROUP_RULE_DIRECTION_EGRESS, pb.SECURITY_GROUP_RULE_DIRECTION_INGRESS
    assert rules == {(egress, 4, ""), (egress, 6, ""), (ingress, 4, default.id), (ingress, 6, default.id)}
    exc = rpc_error(s.DeleteSecurityGroup, pb.DeleteSecurityGroupRequest(id=default.id))
    assert code_reason(exc) == (PRECONDITION, "SECURITY_GROUP_DEFAULT")
    exc = rpc_error(
        s.CreateSecurityGroup, pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="default"))
    )
    assert code_reason(exc) == (EXISTS, "SECURITY_GROUP_EXISTS")
    g = s.CreateSecurityGroup(
        pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="ssh", description="x"))
    )
    assert not g.rules and not g.is_default
    exc = rpc_error(
        s.CreateSecurityGroup, pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="ssh"))
    )
    assert code_reason(exc) == (EXISTS, "SECURITY_GROUP_EXISTS")
    rule = s.CreateSecurityGroupRule(
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(
                security_group_id=g.id,
                direction=ingress,
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
                remote_cidr="192.168.0.0/16",
            )
        )
    )
    assert (rule.ip_version, rule.remote_cidr) == (4, "192.168.0.0/16")
    remote = s.CreateSecurityGroupRule(
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(
                security_group_id=g.id, direction=ingress, protocol="icmp", remote_group_id=default.id
            )
        )
    )
    exc = rpc_error(
        s.CreateSecurityGroupRule,
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(
                security_group_id=g.id, direction=ingress, protocol="icmp", remote_group_id=default.id
            )
        ),
    )
    assert code_reason(exc) == (EXISTS, "SECURITY_GROUP_RULE_EXISTS")
    got = s.GetSecurityGroup(pb.GetSecurityGroupRequest(id=g.id))
    assert [r.id for r in got.rules] == [rule.id, remote.id]
    bad_rules = [
        dict(direction=0),
        dict(direction=ingress, protocol="sctp"),
        dict(direction=ingress, protocol="tcp", port_range_min=10, port_range_max=5),
        dict(direction=ingress, protocol="tcp", port_range_min=0, port_range_max=70000),
        dict(direction=ingress, protocol="icmp", port_range_min=1, port_range_max=2),
        dict(direction=ingress, remote_cidr="nope"),
        dict(direction=ingress, remote_cidr="10.0.0.0/8", remote_group_id=default.id),
        dict(direction=ingress, remote_cidr="fd00::/8", ip_version=4),
        dict(direction=ingress, protocol="icmpv6", ip_version=4),
        dict(direction=ingress, ip_version=5),
    ]
    for fields in bad_rules:
        exc = rpc_error(
            s.CreateSecurityGroupRule,
            pb.CreateSecurityGroupRuleRequest(rule=pb.SecurityGroupRule(security_group_id=g.id, **fields)),
        )
        assert exc.code() == INVALID, fields
    exc = rpc_error(
        s.CreateSecurityGroupRule,
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(security_group_id=UNKNOWN, direction=ingress)
        ),
    )
    assert exc.code() == NOT_FOUND
    exc = rpc_error(
        net(world["bob"]).CreateSecurityGroupRule,
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(security_group_id=g.id, direction=ingress)
        ),
    )
    assert exc.code() == NOT_FOUND
    assert (
        rpc_error(
            net(world["bob"]).DeleteSecurityGroupRule, pb.DeleteSecurityGroupRuleRequest(id=rule.id)
        ).code()
        == NOT_FOUND
    )
    assert (
        rpc_error(
            net(world["reader"]).DeleteSecurityGroupRule, pb.DeleteSecurityGroupRuleRequest(id=rule.id)
        ).code()
        == DENIED
    )
    s.DeleteSecurityGroupRule(pb.DeleteSecurityGroupRuleRequest(id=rule.id))
    assert (
        rpc_error(s.DeleteSecurityGroupRule, pb.DeleteSecurityGroupRuleRequest(id=rule.id)).code()
        == NOT_FOUND
    )
    up = s.UpdateSecurityGroup(
        pb.UpdateSecurityGroupRequest(
            security_group=pb.SecurityGroup(id=g.id, name="ssh2"), update_mask=mask("name")
        )
    )
    assert up.name == "ssh2"
    exc = rpc_error(
        s.UpdateSecurityGroup,
        pb.UpdateSecurityGroupRequest(
            security_group=pb.SecurityGroup(id=default.id, name="x"), update_mask=mask("name")
        ),
    )
    assert exc.code() == INVALID
    # A group used as a remote by another group's rule can go; the rule goes with it.
    other = s.CreateSecurityGroup(
        pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="other"))
    )
    s.CreateSecurityGroupRule(
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(security_group_id=other.id, direction=ingress, remote_group_id=g.id)
        )
    )
    s.DeleteSecurityGroup(pb.DeleteSecurityGroupRequest(id=g.id))
    assert not s.GetSecurityGroup(pb.GetSecurityGroupRequest(id=other.id)).rules
    s.DeleteSecurityGroup(pb.DeleteSecurityGroupRequest(id=other.id))
    assert rpc_error(s.GetSecurityGroup, pb.GetSecurityGroupRequest(id=g.id)).code() == NOT_FOUND
    page = s.ListSecurityGroups(pb.ListSecurityGroupsRequest(page_size=1))
    assert len(page.security_groups) == 1


def test_cli(controller: ControllerProc, world: dict[str, Any], tmp_path: Any) -> None:
    from tests.harness import cli_login, run_cli

    assert cli_login(controller, tmp_path, "net-alice", "password-123").returncode == 0
    env = {"KUMO_CONFIG_DIR": str(tmp_path)}

    def kumo(*args: str) -> Any:
        done = run_cli(list(args), env)
        assert done.returncode == 0, done.stderr
        return done

    def kumo_json(*args: str) -> Any:
        import json

        return json.loads(kumo(*args, "-o", "json").stdout)

    n = kumo_json("network", "create", "cli-net", "--mtu", "1400")
    assert n["mtu"] == 1400
    s = kumo_json(
        "subnet", "create", "cli-sub", "--network", "cli-net", "--cidr", "10.90.0.0/24",
        "--pool", "10.90.0.10-10.90.0.20", "--dns", "9.9.9.9",
    )  # fmt: skip
    assert s["allocation_pools"] == [{"start": "10.90.0.10", "end": "10.90.0.20"}]
    g = kumo_json("security-group", "create", "cli-web")
    rule = kumo_json(
        "security-group", "rule", "create", "cli-web", "--protocol", "tcp", "--port", "80-81",
        "--remote-cidr", "0.0.0.0/0",
    )  # fmt: skip
    assert (rule["port_range_min"], rule["port_range_max"]) == (80, 81)
    p = kumo_json(
        "port", "create", "--network", "cli-net", "--name", "cli-port", "--fixed-ip", "cli-sub=10.90.0.15",
        "--security-group", "cli-web",
    )  # fmt: skip
    assert p["fixed_ips"][0]["ip_address"] == "10.90.0.15" and p["security_group_ids"] == [g["id"]]
    assert "10.90.0.15" in kumo("port", "list", "--network", "cli-net").stdout
    v6 = kumo_json(
        "subnet", "create", "cli-v6", "--network", "cli-net", "--cidr", "2001:db8:90::/64",
        "--ipv6-address-mode", "slaac",
    )  # fmt: skip
    assert v6["ipv6_address_mode"] == "slaac"
    assert "slaac" in kumo("subnet", "show", "cli-v6").stdout
    listed = {line.split()[1]: line for line in kumo("subnet", "list").stdout.splitlines()[1:]}
    assert "slaac" in listed["cli-v6"] and "static" not in listed["cli-sub"]
    failed = run_cli(["subnet", "create", "x", "--network", "cli-net", "--cidr", "fd00::/64",
                      "--ipv6-address-mode", "dhcp"], env)  # fmt: skip
    assert failed.returncode != 0 and "static or slaac" in failed.stderr
    kumo("subnet", "delete", "cli-v6")
    assert "cli-sub" in kumo("subnet", "list").stdout
    assert "cli-net" in kumo("network", "show", "cli-net").stdout
    assert kumo_json("network", "set", "cli-net", "--description", "hello")["description"] == "hello"
    shown = kumo("security-group", "show", "cli-web").stdout
    assert "tcp" in shown and "80" in shown
    failed = run_cli(["port", "delete", "no-such-port"], env)
    assert failed.returncode != 0 and "not found" in failed.stderr
    failed = run_cli(["network", "create", "x", "--shared"], env)
    assert failed.returncode != 0 and "PERMISSION_DENIED" in failed.stderr
    kumo("security-group", "rule", "delete", rule["id"])
    kumo("port", "delete", "cli-port")
    kumo("security-group", "delete", "cli-web")
    kumo("subnet", "delete", "cli-sub")
    kumo("network", "delete", "cli-net")
    assert "cli-net" not in kumo("network", "list").stdout


def test_project_with_networks_cannot_go(controller: ControllerProc, admin: Client) -> None:
    proj = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="net-gone")))
    make_user(admin, proj.id, "net-carol", idpb.ROLE_MEMBER)
    carol = controller.login("net-carol", "password-123")
    n = make_network(carol, "doomed")
    port = make_port(carol, n.id)  # also makes the default security group
    exc = rpc_error(admin.identity.DeleteProject, idpb.DeleteProjectRequest(id=proj.id))
    assert code_reason(exc) == (PRECONDITION, "PROJECT_IN_USE")
    net(carol).DeletePort(pb.DeletePortRequest(id=port.id))
    net(carol).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    user = admin.identity.ListUsers(idpb.ListUsersRequest(name="net-carol")).users[0]
    admin.identity.DeleteUser(idpb.DeleteUserRequest(id=user.id))
    # Only the default group is left: it goes with the project.
    admin.identity.DeleteProject(idpb.DeleteProjectRequest(id=proj.id))
