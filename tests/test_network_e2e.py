"""Networks end to end through the real controller, with real libvirt and a
qemu (TCG) guest on this machine: a guest on a new network gets, by DHCP,
exactly the fixed IP of its port; the host reaches it on the bridge as its
security group allows (the default group: not at all from the host; a tcp/80
rule opens the guest's HTTP server, an icmp rule lets ping through); deleting
the server and the network leaves no bridge, dnsmasq or nftables rule."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import network_pb2_grpc
from noded.network import bridge_name, tap_name
from noded.network.names import owner_tag, table_name
from tests.harness import ROOT, Client, ControllerProc
from tests.netutil import need_root_networking, ping
from tests.nodeutil import NodedProc, make_token, nodes, run_noded, wait_for
from tests.test_compute_e2e import _list_nodes, compute, virsh, wait_console, wait_gone, wait_state
from tests.test_images import make_image

pytestmark = pytest.mark.e2e

IMAGE = ROOT / "images" / "kumo-test.qcow2"
CIDR, GATEWAY = "10.214.9.0/24", "10.214.9.1"


def net(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(network_pb2_grpc.NetworkServiceStub)


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    need_root_networking()
    start = subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True, text=True)
    assert start.returncode == 0, f"libvirtd must run for this test: {start.stderr}"
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(IMAGE)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    # Under /var/tmp with 0755: qemu (libvirt-qemu) and dnsmasq (nobody) read below.
    base = Path(tempfile.mkdtemp(prefix="kumo-nete2e-", dir="/var/tmp"))
    base.chmod(0o755)
    data = base / "ctl"
    data.mkdir()
    ctl = ControllerProc(
        data, extra_env={"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    )
    ctl.start()
    node = None
    state = base / "node"
    try:
        admin = ctl.login()
        joined = run_noded(
            ["join", ctl.endpoint, make_token(admin), "--name", "net-e2e-host", "--state-dir", str(state)]
        )
        assert joined.returncode == 0, joined.stderr
        node = NodedProc(state, ["--virt-type", "qemu", "--reconcile-seconds", "3"]).start()
        wait_for(
            lambda: any(n.state == 1 for n in nodes(admin).ListNodes(_list_nodes()).nodes), what="node READY"
        )
        image = make_image(admin, "kumo-test", IMAGE.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        compute(admin).CreateFlavor(
            pb.CreateFlavorRequest(
                flavor=pb.Flavor(name="net.small", vcpus=1, ram_mb=256, disk_gb=1, is_public=True)
            )
        )
        yield {"ctl": ctl, "admin": admin, "image": image, "state": state, "node": node}
    finally:
        if node is not None:
            node.stop()
        ctl.stop()
        for line in virsh("list", "--all", "--name").split():
            if line.startswith("kumo-") and str(state) in virsh("dumpxml", line):
                virsh("destroy", line)
                virsh("undefine", line)
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
    fixed = port.fixed_ips[0].ip_address
    assert port.fixed_ips[0].subnet_id == subnet.id

    # DHCP answers with exactly the port's fixed IP (and the guest says so once).
    text = wait_console(admin, inst.id, r"KUMO-IP: \S+", timeout=180)
    assert re.findall(r"KUMO-IP: (\S+)", text) == [fixed]
    br = bridge_name(network.id)
    assert f"<target dev='{tap_name(port.id)}'/>" in virsh("dumpxml", f"kumo-{inst.id}")
    assert len(dnsmasq_for(br)) == 1

    # The default group: ingress only from its members; the host is none.
    assert not ping(None, fixed)
    assert http_get(fixed, timeout=1) == ""
    group = next(
        g for g in n.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups if g.is_default
    )
    ingress = npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS
    http_rule = n.CreateSecurityGroupRule(
        npb.CreateSecurityGroupRuleRequest(
            rule=npb.SecurityGroupRule(
                security_group_id=group.id,
                direction=ingress,
                ip_version=4,
                protocol="tcp",
                port_range_min=80,
                port_range_max=80,
            )
        )
    )
    body = wait_for(lambda: http_get(fixed), timeout=60, step=0.5, what="tcp/80 open")
    assert f"instance-id: {inst.id}" in body
    assert not ping(None, fixed), "only tcp/80 is open"
    n.CreateSecurityGroupRule(
        npb.CreateSecurityGroupRuleRequest(
            rule=npb.SecurityGroupRule(
                security_group_id=group.id, direction=ingress, ip_version=4, protocol="icmp"
            )
        )
    )
    wait_for(lambda: ping(None, fixed), timeout=60, step=0.5, what="the host pings the guest")
    n.DeleteSecurityGroupRule(npb.DeleteSecurityGroupRuleRequest(id=http_rule.id))
    wait_for(lambda: http_get(fixed, timeout=1) == "", timeout=60, step=0.5, what="tcp/80 closed again")

    # Delete the server, then the network: nothing of it is left on the host.
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_gone(admin, inst.id)
    n.DeleteSubnet(npb.DeleteSubnetRequest(id=subnet.id))
    n.DeleteNetwork(npb.DeleteNetworkRequest(id=network.id))
    table = table_name(owner_tag(str(cloud["state"].resolve())))

    def clean() -> bool:
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        return (
            br not in links and tap_name(port.id) not in links and not dnsmasq_for(br) and table not in tables
        )

    wait_for(clean, timeout=60, step=0.5, what="no bridge, tap, dnsmasq or nft table left")
