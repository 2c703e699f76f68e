"""The hypervisor-driver interface: the node-local operations the agent and
its reconcile loop need, behind one small abstract class.

Two implementations: `libvirt_driver.LibvirtDriver` (real guests on
qemu:///system) and `fake.FakeDriver` (in-memory, for simulated fleets and
control-plane tests only). Features that run things on nodes (instances,
images, disks, networks, volumes) add their operations here and to both
implementations.

Guests that kumo manages are libvirt domains named `kumo-<instance id>`; other
domains on the host are left alone and not reported."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from noded.hypervisor.domain_xml import DiskSpec, GuestSpec

DOMAIN_PREFIX = "kumo-"

# GuestStatus power states, by name (see kumo.v1.GuestPowerState).
RUNNING = "RUNNING"
PAUSED = "PAUSED"
SHUTDOWN = "SHUTDOWN"
CRASHED = "CRASHED"
STOPPED = "STOPPED"


class DriverError(Exception):
    """A driver cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    vcpus: int
    memory_mb: int
    disk_gb: int  # size of the file system that holds instance disks
    virt_type: str  # kvm | qemu
    driver: str
    arch: str
    cpu_model: str
    libvirt_version: str
    qemu_version: str
    kernel: str


@dataclass(frozen=True)
class HostUsage:
    memory_free_mb: int
    disk_free_gb: int
    load_1m: float


@dataclass(frozen=True)
class Guest:
    instance_id: str
    domain_name: str
    power_state: str
    vcpus: int
    memory_mb: int


@dataclass(frozen=True)
class GuestStats:
    """A running guest's counters since it started (sums over its disks and NICs)."""

    instance_id: str
    cpu_seconds: float
    memory_bytes: int  # resident in the host
    memory_max_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int


@dataclass(frozen=True)
class AttachedDisk:
    """A disk with a serial (a volume) in a guest's persistent definition."""

    serial: str
    target: str  # vda (a boot volume), vdc, ...
    source: str  # file path, or pool/image of a network disk
    live: bool  # also attached to the running guest now


@dataclass(frozen=True)
class MigrationTarget:
    """Where a live migration goes: the target's hypervisor URI (peer to peer,
    the source's hypervisor connects to it) and the host of the migration
    stream; `copy_disks`: the node-local disks (targets like vda) to copy."""

    uri: str
    address: str
    copy_disks: tuple[str, ...]
    timeout: float
    max_bandwidth_mib: int = 0  # MiB/s for memory and disks; 0: unlimited
    # The unix sockets of the node daemons' TLS tunnel (migration_tunnel.py)
    # for the memory stream and the disks' copy; a real driver needs them.
    memory_socket: str = ""
    disks_socket: str = ""


@dataclass(frozen=True)
class MigrationStats:
    """A live migration's progress (memory plus copied disks) and, once
    done, how long the guest was paused at the switch-over."""

    bytes_total: int = 0
    bytes_processed: int = 0
    downtime_ms: int = 0


def disk_serial(volume_id: str) -> str:
    """The <serial> a volume's disk carries (virtio-blk keeps 20 bytes)."""
    return volume_id[:20]


def domain_name(instance_id: str) -> str:
    return f"{DOMAIN_PREFIX}{instance_id}"


class ConsolePort(abc.ABC):
    """A guest's serial device, open for reading and writing (on the agent's loop)."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The guest's next output; b"" once the device is gone (guest stopped)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Input for the guest."""

    @abc.abstractmethod
    def close(self) -> None:
        """Lets the device go."""


class HypervisorDriver(abc.ABC):
    name: str = ""
    # True when calls may block (the agent then runs them in a worker thread).
    blocking: bool = True

    @abc.abstractmethod
    def host_facts(self) -> HostFacts:
        """What the host has: CPUs, memory, disk for instances, versions."""

    @abc.abstractmethod
    def usage(self) -> HostUsage:
        """What is free now."""

    @abc.abstractmethod
    def list_guests(self) -> list[Guest]:
        """Every kumo guest the hypervisor has, as observed now."""

    @abc.abstractmethod
    def guest_stats(self) -> list[GuestStats]:
        """Every running kumo guest's counters (for metrics), in one call."""

    # Guests. `spec` is a noded.hypervisor.domain_xml.GuestSpec. Every call
    # is idempotent: asking for what is already so does nothing.

    # Whether guests need real disk files (image cache, overlay, config drive).
    needs_disks: bool = True

    @abc.abstractmethod
    def define_guest(self, spec: GuestSpec) -> None:
        """Makes the guest known to the hypervisor (persistently), not running."""

    @abc.abstractmethod
    def redefine_guest(self, spec: GuestSpec) -> None:
        """Replaces a stopped guest's definition (new vCPUs, memory: a resize)."""

    @abc.abstractmethod
    def start_guest(self, instance_id: str) -> None:
        """Powers the guest on."""

    @abc.abstractmethod
    def stop_guest(self, instance_id: str, timeout: float) -> None:
        """Asks the guest to shut down (ACPI); powers it off after `timeout` s."""

    @abc.abstractmethod
    def reboot_guest(self, instance_id: str, hard: bool) -> None:
        """Soft: ACPI reboot request; hard: reset the virtual machine."""

    @abc.abstractmethod
    def destroy_guest(self, instance_id: str) -> None:
        """Powers the guest off and forgets it (its files are the caller's)."""

    # Volumes: disks identified by their serial, attached live (when the
    # guest runs) and in the persistent definition. Idempotent too.

    @abc.abstractmethod
    def attach_disk(self, instance_id: str, disk: DiskSpec) -> None:
        """Adds the disk (by disk.serial) to the definition and, when running, live."""

    @abc.abstractmethod
    def detach_disk(self, instance_id: str, serial: str, wait: float) -> bool:
        """Unplugs the disk live and, once the guest has released it, drops it
        from the definition: a disk the guest still holds never looks
        detached. Waits up to `wait` s; False when the guest still holds it
        (asked, not refused: call again later)."""

    @abc.abstractmethod
    def attached_disks(self, instance_id: str) -> list[AttachedDisk]:
        """The disks with a serial in the guest's persistent definition."""

    @abc.abstractmethod
    def resize_disk(self, instance_id: str, serial: str, size_bytes: int) -> None:
        """Grows a disk of a running guest through the hypervisor, so the guest sees it."""

    # Live migration (peer to peer): the target's guest files exist, the
    # target's hypervisor takes the guest; the source forgets it once done.

    @abc.abstractmethod
    def migrate_guest(
        self, instance_id: str, target: MigrationTarget, progress: Callable[[MigrationStats], None]
    ) -> MigrationStats:
        """Moves the running guest to `target` and returns the final figures;
        blocks until done, calling `progress` now and then. DriverError when
        it failed or was aborted: the guest then still runs here."""

    @abc.abstractmethod
    def abort_migration(self, instance_id: str) -> None:
        """Cancels the guest's migration under way (nothing when there is none)."""

    def guest_user(self) -> tuple[int, int] | None:
        """The (uid, gid) the hypervisor runs guest processes as: who may use
        the migration tunnel's sockets on this host. None: unknown (or no
        guest processes), and then only root may."""
        return None

    def export_root_disk(self, instance_id: str, out: Path) -> bool:
        """Writes the guest's root disk to `out` as a standalone qcow2, for a
        snapshot, when the driver keeps that disk itself; False (the default):
        the root disk is the instance's overlay file, which the caller flattens."""
        return False

    def define_ceph_secret(self, secret_uuid: str, key: str) -> None:  # noqa: B027 - optional hook
        """Keeps a Ceph client key (base64, as `ceph auth get-key` prints it)
        where guests' rbd network disks find it (libvirt: a secret of usage
        type ceph). Drivers whose guests have no disks need none."""

    def open_console(self, instance_id: str) -> ConsolePort:
        """The running guest's serial device; DriverError when there is none."""
        raise DriverError(f"the {self.name} driver has no interactive console")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections."""
