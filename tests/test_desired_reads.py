"""The cheap reads a node's desired state is built from (every create
rebuilds its node's state): the node's head as a plain tuple, a node's
volumes and its instances' in one query, and the plain-SQL probes that let
the moves, live-migrations and networks parts skip a node with nothing of
theirs. Each is checked against the reads it replaces, on a database holding
one of each case (a shared volume attached across nodes, a boot volume, a
deleting local volume, snapshots, a move, an unfinished and a finished live
migration, a port), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from controller.db import live_migrations, moves, networks, nodes
from controller.db import volumes as volume_store
from controller.db.database import db, open_database
from controller.db.migrations import migrate
from controller.db.models import (
    Instance,
    InstanceMove,
    LiveMigration,
    Network,
    Node,
    Port,
    Project,
    Volume,
    VolumeSnapshot,
)
from controller.domain.networks.snat import NOT_RUNNING
from controller.domain.volumes import states as vs
from controller.domain.volumes.projection import VolumeProjection
from controller.domain.volumes.types import is_shared
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import node_agent_pb2 as npb

NODES = ("n1", "n2", "n3", "n4")
T = 1.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[peewee.Database]:
    url = ""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database(f"kumo_dreads_{tmp_path.name[-12:]}")
    database = open_database(url, tmp_path / "reads.db")
    migrate()
    try:
        _fill()
        yield database
    finally:
        database.close()
        db.bind_thread(None)


def _instance(iid: str, node: str, state: int = cpb.INSTANCE_STATE_ACTIVE) -> None:
    Instance.create(
        id=iid, project="p1", user_id="u", name=iid, image_id="img", image_sha256="sha", image_format=1,
        image_size_bytes=1, flavor_id="f", node=node, state=state, vcpus=1, ram_mb=64, disk_gb=1,
        create_time=T, update_time=T,
    )  # fmt: skip


def _volume(vid: str, node: str, **fields: object) -> None:
    Volume.create(
        id=vid, project="p1", name=vid, size_gb=1, node=node, create_time=T, update_time=T, type_id="t",
        **{"state": vs.AVAILABLE, **fields},
    )  # fmt: skip


def _fill() -> None:
    Project.create(id="p1", name="p1", create_time=T, update_time=T)
    for i, n in enumerate(NODES):
        Node.create(
            id=n, name=n, cert_serial=f"s{i}", cert_expire_time=T, create_time=T, update_time=T,
            fenced=n == "n4", cert_rotate_requested=n == "n2", enabled=n != "n3", desired_revision=7 + i,
        )  # fmt: skip
    _instance("i1", "n1")
    _instance("i2", "n1")
    _instance("i3", "n2")
    _instance("i4", "n3", cpb.INSTANCE_STATE_ERROR)
    _volume("v1", "n1")  # local, unattached
    # Shared, attached to an instance on n1 while its row names n2: the
    # instances' part must find it by its instance, not its node.
    _volume("v2", "n2", backend="rbd", instance_id="i1", device="vdc", state=vs.IN_USE)
    _volume("v3", "n1", instance_id="i2", device="vda", boot=True, state=vs.IN_USE)
    _volume("v4", "n2", state=vs.DELETING)  # local and deleting: goes by its absence
    _volume("v5", "n3", backend="rbd", state=vs.DELETING)  # shared and deleting: sent with delete
    _volume("v6", "n1", instance_id="i1", device="vdd", state=vs.DETACHING)
    for sid, vol, node, state in (
        ("s1", "v1", "n1", vs.SNAP_AVAILABLE),
        ("s2", "v1", "n1", vs.SNAP_ERROR),
        ("s3", "v4", "n2", vs.SNAP_CREATING),
    ):
        VolumeSnapshot.create(
            id=sid, project="p1", name=sid, volume=vol, node_id=node, size_gb=1, state=state,
            create_time=T, update_time=T,
        )  # fmt: skip
    InstanceMove.create(
        id="mv1", instance_id="i3", kind="migrate", phase=1, source_node_id="n2", target_node_id="n3",
        old_flavor_id="f", old_vcpus=1, old_ram_mb=64, old_disk_gb=1, new_flavor_id="f", new_vcpus=1,
        new_ram_mb=64, new_disk_gb=1, was_running=True, copy_disk=False, extra_node_id="",
        create_time=T, update_time=T,
    )  # fmt: skip
    for mid, iid, src, dst, state in (
        ("m1", "i2", "n1", "n2", live_migrations.RUNNING),
        ("m2", "i4", "n3", "n4", live_migrations.COMPLETED),
    ):
        LiveMigration.create(
            id=mid, instance_id=iid, project_id="p1", source_node_id=src, target_node_id=dst, state=state,
            create_time=T, update_time=T,
        )  # fmt: skip
    Network.create(id="net1", project="p1", name="net1", mtu=1450, vni=5, create_time=T, update_time=T)
    Port.create(
        id="port1", project="p1", network="net1", mac_address="02:00:00:00:00:01", instance_id="i3",
        create_time=T, update_time=T,
    )  # fmt: skip


def _old_volumes(node_id: str, state: npb.NodeDesiredState) -> None:
    """The volumes part as it was read before (three queries), the reference."""
    snaps: dict[str, list[str]] = {}
    for s in volume_store.snapshots_on_node(node_id):
        if s.state in (vs.SNAP_CREATING, vs.SNAP_AVAILABLE):
            snaps.setdefault(s.volume_id, []).append(s.id)
    for v in volume_store.volumes_on_node(node_id):
        gone = v.state == vs.DELETING
        if gone and not is_shared(v.backend):
            continue
        state.volumes.append(
            npb.DesiredVolume(
                id=v.id, backend=v.backend, delete=gone, size_gb=v.size_gb, image_sha256=v.image_sha256,
                image_format=v.image_format, image_size_bytes=v.image_size_bytes,
                source_snapshot_id=v.source_snapshot_id, snapshot_ids=snaps.get(v.id, []),
            )
        )  # fmt: skip
    for v in volume_store.volumes_of_instances([i.id for i in state.instances]):
        inst = next(i for i in state.instances if i.id == v.instance_id)
        if v.boot:
            inst.boot_volume_id = v.id
            inst.image_sha256 = ""
        elif v.state in vs.ATTACHED_STATES and v.state != vs.DETACHING:
            inst.volume_ids.append(v.id)


def _with_instances(node_id: str) -> npb.NodeDesiredState:
    rows = Instance.select().where(Instance.node == node_id).order_by(Instance.id)
    return npb.NodeDesiredState(instances=[npb.DesiredInstance(id=r.id, image_sha256="sha") for r in rows])


def test_the_node_head_holds_what_the_whole_row_does(database: peewee.Database) -> None:
    for n in NODES:
        head, row = nodes.node_head(n), nodes.get_node(n)
        assert head is not None and row is not None
        assert head == (n, row.enabled, row.fenced, row.cert_rotate_requested, row.desired_revision)
    assert [h.fenced for h in map(nodes.node_head, NODES)] == [False, False, False, True]
    assert nodes.node_head("gone") is None


def test_the_volumes_part_from_one_query_is_the_three_queries_part(database: peewee.Database) -> None:
    projection = VolumeProjection()
    seen_boot = seen_attached = seen_snaps = False
    for n in NODES:
        new, old = _with_instances(n), _with_instances(n)
        with db.atomic():
            projection.contribute(nodes.NodeHead(n, True, False, False, 1), new)
            _old_volumes(n, old)
        assert new == old, n
        seen_boot |= any(i.boot_volume_id for i in new.instances)
        seen_attached |= any(i.volume_ids for i in new.instances)
        seen_snaps |= any(v.snapshot_ids for v in new.volumes)
    assert seen_boot and seen_attached and seen_snaps  # the fixture exercised each case
    i1 = _with_instances("n1")
    VolumeProjection().contribute(nodes.NodeHead("n1", True, False, False, 1), i1)
    assert list(i1.instances[0].volume_ids) == ["v2"]  # found by its instance, not its node


def test_the_probes_answer_as_the_reads_they_guard(database: peewee.Database) -> None:
    for n in (*NODES, "gone"):
        assert moves.any_move_touching(n) == bool(moves.moves_touching(n)), n
        assert live_migrations.any_unfinished_on_node(n) == bool(live_migrations.unfinished_on_node(n)), n
        # may_have_ports may say yes when there are none (an incoming guest
        # without ports); it never says no when there are some.
        assert networks.may_have_ports(n) or not networks.node_ports(n, NOT_RUNNING), n
    assert [moves.any_move_touching(n) for n in NODES] == [False, True, True, False]
    assert [live_migrations.any_unfinished_on_node(n) for n in NODES] == [True, True, False, False]
    assert [networks.may_have_ports(n) for n in NODES] == [False, True, False, False]
    for n in (*NODES, "gone"):
        for ids in ([], ["i1"], ["i1", "i2", "i3", "i4"], ["none"]):
            assert volume_store.any_volume_for_node(n, ids) == bool(volume_store.volumes_for_node(n, ids))
    assert not volume_store.any_volume_for_node("n4", [])
    assert volume_store.any_volume_for_node("n4", ["i1"])  # v2 and v6, by their instance
    assert networks.node_ports("n2", NOT_RUNNING)
