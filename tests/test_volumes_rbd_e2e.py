"""Volumes on Ceph RBD end to end: a real single-node Ceph cluster
(tests/ceph.py), the real controller and two real kumo-noded daemons on this
host's libvirt (two "hosts" that both reach the pool), TCG guests.

A volume of an rbd type is an RBD image in the pool; it is written from the
host (qemu-io through librbd), hot-plugged into a running guest on one node
(a libvirt network disk with a cephx secret), grown live, snapshotted,
detached, attached to a server on the other node (a shared volume is not
tied to a node), detached again with its data intact, and deleted: the
image is gone from the pool. A server also boots from an rbd volume made
from an image."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest

from kumo.v1 import node_pb2, node_pb2_grpc
from kumo.v1 import volume_pb2 as vpb
from tests.ceph import CephCluster
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, ready_nodes, virsh
from tests.harness import rpc_error
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, run_noded
from tests.test_volumes_e2e import Api, _try_delete
from tests.waits import node_line, wait_until

pytestmark = pytest.mark.e2e

MiB = 1024**2
GiB = 1024**3


def rbd_uri(c: CephCluster, image: str) -> str:
    mons = ",".join(f"{h}:{p}" for h, p in c.monitors).replace(":", "\\:")
    return f"rbd:{c.pool}/{image}:conf=/dev/null:mon_host={mons}:id={c.client}:keyring={c.client_keyring}"


def qemu_io(c: CephCluster, image: str, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["qemu-io", "-f", "raw", "-c", cmd, rbd_uri(c, image)], capture_output=True, text=True, timeout=120
    )


def write_pattern(c: CephCluster, image: str, pattern: int, offset: int = 0) -> None:
    out = qemu_io(c, image, f"write -P {pattern:#x} {offset} {MiB}")
    assert out.returncode == 0 and "failed" not in out.stdout.lower(), out.stdout + out.stderr


def has_pattern(c: CephCluster, image: str, pattern: int, offset: int = 0) -> bool:
    out = qemu_io(c, image, f"read -P {pattern:#x} {offset} {MiB}")
    return out.returncode == 0 and "verification failed" not in out.stdout


@pytest.fixture(scope="module")
def cloud(ceph_cluster: CephCluster) -> Iterator[dict]:
    libvirt_and_test_image()
    base = state_dir("kumo-rbd-e2e-")
    second = None
    try:
        with libvirt_cloud(
            base, "rbd-a", "vol.small", reconcile_seconds=3, node_args=ceph_cluster.node_args()
        ) as c:
            state_b = base / "node-b"
            joined = run_noded(
                [
                    "join",
                    c["ctl"].endpoint,
                    make_token(c["admin"]),
                    "--name",
                    "rbd-b",
                    "--state-dir",
                    str(state_b),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            second = NodedProc(
                state_b, ["--virt-type", "qemu", "--reconcile-seconds", "3", *ceph_cluster.node_args()]
            ).start()
            wait_until(lambda: len(ready_nodes(c["admin"])) == 2, what="both nodes READY", base=60, step=0.2)
            yield {**c, "ceph": ceph_cluster, "state_b": state_b}
            second.stop()
            second = None
    finally:
        if second is not None:
            second.stop()
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


def test_rbd_volume_lifecycle_across_nodes(cloud: dict) -> None:
    ceph: CephCluster = cloud["ceph"]
    api = Api(cloud["admin"])
    nodes = api.admin.stub(node_pb2_grpc.NodeServiceStub)
    listed = {n.name: n for n in ready_nodes(api.admin)}
    assert set(listed["rbd-a"].inventory.storage_backends) == {"local", "rbd"}

    vtype = api.vol.CreateVolumeType(
        vpb.CreateVolumeTypeRequest(
            volume_type=vpb.VolumeType(name="ceph", backend="rbd", description="Ceph RBD")
        )
    )
    started = time.monotonic()
    data = api.create_volume("rbd-data", volume_type_id="ceph")
    created_s = time.monotonic() - started
    assert data.volume_type_id == vtype.id
    image = f"volume-{data.id}"
    assert image in ceph.images(), "the volume is an RBD image in the pool"
    write_pattern(ceph, image, 0x5A)

    # Server a on node rbd-a (rbd-b disabled meanwhile), the volume hot-plugged.
    nodes.DisableNode(node_pb2.DisableNodeRequest(id=listed["rbd-b"].id, reason="test: place on rbd-a"))
    a = api.server("rbd-srv-a")
    nodes.EnableNode(node_pb2.EnableNodeRequest(id=listed["rbd-b"].id))
    assert api.compute.GetInstance(api.cpb.GetInstanceRequest(id=a.id)).node_id == listed["rbd-a"].id
    api.wait_disks(a.id, "vda vdb")
    started = time.monotonic()
    api.attach(data.id, a.id)
    attached_s = time.monotonic() - started
    api.wait_disks(a.id, "vda vdb vdc")
    xml = virsh("dumpxml", f"kumo-{a.id}")
    assert "protocol='rbd'" in xml and f"{ceph.pool}/{image}" in xml and "type='ceph'" in xml, xml

    # Grown live: the guest sees the new capacity; the image is 2 GiB.
    api.vol.ExtendVolume(vpb.ExtendVolumeRequest(id=data.id, new_size_gb=2))
    api.wait_volume(data.id, "IN_USE")
    assert api.volume(data.id).size_gb == 2
    api.wait_console(a.id, r"vdc: detected capacity change")
    assert '"size":2147483648' in ceph.rbd("info", "--format", "json", image).replace(" ", "")

    # A snapshot is an RBD snapshot of the image.
    snap = api.vol.CreateVolumeSnapshot(
        vpb.CreateVolumeSnapshotRequest(snapshot=vpb.VolumeSnapshot(name="rbd-snap", volume_id=data.id))
    )
    wait_until(
        lambda: (
            api.vol.GetVolumeSnapshot(vpb.GetVolumeSnapshotRequest(id=snap.id)).state
            == vpb.VOLUME_SNAPSHOT_STATE_AVAILABLE
        ),
        what="rbd snapshot AVAILABLE",
        base=60,
        step=0.2,
        explain=lambda: api.explain_volume(data.id),
    )
    assert f"snap-{snap.id}" in ceph.rbd("snap", "ls", image)

    api.detach(data.id)
    api.wait_disks(a.id, "vda vdb")
    assert has_pattern(ceph, image, 0x5A), "what was written is read back"

    # Server b on node rbd-b: the shared volume attaches there too.
    nodes.DisableNode(node_pb2.DisableNodeRequest(id=listed["rbd-a"].id, reason="test: place on rbd-b"))
    b = api.server("rbd-srv-b")
    nodes.EnableNode(node_pb2.EnableNodeRequest(id=listed["rbd-a"].id))
    b_node = api.compute.GetInstance(api.cpb.GetInstanceRequest(id=b.id)).node_id
    assert b_node == listed["rbd-b"].id
    api.wait_disks(b.id, "vda vdb")
    api.attach(data.id, b.id)
    assert api.volume(data.id).node_id == b_node, "its instance's node does its work now"
    api.wait_disks(b.id, "vda vdb vdc")
    api.detach(data.id)
    api.wait_disks(b.id, "vda vdb")
    assert has_pattern(ceph, image, 0x5A)
    assert image in ceph.images(), "node rbd-a, no longer its node, did not delete it"

    # A server boots from an rbd volume made from the image (qemu-img into the pool).
    root = api.create_volume("rbd-root", size_gb=0, source_image_id="kumo-test", volume_type_id="ceph")
    assert root.bootable and f"volume-{root.id}" in ceph.images()
    c = api.server("rbd-srv-c", boot_volume=root.id)
    api.wait_disks(c.id, "vda vdb")
    assert f"{ceph.pool}/volume-{root.id}" in virsh("dumpxml", f"kumo-{c.id}")
    assert api.wait_volume(root.id, "IN_USE").boot
    api.compute.DeleteInstance(api.cpb.DeleteInstanceRequest(id=c.id))
    api.wait_volume(root.id, "AVAILABLE")

    # A volume from the snapshot, then everything deleted: the images go.
    copy = api.create_volume("rbd-copy", size_gb=0, source_snapshot_id=snap.id)
    assert copy.volume_type_id == vtype.id
    assert has_pattern(ceph, f"volume-{copy.id}", 0x5A)
    err = rpc_error(api.vol.DeleteVolumeType, vpb.DeleteVolumeTypeRequest(id=vtype.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    api.vol.DeleteVolumeSnapshot(vpb.DeleteVolumeSnapshotRequest(id=snap.id))
    wait_until(
        lambda: f"snap-{snap.id}" not in ceph.rbd("snap", "ls", image),
        what="the RBD snapshot removed",
        base=60,
        step=0.2,
        explain=lambda: api.explain_volume(data.id),
    )
    for vid in (data.id, copy.id, root.id):
        wait_until(
            lambda vid=vid: _try_delete(api, vid),
            what=f"volume {vid} deletable",
            base=60,
            step=0.2,
            explain=lambda vid=vid: api.explain_volume(vid),
        )
    wait_until(
        # This test's own images: the Ceph cluster is shared by the session's rbd tests.
        lambda: not {f"volume-{v}" for v in (data.id, copy.id, root.id)} & set(ceph.images()),
        what="the RBD images removed",
        base=60,
        step=0.2,
        explain=lambda: f"left: {ceph.images()}\n{node_line(api.admin, b_node)}",
    )
    wait_until(
        lambda: all(_gone(api, v) for v in (data.id, copy.id, root.id)),
        what="the volume rows gone",
        base=30,
        step=0.2,
        explain=lambda: api.explain_volume(data.id),
    )
    api.vol.DeleteVolumeType(vpb.DeleteVolumeTypeRequest(id=vtype.id))
    print(f"rbd volume: create {created_s:.2f} s, attach {attached_s:.2f} s (API call to AVAILABLE / IN_USE)")
    for iid in (a.id, b.id):
        api.compute.DeleteInstance(api.cpb.DeleteInstanceRequest(id=iid))


def _gone(api: Api, vid: str) -> bool:
    try:
        api.volume(vid)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.NOT_FOUND
    return False
