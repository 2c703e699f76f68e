"""A hypervisor that exists only in memory: for simulated fleets (the node
fleet benchmark) and control-plane tests. Never used to make a real feature
look done: `kumo-noded run` uses it only when asked with `--driver fake`."""

from __future__ import annotations

import threading

from noded.hypervisor.base import (
    RUNNING,
    STOPPED,
    DriverError,
    Guest,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    domain_name,
)
from noded.hypervisor.domain_xml import GuestSpec


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

    def start_guest(self, instance_id: str) -> None:
        self._set(instance_id, RUNNING)

    def stop_guest(self, instance_id: str, timeout: float) -> None:
        self._set(instance_id, STOPPED)

    def reboot_guest(self, instance_id: str, hard: bool) -> None:
        self._set(instance_id, RUNNING)

    def destroy_guest(self, instance_id: str) -> None:
        self.remove_guest(instance_id)
