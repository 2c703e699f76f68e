"""Evacuation against a boot-from-volume create, on a real PostgreSQL server
(row locks, not SQLite's single writer): both must take their locks in one
order (project, volume, node usage, node), or the two deadlock and
PostgreSQL aborts one (ABORTED to the caller).

The interleaving that deadlocked is forced with two plain connections that
hold row locks (the tenant's project row, the target node's usage row) and
let go of them one at a time, waiting on pg_stat_activity, not on time. Two
fake nodes (the fake driver: no guest matters here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, node_pb2, volume_pb2_grpc
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud, make_flavor
from tests.harness import error_reason, two_tenants
from tests.waits import wait_until

pytestmark = pytest.mark.postgres

GRACE = 2.0


@pytest.fixture(scope="module")
def cloud(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_evacuation")
    base: Path = tmp_path_factory.mktemp("pgevac")
    env = {"KUMO_NODE_GRACE_SECONDS": str(GRACE), "KUMO_NODE_HEARTBEAT_SECONDS": "0.5"}
    shared = ["--shared-fs-dir", str(base / "shared-fs")]
    with fake_cloud(base, 2, "pgev", env, extra_args=["--database-url", url], node_args=shared) as c:
        yield {
            "c": c,
            "url": url,
            "image": c.public_image("tiny"),
            "flavor": make_flavor(c.admin, "e.1", 1, 256, 1),
        }


def lock_waiters(db: Any, datname: str) -> list[str]:
    """The queries of this database's backends waiting on a lock."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (datname,)
        )
        return [q for (q,) in cur.fetchall()]


def test_an_evacuation_and_a_boot_from_volume_create_do_not_deadlock(cloud: dict) -> None:
    import psycopg2

    c, url = cloud["c"], cloud["url"]
    admin = c.admin
    t = two_tenants(c.ctl, admin, "pgev")
    alice = t["alice"]
    vol = alice.stub(volume_pb2_grpc.VolumeServiceStub)
    compute = alice.stub(compute_pb2_grpc.ComputeServiceStub)
    admin.stub(volume_pb2_grpc.VolumeServiceStub).CreateVolumeType(
        vpb.CreateVolumeTypeRequest(volume_type=vpb.VolumeType(name="pgev-shared", backend="shared-fs"))
    )
    v = vol.CreateVolume(
        vpb.CreateVolumeRequest(volume=vpb.Volume(name="v", size_gb=1, volume_type_id="pgev-shared"))
    )
    wait_until(
        lambda: vol.GetVolume(vpb.GetVolumeRequest(id=v.id)).state == vpb.VOLUME_STATE_AVAILABLE,
        what="the volume AVAILABLE",
        base=30,
    )
    source, target = sorted(c.node_states)
    admin.nodes.DisableNode(node_pb2.DisableNodeRequest(id=target, reason="test: place on the source"))
    i = compute.CreateInstance(
        cpb.CreateInstanceRequest(name="lost", image=cloud["image"].id, flavor=cloud["flavor"].id)
    )
    wait_until(
        lambda: compute.GetInstance(cpb.GetInstanceRequest(id=i.id)).state == cpb.INSTANCE_STATE_ACTIVE,
        what="the instance ACTIVE",
        base=30,
    )
    assert i.node_id == source
    admin.nodes.EnableNode(node_pb2.EnableNodeRequest(id=target))
    c.procs[int(c.node_states[source].name.removeprefix("node"))].stop()  # its host is lost
    wait_until(
        lambda: admin.nodes.GetNode(node_pb2.GetNodeRequest(id=source)).state == node_pb2.NODE_STATE_DOWN,
        what="the source DOWN",
        base=GRACE * 5,
    )
    admin.nodes.FenceNode(node_pb2.FenceNodeRequest(id=source))

    datname = url.rsplit("/", 1)[1]
    watch, holds_project, holds_usage = (psycopg2.connect(url) for _ in range(3))
    watch.autocommit = True
    got: dict[str, Any] = {}

    def call(key: str, fn: Any, req: Any) -> None:
        try:
            got[key] = fn(req)
        except grpc.RpcError as err:
            got[key] = err

    try:
        with watch.cursor() as cur:  # the target's usage row, as its first claim makes it
            cur.execute(
                "INSERT INTO node_usage (node_id, vcpus_used, ram_mb_used, disk_gb_used, instances) "
                "VALUES (%s, 0, 0, 0, 0) ON CONFLICT DO NOTHING",
                (target,),
            )
        holds_project.cursor().execute('SELECT id FROM "project" WHERE id = %s FOR UPDATE', (t["a"].id,))
        holds_usage.cursor().execute(
            "SELECT node_id FROM node_usage WHERE node_id = %s FOR UPDATE", (target,)
        )
        # 1. The create read the volume AVAILABLE and waits for its project's lock.
        create = threading.Thread(
            target=call,
            args=(
                "create",
                compute.CreateInstance,
                cpb.CreateInstanceRequest(name="from-v", flavor=cloud["flavor"].id, boot_volume=v.id),
            ),
        )
        create.start()
        wait_until(lambda: len(lock_waiters(watch, datname)) == 1, what="the create waiting", base=30)
        # 2. Meanwhile the volume is attached to the lost instance, and its evacuation begins.
        vol.AttachVolume(vpb.AttachVolumeRequest(id=v.id, instance_id=i.id))
        evacuate = threading.Thread(
            target=call,
            args=(
                "evacuate",
                admin.nodes.EvacuateNode,
                node_pb2.EvacuateNodeRequest(id=source, target_node_id=target, rebuild_local_disks=True),
            ),
        )
        evacuate.start()
        wait_until(
            lambda: len(lock_waiters(watch, datname)) == 2,
            what="the evacuation waiting",
            base=30,
            explain=lambda: f"{got} {lock_waiters(watch, datname)}",
        )
        # 3. The create goes on, up to a lock the evacuation holds or wants.
        holds_project.commit()
        wait_until(
            lambda: len(w := lock_waiters(watch, datname)) == 2 and not any('"project"' in q for q in w),
            what="the create past its project lock, waiting again",
            base=30,
        )
        # 4. The target's usage row is free: one order, no deadlock.
        holds_usage.commit()
        create.join(60)
        evacuate.join(60)
    finally:
        for conn in (holds_project, holds_usage, watch):
            conn.close()

    evacuated = got["evacuate"]
    assert not isinstance(evacuated, grpc.RpcError), (evacuated.code(), evacuated.details())
    [e] = evacuated.evacuations
    assert (e.instance_id, e.outcome, e.target_node_id) == (
        i.id,
        node_pb2.EVACUATION_OUTCOME_REBUILT,
        target,
    ), e.message
    refused = got["create"]
    assert isinstance(refused, grpc.RpcError), "the volume was no longer available to boot from"
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION, (refused.code(), refused.details())
    assert error_reason(refused) == "VOLUME_WRONG_STATE"
    moved = vol.GetVolume(vpb.GetVolumeRequest(id=v.id))
    assert (moved.instance_id, moved.node_id) == (i.id, target)
