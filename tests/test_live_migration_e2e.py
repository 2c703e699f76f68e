"""End to end: live migrations of a real TCG guest that do not complete,
between two libvirt "hosts" on this machine (the system libvirtd and one in
its own mount namespace, bench/libvirt_hosts.py), each with its own
kumo-noded: a cancelled migration and one whose target dies midway leave
the guest running on the source with the target's claim freed.

The console ticker, the console typing and the migration waits here serve
tests/test_hostnet_e2e.py too, where guests complete their live migrations
(each host in its own network namespace, with a NIC): root disk copied over
the node daemons' TLS tunnel with a shared-fs volume, and from rbd volumes
with nothing copied; the guest keeps running, its fixed IP and claims move,
ping answers but for a measured gap."""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.libvirt_hosts import LibvirtHost
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import node_pb2 as npb
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, ready_nodes, virsh
from tests.harness import Client
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, run_noded, wait_for
from tests.waits import diagnose, wait_until

pytestmark = pytest.mark.e2e

# Typed again until it answers (the shell may not read its console yet right
# after boot); the guard keeps a second copy from starting a second ticker.
TICKER = (
    b'[ -z "$KT" ] && { KT=1; (while :; do echo KUMO-UP $(cut -d. -f1 /proc/uptime); sleep 1; done) & }\r'
)
TICK = re.compile(rb"KUMO-UP (\d+)\r?\n")


@pytest.fixture(scope="module")
def clouds() -> Iterator[dict]:
    libvirt_and_test_image()
    base = state_dir("kumo-livemig-e2e-")
    host = None
    try:
        with libvirt_cloud(base, "lm-source", "lm.small", reconcile_seconds=5) as c:
            admin = c["admin"]
            joined = run_noded(
                [
                    "join",
                    c["ctl"].endpoint,
                    make_token(admin),
                    "--name",
                    "lm-target",
                    "--state-dir",
                    str(base / "node2"),
                ]
            )
            assert joined.returncode == 0, joined.stderr
            host = LibvirtHost(base / "host2", base / "node2", same_path_as=c["state"])
            host.start(
                [
                    "--virt-type",
                    "qemu",
                    "--reconcile-seconds",
                    "5",
                    "--migration-address",
                    "127.0.0.1",
                    "--migration-uri",
                    host.uri,
                ]
            )
            listed = wait_until(
                lambda: len(ready_nodes(admin)) == 2 and ready_nodes(admin),
                what="the second host's node READY",
                base=60,
                explain=lambda: host.log_path.read_text(errors="replace")[-3000:],
            )
            ids = {n.name: n.id for n in listed}
            yield {**c, "host": host, "source": ids["lm-source"], "target": ids["lm-target"], "base": base}
    finally:
        if host is not None:
            host.stop()
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


def start_ticks(admin: Client, instance_id: str) -> None:
    """Has the guest print its uptime to its serial console every second."""
    type_until(admin, instance_id, TICKER, TICK)


def type_until(admin: Client, instance_id: str, line: bytes, answer: re.Pattern[bytes]) -> re.Match[bytes]:
    """Types `line` into the guest's shell on its console (again every few
    seconds: the shell answers once it runs) until the console shows `answer`."""
    answered = threading.Event()

    def ask() -> Iterator[pb.AttachConsoleRequest]:
        yield pb.AttachConsoleRequest(id=instance_id, mode=pb.CONSOLE_MODE_READ_WRITE)
        deadline = time.monotonic() + 85
        while not answered.is_set() and time.monotonic() < deadline:
            yield pb.AttachConsoleRequest(data=line)
            answered.wait(4)  # the input side stays open until the answer came

    seen = b""
    stream = admin.compute.AttachConsole(ask(), timeout=90)
    try:
        for msg in stream:
            seen += msg.data
            if found := answer.search(seen):
                return found
    finally:
        answered.set()
        stream.cancel()
    raise AssertionError(f"no {answer.pattern!r} on the console: {seen[-500:]!r}")


def ticks(admin: Client, instance_id: str) -> list[int]:
    """The uptimes the guest printed, from its node's console log."""
    log = admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=instance_id)).output
    return [int(t) for t in TICK.findall(log.encode())]


def migration(admin: Client, instance_id: str) -> pb.LiveMigration:
    return admin.compute.ListLiveMigrations(
        pb.ListLiveMigrationsRequest(instance_id=instance_id)
    ).live_migrations[-1]


def ended(admin: Client, instance_id: str) -> pb.LiveMigration:
    done = (pb.LIVE_MIGRATION_STATE_COMPLETED, pb.LIVE_MIGRATION_STATE_FAILED)
    return wait_until(
        lambda: (m := migration(admin, instance_id)).state in done and m,
        what="the live migration over",
        base=120,
        explain=lambda: diagnose(admin, instance_id),
    )


def booted(admin: Client, name: str) -> pb.Instance:
    inst = admin.compute.CreateInstance(
        pb.CreateInstanceRequest(name=name, image="kumo-test", flavor="lm.small")
    )
    wait_until(
        lambda: "KUMO-NICS" in admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=inst.id)).output,
        what="the guest booted",
        explain=lambda: diagnose(admin, inst.id),
    )
    return admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id))


def claimed(ctl_data: Path, node_id: str) -> tuple[int, int]:
    db = sqlite3.connect(ctl_data / "kumo.db")
    try:
        row = db.execute(
            "SELECT vcpus_used, ram_mb_used FROM node_usage WHERE node_id = ?", (node_id,)
        ).fetchone()
    finally:
        db.close()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def test_a_migration_whose_target_dies_leaves_the_guest_on_the_source(clouds: dict) -> None:
    """Last: it kills the extra host. The source's migrations are slowed to
    1 MiB/s so that the host dies while the disk copy runs."""
    admin, source, target, host = clouds["admin"], clouds["source"], clouds["target"], clouds["host"]
    clouds["node"].stop()
    slow = NodedProc(clouds["state"], [*clouds["node"].args, "--migration-max-bandwidth", "1"]).start()
    try:
        admin.nodes.DisableNode(npb.DisableNodeRequest(id=target, reason="place on the source"))
        inst = booted(admin, "stayer")
        admin.nodes.EnableNode(npb.EnableNodeRequest(id=target))
        assert inst.node_id == source
        before_claim = claimed(Path(clouds["ctl"].data_dir), target)
        wait_for(
            lambda: (
                admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id)).power_state
                == pb.POWER_STATE_RUNNING
            ),
            what="the restarted node reporting the guest",
        )
        # CancelMigration first: the source's libvirt aborts the real copy, the guest stays.
        admin.compute.MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, live=True, node=target))
        wait_until(
            lambda: migration(admin, inst.id).bytes_processed > 0,
            what="the copy under way",
            base=60,
            explain=lambda: diagnose(admin, inst.id),
        )
        admin.compute.CancelMigration(pb.CancelMigrationRequest(name=inst.id))
        cancelled = ended(admin, inst.id)
        assert cancelled.state == pb.LIVE_MIGRATION_STATE_FAILED, cancelled
        assert cancelled.fault.startswith("cancelled by "), cancelled.fault
        wait_until(
            lambda: (
                (i := admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id))).state
                == pb.INSTANCE_STATE_ACTIVE
                and i.power_state == pb.POWER_STATE_RUNNING
                and i.node_id == source
            ),
            what="the guest running on the source after the cancel",
            explain=lambda: diagnose(admin, inst.id),
        )
        assert "running" in virsh("domstate", f"kumo-{inst.id}")
        assert claimed(Path(clouds["ctl"].data_dir), target) == before_claim
        admin.compute.MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, live=True, node=target))
        wait_until(
            lambda: (m := migration(admin, inst.id)).id != cancelled.id and m.bytes_processed > 0,
            what="the copy under way again",
            base=60,
            explain=lambda: diagnose(admin, inst.id),
        )
        host.kill()
        m = ended(admin, inst.id)
        assert m.state == pb.LIVE_MIGRATION_STATE_FAILED, m
        print(f"\nfailed as it should: {m.fault}")
        stayed = wait_until(
            lambda: (
                (i := admin.compute.GetInstance(pb.GetInstanceRequest(id=inst.id))).state
                == pb.INSTANCE_STATE_ACTIVE
                and i.power_state == pb.POWER_STATE_RUNNING
                and i
            ),
            what="the guest still running on the source",
            explain=lambda: diagnose(admin, inst.id),
        )
        assert stayed.node_id == source and "live migration failed" in stayed.fault
        assert "running" in virsh("domstate", f"kumo-{inst.id}")
        assert claimed(Path(clouds["ctl"].data_dir), target) == before_claim
        start_ticks(admin, inst.id)  # its console still answers
    finally:
        slow.stop()
