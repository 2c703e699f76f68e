"""End to end with real libvirt and qemu (TCG) on this machine: a server from
the test image prints its own instance-id; stop, start, reboot; a snapshot
boots a second server; delete leaves no domain, disk or config drive."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc, image_pb2_grpc
from kumo.v1 import image_pb2 as ipb
from tests.cloudutil import e2e_cloud, ready_nodes, virsh
from tests.harness import Client
from tests.waits import diagnose, node_line, wait_gone, wait_reconciled, wait_until

pytestmark = pytest.mark.e2e

MARKER = "KUMO-TEST-IMAGE-BOOTED"


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    with e2e_cloud("kumo-e2e-", "e2e-host", "e2e.small", reconcile_seconds=5) as c:
        yield c


def wait_state(client: Client, iid: str, state: int, timeout: float = 120) -> pb.Instance:
    """Waits for `state` (`timeout`: quiet seconds, stretched under load)."""

    def check() -> pb.Instance | None:
        inst = compute(client).GetInstance(pb.GetInstanceRequest(id=iid))
        assert inst.state != pb.INSTANCE_STATE_ERROR, inst.fault
        return inst if inst.state == state else None

    return wait_until(
        check,
        what=f"{iid} {pb.InstanceState.Name(state)}",
        base=timeout,
        step=0.3,
        explain=lambda: diagnose(client, iid),
    )


def console(client: Client, iid: str) -> str:
    return compute(client).GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid)).output


def wait_console(client: Client, iid: str, pattern: str, count: int = 1, timeout: float = 120) -> str:
    """Waits for `count` matches of `pattern` on the console (`timeout`: quiet
    seconds, stretched under load)."""
    return wait_until(
        lambda: (text := console(client, iid)) and len(re.findall(pattern, text)) >= count and text,
        what=f"{pattern!r} x{count} on {iid}'s console",
        base=timeout,
        step=0.5,
        explain=lambda: diagnose(client, iid),
    )


def test_server_lifecycle_snapshot_and_cleanup(cloud: dict) -> None:
    admin: Client = cloud["admin"]
    c = compute(admin)
    inst = c.CreateInstance(pb.CreateInstanceRequest(name="vm1", image="kumo-test", flavor="e2e.small"))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    text = wait_console(admin, inst.id, rf"instance-id: {inst.id}")
    assert "hostname: vm1" in text
    assert f"kumo-{inst.id}" in virsh("list", "--name")

    c.StopInstance(pb.StopInstanceRequest(id=inst.id))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_STOPPED)
    assert f"kumo-{inst.id}" not in virsh("list", "--name")  # not running
    c.StartInstance(pb.StartInstanceRequest(id=inst.id))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    # Each boot prints its instance-id once /init is through (acpid up), so
    # the next power action waits for it rather than cutting a boot short.
    booted = rf"instance-id: {inst.id}"
    wait_console(admin, inst.id, booted, count=2)
    c.RebootInstance(pb.RebootInstanceRequest(id=inst.id, type=pb.REBOOT_TYPE_HARD))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    wait_console(admin, inst.id, booted, count=3)
    c.RebootInstance(pb.RebootInstanceRequest(id=inst.id, type=pb.REBOOT_TYPE_SOFT))
    text = wait_console(admin, inst.id, booted, count=4)
    assert "KUMO-POWEROFF" in text.split(MARKER)[-2], "a soft reboot goes through the guest's ACPI handler"
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)

    snap_id = c.CreateInstanceSnapshot(pb.CreateInstanceSnapshotRequest(id=inst.id, name="vm1-snap")).image_id
    images = admin.stub(image_pb2_grpc.ImageServiceStub)
    snap = wait_until(
        lambda: (
            (i := images.GetImage(ipb.GetImageRequest(id=snap_id))).status == ipb.IMAGE_STATUS_ACTIVE and i
        ),
        what="snapshot image ACTIVE",
        step=0.1,
        explain=lambda: diagnose(admin, inst.id),
    )
    assert snap.disk_format == ipb.DISK_FORMAT_QCOW2 and snap.size_bytes > 0
    wait_until(
        lambda: compute(admin).GetInstance(pb.GetInstanceRequest(id=inst.id)).task == "",
        what="task cleared",
        base=30,
        step=0.1,
        explain=lambda: diagnose(admin, inst.id),
    )

    second = c.CreateInstance(pb.CreateInstanceRequest(name="vm2", image=snap_id, flavor="e2e.small"))
    wait_state(admin, second.id, pb.INSTANCE_STATE_ACTIVE)
    wait_console(admin, second.id, rf"instance-id: {second.id}")

    # A noded restart leaves running guests running and adopts them.
    boots = console(admin, second.id).count(MARKER)
    cloud["node"].stop()
    assert f"kumo-{second.id}" in virsh("list", "--name"), "the guest outlives its node daemon"
    cloud["node"].start()
    node_id = c.GetInstance(pb.GetInstanceRequest(id=second.id)).node_id
    wait_until(
        lambda: ready_nodes(admin),
        what="node READY again",
        base=30,
        step=0.1,
        explain=lambda: node_line(admin, node_id),
    )
    wait_reconciled(admin, node_id, cloud["state"])  # it has its desired state and has reconciled
    assert wait_state(admin, second.id, pb.INSTANCE_STATE_ACTIVE)
    assert console(admin, second.id).count(MARKER) == boots, "adopted, not rebooted"

    instances_dir = cloud["state"] / "instances"
    for iid in (inst.id, second.id):
        assert (instances_dir / iid / "disk.qcow2").exists()
        assert (instances_dir / iid / "config.iso").exists()
        c.DeleteInstance(pb.DeleteInstanceRequest(id=iid))
    for iid in (inst.id, second.id):
        wait_gone(admin, iid)
        wait_until(
            lambda iid=iid: not (instances_dir / iid).exists(),
            what="instance files removed",
            base=30,
            step=0.1,
            explain=lambda iid=iid: diagnose(admin, iid),
        )
        assert f"kumo-{iid}" not in virsh("list", "--all", "--name")
    # The node downloaded the test image once and the snapshot once.
    log = cloud["node"].log()
    assert log.count("image cached") == 2, log[-2000:]
