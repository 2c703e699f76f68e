"""Instances with NICs against real kumo-noded processes (fake driver): ports
made and bound at create, what nodes are told (networks, VXLAN peers, ports,
security groups), ports freed when the instance goes, and creates that fail
leaving nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import network_pb2 as pb
from tests.cloudutil import fake_cloud
from tests.harness import Client, error_reason, make_user, rpc_error
from tests.nodeutil import wait_for
from tests.test_compute_fake import compute, wait_gone
from tests.test_networks import eui64, make_network, make_port, make_subnet, mask, net

NODES = 2


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
        "KUMO_QUOTA_INSTANCES": "6",
    }
    with fake_cloud(tmp_path_factory.mktemp("netfleet"), NODES, "netfake", env) as c:
        image = c.public_image("tiny")
        c.flavor("m1.tiny", vcpus=1, ram_mb=512)
        c.flavor("m1.huge", vcpus=64, ram_mb=512)
        admin, ctl = c.admin, c.ctl
        a = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="nf-a")))
        b = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="nf-b")))
        make_user(admin, a.id, "nf-alice", idpb.ROLE_MEMBER)
        make_user(admin, b.id, "nf-bob", idpb.ROLE_MEMBER)
        yield {
            "cloud": c,
            "ctl": ctl,
            "admin": admin,
            "image": image,
            "states": c.node_states,
            "alice": ctl.login("nf-alice", "password-123"),
            "bob": ctl.login("nf-bob", "password-123"),
        }


def server(fleet: dict[str, Any], name: str, **kw: Any) -> cpb.CreateInstanceRequest:
    return cpb.CreateInstanceRequest(name=name, image=fleet["image"].id, flavor="m1.tiny", **kw)


def desired(fleet: dict[str, Any], node_id: str) -> dict[str, Any]:
    path = fleet["states"][node_id] / "desired.json"
    return json.loads(path.read_text())["state"] if path.exists() else {}


def wait_desired(fleet: dict[str, Any], node_id: str, pred: Any, what: str) -> dict[str, Any]:
    return wait_for(lambda: (d := desired(fleet, node_id)) and pred(d) and d, what=what)


def test_instances_get_ports_and_nodes_get_networks(fleet: dict[str, Any]) -> None:
    alice = fleet["alice"]
    n = make_network(alice, "app")
    sub = make_subnet(alice, n.id, "app-v4", "10.80.0.0/29", dns_servers=["10.80.0.1"])
    group = compute(alice).CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="apart", policy=cpb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
        )
    )
    nic = [cpb.NetworkRequest(network="app")]
    i1 = compute(alice).CreateInstance(server(fleet, "web1", networks=nic, server_group_id=group.id))
    i2 = compute(alice).CreateInstance(
        server(
            fleet,
            "web2",
            networks=[cpb.NetworkRequest(network=n.id, fixed_ip="10.80.0.6")],
            server_group_id=group.id,
        )
    )
    assert i1.node_id != i2.node_id
    assert (
        len(i1.nics) == 1 and i1.nics[0].network_id == n.id and list(i1.nics[0].ip_addresses) == ["10.80.0.2"]
    )
    assert list(i2.nics[0].ip_addresses) == ["10.80.0.6"]
    got = compute(alice).GetInstance(cpb.GetInstanceRequest(id=i1.id))
    assert got.nics == i1.nics
    listed = {i.id: i for i in compute(alice).ListInstances(cpb.ListInstancesRequest()).instances}
    assert listed[i2.id].nics == i2.nics
    port1 = net(alice).GetPort(pb.GetPortRequest(id=i1.nics[0].port_id))
    assert (port1.state, port1.instance_id, port1.node_id) == (pb.PORT_STATE_ACTIVE, i1.id, i1.node_id)
    assert port1.mac_address == i1.nics[0].mac_address
    default = net(alice).ListSecurityGroups(pb.ListSecurityGroupsRequest(name="default")).security_groups[0]
    assert list(port1.security_group_ids) == [default.id]

    # The node of web1 is told: the port, the network with web2's node as its
    # VXLAN peer, the default group with both members' addresses.
    def complete(d: dict[str, Any]) -> bool:
        nets = d.get("networks", [])
        return (
            bool(nets)
            and bool(nets[0].get("peers"))
            and len(d.get("securityGroups", [{}])[0].get("memberIps", [])) == 2
        )

    d = wait_desired(fleet, i1.node_id, complete, "web1's node told about its network")
    [port] = d["ports"]
    assert port["id"] == port1.id and port["macAddress"] == port1.mac_address and port["instanceId"] == i1.id
    assert port["fixedIps"] == [{"subnetId": sub.id, "ipAddress": "10.80.0.2"}]
    assert port["securityGroupIds"] == [default.id]
    assert port["dnsName"] == "web1"
    [inst] = [x for x in d["instances"] if x["id"] == i1.id]
    assert inst["portIds"] == [port1.id]
    [network] = d["networks"]
    assert network["id"] == n.id and network["vni"] == n.vni and network["mtu"] == 1450
    assert network["subnets"] == [
        {
            "id": sub.id,
            "cidr": "10.80.0.0/29",
            "ipVersion": 4,
            "gatewayIp": "10.80.0.1",
            "dnsServers": ["10.80.0.1"],
        }
    ]
    # Its resolver's names: the network's domain, and every port that a
    # node runs, web2's on the other node too.
    assert network["dnsDomain"] == "app.kumo"
    assert sorted(network["dnsRecords"], key=lambda r: r["hostname"]) == [
        {"hostname": "web1", "ipAddresses": ["10.80.0.2"]},
        {"hostname": "web2", "ipAddresses": ["10.80.0.6"]},
    ]
    [peer] = network["peers"]
    assert peer["nodeId"] == i2.node_id and peer["macAddresses"] == [i2.nics[0].mac_address]
    assert peer["tunnelIp"] == "127.0.0.1"
    [sg] = d["securityGroups"]
    assert sg["id"] == default.id and sorted(sg["memberIps"]) == ["10.80.0.2", "10.80.0.6"]
    assert {(r["direction"], r.get("remoteGroupId", "")) for r in sg["rules"]} == {
        ("egress", ""),
        ("ingress", default.id),
    }

    # A rule change reaches both nodes.
    ssh = net(alice).CreateSecurityGroupRule(
        pb.CreateSecurityGroupRuleRequest(
            rule=pb.SecurityGroupRule(
                security_group_id=default.id,
                direction=pb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
            )
        )
    )
    for node_id in (i1.node_id, i2.node_id):
        wait_desired(
            fleet,
            node_id,
            lambda d: any(r["id"] == ssh.id for r in d["securityGroups"][0]["rules"]),
            "the new rule on every node",
        )

    # A given port: bound at create, unbound (kept) when the instance goes.
    given = make_port(alice, n.id, name="given")
    i3 = compute(alice).CreateInstance(server(fleet, "web3", networks=[cpb.NetworkRequest(port_id=given.id)]))
    assert [x.port_id for x in i3.nics] == [given.id]
    exc = rpc_error(
        compute(alice).CreateInstance, server(fleet, "web4", networks=[cpb.NetworkRequest(port_id=given.id)])
    )
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.FAILED_PRECONDITION, "PORT_IN_USE")
    exc = rpc_error(net(alice).DeletePort, pb.DeletePortRequest(id=given.id))
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.FAILED_PRECONDITION, "PORT_IN_USE")
    exc = rpc_error(net(alice).DeleteNetwork, pb.DeleteNetworkRequest(id=n.id))
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.FAILED_PRECONDITION, "NETWORK_IN_USE")
    exc = rpc_error(net(alice).DeleteSubnet, pb.DeleteSubnetRequest(id=sub.id))
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.FAILED_PRECONDITION, "SUBNET_IN_USE")

    for inst_ in (i1, i3):
        compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=inst_.id))
    for inst_ in (i1, i3):
        wait_gone(alice, inst_.id)
    kept = net(alice).GetPort(pb.GetPortRequest(id=given.id))
    assert (kept.state, kept.instance_id) == (pb.PORT_STATE_DOWN, "")
    assert rpc_error(net(alice).GetPort, pb.GetPortRequest(id=port1.id)).code() == grpc.StatusCode.NOT_FOUND
    # web2's node no longer has web1's node as a peer, and the kept (unbound)
    # port is no longer a group member there; web1's node has no network.
    wait_desired(
        fleet,
        i2.node_id,
        lambda d: not d["networks"][0].get("peers") and d["securityGroups"][0]["memberIps"] == ["10.80.0.6"],
        "peer and members gone",
    )
    wait_desired(fleet, i1.node_id, lambda d: not d.get("networks") and not d.get("ports"), "network gone")
    # The freed address is handed out again.
    again = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="10.80.0.2")])
    net(alice).DeletePort(pb.DeletePortRequest(id=again.id))
    compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=i2.id))
    wait_gone(alice, i2.id)
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    assert rpc_error(net(alice).GetPort, pb.GetPortRequest(id=given.id)).code() == grpc.StatusCode.NOT_FOUND
    compute(alice).DeleteServerGroup(cpb.DeleteServerGroupRequest(id=group.id))


def ports_on(client: Client, network_id: str) -> list[pb.Port]:
    return list(net(client).ListPorts(pb.ListPortsRequest(network_id=network_id)).ports)


def test_failed_creates_leave_nothing_behind(fleet: dict[str, Any]) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    c = compute(alice)
    n = make_network(alice, "strict")
    make_subnet(alice, n.id, "strict-v4", "10.81.0.0/29")
    cases = [
        ([cpb.NetworkRequest(network="nope")], [], grpc.StatusCode.NOT_FOUND, "NETWORK_NOT_FOUND"),
        (
            [cpb.NetworkRequest(network=n.id, port_id=n.id)],
            [],
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        ([cpb.NetworkRequest()], [], grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (
            [cpb.NetworkRequest(network=n.id, fixed_ip="10.99.0.3")],
            [],
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        (
            [cpb.NetworkRequest(network=n.id, fixed_ip="bad")],
            [],
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        (
            [cpb.NetworkRequest(port_id="00000000-0000-4000-8000-000000000000")],
            [],
            grpc.StatusCode.NOT_FOUND,
            "PORT_NOT_FOUND",
        ),
        (
            [cpb.NetworkRequest(network=n.id)],
            ["no-such-group"],
            grpc.StatusCode.NOT_FOUND,
            "SECURITY_GROUP_NOT_FOUND",
        ),
        ([], ["default"], grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ]
    for nics, groups, code, reason in cases:
        exc = rpc_error(c.CreateInstance, server(fleet, "bad", networks=nics, security_groups=groups))
        assert (exc.code(), error_reason(exc)) == (code, reason), (nics, groups, exc.details())
    # bob cannot boot on alice's private network.
    exc = rpc_error(
        compute(bob).CreateInstance, server(fleet, "bobs", networks=[cpb.NetworkRequest(network=n.id)])
    )
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.NOT_FOUND, "NETWORK_NOT_FOUND")
    # No valid host, after the NICs were resolved: nothing made.
    exc = rpc_error(
        c.CreateInstance,
        cpb.CreateInstanceRequest(
            name="huge",
            image=fleet["image"].id,
            flavor="m1.huge",
            networks=[cpb.NetworkRequest(network=n.id)],
        ),
    )
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_VALID_HOST")
    assert ports_on(alice, n.id) == []
    # The pool (5 addresses) runs out on the sixth NIC: no instance, no port.
    exc = rpc_error(c.CreateInstance, server(fleet, "many", networks=[cpb.NetworkRequest(network=n.id)] * 6))
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "IP_POOL_EXHAUSTED")
    assert ports_on(alice, n.id) == []
    assert not [i for i in c.ListInstances(cpb.ListInstancesRequest()).instances if i.name == "many"]
    # A taken fixed IP.
    taken = make_port(alice, n.id, fixed_ips=[pb.PortFixedIp(ip_address="10.81.0.3")])
    exc = rpc_error(
        c.CreateInstance,
        server(fleet, "dup", networks=[cpb.NetworkRequest(network=n.id, fixed_ip="10.81.0.3")]),
    )
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.ALREADY_EXISTS, "IP_ADDRESS_IN_USE")
    # Quota (6 instances): the 7th create fails and leaves no port.
    made = [c.CreateInstance(server(fleet, f"q{i}")) for i in range(6)]
    exc = rpc_error(c.CreateInstance, server(fleet, "q6", networks=[cpb.NetworkRequest(network=n.id)]))
    assert (exc.code(), error_reason(exc)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert [p.id for p in ports_on(alice, n.id)] == [taken.id]
    for inst in made:
        c.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    for inst in made:
        wait_gone(alice, inst.id)
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))


def test_peers_follow_a_moved_tunnel(fleet: dict[str, Any]) -> None:
    """A node that comes back from another address is the new VXLAN peer of
    the nodes sharing its networks at once, not at the next change there."""
    alice, cloud = fleet["alice"], fleet["cloud"]
    n = make_network(alice, "moving")
    make_subnet(alice, n.id, "moving-v4", "10.83.0.0/29")
    group = compute(alice).CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="spread", policy=cpb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
        )
    )
    nic = [cpb.NetworkRequest(network="moving")]
    i1, i2 = (
        compute(alice).CreateInstance(server(fleet, name, networks=nic, server_group_id=group.id))
        for name in ("mv1", "mv2")
    )

    def peer_at(ip: str):  # type: ignore[no-untyped-def]
        return lambda d: [p["tunnelIp"] for n in d.get("networks", []) for p in n.get("peers", [])] == [ip]

    wait_desired(fleet, i1.node_id, peer_at("127.0.0.1"), "mv2's node as the peer")
    [proc] = [p for p in cloud.procs if p.state_dir == fleet["states"][i2.node_id]]
    plain = list(proc.args)
    try:
        proc.stop()
        proc.args = [*plain, "--tunnel-ip", "127.0.0.2"]
        proc.start()
        wait_desired(fleet, i1.node_id, peer_at("127.0.0.2"), "the peer at its new address")
    finally:
        proc.stop()
        proc.args = plain
        proc.start()
    wait_desired(fleet, i1.node_id, peer_at("127.0.0.1"), "the peer back at its old address")
    for inst in (i1, i2):
        compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    for inst in (i1, i2):
        wait_gone(alice, inst.id)
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    compute(alice).DeleteServerGroup(cpb.DeleteServerGroupRequest(id=group.id))


def test_slaac_subnet_reaches_the_node(fleet: dict[str, Any]) -> None:
    """An instance on a dual-stack network: its port holds the EUI-64 address
    of its MAC, and its node is told which subnet is SLAAC."""
    alice = fleet["alice"]
    n = make_network(alice, "dual")
    v4 = make_subnet(alice, n.id, "dual-v4", "10.84.0.0/29")
    v6 = make_subnet(alice, n.id, "dual-v6", "2001:db8:84::/64", ipv6_address_mode=pb.IPV6_ADDRESS_MODE_SLAAC)
    inst = compute(alice).CreateInstance(
        server(
            fleet,
            "dual1",
            networks=[
                cpb.NetworkRequest(network="dual"),
                cpb.NetworkRequest(network="dual", fixed_ip="2001:db8:84::f816:3eff:fe84:8484"),
            ],
        )
    )
    first, second = inst.nics
    assert list(first.ip_addresses) == ["10.84.0.2", eui64(first.mac_address, v6.cidr)]
    assert (second.mac_address, list(second.ip_addresses)) == (
        "fa:16:3e:84:84:84",
        [eui64("fa:16:3e:84:84:84", v6.cidr)],  # 2001:db8:84:0:f816:3eff:fe84:8484
    )
    d = wait_desired(fleet, inst.node_id, lambda d: bool(d.get("networks")), "the dual-stack network")
    assert [(s["id"], s.get("ipv6Slaac", False)) for s in d["networks"][0]["subnets"]] == [
        (v4.id, False),
        (v6.id, True),
    ]
    fixed = {p["macAddress"]: [f["ipAddress"] for f in p["fixedIps"]] for p in d["ports"]}
    assert fixed[first.mac_address] == list(first.ip_addresses)
    compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    wait_gone(alice, inst.id)
    wait_desired(fleet, inst.node_id, lambda d: not d.get("networks"), "the network gone from the node")
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))


def test_shared_network_boot(fleet: dict[str, Any]) -> None:
    admin, bob = fleet["admin"], fleet["bob"]
    n = make_network(admin, "public-net", shared=True, external_routable=True)
    make_subnet(admin, n.id, "public-v4", "10.82.0.0/24")
    web = net(bob).CreateSecurityGroup(
        pb.CreateSecurityGroupRequest(security_group=pb.SecurityGroup(name="web"))
    )
    inst = compute(bob).CreateInstance(
        server(fleet, "bob1", networks=[cpb.NetworkRequest(network="public-net")], security_groups=["web"])
    )
    port = net(bob).GetPort(pb.GetPortRequest(id=inst.nics[0].port_id))
    assert port.project_id != n.project_id and list(port.security_group_ids) == [web.id]
    d = wait_desired(fleet, inst.node_id, lambda d: bool(d.get("networks")), "shared network on the node")
    assert d["networks"][0]["externalRoutable"] is True
    # Changing the MTU reaches the node.
    net(admin).UpdateNetwork(
        pb.UpdateNetworkRequest(network=pb.Network(id=n.id, mtu=1400), update_mask=mask("mtu"))
    )
    wait_desired(fleet, inst.node_id, lambda d: d["networks"][0]["mtu"] == 1400, "new MTU on the node")
    compute(bob).DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    wait_gone(bob, inst.id)
    net(admin).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))


def test_cli_server_create_with_network(fleet: dict[str, Any], tmp_path: Path) -> None:
    from tests.harness import cli_login, run_cli

    alice = fleet["alice"]
    assert cli_login(fleet["ctl"], tmp_path, "nf-alice", "password-123").returncode == 0
    env = {"KUMO_CONFIG_DIR": str(tmp_path)}
    n = make_network(alice, "clinet")
    make_subnet(alice, n.id, "clinet-v4", "10.83.0.0/24")
    port = make_port(alice, n.id, name="second")
    done = run_cli(
        ["server", "create", "clivm", "--image", "tiny", "--flavor", "m1.tiny", "--network", "clinet",
         "--port", port.id, "--security-group", "default", "-o", "json"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    inst = json.loads(done.stdout)
    assert [x["port_id"] for x in inst["nics"]][1] == port.id
    assert inst["nics"][0]["ip_addresses"] == ["10.83.0.3"]  # the given port holds .2
    shown = run_cli(["server", "show", "clivm"], env)
    assert shown.returncode == 0 and "10.83.0.3" in shown.stdout
    compute(alice).DeleteInstance(cpb.DeleteInstanceRequest(id=inst["id"]))
    wait_gone(alice, inst["id"])
    net(alice).DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
