"""The storage-backend interface: where a node keeps volumes and their
snapshots, and what a guest's domain XML needs to reach one.

The volumes reconcile step (noded/storage/step.py) and the instances step
talk to this interface only, so another backend plugs in without touching
the API, the controller or the steps:

- `local.LocalBackend`: qcow2 files on the node's own disk (a volume lives on
  one node).
- an NFS directory: the same qcow2 files on a mount every node shares
  (LocalBackend on the mount point, `shared = True`).
- Ceph RBD: images in a pool, made with the rbd tools or librbd; guests reach
  them through libvirt network disks (`disk_source` returns a NetworkDisk).

Sizes are bytes; volume and snapshot ids are the controller's UUIDs."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from noded.hypervisor.domain_xml import DiskSpec, NetworkDisk


class StorageError(Exception):
    """The backend cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class DiskSource:
    """Where a guest finds a volume: a file (with its format, never probed)
    or a network disk."""

    fmt: str  # qcow2 | raw
    path: Path | None = None
    network: NetworkDisk | None = None

    def disk(self, target: str, serial: str, read_only: bool = False) -> DiskSpec:
        return DiskSpec(
            self.path or Path(""), self.fmt, target, read_only=read_only, serial=serial, network=self.network
        )


class StorageBackend(abc.ABC):
    name: str = ""
    # True when every node sees the same volumes (NFS, RBD): the controller
    # may then run a volume's server on any node of the backend.
    shared: bool = False
    # False: creating from an image needs no image file (in-memory volumes).
    needs_image_files: bool = True

    @abc.abstractmethod
    def volumes(self) -> list[str]:
        """Every volume the backend holds (complete ones only)."""

    @abc.abstractmethod
    def exists(self, volume_id: str) -> bool:
        """Whether the volume is complete (a half-made one never counts)."""

    @abc.abstractmethod
    def create_empty(self, volume_id: str, size_bytes: int) -> None:
        """An empty (zeroed) volume."""

    @abc.abstractmethod
    def create_from_image(self, volume_id: str, image: Path, image_format: str, size_bytes: int) -> None:
        """A volume holding the image (a local file, in `image_format`), grown to
        size_bytes when the image is smaller."""

    @abc.abstractmethod
    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_bytes: int) -> None:
        """A volume holding a snapshot's content, grown to size_bytes when smaller."""

    @abc.abstractmethod
    def delete(self, volume_id: str) -> None:
        """Removes the volume and its snapshots; nothing to remove is fine."""

    @abc.abstractmethod
    def size(self, volume_id: str) -> int:
        """The volume's virtual size."""

    @abc.abstractmethod
    def extend(self, volume_id: str, size_bytes: int) -> None:
        """Grows a volume no running guest uses (a used one is grown through
        the hypervisor: HypervisorDriver.resize_disk)."""

    @abc.abstractmethod
    def snapshot_create(self, volume_id: str, snapshot_id: str, live: bool) -> None:
        """A point-in-time copy; `live`: a running guest may be writing to it
        (the copy is then crash-consistent)."""

    @abc.abstractmethod
    def snapshot_delete(self, snapshot_id: str) -> None:
        """Removes a snapshot; nothing to remove is fine."""

    @abc.abstractmethod
    def snapshots(self, volume_id: str) -> list[str]:
        """The volume's complete snapshots."""

    @abc.abstractmethod
    def disk_source(self, volume_id: str) -> DiskSource:
        """What the domain XML needs to attach the volume."""

    @abc.abstractmethod
    def export_qcow2(self, volume_id: str, out: Path, live: bool) -> None:
        """A standalone qcow2 copy of the volume at `out` (instance snapshots of
        a server booted from the volume)."""
