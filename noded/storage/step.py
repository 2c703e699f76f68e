"""The volumes reconcile step: make the backend hold the desired volumes and
snapshots, level-triggered. It runs before the instances step, so a volume a
guest boots from or attaches exists by the time the guest needs it.

Per desired volume: make it when missing (empty, from an image blob fetched
through the image cache, or from a snapshot on this node), grow it when
smaller than desired (through the hypervisor when a running guest has it
attached, so the guest sees the new size), make missing snapshots and drop
extra ones. Volumes no longer desired are deleted once no guest holds them
(the instances step detaches first). Each volume's failure is its own fault,
reported in heartbeats (VolumeStatus)."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from kumo.v1 import node_agent_pb2 as pb
from noded.compute.guest_files import FORMATS
from noded.compute.image_cache import ImageCache
from noded.hypervisor.base import RUNNING, HypervisorDriver, disk_serial
from noded.storage.backend import StorageBackend, StorageError
from noded.storage.backends import LOCAL, Backends

log = logging.getLogger("kumo.noded.volumes")

GiB = 1024**3


class VolumeStep:
    __name__ = "volumes"

    def __init__(self, backend: StorageBackend, cache: ImageCache | None) -> None:
        # Several backends (local, rbd, shared-fs) behind one router.
        self.backend = backend if isinstance(backend, Backends) else Backends({LOCAL: backend})
        self.cache = cache
        self._lock = threading.Lock()
        self.faults: dict[str, str] = {}
        self._status: dict[str, tuple[int, list[str]]] = {}  # volume id -> (size_gb, snapshots)
        # Heartbeats before the first pass (after a restart) report what is held.
        self._refresh(set(), {})

    def users(self, driver: HypervisorDriver, volume_ids: set[str]) -> dict[str, tuple[str, bool]]:
        """volume id -> (instance id, attached to the running guest now)."""
        by_serial = {disk_serial(v): v for v in volume_ids}
        out: dict[str, tuple[str, bool]] = {}
        for g in driver.list_guests():
            for a in driver.attached_disks(g.instance_id):
                vid = by_serial.get(a.serial)
                if vid is not None:
                    live = a.live and g.power_state == RUNNING
                    if vid not in out or live:
                        out[vid] = (g.instance_id, live)
        return out

    def __call__(self, desired: pb.NodeDesiredState, driver: HypervisorDriver) -> None:
        want = {v.id: v for v in desired.volumes if not v.delete}
        # Shared-backend volumes to delete (absence says nothing there).
        drop = sorted(v.id for v in desired.volumes if v.delete)
        errors: dict[str, str] = {}
        for v in desired.volumes:
            try:
                self.backend.bind(v.id, v.backend)
            except StorageError as exc:
                errors[v.id] = str(exc)
        held = set(self.backend.volumes())
        users = self.users(driver, set(want) | held | set(drop))
        for vid, v in want.items():
            if vid in errors:
                continue
            try:
                self._ensure(v, users.get(vid), driver)
            except Exception as exc:
                log.warning("volume not as desired", extra={"volume": vid, "error": str(exc)})
                errors[vid] = str(exc)[:1000]
        # Extra snapshots go after every volume was made: a new one may come from one.
        for vid, v in want.items():
            if vid in errors or not self.backend.exists(vid):
                continue
            for sid in set(self.backend.snapshots(vid)) - set(v.snapshot_ids):
                try:
                    self.backend.snapshot_delete(sid)
                    log.info("volume snapshot deleted", extra={"volume": vid, "snapshot": sid})
                except Exception as exc:
                    errors[vid] = f"delete snapshot {sid}: {exc}"[:1000]
        for vid in sorted((held - set(want)) | (set(drop) - set(errors))):
            if vid in users:
                errors[vid] = f"still attached to instance {users[vid][0]}; deleting once detached"
                continue
            try:
                self.backend.delete(vid)
                log.info("volume deleted", extra={"volume": vid})
            except Exception as exc:
                errors[vid] = f"delete: {exc}"[:1000]
        # A shared volume being deleted is reported while it is still there.
        self._refresh(set(want) | {v for v in drop if v in errors}, errors)
        if errors:
            raise RuntimeError("; ".join(f"{k}: {e}" for k, e in sorted(errors.items()))[:2000])

    def _ensure(self, v: pb.DesiredVolume, user: tuple[str, bool] | None, driver: HypervisorDriver) -> None:
        size = v.size_gb * GiB
        if not self.backend.exists(v.id):
            if v.size_gb <= 0:
                raise StorageError(f"size_gb must be positive, got {v.size_gb}")
            if v.source_snapshot_id:
                self.backend.create_from_snapshot(v.id, v.source_snapshot_id, size)
            elif v.image_sha256:
                fmt = FORMATS.get(v.image_format)
                if fmt is None:
                    raise StorageError(f"unknown image format {v.image_format}")
                if self.cache is not None:
                    image = self.cache.ensure(v.image_sha256, v.image_size_bytes)
                elif not self.backend.needs_image_files:
                    image = Path(v.image_sha256)  # in-memory volumes have no content
                else:
                    raise StorageError("this node has no image cache")
                self.backend.create_from_image(v.id, image, fmt, size)
            else:
                self.backend.create_empty(v.id, size)
            log.info("volume created", extra={"volume": v.id, "size_gb": v.size_gb})
        if self.backend.size(v.id) < size:
            if user is not None and user[1]:
                driver.resize_disk(user[0], disk_serial(v.id), size)
                if not driver.needs_disks:  # the fake hypervisor grows no file: the backend does
                    self.backend.extend(v.id, size)
            else:
                self.backend.extend(v.id, size)
            log.info("volume extended", extra={"volume": v.id, "size_gb": v.size_gb, "live": bool(user)})
        have = set(self.backend.snapshots(v.id))
        for sid in v.snapshot_ids:
            if sid not in have:
                self.backend.snapshot_create(v.id, sid, live=user is not None and user[1])
                log.info("volume snapshot created", extra={"volume": v.id, "snapshot": sid})

    def _refresh(self, wanted: set[str], errors: dict[str, str]) -> None:
        """Remembers what heartbeats report (they must not run qemu-img)."""
        status: dict[str, tuple[int, list[str]]] = {}
        for vid in sorted(wanted | set(self.backend.volumes())):
            size_gb, snaps = 0, []
            try:
                if self.backend.exists(vid):
                    size_gb = math.ceil(self.backend.size(vid) / GiB)
                    snaps = self.backend.snapshots(vid)
            except Exception as exc:
                errors.setdefault(vid, f"status: {exc}"[:1000])
            status[vid] = (size_gb, snaps)
        with self._lock:
            self._status = status
            self.faults = {k: e for k, e in errors.items() if k in status}

    def report(self) -> list[pb.VolumeStatus]:
        """Every desired volume and every volume held, as of the last pass."""
        with self._lock:
            return [
                pb.VolumeStatus(
                    volume_id=vid, size_gb=size_gb, snapshot_ids=snaps, fault=self.faults.get(vid, "")
                )
                for vid, (size_gb, snaps) in self._status.items()
            ]
