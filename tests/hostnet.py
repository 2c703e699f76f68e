"""Two libvirt "hosts" with networks of their own, for the end-to-end tests
that need a guest's fixed IP and ping across a live migration or an
evacuation: each host is a network namespace on a test LAN
(bench/host_lan.py) running its own libvirtd and kumo-noded
(bench/libvirt_hosts.py), so each has its own bridges, dnsmasq, nftables and
VXLAN devices; the controller's node port listens on the LAN; the tenant
overlay runs between the hosts' LAN addresses. And a pinger that measures
how long a guest did not answer."""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.host_lan import HostLan
from bench.libvirt_hosts import LibvirtHost
from kumo.v1 import network_pb2 as npb
from tests.cloudutil import TEST_IMAGE, libvirt_and_test_image, make_flavor, ready_nodes
from tests.harness import Client, ControllerProc
from tests.netutil import need_root_networking, state_dir
from tests.nodeutil import make_token, run_noded
from tests.waits import diagnose, wait_until

CIDR, GATEWAY = "10.231.7.0/24", "10.231.7.1"


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

    def host_of(self, node_id: str) -> str:
        return next(h for h, n in self.node_ids.items() if n == node_id)

    def start_host(self, h: str) -> LibvirtHost:
        """(Re)starts host `h`: its libvirtd and its kumo-noded."""
        return self.hosts[h].start(self.node_args[h])

    def virsh(self, h: str, *args: str) -> str:
        return subprocess.run(
            ["virsh", "-c", self.hosts[h].uri, *args], capture_output=True, text=True, timeout=60
        ).stdout

    def explain(self, instance_id: str) -> str:
        """diagnose() and, per host, what its libvirtd runs and its noded's last log lines."""
        parts = [diagnose(self.admin, instance_id)]
        for h, host in self.hosts.items():
            log = host.log_path.read_text(errors="replace") if host.log_path.exists() else ""
            tail = "\n".join(log.splitlines()[-15:])
            parts.append(f"host {h}: virsh list --all:\n{self.virsh(h, 'list', '--all')}noded log:\n{tail}")
        return "\n".join(parts)


@contextlib.contextmanager
def host_cloud(tag: str, flavor: str) -> Iterator[HostCloud]:
    """A HostCloud under a fresh directory, with a shared-fs directory both
    hosts see (`shared`); `tag` (unique to the caller's worktree) names its
    namespaces and LAN bridge. Everything goes afterwards."""
    need_root_networking()
    libvirt_and_test_image()
    base = state_dir(f"kumo-{tag}-")
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
            netns = lan.add_host(h)
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
            cloud.node_args[h] = host_args(host, cloud.lan_ips[h], ["--shared-fs-dir", str(cloud.shared)])
            cloud.start_host(h)
        listed = wait_until(
            lambda: len(ready := ready_nodes(cloud.admin)) == 2 and ready,
            what="both hosts' nodes READY",
            base=90,
            explain=lambda: "\n".join(
                h.log_path.read_text(errors="replace")[-2000:] for h in cloud.hosts.values()
            ),
        )
        cloud.node_ids = {n.name.removeprefix(f"{tag}-"): n.id for n in listed}
        from bench.procs import make_image
        from kumo.v1 import image_pb2 as ipb

        cloud.image_id = make_image(
            cloud.admin, "kumo-test", TEST_IMAGE.read_bytes(), ipb.DISK_FORMAT_QCOW2
        ).id
        make_flavor(cloud.admin, flavor, vcpus=1, ram_mb=256)
        cloud.network_id = tenant_network(cloud.admin)
        yield cloud
    finally:
        if cloud is not None:
            for host in cloud.hosts.values():
                host.stop()
        ctl.stop()
        lan.down()
        shutil.rmtree(base, ignore_errors=True)


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


REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from ")


@dataclass
class Pinger:
    """`ping -i interval` to `address` from each of `namespaces` at once (a
    host's namespace pings from its bridge: the guest's gateway there). The
    guest answers at a moment when any of them got a reply. A ping that
    exits (no route yet: the destination's network is made for the incoming
    guest) is started again."""

    address: str
    namespaces: list[str]
    files: Path
    interval: float = 0.05
    threads: list[threading.Thread] = field(default_factory=list)
    current: dict[int, subprocess.Popen] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def _path(self, i: int) -> Path:
        return self.files / f"ping-{i}.txt"

    def _run(self, i: int, netns: str) -> None:
        cmd = [
            "ip",
            "netns",
            "exec",
            netns,
            "stdbuf",
            "-oL",
            "ping",
            "-D",
            "-n",
            "-i",
            str(self.interval),
            "-W",
            "1",
        ]
        while not self.stopping.is_set():
            with open(self._path(i), "a") as out:
                self.current[i] = subprocess.Popen([*cmd, self.address], stdout=out, stderr=subprocess.STDOUT)
            self.current[i].wait()
            self.stopping.wait(self.interval)

    def start(self) -> Pinger:
        for i, netns in enumerate(self.namespaces):
            t = threading.Thread(target=self._run, args=(i, netns), name=f"pinger-{netns}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def replies(self) -> list[float]:
        """The (wall clock) times of every reply so far, sorted."""
        times = []
        for i in range(len(self.namespaces)):
            path = self._path(i)
            for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
                if m := REPLY.match(line):
                    times.append(float(m.group(1)))
        return sorted(times)

    def answered_since(self, t: float) -> bool:
        return any(r > t for r in self.replies())

    def stop(self) -> None:
        self.stopping.set()
        for p in list(self.current.values()):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # ping writes out what it has on SIGINT
        for t in self.threads:
            t.join(15)


def downtime(replies: list[float], since: float, until: float) -> float:
    """The longest time without a reply between `since` and `until` (wall clock, s)."""
    inside = [since, *[r for r in replies if since < r < until], until]
    return max(b - a for a, b in itertools.pairwise(inside))


def now() -> float:
    return time.time()
