"""Volumes that exist only in memory, for the fake hypervisor driver
(simulated fleets, control-plane tests): the same bookkeeping as a real
backend, without files. Never used with real guests."""

from __future__ import annotations

import threading
from pathlib import Path

from noded.storage.backend import DiskSource, StorageBackend, StorageError


class MemoryBackend(StorageBackend):
    name = "memory"
    needs_image_files = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._snaps: dict[str, tuple[str, int]] = {}  # snapshot id -> (volume id, size)

    def volumes(self) -> list[str]:
        with self._lock:
            return sorted(self._sizes)

    def exists(self, volume_id: str) -> bool:
        with self._lock:
            return volume_id in self._sizes

    def create_empty(self, volume_id: str, size_bytes: int) -> None:
        with self._lock:
            self._sizes.setdefault(volume_id, size_bytes)

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size_bytes: int) -> None:
        self.create_empty(volume_id, size_bytes)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_bytes: int) -> None:
        with self._lock:
            if snapshot_id not in self._snaps:
                raise StorageError(f"snapshot {snapshot_id} is not on this node")
            self._sizes.setdefault(volume_id, max(size_bytes, self._snaps[snapshot_id][1]))

    def delete(self, volume_id: str) -> None:
        with self._lock:
            self._sizes.pop(volume_id, None)
            for sid in [s for s, (v, _) in self._snaps.items() if v == volume_id]:
                del self._snaps[sid]

    def size(self, volume_id: str) -> int:
        with self._lock:
            if volume_id not in self._sizes:
                raise StorageError(f"volume {volume_id} does not exist")
            return self._sizes[volume_id]

    def extend(self, volume_id: str, size_bytes: int) -> None:
        with self._lock:
            if volume_id not in self._sizes:
                raise StorageError(f"volume {volume_id} does not exist")
            self._sizes[volume_id] = max(self._sizes[volume_id], size_bytes)

    def snapshot_create(self, volume_id: str, snapshot_id: str, live: bool) -> None:
        with self._lock:
            if volume_id not in self._sizes:
                raise StorageError(f"volume {volume_id} does not exist")
            self._snaps.setdefault(snapshot_id, (volume_id, self._sizes[volume_id]))

    def snapshot_delete(self, snapshot_id: str) -> None:
        with self._lock:
            self._snaps.pop(snapshot_id, None)

    def snapshots(self, volume_id: str) -> list[str]:
        with self._lock:
            return sorted(s for s, (v, _) in self._snaps.items() if v == volume_id)

    def disk_source(self, volume_id: str) -> DiskSource:
        return DiskSource("qcow2", path=Path("/fake-volumes") / f"{volume_id}.qcow2")

    def export_qcow2(self, volume_id: str, out: Path, live: bool) -> None:
        raise StorageError("in-memory volumes have no content to export")
