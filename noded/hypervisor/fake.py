"""A hypervisor that exists only in memory: for simulated fleets (the node
fleet benchmark) and control-plane tests. Never used to make a real feature
look done: `kumo-noded run` uses it only when asked with `--driver fake`."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from noded.hypervisor.base import (
    RUNNING,
    STOPPED,
    AttachedDisk,
    ConsolePort,
    DriverError,
    Guest,
    GuestStats,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationStats,
    MigrationTarget,
    domain_name,
)
from noded.hypervisor.console import EchoPort
from noded.hypervisor.domain_xml import DiskSpec, GuestSpec


class FakeDriver(HypervisorDriver):
    name = "fake"
    blocking = False  # everything is in memory
    needs_disks = False  # fake guests have no disks

    def __init__(
        self,
        hostname: str = "fake-host",
        vcpus: int = 32,
        memory_mb: int = 128 * 1024,
        disk_gb: int = 2000,
        virt_type: str = "kvm",
        fail_snapshots: bool = False,
        migration_seconds: float = 0.2,
    ) -> None:
        self.facts = HostFacts(
            hostname=hostname,
            vcpus=vcpus,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            virt_type=virt_type,
            driver=self.name,
            arch="x86_64",
            cpu_model="fake",
            libvirt_version="",
            qemu_version="",
            kernel="",
        )
        self._lock = threading.Lock()
        self._guests: dict[str, Guest] = {}
        # instance id -> serial -> (disk, size in bytes if resized live)
        self._disks: dict[str, dict[str, tuple[DiskSpec, int]]] = {}
        # (instance id, serial) of disks whose running guest ignores unplugs.
        self.held: set[tuple[str, str]] = set()
        # instance id -> its console log (what the echo console appends to).
        self._logs: dict[str, Path] = {}
        # Whether instance snapshots fail (to test how a failure is reported).
        self.fail_snapshots = fail_snapshots
        # How long a simulated live migration takes, and the ones to abort.
        self.migration_seconds = migration_seconds
        self._aborts: dict[str, threading.Event] = {}

    def host_facts(self) -> HostFacts:
        return self.facts

    def usage(self) -> HostUsage:
        with self._lock:
            used = sum(g.memory_mb for g in self._guests.values() if g.power_state == RUNNING)
        return HostUsage(
            memory_free_mb=max(0, self.facts.memory_mb - used), disk_free_gb=self.facts.disk_gb, load_1m=0.0
        )

    def list_guests(self) -> list[Guest]:
        with self._lock:
            return list(self._guests.values())

    def guest_stats(self) -> list[GuestStats]:
        """Fake guests run nothing: every counter stays 0; memory is their size."""
        with self._lock:
            running = [g for g in self._guests.values() if g.power_state == RUNNING]
        return [
            GuestStats(g.instance_id, 0.0, g.memory_mb * 1024**2, g.memory_mb * 1024**2, 0, 0, 0, 0)
            for g in running
        ]

    # For simulations: put guests on the fake host.

    def add_guest(
        self, instance_id: str, vcpus: int = 1, memory_mb: int = 512, state: str = RUNNING
    ) -> Guest:
        guest = Guest(instance_id, domain_name(instance_id), state, vcpus, memory_mb)
        with self._lock:
            self._guests[instance_id] = guest
        return guest

    def remove_guest(self, instance_id: str) -> None:
        with self._lock:
            self._guests.pop(instance_id, None)
            self._disks.pop(instance_id, None)

    # The guest operations, in memory.

    def _set(self, instance_id: str, state: str) -> None:
        with self._lock:
            g = self._guests.get(instance_id)
            if g is None:
                raise DriverError(f"no guest {instance_id}")
            self._guests[instance_id] = Guest(g.instance_id, g.domain_name, state, g.vcpus, g.memory_mb)

    def define_guest(self, spec: GuestSpec) -> None:
        with self._lock:
            if spec.instance_id not in self._guests:
                self._guests[spec.instance_id] = Guest(
                    spec.instance_id, spec.name, STOPPED, spec.vcpus, spec.ram_mb
                )
                self._disks[spec.instance_id] = {d.serial: (d, 0) for d in spec.disks if d.serial}
                self._logs[spec.instance_id] = spec.console_log

    def redefine_guest(self, spec: GuestSpec) -> None:
        with self._lock:
            g = self._guests.get(spec.instance_id)
            if g is None:
                raise DriverError(f"no guest {spec.instance_id}")
            if g.power_state == RUNNING:
                raise DriverError("a running guest cannot be redefined")
            self._guests[spec.instance_id] = Guest(
                g.instance_id, g.domain_name, g.power_state, spec.vcpus, spec.ram_mb
            )

    def start_guest(self, instance_id: str) -> None:
        self._set(instance_id, RUNNING)

    def stop_guest(self, instance_id: str, timeout: float) -> None:
        self._set(instance_id, STOPPED)

    def reboot_guest(self, instance_id: str, hard: bool) -> None:
        self._set(instance_id, RUNNING)

    def destroy_guest(self, instance_id: str) -> None:
        self.remove_guest(instance_id)

    def migrate_guest(
        self, instance_id: str, target: MigrationTarget, progress: Callable[[MigrationStats], None]
    ) -> MigrationStats:
        """Simulated: memory "copied" in ten steps over migration_seconds, then
        the guest is gone here (the target's fake driver makes it when its
        desired state says so). Fails like a real one when there is no target
        address, on abort and on timeout."""
        with self._lock:
            guest = self._guests.get(instance_id)
            if guest is None or guest.power_state != RUNNING:
                raise DriverError(f"guest {instance_id} is not running")
            abort = self._aborts.setdefault(instance_id, threading.Event())
            abort.clear()
        if not target.address or not target.uri:
            raise DriverError("the target advertises no migration address")
        total = guest.memory_mb * 1024**2
        started = time.monotonic()
        for step in range(1, 11):
            if abort.wait(self.migration_seconds / 10):
                raise DriverError("migration aborted")
            if time.monotonic() - started > target.timeout:
                raise DriverError(f"migration timed out after {target.timeout:g} s")
            progress(MigrationStats(total, total * step // 10))
        self.remove_guest(instance_id)
        return MigrationStats(total, total, 0)

    def abort_migration(self, instance_id: str) -> None:
        with self._lock:
            event = self._aborts.get(instance_id)
        if event is not None:
            event.set()

    def open_console(self, instance_id: str) -> ConsolePort:
        """An echo: a fake guest's serial device sends back what it is sent."""
        with self._lock:
            guest = self._guests.get(instance_id)
            if guest is None or guest.power_state != RUNNING:
                raise DriverError(f"guest {instance_id} is not running")
            return EchoPort(self._logs.get(instance_id))

    def export_root_disk(self, instance_id: str, out: Path) -> bool:
        """A fake guest has no disk: its snapshot is an empty 64 MiB qcow2
        (a real file, so the controller's format checks pass), or a failure
        when the driver was made with fail_snapshots."""
        if instance_id not in self._guests:
            raise DriverError(f"no guest {instance_id}")
        if self.fail_snapshots:
            raise DriverError("the fake driver fails snapshots (--fake-fail-snapshots)")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(out), "64M"], check=True)
        return True

    # Volumes: the definition's disks, in memory (live = the guest runs).

    def _guest_disks(self, instance_id: str) -> dict[str, tuple[DiskSpec, int]]:
        if instance_id not in self._guests:
            raise DriverError(f"no guest {instance_id}")
        return self._disks.setdefault(instance_id, {})

    def attach_disk(self, instance_id: str, disk: DiskSpec) -> None:
        with self._lock:
            disks = self._guest_disks(instance_id)
            if disk.serial not in disks:
                if any(d.target == disk.target for d, _ in disks.values()):
                    raise DriverError(f"target {disk.target} is taken on {instance_id}")
                disks[disk.serial] = (disk, 0)

    def detach_disk(self, instance_id: str, serial: str, wait: float) -> bool:
        with self._lock:
            guest = self._guests.get(instance_id)
            if (instance_id, serial) in self.held and guest is not None and guest.power_state == RUNNING:
                return False
            self._guest_disks(instance_id).pop(serial, None)
        return True

    def attached_disks(self, instance_id: str) -> list[AttachedDisk]:
        with self._lock:
            running = (
                self._guests[instance_id].power_state == RUNNING if instance_id in self._guests else False
            )
            disks = self._disks.get(instance_id, {})
            return [
                AttachedDisk(serial, d.target, d.network.name if d.network else str(d.path), running)
                for serial, (d, _) in sorted(disks.items(), key=lambda kv: kv[1][0].target)
            ]

    def resize_disk(self, instance_id: str, serial: str, size_bytes: int) -> None:
        with self._lock:
            disks = self._guest_disks(instance_id)
            if serial not in disks:
                raise DriverError(f"no disk {serial} on {instance_id}")
            disks[serial] = (disks[serial][0], size_bytes)

    def live_size(self, instance_id: str, serial: str) -> int:
        """For tests: the size a live resize gave the disk (0: none)."""
        with self._lock:
            return self._disks.get(instance_id, {}).get(serial, (None, 0))[1]
