"""A guest's part in a move (cold migration, resize; docs/moves.md), run by
the instances step for a DesiredInstance that names one:

- export: with the guest stopped, its root disk flattened (backing chain
  merged) and uploaded with UploadSnapshot (move_id), once per move;
- import: the root disk replaced by a move's disk blob (fetched through the
  image cache with DownloadBlob, sha256-verified), once per blob;
- resize: a stopped guest's root disk grown (qemu-img resize) and its
  definition replaced when its vCPUs, memory or disk differ from the desired.

What was applied goes into the instance's state.json (export_done,
disk_from, disk_gb), so a noded restart repeats nothing."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from kumo.v1 import node_agent_pb2 as pb
from noded.compute import guest_files
from noded.compute.image_cache import ImageCache
from noded.hypervisor.base import RUNNING, Guest, HypervisorDriver
from noded.reconcile import Pending

log = logging.getLogger("kumo.noded.compute")

GIB = 1024**3
# upload_disk(instance_id, move_id, chunks) sends a move's disk to the controller.
UploadDisk = Callable[[str, str, Iterator[bytes]], None]
Applied = Callable[[str], dict[str, object]]
Record = Callable[..., None]


def root_gb(disk: Path) -> int:
    return math.ceil(guest_files.virtual_size(disk, "qcow2") / GIB)


def check_standalone(disk: Path) -> None:
    """A move's disk must be one qcow2 file: no backing or external data file."""
    info = json.loads(guest_files.run_tool(["qemu-img", "info", "-f", "qcow2", "--output=json", str(disk)]))
    if info.get("backing-filename") or info.get("format-specific", {}).get("data", {}).get("data-file"):
        raise guest_files.GuestFileError("a move's disk must not have a backing or data file")


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while data := fh.read(1024 * 1024):
            yield data


class GuestMoves:
    def __init__(
        self,
        cache: ImageCache | None,
        upload_disk: UploadDisk | None,
        applied: Applied,
        record: Record,
        stop: Callable[[HypervisorDriver, str], None],
    ) -> None:
        self.cache = cache
        self.upload_disk = upload_disk
        self.applied = applied
        self.record = record
        self.stop = stop

    def import_disk(
        self, d: pb.DesiredInstance, idir: Path, guest: Guest | None, driver: HypervisorDriver
    ) -> None:
        """Replaces the root disk with the move's blob (the guest stopped first)."""
        if guest is not None and guest.power_state == RUNNING:
            self.stop(driver, d.id)
        idir.mkdir(exist_ok=True)
        os.chmod(idir, 0o755)
        fields: dict[str, object] = {"disk_from": d.import_disk_sha256}
        if driver.needs_disks:
            if self.cache is None:
                raise RuntimeError("no image cache on this node")
            blob = self.cache.ensure(d.import_disk_sha256, d.import_disk_size_bytes)
            disk = idir / "disk.qcow2"
            tmp = disk.with_suffix(".import")
            shutil.copyfile(blob, tmp)
            check_standalone(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, disk)
            fields["disk_gb"] = root_gb(disk)
        self.record(d.id, **fields)
        log.info("move disk imported", extra={"instance": d.id, "sha256": d.import_disk_sha256})

    def disk_gb(self, d: pb.DesiredInstance, disk: Path) -> int:
        """The root disk's size as applied (measured once, then remembered)."""
        known = self.applied(d.id).get("disk_gb")
        if isinstance(known, int):
            return known
        size = root_gb(disk)
        self.record(d.id, disk_gb=size)
        return size

    def grow(self, d: pb.DesiredInstance, disk: Path) -> None:
        """Grows a stopped guest's root disk to the desired size (never shrinks)."""
        if self.disk_gb(d, disk) < d.disk_gb:
            guest_files.run_tool(["qemu-img", "resize", "-q", "-f", "qcow2", str(disk), f"{d.disk_gb}G"])
            self.record(d.id, disk_gb=d.disk_gb)
            log.info("root disk grown", extra={"instance": d.id, "disk_gb": d.disk_gb})

    def needs_resize(self, d: pb.DesiredInstance, guest: Guest, disk: Path, driver: HypervisorDriver) -> bool:
        if guest.vcpus != d.vcpus or guest.memory_mb != d.ram_mb:
            return True
        local = driver.needs_disks and not d.boot_volume_id and disk.exists()
        return local and self.disk_gb(d, disk) < d.disk_gb

    def export(self, d: pb.DesiredInstance, idir: Path, driver: HypervisorDriver) -> None:
        """Uploads the stopped guest's flattened root disk, once per move."""
        if self.applied(d.id).get("export_done") == d.export_disk_move_id:
            return
        guest = next((g for g in driver.list_guests() if g.instance_id == d.id), None)
        if guest is not None and guest.power_state == RUNNING:
            raise Pending("waiting for the guest to stop before its disk is copied")
        if self.upload_disk is None:
            raise RuntimeError("this node cannot upload disks")
        flat = idir / "move.qcow2"
        try:
            if driver.needs_disks:
                if not driver.export_root_disk(d.id, flat):
                    guest_files.flatten(idir / "disk.qcow2", flat)
                chunks = file_chunks(flat)
            else:  # a fake guest has no disk file: an empty one stands for it
                chunks = iter(())
            self.upload_disk(d.id, d.export_disk_move_id, chunks)
        finally:
            flat.unlink(missing_ok=True)
        self.record(d.id, export_done=d.export_disk_move_id)
        log.info("move disk uploaded", extra={"instance": d.id, "move": d.export_disk_move_id})
