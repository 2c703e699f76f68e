"""The shared-fs backend's guard against two nodes writing one volume, with
real libvirt and qemu (TCG): two node daemons' worth of steps on this host
(each its own instances directory, so each owns its own guests) share one
shared-fs directory. Node A's guest has the volume attached; node B sees the
same file, and a live attach of it to B's guest is refused by qemu's image
lock ("Failed to get write lock"), as it would be across hosts on NFSv4 or
CephFS. Once A's guest lets go, B's attach works and B's guest sees the data
A's side wrote. (The controller never asks for the double attach: a volume
attaches to one instance; this is the second line of defence.)"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as npb
from noded.compute.image_cache import ImageCache
from noded.compute.step import ComputeStep
from noded.hypervisor.base import DriverError, disk_serial
from noded.reconcile import Pending
from noded.storage import make_backend
from noded.storage.step import VolumeStep
from tests.cloudutil import TEST_IMAGE, destroy_guests, libvirt_and_test_image
from tests.netutil import state_dir
from tests.waits import diagnose, wait_until

pytestmark = pytest.mark.e2e

MiB = 1024**2


@pytest.fixture(scope="module")
def host() -> Iterator[Path]:
    libvirt_and_test_image()
    base = state_dir("kumo-sharedfs-e2e-")
    try:
        yield base
    finally:
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


class Node:
    """One node's volumes and instances steps on its own libvirt owner."""

    def __init__(self, base: Path, shared: Path, img: bytes) -> None:
        from noded.hypervisor.libvirt_driver import LibvirtDriver

        self.img, self.sha = img, hashlib.sha256(img).hexdigest()
        self.cache = ImageCache(base / "images", lambda _s, offset: iter([img[offset:]]))
        self.drv = LibvirtDriver(virt_type="qemu", instances_dir=base / "instances")
        self.backend = make_backend(self.drv, base / "volumes", shared_fs=shared)
        self.vols = VolumeStep(self.backend, self.cache)
        self.compute = ComputeStep(base / "instances", self.cache, None, None, self.backend)
        self.base = base

    def apply(self, iid: str, volumes: list[npb.DesiredVolume], attached: list[str]) -> None:
        inst = npb.DesiredInstance(
            id=iid,
            hostname="shared-fs",
            image_sha256=self.sha,
            image_format=ipb.DISK_FORMAT_QCOW2,
            image_size_bytes=len(self.img),
            vcpus=1,
            ram_mb=256,
            disk_gb=1,
            power=npb.DESIRED_POWER_RUNNING,
            volume_ids=attached,
        )
        state = npb.NodeDesiredState(enabled=True, volumes=volumes, instances=[inst])
        self.vols(state, self.drv)
        self.compute(state, self.drv)

    def detach(self, iid: str, volumes: list[npb.DesiredVolume]) -> None:
        """Passes until the guest has let go of its volumes (a pass waits 2 s, then is pending)."""

        def done() -> bool:
            try:
                self.apply(iid, volumes, [])
            except Pending:
                return False
            return True

        wait_until(
            done, what=f"{iid} to release its volumes", step=0.5, explain=lambda: diagnose(instance_id=iid)
        )

    def wait_console(self, iid: str, pattern: str) -> str:
        console = self.base / "instances" / iid / "console.log"
        return wait_until(
            lambda: (
                console.exists()
                and re.search(pattern, text := console.read_text(errors="replace"), re.M)
                and text
            ),
            what=f"{pattern!r} on {iid}'s console",
            step=0.3,
            explain=lambda: diagnose(instance_id=iid),
        )


def test_qemu_locks_keep_a_second_node_from_opening_a_shared_volume(host: Path) -> None:
    shared = host / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    img = TEST_IMAGE.read_bytes()
    a, b = Node(host / "a", shared, img), Node(host / "b", shared, img)
    ia, ib = "5ef50000-0000-4000-8000-00000000000a", "5ef50000-0000-4000-8000-00000000000b"
    vid = "5ef50000-0000-4000-8000-0000000000ff"
    want = [npb.DesiredVolume(id=vid, size_gb=1, backend="shared-fs")]
    try:
        a.apply(ia, want, [])
        path = shared / f"{vid}.qcow2"
        assert path.exists() and a.backend.volumes() == [], "a shared volume is not one of the node's own"
        out = subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x7e 0 {MiB}", str(path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        a.apply(ia, want, [vid])
        a.wait_console(ia, r"^KUMO-DISKS: vda vdb vdc\s*$")

        b.apply(ib, [], [])  # B's guest, without the volume; B deletes nothing in the shared directory
        b.wait_console(ib, r"^KUMO-DISKS: vda vdb\s*$")
        assert path.exists()
        with pytest.raises(DriverError, match="lock"):
            b.drv.attach_disk(ib, b.backend.disk_source(vid).disk("vdc", disk_serial(vid)))

        a.detach(ia, want)  # A's guest lets go, then B may open it
        b.apply(ib, want, [vid])
        b.wait_console(ib, r"^KUMO-DISKS: vda vdb vdc\s*$")
        assert [x.serial for x in b.drv.attached_disks(ib)] == [disk_serial(vid)]
        b.detach(ib, want)
        out = subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"read -P 0x7e 0 {MiB}", str(path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0 and "verification failed" not in out.stdout, out.stdout
        # Told to delete it (a shared volume goes only when told so).
        b.vols(
            npb.NodeDesiredState(
                enabled=True, volumes=[npb.DesiredVolume(id=vid, backend="shared-fs", delete=True)]
            ),
            b.drv,
        )
        assert not path.exists() and vid not in {s.volume_id for s in b.vols.report()}
    finally:
        for n, iid in ((a, ia), (b, ib)):
            n.drv.destroy_guest(iid)
            n.drv.close()
