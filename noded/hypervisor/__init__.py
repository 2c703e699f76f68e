"""Hypervisor drivers: `base.HypervisorDriver` and its implementations."""

from __future__ import annotations

from pathlib import Path

from noded.hypervisor.base import DriverError, HypervisorDriver


def make_driver(
    name: str,
    virt_type: str = "kvm",
    uri: str = "qemu:///system",
    instances_dir: Path | None = None,
    fake_capacity: tuple[int, int, int] = (32, 128 * 1024, 2000),
    fake_fail_snapshots: bool = False,
    fake_migration_seconds: float = 0.2,
) -> HypervisorDriver:
    """The driver named `name` ("libvirt" or "fake")."""
    if name == "libvirt":
        from noded.hypervisor.libvirt_driver import LibvirtDriver

        return LibvirtDriver(uri=uri, virt_type=virt_type, instances_dir=instances_dir or Path("."))
    if name == "fake":
        from noded.hypervisor.fake import FakeDriver

        vcpus, memory_mb, disk_gb = fake_capacity
        return FakeDriver(
            vcpus=vcpus,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            virt_type=virt_type,
            fail_snapshots=fake_fail_snapshots,
            migration_seconds=fake_migration_seconds,
        )
    raise DriverError(f"unknown driver {name!r}: use libvirt or fake")


__all__ = ["DriverError", "HypervisorDriver", "make_driver"]
