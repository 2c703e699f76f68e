"""Volumes end to end with real libvirt and qemu (TCG) on this machine.

First the node alone (the volumes and instances steps driving the libvirt
driver, no controller): hot-plug and unplug seen by the guest, live extend,
live snapshot, attachments kept across a hard reboot and a new node daemon.
Then through the real controller and a real kumo-noded: attach and detach a
volume on a running server, data surviving re-attach to another server, a
volume from a snapshot, a server booted from a volume, attachments kept
across a noded restart and a hard reboot."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as npb
from noded.compute.image_cache import ImageCache
from noded.compute.step import ComputeStep
from noded.hypervisor.base import disk_serial
from noded.storage import make_volumes
from tests.cloudutil import (
    TEST_IMAGE,
    destroy_guests,
    libvirt_and_test_image,
    libvirt_cloud,
    ready_nodes,
    virsh,
)
from tests.harness import Client
from tests.netutil import state_dir
from tests.waits import diagnose, node_line, wait_reconciled, wait_until

pytestmark = pytest.mark.e2e

MiB = 1024**2


def qemu_io(path: Path, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(path)], capture_output=True, text=True)


def has_pattern(path: Path, pattern: int, offset: int = 0, length: int = MiB) -> bool:
    out = qemu_io(path, f"read -P {pattern:#x} {offset} {length}")
    return out.returncode == 0 and "verification failed" not in out.stdout


def write_pattern(path: Path, pattern: int, offset: int = 0, length: int = MiB) -> None:
    out = qemu_io(path, f"write -P {pattern:#x} {offset} {length}")
    assert out.returncode == 0 and "failed" not in out.stdout.lower(), out.stdout + out.stderr


def disks_lines(text: str) -> list[str]:
    """The guest's KUMO-DISKS reports, in order."""
    return [ln.strip() for ln in re.findall(r"^KUMO-DISKS:.*$", text, re.M)]


@pytest.fixture(scope="module")
def host() -> Iterator[Path]:
    libvirt_and_test_image()
    base = state_dir("kumo-vol-e2e-")
    try:
        yield base
    finally:
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


# The node alone


def test_node_hotplug_extend_snapshot_reboot_restart(host: Path) -> None:
    from noded.hypervisor.libvirt_driver import LibvirtDriver

    img = TEST_IMAGE.read_bytes()
    sha = hashlib.sha256(img).hexdigest()
    base = host / "node-only"
    cache = ImageCache(base / "images", lambda _s, offset: iter([img[offset:]]))
    drv = LibvirtDriver(virt_type="qemu", instances_dir=base / "instances")
    vols = make_volumes(drv, base / "volumes", cache)
    compute = ComputeStep(base / "instances", cache, None, None, vols.backend)
    iid = "5e1f0000-0000-4000-8000-000000000001"
    vid = "5e1f0000-0000-4000-8000-00000000000a"
    snap = "5e1f0000-0000-4000-8000-0000000000aa"
    console = base / "instances" / iid / "console.log"

    def apply(volumes: list[str], size_gb: int = 1, snaps: tuple[str, ...] = ()) -> None:
        inst = npb.DesiredInstance(
            id=iid,
            hostname="vol-node",
            image_sha256=sha,
            image_format=ipb.DISK_FORMAT_QCOW2,
            image_size_bytes=len(img),
            vcpus=1,
            ram_mb=256,
            disk_gb=1,
            power=npb.DESIRED_POWER_RUNNING,
            volume_ids=volumes,
        )
        state = npb.NodeDesiredState(
            enabled=True,
            volumes=[npb.DesiredVolume(id=vid, size_gb=size_gb, snapshot_ids=snaps)],
            instances=[inst],
        )
        vols(state, drv)
        compute(state, drv)

    def wait_console(pattern: str, count: int = 1) -> str:
        return wait_until(
            lambda: (
                console.exists()
                and len(re.findall(pattern, text := console.read_text(errors="replace"), re.M)) >= count
                and text
            ),
            what=f"{pattern!r} x{count} on the console",
            step=0.3,
            explain=lambda: diagnose(
                instance_id=iid, console=console.read_text(errors="replace") if console.exists() else ""
            ),
        )

    try:
        path = vols.backend.disk_source(vid).path
        apply([])
        assert path is not None and path.exists()
        wait_console(r"^KUMO-CONFIG-DRIVE: /dev/vdb")
        write_pattern(path, 0x3C)  # from the host, while no guest holds it

        apply([vid])
        text = wait_console(r"^KUMO-DISKS: vda vdb vdc\s*$")
        assert disks_lines(text)[-1] == "KUMO-DISKS: vda vdb vdc", "the guest sees the hot-plugged disk"
        assert compute.report_guests(drv.list_guests())[0].attached_volume_ids == [vid]
        assert qemu_io(path, "read 0 512").returncode != 0, "a running guest holds the volume's lock"

        # Extend through libvirt: the guest sees the new capacity at once.
        apply([vid], size_gb=2, snaps=(snap,))
        wait_console(r"vdc: detected capacity change")
        assert vols.report()[0].size_gb == 2 and list(vols.report()[0].snapshot_ids) == [snap]

        # A hard reboot keeps the definition's disks; so does a new node daemon.
        drv.reboot_guest(iid, hard=True)
        wait_console(r"^KUMO-CONFIG-DRIVE: /dev/vdb", 2)
        assert disks_lines(console.read_text(errors="replace"))[-1] == "KUMO-DISKS: vda vdb vdc"
        again = ComputeStep(base / "instances", cache, None, None, vols.backend)
        assert again.report_guests(drv.list_guests())[0].attached_volume_ids == [vid]
        assert [a.serial for a in drv.attached_disks(iid)] == [disk_serial(vid)]

        # Detach: the guest lets go (ACPI unplug), then it leaves the definition.
        started = time.monotonic()
        apply([], size_gb=2, snaps=(snap,))
        assert time.monotonic() - started < 30
        assert drv.attached_disks(iid) == []
        wait_console(r"^KUMO-DISKS: vda vdb\s*$", 2)
        assert disks_lines(console.read_text(errors="replace"))[-1] == "KUMO-DISKS: vda vdb"
        assert compute.report_guests(drv.list_guests())[0].attached_volume_ids == []
        assert has_pattern(path, 0x3C), "the data written before survives"
        assert f"<serial>{disk_serial(vid)}</serial>" not in virsh("dumpxml", "--inactive", f"kumo-{iid}")
    finally:
        drv.destroy_guest(iid)
        drv.close()


# Through the controller and a real kumo-noded


def _vol_api():  # type: ignore[no-untyped-def]
    """The volume API's modules (pytest skips, naming what is missing, when
    the controller side is not there)."""
    vpb = pytest.importorskip("kumo.v1.volume_pb2")
    vgrpc = pytest.importorskip("kumo.v1.volume_pb2_grpc")
    return vpb, vgrpc


@pytest.fixture(scope="module")
def cloud(host: Path) -> Iterator[dict]:
    _vol_api()
    with libvirt_cloud(host, "vol-e2e", "vol.small", reconcile_seconds=3) as c:
        yield c


class Api:
    """The few calls the scenario makes, with waits."""

    def __init__(self, admin: Client) -> None:
        from kumo.v1 import compute_pb2, compute_pb2_grpc

        self.vpb, vgrpc = _vol_api()
        self.cpb = compute_pb2
        self.admin = admin
        self.vol = admin.stub(vgrpc.VolumeServiceStub)
        self.compute = admin.stub(compute_pb2_grpc.ComputeServiceStub)

    def volume(self, vid: str):  # type: ignore[no-untyped-def]
        return self.vol.GetVolume(self.vpb.GetVolumeRequest(id=vid))

    def wait_volume(self, vid: str, state: str, timeout: float = 120):  # type: ignore[no-untyped-def]
        want = self.vpb.VolumeState.Value(f"VOLUME_STATE_{state}")

        def check():  # type: ignore[no-untyped-def]
            v = self.volume(vid)
            assert v.state != self.vpb.VOLUME_STATE_ERROR, v.fault
            return v if v.state == want else None

        return wait_until(
            check,
            what=f"volume {vid} {state}",
            base=timeout,
            step=0.3,
            explain=lambda: self.explain_volume(vid),
        )

    def explain_volume(self, vid: str) -> str:
        """The volume's state and fault, then the account of its server (or its node)."""
        v = self.volume(vid)
        head = f"volume {vid}: state {self.vpb.VolumeState.Name(v.state)}, fault {v.fault!r}"
        if v.instance_id:
            return f"{head}, on instance {v.instance_id}\n{diagnose(self.admin, v.instance_id)}"
        return f"{head}\n{diagnose(self.admin)}"

    def create_volume(self, name: str, size_gb: int = 1, **kw: str):  # type: ignore[no-untyped-def]
        v = self.vol.CreateVolume(
            self.vpb.CreateVolumeRequest(volume=self.vpb.Volume(name=name, size_gb=size_gb, **kw))
        )
        return self.wait_volume(v.id, "AVAILABLE")

    def attach(self, vid: str, iid: str) -> None:
        self.vol.AttachVolume(self.vpb.AttachVolumeRequest(id=vid, instance_id=iid))
        self.wait_volume(vid, "IN_USE")

    def detach(self, vid: str) -> None:
        self.vol.DetachVolume(self.vpb.DetachVolumeRequest(id=vid))
        self.wait_volume(vid, "AVAILABLE")

    def server(self, name: str, **kw: str):  # type: ignore[no-untyped-def]
        if "boot_volume" not in kw:
            kw.setdefault("image", "kumo-test")
        inst = self.compute.CreateInstance(
            self.cpb.CreateInstanceRequest(name=name, flavor="vol.small", **kw)
        )
        self.wait_instance(inst.id, "ACTIVE")
        self.wait_console(inst.id, rf"^instance-id: {inst.id}")
        return inst

    def wait_instance(self, iid: str, state: str, timeout: float = 120):  # type: ignore[no-untyped-def]
        want = self.cpb.InstanceState.Value(f"INSTANCE_STATE_{state}")

        def check():  # type: ignore[no-untyped-def]
            inst = self.compute.GetInstance(self.cpb.GetInstanceRequest(id=iid))
            assert inst.state != self.cpb.INSTANCE_STATE_ERROR, inst.fault
            return inst if inst.state == want else None

        return wait_until(
            check,
            what=f"instance {iid} {state}",
            base=timeout,
            step=0.3,
            explain=lambda: diagnose(self.admin, iid),
        )

    def console(self, iid: str) -> str:
        return self.compute.GetConsoleOutput(self.cpb.GetConsoleOutputRequest(id=iid)).output

    def wait_console(self, iid: str, pattern: str, count: int = 1, timeout: float = 120) -> str:
        """Waits for `count` matches of `pattern` on the console (`timeout`:
        quiet seconds, stretched under load)."""
        return wait_until(
            lambda: (text := self.console(iid)) and len(re.findall(pattern, text, re.M)) >= count and text,
            what=f"{pattern!r} x{count} on {iid}'s console",
            base=timeout,
            step=0.5,
            explain=lambda: diagnose(self.admin, iid),
        )

    def wait_disks(self, iid: str, disks: str) -> None:
        """Waits until the guest's latest KUMO-DISKS report is `disks`."""
        want = f"KUMO-DISKS: {disks}"
        wait_until(
            lambda: (lines := disks_lines(self.console(iid))) and lines[-1] == want,
            what=f"{want!r} on {iid}'s console",
            step=0.5,
            explain=lambda: f"reports: {disks_lines(self.console(iid))[-10:]}\n{diagnose(self.admin, iid)}",
        )


def test_volumes_through_the_controller(cloud: dict) -> None:
    api = Api(cloud["admin"])
    vol_dir = cloud["state"] / "volumes"
    a = api.server("vol-a")
    b = api.server("vol-b")
    api.wait_disks(a.id, "vda vdb")

    # Hot-plug into a running server; the guest reports the disk; then unplug.
    data = api.create_volume("data")
    path = vol_dir / f"{data.id}.qcow2"
    assert path.exists()
    write_pattern(path, 0x5A)  # from the host side, while detached
    api.attach(data.id, a.id)
    assert api.volume(data.id).instance_id == a.id
    api.wait_disks(a.id, "vda vdb vdc")
    api.detach(data.id)
    api.wait_disks(a.id, "vda vdb")

    # The data survives detach and re-attach to another server.
    api.attach(data.id, b.id)
    api.wait_disks(b.id, "vda vdb vdc")
    api.detach(data.id)
    api.wait_disks(b.id, "vda vdb")
    assert has_pattern(path, 0x5A)

    # A snapshot, then the volume changes; a volume from the snapshot has the old content.
    vpb = api.vpb
    snap = api.vol.CreateVolumeSnapshot(
        vpb.CreateVolumeSnapshotRequest(snapshot=vpb.VolumeSnapshot(name="data-snap", volume_id=data.id))
    )
    wait_until(
        lambda: (
            api.vol.GetVolumeSnapshot(vpb.GetVolumeSnapshotRequest(id=snap.id)).state
            == vpb.VOLUME_SNAPSHOT_STATE_AVAILABLE
        ),
        what="snapshot AVAILABLE",
        base=60,
        step=0.1,
        explain=lambda: api.explain_volume(data.id),
    )
    write_pattern(path, 0x11)
    copy = api.create_volume("data-copy", source_snapshot_id=snap.id)
    copy_path = vol_dir / f"{copy.id}.qcow2"
    assert has_pattern(copy_path, 0x5A) and has_pattern(path, 0x11)

    # A server boots from a volume made from the image.
    root = api.create_volume("root", source_image_id="kumo-test")
    assert root.bootable
    c = api.server("vol-c", boot_volume=root.id)
    api.wait_disks(c.id, "vda vdb")
    assert api.wait_volume(root.id, "IN_USE").boot
    assert not (cloud["state"] / "instances" / c.id / "disk.qcow2").exists(), "no image overlay"
    assert f"{root.id}.qcow2" in virsh("dumpxml", f"kumo-{c.id}")
    # Its instance snapshot is the volume's content, flattened: it boots.
    from kumo.v1 import image_pb2_grpc

    image_id = api.compute.CreateInstanceSnapshot(
        api.cpb.CreateInstanceSnapshotRequest(id=c.id, name="from-root")
    ).image_id
    images = api.admin.stub(image_pb2_grpc.ImageServiceStub)
    wait_until(
        lambda: images.GetImage(ipb.GetImageRequest(id=image_id)).status == ipb.IMAGE_STATUS_ACTIVE,
        what="snapshot image of a server booted from a volume ACTIVE",
        step=0.1,
        explain=lambda: diagnose(api.admin, c.id),
    )
    d = api.server("vol-d", image=image_id)

    # An attachment survives a noded restart (adopted, nothing replugged) and a hard reboot.
    api.attach(copy.id, a.id)
    api.wait_disks(a.id, "vda vdb vdc")
    reports = len(disks_lines(api.console(a.id)))
    cloud["node"].stop()
    cloud["node"].start()
    node_id = api.compute.GetInstance(api.cpb.GetInstanceRequest(id=a.id)).node_id
    wait_until(
        lambda: ready_nodes(api.admin),
        what="node READY again",
        base=30,
        step=0.1,
        explain=lambda: node_line(api.admin, node_id),
    )
    wait_reconciled(api.admin, node_id, cloud["state"])
    assert api.volume(copy.id).state == vpb.VOLUME_STATE_IN_USE
    assert len(disks_lines(api.console(a.id))) == reports, "not unplugged and plugged again"
    boots = len(re.findall(rf"^instance-id: {a.id}", api.console(a.id), re.M))
    api.compute.RebootInstance(api.cpb.RebootInstanceRequest(id=a.id, type=api.cpb.REBOOT_TYPE_HARD))
    api.wait_console(a.id, rf"^instance-id: {a.id}", count=boots + 1)
    assert disks_lines(api.console(a.id))[-1] == "KUMO-DISKS: vda vdb vdc"
    assert api.volume(copy.id).state == vpb.VOLUME_STATE_IN_USE

    # Clean up through the API: the node removes what it made.
    api.detach(copy.id)
    for iid in (a.id, b.id, c.id, d.id):
        api.compute.DeleteInstance(api.cpb.DeleteInstanceRequest(id=iid))
    api.vol.DeleteVolumeSnapshot(vpb.DeleteVolumeSnapshotRequest(id=snap.id))
    wait_until(
        lambda: api.volume(root.id).state == vpb.VOLUME_STATE_AVAILABLE,
        what="root freed",
        base=90,
        step=0.1,
        explain=lambda: api.explain_volume(root.id),
    )
    for vid in (data.id, copy.id, root.id):
        wait_until(
            lambda vid=vid: _try_delete(api, vid),
            what=f"volume {vid} deletable",
            base=60,
            step=0.1,
            explain=lambda vid=vid: api.explain_volume(vid),
        )
    wait_until(
        lambda: not list(vol_dir.glob("*.qcow2")),
        what="volume files removed",
        base=60,
        step=0.1,
        explain=lambda: (
            f"left: {sorted(f.name for f in vol_dir.glob('*.qcow2'))}\n{node_line(api.admin, node_id)}"
        ),
    )


def _try_delete(api: Api, vid: str) -> bool:
    import grpc

    try:
        api.vol.DeleteVolume(api.vpb.DeleteVolumeRequest(id=vid))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return False  # e.g. its snapshot is still being deleted
        raise
    return True
