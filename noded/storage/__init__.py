"""Volumes on this node: storage backends (`backend.StorageBackend`; the
local qcow2 one, an in-memory one for the fake driver) and the volumes
reconcile step."""

from __future__ import annotations

from pathlib import Path

from noded.compute.image_cache import ImageCache
from noded.hypervisor.base import HypervisorDriver
from noded.storage.backend import DiskSource, StorageBackend, StorageError
from noded.storage.backends import Backends
from noded.storage.rbd import RbdSettings
from noded.storage.step import VolumeStep


def make_backend(
    driver: HypervisorDriver, root: Path, rbd: RbdSettings | None = None, shared_fs: Path | None = None
) -> Backends:
    """`local`: qcow2 files under `root` for real guests, in memory for the
    fake driver (whose guests have no disks); `rbd` and `shared-fs` when
    their settings are given. The rbd key goes into the hypervisor (a libvirt
    secret) here, once."""
    from noded.storage.local import LocalBackend

    backends: dict[str, StorageBackend] = {}
    if driver.needs_disks:
        backends["local"] = LocalBackend(root)
    else:
        from noded.storage.memory import MemoryBackend

        backends["local"] = MemoryBackend()
    if rbd is not None:
        from noded.storage.rbd import RbdBackend

        driver.define_ceph_secret(rbd.secret_uuid(), rbd.key())
        backends["rbd"] = RbdBackend(rbd)
    if shared_fs is not None:
        backends["shared-fs"] = LocalBackend(shared_fs, shared=True)
    return Backends(backends)


def make_volumes(driver: HypervisorDriver, root: Path, cache: ImageCache | None) -> VolumeStep:
    """The volumes step on the driver's backend."""
    return VolumeStep(make_backend(driver, root), cache)


__all__ = [
    "Backends",
    "DiskSource",
    "RbdSettings",
    "StorageBackend",
    "StorageError",
    "VolumeStep",
    "make_backend",
    "make_volumes",
]
