"""A node's storage backends as one StorageBackend: `local` always, plus the
shared ones its settings name (rbd, shared-fs). The volumes step binds each
desired volume to the backend the controller named (DesiredVolume.backend);
a volume not bound yet (the instances step after a restart) is looked up in
each backend, node-local first.

`volumes()` lists only node-local backends' volumes: those are deleted when
no longer desired. A shared backend holds every node's volumes, so the step
deletes one there only when its desired state says `delete`."""

from __future__ import annotations

from pathlib import Path

from noded.storage.backend import DiskSource, StorageBackend, StorageError

LOCAL = "local"


class Backends(StorageBackend):
    name = "backends"

    def __init__(self, backends: dict[str, StorageBackend]) -> None:
        if LOCAL not in backends:
            raise ValueError("a node always has the local backend")
        self._backends = dict(backends)
        self._of: dict[str, str] = {}  # volume id -> backend name
        self._snap_of: dict[str, str] = {}  # snapshot id -> volume id, as seen
        self.needs_image_files = any(b.needs_image_files for b in backends.values())

    def names(self) -> list[str]:
        """What the node advertises (NodeInventory.storage_backends)."""
        return sorted(self._backends)

    def get(self, name: str) -> StorageBackend:
        b = self._backends.get(name or LOCAL)
        if b is None:
            raise StorageError(
                f"this node has no {name!r} storage backend (it has {', '.join(self.names())})"
            )
        return b

    def bind(self, volume_id: str, name: str) -> StorageBackend:
        b = self.get(name)
        self._of[volume_id] = name or LOCAL
        return b

    def of(self, volume_id: str) -> StorageBackend:
        name = self._of.get(volume_id)
        if name is not None:
            return self._backends[name]
        ordered = sorted(self._backends.items(), key=lambda kv: kv[1].shared)
        for name, b in ordered:
            if b.exists(volume_id):
                self._of[volume_id] = name
                return b
        return self._backends[LOCAL]

    def is_shared(self, volume_id: str) -> bool:
        return self.of(volume_id).shared

    # StorageBackend, routed per volume

    def volumes(self) -> list[str]:
        return sorted(v for b in self._backends.values() if not b.shared for v in b.volumes())

    def exists(self, volume_id: str) -> bool:
        return self.of(volume_id).exists(volume_id)

    def create_empty(self, volume_id: str, size_bytes: int) -> None:
        self.of(volume_id).create_empty(volume_id, size_bytes)

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size_bytes: int) -> None:
        self.of(volume_id).create_from_image(volume_id, image, image_format, size_bytes)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_bytes: int) -> None:
        self.of(volume_id).create_from_snapshot(volume_id, snapshot_id, size_bytes)

    def delete(self, volume_id: str) -> None:
        self.of(volume_id).delete(volume_id)
        self._of.pop(volume_id, None)

    def size(self, volume_id: str) -> int:
        return self.of(volume_id).size(volume_id)

    def extend(self, volume_id: str, size_bytes: int) -> None:
        self.of(volume_id).extend(volume_id, size_bytes)

    def snapshot_create(self, volume_id: str, snapshot_id: str, live: bool) -> None:
        self.of(volume_id).snapshot_create(volume_id, snapshot_id, live)
        self._snap_of[snapshot_id] = volume_id

    def snapshot_delete(self, snapshot_id: str) -> None:
        vid = self._snap_of.pop(snapshot_id, None)
        for b in [self.of(vid)] if vid is not None else self._backends.values():
            b.snapshot_delete(snapshot_id)

    def snapshots(self, volume_id: str) -> list[str]:
        out = self.of(volume_id).snapshots(volume_id)
        self._snap_of.update((sid, volume_id) for sid in out)
        return out

    def disk_source(self, volume_id: str) -> DiskSource:
        return self.of(volume_id).disk_source(volume_id)

    def export_qcow2(self, volume_id: str, out: Path, live: bool) -> None:
        self.of(volume_id).export_qcow2(volume_id, out, live)
