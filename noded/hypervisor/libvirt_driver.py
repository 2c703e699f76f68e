"""The libvirt driver: real guests through libvirtd (qemu:///system).

virt_type "kvm" (the production default) needs /dev/kvm; "qemu" is TCG, for
machines without (or with broken nested) KVM. Host facts come from libvirt
itself (getInfo, capabilities, versions) and from the file system that holds
instance disks. libvirt connections are not shared between threads: the agent
calls a driver from one worker thread at a time."""

from __future__ import annotations

import base64
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import libvirt

from noded.hypervisor.base import (
    CRASHED,
    DOMAIN_PREFIX,
    PAUSED,
    RUNNING,
    SHUTDOWN,
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
from noded.hypervisor.console import PtyPort
from noded.hypervisor.domain_xml import OWNER_NS, DiskSpec, GuestSpec, disk_xml, domain_xml

T = TypeVar("T")
VIRT_TYPES = ("kvm", "qemu")

_POWER = {
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
}


def _version(n: int) -> str:
    return f"{n // 1_000_000}.{(n // 1000) % 1000}.{n % 1000}"


def parse_dac_label(text: str) -> tuple[int, int] | None:
    """`+UID:+GID` (libvirt's DAC label) as numbers; None when it is not one."""
    uid, sep, gid = text.strip().partition(":")
    try:
        return (int(uid.lstrip("+")), int(gid.lstrip("+"))) if sep and uid.startswith("+") else None
    except ValueError:
        return None


def _serial_disks(xml: str) -> dict[str, ET.Element]:
    """serial -> <disk> element, for the disks of a domain XML that have one."""
    out = {}
    for disk in ET.fromstring(xml).findall("./devices/disk"):
        serial = disk.findtext("serial")
        if serial:
            out[serial] = disk
    return out


def _target(disk: ET.Element) -> str:
    target = disk.find("target")
    return target.get("dev", "") if target is not None else ""


def _source(disk: ET.Element) -> str:
    src = disk.find("source")
    if src is None:
        return ""
    return src.get("file") or src.get("dev") or src.get("name") or ""


def _sum(stats: dict[str, int], kind: str, field: str) -> int:
    """A counter summed over a domain's disks or NICs (getAllDomainStats keys: block.0.rd.bytes)."""
    return sum(int(stats.get(f"{kind}.{i}.{field}", 0)) for i in range(int(stats.get(f"{kind}.count", 0))))


# How often a detach that the guest has not completed is asked for again.
DETACH_RETRY = 5.0


# libvirt prints errors to stderr by default; we raise them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _job_stats(stats: dict[str, int]) -> MigrationStats:
    """A migration job's memory and disk figures (libvirt's jobStats keys)."""
    return MigrationStats(
        int(stats.get("memory_total", 0)) + int(stats.get("disk_total", 0)),
        int(stats.get("memory_processed", 0)) + int(stats.get("disk_processed", 0)),
        int(stats.get("downtime", 0)),
    )


class LibvirtDriver(HypervisorDriver):
    name = "libvirt"
    blocking = True

    def __init__(
        self, uri: str = "qemu:///system", virt_type: str = "kvm", instances_dir: Path = Path(".")
    ) -> None:
        if virt_type not in VIRT_TYPES:
            raise DriverError(f"virt_type must be kvm or qemu, got {virt_type!r}")
        self.uri = uri
        self.virt_type = virt_type
        self.instances_dir = Path(instances_dir)
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None
        # (instance, serial) -> when its live unplug was last asked for: a
        # detach spans reconcile passes, and the guest is asked every DETACH_RETRY s.
        self._unplug_asked: dict[tuple[str, str], float] = {}
        conn = self._connection()
        self._check_virt_type(conn)

    # Connection

    def _connection(self) -> libvirt.virConnect:
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            self._conn = None
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise DriverError(f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()}") from None
        return self._conn

    def _call(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        """Runs fn on a live connection, reconnecting once if libvirtd went away."""
        with self._lock:
            conn = self._connection()
            try:
                return fn(conn)
            except libvirt.libvirtError:
                if conn.isAlive():
                    raise
                self._conn = None
                return fn(self._connection())

    def _check_virt_type(self, conn: libvirt.virConnect) -> None:
        arch = conn.getInfo()[0]
        try:
            conn.getDomainCapabilities(None, arch, None, self.virt_type, 0)
        except libvirt.libvirtError as exc:
            hint = " (is /dev/kvm there? use virt_type qemu for TCG)" if self.virt_type == "kvm" else ""
            raise DriverError(
                f"libvirt cannot run {self.virt_type} guests on this host{hint}: {exc.get_error_message()}"
            ) from None

    # Facts

    def host_facts(self) -> HostFacts:
        def facts(conn: libvirt.virConnect) -> HostFacts:
            arch, memory_mb, cpus, *_ = conn.getInfo()
            # getInfo counts NUMA-node memory only; the all-cells total also
            # has memory added outside the nodes (e.g. hot-plugged).
            total_kib = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0).get("total", 0)
            memory_mb = max(int(memory_mb), int(total_kib) // 1024)
            caps = ET.fromstring(conn.getCapabilities())
            model = caps.findtext("./host/cpu/model") or ""
            st = os.statvfs(self.instances_dir)
            return HostFacts(
                hostname=conn.getHostname(),
                vcpus=int(cpus),
                memory_mb=int(memory_mb),
                disk_gb=st.f_blocks * st.f_frsize // 1024**3,
                virt_type=self.virt_type,
                driver=self.name,
                arch=arch,
                cpu_model=model,
                libvirt_version=_version(conn.getLibVersion()),
                qemu_version=_version(conn.getVersion()),
                kernel=os.uname().release,
            )

        return self._call(facts)

    def guest_user(self) -> tuple[int, int] | None:
        """From the host capabilities: the DAC security model's base label for
        this virt type (`+64055:+64055`: qemu.conf's user and group)."""

        def label(conn: libvirt.virConnect) -> str:
            caps = ET.fromstring(conn.getCapabilities())
            for model in caps.findall("./host/secmodel"):
                if model.findtext("model") != "dac":
                    continue
                labels = {b.get("type"): (b.text or "") for b in model.findall("baselabel")}
                return labels.get(self.virt_type) or labels.get("kvm") or ""
            return ""

        return parse_dac_label(self._call(label))

    def usage(self) -> HostUsage:
        def usage(conn: libvirt.virConnect) -> HostUsage:
            mem = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
            free_kib = mem.get("free", 0) + mem.get("buffers", 0) + mem.get("cached", 0)
            st = os.statvfs(self.instances_dir)
            return HostUsage(
                memory_free_mb=free_kib // 1024,
                disk_free_gb=st.f_bavail * st.f_frsize // 1024**3,
                load_1m=os.getloadavg()[0],
            )

        return self._call(usage)

    def list_guests(self) -> list[Guest]:
        def guests(conn: libvirt.virConnect) -> list[Guest]:
            out = []
            for dom in conn.listAllDomains(0):
                name = dom.name()
                if not name.startswith(DOMAIN_PREFIX) or not self._owned(dom):
                    continue
                try:
                    state, max_kib, _mem, vcpus, _cpu_time = dom.info()
                except libvirt.libvirtError:
                    continue  # undefined while we looked
                out.append(
                    Guest(
                        instance_id=name[len(DOMAIN_PREFIX) :],
                        domain_name=name,
                        power_state=_POWER.get(state, STOPPED),
                        vcpus=int(vcpus),
                        memory_mb=int(max_kib) // 1024,
                    )
                )
            return out

        return self._call(guests)

    def guest_stats(self) -> list[GuestStats]:
        kinds = (
            libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
            | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_BLOCK
            | libvirt.VIR_DOMAIN_STATS_INTERFACE
        )

        def stats(conn: libvirt.virConnect) -> list[GuestStats]:
            out = []
            for dom, st in conn.getAllDomainStats(kinds, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE):
                name = dom.name()
                if not name.startswith(DOMAIN_PREFIX) or not self._owned(dom):
                    continue
                out.append(
                    GuestStats(
                        instance_id=name[len(DOMAIN_PREFIX) :],
                        cpu_seconds=st.get("cpu.time", 0) / 1e9,
                        memory_bytes=st.get("balloon.rss", 0) * 1024,
                        memory_max_bytes=st.get("balloon.maximum", 0) * 1024,
                        disk_read_bytes=_sum(st, "block", "rd.bytes"),
                        disk_write_bytes=_sum(st, "block", "wr.bytes"),
                        net_rx_bytes=_sum(st, "net", "rx.bytes"),
                        net_tx_bytes=_sum(st, "net", "tx.bytes"),
                    )
                )
            return out

        return self._call(stats)

    # Guests

    @property
    def owner(self) -> str:
        return str(self.instances_dir.resolve())

    def _owned(self, dom: libvirt.virDomain) -> bool:
        """Whether this node daemon manages the domain. A guest defined before
        owners were recorded has none: it counts as ours only if its files are
        in our instances directory, so a `kumo-` domain someone else made on a
        shared libvirtd is never ours to reconcile away."""
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NS, 0)
            owner = ET.fromstring(xml).text or ""
        except libvirt.libvirtError:
            owner = ""
        if owner:
            return owner == self.owner
        instance_id = dom.name().removeprefix(DOMAIN_PREFIX)
        return bool(instance_id) and (self.instances_dir / instance_id).is_dir()

    def _domain(self, conn: libvirt.virConnect, instance_id: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(domain_name(instance_id))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _must(self, conn: libvirt.virConnect, instance_id: str) -> libvirt.virDomain:
        dom = self._domain(conn, instance_id)
        if dom is None:
            raise DriverError(f"no libvirt domain for instance {instance_id}")
        return dom

    def define_guest(self, spec: GuestSpec) -> None:
        xml = domain_xml(replace(spec, virt_type=self.virt_type, owner=self.owner))

        def define(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, spec.instance_id)
            if dom is not None and not self._owned(dom):
                # Several node daemons on one libvirt (tests): the guest's old
                # node has not let it go yet (a move); the next pass retries.
                raise DriverError(
                    f"domain {domain_name(spec.instance_id)} still belongs to another node daemon"
                )
            if dom is None:
                try:
                    conn.defineXML(xml)
                except libvirt.libvirtError as exc:
                    raise DriverError(f"libvirt refused the guest: {exc.get_error_message()}") from None

        self._call(define)

    def redefine_guest(self, spec: GuestSpec) -> None:
        xml = domain_xml(replace(spec, virt_type=self.virt_type, owner=self.owner))

        def redefine(conn: libvirt.virConnect) -> None:
            if self._must(conn, spec.instance_id).isActive():
                raise DriverError("a running guest cannot be redefined")
            try:
                conn.defineXML(xml)  # same name and uuid: replaces the definition
            except libvirt.libvirtError as exc:
                raise DriverError(f"libvirt refused the new definition: {exc.get_error_message()}") from None

        self._call(redefine)

    def start_guest(self, instance_id: str) -> None:
        def start(conn: libvirt.virConnect) -> None:
            dom = self._must(conn, instance_id)
            if not dom.isActive():
                try:
                    dom.create()
                except libvirt.libvirtError as exc:
                    raise DriverError(f"cannot start the guest: {exc.get_error_message()}") from None

        self._call(start)

    def stop_guest(self, instance_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            dom = self._must(self._connection(), instance_id)
            if not dom.isActive():
                return
            try:
                dom.shutdown()  # the ACPI power button
            except libvirt.libvirtError:
                pass
        while time.monotonic() < deadline:
            with self._lock:
                if not dom.isActive():
                    return
            time.sleep(0.5)
        with self._lock:
            try:
                dom.destroy()
            except libvirt.libvirtError:
                if dom.isActive():
                    raise

    def reboot_guest(self, instance_id: str, hard: bool) -> None:
        def reboot(conn: libvirt.virConnect) -> None:
            dom = self._must(conn, instance_id)
            if not dom.isActive():
                dom.create()
            elif hard:
                dom.reset(0)
            else:
                dom.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)

        self._call(reboot)

    def destroy_guest(self, instance_id: str) -> None:
        def destroy(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance_id)
            if dom is None:
                return
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if hasattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM") else 0
            )

        self._call(destroy)
        for key in [k for k in self._unplug_asked if k[0] == instance_id]:
            del self._unplug_asked[key]

    # Volumes

    def _disks(self, dom: libvirt.virDomain, live: bool) -> dict[str, ET.Element]:
        if live and not dom.isActive():
            return {}
        return _serial_disks(dom.XMLDesc(0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE))

    def attach_disk(self, instance_id: str, disk: DiskSpec) -> None:
        xml = disk_xml(disk)

        def attach(conn: libvirt.virConnect) -> None:
            dom = self._must(conn, instance_id)
            flags = 0
            if disk.serial not in self._disks(dom, live=False):
                flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if dom.isActive() and disk.serial not in self._disks(dom, live=True):
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            if flags:
                try:
                    dom.attachDeviceFlags(xml, flags)
                except libvirt.libvirtError as exc:
                    raise DriverError(f"cannot attach {disk.serial}: {exc.get_error_message()}") from None

        self._call(attach)

    def detach_disk(self, instance_id: str, serial: str, wait: float) -> bool:
        deadline = time.monotonic() + wait
        key = (instance_id, serial)
        while True:
            with self._lock:
                dom = self._domain(self._connection(), instance_id)
                if dom is None:
                    self._unplug_asked.pop(key, None)
                    return True
                live = self._disks(dom, live=True).get(serial)
                if live is None:
                    break
                if time.monotonic() - self._unplug_asked.get(key, -DETACH_RETRY) >= DETACH_RETRY:
                    self._unplug_asked[key] = time.monotonic()
                    try:
                        dom.detachDeviceFlags(
                            ET.tostring(live, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE
                        )
                    except libvirt.libvirtError:
                        pass  # e.g. an unplug already in progress: keep watching
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        # Released by the running guest (or it is not running): drop it from the definition.
        self._unplug_asked.pop(key, None)
        with self._lock:
            config = self._disks(dom, live=False).get(serial)
            if config is not None:
                try:
                    dom.detachDeviceFlags(
                        ET.tostring(config, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG
                    )
                except libvirt.libvirtError as exc:
                    raise DriverError(f"cannot detach {serial}: {exc.get_error_message()}") from None
        return True

    def attached_disks(self, instance_id: str) -> list[AttachedDisk]:
        def attached(conn: libvirt.virConnect) -> list[AttachedDisk]:
            dom = self._domain(conn, instance_id)
            if dom is None:
                return []
            live = self._disks(dom, live=True)
            return [
                AttachedDisk(serial, _target(d), _source(d), serial in live)
                for serial, d in self._disks(dom, live=False).items()
            ]

        return self._call(attached)

    def resize_disk(self, instance_id: str, serial: str, size_bytes: int) -> None:
        def resize(conn: libvirt.virConnect) -> None:
            dom = self._must(conn, instance_id)
            disk = self._disks(dom, live=True).get(serial)
            if disk is None:
                raise DriverError(f"disk {serial} is not attached to the running guest {instance_id}")
            try:
                dom.blockResize(_target(disk), size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            except libvirt.libvirtError as exc:
                raise DriverError(f"cannot resize {serial}: {exc.get_error_message()}") from None

        self._call(resize)

    def define_ceph_secret(self, secret_uuid: str, key: str) -> None:
        """Defines (or redefines) the secret and sets its value; idempotent.
        The usage name carries the uuid, so two clusters never clash."""
        xml = (
            f"<secret ephemeral='no' private='yes'><uuid>{secret_uuid}</uuid>"
            f"<usage type='ceph'><name>kumo {secret_uuid}</name></usage></secret>"
        )

        def define(conn: libvirt.virConnect) -> None:
            try:
                conn.secretDefineXML(xml).setValue(base64.b64decode(key))
            except (libvirt.libvirtError, ValueError) as exc:
                msg = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else str(exc)
                raise DriverError(f"cannot define the ceph secret {secret_uuid}: {msg}") from None

        self._call(define)

    def open_console(self, instance_id: str) -> ConsolePort:
        """The pty of the running guest's serial port (its live XML names it)."""

        def pty(conn: libvirt.virConnect) -> str:
            dom = self._must(conn, instance_id)
            if not dom.isActive():
                raise DriverError(f"guest {instance_id} is not running")
            serial = ET.fromstring(dom.XMLDesc(0)).find("./devices/serial")
            if serial is None or serial.get("type") != "pty":
                raise DriverError(
                    "this guest's serial port is a log file only (it was defined before "
                    "interactive consoles); its log is still readable"
                )
            source = serial.find("source")
            path = source.get("path", "") if source is not None else ""
            if not path:
                raise DriverError("libvirt names no pty for the guest's serial port")
            return path

        return PtyPort(self._call(pty))

    # Live migration

    def migrate_guest(
        self, instance_id: str, target: MigrationTarget, progress: Callable[[MigrationStats], None]
    ) -> MigrationStats:
        """Peer to peer (this libvirtd connects to the target's at target.uri),
        live, the definition moved (persisted there, undefined here once the
        completed job's figures are read), with
        auto-converge for guests that dirty memory fast; the disks in
        target.copy_disks are mirrored into the files the target made
        (copy-storage-all), the rest (read-only config drive, shared volumes)
        copy nothing. The data stream goes to target.address (qemu picks a
        port of the target's migration range). Its own connection, so the
        driver's other calls go on meanwhile; aborted after target.timeout s.

        The streams go only through the node daemons' TLS tunnel: qemu sends
        to the unix sockets target.memory_socket and target.disks_socket
        (the same paths on the target, where its qemu listens); never plain TCP."""
        if not target.memory_socket or not target.disks_socket:
            raise DriverError(
                "live migration refused: no secured migration channel (the node daemons' tunnel)"
            )
        conn = self._migration_connection()
        try:
            dom = self._must(conn, instance_id)
            flags = (
                libvirt.VIR_MIGRATE_LIVE
                | libvirt.VIR_MIGRATE_PEER2PEER
                | libvirt.VIR_MIGRATE_PERSIST_DEST
                | libvirt.VIR_MIGRATE_AUTO_CONVERGE
            )
            # Every disk not copied is shared by kumo's own rules (a shared-fs volume: a
            # directory all nodes mount at one path, cache='none'; rbd), or read-only; libvirt
            # knows shared storage only by filesystem type (NFS, CephFS, GlusterFS, ...) and
            # would refuse a shared-fs directory on any other ("without shared storage is unsafe").
            flags |= libvirt.VIR_MIGRATE_UNSAFE
            params: dict[str, object] = {libvirt.VIR_MIGRATE_PARAM_URI: f"unix://{target.memory_socket}"}
            if target.max_bandwidth_mib:  # libvirt applies it to the disk mirror too
                params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = target.max_bandwidth_mib
            if target.copy_disks:
                flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
                params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(target.copy_disks)
                params[libvirt.VIR_MIGRATE_PARAM_DISKS_URI] = f"unix://{target.disks_socket}"
            done = threading.Event()
            timed_out = threading.Event()

            def watch() -> None:
                deadline = time.monotonic() + target.timeout
                while not done.wait(0.5):
                    try:
                        progress(_job_stats(dom.jobStats()))
                    except libvirt.libvirtError:
                        pass
                    if time.monotonic() > deadline and not timed_out.is_set():
                        timed_out.set()
                        try:
                            dom.abortJob()
                        except libvirt.libvirtError:
                            pass

            watcher = threading.Thread(target=watch, name=f"migrate-watch-{instance_id}", daemon=True)
            watcher.start()
            try:
                dom.migrateToURI3(target.uri, params, flags)
            except libvirt.libvirtError as exc:
                why = (
                    f"timed out after {target.timeout:g} s" if timed_out.is_set() else exc.get_error_message()
                )
                raise DriverError(f"live migration failed: {why}") from None
            finally:
                done.set()
                watcher.join(5)
            # The completed job's figures (downtime included) live on the
            # source's domain: read them, then undefine it (what
            # VIR_MIGRATE_UNDEFINE_SOURCE would do before they could be read).
            try:
                final = _job_stats(dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED))
            except libvirt.libvirtError:
                final = MigrationStats()
            try:
                dom.undefine()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise DriverError(
                        f"migrated, but cannot undefine it here: {exc.get_error_message()}"
                    ) from None
            return final
        finally:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def _migration_connection(self) -> libvirt.virConnect:
        try:
            return libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise DriverError(f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()}") from None

    def abort_migration(self, instance_id: str) -> None:
        def abort(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance_id)
            if dom is None:
                return
            try:
                dom.abortJob()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # no job under way
                    raise DriverError(f"cannot abort the migration: {exc.get_error_message()}") from None

        self._call(abort)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None
