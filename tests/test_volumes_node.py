"""The node side of volumes without a controller: the local qcow2 backend
(content checked with qemu-io), the volumes reconcile step, and attachments
through the instances step on the fake driver."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as pb
from noded.compute.image_cache import ImageCache
from noded.compute.step import ComputeStep, disk_target
from noded.hypervisor.base import RUNNING, disk_serial
from noded.hypervisor.domain_xml import DiskSpec, NetworkDisk, disk_xml
from noded.hypervisor.fake import FakeDriver
from noded.reconcile import Pending
from noded.storage import make_volumes
from noded.storage.backend import StorageError
from noded.storage.local import LocalBackend
from noded.storage.memory import MemoryBackend
from noded.storage.step import GiB, VolumeStep
from tests.waits import wait_until

V1 = "11111111-1111-4111-8111-111111111111"
V2 = "22222222-2222-4222-8222-222222222222"
V3 = "33333333-3333-4333-8333-333333333333"
S1 = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
S2 = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
I1 = "99999999-9999-4999-8999-999999999999"
I2 = "88888888-8888-4888-8888-888888888888"
MiB = 1024**2


def write_locked(path: Path) -> bool:
    """A qemu process holds the image open for writing: an OFD lock on byte
    101 (qemu's lock bytes are 100 + permission bit; 1 is write). Read from
    /proc/locks, since probing with qemu-img would take locks itself and
    could make the holder fail to open the image."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "OFDLCK" in fields and inode in fields:
            start, end = fields[-2:]
            if int(start) <= 101 and (end == "EOF" or int(end) >= 101):
                return True
    return False


def qemu_io(path: Path, cmd: str) -> str:
    out = subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "fail" not in out.stdout.lower(), out.stdout + out.stderr
    return out.stdout


def has_pattern(path: Path, pattern: int, offset: int = 0, length: int = MiB) -> bool:
    out = subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"read -P {pattern:#x} {offset} {length}", str(path)],
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and "verification failed" not in out.stdout


def info(path: Path) -> str:
    return subprocess.run(
        ["qemu-img", "info", "-f", "qcow2", str(path)], capture_output=True, text=True, check=True
    ).stdout


# The local backend


def test_local_backend_volumes_and_snapshots(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "volumes")
    assert b.volumes() == [] and not b.exists(V1)
    b.create_empty(V1, GiB)
    assert b.volumes() == [V1] and b.size(V1) == GiB
    assert b.disk_source(V1).path == tmp_path / "volumes" / f"{V1}.qcow2"
    assert b.disk_source(V1).fmt == "qcow2"
    path = b.disk_source(V1).path
    assert path is not None
    qemu_io(path, "write -P 0xab 0 1M")

    b.extend(V1, 2 * GiB)
    assert b.size(V1) == 2 * GiB
    b.extend(V1, GiB)  # never shrinks
    assert b.size(V1) == 2 * GiB

    b.snapshot_create(V1, S1, live=False)
    qemu_io(path, "write -P 0xcd 0 1M")  # the volume changes after the snapshot
    assert b.snapshots(V1) == [S1]

    b.create_from_snapshot(V2, S1, GiB)
    p2 = b.disk_source(V2).path
    assert p2 is not None
    assert has_pattern(p2, 0xAB), "a volume from a snapshot has the snapshot's content"
    assert b.size(V2) == 2 * GiB, "at least the snapshot's size"
    assert has_pattern(path, 0xCD) and not has_pattern(path, 0xAB)
    assert "backing file" not in info(p2), "a full copy, not an overlay on the snapshot"

    b.create_from_snapshot(V3, S1, 3 * GiB)
    assert b.size(V3) == 3 * GiB
    with pytest.raises(StorageError, match="not on this node"):
        b.create_from_snapshot("44444444-4444-4444-8444-444444444444", S2, GiB)

    b.snapshot_delete(S1)
    b.snapshot_delete(S1)  # idempotent
    assert b.snapshots(V1) == []
    b.snapshot_create(V1, S2, live=False)
    b.delete(V1)
    b.delete(V1)
    assert not b.exists(V1) and b.volumes() == [V2, V3]
    assert not (tmp_path / "volumes" / "snapshots" / V1).exists(), "a volume's snapshots go with it"
    with pytest.raises(StorageError):
        b.create_empty("../escape", GiB)


def test_local_backend_from_image(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "volumes")
    raw = tmp_path / "image.raw"
    raw.write_bytes(b"\x5a" * (4 * MiB))
    b.create_from_image(V1, raw, "raw", GiB)
    p = b.disk_source(V1).path
    assert p is not None
    assert has_pattern(p, 0x5A, 0, 4 * MiB) and b.size(V1) == GiB

    q = tmp_path / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(q), "8M"], check=True)
    qemu_io(q, "write -P 0x77 1M 1M")
    b.create_from_image(V2, q, "qcow2", GiB)
    p2 = b.disk_source(V2).path
    assert p2 is not None and has_pattern(p2, 0x77, MiB, MiB)

    # An image that refers to another file is refused, and leaves nothing.
    evil = tmp_path / "evil.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(raw), str(evil)], check=True
    )
    with pytest.raises(StorageError, match="refers to another file"):
        b.create_from_image(V3, evil, "qcow2", GiB)
    assert not b.exists(V3)
    with pytest.raises(StorageError, match="format"):
        b.create_from_image(V3, raw, "vmdk", GiB)


def test_local_backend_half_made_files_never_count(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "volumes")
    (tmp_path / "volumes" / f"{V1}.qcow2.part").write_bytes(b"half")  # a crash mid-create
    assert not b.exists(V1) and b.volumes() == []
    b.create_empty(V1, GiB)  # made again from scratch
    assert b.exists(V1) and not (tmp_path / "volumes" / f"{V1}.qcow2.part").exists()
    # A failed create leaves nothing behind.
    with pytest.raises(StorageError):
        b.create_from_image(V2, tmp_path / "missing.raw", "raw", GiB)
    assert sorted(p.name for p in (tmp_path / "volumes").iterdir()) == [f"{V1}.qcow2", "snapshots"]


def test_live_snapshot_of_a_locked_volume(tmp_path: Path) -> None:
    """A running guest holds the volume's lock: snapshots use force-share."""
    b = LocalBackend(tmp_path / "volumes")
    b.create_empty(V1, GiB)
    path = b.disk_source(V1).path
    assert path is not None
    qemu_io(path, "write -P 0x42 0 1M")
    # qemu-io with an open image keeps the write lock while it waits on stdin.
    holder = subprocess.Popen(
        ["qemu-io", "-f", "qcow2", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: write_locked(path), what="qemu-io holding the volume's lock", base=30, step=0.05)
        with pytest.raises(StorageError):
            b.snapshot_create(V1, S1, live=False)
        b.snapshot_create(V1, S1, live=True)
        with pytest.raises(StorageError):
            b.extend(V1, 2 * GiB)  # offline resize of a used volume is refused
    finally:
        holder.communicate("quit\n", timeout=10)
    b.create_from_snapshot(V2, S1, GiB)
    p2 = b.disk_source(V2).path
    assert p2 is not None and has_pattern(p2, 0x42)


def test_disk_xml_file_and_network() -> None:
    f = disk_xml(DiskSpec(Path("/v/x.qcow2"), "qcow2", "vdc", serial=disk_serial(V1)))
    assert "type='file'" in f and f"<serial>{V1[:20]}</serial>" in f and 'type="qcow2"' in f
    n = disk_xml(
        DiskSpec(
            Path(""),
            "raw",
            "vdd",
            serial="s",
            network=NetworkDisk("rbd", "kumo/volume-x", (("10.0.0.1", 6789),), "kumo", "1234"),
        )
    )
    assert "type='network'" in n and 'protocol="rbd"' in n and 'name="kumo/volume-x"' in n
    assert "<secret type='ceph' uuid=\"1234\"/>" in n and "<host name=\"10.0.0.1\" port='6789'/>" in n
    assert [disk_target(i) for i in (0, 2, 25, 26, 27)] == ["vda", "vdc", "vdz", "vdaa", "vdab"]


# The volumes step


def blob_cache(tmp_path: Path, data: bytes) -> tuple[ImageCache, str]:
    sha = hashlib.sha256(data).hexdigest()

    def fetch(sha256: str, offset: int) -> Iterator[bytes]:
        assert sha256 == sha
        yield data[offset:]

    return ImageCache(tmp_path / "images", fetch), sha


def desired(
    *volumes: pb.DesiredVolume, instances: tuple[pb.DesiredInstance, ...] = ()
) -> pb.NodeDesiredState:
    return pb.NodeDesiredState(enabled=True, volumes=list(volumes), instances=list(instances))


def statuses(step: VolumeStep) -> dict[str, pb.VolumeStatus]:
    return {s.volume_id: s for s in step.report()}


def test_volume_step_makes_grows_snapshots_and_deletes(tmp_path: Path) -> None:
    image = b"\x61" * (2 * MiB)
    cache, sha = blob_cache(tmp_path, image)
    backend = LocalBackend(tmp_path / "volumes")
    step = VolumeStep(backend, cache)
    drv = FakeDriver()
    empty = pb.DesiredVolume(id=V1, size_gb=1)
    from_image = pb.DesiredVolume(
        id=V2, size_gb=1, image_sha256=sha, image_format=ipb.DISK_FORMAT_RAW, image_size_bytes=len(image)
    )
    step(desired(empty, from_image), drv)
    st = statuses(step)
    assert st[V1].size_gb == 1 and st[V2].size_gb == 1 and not st[V1].fault
    p2 = backend.disk_source(V2).path
    assert p2 is not None and has_pattern(p2, 0x61, 0, 2 * MiB)
    mtime = p2.stat().st_mtime_ns
    step(desired(empty, from_image), drv)  # level-triggered: nothing done twice
    assert p2.stat().st_mtime_ns == mtime and cache.downloads == 1

    p1 = backend.disk_source(V1).path
    assert p1 is not None
    qemu_io(p1, "write -P 0xee 0 1M")
    snap = pb.DesiredVolume(id=V1, size_gb=2, snapshot_ids=[S1])
    step(desired(snap, from_image), drv)
    assert statuses(step)[V1].size_gb == 2 and list(statuses(step)[V1].snapshot_ids) == [S1]
    from_snap = pb.DesiredVolume(id=V3, size_gb=1, source_snapshot_id=S1)
    # The snapshot is dropped in the same pass the new volume is made from it.
    step(desired(pb.DesiredVolume(id=V1, size_gb=2), from_image, from_snap), drv)
    p3 = backend.disk_source(V3).path
    assert p3 is not None and has_pattern(p3, 0xEE)
    st = statuses(step)
    assert list(st[V1].snapshot_ids) == [] and st[V3].size_gb == 2

    # Faults are per volume; the others still converge.
    bad = pb.DesiredVolume(id="44444444-4444-4444-8444-444444444444", size_gb=1, source_snapshot_id=S2)
    with pytest.raises(RuntimeError, match="not on this node"):
        step(desired(pb.DesiredVolume(id=V1, size_gb=3), bad), drv)
    st = statuses(step)
    assert "not on this node" in st[bad.id].fault and st[bad.id].size_gb == 0
    assert st[V1].size_gb == 3 and not st[V1].fault
    # V2, V3 were not desired any more: deleted (reported until then, not after).
    assert backend.volumes() == [V1] and set(st) == {V1, bad.id}
    step(desired(), drv)
    assert backend.volumes() == [] and step.report() == []


def test_volume_step_live_extend_and_attached_volume_not_deleted(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "volumes")
    step = VolumeStep(backend, None)
    drv = FakeDriver()
    step(desired(pb.DesiredVolume(id=V1, size_gb=1)), drv)
    assert statuses(VolumeStep(backend, None))[V1].size_gb == 1, "a restarted node reports what it holds"
    drv.add_guest(I1, state=RUNNING)
    drv.attach_disk(I1, backend.disk_source(V1).disk("vdc", disk_serial(V1)))
    assert step.users(drv, {V1}) == {V1: (I1, True)}
    step(desired(pb.DesiredVolume(id=V1, size_gb=2)), drv)
    assert drv.live_size(I1, disk_serial(V1)) == 2 * GiB, "grown through the hypervisor"
    with pytest.raises(RuntimeError, match="still attached"):
        step(desired(), drv)
    assert backend.exists(V1)
    assert drv.detach_disk(I1, disk_serial(V1), 1)
    step(desired(), drv)
    assert not backend.exists(V1)


def test_make_volumes_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(make_volumes(FakeDriver(), tmp_path, None).backend.get("local"), MemoryBackend)


def test_in_memory_volumes_for_the_fake_driver(tmp_path: Path) -> None:
    """Simulated fleets: volumes from images (no image file) and live extends converge."""
    drv = FakeDriver()
    step = make_volumes(drv, tmp_path, None)
    img = pb.DesiredVolume(
        id=V1, size_gb=1, image_sha256="ab" * 32, image_format=ipb.DISK_FORMAT_QCOW2, image_size_bytes=10
    )
    step(desired(img, pb.DesiredVolume(id=V2, size_gb=1, snapshot_ids=[S1])), drv)
    step(desired(img, pb.DesiredVolume(id=V3, size_gb=1, source_snapshot_id=S1)), drv)
    assert {v: s.size_gb for v, s in statuses(step).items()} == {V1: 1, V3: 1}
    drv.add_guest(I1, state=RUNNING)
    drv.attach_disk(I1, step.backend.disk_source(V1).disk("vdc", disk_serial(V1)))
    step(desired(pb.DesiredVolume(id=V1, size_gb=3)), drv)
    assert statuses(step)[V1].size_gb == 3 and drv.live_size(I1, disk_serial(V1)) == 3 * GiB


# Attachments through the instances step (fake driver, in-memory volumes)


def instance(iid: str, volumes: list[str], boot: str = "", power: int = pb.DESIRED_POWER_RUNNING):  # type: ignore[no-untyped-def]
    return pb.DesiredInstance(
        id=iid,
        hostname="h",
        vcpus=1,
        ram_mb=256,
        disk_gb=1,
        power=power,
        volume_ids=volumes,
        boot_volume_id=boot,
        image_sha256="" if boot else "0" * 64,
    )


def guest_volumes(step: ComputeStep, drv: FakeDriver, iid: str) -> list[str]:
    return next(
        list(g.attached_volume_ids) for g in step.report_guests(drv.list_guests()) if g.instance_id == iid
    )


def test_attach_detach_and_boot_from_volume_on_the_fake_driver(tmp_path: Path) -> None:
    drv = FakeDriver()
    vols = make_volumes(drv, tmp_path / "volumes", None)
    compute = ComputeStep(tmp_path / "instances", None, None, None, vols.backend)
    vs = [pb.DesiredVolume(id=v, size_gb=1) for v in (V1, V2, V3)]

    def apply(*instances: pb.DesiredInstance) -> None:
        state = desired(*vs, instances=instances)
        vols(state, drv)
        compute(state, drv)

    # Defined with a volume; another hot-plugged later; then one detached.
    apply(instance(I1, [V1]), instance(I2, [], boot=V3))
    assert [(a.serial, a.target) for a in drv.attached_disks(I1)] == [(disk_serial(V1), "vdc")]
    assert [(a.serial, a.target) for a in drv.attached_disks(I2)] == [(disk_serial(V3), "vda")]
    assert guest_volumes(compute, drv, I2) == [], "the boot volume is not an attachment"
    apply(instance(I1, [V1, V2]), instance(I2, [], boot=V3))
    assert [a.target for a in drv.attached_disks(I1)] == ["vdc", "vdd"]
    assert guest_volumes(compute, drv, I1) == [V1, V2]
    apply(instance(I1, [V2]), instance(I2, [], boot=V3))
    assert [(a.serial, a.target) for a in drv.attached_disks(I1)] == [(disk_serial(V2), "vdd")]
    assert guest_volumes(compute, drv, I1) == [V2]
    apply(instance(I1, [V2]), instance(I2, [V1], boot=V3))  # re-attached to another server
    assert guest_volumes(compute, drv, I2) == [V1]
    assert drv.attached_disks(I2)[1].target == "vdc"

    # A new node daemon (restart) adopts the guests and reports from what it recorded.
    again = ComputeStep(tmp_path / "instances", None, None, None, vols.backend)
    assert guest_volumes(again, drv, I1) == [V2]
    again(desired(*vs, instances=(instance(I1, [V2]), instance(I2, [V1], boot=V3))), drv)
    assert guest_volumes(again, drv, I1) == [V2]

    # A volume not made yet: a fault on the instance, attached once it exists.
    compute = ComputeStep(tmp_path / "instances", None, None, None, MemoryBackend())
    with pytest.raises(RuntimeError, match="not on this node"):
        compute(desired(instances=(instance(I1, [V2, V1]),)), drv)
    assert "not on this node" in compute.faults[I1]


def test_a_detach_the_guest_ignores_does_not_hold_up_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest that keeps an unplugged disk: the pass reports Pending (not a
    failure), the disk stays attached (the volume stays DETACHING), the other
    instances still converge, and the next pass after the release finishes."""
    drv = FakeDriver()
    vols = make_volumes(drv, tmp_path / "volumes", None)
    compute = ComputeStep(tmp_path / "instances", None, None, None, vols.backend)
    vs = [pb.DesiredVolume(id=v, size_gb=1) for v in (V1, V2)]

    def apply(*instances: pb.DesiredInstance) -> None:
        state = desired(*vs, instances=instances)
        vols(state, drv)
        compute(state, drv)

    apply(instance(I1, [V1]))
    drv.held.add((I1, disk_serial(V1)))
    with pytest.raises(Pending, match=V1):
        apply(instance(I1, []), instance(I2, [V2]))
    assert guest_volumes(compute, drv, I1) == [V1], "still held: still attached"
    assert guest_volumes(compute, drv, I2) == [V2], "the other instance was not held up"
    assert I1 not in compute.faults, "a wait, not a fault, for the first DETACH_WARN_AFTER s"
    # Held past DETACH_WARN_AFTER: the instance's fault says so, and what to do.
    monkeypatch.setattr("noded.compute.step.DETACH_WARN_AFTER", 0.0)
    with pytest.raises(Pending):
        apply(instance(I1, []), instance(I2, [V2]))
    assert V1 in compute.faults[I1] and "stop the server" in compute.faults[I1]
    # Stopping the guest finishes the detach (a stopped guest holds nothing live).
    apply(instance(I1, [], power=pb.DESIRED_POWER_STOPPED), instance(I2, [V2]))
    assert guest_volumes(compute, drv, I1) == [] and I1 not in compute.faults
    drv.held.clear()
    apply(instance(I1, []), instance(I2, [V2]))
    assert guest_volumes(compute, drv, I1) == []


def test_reconciler_retries_a_pending_pass_soon_and_acks_it_once_done() -> None:
    """Pending is neither an error nor applied: no ack until the step is done,
    and the next pass comes after PENDING_RETRY s, not the full period."""
    import asyncio
    import itertools
    import time

    from noded.reconcile import PENDING_RETRY, PassResult, Reconciler

    calls: list[float] = []

    def step(_desired: pb.NodeDesiredState, _driver: object) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Pending("the guest still holds a disk")

    async def scenario() -> list[PassResult]:
        acks: list[PassResult] = []

        async def on_applied(result: PassResult) -> None:
            acks.append(result)

        rec = Reconciler(FakeDriver(), [step], period=60.0, on_applied=on_applied)
        rec.set_desired(pb.NodeDesiredState(enabled=True), 7)
        task = asyncio.create_task(rec.run())
        while len(calls) < 3:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        task.cancel()
        assert rec.applied_revision == 7
        return acks

    acks = asyncio.run(scenario())
    assert [(a.revision, a.error) for a in acks] == [(7, "")], "one ack, when done"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(PENDING_RETRY * 0.9 <= g < 10 for g in gaps), f"retried after {gaps} s, period 60 s"


def test_controller_shows_a_guest_that_keeps_a_detached_disk_on_the_volume() -> None:
    """The node's fault about a disk its guest keeps goes on the DETACHING
    volume, and away once the node stops saying so or the detach finishes."""
    from controller.db.models import Volume
    from controller.domain.volumes.sync import observe as observe_volume
    from kumo.v1 import compute_pb2 as cpb
    from kumo.v1 import volume_pb2 as vpb

    row = Volume(id=V1, state=vpb.VOLUME_STATE_DETACHING, instance_id=I1, fault="")
    fault = f"the guest has not released volume(s) {V1} for over 60 s; stop the server to finish the detach"
    instances = {I1: cpb.INSTANCE_STATE_ACTIVE}

    def observe(guest: pb.GuestStatus) -> object:
        return observe_volume(row, None, {I1: guest}, instances, True)

    holding = pb.GuestStatus(instance_id=I1, attached_volume_ids=[V1])
    assert observe(holding) is None, "still detaching, nothing to say yet"
    assert observe(pb.GuestStatus(instance_id=I1, attached_volume_ids=[V1], fault=fault)) == {"fault": fault}
    row.fault = fault
    assert observe(holding) == {"fault": ""}
    released = observe(pb.GuestStatus(instance_id=I1))
    assert isinstance(released, dict) and released["state"] == vpb.VOLUME_STATE_AVAILABLE
    assert released["fault"] == ""
    row.fault = "an older failure of another kind"
    assert observe(holding) is None, "other faults are not the node's to clear here"
