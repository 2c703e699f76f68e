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

import json
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from bench.libvirt_hosts import LibvirtHost
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import node_pb2 as npb
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud, ready_nodes, virsh
from tests.harness import Client, cli_login, run_cli
from tests.netutil import state_dir
from tests.nodeutil import NodedProc, make_token, run_noded, wait_for
from tests.waits import LoadScaledDeadline, diagnose, node_line, wait_gone, wait_reconciled, wait_until

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
    # A node busy with a migration's end (its target just died) may be slow to
    # open the console: the controller then answers UNAVAILABLE; attach again.
    deadline = LoadScaledDeadline(60)
    while True:
        stream = admin.compute.AttachConsole(ask(), timeout=90)
        try:
            for msg in stream:
                seen += msg.data
                if found := answer.search(seen):
                    return found
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or seen or deadline.expired():
                raise
        finally:
            answered.set()
            stream.cancel()
        answered.clear()
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


def drain_account(admin: Client, ids: list[str], node_ids: list[str]) -> str:
    """What each guest and node was doing, and the drain's live migrations,
    for a drain wait that timed out."""
    parts = [diagnose(admin, iid) for iid in ids]
    parts += [node_line(admin, n) for n in node_ids]
    for iid in ids:
        for m in admin.compute.ListLiveMigrations(
            pb.ListLiveMigrationsRequest(instance_id=iid)
        ).live_migrations:
            parts.append(
                f"migration {m.id} of {iid}: {pb.LiveMigrationState.Name(m.state)} {m.source_node_id}"
                f" -> {m.target_node_id}, {m.bytes_processed}/{m.bytes_total} bytes, fault {m.fault!r}"
            )
    return "\n".join(parts)


def test_draining_a_node_live_migrates_its_three_guests_and_undrain_keeps_them(
    clouds: dict, tmp_path: Path
) -> None:
    """DrainNode with three running guests: each is live-migrated off (the
    per-instance progress is in ListLiveMigrations and the node's drain
    counts while it runs), their consoles' tickers go on without a reboot,
    the node stays in maintenance (a create finds no room there), and
    `kumo node undrain` returns it to service with the guests left where
    they are."""
    admin, source, target = clouds["admin"], clouds["source"], clouds["target"]
    admin.nodes.DisableNode(npb.DisableNodeRequest(id=target, reason="place on the source"))
    made = [
        admin.compute.CreateInstance(
            pb.CreateInstanceRequest(name=f"drained-{i}", image="kumo-test", flavor="lm.small")
        )
        for i in range(3)
    ]
    ids = [i.id for i in made]
    for iid in ids:
        wait_until(
            lambda iid=iid: (
                "KUMO-NICS" in admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid)).output
            ),
            what="the guest booted",
            explain=lambda iid=iid: diagnose(admin, iid),
        )
    admin.nodes.EnableNode(npb.EnableNodeRequest(id=target))
    assert {admin.compute.GetInstance(pb.GetInstanceRequest(id=iid)).node_id for iid in ids} == {source}
    with ThreadPoolExecutor(len(ids)) as pool:  # each console answers in its own time
        list(pool.map(lambda iid: start_ticks(admin, iid), ids))
    before = {iid: max(ticks(admin, iid), default=0) for iid in ids}
    explain = lambda: drain_account(admin, ids, [source, target])  # noqa: E731

    began = time.monotonic()
    node = admin.nodes.DrainNode(npb.DrainNodeRequest(id=source))
    assert node.maintenance and node.drain.state == npb.NODE_DRAIN_STATE_DRAINING, node.drain
    assert node.drain.instances_total == 3, node.drain
    seen: set[tuple[str, int]] = set()  # (instance, migration state) seen while it ran
    counts: list[int] = []

    def drained() -> npb.Node | None:
        for iid in ids:
            for m in admin.compute.ListLiveMigrations(
                pb.ListLiveMigrationsRequest(instance_id=iid)
            ).live_migrations:
                if m.drain_node_id == source:
                    seen.add((iid, m.state))
        n = admin.nodes.GetNode(npb.GetNodeRequest(id=source))
        counts.append(n.drain.migrated)
        return n if n.drain.state != npb.NODE_DRAIN_STATE_DRAINING else None

    done = wait_until(drained, what="the drain of three guests over", base=240, step=0.3, explain=explain)
    wall = time.monotonic() - began
    print(f"\nnode drain of 3 guests (live, copy-storage, 2 at a time): {wall:.1f} s wall")
    assert done.drain.state == npb.NODE_DRAIN_STATE_DRAINED, f"{done.drain}\n{explain()}"
    assert done.drain.migrated == 3 and done.drain.failed == 0 and done.maintenance, done.drain
    # Progress per instance while it ran: each was seen under way, and the count grew.
    under_way = (pb.LIVE_MIGRATION_STATE_PREPARING, pb.LIVE_MIGRATION_STATE_RUNNING)
    assert {iid for iid, st in seen if st in under_way} == set(ids), seen
    assert counts[0] < 3 and sorted(counts) == counts, counts
    for iid in ids:
        m = migration(admin, iid)
        assert m.state == pb.LIVE_MIGRATION_STATE_COMPLETED and m.drain_node_id == source, m
        assert m.target_node_id == target and m.bytes_processed > 0, m
    assert not admin.compute.ListInstances(pb.ListInstancesRequest(node_id=source)).instances
    for iid in ids:  # no reboot: each ticker goes on in the target's console log
        later = wait_until(
            lambda iid=iid: [t for t in ticks(admin, iid) if t > before[iid] + 2],
            what="the guest's uptime going on on the target",
            base=30,
            explain=lambda iid=iid: diagnose(admin, iid),
        )
        assert min(later) > before[iid]
        out = admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid)).output
        assert "KUMO-TEST-IMAGE-BOOTED" not in out
        assert admin.compute.GetInstance(pb.GetInstanceRequest(id=iid)).node_id == target
    # In maintenance nothing new lands there: with the other node disabled, no room at all.
    admin.nodes.DisableNode(npb.DisableNodeRequest(id=target, reason="only the drained node left"))
    try:
        with pytest.raises(grpc.RpcError) as refused:
            admin.compute.CreateInstance(
                pb.CreateInstanceRequest(name="drain-probe", image="kumo-test", flavor="lm.small")
            )
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "NodeMaintenanceFilter" in (refused.value.details() or ""), refused.value.details()
    finally:
        admin.nodes.EnableNode(npb.EnableNodeRequest(id=target))
    # Undrain through the CLI: back in service, and nothing moves back.
    cfg = tmp_path / "cli"
    assert cli_login(clouds["ctl"], cfg).returncode == 0
    back = run_cli(["node", "undrain", "lm-source", "-o", "json"], {"KUMO_CONFIG_DIR": str(cfg)})
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["maintenance"] is False
    wait_reconciled(admin, source, clouds["state"])
    for iid in ids:
        assert admin.compute.GetInstance(pb.GetInstanceRequest(id=iid)).node_id == target
        assert (
            len(
                admin.compute.ListLiveMigrations(
                    pb.ListLiveMigrationsRequest(instance_id=iid)
                ).live_migrations
            )
            == 1
        )
    for iid in ids:  # room for the next test's guests
        admin.compute.DeleteInstance(pb.DeleteInstanceRequest(id=iid))
    # Gone, and so their claims freed: the next test compares the target's claim before and after.
    for iid in ids:
        wait_gone(admin, iid)


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
