"""Routers and floating IPs end to end: the real controller, a real noded
(libvirt, a qemu TCG guest), and a "LAN" network namespace joined by a veth
to the host interface the external network's physical network maps to
(`--physical-network lan=<veth>`): no traffic leaves the machine. From the
LAN, the guest answers ping and TCP through its floating IP as its security
group allows; deleting the floating IP and the router leaves the host's
nftables ruleset, addresses and routes as they were. (The guest's own
traffic out through SNAT is tested with namespace guests in
tests/test_routers_node.py: the test image starts no connection itself.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import network_pb2 as npb
from noded.network import bridge_name
from noded.network.names import owner_tag, table_name
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud
from tests.harness import Client
from tests.netutil import Namespaces, need_root_networking, ns, ping, sh, state_dir
from tests.test_compute_e2e import compute, wait_console, wait_state
from tests.test_network_e2e import net
from tests.waits import diagnose, wait_gone, wait_until

pytestmark = pytest.mark.e2e

LAN_NS, UPLINK = "kre-lan", "kre-up"
EXT_CIDR, LAN_IP = "198.18.77.0/24", "198.18.77.250"
CIDR = "10.215.9.0/24"


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    need_root_networking()
    libvirt_and_test_image()
    base = state_dir("kumo-rte2e-")
    state = base / "node"
    spaces = Namespaces()
    try:
        spaces.add(LAN_NS)
        sh("ip", "link", "del", UPLINK, check=False)
        sh("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", LAN_NS)
        sh("ip", "link", "set", UPLINK, "up")
        ns(LAN_NS, "ip", "link", "set", "eth0", "up")
        ns(LAN_NS, "ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0")
        with libvirt_cloud(
            base,
            "rt-e2e-host",
            "rt.small",
            reconcile_seconds=3,
            node_args=["--physical-network", f"lan={UPLINK}"],
        ) as c:
            yield c
    finally:
        destroy_guests(str(state))
        from noded.network import NetworkStep

        NetworkStep(state).teardown_all()
        spaces.cleanup()
        sh("ip", "link", "del", UPLINK, check=False)
        shutil.rmtree(base, ignore_errors=True)


def host_view(state: Path, bridges: list[str]) -> dict[str, str]:
    """This node daemon's share of the host: its nftables tables, and the
    addresses, routes (every table) and rules on its bridges and the uplink.
    Other daemons on this host (other tests) come and go; they are left out."""

    def out(*args: str) -> str:
        return subprocess.run(list(args), capture_output=True, text=True).stdout

    table = table_name(owner_tag(str(state.resolve())))
    devices = (*bridges, UPLINK)

    def ours(line: str) -> bool:
        return any(re.search(rf"\b{re.escape(d)}\b", line) for d in devices)

    routes = [
        line
        for line in out("ip", "route", "show", "table", "all").splitlines()
        if ours(line) and not line.startswith("local fe80::")
    ]
    return {
        "nft": out("nft", "list", "table", "inet", table) + out("nft", "list", "table", "bridge", table),
        "addr": "\n".join(line for line in out("ip", "-br", "addr").splitlines() if ours(line)),
        "route": "\n".join(routes),
        "rule": "\n".join(line for line in out("ip", "rule").splitlines() if ours(line)),
    }


def lan_http(addr: str) -> str:
    got = ns(LAN_NS, "curl", "-s", "-m", "3", f"http://{addr}/", check=False, timeout=15)
    return got.stdout if got.returncode == 0 else ""


def test_lan_reaches_a_guest_through_its_floating_ip(cloud: dict) -> None:
    admin: Client = cloud["admin"]
    n = net(admin)
    ext = n.CreateNetwork(
        npb.CreateNetworkRequest(
            network=npb.Network(
                name="lan", external=True, network_type=npb.NETWORK_TYPE_FLAT, physical_network="lan"
            )
        )
    )
    n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name="lan-v4",
                network_id=ext.id,
                cidr=EXT_CIDR,
                gateway_ip="198.18.77.1",
                allocation_pools=[npb.AllocationPool(start="198.18.77.10", end="198.18.77.50")],
            )
        )
    )
    tenant = n.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="rt-app")))
    sub = n.CreateSubnet(
        npb.CreateSubnetRequest(subnet=npb.Subnet(name="rt-app-v4", network_id=tenant.id, cidr=CIDR))
    )
    inst = compute(admin).CreateInstance(
        pb.CreateInstanceRequest(
            name="rtvm", image="kumo-test", flavor="rt.small", networks=[pb.NetworkRequest(network=tenant.id)]
        )
    )
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    port = n.ListPorts(npb.ListPortsRequest(instance_id=inst.id)).ports[0]
    fixed = port.fixed_ips[0].ip_address
    text = wait_console(admin, inst.id, r"KUMO-IP: \S+", timeout=180)
    assert re.findall(r"KUMO-IP: (\S+)", text) == [fixed]
    bridges = [bridge_name(tenant.id), bridge_name(ext.id)]
    before = host_view(cloud["state"], bridges)

    router = n.CreateRouter(
        npb.CreateRouterRequest(
            router=npb.Router(name="rt", external_gateway=npb.RouterGateway(network_id=ext.id))
        )
    )
    n.AddRouterInterface(npb.AddRouterInterfaceRequest(id=router.id, subnet_id=sub.id))
    fip = n.CreateFloatingIp(
        npb.CreateFloatingIpRequest(floating_ip=npb.FloatingIp(floating_network_id=ext.id, port_id=port.id))
    )
    address = fip.floating_ip_address
    assert address.startswith("198.18.77.") and fip.fixed_ip_address == fixed
    shown = compute(admin).GetInstance(pb.GetInstanceRequest(id=inst.id))
    assert shown.nics[0].floating_ip_address == address
    group = next(
        g for g in n.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups if g.is_default
    )

    def allow(protocol: str, port_no: int = 0) -> npb.SecurityGroupRule:
        rule = npb.SecurityGroupRule(
            security_group_id=group.id,
            direction=npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
            ip_version=4,
            protocol=protocol,
            port_range_min=port_no,
            port_range_max=port_no,
        )
        return n.CreateSecurityGroupRule(npb.CreateSecurityGroupRuleRequest(rule=rule))

    def explain() -> str:
        rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        return f"{rules[-4000:]}\n{diagnose(admin, inst.id)}"

    # The default group admits no one from the LAN; ICMP, then TCP 80 once allowed.
    icmp = allow("icmp")
    wait_until(
        lambda: ping(LAN_NS, address),
        what="the LAN pinging the floating IP",
        base=60,
        step=0.5,
        explain=explain,
    )
    assert lan_http(address) == "", "TCP through the floating IP passed a group without the rule"
    web = allow("tcp", 80)
    body = wait_until(
        lambda: lan_http(address), what="TCP 80 through the floating IP", base=60, step=0.5, explain=explain
    )
    assert f"instance-id: {inst.id}" in body
    # Only the floating IP is reachable from the LAN, not the fixed IP.
    ns(LAN_NS, "ip", "route", "replace", CIDR, "via", router.external_gateway.ip_address or address)
    assert lan_http(fixed) == ""
    ns(LAN_NS, "ip", "route", "del", CIDR, check=False)
    n.DeleteSecurityGroupRule(npb.DeleteSecurityGroupRuleRequest(id=web.id))
    wait_until(
        lambda: lan_http(address) == "", what="TCP 80 closed again", base=60, step=0.5, explain=explain
    )

    # The floating IP and the router go: the host is as it was before them.
    n.DeleteFloatingIp(npb.DeleteFloatingIpRequest(id=fip.id))
    n.RemoveRouterInterface(npb.RemoveRouterInterfaceRequest(id=router.id, subnet_id=sub.id))
    n.DeleteRouter(npb.DeleteRouterRequest(id=router.id))
    n.DeleteSecurityGroupRule(npb.DeleteSecurityGroupRuleRequest(id=icmp.id))  # the group as before, too
    wait_until(
        lambda: host_view(cloud["state"], bridges) == before,
        what="the host's rules, addresses and routes as before",
        base=60,
        step=0.5,
        explain=lambda: "\n".join(
            f"{k} before:\n{before[k]}\nnow:\n{v}"
            for k, v in host_view(cloud["state"], bridges).items()
            if before[k] != v
        ),
    )
    assert not ping(LAN_NS, address)
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_gone(admin, inst.id)
