"""Networks end to end through the real controller, with real libvirt and a
qemu (TCG) guest on this machine: a guest on a new dual-stack network gets,
by DHCP, exactly the fixed IP of its port, and by SLAAC from the node's router
advertisements exactly its port's IPv6 address; the host reaches it on the bridge as its
security group allows (the default group: not at all from the host; a tcp/80
rule opens the guest's HTTP server, an icmp rule lets ping through); deleting
the server and the network leaves no bridge, dnsmasq or nftables rule."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import network_pb2_grpc
from noded.network import bridge_name, tap_name
from noded.network.names import owner_tag, table_name
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, virsh
from tests.harness import Client
from tests.netutil import need_root_networking, ping, state_dir
from tests.test_compute_e2e import compute, wait_console, wait_state
from tests.waits import diagnose, wait_gone, wait_until

pytestmark = pytest.mark.e2e

CIDR, GATEWAY = "10.214.9.0/24", "10.214.9.1"
CIDR6, GATEWAY6 = "fd00:214:9::/64", "fd00:214:9::1"


def net(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(network_pb2_grpc.NetworkServiceStub)


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    need_root_networking()
    libvirt_and_test_image()
    base = state_dir("kumo-nete2e-")
    state = base / "node"
    try:
        with libvirt_cloud(base, "net-e2e-host", "net.small", reconcile_seconds=3) as c:
            yield c
    finally:
        destroy_guests(str(state))
        # What a failed test may have left of the node's networks.
        from noded.network import NetworkStep

        NetworkStep(state).teardown_all()
        shutil.rmtree(base, ignore_errors=True)


def http_get(addr: str, timeout: float = 2.0) -> str:
    """The guest's HTTP answer, or "" when the port does not answer."""
    try:
        with socket.create_connection((addr, 80), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(timeout)
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def dnsmasq_for(bridge: str) -> list[int]:
    """Pids of the dnsmasq serving the bridge."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            proc.name.isdigit()
            and args
            and args[0].endswith(b"dnsmasq")
            and f"--interface={bridge}".encode() in args
        ):
            pids.append(int(proc.name))
    return pids


def test_guest_gets_its_ip_and_security_groups_decide(cloud: dict) -> None:
    admin: Client = cloud["admin"]
    n = net(admin)
    network = n.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="e2e-net")))
    subnet = n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name="e2e-sub", network_id=network.id, ip_version=4, cidr=CIDR, gateway_ip=GATEWAY
            )
        )
    )
    subnet6 = n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name="e2e-sub6",
                network_id=network.id,
                cidr=CIDR6,
                gateway_ip=GATEWAY6,
                ipv6_address_mode=npb.IPV6_ADDRESS_MODE_SLAAC,
            )
        )
    )
    inst = compute(admin).CreateInstance(
        pb.CreateInstanceRequest(
            name="netvm",
            image="kumo-test",
            flavor="net.small",
            networks=[pb.NetworkRequest(network=network.id)],
        )
    )
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    ports = n.ListPorts(npb.ListPortsRequest(instance_id=inst.id)).ports
    assert len(ports) == 1
    port = ports[0]
    by_subnet = {f.subnet_id: f.ip_address for f in port.fixed_ips}
    assert set(by_subnet) == {subnet.id, subnet6.id}
    fixed, fixed6 = by_subnet[subnet.id], by_subnet[subnet6.id]

    # DHCP answers with exactly the port's fixed IP (and the guest says so once);
    # the kernel's SLAAC makes exactly the port's IPv6 address from the RAs.
    text = wait_console(admin, inst.id, r"KUMO-IP: \S+", timeout=180)
    assert re.findall(r"KUMO-IP: (\S+)", text) == [fixed]
    text = wait_console(admin, inst.id, r"KUMO-IP6: \S+", timeout=120)
    assert [ipaddress.ip_address(a) for a in re.findall(r"KUMO-IP6: (\S+)", text)] == [
        ipaddress.ip_address(fixed6)
    ]
    br = bridge_name(network.id)
    assert f"<target dev='{tap_name(port.id)}'/>" in virsh("dumpxml", f"kumo-{inst.id}")
    assert len(dnsmasq_for(br)) == 1

    # The default group: ingress only from its members; the host is none.
    assert not ping(None, fixed)
    assert not ping(None, fixed6)
    assert http_get(fixed, timeout=1) == ""
    group = next(
        g for g in n.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups if g.is_default
    )

    def allow(version: int, protocol: str, port: int = 0) -> npb.SecurityGroupRule:
        rule = npb.SecurityGroupRule(
            security_group_id=group.id,
            direction=npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
            ip_version=version,
            protocol=protocol,
            port_range_min=port,
            port_range_max=port,
        )
        return n.CreateSecurityGroupRule(npb.CreateSecurityGroupRuleRequest(rule=rule))

    http_rule = allow(4, "tcp", 80)
    body = wait_until(
        lambda: http_get(fixed),
        what="tcp/80 open",
        base=60,
        step=0.5,
        explain=lambda: diagnose(admin, inst.id),
    )
    assert f"instance-id: {inst.id}" in body
    assert not ping(None, fixed), "only tcp/80 is open"
    allow(4, "icmp")
    wait_until(
        lambda: ping(None, fixed),
        what="the host pings the guest",
        base=60,
        step=0.5,
        explain=lambda: diagnose(admin, inst.id),
    )
    assert not ping(None, fixed6), "the icmp rule is IPv4's"
    allow(6, "icmpv6")
    wait_until(
        lambda: ping(None, fixed6),
        what="the host pings the guest over IPv6",
        base=60,
        step=0.5,
        explain=lambda: diagnose(admin, inst.id),
    )
    n.DeleteSecurityGroupRule(npb.DeleteSecurityGroupRuleRequest(id=http_rule.id))
    wait_until(
        lambda: http_get(fixed, timeout=1) == "",
        what="tcp/80 closed again",
        base=60,
        step=0.5,
        explain=lambda: diagnose(admin, inst.id),
    )

    # Delete the server, then the network: nothing of it is left on the host.
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_gone(admin, inst.id)
    n.DeleteSubnet(npb.DeleteSubnetRequest(id=subnet.id))
    n.DeleteSubnet(npb.DeleteSubnetRequest(id=subnet6.id))
    n.DeleteNetwork(npb.DeleteNetworkRequest(id=network.id))
    table = table_name(owner_tag(str(cloud["state"].resolve())))

    def left() -> list[str]:
        """What of the network is still on the host."""
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        found = {
            "bridge": br in links,
            "tap": tap_name(port.id) in links,
            "dnsmasq": bool(dnsmasq_for(br)),
            "nft table": table in tables,
        }
        return [what for what, there in found.items() if there]

    def clean() -> bool:
        return not left()

    wait_until(
        clean,
        what="no bridge, tap, dnsmasq or nft table left",
        base=60,
        step=0.5,
        explain=lambda: f"left: {left()}\n{diagnose(admin, inst.id)}",
    )
