"""Cold migration and resize (confirm, revert) against real kumo-noded
processes on the fake driver: the control plane's side for real (claims,
quotas, the move's phases driven by what nodes report, events), the guests
simulated. Real guests and disk content: tests/test_moves_e2e.py."""

from __future__ import annotations

import collections
import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc, node_pb2
from kumo.v1 import event_pb2 as epb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud, make_flavor
from tests.harness import Client, error_reason, race, rpc_error, run_cli, two_tenants
from tests.nodeutil import wait_for
from tests.test_live_migration_fake import drain_over
from tests.test_quotas import set_quota

NODES = 2  # each: 2 vCPUs (x4 ratio = 8), 4096 MiB (x1), 50 GiB
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


@contextlib.contextmanager
def start_cloud(base: Path, db_url: str = "") -> Iterator[dict]:
    """Two fake nodes, the flavors the tests use, two tenants; on SQLite, or
    on the PostgreSQL database `db_url`."""
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "0.5",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.2",
        "KUMO_QUOTA_INSTANCES": "1000",
        "KUMO_QUOTA_VCPUS": "1000",
        "KUMO_QUOTA_RAM_MB": "10000000",
    }
    extra = ["--database-url", db_url] if db_url else []
    shared = ["--shared-fs-dir", str(base / "shared-fs")]  # both nodes mount it
    with fake_cloud(base, NODES, "mv", env, extra_args=extra, node_args=shared) as c:
        image = c.public_image("tiny")
        for name, vcpus, ram, disk in (
            ("m.1g", 1, 1024, 1),
            ("m.2g", 1, 2048, 1),
            ("m.3g", 2, 3072, 2),
            ("m.big", 2, 8192, 2),
            ("m.disk0", 1, 1024, 0),
            ("m.2g-disk2", 1, 2048, 2),
        ):
            make_flavor(c.admin, name, vcpus, ram, disk)
        tenants = two_tenants(c.ctl, c.admin, "mv")
        yield {"c": c, "admin": c.admin, "image": image, "db_url": db_url, **tenants}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with start_cloud(tmp_path_factory.mktemp("moves")) as c:
        yield c


def create(client: Client, cloud: dict, name: str, flavor: str = "m.1g") -> pb.Instance:
    inst = compute(client).CreateInstance(
        pb.CreateInstanceRequest(name=name, image=cloud["image"].id, flavor=flavor)
    )
    return wait_state(client, inst.id, pb.INSTANCE_STATE_ACTIVE)


def get(client: Client, instance_id: str) -> pb.Instance:
    return compute(client).GetInstance(pb.GetInstanceRequest(id=instance_id))


def wait_state(client: Client, instance_id: str, state: int, timeout: float = 30) -> pb.Instance:
    return wait_for(
        lambda: (i := get(client, instance_id)).state == state and not i.task and i,
        timeout=timeout,
        what=f"instance in {pb.InstanceState.Name(state)}",
    )


def claims(cloud: dict) -> dict[str, tuple[int, int, int, int]]:
    """node id -> (vcpus, ram, disk, instances) claimed, from the controller's database."""
    query = "SELECT node_id, vcpus_used, ram_mb_used, disk_gb_used, instances FROM node_usage"
    if cloud["db_url"]:
        import psycopg2

        db = psycopg2.connect(cloud["db_url"])
    else:
        db = sqlite3.connect(f"file:{cloud['c'].ctl.data_dir / 'kumo.db'}?mode=ro", uri=True)
    try:
        cur = db.cursor()
        cur.execute(query)
        rows = cur.fetchall()
    finally:
        db.close()
    return {r[0]: tuple(int(x) for x in r[1:]) for r in rows}


def delete_all(client: Client) -> None:
    c = compute(client)
    for inst in c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances:
        c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))

    def empty() -> bool:
        return not c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances

    wait_for(empty, timeout=30, what="every instance deleted")


def actions(client: Client, instance_id: str) -> list[str]:
    events = client.events.ListEvents(
        epb.ListEventsRequest(resource_type="instance", resource_id=instance_id, page_size=200)
    ).events
    return [e.action for e in events]


def test_cold_migration_moves_claims_and_keeps_power(cloud: dict) -> None:
    admin = cloud["admin"]
    alice = cloud["alice"]
    inst = create(alice, cloud, "mig-a")
    before = claims(cloud)
    moved = compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id))
    assert moved.state == pb.INSTANCE_STATE_MIGRATING
    done = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    assert done.node_id != inst.node_id
    after = claims(cloud)
    assert after[inst.node_id][1] == before[inst.node_id][1] - 1024  # the source's claim freed
    assert after[done.node_id][1] == before.get(done.node_id, (0, 0, 0, 0))[1] + 1024
    assert done.power_state == pb.POWER_STATE_RUNNING
    assert {"migrate", "migrate_started", "moved", "migrated"} <= set(actions(admin, inst.id))

    # A stopped server moves stopped, to the node the admin names (by name).
    compute(alice).StopInstance(pb.StopInstanceRequest(id=inst.id))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_STOPPED)
    source = get(admin, inst.id).node_id
    others = [n for n in cloud["c"].node_states if n != source]
    name = admin.nodes.GetNode(node_pb2.GetNodeRequest(id=others[0])).name
    compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, node=name))
    back = wait_state(alice, inst.id, pb.INSTANCE_STATE_STOPPED)
    assert back.node_id == others[0]
    assert back.power_state in (pb.POWER_STATE_SHUTDOWN, pb.POWER_STATE_STOPPED)
    delete_all(admin)
    assert all(c == (0, 0, 0, 0) for c in claims(cloud).values()), claims(cloud)


def test_cold_moves_keep_server_groups_as_creates_do(cloud: dict) -> None:
    """A cold migration checks the target against the instance's server
    group as a create does (the filters named on a refusal), leaving the
    instance itself out of the group's nodes."""
    admin, alice = cloud["admin"], cloud["alice"]
    c = compute(admin)

    def group(name: str, policy: int) -> pb.ServerGroup:
        return compute(alice).CreateServerGroup(
            pb.CreateServerGroupRequest(server_group=pb.ServerGroup(name=name, policy=policy))
        )

    def member(name: str, g: pb.ServerGroup) -> pb.Instance:
        inst = compute(alice).CreateInstance(
            pb.CreateInstanceRequest(name=name, image=cloud["image"].id, flavor="m.1g", server_group_id=g.id)
        )
        return wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)

    def no_room(inst: pb.Instance, filter_name: str) -> None:
        before = claims(cloud)
        err = rpc_error(c.MigrateInstance, pb.MigrateInstanceRequest(name=inst.id))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
        assert error_reason(err) == "NO_VALID_HOST" and filter_name in err.details(), err.details()
        assert get(admin, inst.id).state == pb.INSTANCE_STATE_ACTIVE and claims(cloud) == before

    spread = group("spread", pb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
    x, y = member("spread-x", spread), member("spread-y", spread)
    assert x.node_id != y.node_id  # two nodes: the only other one holds the other member
    no_room(x, "AntiAffinityFilter rejected 1")
    together = group("together", pb.SERVER_GROUP_POLICY_AFFINITY)
    a = member("together-a", together)
    c.MigrateInstance(pb.MigrateInstanceRequest(name=a.id))  # alone in its group: it may go
    a = wait_state(alice, a.id, pb.INSTANCE_STATE_ACTIVE)
    b = member("together-b", together)
    assert b.node_id == a.node_id
    no_room(a, "AffinityFilter rejected 1")
    delete_all(admin)
    for g in (spread, together):
        compute(alice).DeleteServerGroup(pb.DeleteServerGroupRequest(id=g.id))


def test_migrate_refusals(cloud: dict) -> None:
    admin, alice, bob = cloud["admin"], cloud["alice"], cloud["bob"]
    inst = create(alice, cloud, "mig-no")
    c = compute(admin)
    cases = [
        (pb.MigrateInstanceRequest(), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (pb.MigrateInstanceRequest(name="bad\x01"), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (pb.MigrateInstanceRequest(name=inst.id, node="x" * 300), grpc.StatusCode.INVALID_ARGUMENT, "node"),
        (pb.MigrateInstanceRequest(name=UNKNOWN), grpc.StatusCode.NOT_FOUND, "not found"),
        (
            pb.MigrateInstanceRequest(name=inst.id, node=inst.node_id),
            grpc.StatusCode.INVALID_ARGUMENT,
            "already runs there",
        ),
        (pb.MigrateInstanceRequest(name=inst.id, node=UNKNOWN), grpc.StatusCode.NOT_FOUND, "node"),
    ]
    for req, code, words in cases:
        err = rpc_error(c.MigrateInstance, req)
        assert err.code() == code, (req, err.details())
        assert words in err.details(), err.details()
    for who in (alice, bob, cloud["reader"]):  # admins only
        err = rpc_error(compute(who).MigrateInstance, pb.MigrateInstanceRequest(name=inst.id))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # No other node with room: the message names the filter, nothing changed.
    big = create(alice, cloud, "mig-big", "m.3g")
    other = next(n for n in cloud["c"].node_states if n != big.node_id)
    filler = create(alice, cloud, "mig-fill", "m.3g")
    if filler.node_id != other:  # put the filler on the other node
        compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=filler.id, node=other))
        wait_state(alice, filler.id, pb.INSTANCE_STATE_ACTIVE)
    before = claims(cloud)
    err = rpc_error(c.MigrateInstance, pb.MigrateInstanceRequest(name=big.id))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(err) == "NO_VALID_HOST" and "RamFilter" in err.details(), err.details()
    assert get(alice, big.id).state == pb.INSTANCE_STATE_ACTIVE and claims(cloud) == before
    # Wrong state: a server being migrated cannot be resized or migrated again.
    moving = c.MigrateInstance(pb.MigrateInstanceRequest(name=inst.id))
    assert moving.state == pb.INSTANCE_STATE_MIGRATING
    err = rpc_error(compute(alice).ResizeInstance, pb.ResizeInstanceRequest(name=inst.id, flavor="m.2g"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(err) == "INSTANCE_WRONG_STATE"
    err = rpc_error(c.MigrateInstance, pb.MigrateInstanceRequest(name=inst.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    delete_all(admin)


def test_resize_on_the_same_node_confirm_and_revert(cloud: dict) -> None:
    admin, alice = cloud["admin"], cloud["alice"]
    inst = create(alice, cloud, "rs-a")
    before = claims(cloud)[inst.node_id]
    resized = compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name="rs-a", flavor="m.2g-disk2"))
    assert resized.state == pb.INSTANCE_STATE_RESIZING
    v = wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    assert (v.node_id, v.ram_mb, v.disk_gb) == (inst.node_id, 2048, 2)
    assert claims(cloud)[inst.node_id][1:3] == (before[1] + 1024, before[2] + 1)
    # Confirm keeps it: the claim stays the new size, nothing else held.
    done = compute(alice).ConfirmResize(pb.ConfirmResizeRequest(name=inst.id))
    assert done.state == pb.INSTANCE_STATE_ACTIVE and done.ram_mb == 2048
    assert claims(cloud)[inst.node_id][1] == before[1] + 1024
    err = rpc_error(compute(alice).ConfirmResize, pb.ConfirmResizeRequest(name=inst.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION  # not in VERIFY_RESIZE any more
    # Revert goes back to the old flavor and frees the growth.
    compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.3g"))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    assert get(alice, inst.id).vcpus == 2
    reverting = compute(alice).RevertResize(pb.RevertResizeRequest(name=inst.id))
    assert reverting.state == pb.INSTANCE_STATE_RESIZING
    back = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    assert (back.vcpus, back.ram_mb, back.disk_gb, back.node_id) == (1, 2048, 2, inst.node_id)
    assert claims(cloud)[inst.node_id][1] == before[1] + 1024
    names = actions(alice, inst.id)
    wanted = {"resize_started", "resized", "resize_confirmed", "resize_reverting", "resize_reverted"}
    assert wanted <= set(names), names
    delete_all(admin)


def test_resize_elsewhere_when_the_node_is_full_and_revert_comes_back(cloud: dict) -> None:
    admin, alice = cloud["admin"], cloud["alice"]
    inst = create(alice, cloud, "rs-far", "m.2g")
    filler = create(alice, cloud, "rs-filler", "m.2g")
    if filler.node_id != inst.node_id:
        compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=filler.id, node=inst.node_id))
        wait_state(alice, filler.id, pb.INSTANCE_STATE_ACTIVE)
    home = inst.node_id
    compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.3g"))
    v = wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    assert v.node_id != home and v.ram_mb == 3072
    held = claims(cloud)
    assert held[home][1] == 4096 and held[v.node_id][1] == 3072  # both claims held until confirm/revert
    compute(alice).RevertResize(pb.RevertResizeRequest(name=inst.id))
    back = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    assert (back.node_id, back.ram_mb) == (home, 2048)
    assert claims(cloud)[v.node_id][1] == 0
    # Again, and delete while waiting for verification: every claim goes.
    compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.3g"))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    delete_all(admin)
    wait_for(lambda: all(c == (0, 0, 0, 0) for c in claims(cloud).values()), what="claims freed")


def test_resize_refusals(cloud: dict) -> None:
    admin, alice, bob, reader = cloud["admin"], cloud["alice"], cloud["bob"], cloud["reader"]
    inst = create(alice, cloud, "rs-no", "m.2g-disk2")
    c = compute(alice)
    cases = [
        (pb.ResizeInstanceRequest(flavor="m.1g"), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (pb.ResizeInstanceRequest(name=inst.id), grpc.StatusCode.INVALID_ARGUMENT, "flavor"),
        (pb.ResizeInstanceRequest(name=UNKNOWN, flavor="m.1g"), grpc.StatusCode.NOT_FOUND, "instance"),
        (pb.ResizeInstanceRequest(name=inst.id, flavor="nope"), grpc.StatusCode.NOT_FOUND, "flavor"),
        (
            pb.ResizeInstanceRequest(name=inst.id, flavor="m.1g"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "cannot shrink",
        ),
        (
            pb.ResizeInstanceRequest(name=inst.id, flavor="m.2g-disk2"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "already",
        ),
        (
            pb.ResizeInstanceRequest(name=inst.id, flavor="m.big"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RamFilter",
        ),
    ]
    for req, code, words in cases:
        err = rpc_error(c.ResizeInstance, req)
        assert err.code() == code, (req, err.details())
        assert words in err.details(), err.details()
    err = rpc_error(c.ResizeInstance, pb.ResizeInstanceRequest(name=inst.id, flavor="m.1g"))
    assert error_reason(err) == "FLAVOR_DISK_TOO_SMALL"
    # Another project's server is as good as missing; a reader may not.
    for verb, req in (
        ("ResizeInstance", pb.ResizeInstanceRequest(name=inst.id, flavor="m.3g")),
        ("ConfirmResize", pb.ConfirmResizeRequest(name=inst.id)),
        ("RevertResize", pb.RevertResizeRequest(name=inst.id)),
    ):
        err = rpc_error(getattr(compute(bob), verb), req)
        assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
        err = rpc_error(getattr(compute(reader), verb), req)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        missing = type(req)()
        missing.CopyFrom(req)
        missing.name = UNKNOWN
        err = rpc_error(getattr(c, verb), missing)
        assert err.code() == grpc.StatusCode.NOT_FOUND
    # Wrong state: confirm or revert a server not waiting for verification.
    for verb, req in (("ConfirmResize", pb.ConfirmResizeRequest), ("RevertResize", pb.RevertResizeRequest)):
        err = rpc_error(getattr(c, verb), req(name=inst.id))
        assert (
            err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(err) == "INSTANCE_WRONG_STATE"
        )
    # Quota: the growth is charged, and a refusal changes nothing.
    set_quota(admin, cloud["a"].id, vcpus=1)
    try:
        before = claims(cloud)
        err = rpc_error(c.ResizeInstance, pb.ResizeInstanceRequest(name=inst.id, flavor="m.3g"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in err.details(), err.details()
        assert claims(cloud) == before and get(alice, inst.id).state == pb.INSTANCE_STATE_ACTIVE
    finally:
        set_quota(admin, cloud["a"].id, vcpus=1000)
    quota = admin.identity.GetQuota(idpb.GetQuotaRequest(project_id=cloud["a"].id))
    assert quota.usage.vcpus == 1
    delete_all(admin)


def test_resizes_racing_creates_never_overcommit(cloud: dict) -> None:
    admin = cloud["admin"]
    alice = cloud["alice"]
    # Two 1 GiB servers per node; then 12 creates of 1 GiB race 4 resizes to 3 GiB
    # for the 4 GiB left: RAM is the bound (4096 MiB per node, ratio 1).
    servers = [create(alice, cloud, f"rr-{i}") for i in range(4)]
    per_node = collections.Counter(s.node_id for s in servers)
    assert sorted(per_node.values()) == [2, 2], per_node
    clients = [cloud["c"].ctl.login() for _ in range(4)]
    results: list[str] = []
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        calls = [("resize", servers[k].id)] + [("create", f"rr-new-{k}-{j}") for j in range(3)]
        for kind, ref in calls:
            try:
                if kind == "resize":
                    compute(client).ResizeInstance(pb.ResizeInstanceRequest(name=ref, flavor="m.3g"))
                else:
                    compute(client).CreateInstance(
                        pb.CreateInstanceRequest(name=ref, image=cloud["image"].id, flavor="m.1g")
                    )
                outcome = "ok"
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
                outcome = "full"
            with lock:
                results.append(f"{kind}:{outcome}")

    race(worker, enumerate(clients))
    for node_id, (vcpus, ram, _disk, _count) in claims(cloud).items():
        assert ram <= 4096 and vcpus <= 8, (node_id, ram, vcpus)
    counts = collections.Counter(results)
    # 4 GiB free in all: every success took its share of it, none more.
    assert counts["create:ok"] * 1024 + counts["resize:ok"] * 2048 <= 4096, counts
    assert counts["create:ok"] + counts["resize:ok"] >= 2, counts
    delete_all(admin)


def test_cli_migrate_and_resize(cloud: dict) -> None:
    c = cloud["c"]
    alice = cloud["alice"]
    inst = create(alice, cloud, "cli-mv")
    admin_env = {"KUMO_ENDPOINT": c.ctl.endpoint, "KUMO_CA_FILE": c.ctl.ca_file, "KUMO_TOKEN": c.admin.token}
    env = {**admin_env, "KUMO_TOKEN": alice.token}
    out = run_cli(["server", "migrate", inst.id, "--wait", "-o", "json"], admin_env)
    assert out.returncode == 0, out.stderr
    moved = json.loads(out.stdout)
    assert moved["state"] == "active" and moved["node_id"] != inst.node_id, moved
    out = run_cli(["server", "migrate", "cli-mv"], env)  # a member may not
    assert out.returncode != 0 and "admin" in out.stderr.lower() + out.stdout.lower(), out.stderr
    out = run_cli(["server", "resize", "cli-mv", "m.2g", "--wait", "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "verify_resize"
    out = run_cli(["server", "resize", "revert", "cli-mv", "--wait", "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    assert (json.loads(out.stdout)["state"], json.loads(out.stdout)["ram_mb"]) == ("active", 1024)
    run_cli(["server", "resize", "cli-mv", "m.2g", "--wait"], env)
    out = run_cli(["server", "resize", "confirm", "cli-mv", "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    assert (json.loads(out.stdout)["state"], json.loads(out.stdout)["ram_mb"]) == ("active", 2048)
    out = run_cli(["server", "resize", "confirm", "cli-mv"], env)
    assert out.returncode != 0 and "verify_resize" not in out.stderr and "cannot confirm" in out.stderr, (
        out.stderr
    )
    delete_all(c.admin)


def test_a_move_survives_its_source_node_restarting(cloud: dict) -> None:
    """The source is away when the migration starts: the move waits (its
    claims held), and goes on from the database once the node is back."""
    c, admin, alice = cloud["c"], cloud["admin"], cloud["alice"]
    inst = create(alice, cloud, "mv-restart")
    proc = next(p for p in c.procs if p.state_dir == c.node_states[inst.node_id])
    proc.stop()
    try:
        wait_for(
            lambda: not admin.nodes.GetNode(node_pb2.GetNodeRequest(id=inst.node_id)).connected, what="away"
        )
        moving = compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id))
        assert moving.state == pb.INSTANCE_STATE_MIGRATING
        held = claims(cloud)
        assert all(held[n][1] >= 1024 for n in c.node_states), held  # source and target both claimed
        assert get(admin, inst.id).state == pb.INSTANCE_STATE_MIGRATING  # nothing moves without the source
    finally:
        proc.start()
    done = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE, timeout=60)
    assert done.node_id != inst.node_id
    assert claims(cloud)[inst.node_id][1] == 0
    delete_all(admin)


def test_a_node_local_volume_keeps_its_server_from_moving(cloud: dict) -> None:
    admin, alice = cloud["admin"], cloud["alice"]
    vol = alice.volumes.CreateVolume(vpb.CreateVolumeRequest(volume=vpb.Volume(name="mv-boot", size_gb=1)))
    wait_for(
        lambda: alice.volumes.GetVolume(vpb.GetVolumeRequest(id=vol.id)).state == vpb.VOLUME_STATE_AVAILABLE,
        timeout=60,
        what="volume available",
    )
    inst = compute(alice).CreateInstance(
        pb.CreateInstanceRequest(name="mv-bfv", boot_volume=vol.id, flavor="m.disk0")
    )
    inst = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    err = rpc_error(compute(admin).MigrateInstance, pb.MigrateInstanceRequest(name=inst.id))
    assert (err.code(), error_reason(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSTANCE_HAS_LOCAL_VOLUMES",
    )
    assert "mv-boot" in err.details()
    # Its flavor still changes on its own node (no disk of its own: disk_gb stays 0).
    compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.2g"))
    v = wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    assert (v.node_id, v.ram_mb, v.disk_gb) == (inst.node_id, 2048, 0)
    compute(alice).ConfirmResize(pb.ConfirmResizeRequest(name=inst.id))
    delete_all(admin)

    def volume_deleted() -> bool:  # once the volume sync has freed it from its instance
        try:
            alice.volumes.DeleteVolume(vpb.DeleteVolumeRequest(id=vol.id))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
            return False
        return True

    wait_for(volume_deleted, what="boot volume deleted")


def test_shared_volumes_follow_a_migration(cloud: dict) -> None:
    """Booted from a shared-fs volume with another attached: nothing is
    copied, both volumes are worked on by the new node, still in use."""
    admin, alice = cloud["admin"], cloud["alice"]
    t = alice.volumes  # volume types are made by admins
    vtype = admin.volumes.CreateVolumeType(
        vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name="mv-nfs", backend="shared-fs"))
    )
    boot = t.CreateVolume(
        vpb.CreateVolumeRequest(volume=vpb.Volume(name="mv-sboot", size_gb=1, volume_type_id=vtype.id))
    )
    data = t.CreateVolume(
        vpb.CreateVolumeRequest(volume=vpb.Volume(name="mv-sdata", size_gb=1, volume_type_id=vtype.id))
    )
    for vol in (boot, data):
        wait_for(
            lambda v=vol: t.GetVolume(vpb.GetVolumeRequest(id=v.id)).state == vpb.VOLUME_STATE_AVAILABLE,
            timeout=60,
            what=f"volume {vol.name} available",
        )
    inst = compute(alice).CreateInstance(
        pb.CreateInstanceRequest(name="mv-shared", boot_volume=boot.id, flavor="m.disk0")
    )
    inst = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    t.AttachVolume(vpb.AttachVolumeRequest(id=data.id, instance_id=inst.id))
    wait_for(
        lambda: t.GetVolume(vpb.GetVolumeRequest(id=data.id)).state == vpb.VOLUME_STATE_IN_USE,
        what="attached",
    )
    compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id))
    moved = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    assert moved.node_id != inst.node_id
    for vol in (boot, data):
        got = t.GetVolume(vpb.GetVolumeRequest(id=vol.id))
        assert (got.node_id, got.state, got.instance_id) == (moved.node_id, vpb.VOLUME_STATE_IN_USE, inst.id)
    assert set(moved.volume_ids) >= {data.id} and moved.boot_volume_id == boot.id
    delete_all(admin)


def cancel_refused(client: Client, ref: str, code: grpc.StatusCode, reason: str = "") -> str:
    err = rpc_error(compute(client).CancelMigration, pb.CancelMigrationRequest(name=ref))
    assert err.code() == code, (err.code(), err.details())
    if reason:
        assert error_reason(err) == reason, err.details()
    return err.details() or ""


def ram_used(client: Client, project_id: str) -> int:
    return client.identity.GetQuota(idpb.GetQuotaRequest(project_id=project_id)).usage.ram_mb


def event(client: Client, instance_id: str, action: str) -> epb.Event:
    events = client.events.ListEvents(
        epb.ListEventsRequest(resource_type="instance", resource_id=instance_id, page_size=200)
    ).events
    return next(e for e in events if e.action == action)


@contextlib.contextmanager
def node_away(cloud: dict, node_id: str) -> Iterator[None]:
    """The node's daemon stopped (the move waits on it: its phase cannot
    advance), started again afterwards."""
    c = cloud["c"]
    proc = next(p for p in c.procs if p.state_dir == c.node_states[node_id])
    proc.stop()
    try:
        wait_for(
            lambda: not cloud["admin"].nodes.GetNode(node_pb2.GetNodeRequest(id=node_id)).connected,
            what="the node away",
        )
        yield
    finally:
        proc.start()


def test_cancel_a_cold_migration_still_on_its_source_even_while_the_source_is_away(cloud: dict) -> None:
    """The source is away, so the move is held before its switch (stopping):
    CancelMigration reverts it at once, without waiting for the node (the
    target's claim goes, the instance is ACTIVE or STOPPED as before, the fault
    and the event say who); the node, back, runs the guest where it was.
    Refusals: a member (even of the instance's project: migrations are
    admins'), a reader, another project's member (as missing)."""
    c, admin, alice = cloud["c"], cloud["admin"], cloud["alice"]
    inst = create(alice, cloud, "cx-run")
    off = create(alice, cloud, "cx-off")
    compute(alice).StopInstance(pb.StopInstanceRequest(id=off.id))
    wait_state(alice, off.id, pb.INSTANCE_STATE_STOPPED)
    if off.node_id != inst.node_id:
        compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=off.id, node=inst.node_id))
        off = wait_state(alice, off.id, pb.INSTANCE_STATE_STOPPED)
    source = inst.node_id
    target = next(n for n in c.node_states if n != source)
    before = claims(cloud)
    with node_away(cloud, source):
        for row in (inst, off):
            moving = compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=row.id, node=target))
            assert moving.state == pb.INSTANCE_STATE_MIGRATING
        assert claims(cloud)[target][1] == before.get(target, (0, 0, 0, 0))[1] + 2048
        cancel_refused(alice, inst.id, grpc.StatusCode.PERMISSION_DENIED)  # a member: admins' call
        cancel_refused(cloud["reader"], inst.id, grpc.StatusCode.PERMISSION_DENIED)
        cancel_refused(cloud["bob"], inst.id, grpc.StatusCode.NOT_FOUND)
        cancel_refused(admin, UNKNOWN, grpc.StatusCode.NOT_FOUND)
        assert get(admin, inst.id).state == pb.INSTANCE_STATE_MIGRATING  # the refusals changed nothing
        out = compute(admin).CancelMigration(pb.CancelMigrationRequest(name=inst.id))
        assert (out.state, out.node_id, out.fault) == (
            pb.INSTANCE_STATE_ACTIVE,
            source,
            "cold migration cancelled by admin",
        )
        stopped = compute(admin).CancelMigration(pb.CancelMigrationRequest(name=off.id))
        assert stopped.state == pb.INSTANCE_STATE_STOPPED and stopped.node_id == source
        assert claims(cloud)[target] == before.get(target, (0, 0, 0, 0))  # freed at once
        assert claims(cloud)[source] == before[source]
        cancel_refused(admin, inst.id, grpc.StatusCode.FAILED_PRECONDITION, "NOT_MOVING")
    cancelled = event(admin, inst.id, "migrate_cancelled")
    assert cancelled.user_name == "admin" and cancelled.error_reason == "MOVE_CANCELLED", cancelled
    assert f"to node {target} cancelled by admin" in cancelled.message, cancelled.message
    back = wait_for(
        lambda: (i := get(alice, inst.id)).power_state == pb.POWER_STATE_RUNNING and i,
        timeout=60,
        what="the guest running on its source again",
    )
    assert back.node_id == source and back.state == pb.INSTANCE_STATE_ACTIVE
    assert get(alice, off.id).state == pb.INSTANCE_STATE_STOPPED
    # It moves later as any instance does.
    compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, node=target))
    moved = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE, timeout=60)
    assert moved.node_id == target and moved.fault == ""
    delete_all(admin)


def test_cancel_a_resize_before_its_switch_and_refused_after(cloud: dict) -> None:
    """A member cancels their resize while it is still stopping on its node
    (held there by the node being away): the old flavor, the growth's claim
    and quota freed. Past the switch (arriving on its target, or waiting in
    verify_resize) CancelMigration is refused with the reason and what to do."""
    c, admin, alice = cloud["c"], cloud["admin"], cloud["alice"]
    project = cloud["a"].id
    inst = create(alice, cloud, "cx-rs")
    home = inst.node_id
    before, ram = claims(cloud)[home], ram_used(admin, project)
    with node_away(cloud, home):
        resizing = compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.2g"))
        assert resizing.state == pb.INSTANCE_STATE_RESIZING
        assert claims(cloud)[home][1] == before[1] + 1024 and ram_used(admin, project) == ram + 1024
        cancel_refused(cloud["reader"], inst.id, grpc.StatusCode.PERMISSION_DENIED)
        cancel_refused(cloud["bob"], inst.id, grpc.StatusCode.NOT_FOUND)
        out = compute(alice).CancelMigration(pb.CancelMigrationRequest(name="cx-rs"))
        assert (out.state, out.ram_mb, out.flavor_id) == (pb.INSTANCE_STATE_ACTIVE, 1024, inst.flavor_id)
        assert out.fault.startswith("resize cancelled by ") and out.node_id == home
        assert claims(cloud)[home] == before and ram_used(admin, project) == ram
    assert event(alice, inst.id, "resize_cancelled").error_reason == "MOVE_CANCELLED"
    running = wait_for(
        lambda: (i := get(alice, inst.id)).power_state == pb.POWER_STATE_RUNNING and i,
        timeout=60,
        what="the guest running again",
    )
    assert running.ram_mb == 1024
    # Waiting in verify_resize: RevertResize is the way back.
    compute(alice).ResizeInstance(pb.ResizeInstanceRequest(name=inst.id, flavor="m.2g"))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_VERIFY_RESIZE)
    why = cancel_refused(alice, inst.id, grpc.StatusCode.FAILED_PRECONDITION, "MOVE_NOT_CANCELLABLE")
    assert "RevertResize" in why, why
    compute(alice).RevertResize(pb.RevertResizeRequest(name=inst.id))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE)
    # Arriving: switched to a target that is away (the guest is the target's now).
    target = next(n for n in c.node_states if n != home)
    with node_away(cloud, target):
        compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, node=target))
        wait_for(lambda: get(admin, inst.id).node_id == target, timeout=30, what="the switch to the target")
        why = cancel_refused(admin, inst.id, grpc.StatusCode.FAILED_PRECONDITION, "MOVE_NOT_CANCELLABLE")
        assert f"already on node {target}" in why, why
    done = wait_state(alice, inst.id, pb.INSTANCE_STATE_ACTIVE, timeout=60)
    assert done.node_id == target
    delete_all(admin)


def test_a_cancelled_cold_move_of_a_drain_is_left_where_it_is(cloud: dict) -> None:
    """A cold drain's move cancelled while stopping (its node away, not yet
    DOWN): the drain does not start it again; it ends INCOMPLETE with that
    guest on the node, the entry's fault naming who cancelled."""
    admin, alice = cloud["admin"], cloud["alice"]
    inst = create(alice, cloud, "cx-drain")
    compute(alice).StopInstance(pb.StopInstanceRequest(id=inst.id))
    wait_state(alice, inst.id, pb.INSTANCE_STATE_STOPPED)
    node = inst.node_id
    with node_away(cloud, node):
        admin.nodes.DrainNode(node_pb2.DrainNodeRequest(id=node, cold=True))
        assert get(admin, inst.id).state == pb.INSTANCE_STATE_MIGRATING  # the drain's cold move
        compute(admin).CancelMigration(pb.CancelMigrationRequest(name=inst.id))
        done = drain_over(admin, node, 30)
        entries = compute(admin).ListLiveMigrations(pb.ListLiveMigrationsRequest(instance_id=inst.id))
        assert done.drain.state == node_pb2.NODE_DRAIN_STATE_INCOMPLETE, done.drain
        assert done.drain.failed == 1 and done.drain.cold_started == 1, (done.drain, entries)
        after = get(admin, inst.id)
        assert (after.state, after.node_id) == (pb.INSTANCE_STATE_STOPPED, node)
        assert entries.live_migrations[-1].fault.startswith("cold migration cancelled by admin"), entries
    admin.nodes.UndrainNode(node_pb2.UndrainNodeRequest(id=node))
    delete_all(admin)
