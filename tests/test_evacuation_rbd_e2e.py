"""Evacuation of a server booted from a Ceph RBD volume, with real guests:
a real single-node Ceph cluster (tests/ceph.py), the real
controller and two real kumo-noded daemons on this host's libvirt that both
reach the pool, TCG guests; the scenario's steps are the shared-fs test's
(tests/evacuationutil.py).

The server runs on host A from an rbd volume made from the test image
(its libvirt network disk), with a second rbd volume holding a known
pattern attached; only its boot on B is waited for (one TCG boot keeps the
test short). A is lost,
fenced and evacuated: the server boots on B from the same RBD image (the
libvirt disk is B's network disk) with its data volume. A, re-admitted,
removes its instance directory; both RBD images stay in the pool, and the
data volume's pattern reads back unchanged after the detach."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kumo.v1 import node_pb2, node_pb2_grpc
from kumo.v1 import volume_pb2 as vpb
from tests.ceph import CephCluster
from tests.cloudutil import ready_nodes, virsh
from tests.evacuationutil import Evacuation, two_hosts
from tests.test_volumes_e2e import Api
from tests.test_volumes_rbd_e2e import has_pattern, write_pattern

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cloud(ceph_cluster: CephCluster) -> Iterator[dict]:
    with two_hosts("evrbd", ceph_cluster.node_args()) as c:
        yield {**c, "ceph": ceph_cluster}


def test_an_rbd_server_is_evacuated_and_its_old_node_drops_its_copy(cloud: dict) -> None:
    ceph: CephCluster = cloud["ceph"]
    api = Api(cloud["admin"])
    nodes = api.admin.stub(node_pb2_grpc.NodeServiceStub)
    api.vol.CreateVolumeType(
        vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name="evac-ceph", backend="rbd"))
    )
    boot = api.create_volume("evrbd-boot", volume_type_id="evac-ceph", source_image_id=cloud["image"].id)
    data = api.create_volume("evrbd-data", volume_type_id="evac-ceph")
    images = {f"volume-{boot.id}", f"volume-{data.id}"}
    assert images <= set(ceph.images())
    write_pattern(ceph, f"volume-{data.id}", 0x3C)

    evac_b = {n.name: n.id for n in ready_nodes(api.admin)}["evrbd-b"]
    nodes.DisableNode(node_pb2.DisableNodeRequest(id=evac_b, reason="test: place on evrbd-a"))
    # Running on A (not waited for to boot: one TCG boot, on B, is what the
    # test needs; the shared-fs test watches the guest on A too).
    srv = api.compute.CreateInstance(
        api.cpb.CreateInstanceRequest(name="evrbd-srv", flavor="vol.small", boot_volume=boot.id)
    )
    api.wait_instance(srv.id, "ACTIVE")
    nodes.EnableNode(node_pb2.EnableNodeRequest(id=evac_b))
    evac = Evacuation(cloud, srv.id)
    assert api.compute.GetInstance(api.cpb.GetInstanceRequest(id=srv.id)).node_id == evac.a
    api.attach(data.id, srv.id)
    xml = virsh("dumpxml", evac.domain)
    assert f"{ceph.pool}/volume-{boot.id}" in xml and f"{ceph.pool}/volume-{data.id}" in xml, xml

    evac.lose_and_evacuate()
    evac.on_b(rf"^instance-id: {srv.id}")  # booted on B from the same RBD image
    evac.on_b(r"^KUMO-DISKS: vda vdb vdc\s*$")  # with its data volume
    assert {api.volume(v).node_id for v in (boot.id, data.id)} == {evac.b}
    xml = virsh("dumpxml", evac.domain)
    assert f"{ceph.pool}/volume-{boot.id}" in xml and str(cloud["state_b"]) in xml, xml

    evac.return_and_drop_copy(lambda: images <= set(ceph.images()))

    api.detach(data.id)
    assert has_pattern(ceph, f"volume-{data.id}", 0x3C), "the data volume's content survived the evacuation"
    evac.delete()
