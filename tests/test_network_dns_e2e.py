"""DNS for guests end to end: real controller, real noded (libvirt, qemu
TCG), two test-image guests on one network. A test resolver in a "LAN"
namespace joined to this host by a veth answers lan.test (and nothing else);
the node forwards to it (`--dns-server`). The guest gets its gateway as
resolver by DHCP, resolves lan.test through it (forwarded), and its
neighbour's name (answered by the node itself); its config drive gives it its
name in the network's domain. A subnet with its own dns_servers hands those
instead (seen after a reboot renews the lease). The guest runs the lookups
itself (user-data, busybox nslookup) and prints them on its console."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import field_mask_pb2

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import network_pb2_grpc
from noded.network import bridge_name
from tests import netutil
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud
from tests.harness import Client
from tests.test_compute_e2e import compute, wait_console, wait_state
from tests.test_network_e2e import dnsmasq_for
from tests.waits import wait_gone, wait_until

pytestmark = pytest.mark.e2e

CIDR, GATEWAY = "10.216.9.0/24", "10.216.9.1"
# The LAN: this host's end and the test resolver's (TEST-NET-2).
LAN_HOST, LAN_RESOLVER = "198.51.100.5", "198.51.100.6"
LAN_NS = "kdnse2e-lan"

# The guest's lookups, through what /etc/resolv.conf says (its DHCP lease);
# only when that is the gateway (with the subnet's own server, which this
# host does not route to, they would only time out).
ASK = f"""#!/bin/sh
i=0
while ! grep -q nameserver /etc/resolv.conf 2>/dev/null && [ $i -lt 120 ]; do i=$((i + 1)); sleep 1; done
echo "RESOLV: $(grep nameserver /etc/resolv.conf | tr '\\n' ' ')"
grep -q "nameserver {GATEWAY}" /etc/resolv.conf || exit 0
for name in lan.test dns-peer dns-peer.dnse2e-net.kumo nosuch.dnse2e-net.kumo; do
  i=0
  a=""
  while [ $i -lt 15 ]; do
    a=$(nslookup "$name" 2>/dev/null | sed -n '/^Name:/,$ s/^Address:[[:space:]]*//p' | head -n 1)
    [ -n "$a" ] && break
    i=$((i + 1)); sleep 2
  done
  echo "RESOLVED $name ${{a:-none}}"
done
"""


def net(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(network_pb2_grpc.NetworkServiceStub)


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    netutil.need_root_networking()
    libvirt_and_test_image()
    base = netutil.state_dir("kumo-dnse2e-")
    state = base / "node"
    spaces = netutil.Namespaces()
    try:
        spaces.add(LAN_NS)
        netutil.sh("ip", "link", "del", "kdnse2e-h", check=False)
        netutil.sh("ip", "link", "add", "kdnse2e-h", "type", "veth", "peer", "name", "kdnse2e-l")
        netutil.sh("ip", "link", "set", "kdnse2e-l", "netns", LAN_NS)
        netutil.sh("ip", "addr", "add", f"{LAN_HOST}/30", "dev", "kdnse2e-h")
        netutil.sh("ip", "link", "set", "kdnse2e-h", "up")
        netutil.ns(LAN_NS, "ip", "addr", "add", f"{LAN_RESOLVER}/30", "dev", "kdnse2e-l")
        netutil.ns(LAN_NS, "ip", "link", "set", "kdnse2e-l", "up")
        log = netutil.lan_resolver(LAN_NS, LAN_RESOLVER, base)
        with libvirt_cloud(
            base, "dns-e2e-host", "dns.small", reconcile_seconds=3, node_args=["--dns-server", LAN_RESOLVER]
        ) as c:
            c["lan_log"] = log
            yield c
    finally:
        destroy_guests(str(state))
        from noded.network import NetworkStep

        NetworkStep(state).teardown_all()
        spaces.cleanup()
        netutil.sh("ip", "link", "del", "kdnse2e-h", check=False)
        shutil.rmtree(base, ignore_errors=True)


def resolved(text: str) -> dict[str, str]:
    return dict(re.findall(r"RESOLVED (\S+) (\S+)", text))


def test_guest_resolves_through_its_subnets_resolver(cloud: dict) -> None:
    admin: Client = cloud["admin"]
    n = net(admin)
    network = n.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="dnse2e-net")))
    subnet = n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name="dnse2e-sub", network_id=network.id, ip_version=4, cidr=CIDR, gateway_ip=GATEWAY
            )
        )
    )
    assert list(subnet.dns_servers) == []  # nothing named: the gateway is the resolver
    nic = [pb.NetworkRequest(network=network.id)]
    peer = compute(admin).CreateInstance(
        pb.CreateInstanceRequest(name="DNS-Peer", image="kumo-test", flavor="dns.small", networks=nic)
    )
    asker = compute(admin).CreateInstance(
        pb.CreateInstanceRequest(
            name="dns-asker", image="kumo-test", flavor="dns.small", networks=nic, user_data=ASK.encode()
        )
    )
    for inst in (peer, asker):
        wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    peer_ip = wait_console(admin, peer.id, r"KUMO-IP: \S+", timeout=180)
    peer_ip = re.findall(r"KUMO-IP: (\S+)", peer_ip)[0]
    assert [peer_ip] == list(peer.nics[0].ip_addresses)

    # The node's resolver forwards to the configured server.
    [pid] = dnsmasq_for(bridge_name(network.id))
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert f"--server={LAN_RESOLVER}".encode() in args and b"--local=/dnse2e-net.kumo/" in args

    text = wait_console(admin, asker.id, r"RESOLVED nosuch\S* \S+", timeout=300)
    assert f"RESOLV: nameserver {GATEWAY}" in text
    # Its config drive named it in the network's domain (the image sets it).
    assert "hostname: dns-asker.dnse2e-net.kumo" in text
    assert resolved(text) == {
        "lan.test": "192.0.2.10",  # forwarded to the LAN's resolver
        "dns-peer": peer_ip,  # the neighbour, by the node itself (lower-cased)
        "dns-peer.dnse2e-net.kumo": peer_ip,
        "nosuch.dnse2e-net.kumo": "none",
    }
    seen = Path(cloud["lan_log"]).read_text()
    assert "lan.test" in seen and "dnse2e-net.kumo" not in seen  # the network's names stay on the node

    # The subnet names its own server: DHCP hands that (a reboot renews the lease).
    n.UpdateSubnet(
        npb.UpdateSubnetRequest(
            subnet=npb.Subnet(id=subnet.id, dns_servers=[LAN_RESOLVER]),
            update_mask=field_mask_pb2.FieldMask(paths=["dns_servers"]),
        )
    )

    def hands_own_server() -> bool:
        pids = dnsmasq_for(bridge_name(network.id))
        try:
            cmd = Path(f"/proc/{pids[0]}/cmdline").read_bytes() if len(pids) == 1 else b""
        except OSError:
            return False
        return f"option:dns-server,{LAN_RESOLVER}".encode() in cmd

    wait_until(hands_own_server, what="dnsmasq hands the subnet's own server", base=60)
    [pid] = dnsmasq_for(bridge_name(network.id))
    assert not [
        a for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a.startswith(b"--server=")
    ]
    compute(admin).RebootInstance(pb.RebootInstanceRequest(id=asker.id, type=pb.REBOOT_TYPE_HARD))
    wait_console(admin, asker.id, rf"RESOLV: nameserver {re.escape(LAN_RESOLVER)}", timeout=240)

    for inst in (peer, asker):
        compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    for inst in (peer, asker):
        wait_gone(admin, inst.id)
    n.DeleteSubnet(npb.DeleteSubnetRequest(id=subnet.id))
    n.DeleteNetwork(npb.DeleteNetworkRequest(id=network.id))
