"""External networks, routers and floating IPs against a real controller:
CRUD, field masks, paging, tenancy, roles, wrong states, and races (the last
floating IP, one floating IP for two ports, a router deleted while an
interface is added)."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import grpc
import pytest

from kumo.v1 import network_pb2 as pb
from tests.harness import Client, ControllerProc, race, rpc_error, two_tenants
from tests.test_networks import (
    DENIED,
    EXHAUSTED,
    EXISTS,
    INVALID,
    NOT_FOUND,
    PRECONDITION,
    UNKNOWN,
    code_reason,
    make_network,
    make_port,
    make_subnet,
    mask,
    net,
)


def make_external(
    admin: Client, name: str, cidr: str, pools: list[tuple[str, str]] | None = None
) -> pb.Network:
    n = make_network(
        admin, name, external=True, network_type=pb.NETWORK_TYPE_FLAT, physical_network="physnet1"
    )
    make_subnet(
        admin,
        n.id,
        f"{name}-v4",
        cidr,
        allocation_pools=[pb.AllocationPool(start=a, end=b) for a, b in (pools or [])],
    )
    return n


def make_router(client: Client, name: str, gateway: str = "", **kw: Any) -> pb.Router:
    return net(client).CreateRouter(
        pb.CreateRouterRequest(
            router=pb.Router(name=name, external_gateway=pb.RouterGateway(network_id=gateway)), **kw
        )
    )


def add_if(client: Client, router_id: str, subnet_id: str) -> pb.Router:
    return net(client).AddRouterInterface(pb.AddRouterInterfaceRequest(id=router_id, subnet_id=subnet_id))


def remove_if(client: Client, router_id: str, subnet_id: str) -> pb.Router:
    return net(client).RemoveRouterInterface(
        pb.RemoveRouterInterfaceRequest(id=router_id, subnet_id=subnet_id)
    )


def make_fip(client: Client, network_id: str, port_id: str = "", **kw: Any) -> pb.FloatingIp:
    return net(client).CreateFloatingIp(
        pb.CreateFloatingIpRequest(
            floating_ip=pb.FloatingIp(floating_network_id=network_id, port_id=port_id), **kw
        )
    )


def set_port(client: Client, fip_id: str, port_id: str) -> pb.FloatingIp:
    return net(client).UpdateFloatingIp(
        pb.UpdateFloatingIpRequest(
            floating_ip=pb.FloatingIp(id=fip_id, port_id=port_id), update_mask=mask("port_id")
        )
    )


@pytest.fixture(scope="module")
def world(controller: ControllerProc, admin: Client) -> dict[str, Any]:
    w = two_tenants(controller, admin, "rt")
    w["ext"] = make_external(admin, "rt-ext", "192.0.2.0/24", [("192.0.2.10", "192.0.2.200")])
    return w


def tenant_subnet(client: Client, name: str, cidr: str) -> tuple[pb.Network, pb.Subnet]:
    n = make_network(client, name)
    return n, make_subnet(client, n.id, f"{name}-v4", cidr)


def test_external_networks_are_admin_made_and_checked(world: dict[str, Any], admin: Client) -> None:
    alice, ext = world["alice"], world["ext"]
    assert ext.external and ext.network_type == pb.NETWORK_TYPE_FLAT and ext.physical_network == "physnet1"
    # Every project sees it (by id, by name, in lists) ...
    assert net(alice).GetNetwork(pb.GetNetworkRequest(id=ext.id)).id == ext.id
    assert ext.id in [
        n.id for n in net(world["bob"]).ListNetworks(pb.ListNetworksRequest(name="rt-ext")).networks
    ]
    # ... but only admins make one, and its fields are checked.
    assert code_reason(
        rpc_error(
            make_network, alice, "x", external=True, network_type=pb.NETWORK_TYPE_FLAT, physical_network="p"
        )
    ) == (DENIED, "ROLE_REQUIRED")
    for kw in (
        {"external": True},  # FLAT by default: needs a physical network
        {"external": True, "network_type": pb.NETWORK_TYPE_VXLAN},
        {"network_type": pb.NETWORK_TYPE_VLAN, "physical_network": "p"},  # no VLAN id
        {"network_type": pb.NETWORK_TYPE_VLAN, "physical_network": "p", "segmentation_id": 4095},
        {"network_type": pb.NETWORK_TYPE_FLAT, "physical_network": "p", "segmentation_id": 5},
        {"network_type": pb.NETWORK_TYPE_FLAT, "physical_network": "bad name"},
        {"network_type": 9, "physical_network": "p"},
        {"physical_network": "p"},
    ):
        assert rpc_error(make_network, admin, "bad-ext", **kw).code() == INVALID, kw
    vlan = make_network(
        admin,
        "rt-vlan",
        external=True,
        network_type=pb.NETWORK_TYPE_VLAN,
        physical_network="p",
        segmentation_id=42,
    )
    assert vlan.segmentation_id == 42
    # Not changeable, and tenants make no ports on it (not shared: see test_bridged_ports).
    exc = rpc_error(
        net(admin).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=vlan.id, external=False), update_mask=mask("external")),
    )
    assert exc.code() == INVALID
    assert code_reason(rpc_error(make_port, alice, ext.id)) == (PRECONDITION, "NETWORK_EXTERNAL")
    net(admin).DeleteNetwork(pb.DeleteNetworkRequest(id=vlan.id))


def test_router_crud_interfaces_and_wrong_states(world: dict[str, Any], admin: Client) -> None:
    alice, bob, reader, ext = world["alice"], world["bob"], world["reader"], world["ext"]
    _, s1 = tenant_subnet(alice, "rt-app", "10.20.0.0/24")
    _, s2 = tenant_subnet(alice, "rt-db", "10.21.0.0/24")
    r = make_router(alice, "r1", ext.id)
    gw = r.external_gateway
    assert gw.network_id == ext.id and gw.port_id and gw.ip_address.startswith("192.0.2.")
    assert r.project_id == world["a"].id and not r.interfaces
    # The gateway's port is the router's: not deletable, not bootable.
    assert code_reason(rpc_error(net(alice).DeletePort, pb.DeletePortRequest(id=gw.port_id))) == (
        PRECONDITION,
        "PORT_IN_USE",
    )
    r = add_if(alice, r.id, s1.id)
    assert [(i.subnet_id, i.ip_address) for i in r.interfaces] == [(s1.id, "10.20.0.1")]
    r = add_if(alice, r.id, s2.id)
    assert {i.subnet_id for i in r.interfaces} == {s1.id, s2.id}
    assert net(reader).GetRouter(pb.GetRouterRequest(id=r.id)) == r
    # One subnet on at most one router.
    r2 = make_router(alice, "r2")
    assert not r2.external_gateway.network_id and not r2.external_gateway.port_id
    assert code_reason(rpc_error(add_if, alice, r2.id, s1.id)) == (EXISTS, "SUBNET_ON_ROUTER")
    assert code_reason(rpc_error(add_if, alice, r.id, s1.id)) == (EXISTS, "SUBNET_ON_ROUTER")
    # Wrong states: interfaces left; a gateway on a network that is not external;
    # an interface on the external network; a subnet without a gateway.
    assert code_reason(rpc_error(net(alice).DeleteRouter, pb.DeleteRouterRequest(id=r.id))) == (
        PRECONDITION,
        "ROUTER_IN_USE",
    )
    plain, _ = tenant_subnet(alice, "rt-plain", "10.22.0.0/24")
    assert code_reason(rpc_error(make_router, alice, "r3", plain.id)) == (
        PRECONDITION,
        "NETWORK_NOT_EXTERNAL",
    )
    up = pb.UpdateRouterRequest(
        router=pb.Router(id=r2.id, external_gateway=pb.RouterGateway(network_id=plain.id)),
        update_mask=mask("external_gateway"),
    )
    assert code_reason(rpc_error(net(alice).UpdateRouter, up)) == (PRECONDITION, "NETWORK_NOT_EXTERNAL")
    ext_sub = net(alice).GetNetwork(pb.GetNetworkRequest(id=ext.id)).subnet_ids[0]
    assert code_reason(rpc_error(add_if, alice, r2.id, ext_sub)) == (PRECONDITION, "NETWORK_EXTERNAL")
    nogw_net = make_network(alice, "rt-nogw")
    nogw = make_subnet(alice, nogw_net.id, "nogw", "10.23.0.0/24", gateway_ip="none")
    assert code_reason(rpc_error(add_if, alice, r2.id, nogw.id)) == (PRECONDITION, "SUBNET_NO_GATEWAY")
    v6_nogw = make_subnet(alice, nogw_net.id, "v6-nogw", "2001:db8:24::/64", gateway_ip="none")
    assert code_reason(rpc_error(add_if, alice, r2.id, v6_nogw.id)) == (PRECONDITION, "SUBNET_NO_GATEWAY")
    # IPv6 subnets with a gateway are routed too (NAT66: docs/networks.md).
    v6 = make_subnet(alice, nogw_net.id, "v6", "2001:db8:23::/64")
    assert v6.id in [i.subnet_id for i in add_if(alice, r2.id, v6.id).interfaces]
    remove_if(alice, r2.id, v6.id)
    # Another project: its routers and subnets are missing to us, ours to it.
    _, bob_sub = tenant_subnet(bob, "rt-bob", "10.30.0.0/24")
    assert code_reason(rpc_error(add_if, alice, r2.id, bob_sub.id)) == (NOT_FOUND, "SUBNET_NOT_FOUND")
    assert code_reason(rpc_error(add_if, bob, r2.id, bob_sub.id)) == (NOT_FOUND, "ROUTER_NOT_FOUND")
    assert rpc_error(net(bob).GetRouter, pb.GetRouterRequest(id=r.id)).code() == NOT_FOUND
    assert rpc_error(net(bob).DeleteRouter, pb.DeleteRouterRequest(id=r.id)).code() == NOT_FOUND
    assert rpc_error(remove_if, bob, r.id, s1.id).code() == NOT_FOUND
    assert r.id not in [x.id for x in net(bob).ListRouters(pb.ListRoutersRequest()).routers]
    # Reader role; bad input; missing.
    assert rpc_error(make_router, reader, "r-ro").code() == DENIED
    assert rpc_error(add_if, reader, r2.id, s2.id).code() == DENIED
    assert rpc_error(net(reader).DeleteRouter, pb.DeleteRouterRequest(id=r2.id)).code() == DENIED
    for bad in ("", "bad name"):
        assert rpc_error(make_router, alice, bad).code() == INVALID
    assert rpc_error(make_router, alice, "rb", "not-a-uuid").code() == INVALID
    assert code_reason(rpc_error(make_router, alice, "r1")) == (EXISTS, "ROUTER_EXISTS")
    assert rpc_error(add_if, alice, "nope", s1.id).code() == INVALID
    assert rpc_error(add_if, alice, r.id, "").code() == INVALID
    assert rpc_error(add_if, alice, UNKNOWN, s1.id).code() == NOT_FOUND
    assert rpc_error(add_if, alice, r2.id, UNKNOWN).code() == NOT_FOUND
    assert code_reason(rpc_error(remove_if, alice, r2.id, s1.id)) == (NOT_FOUND, "ROUTER_INTERFACE_NOT_FOUND")
    assert rpc_error(net(alice).GetRouter, pb.GetRouterRequest(id=UNKNOWN)).code() == NOT_FOUND
    assert rpc_error(net(alice).ListRouters, pb.ListRoutersRequest(page_size=-1)).code() == INVALID
    exc = rpc_error(
        net(alice).UpdateRouter,
        pb.UpdateRouterRequest(router=pb.Router(id=r.id), update_mask=mask("interfaces")),
    )
    assert exc.code() == INVALID
    # Field masks: rename; move the gateway away and back (a new address each time).
    up2 = net(alice).UpdateRouter(
        pb.UpdateRouterRequest(
            router=pb.Router(id=r.id, name="r1b", description="d"), update_mask=mask("name", "description")
        )
    )
    assert (up2.name, up2.description, up2.external_gateway) == ("r1b", "d", r.external_gateway)
    cleared = net(alice).UpdateRouter(
        pb.UpdateRouterRequest(router=pb.Router(id=r.id), update_mask=mask("external_gateway"))
    )
    assert not cleared.external_gateway.port_id
    assert rpc_error(net(alice).GetPort, pb.GetPortRequest(id=gw.port_id)).code() == NOT_FOUND
    # Paging and request_id.
    seen, token = [], ""
    while True:
        page = net(alice).ListRouters(pb.ListRoutersRequest(page_size=1, page_token=token))
        seen += [x.name for x in page.routers]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and {"r1b", "r2"} <= set(seen)
    i1 = make_router(alice, "idem", request_id="rq-1")
    assert make_router(alice, "idem", request_id="rq-1").id == i1.id
    # A subnet on a router, and its network, stay until the interface goes.
    assert code_reason(rpc_error(net(alice).DeleteSubnet, pb.DeleteSubnetRequest(id=s1.id))) == (
        PRECONDITION,
        "SUBNET_IN_USE",
    )
    assert code_reason(rpc_error(net(alice).DeleteNetwork, pb.DeleteNetworkRequest(id=s1.network_id))) == (
        PRECONDITION,
        "NETWORK_IN_USE",
    )
    # Take it all down.
    for sub in (s1, s2):
        r = remove_if(alice, r.id, sub.id)
    assert not r.interfaces
    for x in (r, r2, i1):
        net(alice).DeleteRouter(pb.DeleteRouterRequest(id=x.id))
    assert rpc_error(net(alice).GetRouter, pb.GetRouterRequest(id=r.id)).code() == NOT_FOUND


def routed_port(client: Client, name: str, cidr: str, ext_id: str) -> tuple[pb.Router, pb.Subnet, pb.Port]:
    n, s = tenant_subnet(client, name, cidr)
    r = make_router(client, f"{name}-r", ext_id)
    add_if(client, r.id, s.id)
    return r, s, make_port(client, n.id)


def test_floating_ips(world: dict[str, Any]) -> None:
    alice, bob, reader, ext = world["alice"], world["bob"], world["reader"], world["ext"]
    r, s, p1 = routed_port(alice, "fip", "10.40.0.0/24", ext.id)
    p2 = make_port(alice, s.network_id)
    f = make_fip(alice, ext.id)
    assert f.floating_ip_address.startswith("192.0.2.") and not f.port_id and f.project_id == world["a"].id
    f = set_port(alice, f.id, p1.id)
    assert (f.port_id, f.fixed_ip_address, f.router_id) == (p1.id, p1.fixed_ips[0].ip_address, r.id)
    assert set_port(alice, f.id, p1.id) == f  # again: no change
    # Given to p1: moving it needs a disassociate first.
    assert code_reason(rpc_error(set_port, alice, f.id, p2.id)) == (PRECONDITION, "FLOATING_IP_ASSOCIATED")
    f = set_port(alice, f.id, "")
    assert not f.port_id and not f.fixed_ip_address and not f.router_id
    f = set_port(alice, f.id, p2.id)
    assert f.port_id == p2.id
    # One floating IP per port.
    g = make_fip(alice, ext.id)
    assert code_reason(rpc_error(set_port, alice, g.id, p2.id)) == (EXISTS, "PORT_HAS_FLOATING_IP")
    # Wrong states: a network that is not external; a port without a fixed IP;
    # a port whose subnet has no router out to this network.
    assert code_reason(rpc_error(make_fip, alice, s.network_id)) == (PRECONDITION, "NETWORK_NOT_EXTERNAL")
    bare = make_network(alice, "fip-bare")
    bare_port = make_port(alice, bare.id)
    assert code_reason(rpc_error(set_port, alice, g.id, bare_port.id)) == (PRECONDITION, "PORT_NO_FIXED_IP")
    _, lone = tenant_subnet(alice, "fip-lone", "10.41.0.0/24")
    lone_port = make_port(alice, lone.network_id)
    assert code_reason(rpc_error(set_port, alice, g.id, lone_port.id)) == (
        PRECONDITION,
        "EXTERNAL_GATEWAY_MISSING",
    )
    # The router's interface and gateway are in use while floating IPs go through it.
    assert code_reason(rpc_error(remove_if, alice, r.id, s.id)) == (PRECONDITION, "ROUTER_INTERFACE_IN_USE")
    clear = pb.UpdateRouterRequest(router=pb.Router(id=r.id), update_mask=mask("external_gateway"))
    assert code_reason(rpc_error(net(alice).UpdateRouter, clear)) == (PRECONDITION, "ROUTER_IN_USE")
    # Another project: missing; its ports are missing to us.
    assert rpc_error(net(bob).GetFloatingIp, pb.GetFloatingIpRequest(id=f.id)).code() == NOT_FOUND
    assert rpc_error(set_port, bob, f.id, "").code() == NOT_FOUND
    assert rpc_error(net(bob).DeleteFloatingIp, pb.DeleteFloatingIpRequest(id=f.id)).code() == NOT_FOUND
    bob_fip = make_fip(bob, ext.id)
    assert code_reason(rpc_error(set_port, bob, bob_fip.id, p1.id)) == (NOT_FOUND, "PORT_NOT_FOUND")
    assert f.id not in [x.id for x in net(bob).ListFloatingIps(pb.ListFloatingIpsRequest()).floating_ips]
    # Reader; bad input; missing.
    assert net(reader).GetFloatingIp(pb.GetFloatingIpRequest(id=f.id)) == f
    assert rpc_error(make_fip, reader, ext.id).code() == DENIED
    assert rpc_error(set_port, reader, f.id, "").code() == DENIED
    assert rpc_error(make_fip, alice, "").code() == INVALID
    assert rpc_error(make_fip, alice, "junk").code() == INVALID
    assert rpc_error(make_fip, alice, UNKNOWN).code() == NOT_FOUND
    assert rpc_error(set_port, alice, f.id, "junk").code() == INVALID
    assert rpc_error(set_port, alice, f.id, UNKNOWN).code() == NOT_FOUND
    assert rpc_error(set_port, alice, UNKNOWN, "").code() == NOT_FOUND
    exc = rpc_error(
        net(alice).CreateFloatingIp,
        pb.CreateFloatingIpRequest(
            floating_ip=pb.FloatingIp(floating_network_id=ext.id, floating_ip_address="1.2.3.4")
        ),
    )
    assert exc.code() == INVALID
    exc = rpc_error(
        net(alice).UpdateFloatingIp,
        pb.UpdateFloatingIpRequest(
            floating_ip=pb.FloatingIp(id=f.id), update_mask=mask("floating_ip_address")
        ),
    )
    assert exc.code() == INVALID
    # Lists filter and page; request_id; create with a port.
    assert [
        x.id for x in net(alice).ListFloatingIps(pb.ListFloatingIpsRequest(port_id=p2.id)).floating_ips
    ] == [f.id]
    assert {
        x.id
        for x in net(alice)
        .ListFloatingIps(pb.ListFloatingIpsRequest(floating_network_id=ext.id))
        .floating_ips
    } == {f.id, g.id}
    page = net(alice).ListFloatingIps(pb.ListFloatingIpsRequest(page_size=1))
    assert len(page.floating_ips) == 1 and page.next_page_token
    h1 = make_fip(alice, ext.id, p1.id, request_id="fip-rq")
    assert h1.port_id == p1.id and make_fip(alice, ext.id, p1.id, request_id="fip-rq").id == h1.id
    # Deleting a port lets its floating IP go unassociated; the external network stays in use.
    net(alice).DeletePort(pb.DeletePortRequest(id=p1.id))
    assert not net(alice).GetFloatingIp(pb.GetFloatingIpRequest(id=h1.id)).port_id
    assert rpc_error(net(world["reader"]).DeleteNetwork, pb.DeleteNetworkRequest(id=ext.id)).code() == DENIED
    for x in (f, g, h1):
        net(alice).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=x.id))
    net(bob).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=bob_fip.id))
    assert rpc_error(net(alice).GetFloatingIp, pb.GetFloatingIpRequest(id=f.id)).code() == NOT_FOUND


def test_external_network_in_use(world: dict[str, Any], admin: Client) -> None:
    ext = make_external(admin, "rt-inuse", "198.51.100.0/24")
    f = make_fip(world["alice"], ext.id)
    assert code_reason(rpc_error(net(admin).DeleteNetwork, pb.DeleteNetworkRequest(id=ext.id))) == (
        PRECONDITION,
        "NETWORK_IN_USE",
    )
    net(world["alice"]).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=f.id))
    net(admin).DeleteNetwork(pb.DeleteNetworkRequest(id=ext.id))


def outcomes(calls: list[Any]) -> list[Any]:
    """Runs the calls all at once; each one's result or (code, reason)."""
    out: list[Any] = [None] * len(calls)
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            res: Any = calls[i]()
        except grpc.RpcError as exc:
            res = code_reason(exc)
        with lock:
            out[i] = res

    race(worker, [(i,) for i in range(len(calls))])
    return out


def race_last_floating_ip(alice: Client, bob: Client, admin: Client, alice_project: str, cidr: str) -> None:
    """Two projects race for the last floating IP, many times over: never both win."""
    first = str(ipaddress.ip_network(cidr).network_address + 2)
    ext = make_external(admin, f"last-{first}", cidr, [(first, first)])
    for _ in range(5):
        got = outcomes([lambda: make_fip(alice, ext.id), lambda: make_fip(bob, ext.id)])
        won = [g for g in got if isinstance(g, pb.FloatingIp)]
        assert len(won) == 1, got
        assert [g for g in got if not isinstance(g, pb.FloatingIp)] == [(EXHAUSTED, "IP_POOL_EXHAUSTED")]
        owner = alice if won[0].project_id == alice_project else bob
        net(owner).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=won[0].id))


def race_one_floating_ip_two_ports(a1: Client, a2: Client, ext_id: str, name: str, cidr: str) -> None:
    """One floating IP given to two ports at once: exactly one wins."""
    _, s, p1 = routed_port(a1, name, cidr, ext_id)
    p2 = make_port(a1, s.network_id)
    for _ in range(5):
        f = make_fip(a1, ext_id)
        got = outcomes([lambda f=f: set_port(a1, f.id, p1.id), lambda f=f: set_port(a2, f.id, p2.id)])
        won = [g for g in got if isinstance(g, pb.FloatingIp)]
        assert len(won) == 1 and [g for g in got if g not in won] == [
            (PRECONDITION, "FLOATING_IP_ASSOCIATED")
        ]
        assert net(a1).GetFloatingIp(pb.GetFloatingIpRequest(id=f.id)).port_id == won[0].port_id
        net(a1).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=f.id))


def race_delete_router_and_add_interface(a1: Client, a2: Client, prefix: str, second_octet: int) -> None:
    """A router deleted while an interface is added: never an interface of a router that is gone."""
    for i in range(5):
        _, sub = tenant_subnet(a1, f"{prefix}-{i}", f"10.{second_octet}.{i}.0/24")
        r = make_router(a1, f"{prefix}-{i}")
        got = outcomes(
            [
                lambda r=r, sub=sub: add_if(a1, r.id, sub.id),
                lambda r=r: net(a2).DeleteRouter(pb.DeleteRouterRequest(id=r.id)),
            ]
        )
        try:
            left = net(a1).GetRouter(pb.GetRouterRequest(id=r.id))
        except grpc.RpcError as exc:
            assert exc.code() == NOT_FOUND
            assert got[0] == (NOT_FOUND, "ROUTER_NOT_FOUND"), got
        else:
            # The add won; the delete saw the interface.
            assert [x.subnet_id for x in left.interfaces] == [sub.id]
            assert got[1] == (PRECONDITION, "ROUTER_IN_USE"), got
            remove_if(a1, r.id, sub.id)
            net(a1).DeleteRouter(pb.DeleteRouterRequest(id=r.id))
        # Either way the subnet is free for another router (no orphan interface).
        r2 = make_router(a1, f"{prefix}-after-{i}")
        assert [x.subnet_id for x in add_if(a1, r2.id, sub.id).interfaces] == [sub.id]
        remove_if(a1, r2.id, sub.id)
        net(a1).DeleteRouter(pb.DeleteRouterRequest(id=r2.id))


def test_races(world: dict[str, Any], admin: Client) -> None:
    alice, bob = world["alice"], world["bob"]
    race_last_floating_ip(alice, bob, admin, world["a"].id, "203.0.113.0/29")
    race_one_floating_ip_two_ports(alice, alice, world["ext"].id, "race", "10.50.0.0/24")
    race_delete_router_and_add_interface(alice, alice, "race-del", 60)


def test_cli(controller: ControllerProc, world: dict[str, Any], admin: Client, tmp_path: Any) -> None:
    import json

    from tests.harness import cli_login, run_cli

    env = {"KUMO_CONFIG_DIR": str(tmp_path / "alice")}
    assert cli_login(controller, tmp_path / "alice", "rt-alice", "password-123").returncode == 0

    def kumo(*args: str) -> Any:
        done = run_cli(list(args), env)
        assert done.returncode == 0, done.stderr
        return done

    def kumo_json(*args: str) -> Any:
        return json.loads(kumo(*args, "-o", "json").stdout)

    # An admin makes an external network with the CLI too (here through the API's admin client).
    ext = make_external(admin, "cli-ext", "198.51.100.0/24")
    assert "cli-ext" in kumo("network", "show", "cli-ext").stdout
    kumo("network", "create", "cli-app")
    kumo("subnet", "create", "cli-app-v4", "--network", "cli-app", "--cidr", "10.91.0.0/24")
    r = kumo_json("router", "create", "cli-r", "--external-network", "cli-ext")
    assert r["external_gateway"]["network_id"] == ext.id and r["external_gateway"]["ip_address"]
    r = kumo_json("router", "add-interface", "cli-r", "cli-app-v4")
    assert [i["ip_address"] for i in r["interfaces"]] == ["10.91.0.1"]
    assert "cli-r" in kumo("router", "list").stdout and "10.91.0.1" in kumo("router", "show", "cli-r").stdout
    assert kumo_json("router", "set", "cli-r", "--description", "out")["description"] == "out"
    p = kumo_json("port", "create", "--network", "cli-app", "--name", "cli-p")
    f = kumo_json("floating-ip", "create", "--network", "cli-ext")
    addr = f["floating_ip_address"]
    assert kumo_json("floating-ip", "set", addr, "--port", "cli-p")["port_id"] == p["id"]
    assert addr in kumo("floating-ip", "list", "--port", "cli-p").stdout
    assert p["fixed_ips"][0]["ip_address"] in kumo("floating-ip", "show", addr).stdout
    failed = run_cli(["router", "delete", "cli-r"], env)
    assert failed.returncode != 0 and "FAILED_PRECONDITION" in failed.stderr
    assert not kumo_json("floating-ip", "unset", addr).get("port_id")
    kumo("floating-ip", "delete", addr)
    assert addr not in kumo("floating-ip", "list").stdout
    kumo("router", "remove-interface", "cli-r", "cli-app-v4")
    assert not kumo_json("router", "set", "cli-r", "--no-gateway")["external_gateway"].get("port_id")
    kumo("router", "delete", "cli-r")
    assert "cli-r" not in kumo("router", "list").stdout
    failed = run_cli(
        ["network", "create", "x", "--external", "--type", "flat", "--physical-network", "p"], env
    )
    assert failed.returncode != 0 and "PERMISSION_DENIED" in failed.stderr
    failed = run_cli(["network", "create", "x", "--type", "token-ring"], env)
    assert failed.returncode != 0 and "vxlan, flat, vlan" in failed.stderr


def test_floating_ip_quota(world: dict[str, Any], admin: Client) -> None:
    """The project's floating_ips counter: charged by a create, released by
    a delete; the address ports are not counted as ports."""
    from tests.test_quotas import get_quota, set_quota

    a = world["a"].id
    before = get_quota(admin, a).usage
    set_quota(admin, a, floating_ips=before.floating_ips + 1)
    f = make_fip(world["alice"], world["ext"].id)
    used = get_quota(admin, a).usage
    assert (used.floating_ips, used.ports) == (before.floating_ips + 1, before.ports)
    assert code_reason(rpc_error(make_fip, world["alice"], world["ext"].id)) == (EXHAUSTED, "QUOTA_EXCEEDED")
    net(world["alice"]).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=f.id))
    assert get_quota(admin, a).usage.floating_ips == before.floating_ips
    again = make_fip(world["alice"], world["ext"].id)
    net(world["alice"]).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=again.id))


def test_bridged_ports(world: dict[str, Any], admin: Client) -> None:
    """Ports directly on a provider network (bridged guests): admins may make
    them, every project on a shared one; the address comes from the pool;
    another project's is NOT_FOUND; readers make none; no floating IP for
    such a port; a shared one with other projects' ports stays shared."""
    alice, bob, reader = world["alice"], world["bob"], world["reader"]
    lan = make_network(
        admin,
        "rt-lan",
        external=True,
        shared=True,
        network_type=pb.NETWORK_TYPE_FLAT,
        physical_network="physnet1",
    )
    make_subnet(
        admin,
        lan.id,
        "rt-lan-v4",
        "198.51.100.0/24",
        allocation_pools=[pb.AllocationPool(start="198.51.100.100", end="198.51.100.102")],
    )
    # Not shared: admins only (the module's external network).
    assert code_reason(rpc_error(make_port, alice, world["ext"].id)) == (PRECONDITION, "NETWORK_EXTERNAL")
    by_admin = make_port(admin, world["ext"].id)
    assert ipaddress.ip_address(by_admin.fixed_ips[0].ip_address) in ipaddress.ip_network("192.0.2.0/24")
    # Shared: any project's members, an address of the pool, a port of their own.
    p = make_port(alice, lan.id, name="bridged")
    [ip] = [f.ip_address for f in p.fixed_ips]
    assert "198.51.100.100" <= ip <= "198.51.100.102"
    assert p.project_id == world["a"].id
    assert rpc_error(net(bob).GetPort, pb.GetPortRequest(id=p.id)).code() == NOT_FOUND
    assert rpc_error(net(bob).DeletePort, pb.DeletePortRequest(id=p.id)).code() == NOT_FOUND
    assert rpc_error(make_port, reader, lan.id).code() == DENIED
    bad = rpc_error(make_port, alice, lan.id, fixed_ips=[pb.PortFixedIp(ip_address="10.9.9.9")])
    assert bad.code() == INVALID  # not an address of the network
    # A floating IP is for a routed port, not one already on the LAN.
    fip = make_fip(alice, world["ext"].id)
    assert code_reason(rpc_error(set_port, alice, fip.id, p.id)) == (PRECONDITION, "EXTERNAL_GATEWAY_MISSING")
    net(alice).DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=fip.id))
    # Another project's port on it: it must stay shared.
    exc = rpc_error(
        net(admin).UpdateNetwork,
        pb.UpdateNetworkRequest(network=pb.Network(id=lan.id, shared=False), update_mask=mask("shared")),
    )
    assert code_reason(exc) == (PRECONDITION, "NETWORK_IN_USE")
    # The pool runs out like any other.
    make_port(bob, lan.id)
    make_port(bob, lan.id)
    assert code_reason(rpc_error(make_port, alice, lan.id)) == (EXHAUSTED, "IP_POOL_EXHAUSTED")
    for port in net(admin).ListPorts(pb.ListPortsRequest(network_id=lan.id)).ports:
        net(admin).DeletePort(pb.DeletePortRequest(id=port.id))
    net(admin).DeletePort(pb.DeletePortRequest(id=by_admin.id))
    net(admin).DeleteNetwork(pb.DeleteNetworkRequest(id=lan.id))
