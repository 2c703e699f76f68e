"""Evacuating a node while an instance moves from or to it, against real
kumo-noded processes on the fake driver (three nodes): what Nova does.
The move is ended as failed and the claim it held on its other node freed;
then the instance is evacuated from the node it is recorded on if that is
the lost one, and stays where it is otherwise.

- A live migration whose source is lost (its simulated copy slowed): the
  migration FAILED, the target's claim freed, the instance rebuilt elsewhere.
- A cold migration whose source is lost before it stopped the guest (the
  source's daemon paused, SIGSTOP, then killed): the move failed, its target
  claim freed, the instance rebuilt elsewhere.
- A cold migration whose target is lost while the source has not stopped the
  guest yet (paused): evacuating the target ends the move, and the instance
  stays on its source, ACTIVE once the source goes on (SIGCONT).
(A live migration whose target dies: test_live_migration_fake.py, the
migration pass fails it and the guest stays on its source.)"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import event_pb2
from kumo.v1 import node_pb2 as npb
from tests.cloudutil import FakeCloud, fake_cloud
from tests.harness import Client
from tests.nodeutil import NodedProc, wait_for
from tests.test_live_migration_fake import (
    assert_claims_exact,
    begin,
    compute,
    create,
    finished,
    get,
    migrations,
    node_ids,
    running,
    slow_source,
)

GRACE = 3.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCloud]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "0.5",
        "KUMO_NODE_GRACE_SECONDS": str(GRACE),
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
    }
    with fake_cloud(tmp_path_factory.mktemp("evacmoves"), 3, "em", env) as c:
        c.public_image("tiny")
        c.flavor("m1.mig", vcpus=1, ram_mb=1024)
        yield c


def proc(cloud: FakeCloud, node_id: str) -> NodedProc:
    return next(p for p in cloud.procs if p.state_dir == cloud.node_states[node_id])


def lose(cloud: FakeCloud, node_id: str) -> None:
    """The node's host dies (its daemon killed), goes DOWN and is fenced."""
    proc(cloud, node_id).stop(signal.SIGKILL)
    wait_for(
        lambda: cloud.admin.nodes.GetNode(npb.GetNodeRequest(id=node_id)).state == npb.NODE_STATE_DOWN,
        timeout=GRACE * 5,
        what="the node DOWN",
    )
    cloud.admin.nodes.FenceNode(npb.FenceNodeRequest(id=node_id))


def bring_back(cloud: FakeCloud, node_id: str) -> None:
    """The lost node's daemon again, re-admitted (for the next test)."""
    old = proc(cloud, node_id)
    cloud.procs.remove(old)
    args = list(old.args)
    if "--fake-migration-seconds" in args:  # slowed by slow_source: not any more
        at = args.index("--fake-migration-seconds")
        del args[at : at + 2]
    cloud.procs.append(NodedProc(old.state_dir, args).start())
    cloud.admin.nodes.UnfenceNode(npb.UnfenceNodeRequest(id=node_id))
    wait_for(
        lambda: cloud.admin.nodes.GetNode(npb.GetNodeRequest(id=node_id)).state == npb.NODE_STATE_READY,
        timeout=30,
        what="the node back",
    )


def evacuate(admin: Client, node_id: str) -> list[npb.Evacuation]:
    req = npb.EvacuateNodeRequest(id=node_id, rebuild_local_disks=True)
    return list(admin.nodes.EvacuateNode(req).evacuations)


def actions(admin: Client, instance_id: str) -> list[str]:
    req = event_pb2.ListEventsRequest(page_size=1000, resource_id=instance_id)
    return [e.action for e in admin.events.ListEvents(req).events]


def cold_migrate(admin: Client, instance_id: str, target: str) -> None:
    compute(admin).MigrateInstance(pb.MigrateInstanceRequest(name=instance_id, node=target))
    assert get(admin, instance_id).state == pb.INSTANCE_STATE_MIGRATING


def test_a_live_migration_whose_source_is_lost_fails_and_the_instance_is_evacuated(cloud: FakeCloud) -> None:
    admin = cloud.admin
    inst = running(admin, create(admin, "lm-src-lost").id)
    source = inst.node_id
    slow_source(cloud, source, 60)
    inst = running(admin, inst.id)
    target = next(n for n in node_ids(cloud) if n != source)
    begin(admin, inst.id, target)
    wait_for(
        lambda: migrations(admin, instance_id=inst.id)[-1].bytes_processed > 0, what="the copy under way"
    )
    lose(cloud, source)
    [e] = evacuate(admin, source)
    assert e.outcome == npb.EVACUATION_OUTCOME_REBUILT, e.message
    m = finished(admin, inst.id)
    assert m.state == pb.LIVE_MIGRATION_STATE_FAILED and "lost (fenced)" in m.fault, m
    moved = running(admin, inst.id)
    assert moved.node_id == e.target_node_id != source
    assert_claims_exact(cloud)  # the migration's target claim went with it
    done = actions(admin, inst.id)
    assert done.index("live_migrate_failed") < done.index("evacuate"), done
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    bring_back(cloud, source)


def test_a_cold_migration_whose_source_is_lost_fails_and_the_instance_is_evacuated(cloud: FakeCloud) -> None:
    admin = cloud.admin
    inst = running(admin, create(admin, "cold-src-lost").id)
    source = inst.node_id
    target = next(n for n in node_ids(cloud) if n != source)
    proc(cloud, source).proc.send_signal(signal.SIGSTOP)  # it never stops the guest
    cold_migrate(admin, inst.id, target)
    lose(cloud, source)
    [e] = evacuate(admin, source)
    assert e.outcome == npb.EVACUATION_OUTCOME_REBUILT, e.message
    moved = running(admin, inst.id)
    assert moved.node_id == e.target_node_id != source
    assert_claims_exact(cloud)  # no claim left on the move's target
    done = actions(admin, inst.id)
    assert done.index("move_failed") < done.index("evacuate"), done
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    bring_back(cloud, source)


def test_a_cold_migration_whose_target_is_lost_leaves_the_instance_on_its_source(cloud: FakeCloud) -> None:
    admin = cloud.admin
    inst = running(admin, create(admin, "cold-tgt-lost").id)
    source = inst.node_id
    target = next(n for n in node_ids(cloud) if n != source)
    paused = proc(cloud, source).proc
    paused.send_signal(signal.SIGSTOP)  # still READY for a while; it has not stopped the guest
    try:
        cold_migrate(admin, inst.id, target)
        lose(cloud, target)
        assert evacuate(admin, target) == [], "the instance is recorded on its source"
    finally:
        paused.send_signal(signal.SIGCONT)
    stayed = running(admin, inst.id)
    assert stayed.node_id == source and stayed.state == pb.INSTANCE_STATE_ACTIVE
    assert_claims_exact(cloud)  # the target's claim freed
    assert "move_failed" in actions(admin, inst.id)
    compute(admin).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    bring_back(cloud, target)
