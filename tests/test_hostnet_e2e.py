"""End to end, with the guest's network: two libvirt "hosts", each in its own
network namespace on a test LAN with its own libvirtd and kumo-noded
(tests/hostnet.py), real TCG guests on a tenant network (VXLAN between the
hosts' LAN addresses).

- A guest live-migrated with its root disk copied and a shared-fs volume
  attached keeps running (its console ticker goes on), keeps its fixed IP
  and the volume, and answers ping throughout but for a downtime the test
  measures and prints. The pings come from the source's
  and the destination's host namespaces (each host's bridge is the guest's
  gateway while the guest runs there: what reaches the guest from outside
  its network comes through it); the guest answers at a moment when either
  got a reply.
  The stream went through the node daemons' TLS tunnel (memory and the
  disk copy), the source dropped the guest, the claims moved.
- A server booted from an rbd volume (made from the test image) with a
  second rbd volume holding a known pattern is live-migrated the other way
  with nothing copied (no disk stream in the tunnel, only memory): its
  ticker goes on, the pattern reads back in the guest on its new host
  (direct I/O: the new host's qemu reads the pool), its fixed IP stays and
  ping recovers. Both hosts reach the session's test Ceph cluster through
  the LAN (tests/ceph.py; its address is routed via the LAN bridge).
- That server is then evacuated after its host dies (noded, libvirtd and
  guest killed at once; the node declared DOWN and fenced) and comes back
  on the other host with both volumes and the same fixed IP, which it gets
  by DHCP there and answers ping on.

Not here: a shared-fs server's evacuation, the returning node's cleanup and
the volume content after an evacuation (tests/test_evacuation_e2e.py,
tests/test_evacuation_rbd_e2e.py); migrations that fail or are cancelled
(tests/test_live_migration_e2e.py)."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.host_cloud import fixed_ip
from bench.host_lan import worktree_tag
from bench.pinger import Pinger, downtime
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import node_pb2 as npb
from kumo.v1 import volume_pb2 as vpb
from tests.ceph import CephCluster
from tests.hostnet import HostCloud, explain, netns_host_cloud
from tests.test_live_migration_e2e import claimed, ended, start_ticks, ticks, type_until
from tests.test_volumes_rbd_e2e import MiB, write_pattern
from tests.waits import machine_load, scaled_timeout, wait_until

pytestmark = pytest.mark.e2e

FLAVOR = "hn.small"
NFS = "hn-nfs"
CEPH = "hn-ceph"
PATTERN, PATTERN_MIB = 0x5A, 64  # 1 MiB of it at 64 MiB: far from what a partition scan reads


@pytest.fixture(scope="module")
def cloud(ceph_cluster: CephCluster) -> Iterator[HostCloud]:
    with netns_host_cloud(worktree_tag("hn"), FLAVOR, ceph_cluster) as c:
        for name, backend in ((NFS, "shared-fs"), (CEPH, "rbd")):
            c.admin.volumes.CreateVolumeType(
                vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name=name, backend=backend))
            )
        yield c


def volume(cloud: HostCloud, name: str, volume_type: str = NFS, size_gb: int = 1, **kw: str) -> vpb.Volume:
    """A volume (1 GiB shared-fs by default), AVAILABLE."""
    vols = cloud.admin.volumes
    v = vols.CreateVolume(
        vpb.CreateVolumeRequest(
            volume=vpb.Volume(name=name, size_gb=size_gb, volume_type_id=volume_type, **kw)
        )
    )
    return wait_until(
        lambda: (
            (got := vols.GetVolume(vpb.GetVolumeRequest(id=v.id))).state == vpb.VOLUME_STATE_AVAILABLE and got
        ),
        what=f"volume {name} AVAILABLE",
        base=60,
    )


def placed_on(cloud: HostCloud, h: str, req: pb.CreateInstanceRequest) -> pb.Instance:
    """Creates the instance with the other host disabled, so it lands on `h`."""
    other = cloud.node_ids["b" if h == "a" else "a"]
    cloud.admin.nodes.DisableNode(npb.DisableNodeRequest(id=other, reason=f"test: place on {h}"))
    try:
        inst = cloud.admin.compute.CreateInstance(req)
    finally:
        cloud.admin.nodes.EnableNode(npb.EnableNodeRequest(id=other))
    return inst


def console_file(cloud: HostCloud, h: str, instance_id: str) -> Path:
    """Host h's own console log of the guest (the API's may still be another host's last report)."""
    return cloud.state(h) / "instances" / instance_id / "console.log"


def on_console(cloud: HostCloud, h: str, instance_id: str, pattern: str, base: float = 180) -> list[str]:
    """What `pattern` matches on host h's console log of the guest, once it matches."""
    path = console_file(cloud, h, instance_id)
    return wait_until(
        lambda: path.exists() and re.findall(pattern, path.read_text(errors="replace"), re.M),
        what=f"{pattern!r} on host {h}'s console",
        base=base,
        explain=lambda: explain(cloud, instance_id),
    )


def leases(cloud: HostCloud, h: str, instance_id: str) -> list[str]:
    """The addresses the guest announced after DHCP on host h's console, once it announced one."""
    return on_console(cloud, h, instance_id, r"^KUMO-IP: (\S+)")


def running_on(cloud: HostCloud, instance_id: str, h: str) -> pb.Instance:
    """The instance once the API has it running on host h."""
    admin = cloud.admin
    return wait_until(
        lambda: (
            (i := admin.compute.GetInstance(pb.GetInstanceRequest(id=instance_id))).node_id
            == cloud.node_ids[h]
            and i.power_state == pb.POWER_STATE_RUNNING
            and i
        ),
        what=f"the instance running on host {h}",
        explain=lambda: explain(cloud, instance_id),
    )


def live_migrate(cloud: HostCloud, instance_id: str, h: str) -> tuple[pb.LiveMigration, float]:
    """MigrateInstance live to host h; the completed migration and its wall time (s)."""
    admin = cloud.admin
    began = time.monotonic()
    admin.compute.MigrateInstance(
        pb.MigrateInstanceRequest(name=instance_id, live=True, node=cloud.node_ids[h])
    )
    m = ended(admin, instance_id)
    wall = time.monotonic() - began
    assert m.state == pb.LIVE_MIGRATION_STATE_COMPLETED, m.fault
    return m, wall


def tunnel_streams(cloud: HostCloud, h: str, migration_id: str) -> dict[str, int]:
    """What host h's node daemon carried in from the migration's streams
    through its TLS tunnel (docs/nodes.md), from a node with a certificate
    of the cloud's CA: stream (m: memory, d: the disk copy) -> bytes."""
    carried = re.findall(
        rf"migration tunnel stream done\s+migration={migration_id} stream=([md]) source_node=\S+ bytes=(\d+)",
        cloud.hosts[h].log_path.read_text(errors="replace"),
    )
    return {stream: int(n) for stream, n in carried}


def assert_tunnel_refuses_plaintext(cloud: HostCloud, h: str) -> None:
    """Host h's tunnel port (on its LAN address) answers no plaintext."""
    port = cloud.admin.nodes.GetNode(npb.GetNodeRequest(id=cloud.node_ids[h])).inventory.migration_port
    assert port > 0
    with socket.create_connection((cloud.lan_ips[h], port), timeout=10) as plain:
        plain.sendall(b'{"migration_id": "x", "stream": "m"}\n')
        try:
            answer = plain.recv(64)
        except ConnectionError:
            answer = b""
    assert not answer.startswith(b"OK")


def left(cloud: HostCloud, h: str, instance_id: str) -> None:
    """Waits until host h runs no copy of the guest and dropped its files."""
    wait_until(
        lambda: (
            f"kumo-{instance_id}" not in cloud.virsh(h, "list", "--all", "--name").split()
            and not console_file(cloud, h, instance_id).parent.exists()
        ),
        what=f"the guest and its files gone from host {h}",
        base=60,
        explain=lambda: explain(cloud, instance_id),
    )


@dataclass
class PingedMigration:
    migration: pb.LiveMigration
    wall: float  # s, MigrateInstance to COMPLETED
    moved: pb.Instance
    ticks_before: int  # the guest's uptime ticker just before the move
    gap: float  # s without a ping answer around the switch-over


def migrate_under_ping(
    cloud: HostCloud, instance_id: str, ip: str, source: str, target: str, tmp_path: Path, what: str
) -> PingedMigration:
    """Live-migrates the guest from host `source` to `target` while both hosts'
    namespaces ping its fixed IP every 50 ms (its gateway on either), with its
    console ticker started first; waits for ping to recover and prints the figures."""
    admin = cloud.admin
    pinger = Pinger(ip, [cloud.netns("a"), cloud.netns("b")], tmp_path).start()
    try:
        t0 = time.time()
        wait_until(
            lambda: pinger.answered_since(t0),
            what=f"the guest answering ping on host {source}",
            base=60,
            explain=lambda: explain(cloud, instance_id),
        )
        start_ticks(admin, instance_id)
        before = max(ticks(admin, instance_id), default=0)
        t_began = time.time()
        m, wall = live_migrate(cloud, instance_id, target)
        moved = running_on(cloud, instance_id, target)
        t_done = time.time()
        # Ping recovers: replies again after the migration ended (the target's gateway, now the guest's).
        wait_until(
            lambda: pinger.answered_since(t_done + 1),
            what="the guest answering ping after the migration",
            base=90,
            explain=lambda: explain(cloud, instance_id),
        )
        t_after = time.time()
    finally:
        pinger.stop()
    replies = pinger.replies()
    gap = downtime(replies, t_began, t_after)
    print(
        f"\nlive migration {what}: {wall:.1f} s wall, libvirt downtime {m.downtime_ms} ms, "
        f"{m.bytes_processed} bytes, ping downtime {gap * 1000:.0f} ms (pings every {pinger.interval * 1000:.0f} ms "
        f"from both hosts' gateways, {len(replies)} replies)"
    )
    return PingedMigration(m, wall, moved, before, gap)


def test_a_live_migrated_guest_keeps_its_fixed_ip_and_answers_ping(cloud: HostCloud, tmp_path: Path) -> None:
    admin = cloud.admin
    inst = placed_on(
        cloud,
        "a",
        pb.CreateInstanceRequest(
            name="hn-wanderer",
            image="kumo-test",
            flavor=FLAVOR,
            networks=[pb.NetworkRequest(network=cloud.network_id)],
        ),
    )
    ip = fixed_ip(admin, inst.id)
    assert leases(cloud, "a", inst.id) == [ip]  # its port's fixed IP, by DHCP from host a
    data = volume(cloud, "hn-data")
    admin.volumes.AttachVolume(vpb.AttachVolumeRequest(id=data.id, instance_id=inst.id))
    wait_until(
        lambda: admin.volumes.GetVolume(vpb.GetVolumeRequest(id=data.id)).state == vpb.VOLUME_STATE_IN_USE,
        what="the shared-fs volume attached",
        base=60,
        explain=lambda: explain(cloud, inst.id),
    )
    on_console(cloud, "a", inst.id, r"^KUMO-DISKS: vda vdb vdc\s*$", base=60)
    ctl_data = Path(cloud.ctl.data_dir)
    claims = {h: claimed(ctl_data, cloud.node_ids[h]) for h in ("a", "b")}
    run = migrate_under_ping(
        cloud, inst.id, ip, "a", "b", tmp_path, "with a NIC and a shared-fs volume, root disk copied"
    )
    m, moved, before, gap = run.migration, run.moved, run.ticks_before, run.gap
    streams = tunnel_streams(cloud, "b", m.id)
    assert streams.get("m", 0) > MiB and streams.get("d", 0) > 0, streams  # memory and the disk copy
    assert_tunnel_refuses_plaintext(cloud, "b")
    left(cloud, "a", inst.id)
    (va, ma), (vb, mb) = claims["a"], claims["b"]  # the flavor's 1 vCPU and 256 MiB move from a to b
    wait_until(
        lambda: (
            claimed(ctl_data, cloud.node_ids["a"]) == (va - 1, ma - 256)
            and claimed(ctl_data, cloud.node_ids["b"]) == (vb + 1, mb + 256)
        ),
        what=f"the claim moved from a to b (before: {claims})",
        base=30,
        explain=lambda: explain(cloud, inst.id),
    )
    # Answers "throughout": a gap of a switch-over, not of a reboot or a lost port (at most 10 quiet s).
    assert gap < scaled_timeout(10, *machine_load()), f"no ping answer for {gap:.1f} s"
    assert moved.state == pb.INSTANCE_STATE_ACTIVE and moved.fault == ""
    assert fixed_ip(admin, inst.id) == ip
    assert "running" in cloud.virsh("b", "domstate", f"kumo-{inst.id}")
    assert str(cloud.shared / f"{data.id}.qcow2") in cloud.virsh("b", "dumpxml", f"kumo-{inst.id}")
    # Its ticker goes on (no reboot), and it never asked for a new address.
    later = wait_until(
        lambda: [t for t in ticks(admin, inst.id) if t > before + 2],
        what="the guest's uptime going on on host b",
        base=30,
        explain=lambda: explain(cloud, inst.id),
    )
    assert min(later) > before
    log = admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=inst.id)).output
    assert "KUMO-TEST-IMAGE-BOOTED" not in log and re.findall(r"KUMO-IP: (\S+)", log) in ([], [ip])
    admin.compute.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_until(
        lambda: f"kumo-{inst.id}" not in cloud.virsh("b", "list", "--all", "--name").split(),
        what="the guest deleted",
        base=60,
    )


@pytest.fixture(scope="module")
def rbd_server(cloud: HostCloud, ceph_cluster: CephCluster) -> dict[str, str]:
    """A server on host b booted from an rbd volume made from the test image,
    with a second rbd volume attached that holds PATTERN; its fixed IP
    leased. Its ids (server, boot, data), fixed ip and the pool."""
    ceph = ceph_cluster
    admin = cloud.admin
    boot = volume(cloud, "hn-rbd-boot", CEPH, size_gb=0, source_image_id=cloud.image_id)
    data = volume(cloud, "hn-rbd-data", CEPH)
    write_pattern(ceph, f"volume-{data.id}", PATTERN, PATTERN_MIB * MiB)
    srv = placed_on(
        cloud,
        "b",
        pb.CreateInstanceRequest(
            name="hn-rbd",
            boot_volume=boot.id,
            flavor=FLAVOR,
            networks=[pb.NetworkRequest(network=cloud.network_id)],
        ),
    )
    ip = fixed_ip(admin, srv.id)
    assert leases(cloud, "b", srv.id) == [ip]
    admin.volumes.AttachVolume(vpb.AttachVolumeRequest(id=data.id, instance_id=srv.id))
    on_console(cloud, "b", srv.id, r"^KUMO-DISKS: vda vdb vdc\s*$", base=90)
    return {"server": srv.id, "ip": ip, "boot": boot.id, "data": data.id, "pool": ceph.pool}


def rbd_disks_in(cloud: HostCloud, h: str, srv: dict[str, str]) -> None:
    """Host h's definition of the guest has both volumes as rbd network disks of the pool."""
    xml = cloud.virsh(h, "dumpxml", f"kumo-{srv['server']}")
    for vid in (srv["boot"], srv["data"]):
        assert f"{srv['pool']}/volume-{vid}" in xml, xml
    assert xml.count("protocol='rbd'") == 2, xml


def test_an_rbd_server_live_migrates_with_nothing_copied(
    cloud: HostCloud, rbd_server: dict[str, str], tmp_path: Path
) -> None:
    admin, iid, ip = cloud.admin, rbd_server["server"], rbd_server["ip"]
    run = migrate_under_ping(cloud, iid, ip, "b", "a", tmp_path, "from rbd volumes, nothing copied")
    m, moved, before, gap = run.migration, run.moved, run.ticks_before, run.gap
    # Nothing but memory went: no disk stream through the tunnel (copy-storage would open one).
    streams = tunnel_streams(cloud, "a", m.id)
    assert streams.get("m", 0) > MiB and "d" not in streams, streams
    assert gap < scaled_timeout(10, *machine_load()), f"no ping answer for {gap:.1f} s"
    assert moved.state == pb.INSTANCE_STATE_ACTIVE and moved.fault == ""
    assert fixed_ip(admin, iid) == ip
    rbd_disks_in(cloud, "a", rbd_server)
    left(cloud, "b", iid)
    later = wait_until(
        lambda: [t for t in ticks(admin, iid) if t > before + 2],
        what="the rbd guest's uptime going on on host a",
        base=30,
        explain=lambda: explain(cloud, iid),
    )
    assert min(later) > before
    # Read in the guest on host a, bypassing its page cache: host a's qemu reads the pool.
    read = type_until(
        admin,
        iid,
        f"echo KUMO-PAT $(dd if=/dev/vdc bs=1M skip={PATTERN_MIB} count=1 iflag=direct 2>/dev/null | md5sum)\r".encode(),
        re.compile(rb"KUMO-PAT ([0-9a-f]{32})"),
    )
    assert read.group(1).decode() == hashlib.md5(bytes([PATTERN]) * MiB).hexdigest()
    log = admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid)).output
    assert "KUMO-TEST-IMAGE-BOOTED" not in log and re.findall(r"KUMO-IP: (\S+)", log) in ([], [ip])


def test_an_evacuated_rbd_server_comes_back_with_its_fixed_ip(
    cloud: HostCloud, rbd_server: dict[str, str], tmp_path: Path
) -> None:
    """Last: it kills host a (where the live migration test left the server)."""
    admin, iid, ip = cloud.admin, rbd_server["server"], rbd_server["ip"]
    a = cloud.node_ids["a"]
    if admin.compute.GetInstance(pb.GetInstanceRequest(id=iid)).node_id != a:  # run alone
        live_migrate(cloud, iid, "a")
        running_on(cloud, iid, "a")
        left(cloud, "b", iid)

    cloud.hosts["a"].kill()  # the host loses power: noded, libvirtd and guest at once
    wait_until(
        lambda: admin.nodes.GetNode(npb.GetNodeRequest(id=a)).state == npb.NODE_STATE_DOWN,
        what="host a's node DOWN",
        base=30,
    )
    assert admin.nodes.FenceNode(npb.FenceNodeRequest(id=a)).fenced
    done = admin.nodes.EvacuateNode(npb.EvacuateNodeRequest(id=a)).evacuations
    assert [(e.instance_id, e.outcome, e.target_node_id) for e in done] == [
        (iid, npb.EVACUATION_OUTCOME_MOVED, cloud.node_ids["b"])
    ], done
    # The same fixed IP, by DHCP from host b (a fresh boot from the same rbd volume), and it answers there.
    assert leases(cloud, "b", iid) == [ip]
    assert fixed_ip(admin, iid) == ip
    on_console(cloud, "b", iid, rf"^instance-id: {iid}", base=60)  # booted from the same volume
    on_console(cloud, "b", iid, r"^KUMO-DISKS: vda vdb vdc\s*$", base=60)  # with its data volume
    rbd_disks_in(cloud, "b", rbd_server)
    pinger = Pinger(ip, [cloud.netns("b")], tmp_path).start()
    try:
        t0 = time.time()
        wait_until(
            lambda: pinger.answered_since(t0),
            what="the evacuated guest answering ping on host b",
            base=60,
            explain=lambda: explain(cloud, iid),
        )
    finally:
        pinger.stop()
    inst = admin.compute.GetInstance(pb.GetInstanceRequest(id=iid))
    assert (inst.state, inst.node_id) == (pb.INSTANCE_STATE_ACTIVE, cloud.node_ids["b"])
