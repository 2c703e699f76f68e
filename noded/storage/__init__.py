"""Volumes on this node: storage backends (`backend.StorageBackend`; the
local qcow2 one, an in-memory one for the fake driver) and the volumes
reconcile step."""

from __future__ import annotations

from pathlib import Path

from noded.compute.image_cache import ImageCache
from noded.hypervisor.base import HypervisorDriver
from noded.storage.backend import DiskSource, StorageBackend, StorageError
from noded.storage.step import VolumeStep


def make_backend(driver: HypervisorDriver, root: Path) -> StorageBackend:
    """qcow2 files under `root` for real guests, in memory for the fake driver
    (whose guests have no disks)."""
    if driver.needs_disks:
        from noded.storage.local import LocalBackend

        return LocalBackend(root)
    from noded.storage.memory import MemoryBackend

    return MemoryBackend()


def make_volumes(driver: HypervisorDriver, root: Path, cache: ImageCache | None) -> VolumeStep:
    """The volumes step on the driver's backend."""
    return VolumeStep(make_backend(driver, root), cache)


__all__ = ["DiskSource", "StorageBackend", "StorageError", "VolumeStep", "make_backend", "make_volumes"]
