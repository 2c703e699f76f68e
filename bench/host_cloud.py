"""Two libvirt "hosts" with networks of their own, for the tests and
benchmarks that need a guest's fixed IP and ping across a live migration or
an evacuation: each host is a network namespace on a test LAN
(bench/host_lan.py) running its own libvirtd and kumo-noded
(bench/libvirt_hosts.py), so each has its own bridges, dnsmasq, nftables and
VXLAN devices; the controller's node port listens on the LAN; the tenant
overlay runs between the hosts' LAN addresses."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.host_lan import HostLan
from bench.libvirt_hosts import LibvirtHost
from bench.procs import ROOT, ControllerProc, make_image, make_token, run_noded, wait_for
from kumo.client import Client
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import node_pb2

CIDR, GATEWAY = "10.231.7.0/24", "10.231.7.1"
TEST_IMAGE = ROOT / "images" / "kumo-test.qcow2"


def host_args(host: LibvirtHost, lan_ip: str, extra: list[str]) -> list[str]:
    """`kumo-noded run` flags of a host: live migrations' data to its LAN
    address, its libvirtd reached by its socket (from any namespace)."""
    return [
        "--virt-type",
        "qemu",
        "--reconcile-seconds",
        "3",
        "--migration-address",
        lan_ip,
        "--migration-uri",
        host.uri,
        *extra,
    ]


@dataclass
class HostCloud:
    """A controller and two hosts, "a" and "b" (their LibvirtHost, LAN
    address and node id), with the test image, a flavor and a tenant network
    whose default security group lets ICMP in."""

    base: Path
    ctl: ControllerProc
    admin: Client
    lan: HostLan
    hosts: dict[str, LibvirtHost] = field(default_factory=dict)
    lan_ips: dict[str, str] = field(default_factory=dict)
    node_ids: dict[str, str] = field(default_factory=dict)
    node_args: dict[str, list[str]] = field(default_factory=dict)
    network_id: str = ""
    image_id: str = ""

    @property
    def shared(self) -> Path:
        return self.base / "shared"

    @property
    def instances_path(self) -> Path:
        """Where every host sees its own instances directory (its state dir, bind-mounted)."""
        return self.base / "node"

    def netns(self, h: str) -> str:
        return self.hosts[h].netns

    def state(self, h: str) -> Path:
        return self.hosts[h].state_dir

    def start_host(self, h: str) -> LibvirtHost:
        """(Re)starts host `h`: its libvirtd and its kumo-noded."""
        return self.hosts[h].start(self.node_args[h])

    def virsh(self, h: str, *args: str) -> str:
        return subprocess.run(
            ["virsh", "-c", self.hosts[h].uri, *args], capture_output=True, text=True, timeout=60
        ).stdout

    def hosts_line(self) -> str:
        """Per host, what its libvirtd runs and its noded's last log lines."""
        parts = []
        for h, host in self.hosts.items():
            log = host.log_path.read_text(errors="replace") if host.log_path.exists() else ""
            tail = "\n".join(log.splitlines()[-15:])
            parts.append(f"host {h}: virsh list --all:\n{self.virsh(h, 'list', '--all')}noded log:\n{tail}")
        return "\n".join(parts)


@contextlib.contextmanager
def host_cloud(
    tag: str, flavor: str, node_args: tuple[str, ...] = (), services: tuple[str, ...] = ()
) -> Iterator[HostCloud]:
    """A HostCloud under a fresh directory, with a shared-fs directory both
    hosts see (`shared`); `tag` (unique to the caller's worktree) names its
    namespaces and LAN bridge. `node_args`: more `kumo-noded run` flags of
    both hosts (e.g. an rbd pool's); `services`: addresses of this machine
    the hosts route to through the LAN (e.g. the test Ceph cluster's).
    Needs root, libvirt's binaries and the test image
    (scripts/build-test-image.sh). Everything goes afterwards."""
    # Under /var/tmp, 0755: dnsmasq (as nobody) and qemu (libvirt-qemu) read below it.
    base = Path(tempfile.mkdtemp(prefix=f"kumo-{tag}-", dir="/var/tmp"))
    base.chmod(0o755)
    lan = HostLan(tag).up()
    for sub in ("ctl", "node", "shared"):
        (base / sub).mkdir()
    (base / "shared").chmod(0o755)
    ctl = ControllerProc(
        base / "ctl",
        extra_env={
            "KUMO_NODE_HEARTBEAT_SECONDS": "1",
            "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
            "KUMO_NODE_GRACE_SECONDS": "4",
            "KUMO_SERVER_NAMES": lan.address,
        },
        extra_args=["--node-listen", f"{lan.address}:0"],
    )
    cloud = None
    try:
        ctl.start()
        cloud = HostCloud(base, ctl, ctl.login(), lan)
        for i, h in enumerate(("a", "b")):
            netns = lan.add_host(h, services)
            cloud.lan_ips[h] = lan.hosts[netns]
            state = base / f"node-{h}"
            joined = run_noded(
                [
                    "join",
                    ctl.endpoint,
                    make_token(cloud.admin),
                    "--name",
                    f"{tag}-{h}",
                    "--state-dir",
                    str(state),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            host = LibvirtHost(
                base / f"host-{h}",
                state,
                same_path_as=cloud.instances_path,
                ports=(49600 + 20 * i, 49619 + 20 * i),
                netns=netns,
            )
            cloud.hosts[h] = host
            cloud.node_args[h] = host_args(
                host, cloud.lan_ips[h], ["--shared-fs-dir", str(cloud.shared), *node_args]
            )
            cloud.start_host(h)
        listed = wait_for(
            lambda: len(ready := ready_nodes(cloud.admin)) == 2 and ready,
            # A fresh libvirtd probes qemu's capabilities first (4-8 s quiet); a loaded machine is slower.
            timeout=90 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)),
            step=0.2,
            what=f"both hosts' nodes READY (logs: {', '.join(str(h.log_path) for h in cloud.hosts.values())})",
        )
        cloud.node_ids = {n.name.removeprefix(f"{tag}-"): n.id for n in listed}
        cloud.image_id = make_image(
            cloud.admin, "kumo-test", TEST_IMAGE.read_bytes(), ipb.DISK_FORMAT_QCOW2
        ).id
        cloud.admin.compute.CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(name=flavor, vcpus=1, ram_mb=256, disk_gb=1, is_public=True)
            )
        )
        cloud.network_id = tenant_network(cloud.admin)
        yield cloud
    finally:
        if cloud is not None:
            for host in cloud.hosts.values():
                host.stop()
        ctl.stop()
        lan.down()
        shutil.rmtree(base, ignore_errors=True)


def ready_nodes(admin: Client) -> list[node_pb2.Node]:
    listed = admin.nodes.ListNodes(node_pb2.ListNodesRequest()).nodes
    return [n for n in listed if n.state == node_pb2.NODE_STATE_READY]


def tenant_network(admin: Client) -> str:
    """A network with one IPv4 subnet; the default group lets ICMP in (a user's `allow ping`)."""
    n = admin.networks
    network = n.CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name="hostnet")))
    n.CreateSubnet(
        npb.CreateSubnetRequest(
            subnet=npb.Subnet(
                name="hostnet-v4", network_id=network.id, ip_version=4, cidr=CIDR, gateway_ip=GATEWAY
            )
        )
    )
    group = next(
        g for g in n.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups if g.is_default
    )
    n.CreateSecurityGroupRule(
        npb.CreateSecurityGroupRuleRequest(
            rule=npb.SecurityGroupRule(
                security_group_id=group.id,
                direction=npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
                ip_version=4,
                protocol="icmp",
            )
        )
    )
    return network.id


def fixed_ip(admin: Client, instance_id: str) -> str:
    ports = admin.networks.ListPorts(npb.ListPortsRequest(instance_id=instance_id)).ports
    assert len(ports) == 1, ports
    return ports[0].fixed_ips[0].ip_address
