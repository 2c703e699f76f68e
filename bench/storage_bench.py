"""Storage backends on this host: local qcow2 files against Ceph RBD images
(a real single-node cluster, bench/ceph_cluster.py).

1. The cluster's bootstrap time (to every PG active+clean).
2. Per backend, ROUNDS times: create an empty 1 GiB volume, grow it to
   2 GiB, snapshot it, delete it (the node-side operations the volumes step
   runs): p50 and max of each.
3. Per backend, ROUNDS times: hot-plug the volume into a running TCG guest
   (libvirt attachDeviceFlags, a file disk or an rbd network disk with its
   cephx secret) and unplug it (the guest's ACPI hot-unplug): p50 and max.

What the API adds on top (a node heartbeat and the controller's sync pass
before the state moves on) is what tests/test_volumes_rbd_e2e.py prints.
KUMO_BENCH_ROUNDS (5) changes the rounds."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.ceph_cluster import available, one_per_host, start, stop
from bench.fakecloud import ms, pct, table
from bench.procs import wait_for
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_agent_pb2 as npb

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("KUMO_BENCH_ROUNDS", "5"))
GiB = 1024**3


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def _disks(console: Path) -> str:
    """The guest's latest KUMO-DISKS report."""
    found = re.findall(r"^KUMO-DISKS: (.*?)\s*$", console.read_text(errors="replace"), re.M)
    return found[-1] if found else ""


def _pass(step, state: npb.NodeDesiredState, drv) -> bool:  # type: ignore[no-untyped-def]
    """One reconcile pass; False when it failed (other guests on this host come and go meanwhile)."""
    try:
        step(state, drv)
    except RuntimeError as exc:
        print(f"pass failed, again: {exc}"[:300])
        return False
    return True


def _round(backends, name: str, i: int, drv, iid: str, console: Path, ops: dict[str, list[float]]) -> None:  # type: ignore[no-untyped-def]
    """One volume through create, extend, snapshot, hot-plug, unplug, delete."""
    from noded.hypervisor.base import disk_serial

    vid = f"be9c0000-0000-4000-8000-{i:012d}"
    sid = f"be9c0000-0000-4000-9000-{i:012d}"
    b = backends.bind(vid, name)
    ops["create"].append(_timed(lambda: b.create_empty(vid, GiB)))
    ops["extend"].append(_timed(lambda: b.extend(vid, 2 * GiB)))
    ops["snapshot"].append(_timed(lambda: b.snapshot_create(vid, sid, live=False)))
    disk = b.disk_source(vid).disk("vdc", disk_serial(vid))
    ops["attach"].append(_timed(lambda: drv.attach_disk(iid, disk)))
    wait_for(lambda: _disks(console) == "vda vdb vdc", 120, 0.05, "the guest to see the disk")
    ops["detach"].append(_timed(lambda: wait_for(lambda: drv.detach_disk(iid, disk.serial, 2.0), 120)))
    wait_for(lambda: _disks(console) == "vda vdb", 120, 0.05, "the guest to let go of the disk")
    ops["delete"].append(_timed(lambda: b.delete(vid)))


def main() -> None:
    why = available()
    if why:
        print(f"skipped: {why}")
        return
    subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], check=True, capture_output=True)
    image_file = ROOT / "images" / "kumo-test.qcow2"
    subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(image_file)], check=True, capture_output=True
    )

    base = Path(tempfile.mkdtemp(prefix="kumo-storage-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        with one_per_host():
            _run(base, image_file)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(base: Path, image_file: Path) -> None:
    from noded.compute.image_cache import ImageCache
    from noded.compute.step import ComputeStep
    from noded.hypervisor.libvirt_driver import LibvirtDriver
    from noded.storage import RbdSettings, make_backend

    pids: list[int] = []
    drv = None
    iid = "be9c0000-0000-4000-8000-000000000001"
    try:
        boot = time.monotonic()
        cluster, pids = start(base / "ceph")
        boot_s = time.monotonic() - boot
        rbd = RbdSettings(cluster.monitors, cluster.pool, cluster.client, cluster.client_keyring)
        drv = LibvirtDriver(virt_type="qemu", instances_dir=base / "instances")
        backends = make_backend(drv, base / "volumes", rbd)
        img = image_file.read_bytes()
        cache = ImageCache(base / "images", lambda _s, offset: iter([img[offset:]]))
        compute = ComputeStep(base / "instances", cache, None, None, backends)
        inst = npb.DesiredInstance(
            id=iid,
            hostname="bench",
            image_sha256=hashlib.sha256(img).hexdigest(),
            image_format=ipb.DISK_FORMAT_QCOW2,
            image_size_bytes=len(img),
            vcpus=1,
            ram_mb=256,
            disk_gb=1,
            power=npb.DESIRED_POWER_RUNNING,
        )
        wait_for(lambda: _pass(compute, npb.NodeDesiredState(enabled=True, instances=[inst]), drv), 120, 1.0)
        console = base / "instances" / iid / "console.log"
        wait_for(
            lambda: console.exists() and _disks(console) == "vda vdb",
            timeout=300,
            step=0.3,
            what="the bench guest booted",
        )

        rows: list[tuple[str, str]] = [("ceph bootstrap (to active+clean)", f"{boot_s:.1f} s")]
        for name in ("local", "rbd"):
            ops: dict[str, list[float]] = {
                k: [] for k in ("create", "extend", "snapshot", "delete", "attach", "detach")
            }
            for i in range(ROUNDS):
                _round(backends, name, i, drv, iid, console, ops)
            for op, values in ops.items():
                rows.append((f"{name} {op} p50 / max", f"{ms(pct(values, 0.5))} / {ms(max(values))}"))
        print(f"{ROUNDS} rounds per backend; 1 GiB volumes; TCG guest; {os.cpu_count()} CPUs")
        table(rows)
    finally:
        if drv is not None:
            try:
                drv.destroy_guest(iid)
            finally:
                drv.close()
        stop(pids)
