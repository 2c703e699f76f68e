"""Live migration and node drains, the controller's side, against real
kumo-noded processes on the fake driver (its migrations are simulated: the
guest "copies" in migration_seconds and is gone from the source; the real
thing is test_live_migration_e2e.py): the move and its record, every new
RPC's refusals, a target that dies midway, drains, and racing migrations,
drains and creates that never overcommit a node."""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc, event_pb2, node_pb2_grpc
from kumo.v1 import node_pb2 as npb
from tests.cloudutil import FakeCloud, fake_cloud
from tests.harness import Client, cli_login, error_reason, race, rpc_error, run_cli, two_tenants
from tests.nodeutil import NodedProc, free_port, wait_for
from tests.waits import machine_load, scaled_timeout

UNKNOWN = "00000000-0000-4000-8000-000000000000"
NODES = 3  # each: 2 vCPUs (x4 = 8), 4096 MiB, 50 GiB


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


def nodes(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(node_pb2_grpc.NodeServiceStub)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCloud]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        # Short, so a dead target is seen soon; stretched on a loaded box, where a
        # restarted controller's nodes take longer to reconnect within it.
        "KUMO_NODE_GRACE_SECONDS": str(scaled_timeout(4, *machine_load(), cap=12)),
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
        "KUMO_QUOTA_INSTANCES": "1000",
        "KUMO_QUOTA_VCPUS": "1000",
        "KUMO_QUOTA_RAM_MB": "10000000",
    }
    ports = ["--listen", f"127.0.0.1:{free_port()}", "--node-listen", f"127.0.0.1:{free_port()}"]
    with fake_cloud(
        tmp_path_factory.mktemp("livemig"),
        NODES,
        "lm",
        env,
        extra_args=ports,  # fixed ports: the controller restarts in place
        node_args=["--heartbeat-seconds", "0.5"],
    ) as c:
        c.public_image("tiny")
        c.flavor("m1.mig", vcpus=1, ram_mb=1024)
        yield c


def create(client: Client, name: str, **kw) -> pb.Instance:  # type: ignore[no-untyped-def]
    return compute(client).CreateInstance(
        pb.CreateInstanceRequest(name=name, image="tiny", flavor="m1.mig", **kw)
    )


def get(client: Client, instance_id: str) -> pb.Instance:
    return compute(client).GetInstance(pb.GetInstanceRequest(id=instance_id))


def running(client: Client, instance_id: str, timeout: float = 30) -> pb.Instance:
    """The instance once ACTIVE with its guest reported running."""
    return wait_for(
        lambda: (
            (i := get(client, instance_id)).state == pb.INSTANCE_STATE_ACTIVE
            and i.power_state == pb.POWER_STATE_RUNNING
            and i
        ),
        timeout=timeout,
        what="instance running",
    )


def migrations(client: Client, **kw) -> list[pb.LiveMigration]:  # type: ignore[no-untyped-def]
    return list(
        compute(client).ListLiveMigrations(pb.ListLiveMigrationsRequest(page_size=1000, **kw)).live_migrations
    )


def finished(client: Client, instance_id: str, timeout: float = 30) -> pb.LiveMigration:
    done = (pb.LIVE_MIGRATION_STATE_COMPLETED, pb.LIVE_MIGRATION_STATE_FAILED)
    return wait_for(
        lambda: (ms := migrations(client, instance_id=instance_id)) and ms[-1].state in done and ms[-1],
        timeout=timeout,
        what="live migration finished",
    )


def claims(cloud: FakeCloud) -> dict[str, tuple[int, int]]:
    """node id -> (vCPUs, RAM MiB) claimed, from the controller's database."""
    db = sqlite3.connect(Path(cloud.ctl.data_dir) / "kumo.db")
    try:
        rows = db.execute("SELECT node_id, vcpus_used, ram_mb_used FROM node_usage").fetchall()
    finally:
        db.close()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def expected_claims(cloud: FakeCloud) -> dict[str, tuple[int, int]]:
    """What the instances (and the targets of unfinished migrations) should claim."""
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for i in compute(cloud.admin).ListInstances(pb.ListInstancesRequest(page_size=1000)).instances:
        out[i.node_id][0] += i.vcpus
        out[i.node_id][1] += i.ram_mb
    for m in migrations(cloud.admin):
        if m.state in (pb.LIVE_MIGRATION_STATE_PREPARING, pb.LIVE_MIGRATION_STATE_RUNNING):
            out[m.target_node_id][0] += 1
            out[m.target_node_id][1] += 1024
    return {k: (v[0], v[1]) for k, v in out.items()}


def assert_claims_exact(cloud: FakeCloud) -> None:
    """Every node claims exactly what runs (or is arriving) there."""
    have = {k: v for k, v in claims(cloud).items() if v != (0, 0)}
    assert have == expected_claims(cloud)


def drain_over(admin: Client, node_id: str, timeout: float) -> npb.Node:
    """The node once its drain is no longer DRAINING."""
    return wait_for(
        lambda: (
            (x := nodes(admin).GetNode(npb.GetNodeRequest(id=node_id))).drain.state
            != npb.NODE_DRAIN_STATE_DRAINING
            and x
        ),
        timeout=timeout,
        what="the drain over",
    )


def node_ids(cloud: FakeCloud) -> list[str]:
    return sorted(cloud.node_states)


def delete_all(client: Client) -> None:
    c = compute(client)
    for inst in c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances:
        c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_for(
        lambda: not c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances,
        timeout=60,
        what="instances deleted",
    )


def test_live_migration_moves_the_guest_and_its_claim(cloud: FakeCloud) -> None:
    admin = cloud.admin
    inst = running(admin, create(admin, "mover").id)
    source = inst.node_id
    target = next(n for n in node_ids(cloud) if n != source)
    before = claims(cloud)
    moving = compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name="mover", live=True, node=target))
    assert moving.state == pb.INSTANCE_STATE_MIGRATING and moving.node_id == source
    m = finished(admin, inst.id)
    assert m.state == pb.LIVE_MIGRATION_STATE_COMPLETED, m.fault
    assert (m.source_node_id, m.target_node_id) == (source, target)
    assert m.bytes_total == 1024 * 1024**2 and m.bytes_processed == m.bytes_total
    after = running(admin, inst.id)
    assert after.node_id == target and after.fault == ""
    now = claims(cloud)
    assert now[source] == (before[source][0] - 1, before[source][1] - 1024)
    assert now[target] == (before.get(target, (0, 0))[0] + 1, before.get(target, (0, 0))[1] + 1024)
    # The scheduler picks a target when none is named: never the source.
    compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, live=True))
    again = finished(admin, inst.id)
    assert again.state == pb.LIVE_MIGRATION_STATE_COMPLETED and again.target_node_id != target
    assert running(admin, inst.id).node_id == again.target_node_id
    assert_claims_exact(cloud)
    delete_all(admin)


def test_migrate_refusals(cloud: FakeCloud) -> None:
    admin = cloud.admin
    t = two_tenants(cloud.ctl, admin, "lmneg")
    mine = running(t["alice"], create(t["alice"], "alices").id)
    c = compute(admin)

    def refused(code: grpc.StatusCode, reason: str, client: Client = admin, **kw) -> str:  # type: ignore[no-untyped-def]
        err = rpc_error(compute(client).MigrateInstance, pb.MigrateInstanceRequest(**kw))
        assert err.code() == code, (err.code(), err.details())
        if reason:
            assert error_reason(err) == reason, err.details()
        return err.details()

    assert "name" in refused(grpc.StatusCode.INVALID_ARGUMENT, "", live=True)
    assert "node" in refused(grpc.StatusCode.INVALID_ARGUMENT, "", name=mine.id, live=True, node="bad\x01")
    refused(grpc.StatusCode.NOT_FOUND, "", name=UNKNOWN, live=True)
    refused(grpc.StatusCode.NOT_FOUND, "", name="nobody-has-this", live=True)
    refused(grpc.StatusCode.NOT_FOUND, "", name=mine.id, live=True, node=UNKNOWN)
    # Members and readers may not move servers, not even their own.
    refused(grpc.StatusCode.PERMISSION_DENIED, "", client=t["alice"], name=mine.id, live=True)
    refused(grpc.StatusCode.PERMISSION_DENIED, "", client=t["bob"], name=mine.id, live=True)
    refused(grpc.StatusCode.PERMISSION_DENIED, "", client=t["reader"], name=mine.id, live=True)
    err = rpc_error(compute(t["bob"]).ListLiveMigrations, pb.ListLiveMigrationsRequest(instance_id=mine.id))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    refused(grpc.StatusCode.INVALID_ARGUMENT, "SAME_NODE", name=mine.id, live=True, node=mine.node_id)
    # A stopped server cannot go live.
    c.StopInstance(pb.StopInstanceRequest(id=mine.id))
    wait_for(lambda: get(admin, mine.id).state == pb.INSTANCE_STATE_STOPPED, what="stopped")
    refused(grpc.StatusCode.FAILED_PRECONDITION, "INSTANCE_WRONG_STATE", name=mine.id, live=True)
    c.StartInstance(pb.StartInstanceRequest(id=mine.id))
    running(admin, mine.id)
    # No node with room: the message names the filters, as a create's does.
    full = c.CreateFlavor(
        pb.CreateFlavorRequest(
            flavor=pb.Flavor(name="m1.full", vcpus=1, ram_mb=4096, disk_gb=1, is_public=True)
        )
    )
    for i in range(NODES - 1):  # each lands on a node with all its RAM free: not mine's
        assert (
            c.CreateInstance(pb.CreateInstanceRequest(name=f"fill-{i}", image="tiny", flavor=full.id)).node_id
            != mine.node_id
        )
    details = refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_VALID_HOST", name=mine.id, live=True)
    assert "SourceNodeFilter rejected 1" in details and "RamFilter rejected 2" in details, details
    assert get(admin, mine.id).state == pb.INSTANCE_STATE_ACTIVE  # nothing changed
    # Not twice at once.
    delete_all(admin)
    mine = running(admin, create(admin, "twice").id)
    c.MigrateInstance(pb.MigrateInstanceRequest(name=mine.id, live=True))
    refused(grpc.StatusCode.FAILED_PRECONDITION, "INSTANCE_WRONG_STATE", name=mine.id, live=True)
    assert finished(admin, mine.id).state == pb.LIVE_MIGRATION_STATE_COMPLETED
    for bad in (
        pb.ListLiveMigrationsRequest(instance_id="x"),
        pb.ListLiveMigrationsRequest(node_id="x"),
        pb.ListLiveMigrationsRequest(state=99),
    ):
        assert rpc_error(c.ListLiveMigrations, bad).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_claims_exact(cloud)
    delete_all(admin)


def test_drain_refusals(cloud: FakeCloud) -> None:
    admin = cloud.admin
    t = two_tenants(cloud.ctl, admin, "drneg")
    n = node_ids(cloud)[0]
    for client in (t["alice"], t["reader"]):
        for call, req in (
            (nodes(client).DrainNode, npb.DrainNodeRequest(id=n)),
            (nodes(client).UndrainNode, npb.UndrainNodeRequest(id=n)),
        ):
            assert rpc_error(call, req).code() == grpc.StatusCode.PERMISSION_DENIED
    for call in (nodes(admin).DrainNode, nodes(admin).UndrainNode):
        req_type = npb.DrainNodeRequest if call == nodes(admin).DrainNode else npb.UndrainNodeRequest
        assert rpc_error(call, req_type(id="")).code() == grpc.StatusCode.INVALID_ARGUMENT
        assert rpc_error(call, req_type(id="not-a-uuid")).code() == grpc.StatusCode.INVALID_ARGUMENT
        assert rpc_error(call, req_type(id=UNKNOWN)).code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(nodes(admin).UndrainNode, npb.UndrainNodeRequest(id=n))
    assert (
        err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(err) == "NODE_NOT_IN_MAINTENANCE"
    )


def test_drain_empties_the_node_and_reports_what_cannot_go(cloud: FakeCloud) -> None:
    admin = cloud.admin
    c = compute(admin)
    drained = node_ids(cloud)[0]
    made = []
    for i in range(4):  # spread over the nodes; at least one on `drained`
        made.append(running(admin, create(admin, f"dr-{i}").id))
    on_node = [i for i in made if i.node_id == drained]
    if not on_node:
        other = made[0]
        c.MigrateInstance(pb.MigrateInstanceRequest(name=other.id, live=True, node=drained))
        finished(admin, other.id)
        on_node = [running(admin, other.id)]
    stopped = create(admin, "dr-stopped")
    stopped = running(admin, stopped.id)
    if stopped.node_id != drained:
        c.MigrateInstance(pb.MigrateInstanceRequest(name=stopped.id, live=True, node=drained))
        assert finished(admin, stopped.id).state == pb.LIVE_MIGRATION_STATE_COMPLETED
    c.StopInstance(pb.StopInstanceRequest(id=stopped.id))
    wait_for(lambda: get(admin, stopped.id).state == pb.INSTANCE_STATE_STOPPED, what="stopped")
    node = nodes(admin).DrainNode(npb.DrainNodeRequest(id=drained))
    assert node.maintenance and node.drain.state == npb.NODE_DRAIN_STATE_DRAINING
    # Nothing new lands on a node in maintenance.
    for i in range(3):
        assert create(admin, f"dr-new-{i}").node_id != drained
    done = drain_over(admin, drained, 60)
    assert done.drain.state == npb.NODE_DRAIN_STATE_INCOMPLETE, done.drain
    assert done.drain.failed == 1 and done.drain.migrated == len(on_node)
    left = c.ListInstances(pb.ListInstancesRequest(node_id=drained, page_size=100)).instances
    assert [i.id for i in left] == [stopped.id]
    entries = [m for m in migrations(admin, node_id=drained) if m.drain_node_id == drained]
    failed = [m for m in entries if m.state == pb.LIVE_MIGRATION_STATE_FAILED]
    assert [m.instance_id for m in failed] == [stopped.id]
    assert "stopped" in failed[0].fault and "cold-migrate" in failed[0].fault
    # A DOWN node cannot be drained; undrain returns this one to service.
    back = nodes(admin).UndrainNode(npb.UndrainNodeRequest(id=drained))
    assert not back.maintenance
    assert_claims_exact(cloud)
    delete_all(admin)


def settled(admin: Client) -> None:
    """No instance is moving (cold moves hold a claim on both nodes until they end)."""
    wait_for(
        lambda: (
            not compute(admin)
            .ListInstances(pb.ListInstancesRequest(page_size=1000, state=pb.INSTANCE_STATE_MIGRATING))
            .instances
        ),
        timeout=120,
        what="every move ended",
    )


def test_a_cold_drain_moves_stopped_guests_too_and_races_creates_without_overcommit(
    cloud: FakeCloud,
) -> None:
    """DrainNode cold: two running guests go live, two stopped ones cold, the
    node ends empty (DRAINED). Then a cold drain of a node racing creates for
    the last room: no node is ever claimed beyond its capacity."""
    admin = cloud.admin
    c = compute(admin)
    drained, *others = node_ids(cloud)
    for n in others:
        nodes(admin).DisableNode(npb.DisableNodeRequest(id=n, reason="place on the drained one"))
    made = [running(admin, create(admin, f"cd-{i}").id) for i in range(4)]
    for n in others:
        nodes(admin).EnableNode(npb.EnableNodeRequest(id=n))
    assert {i.node_id for i in made} == {drained}
    for inst in made[2:]:
        c.StopInstance(pb.StopInstanceRequest(id=inst.id))
    for inst in made[2:]:
        wait_for(lambda i=inst: get(admin, i.id).state == pb.INSTANCE_STATE_STOPPED, what="stopped")
    node = nodes(admin).DrainNode(npb.DrainNodeRequest(id=drained, cold=True))
    assert node.drain.cold
    done = drain_over(admin, drained, 90)
    assert done.drain.state == npb.NODE_DRAIN_STATE_DRAINED, done.drain
    assert done.drain.migrated == 2 and done.drain.cold_started == 2 and done.drain.failed == 0
    assert not c.ListInstances(pb.ListInstancesRequest(node_id=drained, page_size=100)).instances
    for inst in made[2:]:  # moved cold and still stopped, as before
        after = get(admin, inst.id)
        assert after.node_id != drained and after.state == pb.INSTANCE_STATE_STOPPED, after
    for inst in made[:2]:
        assert running(admin, inst.id).node_id != drained
    nodes(admin).UndrainNode(npb.UndrainNodeRequest(id=drained))
    assert_claims_exact(cloud)

    # The race: the guests of one node (one of them stopped) drained cold
    # while creates take the room (each node holds 4 of these guests).
    busiest = max(others, key=lambda n: len(c.ListInstances(pb.ListInstancesRequest(node_id=n)).instances))
    clients = [cloud.ctl.login() for _ in range(4)]
    codes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        for j in range(4 if k else 1):
            try:
                if k == 0:
                    nodes(client).DrainNode(npb.DrainNodeRequest(id=busiest, cold=True))
                else:
                    create(client, f"cd-race-{k}-{j}")
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            with lock:
                codes[code] += 1

    race(worker, enumerate(clients))
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    drain_over(admin, busiest, 90)
    settled(admin)
    now = claims(cloud)
    for n in node_ids(cloud):
        vcpus, ram = now.get(n, (0, 0))
        assert vcpus <= 8 and ram <= 4096, (n, now)
    assert_claims_exact(cloud)
    nodes(admin).UndrainNode(npb.UndrainNodeRequest(id=busiest))
    delete_all(admin)


def test_the_cli_migrates_and_drains_with_progress(cloud: FakeCloud, tmp_path: Path) -> None:
    admin = cloud.admin
    cfg = tmp_path / "cli"
    assert cli_login(cloud.ctl, cfg).returncode == 0
    env = {"KUMO_CONFIG_DIR": str(cfg)}
    inst = running(admin, create(admin, "cli-mover").id)
    names = {n.id: n.name for n in nodes(admin).ListNodes(npb.ListNodesRequest()).nodes}
    target = next(n for n in node_ids(cloud) if n != inst.node_id)
    out = run_cli(
        ["server", "migrate", "cli-mover", "--live", "--node", names[target], "--wait", "-o", "json"], env
    )
    assert out.returncode == 0, out.stderr
    assert "cli-mover: preparing" in out.stderr or "cli-mover: running" in out.stderr, out.stderr
    assert "completed (1024.0 MiB copied" in out.stderr, out.stderr
    assert json.loads(out.stdout)["node_id"] == target
    listed = run_cli(["server", "migration", "list", "--server", "cli-mover", "-o", "json"], env)
    assert listed.returncode == 0 and json.loads(listed.stdout)[-1]["state"] == "completed", listed.stdout
    not_moving = run_cli(["server", "migration", "cancel", "cli-mover"], env)
    assert not_moving.returncode != 0 and "no migration or resize under way" in not_moving.stderr
    cold = running(admin, create(admin, "cli-cold").id)
    if cold.node_id != target:
        compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=cold.id, live=True, node=target))
        assert finished(admin, cold.id).state == pb.LIVE_MIGRATION_STATE_COMPLETED
    compute(admin).StopInstance(pb.StopInstanceRequest(id=cold.id))
    wait_for(lambda: get(admin, cold.id).state == pb.INSTANCE_STATE_STOPPED, what="stopped")
    drained = run_cli(["node", "drain", names[target], "--cold", "--wait", "-o", "json"], env)
    assert drained.returncode == 0, drained.stderr
    assert f"server {inst.id}: completed" in drained.stderr, drained.stderr
    shown = json.loads(drained.stdout)
    assert shown["maintenance"] is True and shown["drain"]["cold_started"] == 1, shown
    assert get(admin, cold.id).node_id != target
    back = run_cli(["node", "undrain", names[target], "-o", "json"], env)
    assert back.returncode == 0 and json.loads(back.stdout)["maintenance"] is False
    again = run_cli(["node", "undrain", names[target]], env)
    assert again.returncode != 0 and "not in maintenance" in again.stderr
    delete_all(admin)


def test_racing_migrations_drains_and_creates_never_overcommit(cloud: FakeCloud) -> None:
    """200 migration and drain requests race creates for the last units."""
    admin = cloud.admin
    ids = node_ids(cloud)
    seed = [running(admin, create(admin, f"seed-{i}").id) for i in range(6)]
    clients = [cloud.ctl.login() for _ in range(6)]
    codes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        for j in range(34):
            try:
                if k % 3 == 0:
                    create(client, f"race-{k}-{j}")
                elif k % 3 == 1:
                    inst = seed[(k + j) % len(seed)]
                    compute(client).MigrateInstance(
                        pb.MigrateInstanceRequest(name=inst.id, live=True, node=ids[j % len(ids)])
                    )
                else:
                    nodes(client).DrainNode(npb.DrainNodeRequest(id=ids[j % len(ids)]))
                    nodes(client).UndrainNode(npb.UndrainNodeRequest(id=ids[j % len(ids)]))
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            with lock:
                codes[code] += 1

    race(worker, enumerate(clients))
    assert sum(codes.values()) == 6 * 34
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "INVALID_ARGUMENT"}, codes
    for n in ids:
        if nodes(admin).GetNode(npb.GetNodeRequest(id=n)).maintenance:
            nodes(admin).UndrainNode(npb.UndrainNodeRequest(id=n))
    # Let every migration end, then the claims are exactly what runs where.
    wait_for(
        lambda: (
            not [
                m
                for m in migrations(admin)
                if m.state in (pb.LIVE_MIGRATION_STATE_PREPARING, pb.LIVE_MIGRATION_STATE_RUNNING)
            ]
        ),
        timeout=120,
        what="migrations finished",
    )
    now = claims(cloud)
    for n in ids:
        vcpus, ram = now.get(n, (0, 0))
        assert vcpus <= 8 and ram <= 4096, (n, now)
    assert_claims_exact(cloud)
    delete_all(admin)


def slow_source(cloud: FakeCloud, node_id: str, seconds: float) -> None:
    """Restarts the node's daemon with simulated migrations that take `seconds`."""
    proc = next(p for p in cloud.procs if p.state_dir == cloud.node_states[node_id])
    proc.stop()
    cloud.procs.remove(proc)
    cloud.procs.append(
        NodedProc(proc.state_dir, [*proc.args, "--fake-migration-seconds", str(seconds)]).start()
    )


def begin(admin: Client, instance_id: str, target: str) -> None:
    """MigrateInstance, retried while a restarted daemon's session comes back."""

    def started() -> bool:
        try:
            compute(admin).MigrateInstance(
                pb.MigrateInstanceRequest(name=instance_id, live=True, node=target)
            )
        except grpc.RpcError as exc:
            assert error_reason(exc) in ("NODE_DOWN", "INSTANCE_NOT_RUNNING"), exc
            return False
        return True

    wait_for(started, timeout=30, what="the migration accepted")


def copy_under_way(cloud: FakeCloud, name: str, seconds: float) -> tuple[pb.Instance, str, str, dict]:
    """A new running guest whose live migration's simulated copy (slowed to
    `seconds`) is under way: (the instance, source, target, claims before)."""
    admin = cloud.admin
    inst = running(admin, create(admin, name).id)
    source = inst.node_id
    slow_source(cloud, source, seconds)
    inst = running(admin, inst.id)  # the restarted fake driver made it again
    target = next(n for n in node_ids(cloud) if n != source)
    before = claims(cloud)
    begin(admin, inst.id, target)
    wait_for(
        lambda: migrations(admin, instance_id=inst.id)[-1].bytes_processed > 0,
        timeout=30,
        what="the copy under way",
    )
    return inst, source, target, before


def test_a_controller_restart_mid_migration_carries_on(cloud: FakeCloud) -> None:
    """The record is in the database and the nodes say how it went: a
    controller that restarts while the copy runs completes it."""
    admin = cloud.admin
    inst = running(admin, create(admin, "restarted").id)
    source = inst.node_id
    slow_source(cloud, source, 6)
    target = next(n for n in node_ids(cloud) if n != source)
    begin(admin, inst.id, target)
    wait_for(
        lambda: migrations(admin, instance_id=inst.id)[-1].bytes_processed > 0, what="the copy under way"
    )
    cloud.ctl.restart()
    cloud.admin = admin = cloud.ctl.login()
    m = finished(admin, inst.id, timeout=60)
    assert m.state == pb.LIVE_MIGRATION_STATE_COMPLETED, m.fault
    assert running(admin, inst.id).node_id == target
    assert_claims_exact(cloud)
    delete_all(admin)


def test_cancel_migration_aborts_the_copy_and_keeps_the_guest_on_the_source(cloud: FakeCloud) -> None:
    """CancelMigration: its refusals, then a cancel while the simulated copy
    runs (slowed to 30 s): the source aborts it, the guest stays, the
    target's claim goes, the fault and the event log say who."""
    admin = cloud.admin
    t = two_tenants(cloud.ctl, admin, "lmcancel")
    idle = running(admin, create(admin, "not-moving").id)
    inst, source, target, before = copy_under_way(cloud, "cancelled", 30)

    def refused(code: grpc.StatusCode, reason: str, client: Client = admin, name: str = "") -> str:
        err = rpc_error(compute(client).CancelMigration, pb.CancelMigrationRequest(name=name))
        assert err.code() == code, (err.code(), err.details())
        if reason:
            assert error_reason(err) == reason, err.details()
        return err.details()

    assert "name" in refused(grpc.StatusCode.INVALID_ARGUMENT, "")
    assert "name" in refused(grpc.StatusCode.INVALID_ARGUMENT, "", name="bad\x01")
    refused(grpc.StatusCode.NOT_FOUND, "", name=UNKNOWN)
    refused(grpc.StatusCode.NOT_FOUND, "", name="nobody-has-this")
    for who in ("alice", "bob"):  # another project's instance: as missing
        refused(grpc.StatusCode.NOT_FOUND, "", client=t[who], name=inst.id)
    refused(grpc.StatusCode.PERMISSION_DENIED, "", client=t["reader"], name=inst.id)
    refused(grpc.StatusCode.FAILED_PRECONDITION, "NOT_MOVING", name=idle.id)
    assert get(admin, inst.id).state == pb.INSTANCE_STATE_MIGRATING  # the refusals changed nothing

    out = compute(admin).CancelMigration(pb.CancelMigrationRequest(name="cancelled"))
    assert out.id == inst.id
    assert migrations(admin, instance_id=inst.id)[-1].cancelled_by == "admin"
    compute(admin).CancelMigration(pb.CancelMigrationRequest(name=inst.id))  # again: no harm
    m = finished(admin, inst.id, timeout=30)
    assert m.state == pb.LIVE_MIGRATION_STATE_FAILED and m.fault == "cancelled by admin", m
    after = running(admin, inst.id)
    assert after.node_id == source and after.fault == "live migration cancelled by admin"
    assert claims(cloud)[target] == before.get(target, (0, 0))
    events = {
        e.action: e
        for e in admin.events.ListEvents(
            event_pb2.ListEventsRequest(page_size=100, resource_type="instance", resource_id=inst.id)
        ).events
    }
    assert events["live_migrate_cancel"].user_name == "admin"
    cancelled = events["live_migrate_cancelled"]
    assert cancelled.error_reason == "LIVE_MIGRATION_CANCELLED" and "cancelled by admin" in cancelled.message
    refused(grpc.StatusCode.FAILED_PRECONDITION, "NOT_MOVING", name=inst.id)  # over
    assert_claims_exact(cloud)
    delete_all(admin)


def test_a_cancel_while_the_source_is_down_ends_once_it_is_seen_down(cloud: FakeCloud) -> None:
    """The source's daemon dies mid-copy (slowed to 60 s) and the admin
    cancels: once the source is DOWN and the target does not run the guest,
    the migration fails at once (not at its deadline, minutes away), the
    target's claim goes; the source, back, runs the guest again."""
    admin = cloud.admin
    inst, source, target, before = copy_under_way(cloud, "cancel-down", 60)
    src_proc = next(p for p in cloud.procs if p.state_dir == cloud.node_states[source])
    src_proc.stop(9)
    cloud.procs.remove(src_proc)
    began = time.monotonic()
    compute(admin).CancelMigration(pb.CancelMigrationRequest(name=inst.id))
    m = finished(admin, inst.id, timeout=30)
    took = time.monotonic() - began
    assert m.state == pb.LIVE_MIGRATION_STATE_FAILED, m
    assert m.fault == f"cancelled by admin (source node {source} down)", m
    assert took < 30, took  # the deadline was 420 s away
    print(f"\ncancel with the source down: failed {took:.1f} s after the cancel")
    after = get(admin, inst.id)
    assert after.node_id == source and after.state == pb.INSTANCE_STATE_ACTIVE, after
    assert after.fault.startswith("live migration cancelled by admin"), after.fault
    assert claims(cloud)[target] == before.get(target, (0, 0))
    cloud.procs.append(NodedProc(src_proc.state_dir, src_proc.args).start())
    back = running(admin, inst.id, timeout=60)
    assert back.node_id == source
    assert_claims_exact(cloud)
    delete_all(admin)


def test_target_dying_midway_leaves_the_guest_on_the_source(cloud: FakeCloud) -> None:
    """Last: it stops a node. The source's simulated copy is slowed to 60 s;
    the target's daemon is killed midway."""
    admin = cloud.admin
    inst, source, target, before = copy_under_way(cloud, "stays", 60)
    tgt_proc = next(p for p in cloud.procs if p.state_dir == cloud.node_states[target])
    tgt_proc.stop(9)
    cloud.procs.remove(tgt_proc)
    m = finished(admin, inst.id, timeout=60)
    assert m.state == pb.LIVE_MIGRATION_STATE_FAILED and "down" in m.fault, m
    after = running(admin, inst.id)
    assert after.node_id == source and "live migration failed" in after.fault
    assert claims(cloud)[target] == before.get(target, (0, 0))
    err = rpc_error(nodes(admin).DrainNode, npb.DrainNodeRequest(id=target))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(err) == "NODE_DOWN"
