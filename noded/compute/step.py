"""The instances reconcile step: make the hypervisor's guests match the
desired instances, level-triggered. Per instance it keeps, in the instance's
directory, what it applied (reboot generation, finished snapshot), so a noded
restart adopts running guests and applies nothing twice.

    <instances_dir>/<id>/disk.qcow2     overlay on the cached image
    <instances_dir>/<id>/config.iso     NoCloud config drive (label cidata)
    <instances_dir>/<id>/console.log    the serial console
    <instances_dir>/<id>/state.json     reboot generation and snapshot applied
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kumo.v1 import node_agent_pb2 as pb
from noded.compute import guest_files
from noded.compute.image_cache import ImageCache
from noded.compute.migration import OutgoingMigrations, progress_pb
from noded.compute.migration_tunnel import MigrationTunnel
from noded.compute.moves import GuestMoves, UploadDisk, file_chunks
from noded.hypervisor.base import RUNNING, Guest, HypervisorDriver, disk_serial, domain_name
from noded.hypervisor.domain_xml import DiskSpec, GuestSpec
from noded.network import guest as guest_net
from noded.reconcile import Pending

if TYPE_CHECKING:
    from noded.storage.backend import StorageBackend

log = logging.getLogger("kumo.noded.compute")

POWER = {
    "RUNNING": pb.GUEST_POWER_STATE_RUNNING,
    "PAUSED": pb.GUEST_POWER_STATE_PAUSED,
    "SHUTDOWN": pb.GUEST_POWER_STATE_SHUTDOWN,
    "CRASHED": pb.GUEST_POWER_STATE_CRASHED,
    "STOPPED": pb.GUEST_POWER_STATE_STOPPED,
}
STOP_TIMEOUT = 30.0
CONSOLE_TAIL = 256 * 1024
# How long a guest may take to release a hot-unplugged volume.
# How long one pass waits for a guest to release an unplugged disk before it
# moves on (the detach goes on, and the next pass looks again), and after how
# long a detach the guest ignores is worth a warning (no hot-plug support?).
DETACH_WAIT = 2.0
DETACH_WARN_AFTER = 60.0


def disk_target(index: int) -> str:
    """The virtio disk name for an index: 0 -> vda, 2 -> vdc, 26 -> vdaa."""
    name, n = "", index + 1
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(97 + r) + name
    return "vd" + name


def _describe(exc: Exception) -> str:
    """An error in words: a gRPC error's details (the controller's reason)
    rather than its whole debug string."""
    details = getattr(exc, "details", None)
    if callable(details):
        try:
            text = details()
        except Exception:
            text = None
        if text:
            return str(text)
    return str(exc) or type(exc).__name__


# upload(instance_id, image_id, chunks) sends a snapshot to the controller.
Upload = Callable[[str, str, Iterator[bytes]], None]
# report(instance_id, data) sends a console tail to the controller.
Report = Callable[[str, bytes], None]


@contextmanager
def _stage(stages: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's milliseconds to stages[name]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = round(stages.get(name, 0.0) + (time.perf_counter() - start) * 1000, 1)


class ComputeStep:
    __name__ = "instances"

    def __init__(
        self,
        instances_dir: Path,
        cache: ImageCache | None,
        upload: Upload | None,
        report: Report | None,
        storage: StorageBackend | None = None,
        upload_disk: UploadDisk | None = None,
        migration_bandwidth_mib: int = 0,
        tunnel: MigrationTunnel | None = None,
    ) -> None:
        self.dir = Path(instances_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.cache = cache
        self.upload = upload
        self.report = report
        self.faults: dict[str, str] = {}
        self.wanted: set[str] = set()
        self._lock = threading.Lock()
        self._console_sent: dict[str, tuple[int, float]] = {}
        self._applied: dict[str, dict[str, object]] = {}
        # Where volumes live (the volumes step's backend); None: no volumes here.
        self.storage = storage
        # The desired ports and networks of the current pass: a guest's NICs.
        self._ports: dict[str, pb.DesiredPort] = {}
        self._networks: dict[str, pb.DesiredNetwork] = {}
        # (instance, volume serial) -> (when its detach began, whether its
        # slowness was logged), while the guest holds the disk.
        self._detaching: dict[tuple[str, str], tuple[float, bool]] = {}
        self.moves = GuestMoves(cache, upload_disk, self.applied, self._record, self._stop)
        # Live migrations this node sends (their outcome goes to state.json).
        # Incoming live migrations whose files are ready: instance -> migration id.
        self._prepared: dict[str, str] = {}
        self.outgoing = OutgoingMigrations(
            lambda iid, outcome: self._record(iid, migration=outcome), migration_bandwidth_mib, tunnel
        )
        self.tunnel = tunnel

    # Per-instance applied state

    def _state_file(self, iid: str) -> Path:
        return self.dir / iid / "state.json"

    def applied(self, iid: str) -> dict[str, object]:
        """What was applied to a guest: read from disk once (after a restart),
        then kept in memory, since every heartbeat asks for every guest."""
        with self._lock:
            cached = self._applied.get(iid)
        if cached is not None:
            return cached
        try:
            data = json.loads(self._state_file(iid).read_text())
        except (OSError, ValueError):
            return {}
        with self._lock:
            self._applied[iid] = data
        return data

    def _record(self, iid: str, **fields: object) -> None:
        data = {**self.applied(iid), **fields}
        tmp = self._state_file(iid).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._state_file(iid))
        with self._lock:
            self._applied[iid] = data

    @staticmethod
    def _guest(driver: HypervisorDriver, iid: str) -> Guest | None:
        return next((g for g in driver.list_guests() if g.instance_id == iid), None)

    @staticmethod
    def _stop(driver: HypervisorDriver, iid: str) -> None:
        driver.stop_guest(iid, STOP_TIMEOUT)

    # The step

    def __call__(self, desired: pb.NodeDesiredState, driver: HypervisorDriver) -> None:
        want = {d.id: d for d in desired.instances}
        self._ports = {p.id: p for p in desired.ports}
        self._networks = {n.id: n for n in desired.networks}
        have = {g.instance_id: g for g in driver.list_guests()}
        with self._lock:
            self.wanted = set(want)
            self._prepared = {
                i: m for i, m in self._prepared.items() if i in want and want[i].incoming_migration_id == m
            }
            prepared = set(self._prepared.values())
        if self.tunnel is not None:
            self.tunnel.expect_only(prepared)
        with self._lock:
            for gone in set(self.faults) - set(want):
                self.faults.pop(gone, None)
        for key in [k for k in self._detaching if k[0] not in want]:
            del self._detaching[key]
        self.outgoing.abort_others(
            {
                i: d.outgoing_migration.migration_id
                for i, d in want.items()
                if d.outgoing_migration.migration_id
            },
            driver,
        )
        errors, pending = [], []
        for iid in sorted(set(have) - set(want)):
            # Deleted, or moved to another node while this one was lost (a
            # returning node must not run a second copy): the guest and its
            # node-local files go; volumes are only let go of (the volumes
            # step deletes a volume only when told so).
            try:
                driver.destroy_guest(iid)
                del have[iid]
                log.info("guest removed", extra={"instance": iid})
            except Exception as exc:
                errors.append(f"remove {iid}: {exc}")
        for leftover in self.dir.iterdir() if self.dir.exists() else []:
            if leftover.is_dir() and leftover.name not in want and leftover.name not in have:
                shutil.rmtree(leftover, ignore_errors=True)
                with self._lock:
                    self._applied.pop(leftover.name, None)
        for iid, d in want.items():
            try:
                self._ensure(d, have.get(iid), driver)
                with self._lock:
                    self.faults.pop(iid, None)
            except Pending as exc:
                pending.append(f"{iid}: {exc}")
                with self._lock:
                    if exc.fault:
                        self.faults[iid] = exc.fault[:1000]
                    else:
                        self.faults.pop(iid, None)
            except Exception as exc:
                log.warning("instance not as desired", extra={"instance": iid, "error": str(exc)})
                with self._lock:
                    self.faults[iid] = str(exc)[:1000]
                errors.append(f"{iid}: {exc}")
        if self.cache is not None:
            self.cache.prune({s for d in want.values() for s in (d.image_sha256, d.import_disk_sha256) if s})
        if errors:
            raise RuntimeError("; ".join(errors)[:2000])
        if pending:
            raise Pending("; ".join(pending)[:2000])

    def _ensure(self, d: pb.DesiredInstance, guest: Guest | None, driver: HypervisorDriver) -> None:
        idir = self.dir / d.id
        if d.incoming_migration_id:
            self._prepare_incoming(d, guest, idir, driver)
            return
        if d.outgoing_migration.migration_id:
            self._send(d, guest, driver)
            return
        if d.import_disk_sha256 and self.applied(d.id).get("disk_from") != d.import_disk_sha256:
            self.moves.import_disk(d, idir, guest, driver)
            guest = self._guest(driver, d.id)
        if guest is not None and self.moves.needs_resize(d, guest, idir / "disk.qcow2", driver):
            if guest.power_state == RUNNING:
                self._stop(driver, d.id)
            driver.redefine_guest(self._spec(d, idir, driver))
            log.info("guest resized", extra={"instance": d.id, "vcpus": d.vcpus, "ram_mb": d.ram_mb})
            guest = self._guest(driver, d.id)
        if guest is None:
            began = time.time()
            stages: dict[str, float] = {}
            idir.mkdir(exist_ok=True)
            os.chmod(idir, 0o755)
            spec = self._spec(d, idir, driver, stages)
            with _stage(stages, "define_ms"):
                driver.define_guest(spec)
            if "reboot_generation" not in self.applied(d.id):
                self._record(d.id, reboot_generation=d.reboot_generation, snapshot_done="")
            if d.power == pb.DESIRED_POWER_RUNNING:
                with _stage(stages, "start_ms"):
                    driver.start_guest(d.id)
            # The stages' times: what the boot-latency benchmark breaks a create down by.
            log.info(
                "guest defined",
                extra={"instance": d.id, "power": pb.DesiredPower.Name(d.power), "at": began, **stages},
            )
            guest = next((g for g in driver.list_guests() if g.instance_id == d.id), None)
            if guest is None:
                return
        running = guest.power_state == RUNNING
        if d.power == pb.DESIRED_POWER_RUNNING and not running:
            driver.start_guest(d.id)
            self._record(d.id, reboot_generation=d.reboot_generation)
        elif d.power == pb.DESIRED_POWER_STOPPED and running:
            driver.stop_guest(d.id, STOP_TIMEOUT)
        applied = self.applied(d.id)
        if d.reboot_generation > int(applied.get("reboot_generation", 0) or 0):
            if d.power == pb.DESIRED_POWER_RUNNING:
                driver.reboot_guest(d.id, d.reboot_hard)
            self._record(d.id, reboot_generation=d.reboot_generation)
        if d.snapshot_image_id and applied.get("snapshot_done") != d.snapshot_image_id:
            self._snapshot(d, idir, driver)
        self._reconcile_volumes(d, driver)
        if d.export_disk_move_id:
            self.moves.export(d, idir, driver)
        if d.move_step and self.applied(d.id).get("move_step") != d.move_step:
            self._record(d.id, move_step=d.move_step)

    # Live migration

    def _prepare_incoming(
        self, d: pb.DesiredInstance, guest: Guest | None, idir: Path, driver: HypervisorDriver
    ) -> None:
        """The target's side: the guest's files (an overlay of the right size
        for the copy to fill, the config drive) but no guest; the migration
        brings it, paused until it switches over."""
        if guest is None:
            idir.mkdir(exist_ok=True)
            os.chmod(idir, 0o755)
            self._spec(d, idir, driver)
        with self._lock:
            self._prepared[d.id] = d.incoming_migration_id
        if self.tunnel is not None:
            self.tunnel.expect(d.incoming_migration_id)

    def _send(self, d: pb.DesiredInstance, guest: Guest | None, driver: HypervisorDriver) -> None:
        """The source's side: migrate the running guest once per migration id;
        never make the guest again here while the order stands (it may run on
        the target now)."""
        order = d.outgoing_migration
        done = self.applied(d.id).get("migration") or {}
        if isinstance(done, dict) and done.get("id") == order.migration_id:
            return  # ended: the controller acts on how (kept in state.json)
        if guest is None or guest.power_state != RUNNING or self.outgoing.running(d.id):
            return
        copy = ("vda",) if driver.needs_disks and not d.boot_volume_id else ()
        self.outgoing.start(d.id, order, copy, driver)

    # Volumes

    def _volume_disk(self, volume_id: str, target: str) -> DiskSpec:
        if self.storage is None:
            raise RuntimeError("this node has no volume storage")
        if not self.storage.exists(volume_id):
            raise RuntimeError(f"volume {volume_id} is not on this node (yet)")
        return self.storage.disk_source(volume_id).disk(target, disk_serial(volume_id))

    def _volume_disks(self, d: pb.DesiredInstance) -> list[DiskSpec]:
        """The attached volumes at define time, in order from vdc on (missing
        ones are attached later, by _reconcile_volumes)."""
        out = []
        for i, vid in enumerate(v for v in d.volume_ids if v != d.boot_volume_id):
            if self.storage is not None and self.storage.exists(vid):
                out.append(self._volume_disk(vid, disk_target(2 + i)))
        return out

    def _reconcile_volumes(self, d: pb.DesiredInstance, driver: HypervisorDriver) -> None:
        """Attaches the desired volumes and detaches the others, live and in
        the definition, on every pass: attach and detach survive a noded
        restart, and a guest reboot keeps its definition's disks."""
        wanted = [v for v in d.volume_ids if v != d.boot_volume_id]
        boot = disk_serial(d.boot_volume_id) if d.boot_volume_id else ""
        before = [str(v) for v in self.applied(d.id).get("volumes", []) or []]  # type: ignore[attr-defined]
        known = {disk_serial(v): v for v in [*before, *wanted]}
        want = {disk_serial(v): v for v in wanted}
        have = {a.serial: a for a in driver.attached_disks(d.id) if a.serial != boot}
        releasing, stuck = [], []
        try:
            for serial in sorted(set(have) - set(want)):
                volume = known.get(serial, serial)
                if not driver.detach_disk(d.id, serial, DETACH_WAIT):
                    releasing.append(volume)
                    if self._detach_slow(d.id, serial, volume):
                        stuck.append(volume)
                    continue
                self._detaching.pop((d.id, serial), None)
                log.info("volume detached", extra={"instance": d.id, "volume": volume})
                del have[serial]
            used = {"vda", "vdb"} | {a.target for a in have.values()}
            for index, (serial, vid) in enumerate(want.items()):
                a = have.get(serial)
                if a is not None and a.live:
                    continue
                if a is not None:
                    target = a.target
                elif (target := disk_target(2 + index)) in used:  # its place in the list, else the first free
                    target = next(t for i in range(2, 2 + 26 * 27) if (t := disk_target(i)) not in used)
                # Idempotent: a stopped guest's disk already in its definition stays as is.
                driver.attach_disk(d.id, self._volume_disk(vid, target))
                used.add(target)
                if a is None:
                    log.info("volume attached", extra={"instance": d.id, "volume": vid, "target": target})
        finally:
            now = [
                known[a.serial] for a in driver.attached_disks(d.id) if a.serial != boot and a.serial in known
            ]
            if (self.applied(d.id).get("volumes") or []) != now:
                self._record(d.id, volumes=now)
        if releasing:
            fault = ""
            if stuck:
                fault = (
                    f"the guest has not released volume(s) {', '.join(stuck)} for over "
                    f"{DETACH_WARN_AFTER:g} s (no PCI hot-unplug in the guest?); "
                    "stop the server to finish the detach"
                )
            raise Pending(f"waiting for the guest to release volume(s) {', '.join(releasing)}", fault)

    def _detach_slow(self, instance_id: str, serial: str, volume: str) -> bool:
        """Whether the guest has ignored the unplug for DETACH_WARN_AFTER s
        (logged once)."""
        now = time.monotonic()
        started, warned = self._detaching.setdefault((instance_id, serial), (now, False))
        if now - started < DETACH_WARN_AFTER:
            return False
        if not warned:
            self._detaching[instance_id, serial] = (started, True)
            log.warning(
                "the guest has not released a detached volume; it is asked again every few seconds",
                extra={"instance": instance_id, "volume": volume, "seconds": round(now - started)},
            )
        return True

    def _spec(
        self,
        d: pb.DesiredInstance,
        idir: Path,
        driver: HypervisorDriver,
        stages: dict[str, float] | None = None,
    ) -> GuestSpec:
        """The guest's definition, making its disks and config drive first if
        they are missing; `stages` collects how long each took (a boot)."""
        stages = {} if stages is None else stages
        disks: list[DiskSpec] = []
        if driver.needs_disks:
            disk, config = idir / "disk.qcow2", idir / "config.iso"
            if not d.boot_volume_id and not disk.exists():  # from a volume: no overlay, no image
                if self.cache is None:
                    raise RuntimeError("no image cache on this node")
                fmt = guest_files.FORMATS.get(d.image_format)
                if fmt is None:
                    raise RuntimeError(f"unknown image format {d.image_format}")
                with _stage(stages, "image_cache_ms"):
                    base = self.cache.ensure(d.image_sha256, d.image_size_bytes)
                with _stage(stages, "disk_ms"):
                    guest_files.make_overlay(base, fmt, disk, d.disk_gb)
            if not d.boot_volume_id:
                self.moves.grow(d, disk)
            if not config.exists():
                with _stage(stages, "config_drive_ms"):
                    guest_files.make_config_drive(
                        config,
                        d.id,
                        guest_net.hostname(d, self._ports, self._networks),
                        list(d.public_keys),
                        d.user_data,
                        network_config=guest_net.network_config(d, self._ports, self._networks),
                    )
            root = (
                self._volume_disk(d.boot_volume_id, "vda")
                if d.boot_volume_id
                else DiskSpec(disk, "qcow2", "vda")
            )
            disks = [root, DiskSpec(config, "raw", "vdb", read_only=True)]
        elif d.boot_volume_id:
            disks = [self._volume_disk(d.boot_volume_id, "vda")]
        disks += self._volume_disks(d)
        return GuestSpec(
            instance_id=d.id,
            name=domain_name(d.id),
            vcpus=d.vcpus,
            ram_mb=d.ram_mb,
            disks=disks,
            console_log=self.console_log(d.id),
            title=d.hostname,
            # Real guests only: a fake node has no bridges.
            nics=guest_net.interfaces(d, self._ports, self._networks) if driver.needs_disks else [],
        )

    def _snapshot(self, d: pb.DesiredInstance, idir: Path, driver: HypervisorDriver) -> None:
        """Uploads the snapshot once, and records its outcome (done, or why it
        failed) in the instance's state file: heartbeats report it from there
        until the next snapshot, since a fault kept only in memory is cleared
        by the same pass before any heartbeat carries it."""
        flat = idir / "snapshot.qcow2"
        fault = ""
        try:
            if self.upload is None:
                raise RuntimeError("this node cannot upload snapshots")
            if d.boot_volume_id:  # booted from a volume: its current content (crash-consistent)
                if self.storage is None:
                    raise RuntimeError("this node has no volume storage")
                self.storage.export_qcow2(d.boot_volume_id, flat, live=True)
            elif not driver.export_root_disk(d.id, flat):
                guest_files.flatten(idir / "disk.qcow2", flat)
            self.upload(d.id, d.snapshot_image_id, file_chunks(flat))
            log.info("snapshot uploaded", extra={"instance": d.id, "image": d.snapshot_image_id})
        except Exception as exc:
            fault = f"snapshot failed: {_describe(exc)}"[:1000]
            log.warning("snapshot failed", extra={"instance": d.id, "error": fault})
        finally:
            flat.unlink(missing_ok=True)
            self._record(d.id, snapshot_done=d.snapshot_image_id, snapshot_fault=fault)

    # What the heartbeat says about guests

    def report_guests(self, guests: list[Guest]) -> list[pb.GuestStatus]:
        out = []
        seen = set()
        with self._lock:
            faults = dict(self.faults)
        for g in guests:
            seen.add(g.instance_id)
            applied = self.applied(g.instance_id)
            out.append(
                pb.GuestStatus(
                    instance_id=g.instance_id,
                    domain_name=g.domain_name,
                    power_state=POWER.get(g.power_state, 0),
                    vcpus=g.vcpus,
                    memory_mb=g.memory_mb,
                    reboot_generation=int(applied.get("reboot_generation", 0) or 0),
                    fault=faults.get(g.instance_id, ""),
                    snapshot_done_image_id=str(applied.get("snapshot_done", "")),
                    snapshot_fault=str(applied.get("snapshot_fault", "")),
                    attached_volume_ids=[str(v) for v in applied.get("volumes", []) or []],  # type: ignore[attr-defined]
                    move_step=str(applied.get("move_step", "")),
                )
            )
            self._add_migration(out[-1])
        for iid, fault in faults.items():
            if iid not in seen:
                seen.add(iid)
                out.append(pb.GuestStatus(instance_id=iid, fault=fault))
                self._add_migration(out[-1])
        with self._lock:
            wanted = set(self.wanted)
        for iid in sorted(wanted - seen):  # left with a live migration: say how it ended
            status = pb.GuestStatus(instance_id=iid)
            if self._add_migration(status):
                out.append(status)
        return out

    def _add_migration(self, status: pb.GuestStatus) -> bool:
        """The guest's outgoing migration, running or as it ended, if any."""
        prog = self.outgoing.progress(status.instance_id)
        with self._lock:
            incoming = self._prepared.get(status.instance_id, "")
        if prog is None and incoming:
            prog = pb.MigrationProgress(migration_id=incoming, state=pb.MIGRATION_JOB_STATE_PREPARED)
        if prog is None:
            done = self.applied(status.instance_id).get("migration")
            if not isinstance(done, dict) or not done.get("id"):
                return False
            prog = progress_pb(done)
        status.migration.CopyFrom(prog)
        return True

    # Console logs

    def console_log(self, iid: str) -> Path:
        """The guest's serial console log (qemu writes it; consoles read it)."""
        return self.dir / iid / "console.log"

    def send_consoles(self) -> None:
        """Sends the tail of every console log that grew since last time."""
        if self.report is None:
            return
        with self._lock:
            wanted = set(self.wanted)
        for iid in wanted:
            path = self.console_log(iid)
            try:
                st = path.stat()
            except OSError:
                continue
            mark = (st.st_size, st.st_mtime)
            if self._console_sent.get(iid) == mark:
                continue
            with open(path, "rb") as fh:
                fh.seek(max(0, st.st_size - CONSOLE_TAIL))
                data = fh.read()
            try:
                self.report(iid, data)
                self._console_sent[iid] = mark
            except Exception as exc:
                log.info("console report failed", extra={"instance": iid, "error": str(exc)})
