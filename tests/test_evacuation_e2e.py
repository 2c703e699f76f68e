"""Evacuation with real guests: the real controller, two real kumo-noded
daemons on this host's libvirt (two "hosts", each with its own state and
instances directory, owning its own guests) sharing one shared-fs
directory, TCG guests.

A server booted from a shared-fs volume, with a second shared-fs volume
holding known data, runs on node A. A's daemon is killed (SIGKILL) and the
node goes DOWN: the server stays ACTIVE with power UNKNOWN, nothing is
freed. The operator powers host A off: here its guest is destroyed, and
since the two "hosts" share one libvirtd (one domain per name), A's domain
definition goes with it (on a real host it stays on A's disk, and A's
reconcile removes it on return: the same code path as its files below).
The node is fenced and evacuated: the server boots on B from the same boot
volume, with its data volume attached again. A, restarted while fenced, is
refused a session and touches nothing; re-admitted, it reconciles and
removes its stale copy (its instance directory) while both shared volumes
stay, and exactly one guest runs. The data volume's content is unchanged.

The fixed IP seen by the guest through a tenant network after an
evacuation, with each host in its own network namespace (these two node
daemons share one kernel's bridges, dnsmasq and nftables):
tests/test_hostnet_e2e.py; tests/test_evacuation.py checks that the port
(MAC and fixed IP) moves with the instance."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import node_agent_pb2 as npb
from kumo.v1 import node_pb2, node_pb2_grpc
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import TEST_IMAGE, destroy_guests, libvirt_and_test_image, ready_nodes, virsh
from tests.evacuationutil import Evacuation, two_hosts
from tests.netutil import state_dir
from tests.test_volumes_e2e import Api
from tests.test_volumes_shared_fs_e2e import Node

pytestmark = pytest.mark.e2e

MiB = 1024**2


def qemu_io(path: Path, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(path)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    base = state_dir("kumo-evac-e2e-")
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with two_hosts("evac", ["--shared-fs-dir", str(shared)], base) as c:
        yield {**c, "shared": shared}


def test_a_shared_fs_server_is_evacuated_and_its_old_node_drops_its_copy(cloud: dict) -> None:
    api = Api(cloud["admin"])
    nodes = api.admin.stub(node_pb2_grpc.NodeServiceStub)
    shared: Path = cloud["shared"]
    listed = {n.name: n for n in ready_nodes(api.admin)}
    a, b = listed["evac-a"].id, listed["evac-b"].id

    api.vol.CreateVolumeType(
        vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name="evac-nfs", backend="shared-fs"))
    )
    boot = api.create_volume("evac-boot", volume_type_id="evac-nfs", source_image_id=cloud["image"].id)
    data = api.create_volume("evac-data", volume_type_id="evac-nfs")
    data_file = shared / f"{data.id}.qcow2"
    wrote = qemu_io(data_file, f"write -P 0x6b 0 {MiB}")
    assert wrote.returncode == 0, wrote.stderr

    nodes.DisableNode(node_pb2.DisableNodeRequest(id=b, reason="test: place on evac-a"))
    srv = api.server("evac-srv", boot_volume=boot.id)
    nodes.EnableNode(node_pb2.EnableNodeRequest(id=b))
    assert api.compute.GetInstance(api.cpb.GetInstanceRequest(id=srv.id)).node_id == a
    api.attach(data.id, srv.id)
    api.wait_disks(srv.id, "vda vdb vdc")
    evac = Evacuation(cloud, srv.id)
    assert (evac.a_dir / "config.iso").exists()

    # Host A is lost, fenced and evacuated (evacuationutil): the server runs on B.
    evac.lose_and_evacuate()
    evac.on_b(rf"^instance-id: {srv.id}")  # booted on B from the same volume
    evac.on_b(r"^KUMO-DISKS: vda vdb vdc\s*$")  # with its data volume
    assert {api.volume(v).node_id for v in (boot.id, data.id)} == {b}
    xml = virsh("dumpxml", evac.domain)
    assert str(shared / f"{boot.id}.qcow2") in xml and str(cloud["state_b"]) in xml

    # A returns: refused while fenced; re-admitted, it drops its stale copy, not the volumes.
    evac.return_and_drop_copy(lambda: (shared / f"{boot.id}.qcow2").exists() and data_file.exists())

    api.detach(data.id)
    read = qemu_io(data_file, f"read -P 0x6b 0 {MiB}")
    assert read.returncode == 0 and "verification failed" not in read.stdout, read.stdout
    evac.delete()


def test_a_returning_node_destroys_a_running_stale_copy_but_not_its_shared_volume() -> None:
    """What the returning node's instances step does when the stale copy
    still runs (a host that was cut off, not powered off, then fenced): with
    real libvirt, one node's steps (the shared-fs test's Node), a guest with
    its root disk on the node and a shared-fs volume attached, then a desired
    state without it (the controller moved it away): the domain is destroyed,
    its instance directory (overlay disk, config drive) deleted, and the
    shared volume's file stays."""
    libvirt_and_test_image()
    base = state_dir("kumo-evac-stale-")
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    node = Node(base / "a", shared, TEST_IMAGE.read_bytes())
    iid, vid = "e7ac0000-0000-4000-8000-00000000000a", "e7ac0000-0000-4000-8000-0000000000ff"
    want = [npb.DesiredVolume(id=vid, size_gb=1, backend="shared-fs")]
    try:
        node.apply(iid, want, [vid])
        assert [g.instance_id for g in node.drv.list_guests()] == [iid]
        idir = base / "a" / "instances" / iid
        assert (idir / "disk.qcow2").exists()
        moved_away = npb.NodeDesiredState(enabled=True)
        node.vols(moved_away, node.drv)
        node.compute(moved_away, node.drv)
        assert node.drv.list_guests() == [] and f"kumo-{iid}" not in virsh("list", "--all", "--name").split()
        assert not idir.exists(), "the stale copy's node-local files are deleted in the same pass"
        assert (shared / f"{vid}.qcow2").exists(), "a shared volume is let go of, never deleted"
    finally:
        node.drv.destroy_guest(iid)
        node.drv.close()
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)
