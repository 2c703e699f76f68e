"""Live migration of real TCG guests between two libvirt "hosts" on this
machine (the system libvirtd and one in its own mount namespace,
bench/libvirt_hosts.py), each with its own kumo-noded, through the API.

1. ROUNDS live migrations (KUMO_BENCH_ROUNDS, default 5) of one idle 256 MiB
   guest with its 1 GiB overlay copied (copy-storage), back and forth: wall
   time (MigrateInstance to COMPLETED, as the API reports it) and libvirt's
   downtime, p50 and max.
2. A drain of DRAIN guests (KUMO_BENCH_DRAIN, default 3) off one node, then
   the same guests moved back by DRAIN sequential `virsh migrate` calls with
   the same flags (node daemons stopped meanwhile, target disks pre-created
   as kumo's target does): wall times and their ratio.

Shared disks are not measured yet (shared-fs would need the extra host to
see the shared directory at the same path: it does, but the guests'
root disks are overlays, not volumes). kumo's migrations go through the
node daemons' TLS tunnel (docs/nodes.md); the `virsh migrate` comparison
sends plain TCP on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.fakecloud import pct, table
from bench.libvirt_hosts import LibvirtHost
from bench.procs import ROOT, ControllerProc, NodedProc, make_image, make_token, run_noded, wait_for
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_pb2 as npb

ROUNDS = int(os.environ.get("KUMO_BENCH_ROUNDS", "5"))
DRAIN = int(os.environ.get("KUMO_BENCH_DRAIN", "3"))
IMAGE = ROOT / "images" / "kumo-test.qcow2"
VIRSH_FLAGS = [
    "--live",
    "--p2p",
    "--persistent",
    "--undefinesource",
    "--copy-storage-all",
    "--auto-converge",
    "--migrate-disks",
    "vda",
]


def _system_libvirtd() -> int:
    out = subprocess.run(["pgrep", "-xo", "libvirtd"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def _running(admin, iid: str, node: str = "") -> pb.Instance:  # type: ignore[no-untyped-def]
    return wait_for(
        lambda: (
            (i := admin.compute.GetInstance(pb.GetInstanceRequest(id=iid))).state == pb.INSTANCE_STATE_ACTIVE
            and i.power_state == pb.POWER_STATE_RUNNING
            and (not node or i.node_id == node)
            and i
        ),
        timeout=300,
        what="instance running",
    )


def migrate(admin, iid: str, target: str, timeout: float = 300) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """(wall s, libvirt downtime ms) of one live migration of `iid` to node `target`."""
    began = time.monotonic()
    admin.compute.MigrateInstance(pb.MigrateInstanceRequest(name=iid, live=True, node=target))
    done = (pb.LIVE_MIGRATION_STATE_COMPLETED, pb.LIVE_MIGRATION_STATE_FAILED)

    def ended() -> pb.LiveMigration | None:
        m = admin.compute.ListLiveMigrations(pb.ListLiveMigrationsRequest(instance_id=iid)).live_migrations[
            -1
        ]
        return m if m.state in done else None

    m = wait_for(ended, timeout=timeout, step=0.1, what="migration done")
    if m.state != pb.LIVE_MIGRATION_STATE_COMPLETED:
        raise RuntimeError(f"live migration failed: {m.fault}")
    return time.monotonic() - began, m.downtime_ms


def main() -> None:
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(IMAGE)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], check=True)
    system_pid = _system_libvirtd()
    system_uri = f"qemu+unix:///system?socket=/proc/{system_pid}/root/run/libvirt/libvirt-sock"
    base = Path(tempfile.mkdtemp(prefix="kumo-livemig-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    ctl = ControllerProc(
        base / "ctl", extra_env={"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.2"}
    )
    (base / "ctl").mkdir()
    a_state, b_state = base / "node", base / "node2"
    host = LibvirtHost(base / "host2", b_state, same_path_as=a_state)
    a = None
    try:
        ctl.start(timeout=120)  # a loaded machine starts it slowly
        admin = ctl.login()
        for name, state in (("bench-a", a_state), ("bench-b", b_state)):
            joined = run_noded(
                ["join", ctl.endpoint, make_token(admin), "--name", name, "--state-dir", str(state)]
            )
            assert joined.returncode == 0, joined.stderr
        common = ["--virt-type", "qemu", "--reconcile-seconds", "5", "--heartbeat-seconds", "0.5"]
        common += ["--migration-address", "127.0.0.1"]
        a = NodedProc(a_state, [*common, "--migration-uri", system_uri]).start()
        host.start([*common, "--migration-uri", host.uri])

        def both_ready() -> list[npb.Node]:
            listed = list(admin.nodes.ListNodes(npb.ListNodesRequest()).nodes)
            return listed if sum(n.state == npb.NODE_STATE_READY for n in listed) == 2 else []

        ids = {n.name: n.id for n in wait_for(both_ready, timeout=120, what="both nodes READY")}
        make_image(admin, "kumo-test", IMAGE.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        admin.compute.CreateFlavor(
            pb.CreateFlavorRequest(
                flavor=pb.Flavor(name="b.small", vcpus=1, ram_mb=256, disk_gb=1, is_public=True)
            )
        )
        na, nb = ids["bench-a"], ids["bench-b"]
        admin.nodes.DisableNode(npb.DisableNodeRequest(id=nb))
        guests = [
            admin.compute.CreateInstance(
                pb.CreateInstanceRequest(name=f"g{i}", image="kumo-test", flavor="b.small")
            ).id
            for i in range(max(DRAIN, 1))
        ]
        for g in guests:
            _running(admin, g, na)
        admin.nodes.EnableNode(npb.EnableNodeRequest(id=nb))
        wait_for(
            lambda: all(
                "KUMO-NICS" in admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=g)).output
                for g in guests
            ),
            timeout=900,  # TCG boots on a loaded machine
            what="guests booted",
        )

        walls, downs = [], []
        where = na
        for _ in range(ROUNDS):
            to = nb if where == na else na
            wall, down = migrate(admin, guests[0], to)
            _running(admin, guests[0], to)
            walls.append(wall)
            downs.append(down)
            where = to
        print(f"live migration, idle 256 MiB guest, 1 GiB overlay copied, {ROUNDS} rounds:")
        table(
            [
                ("wall p50", f"{pct(walls, 0.5):.2f} s"),
                ("wall max", f"{max(walls):.2f} s"),
                ("downtime p50", f"{pct(downs, 0.5):.0f} ms"),
                ("downtime max", f"{max(downs):.0f} ms"),
            ]
        )

        # Drain: every guest onto node a first, then drain a.
        for g in guests:
            i = admin.compute.GetInstance(pb.GetInstanceRequest(id=g))
            if i.node_id != na:
                migrate(admin, g, na)
                _running(admin, g, na)
        began = time.monotonic()
        admin.nodes.DrainNode(npb.DrainNodeRequest(id=na))
        node = wait_for(
            lambda: (
                (n := admin.nodes.GetNode(npb.GetNodeRequest(id=na))).drain.state
                != npb.NODE_DRAIN_STATE_DRAINING
                and n
            ),
            timeout=600,
            step=0.1,
            what="drain done",
        )
        drain_wall = time.monotonic() - began
        assert node.drain.state == npb.NODE_DRAIN_STATE_DRAINED, node.drain
        for g in guests:
            _running(admin, g, nb)
        # The same guests back by hand: node daemons stopped, so nothing fights virsh.
        a.stop()
        a = None
        host.stop_noded()
        for g in guests:  # the target files, as kumo's target would make them
            src, dst = b_state / "instances" / g, a_state / "instances" / g
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / "config.iso", dst / "config.iso")
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", str(dst / "disk.qcow2"), "1G"], check=True
            )
        began = time.monotonic()
        for g in guests:
            subprocess.run(
                [
                    "virsh",
                    "-c",
                    host.uri,
                    "migrate",
                    *VIRSH_FLAGS,
                    f"kumo-{g}",
                    system_uri,
                    "tcp://127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )
        virsh_wall = time.monotonic() - began
        print(f"drain of {len(guests)} guests vs {len(guests)} sequential virsh migrate (copy-storage-all):")
        table(
            [
                ("kumo node drain", f"{drain_wall:.2f} s"),
                ("sequential virsh migrate", f"{virsh_wall:.2f} s"),
                ("ratio drain / virsh", f"{drain_wall / virsh_wall:.2f}"),
            ]
        )
    finally:
        if a is not None:
            a.stop()
        host.stop()
        for line in subprocess.run(
            ["virsh", "list", "--all", "--name"], capture_output=True, text=True
        ).stdout.split():
            if (
                line.startswith("kumo-")
                and str(base)
                in subprocess.run(["virsh", "dumpxml", line], capture_output=True, text=True).stdout
            ):
                subprocess.run(["virsh", "destroy", line], capture_output=True)
                subprocess.run(["virsh", "undefine", line], capture_output=True)
        ctl.stop()
        shutil.rmtree(base, ignore_errors=True)
