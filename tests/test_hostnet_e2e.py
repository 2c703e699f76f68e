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
- A server booted from a shared-fs volume is evacuated after its host dies
  (noded, libvirtd and guest killed at once; the node declared DOWN and
  fenced) and comes back on the other host with the same fixed IP, which it
  gets by DHCP there and answers ping on.

Not here: an rbd volume (tests/test_volumes_rbd_e2e.py has the Ceph cluster),
the returning node's cleanup and the volume content after an evacuation
(tests/test_evacuation_e2e.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.host_cloud import fixed_ip
from bench.host_lan import worktree_tag
from bench.pinger import Pinger, downtime
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import node_pb2 as npb
from kumo.v1 import volume_pb2 as vpb
from tests.hostnet import HostCloud, explain, netns_host_cloud
from tests.test_live_migration_e2e import ended, start_ticks, ticks
from tests.waits import machine_load, scaled_timeout, wait_until

pytestmark = pytest.mark.e2e

FLAVOR = "hn.small"
NFS = "hn-nfs"


@pytest.fixture(scope="module")
def cloud() -> Iterator[HostCloud]:
    with netns_host_cloud(worktree_tag("hn"), FLAVOR) as c:
        c.admin.volumes.CreateVolumeType(
            vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name=NFS, backend="shared-fs"))
        )
        yield c


def volume(cloud: HostCloud, name: str, **kw: str) -> vpb.Volume:
    """A 1 GiB shared-fs volume, AVAILABLE."""
    vols = cloud.admin.volumes
    v = vols.CreateVolume(
        vpb.CreateVolumeRequest(volume=vpb.Volume(name=name, size_gb=1, volume_type_id=NFS, **kw))
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
    pinger = Pinger(ip, [cloud.netns("a"), cloud.netns("b")], tmp_path).start()
    try:
        t0 = time.time()
        wait_until(
            lambda: pinger.answered_since(t0),
            what="the guest answering ping on host a",
            base=60,
            explain=lambda: explain(cloud, inst.id),
        )
        start_ticks(admin, inst.id)
        before = max(ticks(admin, inst.id), default=0)

        began, t_began = time.monotonic(), time.time()
        admin.compute.MigrateInstance(
            pb.MigrateInstanceRequest(name=inst.id, live=True, node=cloud.node_ids["b"])
        )
        m = ended(admin, inst.id)
        wall = time.monotonic() - began
        assert m.state == pb.LIVE_MIGRATION_STATE_COMPLETED, m.fault
        moved = wait_until(
            lambda: (
                (i := admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id))).node_id
                == cloud.node_ids["b"]
                and i.power_state == pb.POWER_STATE_RUNNING
                and i
            ),
            what="the instance running on host b",
            explain=lambda: explain(cloud, inst.id),
        )
        t_done = time.time()
        # Ping recovers: replies again after the migration ended (host b's gateway, now the guest's).
        wait_until(
            lambda: pinger.answered_since(t_done + 1),
            what="the guest answering ping after the migration",
            base=90,
            explain=lambda: explain(cloud, inst.id),
        )
        t_after = time.time()
    finally:
        pinger.stop()
    replies = pinger.replies()
    gap = downtime(replies, t_began, t_after)
    print(
        f"\nlive migration with a NIC and a shared-fs volume, root disk copied: {wall:.1f} s wall, libvirt downtime {m.downtime_ms} ms, "
        f"ping downtime {gap * 1000:.0f} ms (pings every {pinger.interval * 1000:.0f} ms "
        f"from both hosts' gateways, {len(replies)} replies)"
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


def test_an_evacuated_shared_fs_server_comes_back_with_its_fixed_ip(cloud: HostCloud, tmp_path: Path) -> None:
    """Last: it kills host a."""
    admin = cloud.admin
    boot = volume(cloud, "hn-boot", source_image_id=cloud.image_id)
    srv = placed_on(
        cloud,
        "a",
        pb.CreateInstanceRequest(
            name="hn-evac",
            boot_volume=boot.id,
            flavor=FLAVOR,
            networks=[pb.NetworkRequest(network=cloud.network_id)],
        ),
    )
    ip = fixed_ip(admin, srv.id)
    assert leases(cloud, "a", srv.id) == [ip]
    a = cloud.node_ids["a"]

    cloud.hosts["a"].kill()  # the host loses power: noded, libvirtd and guest at once
    wait_until(
        lambda: admin.nodes.GetNode(npb.GetNodeRequest(id=a)).state == npb.NODE_STATE_DOWN,
        what="host a's node DOWN",
        base=30,
    )
    assert admin.nodes.FenceNode(npb.FenceNodeRequest(id=a)).fenced
    done = admin.nodes.EvacuateNode(npb.EvacuateNodeRequest(id=a)).evacuations
    assert [(e.instance_id, e.outcome, e.target_node_id) for e in done] == [
        (srv.id, npb.EVACUATION_OUTCOME_MOVED, cloud.node_ids["b"])
    ], done
    # The same fixed IP, by DHCP from host b (a fresh boot from the same volume), and it answers there.
    assert leases(cloud, "b", srv.id) == [ip]
    assert fixed_ip(admin, srv.id) == ip
    assert str(cloud.shared / f"{boot.id}.qcow2") in cloud.virsh("b", "dumpxml", f"kumo-{srv.id}")
    on_console(cloud, "b", srv.id, rf"^instance-id: {srv.id}", base=60)  # booted from the same volume
    pinger = Pinger(ip, [cloud.netns("b")], tmp_path).start()
    try:
        t0 = time.time()
        wait_until(
            lambda: pinger.answered_since(t0),
            what="the evacuated guest answering ping on host b",
            base=60,
            explain=lambda: explain(cloud, srv.id),
        )
    finally:
        pinger.stop()
    inst = admin.compute.GetInstance(pb.GetInstanceRequest(id=srv.id))
    assert (inst.state, inst.node_id) == (pb.INSTANCE_STATE_ACTIVE, cloud.node_ids["b"])
