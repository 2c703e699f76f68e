"""The instance sync's edge cases: a snapshot the node gave up on KILLs its
image with the node's reason (the node keeps the failure in every heartbeat
until the next snapshot), and a DELETING instance keeps its node's claim
while that node is disconnected, READY or DOWN (it may still run the guest),
freeing it once an admin fenced the node. Unit tests of the node's step and the controller's `_observe`, then
a controller with one real fake-driver noded whose snapshots fail."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from controller.db.models import Instance
from controller.domain.instances import (
    NODE_AWAY,
    NODE_GONE,
    NODE_REPORTING,
    SNAPSHOTTING,
    Instances,
    node_presence,
    power_state,
)
from controller.domain.node_registry import DOWN, READY, LiveView
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, image_pb2_grpc, node_pb2, node_pb2_grpc
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as npb
from noded.compute.step import ComputeStep
from noded.hypervisor.fake import FakeDriver
from tests.cloudutil import FakeCloud, fake_cloud
from tests.harness import Client
from tests.waits import wait_until

IID, IMG = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
GRACE = 12  # seconds a disconnected node stays READY
SYNC = 0.3


# The node: the snapshot's outcome is reported until the next snapshot


def snapshot_pass(tmp_path: Path, driver: FakeDriver, uploaded: list[bytes]) -> ComputeStep:
    """A ComputeStep that ran twice over one running instance asked for a snapshot."""

    def upload(instance_id: str, image_id: str, chunks: Iterator[bytes]) -> None:
        uploaded.append(b"".join(chunks))

    step = ComputeStep(tmp_path / "instances", None, upload, None)
    d = npb.DesiredInstance(
        id=IID, hostname="h", vcpus=1, ram_mb=512, power=npb.DESIRED_POWER_RUNNING, snapshot_image_id=IMG
    )
    for _ in range(2):  # the second pass must neither snapshot again nor forget the outcome
        step(npb.NodeDesiredState(instances=[d]), driver)
    return step


def test_a_failed_snapshot_stays_in_the_heartbeat(tmp_path: Path) -> None:
    driver = FakeDriver(fail_snapshots=True)
    step = snapshot_pass(tmp_path, driver, uploaded := [])
    (status,) = step.report_guests(driver.list_guests())
    assert uploaded == []
    assert status.snapshot_done_image_id == IMG
    assert (
        "snapshot failed" in status.snapshot_fault and "fake driver fails snapshots" in status.snapshot_fault
    )
    # A restarted noded reads the outcome from the instance's state file.
    again = ComputeStep(tmp_path / "instances", None, None, None)
    (status,) = again.report_guests(driver.list_guests())
    assert (status.snapshot_done_image_id, status.snapshot_fault) == (
        IMG,
        step.applied(IID)["snapshot_fault"],
    )


def test_a_fake_snapshot_uploads_a_qcow2_once(tmp_path: Path) -> None:
    driver = FakeDriver()
    step = snapshot_pass(tmp_path, driver, uploaded := [])
    (status,) = step.report_guests(driver.list_guests())
    assert len(uploaded) == 1 and uploaded[0].startswith(b"QFI\xfb")
    assert (status.snapshot_done_image_id, status.snapshot_fault) == (IMG, "")


# The controller: what one report means


def row(state: int, task: str = "", snapshot: str = "", fault: str = "") -> Instance:
    return Instance(id=IID, state=state, task=task, snapshot_image_id=snapshot, fault=fault, node="n")


def guest(**kw) -> npb.GuestStatus:  # type: ignore[no-untyped-def]
    return npb.GuestStatus(instance_id=IID, power_state=npb.GUEST_POWER_STATE_RUNNING, **kw)


def test_observe_kills_the_image_of_a_failed_snapshot() -> None:
    r = row(cpb.INSTANCE_STATE_ACTIVE, SNAPSHOTTING, IMG)
    seen = Instances._observe(
        r, guest(snapshot_done_image_id=IMG, snapshot_fault="snapshot failed: disk"), ""
    )
    assert seen.update == {"task": "", "snapshot_image_id": "", "fault": "snapshot failed: disk"}
    assert seen.bump and (seen.failed_snapshot, seen.snapshot_fault) == (IMG, "snapshot failed: disk")
    # A snapshot that worked clears the task and fails nothing.
    ok = Instances._observe(r, guest(snapshot_done_image_id=IMG), NODE_REPORTING)
    assert ok.update == {"task": "", "snapshot_image_id": ""} and ok.failed_snapshot == ""
    # Once settled, the outcome the node keeps reporting changes nothing.
    settled = row(cpb.INSTANCE_STATE_ACTIVE, fault="snapshot failed: disk")
    assert (
        Instances._observe(settled, guest(snapshot_done_image_id=IMG, snapshot_fault="x"), "").update is None
    )


def test_observe_frees_a_deleting_instance_only_without_its_node() -> None:
    r = row(cpb.INSTANCE_STATE_DELETING)
    assert Instances._observe(r, None, NODE_REPORTING).update == "delete"
    assert Instances._observe(r, guest(), NODE_REPORTING).update is None
    assert Instances._observe(r, None, NODE_AWAY).update is None  # briefly away: it may still run it
    assert Instances._observe(r, guest(), NODE_AWAY).update is None
    assert Instances._observe(r, guest(), NODE_GONE).update == "delete"


def test_node_presence() -> None:
    def view(status: str, connected: bool, heard: bool = True) -> LiveView:
        return LiveView(status, connected, 0.0, None, None, (), 0, "", heard=heard)

    assert node_presence(None) == NODE_GONE
    assert node_presence(view(DOWN, False)) == NODE_AWAY  # lost, not fenced: it may still run guests
    assert node_presence(view(DOWN, True)) == NODE_AWAY
    assert node_presence(view(DOWN, False), fenced=True) == NODE_GONE
    assert node_presence(view(READY, False)) == NODE_AWAY
    assert node_presence(view(READY, True, heard=False)) == NODE_AWAY  # no heartbeat yet: its guests unknown
    assert node_presence(view(READY, True)) == NODE_REPORTING


def test_power_state_is_unknown_while_the_node_cannot_be_trusted() -> None:
    placed = row(cpb.INSTANCE_STATE_ACTIVE)
    placed.node_id = "n1"
    running = (npb.GuestStatus(instance_id=IID, power_state=npb.GUEST_POWER_STATE_RUNNING),)

    def view(status: str, guests: tuple[npb.GuestStatus, ...] = running, heard: bool = True) -> LiveView:
        return LiveView(status, True, 0.0, None, None, guests, 0, "", heard=heard)

    assert power_state(placed, view(READY)) == cpb.POWER_STATE_RUNNING
    assert power_state(placed, view(READY, ())) == cpb.POWER_STATE_NO_GUEST
    assert power_state(placed, view(DOWN)) == cpb.POWER_STATE_UNKNOWN
    assert power_state(placed, view(READY, heard=False)) == cpb.POWER_STATE_UNKNOWN
    assert power_state(placed, None) == cpb.POWER_STATE_UNKNOWN
    unplaced = row(cpb.INSTANCE_STATE_ERROR)
    unplaced.node_id = ""
    assert power_state(unplaced, None) == cpb.POWER_STATE_NO_GUEST
    # The two enums share their numbers; a new guest power state must be added to both.
    for value in npb.GuestPowerState.values():
        if value:
            assert (
                cpb.PowerState.Name(value)[len("POWER_STATE_") :]
                == npb.GuestPowerState.Name(value)[len("GUEST_POWER_STATE_") :]
            )


# Against a real controller and a real fake-driver noded


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCloud]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        "KUMO_INSTANCE_SYNC_SECONDS": str(SYNC),
        "KUMO_NODE_GRACE_SECONDS": str(GRACE),
    }
    with fake_cloud(
        tmp_path_factory.mktemp("sync"), 1, "sync", env, node_args=["--fake-fail-snapshots"]
    ) as c:
        c.public_image("tiny")
        c.flavor("m1.tiny", vcpus=1, ram_mb=512)
        yield c


def compute(client: Client) -> compute_pb2_grpc.ComputeServiceStub:
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


def active_instance(admin: Client, name: str) -> cpb.Instance:
    made = compute(admin).CreateInstance(cpb.CreateInstanceRequest(name=name, image="tiny", flavor="m1.tiny"))
    get = compute(admin).GetInstance
    return wait_until(
        lambda: (i := get(cpb.GetInstanceRequest(id=made.id))).state == cpb.INSTANCE_STATE_ACTIVE and i,
        what=f"{name} ACTIVE",
        base=30,
    )


def test_a_failed_snapshot_kills_its_image_with_the_reason(cloud: FakeCloud) -> None:
    admin = cloud.admin
    inst = active_instance(admin, "snap")
    image_id = (
        compute(admin)
        .CreateInstanceSnapshot(cpb.CreateInstanceSnapshotRequest(id=inst.id, name="s"))
        .image_id
    )
    images = admin.stub(image_pb2_grpc.ImageServiceStub)
    image = wait_until(
        lambda: (
            (i := images.GetImage(ipb.GetImageRequest(id=image_id))).status != ipb.IMAGE_STATUS_QUEUED and i
        ),
        what="the snapshot image leaves QUEUED",
        base=30,
    )
    assert image.status == ipb.IMAGE_STATUS_KILLED
    assert inst.id in image.status_reason and "fake driver fails snapshots" in image.status_reason
    after = compute(admin).GetInstance(cpb.GetInstanceRequest(id=inst.id))
    assert after.state == cpb.INSTANCE_STATE_ACTIVE and after.task == ""
    assert "snapshot failed" in after.fault
    # The instance can snapshot again (the task is cleared).
    again = compute(admin).CreateInstanceSnapshot(cpb.CreateInstanceSnapshotRequest(id=inst.id, name="s2"))
    assert again.image_id != image_id


def claimed_vcpus(cloud: FakeCloud, node_id: str) -> int:
    db = sqlite3.connect(Path(cloud.ctl.data_dir) / "kumo.db")
    try:
        (used,) = db.execute("SELECT vcpus_used FROM node_usage WHERE node_id = ?", (node_id,)).fetchone()
    finally:
        db.close()
    return int(used)


def test_a_deleting_instance_keeps_its_claim_until_its_node_is_fenced(cloud: FakeCloud) -> None:
    """Last in this module: it stops the node."""
    admin = cloud.admin
    inst = active_instance(admin, "held")
    kept = active_instance(admin, "kept")
    nodes = admin.stub(node_pb2_grpc.NodeServiceStub)
    assert wait_until(
        lambda: (
            compute(admin).GetInstance(cpb.GetInstanceRequest(id=kept.id)).power_state
            == cpb.POWER_STATE_RUNNING
        ),
        what="kept reported running",
        base=30,
    )

    def node() -> node_pb2.Node:
        return nodes.GetNode(node_pb2.GetNodeRequest(id=inst.node_id))

    claimed = claimed_vcpus(cloud, inst.node_id)
    assert claimed >= 1
    cloud.procs[0].stop()
    wait_until(lambda: not node().connected, what="the node disconnected", base=30)
    # A snapshot the away node never makes: its image must not wait forever either.
    snap = compute(admin).CreateInstanceSnapshot(cpb.CreateInstanceSnapshotRequest(id=inst.id, name="never"))
    deleted_at = time.monotonic()
    compute(admin).DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    assert node().state == node_pb2.NODE_STATE_READY, "the node went DOWN before the test could look"

    # While the node is READY, the instance stays DELETING with its claim; the
    # instance is read first, so a node still READY after it proves it.
    ready_for = 0.0

    def held_while_ready() -> bool:
        nonlocal ready_for
        try:
            current = compute(admin).GetInstance(cpb.GetInstanceRequest(id=inst.id))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert node().state == node_pb2.NODE_STATE_DOWN, "freed while its node was READY"
            return True
        assert current.state == cpb.INSTANCE_STATE_DELETING
        used = claimed_vcpus(cloud, inst.node_id)
        if node().state != node_pb2.NODE_STATE_READY:
            return True
        assert used == claimed, "the claim went while the node was READY"
        ready_for = time.monotonic() - deleted_at
        return False

    wait_until(held_while_ready, what="the node no longer READY", base=GRACE * 3, step=0.2)
    assert ready_for > 5 * SYNC, f"the node was READY for only {ready_for:.1f} s after the delete"

    # DOWN but not fenced: the guest may still run there, so nothing is freed.
    wait_until(lambda: node().state == node_pb2.NODE_STATE_DOWN, what="the node DOWN", base=GRACE * 3)
    down_at = time.monotonic()
    while time.monotonic() - down_at < 6 * SYNC:  # several sync passes see it DOWN
        current = compute(admin).GetInstance(cpb.GetInstanceRequest(id=inst.id))
        assert current.state == cpb.INSTANCE_STATE_DELETING, "freed while its node was DOWN, unfenced"
        assert claimed_vcpus(cloud, inst.node_id) == claimed
        time.sleep(SYNC)
    # Fenced: the admin's word that the guest is gone, so the claim is freed.
    assert nodes.FenceNode(node_pb2.FenceNodeRequest(id=inst.node_id)).fenced

    def gone() -> bool:
        try:
            compute(admin).GetInstance(cpb.GetInstanceRequest(id=inst.id))
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.NOT_FOUND
        return False

    wait_until(gone, what="the instance forgotten", base=30)
    assert claimed_vcpus(cloud, inst.node_id) == claimed - 1
    # The node's other guest may still run there: its power is not known, and
    # nothing of it is freed.
    still = compute(admin).GetInstance(cpb.GetInstanceRequest(id=kept.id))
    assert (still.state, still.power_state) == (cpb.INSTANCE_STATE_ACTIVE, cpb.POWER_STATE_UNKNOWN)
    image = admin.stub(image_pb2_grpc.ImageServiceStub).GetImage(ipb.GetImageRequest(id=snap.image_id))
    assert image.status == ipb.IMAGE_STATUS_KILLED and "deleted before its snapshot" in image.status_reason
