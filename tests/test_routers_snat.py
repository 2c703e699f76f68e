"""Distributed SNAT through a real controller and two kumo-noded processes
(fake driver: what each node is told). Every node running a router's guests
gets the router in its desired state with an external address of its own:
the first node (by id) the router's gateway address, the other one an
address from the external pool; it goes when the node's last guest of the
router goes, or the interface, or the gateway; a full pool leaves that node
without one (the create still succeeds) until an address is free; the
address is no NIC (PORT_IN_USE) and another project never sees it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import network_pb2 as pb
from tests.cloudutil import fake_cloud
from tests.harness import make_user, rpc_error
from tests.test_compute_fake import compute, wait_gone
from tests.test_networks import PRECONDITION, code_reason, make_network, make_subnet, mask, net
from tests.test_networks_fake import wait_desired
from tests.test_routers import add_if, make_external, make_router, remove_if

POOL = ("192.0.2.10", "192.0.2.12")  # three addresses: the router's and two nodes'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    with fake_cloud(tmp_path_factory.mktemp("snatfleet"), 2, "snat", env) as c:
        image = c.public_image("tiny")
        c.flavor("m1.tiny", vcpus=1, ram_mb=256)
        admin = c.admin
        for project, user in (("sn-a", "sn-alice"), ("sn-b", "sn-bob")):
            p = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=project)))
            make_user(admin, p.id, user, idpb.ROLE_MEMBER)
        yield {
            "states": c.node_states,
            "admin": admin,
            "image": image,
            "alice": c.ctl.login("sn-alice", "password-123"),
            "bob": c.ctl.login("sn-bob", "password-123"),
        }


def routers_of(fleet: dict[str, Any], node_id: str, want: list[str], what: str) -> list[dict[str, Any]]:
    """Waits until the node is told exactly these router gateway addresses."""

    def told(d: dict[str, Any]) -> bool:
        return sorted(r.get("gatewayAddress", "") for r in d.get("routers", [])) == sorted(want)

    return wait_desired(fleet, node_id, told, what).get("routers", [])


def ext_ports(admin: Any, ext_id: str) -> set[str]:
    return {p.id for p in net(admin).ListPorts(pb.ListPortsRequest(network_id=ext_id, page_size=100)).ports}


def boot(fleet: dict[str, Any], client: Any, name: str, network: str, group: str) -> cpb.Instance:
    return compute(client).CreateInstance(
        cpb.CreateInstanceRequest(
            name=name,
            image=fleet["image"].id,
            flavor="m1.tiny",
            networks=[cpb.NetworkRequest(network=network)],
            server_group_id=group,
        )
    )


def test_every_node_of_a_router_snats_with_its_own_address(fleet: dict[str, Any]) -> None:
    admin, alice, bob = fleet["admin"], fleet["alice"], fleet["bob"]
    ext = make_external(admin, "sn-ext", "192.0.2.0/24", [POOL])
    make_subnet(admin, ext.id, "sn-ext-v6", "2001:db8:e::/64")
    n = make_network(alice, "sn-app")
    sub = make_subnet(alice, n.id, "sn-app-v4", "10.91.0.0/24")
    sub6 = make_subnet(alice, n.id, "sn-app-v6", "2001:db8:91::/64")
    r = make_router(alice, "sn-r", ext.id)
    router_ip = r.external_gateway.ip_address
    add_if(alice, r.id, sub.id)
    add_if(alice, r.id, sub6.id)
    group = compute(alice).CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="sn-apart", policy=cpb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
        )
    )
    before = ext_ports(admin, ext.id)
    i1 = boot(fleet, alice, "sn1", n.id, group.id)
    i2 = boot(fleet, alice, "sn2", n.id, group.id)
    first, second = sorted([i1.node_id, i2.node_id])
    assert first != second
    [snat_port] = ext_ports(admin, ext.id) - before  # one new address: the second node's
    fixed = [ip.ip_address for ip in net(admin).GetPort(pb.GetPortRequest(id=snat_port)).fixed_ips]
    [snat_ip] = [ip for ip in fixed if ":" not in ip]
    assert snat_ip != router_ip and POOL[0] <= snat_ip <= POOL[1]
    [on_first] = routers_of(
        fleet, first, [f"{router_ip}/24"], "the first node SNATs with the router's address"
    )
    [on_second] = routers_of(fleet, second, [f"{snat_ip}/24"], "the second node SNATs with its own address")
    for told in (on_first, on_second):
        assert told["externalNetworkId"] == ext.id
        assert told["interfaceCidrs"] == ["10.91.0.0/24", "2001:db8:91::/64"]
        assert told["externalGatewayIp"] == "192.0.2.1" and told["interfaceNetworkIds"] == [n.id]
        # IPv6 (NAT66): each node its own IPv6 address of the router too.
        address6 = ipaddress.ip_interface(told["gatewayAddress6"])
        assert address6.network == ipaddress.ip_network("2001:db8:e::/64")
        assert told["externalGatewayIp6"] == "2001:db8:e::1"
    assert on_first["gatewayAddress6"] != on_second["gatewayAddress6"]

    # The address is no NIC: not deleted, not booted with; another project sees nothing of it.
    exc = rpc_error(net(admin).DeletePort, pb.DeletePortRequest(id=snat_port))
    assert code_reason(exc) == (PRECONDITION, "PORT_IN_USE")
    booted = rpc_error(
        compute(admin).CreateInstance,
        cpb.CreateInstanceRequest(
            name="sn-x",
            image=fleet["image"].id,
            flavor="m1.tiny",
            networks=[cpb.NetworkRequest(port_id=snat_port)],
        ),
    )
    assert booted.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
    assert rpc_error(net(bob).GetPort, pb.GetPortRequest(id=snat_port)).code() == grpc.StatusCode.NOT_FOUND
    assert (
        rpc_error(net(bob).DeletePort, pb.DeletePortRequest(id=snat_port)).code() == grpc.StatusCode.NOT_FOUND
    )

    # The second node's last guest goes: so does its address and its router.
    gone = i2 if i2.node_id == second else i1
    kept = i1 if gone is i2 else i2
    compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=gone.id))
    wait_gone(alice, gone.id)
    assert ext_ports(admin, ext.id) == before
    routers_of(fleet, second, [], "the second node no longer SNATs")
    routers_of(fleet, first, [f"{router_ip}/24"], "the first node still SNATs")

    # A full pool: a node that needs an address gets none, and its create succeeds anyway.
    taker = make_router(bob, "sn-taker", ext.id)
    hog = make_router(alice, "sn-hog", ext.id)
    full = ext_ports(admin, ext.id)
    again = boot(fleet, alice, "sn3", n.id, group.id)
    assert again.node_id == gone.node_id and ext_ports(admin, ext.id) == full
    routers_of(fleet, second, [], "no address left for the second node")
    # An address comes free; the next change of the router's nodes gives it.
    net(alice).DeleteRouter(pb.DeleteRouterRequest(id=hog.id))
    add_if(alice, r.id, make_subnet(alice, n.id, "sn-app-v4b", "10.91.1.0/24").id)
    [told] = routers_of(fleet, second, [f"{ip}/24" for ip in addresses(admin, ext.id, full)], "SNAT later")
    assert sorted(told["interfaceCidrs"]) == ["10.91.0.0/24", "10.91.1.0/24", "2001:db8:91::/64"]

    # Clearing the gateway takes every node's SNAT; removing the interfaces too.
    net(alice).UpdateRouter(
        pb.UpdateRouterRequest(
            router=pb.Router(id=r.id, external_gateway=pb.RouterGateway()),
            update_mask=mask("external_gateway"),
        )
    )
    routers_of(fleet, first, [], "no gateway, no SNAT")
    routers_of(fleet, second, [], "no gateway, no SNAT")
    assert ext_ports(admin, ext.id) == {taker.external_gateway.port_id}
    net(alice).UpdateRouter(
        pb.UpdateRouterRequest(
            router=pb.Router(id=r.id, external_gateway=pb.RouterGateway(network_id=ext.id)),
            update_mask=mask("external_gateway"),
        )
    )
    assert len(ext_ports(admin, ext.id)) == 3  # taker, the router, the second node
    routers_of(
        fleet,
        second,
        [f"{ip}/24" for ip in addresses(admin, ext.id, {taker.external_gateway.port_id}, 1)],
        "back",
    )
    for s in net(alice).ListSubnets(pb.ListSubnetsRequest(network_id=n.id)).subnets:
        remove_if(alice, r.id, s.id)
    assert len(ext_ports(admin, ext.id)) == 2  # taker and the router's gateway
    routers_of(fleet, second, [], "no interface, no SNAT")
    for i in (kept, again):
        compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=i.id))
    for i in (kept, again):
        wait_gone(alice, i.id)
    net(alice).DeleteRouter(pb.DeleteRouterRequest(id=r.id))
    net(bob).DeleteRouter(pb.DeleteRouterRequest(id=taker.id))
    assert ext_ports(admin, ext.id) == set()


def addresses(admin: Any, ext_id: str, without: set[str], expect: int = 1) -> list[str]:
    """The IPv4 addresses of the external network's ports other than
    `without`, less the router gateways' (the nodes' SNAT addresses)."""
    routers = {
        r.external_gateway.port_id
        for r in net(admin).ListRouters(pb.ListRoutersRequest(page_size=100)).routers
    }
    out = [
        ip.ip_address
        for p in net(admin).ListPorts(pb.ListPortsRequest(network_id=ext_id, page_size=100)).ports
        if p.id not in without and p.id not in routers
        for ip in p.fixed_ips
        if ":" not in ip.ip_address
    ]
    assert len(out) == expect, out
    return out
