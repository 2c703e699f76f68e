"""Volumes against a small fleet of real kumo-noded processes with the fake
driver (whose in-memory storage backend makes, grows and snapshots volumes
and whose guests report what they have attached): CRUD, pagination, field
masks, every RPC's bad input and wrong states, tenancy and roles, racing
attaches, quotas, boot from volume, and the CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_pb2, volume_pb2_grpc
from kumo.v1 import volume_pb2 as pb
from tests.cloudutil import fake_cloud
from tests.harness import Client, cli_login, error_reason, make_user, race, rpc_error, run_cli
from tests.nodeutil import nodes, wait_for
from tests.test_compute_fake import compute, wait_gone, wait_state

UNKNOWN = "00000000-0000-4000-8000-000000000000"
NODES = 2
NODE_DISK_GB = 100
QUOTA_VOLUMES = 8
QUOTA_GB = 120
QUOTA_SNAPSHOTS = 3


def volumes(client: Client) -> Any:
    return client.stub(volume_pb2_grpc.VolumeServiceStub)


@contextlib.contextmanager
def start_cloud(base: Path, extra_args: list[str] | None = None) -> Iterator[dict]:
    """A controller (SQLite, or what `extra_args` say) and NODES fake nodes."""
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "0.5",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.2",
        "KUMO_QUOTA_VOLUMES": str(QUOTA_VOLUMES),
        "KUMO_QUOTA_VOLUME_GB": str(QUOTA_GB),
        "KUMO_QUOTA_VOLUME_SNAPSHOTS": str(QUOTA_SNAPSHOTS),
    }
    with fake_cloud(base, NODES, "vfake", env, disk_gb=NODE_DISK_GB, extra_args=extra_args) as c:
        image = c.public_image("vtiny")
        big = c.public_image("vbig", min_disk_gb=5)
        c.flavor("v.tiny", vcpus=1, ram_mb=512)
        yield {"ctl": c.ctl, "admin": c.admin, "image": image, "big": big, "procs": c.procs}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with start_cloud(tmp_path_factory.mktemp("vol")) as c:
        yield c


def tenant(cloud: dict, tag: str) -> tuple[Client, Client, idpb.Project]:
    """A fresh project with a member and a reader (quotas are per project)."""
    admin, ctl = cloud["admin"], cloud["ctl"]
    name = f"{tag}-{uuid.uuid4().hex[:6]}"
    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=name)))
    make_user(admin, project.id, f"{name}-m", idpb.ROLE_MEMBER)
    make_user(admin, project.id, f"{name}-r", idpb.ROLE_READER)
    return ctl.login(f"{name}-m", "password-123"), ctl.login(f"{name}-r", "password-123"), project


def create(client: Client, name: str, size: int = 1, **kw: Any) -> pb.Volume:
    request_id = kw.pop("request_id", "")
    return volumes(client).CreateVolume(
        pb.CreateVolumeRequest(volume=pb.Volume(name=name, size_gb=size, **kw), request_id=request_id)
    )


def get(client: Client, volume_id: str) -> pb.Volume:
    return volumes(client).GetVolume(pb.GetVolumeRequest(id=volume_id))


def wait_volume(client: Client, volume_id: str, state: int, timeout: float = 30) -> pb.Volume:
    def reached() -> pb.Volume | None:
        v = get(client, volume_id)
        if v.state == pb.VOLUME_STATE_ERROR and state != pb.VOLUME_STATE_ERROR:
            raise AssertionError(f"volume {v.name} went to ERROR: {v.fault}")
        return v if v.state == state else None

    return wait_for(reached, timeout=timeout, what=f"volume in {pb.VolumeState.Name(state)}")


def gone(fn: Any, req: Any) -> bool:
    try:
        fn(req)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.NOT_FOUND
    return False


def wait_volume_gone(client: Client, volume_id: str) -> None:
    wait_for(lambda: gone(volumes(client).GetVolume, pb.GetVolumeRequest(id=volume_id)), what="volume gone")


def server(client: Client, name: str, **kw: Any) -> cpb.Instance:
    if "boot_volume" not in kw:
        kw.setdefault("image", "vtiny")
    inst = compute(client).CreateInstance(cpb.CreateInstanceRequest(name=name, flavor="v.tiny", **kw))
    return wait_state(client, inst.id, cpb.INSTANCE_STATE_ACTIVE)


def delete_server(client: Client, instance_id: str) -> None:
    compute(client).DeleteInstance(cpb.DeleteInstanceRequest(id=instance_id))
    wait_gone(client, instance_id)


def volume_on(cloud: dict, client: Client, node_id: str, name: str) -> pb.Volume:
    """Makes a volume on `node_id`: the other nodes are disabled meanwhile
    (disabled nodes take no new volumes)."""
    admin = cloud["admin"]
    others = [n.id for n in nodes(admin).ListNodes(node_pb2.ListNodesRequest()).nodes if n.id != node_id]
    for nid in others:
        nodes(admin).DisableNode(node_pb2.DisableNodeRequest(id=nid, reason="test placement"))
    try:
        vol = create(client, name)
    finally:
        for nid in others:
            nodes(admin).EnableNode(node_pb2.EnableNodeRequest(id=nid))
    assert vol.node_id == node_id
    return wait_volume(client, vol.id, pb.VOLUME_STATE_AVAILABLE)


def code_reason(fn: Any, *args: Any, **kw: Any) -> tuple[grpc.StatusCode, str]:
    err = rpc_error(fn, *args, **kw)
    return err.code(), error_reason(err)


def test_crud_pagination_and_field_masks(cloud: dict) -> None:
    member, reader, _ = tenant(cloud, "crud")
    v = volumes(member)
    made = [create(member, f"crud-{i}", size=1 + i, description=f"d{i}") for i in range(5)]
    for vol in made:
        assert vol.state == pb.VOLUME_STATE_CREATING and vol.node_id and vol.project_id
    done = [wait_volume(member, m.id, pb.VOLUME_STATE_AVAILABLE) for m in made]
    assert [d.size_gb for d in done] == [1, 2, 3, 4, 5]
    assert not any(d.bootable or d.instance_id or d.fault for d in done)
    # Both nodes got some (placement by free disk).
    assert len({d.node_id for d in done}) == NODES
    # Pagination, by name then id, with a stable token.
    seen, token = [], ""
    while True:
        page = v.ListVolumes(pb.ListVolumesRequest(page_size=2, page_token=token))
        assert len(page.volumes) <= 2
        seen += [x.name for x in page.volumes]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"crud-{i}" for i in range(5)]
    assert [x.name for x in v.ListVolumes(pb.ListVolumesRequest(name="crud-3")).volumes] == ["crud-3"]
    avail = v.ListVolumes(pb.ListVolumesRequest(state=pb.VOLUME_STATE_AVAILABLE)).volumes
    assert len(avail) == 5
    assert v.ListVolumes(pb.ListVolumesRequest(state=pb.VOLUME_STATE_IN_USE)).volumes == []
    # Readers may look.
    assert len(volumes(reader).ListVolumes(pb.ListVolumesRequest()).volumes) == 5
    # Update with a field mask: only what the mask names changes.
    upd = v.UpdateVolume(
        pb.UpdateVolumeRequest(
            volume=pb.Volume(id=made[0].id, name="renamed", description="new", size_gb=99),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        )
    )
    assert (upd.name, upd.description, upd.size_gb) == ("renamed", "d0", 1)
    upd = v.UpdateVolume(
        pb.UpdateVolumeRequest(
            volume=pb.Volume(id=made[0].id, description="new"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        )
    )
    assert (upd.name, upd.description) == ("renamed", "new")
    for paths in ([], ["size_gb"], ["state"]):
        req = pb.UpdateVolumeRequest(
            volume=pb.Volume(id=made[0].id, name="x"), update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        assert rpc_error(v.UpdateVolume, req).code() == grpc.StatusCode.INVALID_ARGUMENT
    dup = pb.UpdateVolumeRequest(
        volume=pb.Volume(id=made[0].id, name="crud-1"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
    )
    assert code_reason(v.UpdateVolume, dup) == (grpc.StatusCode.ALREADY_EXISTS, "VOLUME_EXISTS")
    err = rpc_error(create, member, "crud-2")
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.ALREADY_EXISTS, "VOLUME_EXISTS")
    # request_id: a retried create returns the first volume.
    first = create(member, "idem", request_id="rq-1")
    again = create(member, "idem", request_id="rq-1")
    assert first.id == again.id
    # Delete: DELETING, then gone; the claim is freed.
    for vol in [*made, first]:
        v.DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    assert get(member, made[1].id).state in (pb.VOLUME_STATE_DELETING,)
    for vol in [*made, first]:
        wait_volume_gone(member, vol.id)
    # Deleting a DELETING or gone volume: idempotent while it is there, NOT_FOUND after.
    assert (
        rpc_error(v.DeleteVolume, pb.DeleteVolumeRequest(id=made[0].id)).code() == grpc.StatusCode.NOT_FOUND
    )


def same_answers(call: Any, n: int = 4) -> list[str]:
    """`call` raced from n threads; the ids it answered (an error fails the test)."""
    made: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        out = call().id
        with lock:
            made.append(out)

    race(one, [()] * n)
    assert len(made) == n, "a racing create failed"
    return made


def test_request_id_on_volume_and_snapshot_creates(cloud: dict) -> None:
    """A request_id reused with another payload is refused; identical racing
    creates make one volume (one snapshot); a retried snapshot returns the first."""
    member, _, _ = tenant(cloud, "rid")
    v = volumes(member)
    first = create(member, "rid-1", request_id="rid-v")
    assert create(member, "rid-1", request_id="rid-v").id == first.id
    assert code_reason(create, member, "rid-1", size=2, request_id="rid-v") == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
    )
    made = same_answers(lambda: create(member, "rid-race", request_id="rid-race"))
    assert len(set(made)) == 1
    assert [x.name for x in v.ListVolumes(pb.ListVolumesRequest()).volumes].count("rid-race") == 1
    wait_volume(member, first.id, pb.VOLUME_STATE_AVAILABLE)

    def snap(name: str, rid: str) -> pb.VolumeSnapshot:
        return v.CreateVolumeSnapshot(
            pb.CreateVolumeSnapshotRequest(
                snapshot=pb.VolumeSnapshot(name=name, volume_id=first.id), request_id=rid
            )
        )

    s1 = snap("rid-s", "rid-s")
    assert snap("rid-s", "rid-s").id == s1.id
    assert code_reason(snap, "rid-s2", "rid-s") == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    raced = same_answers(lambda: snap("rid-s-race", "rid-s-race"))
    assert len(set(raced)) == 1
    names = [s.name for s in v.ListVolumeSnapshots(pb.ListVolumeSnapshotsRequest()).snapshots]
    assert sorted(names) == ["rid-s", "rid-s-race"]


def test_bad_input_and_missing_things(cloud: dict) -> None:
    member, reader, _ = tenant(cloud, "bad")
    v = volumes(member)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for size in (0, -1, -100, 16 * 1024 + 1):
        assert rpc_error(create, member, "b", size=size).code() == invalid, size
    assert rpc_error(create, member, "", size=1).code() == invalid
    assert rpc_error(create, member, "bad name!", size=1).code() == invalid
    assert rpc_error(create, member, "b", size=1, description="x" * 2000).code() == invalid
    assert rpc_error(create, member, "b", size=-1, source_image_id="vtiny").code() == invalid
    both = rpc_error(create, member, "b", size=1, source_image_id="vtiny", source_snapshot_id=UNKNOWN)
    assert both.code() == invalid
    assert (
        code_reason(create, member, "b", size=1, source_image_id="no-such-image")[0]
        == grpc.StatusCode.NOT_FOUND
    )
    assert code_reason(create, member, "b", size=1, source_snapshot_id=UNKNOWN) == (
        grpc.StatusCode.NOT_FOUND,
        "VOLUME_SNAPSHOT_NOT_FOUND",
    )
    # An image needs room: vbig asks for 5 GiB.
    small = rpc_error(create, member, "b", size=2, source_image_id="vbig")
    assert (small.code(), error_reason(small)) == (invalid, "VOLUME_TOO_SMALL")
    # Bigger than any node: no valid host, and nothing is left behind.
    full = rpc_error(create, member, "b", size=NODE_DISK_GB + 1)
    assert (full.code(), error_reason(full)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_VALID_HOST")
    assert v.ListVolumes(pb.ListVolumesRequest()).volumes == []
    # Malformed ids and missing volumes, for every RPC that takes one.
    for fn, req in [
        (v.GetVolume, pb.GetVolumeRequest(id="nope")),
        (v.DeleteVolume, pb.DeleteVolumeRequest(id="")),
        (v.ExtendVolume, pb.ExtendVolumeRequest(id="x", new_size_gb=2)),
        (v.AttachVolume, pb.AttachVolumeRequest(id="x", instance_id=UNKNOWN)),
        (v.AttachVolume, pb.AttachVolumeRequest(id=UNKNOWN, instance_id="x")),
        (v.DetachVolume, pb.DetachVolumeRequest(id="x")),
        (v.GetVolumeSnapshot, pb.GetVolumeSnapshotRequest(id="x")),
        (v.DeleteVolumeSnapshot, pb.DeleteVolumeSnapshotRequest(id="")),
        (v.ListVolumes, pb.ListVolumesRequest(page_size=-1)),
        (v.ListVolumes, pb.ListVolumesRequest(page_token="garbage")),
        (v.ListVolumes, pb.ListVolumesRequest(state=99)),
        (v.ListVolumeSnapshots, pb.ListVolumeSnapshotsRequest(volume_id="x")),
        (v.CreateVolumeSnapshot, pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="s"))),
        (
            v.UpdateVolume,
            pb.UpdateVolumeRequest(
                volume=pb.Volume(id="x"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
        ),
    ]:
        assert rpc_error(fn, req).code() == invalid, type(req).__name__
    for fn, req, reason in [
        (v.GetVolume, pb.GetVolumeRequest(id=UNKNOWN), "VOLUME_NOT_FOUND"),
        (v.DeleteVolume, pb.DeleteVolumeRequest(id=UNKNOWN), "VOLUME_NOT_FOUND"),
        (v.ExtendVolume, pb.ExtendVolumeRequest(id=UNKNOWN, new_size_gb=2), "VOLUME_NOT_FOUND"),
        (v.AttachVolume, pb.AttachVolumeRequest(id=UNKNOWN, instance_id=UNKNOWN), "VOLUME_NOT_FOUND"),
        (v.DetachVolume, pb.DetachVolumeRequest(id=UNKNOWN), "VOLUME_NOT_FOUND"),
        (
            v.UpdateVolume,
            pb.UpdateVolumeRequest(
                volume=pb.Volume(id=UNKNOWN, name="y"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
            "VOLUME_NOT_FOUND",
        ),
        (v.GetVolumeSnapshot, pb.GetVolumeSnapshotRequest(id=UNKNOWN), "VOLUME_SNAPSHOT_NOT_FOUND"),
        (v.DeleteVolumeSnapshot, pb.DeleteVolumeSnapshotRequest(id=UNKNOWN), "VOLUME_SNAPSHOT_NOT_FOUND"),
        (v.ListVolumeSnapshots, pb.ListVolumeSnapshotsRequest(volume_id=UNKNOWN), "VOLUME_NOT_FOUND"),
        (
            v.CreateVolumeSnapshot,
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="s", volume_id=UNKNOWN)),
            "VOLUME_NOT_FOUND",
        ),
        (
            v.CreateVolumeSnapshot,
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="s", volume_id="no-such")),
            "VOLUME_NOT_FOUND",
        ),
    ]:
        assert code_reason(fn, req) == (grpc.StatusCode.NOT_FOUND, reason), type(req).__name__
    # Extend: not larger is INVALID_ARGUMENT; attach to a missing server NOT_FOUND.
    vol = wait_volume(member, create(member, "ext", size=3).id, pb.VOLUME_STATE_AVAILABLE)
    for size in (3, 2, 0, -5):
        assert (
            rpc_error(v.ExtendVolume, pb.ExtendVolumeRequest(id=vol.id, new_size_gb=size)).code() == invalid
        )
    assert get(member, vol.id).state == pb.VOLUME_STATE_AVAILABLE
    missing = rpc_error(v.AttachVolume, pb.AttachVolumeRequest(id=vol.id, instance_id=UNKNOWN))
    assert (missing.code(), error_reason(missing)) == (grpc.StatusCode.NOT_FOUND, "INSTANCE_NOT_FOUND")
    assert get(member, vol.id).state == pb.VOLUME_STATE_AVAILABLE
    # Detach of a volume that is not attached.
    assert code_reason(v.DetachVolume, pb.DetachVolumeRequest(id=vol.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_WRONG_STATE",
    )
    # Extend for real: EXTENDING, then AVAILABLE at the new size.
    ext = v.ExtendVolume(pb.ExtendVolumeRequest(id=vol.id, new_size_gb=7))
    assert (ext.state, ext.size_gb) == (pb.VOLUME_STATE_EXTENDING, 7)
    assert code_reason(v.ExtendVolume, pb.ExtendVolumeRequest(id=vol.id, new_size_gb=9)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_WRONG_STATE",
    )
    assert wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE).size_gb == 7
    # Readers cannot change anything.
    r = volumes(reader)
    for fn, req in [
        (r.CreateVolume, pb.CreateVolumeRequest(volume=pb.Volume(name="r", size_gb=1))),
        (r.DeleteVolume, pb.DeleteVolumeRequest(id=vol.id)),
        (r.ExtendVolume, pb.ExtendVolumeRequest(id=vol.id, new_size_gb=9)),
        (r.AttachVolume, pb.AttachVolumeRequest(id=vol.id, instance_id=UNKNOWN)),
        (r.DetachVolume, pb.DetachVolumeRequest(id=vol.id)),
        (
            r.UpdateVolume,
            pb.UpdateVolumeRequest(
                volume=pb.Volume(id=vol.id, name="r"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
        ),
        (
            r.CreateVolumeSnapshot,
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="s", volume_id=vol.id)),
        ),
        (r.DeleteVolumeSnapshot, pb.DeleteVolumeSnapshotRequest(id=UNKNOWN)),
    ]:
        assert rpc_error(fn, req).code() == grpc.StatusCode.PERMISSION_DENIED, type(req).__name__
    assert r.GetVolume(pb.GetVolumeRequest(id=vol.id)).size_gb == 7
    v.DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    wait_volume_gone(member, vol.id)


def test_other_projects_volumes_and_servers_are_not_found(cloud: dict) -> None:
    alice, _, pa = tenant(cloud, "ta")
    bob, _, _ = tenant(cloud, "tb")
    mine = wait_volume(alice, create(alice, "mine").id, pb.VOLUME_STATE_AVAILABLE)
    theirs_server = server(bob, "bob-vm")
    b = volumes(bob)
    for fn, req in [
        (b.GetVolume, pb.GetVolumeRequest(id=mine.id)),
        (b.DeleteVolume, pb.DeleteVolumeRequest(id=mine.id)),
        (b.ExtendVolume, pb.ExtendVolumeRequest(id=mine.id, new_size_gb=5)),
        (b.AttachVolume, pb.AttachVolumeRequest(id=mine.id, instance_id=theirs_server.id)),
        (b.DetachVolume, pb.DetachVolumeRequest(id=mine.id)),
        (
            b.CreateVolumeSnapshot,
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="s", volume_id=mine.id)),
        ),
        (
            b.UpdateVolume,
            pb.UpdateVolumeRequest(
                volume=pb.Volume(id=mine.id, name="stolen"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
        ),
    ]:
        assert rpc_error(fn, req).code() == grpc.StatusCode.NOT_FOUND, type(req).__name__
    assert b.ListVolumes(pb.ListVolumesRequest()).volumes == []
    # Alice's own volume to Bob's server: the server is not found.
    err = rpc_error(
        volumes(alice).AttachVolume, pb.AttachVolumeRequest(id=mine.id, instance_id=theirs_server.id)
    )
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.NOT_FOUND, "INSTANCE_NOT_FOUND")
    # Nor can Bob boot from Alice's volume.
    boot = rpc_error(
        compute(bob).CreateInstance, cpb.CreateInstanceRequest(name="x", flavor="v.tiny", boot_volume=mine.id)
    )
    assert boot.code() == grpc.StatusCode.NOT_FOUND
    assert get(alice, mine.id).state == pb.VOLUME_STATE_AVAILABLE
    # A project that holds volumes cannot be deleted.
    err = rpc_error(cloud["admin"].identity.DeleteProject, idpb.DeleteProjectRequest(id=pa.id))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "PROJECT_IN_USE")
    volumes(alice).DeleteVolume(pb.DeleteVolumeRequest(id=mine.id))
    wait_volume_gone(alice, mine.id)
    delete_server(bob, theirs_server.id)


def test_attach_detach_and_wrong_states(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "att")
    v = volumes(member)
    vm = server(member, "att-vm", request_id="att-vm")
    vol = volume_on(cloud, member, vm.node_id, "att")
    # A volume on another node cannot be attached to it.
    other_node = next(
        n.id for n in nodes(cloud["admin"]).ListNodes(node_pb2.ListNodesRequest()).nodes if n.id != vm.node_id
    )
    other = volume_on(cloud, member, other_node, "att-x")
    assert code_reason(v.AttachVolume, pb.AttachVolumeRequest(id=other.id, instance_id=vm.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_ON_OTHER_NODE",
    )
    assert get(member, other.id).state == pb.VOLUME_STATE_AVAILABLE
    attaching = v.AttachVolume(pb.AttachVolumeRequest(id=vol.id, instance_id=vm.id))
    assert (attaching.state, attaching.instance_id, attaching.device) == (
        pb.VOLUME_STATE_ATTACHING,
        vm.id,
        "vdc",
    )
    in_use = wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
    assert in_use.instance_id == vm.id and not in_use.boot
    inst = compute(member).GetInstance(cpb.GetInstanceRequest(id=vm.id))
    assert list(inst.volume_ids) == [vol.id] and inst.boot_volume_id == ""
    # A retried create (its request_id) answers with the instance as it is now, volume and all.
    again = compute(member).CreateInstance(
        cpb.CreateInstanceRequest(name="att-vm", flavor="v.tiny", image="vtiny", request_id="att-vm")
    )
    assert again.id == vm.id and list(again.volume_ids) == [vol.id]
    # Wrong states: attach an IN_USE volume, delete it, snapshot is fine.
    assert code_reason(v.AttachVolume, pb.AttachVolumeRequest(id=vol.id, instance_id=vm.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_WRONG_STATE",
    )
    assert code_reason(v.DeleteVolume, pb.DeleteVolumeRequest(id=vol.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_IN_USE",
    )
    assert get(member, vol.id).state == pb.VOLUME_STATE_IN_USE
    detaching = v.DetachVolume(pb.DetachVolumeRequest(id=vol.id))
    assert detaching.state == pb.VOLUME_STATE_DETACHING
    free = wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    assert free.instance_id == "" and free.device == ""
    assert list(compute(member).GetInstance(cpb.GetInstanceRequest(id=vm.id)).volume_ids) == []
    # To a stopped server as well.
    compute(member).StopInstance(cpb.StopInstanceRequest(id=vm.id))
    wait_state(member, vm.id, cpb.INSTANCE_STATE_STOPPED)
    v.AttachVolume(pb.AttachVolumeRequest(id=vol.id, instance_id=vm.id))
    wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
    # Deleting the server frees its volumes.
    delete_server(member, vm.id)
    after = wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    assert after.instance_id == ""
    for x in [vol, other]:
        v.DeleteVolume(pb.DeleteVolumeRequest(id=x.id))
    for x in [vol, other]:
        wait_volume_gone(member, x.id)


def test_extend_while_attached(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "extatt")
    v = volumes(member)
    vm = server(member, "extatt-vm")
    vol = volume_on(cloud, member, vm.node_id, "extatt")
    try:
        v.AttachVolume(pb.AttachVolumeRequest(id=vol.id, instance_id=vm.id))
        wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
        ext = v.ExtendVolume(pb.ExtendVolumeRequest(id=vol.id, new_size_gb=3))
        assert (ext.state, ext.instance_id) == (pb.VOLUME_STATE_EXTENDING, vm.id)
        # Back to IN_USE (not AVAILABLE) at the new size, still attached.
        done = wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE, timeout=15)
        assert (done.size_gb, done.instance_id) == (3, vm.id)
    finally:
        delete_server(member, vm.id)
        wait_for(lambda: get(member, vol.id).instance_id == "", what="volume released")


def test_racing_attaches_exactly_one_wins(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "race")
    group = compute(member).CreateServerGroup(
        cpb.CreateServerGroupRequest(
            server_group=cpb.ServerGroup(name="together", policy=cpb.SERVER_GROUP_POLICY_AFFINITY)
        )
    )
    vms = [server(member, f"race-vm{i}", server_group_id=group.id) for i in range(3)]
    node_id = vms[0].node_id
    assert {vm.node_id for vm in vms} == {node_id}
    clients = [cloud["ctl"].login(member.who.user_name, "password-123") for _ in vms]
    made = []
    for round_ in range(3):
        vol = volume_on(cloud, member, node_id, f"race{round_}")
        made.append(vol)
        results: list[tuple[str, Any]] = []
        lock = threading.Lock()

        def attach(
            client: Client,
            vm: cpb.Instance,
            vol_id: str = vol.id,
            results: list[tuple[str, Any]] = results,
            lock: Any = lock,
        ) -> None:
            try:
                got = volumes(client).AttachVolume(pb.AttachVolumeRequest(id=vol_id, instance_id=vm.id))
                outcome: tuple[str, Any] = ("ok", got.instance_id)
            except grpc.RpcError as exc:
                outcome = (exc.code().name, error_reason(exc))
            with lock:
                results.append(outcome)

        race(attach, zip(clients, vms, strict=True))
        winners = [r for r in results if r[0] == "ok"]
        assert len(winners) == 1, results
        assert all(r == ("FAILED_PRECONDITION", "VOLUME_WRONG_STATE") for r in results if r[0] != "ok"), (
            results
        )
        final = wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
        assert final.instance_id == winners[0][1]
        attached_to = [
            vm.id
            for vm in vms
            if vol.id in compute(member).GetInstance(cpb.GetInstanceRequest(id=vm.id)).volume_ids
        ]
        assert attached_to == [winners[0][1]]
        volumes(member).DetachVolume(pb.DetachVolumeRequest(id=vol.id))
        wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    for vm in vms:
        delete_server(member, vm.id)
    for x in made:
        volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=x.id))


def test_boot_from_volume(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "boot")
    v, c = volumes(member), compute(member)
    # (The fake driver's guests do not read their disks: an empty volume will do.)
    bootvol = wait_volume(member, create(member, "root", size=1).id, pb.VOLUME_STATE_AVAILABLE)
    # Not both, and not neither.
    both = cpb.CreateInstanceRequest(name="bfv", flavor="v.tiny", image="vtiny", boot_volume=bootvol.id)
    assert rpc_error(c.CreateInstance, both).code() == grpc.StatusCode.INVALID_ARGUMENT
    neither = cpb.CreateInstanceRequest(name="bfv", flavor="v.tiny")
    assert rpc_error(c.CreateInstance, neither).code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = cpb.CreateInstanceRequest(name="bfv", flavor="v.tiny", boot_volume="no-such")
    assert code_reason(c.CreateInstance, missing) == (grpc.StatusCode.NOT_FOUND, "VOLUME_NOT_FOUND")
    made = c.CreateInstance(cpb.CreateInstanceRequest(name="bfv", flavor="v.tiny", boot_volume="root"))
    assert made.boot_volume_id == bootvol.id and list(made.volume_ids) == []  # the create's own answer
    vm = wait_state(member, made.id, cpb.INSTANCE_STATE_ACTIVE)
    assert vm.node_id == bootvol.node_id
    assert vm.boot_volume_id == bootvol.id and list(vm.volume_ids) == [] and vm.disk_gb == 0
    assert vm.image_id == ""
    used = get(member, bootvol.id)
    assert (used.state, used.instance_id, used.boot, used.device) == (
        pb.VOLUME_STATE_IN_USE,
        vm.id,
        True,
        "vda",
    )
    # A boot volume cannot be detached or deleted, nor booted from twice.
    assert code_reason(v.DetachVolume, pb.DetachVolumeRequest(id=bootvol.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_IS_BOOT",
    )
    assert code_reason(v.DeleteVolume, pb.DeleteVolumeRequest(id=bootvol.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_IN_USE",
    )
    twice = cpb.CreateInstanceRequest(name="bfv2", flavor="v.tiny", boot_volume=bootvol.id)
    assert code_reason(c.CreateInstance, twice) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_WRONG_STATE")
    assert [i.name for i in c.ListInstances(cpb.ListInstancesRequest()).instances] == ["bfv"]
    # The instance's node held it; its node cannot be deleted while volumes are there.
    admin = cloud["admin"]
    nodes(admin).DisableNode(node_pb2.DisableNodeRequest(id=vm.node_id))
    try:
        err = rpc_error(nodes(admin).DeleteNode, node_pb2.DeleteNodeRequest(id=vm.node_id))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        nodes(admin).EnableNode(node_pb2.EnableNodeRequest(id=vm.node_id))
    # Deleting the server keeps the volume, AVAILABLE again.
    delete_server(member, vm.id)
    back = wait_volume(member, bootvol.id, pb.VOLUME_STATE_AVAILABLE)
    assert back.instance_id == "" and not back.boot
    v.DeleteVolume(pb.DeleteVolumeRequest(id=bootvol.id))
    wait_volume_gone(member, bootvol.id)


def test_volume_from_an_image(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "img")
    other, _, _ = tenant(cloud, "img-other")
    # Only ACTIVE images the caller can see.
    queued = other.images.CreateImage(
        ipb.CreateImageRequest(image=ipb.Image(name="not-yet", disk_format=ipb.DISK_FORMAT_QCOW2))
    )
    assert code_reason(create, other, "q", size=1, source_image_id=queued.id) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IMAGE_NOT_ACTIVE",
    )
    assert code_reason(create, member, "q", size=1, source_image_id=queued.id) == (
        grpc.StatusCode.NOT_FOUND,
        "IMAGE_NOT_FOUND",
    )
    assert volumes(other).ListVolumes(pb.ListVolumesRequest()).volumes == []
    vol = create(member, "from-image", size=0, source_image_id="vtiny")
    # size 0: just big enough for the image (64 MiB -> 1 GiB).
    assert (vol.size_gb, vol.bootable, vol.source_image_id) == (1, True, cloud["image"].id)
    bigger = create(member, "from-big", size=6, source_image_id=cloud["big"].id)
    assert bigger.size_gb == 6
    try:
        for v in (vol, bigger):
            got = wait_for(
                lambda v=v: get(member, v.id).state != pb.VOLUME_STATE_CREATING and get(member, v.id),
                what="volume made",
            )
            assert got.state == pb.VOLUME_STATE_AVAILABLE, got.fault
    finally:
        for v in (vol, bigger):
            volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=v.id))
        for v in (vol, bigger):
            wait_volume_gone(member, v.id)


def test_snapshots_and_volumes_from_them(cloud: dict) -> None:
    member, reader, _ = tenant(cloud, "snap")
    v = volumes(member)
    vol = wait_volume(member, create(member, "src", size=2).id, pb.VOLUME_STATE_AVAILABLE)

    def snap(name: str, volume_id: str) -> pb.VolumeSnapshot:
        return v.CreateVolumeSnapshot(
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name=name, volume_id=volume_id))
        )

    s1 = snap("s1", "src")  # by name
    assert (s1.state, s1.volume_id, s1.size_gb, s1.node_id) == (
        pb.VOLUME_SNAPSHOT_STATE_CREATING,
        vol.id,
        2,
        vol.node_id,
    )
    wait_for(
        lambda: (
            v.GetVolumeSnapshot(pb.GetVolumeSnapshotRequest(id=s1.id)).state
            == pb.VOLUME_SNAPSHOT_STATE_AVAILABLE
        ),
        what="snapshot available",
    )
    dup = rpc_error(snap, "s1", vol.id)
    assert (dup.code(), error_reason(dup)) == (grpc.StatusCode.ALREADY_EXISTS, "VOLUME_SNAPSHOT_EXISTS")
    listed = v.ListVolumeSnapshots(pb.ListVolumeSnapshotsRequest(volume_id=vol.id)).snapshots
    assert [s.name for s in listed] == ["s1"]
    assert [s.id for s in volumes(reader).ListVolumeSnapshots(pb.ListVolumeSnapshotsRequest()).snapshots] == [
        s1.id
    ]
    # A volume with snapshots cannot be deleted.
    assert code_reason(v.DeleteVolume, pb.DeleteVolumeRequest(id=vol.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_HAS_SNAPSHOTS",
    )
    # From the snapshot: on the snapshot's node, at least its size.
    small = rpc_error(create, member, "copy", size=1, source_snapshot_id=s1.id)
    assert (small.code(), error_reason(small)) == (grpc.StatusCode.INVALID_ARGUMENT, "VOLUME_TOO_SMALL")
    copies = [create(member, f"copy{i}", size=0, source_snapshot_id="s1") for i in range(3)]
    for copy in copies:
        assert copy.node_id == vol.node_id and copy.source_snapshot_id == s1.id and copy.size_gb == 2
        wait_volume(member, copy.id, pb.VOLUME_STATE_AVAILABLE)
    # Delete the snapshot: DELETING, then gone; then the volume may go.
    v.DeleteVolumeSnapshot(pb.DeleteVolumeSnapshotRequest(id=s1.id))
    wait_for(lambda: gone(v.GetVolumeSnapshot, pb.GetVolumeSnapshotRequest(id=s1.id)), what="snapshot gone")
    v.DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    wait_volume_gone(member, vol.id)
    # A DELETING volume cannot be snapshotted.
    doomed = copies[0]
    v.DeleteVolume(pb.DeleteVolumeRequest(id=doomed.id))
    err = rpc_error(snap, "late", doomed.id)
    assert err.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
    for copy in copies:
        if copy.id != doomed.id:
            v.DeleteVolume(pb.DeleteVolumeRequest(id=copy.id))
    for copy in copies:
        wait_volume_gone(member, copy.id)


def test_quotas(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "quota")
    v = volumes(member)
    made = [create(member, f"q{i}", size=1) for i in range(QUOTA_VOLUMES)]
    err = rpc_error(create, member, "one-too-many", size=1)
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert "volumes" in err.details()
    assert len(v.ListVolumes(pb.ListVolumesRequest()).volumes) == QUOTA_VOLUMES
    for m in made[1:]:
        v.DeleteVolume(pb.DeleteVolumeRequest(id=m.id))
    for m in made[1:]:
        wait_volume_gone(member, m.id)
    # Gigabytes: one volume may not push the project over, nor may an extend.
    err = rpc_error(create, member, "huge", size=QUOTA_GB)
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert "GiB" in err.details()
    wait_volume(member, made[0].id, pb.VOLUME_STATE_AVAILABLE)
    err = rpc_error(v.ExtendVolume, pb.ExtendVolumeRequest(id=made[0].id, new_size_gb=QUOTA_GB + 1))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    after = get(member, made[0].id)
    assert (after.state, after.size_gb) == (pb.VOLUME_STATE_AVAILABLE, 1)
    # Snapshots.
    snaps = [
        v.CreateVolumeSnapshot(
            pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name=f"qs{i}", volume_id=made[0].id))
        )
        for i in range(QUOTA_SNAPSHOTS)
    ]
    err = rpc_error(
        v.CreateVolumeSnapshot,
        pb.CreateVolumeSnapshotRequest(snapshot=pb.VolumeSnapshot(name="qs-more", volume_id=made[0].id)),
    )
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert len(v.ListVolumeSnapshots(pb.ListVolumeSnapshotsRequest()).snapshots) == QUOTA_SNAPSHOTS
    for s in snaps:
        v.DeleteVolumeSnapshot(pb.DeleteVolumeSnapshotRequest(id=s.id))
    for s in snaps:
        wait_for(
            lambda s=s: gone(v.GetVolumeSnapshot, pb.GetVolumeSnapshotRequest(id=s.id)), what="snap gone"
        )
    v.DeleteVolume(pb.DeleteVolumeRequest(id=made[0].id))
    wait_volume_gone(member, made[0].id)


def test_racing_creates_respect_the_quota(cloud: dict) -> None:
    member, _, _ = tenant(cloud, "qrace")
    clients = [cloud["ctl"].login(member.who.user_name, "password-123") for _ in range(4)]
    ok: list[str] = []
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        for j in range(4):
            try:
                vol = create(client, f"qr-{k}-{j}", size=1)
                with lock:
                    ok.append(vol.id)
            except grpc.RpcError as exc:
                assert error_reason(exc) == "QUOTA_EXCEEDED", exc.details()

    race(worker, enumerate(clients))
    assert len(ok) == QUOTA_VOLUMES
    for vid in ok:
        volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vid))
    for vid in ok:
        wait_volume_gone(member, vid)


def test_volume_cli(cloud: dict, tmp_path: Path) -> None:
    ctl = cloud["ctl"]
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    login = cli_login(ctl, tmp_path / "cfg")
    assert login.returncode == 0, login.stderr

    def kumo(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = run_cli(list(args), env)
        assert (result.returncode == 0) == ok, f"kumo {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    made = json.loads(kumo("volume", "create", "cli-root", "--image", "vtiny", "--wait", "-o", "json").stdout)
    assert made["state"] == "available" and made["size_gb"] == 1 and made["bootable"]
    assert "cli-root" in kumo("volume", "list").stdout
    assert json.loads(kumo("volume", "show", "cli-root", "-o", "json").stdout)["id"] == made["id"]
    grown = json.loads(kumo("volume", "extend", "cli-root", "--size", "2", "--wait", "-o", "json").stdout)
    assert (grown["state"], grown["size_gb"]) == ("available", 2)
    small = kumo("volume", "extend", "cli-root", "--size", "1", ok=False)
    assert "INVALID_ARGUMENT" in small.stderr
    snap = json.loads(
        kumo(
            "volume", "snapshot", "create", "cli-snap", "--volume", "cli-root", "--wait", "-o", "json"
        ).stdout
    )
    assert snap["state"] == "available"
    assert "cli-snap" in kumo("volume", "snapshot", "list", "--volume", "cli-root").stdout
    busy = kumo("volume", "delete", "cli-root", ok=False)
    assert "FAILED_PRECONDITION" in busy.stderr
    assert (
        "deleted volume snapshot cli-snap"
        in kumo("volume", "snapshot", "delete", "cli-snap", "--wait").stdout
    )
    # Boot a server from it, then a data volume attached and detached.
    vm = json.loads(
        kumo(
            "server",
            "create",
            "cli-bfv",
            "--boot-volume",
            "cli-root",
            "--flavor",
            "v.tiny",
            "--wait",
            "-o",
            "json",
        ).stdout
    )
    assert vm["boot_volume_id"] == made["id"] and vm["node_id"] == made["node_id"]
    neither = kumo("server", "create", "cli-x", "--flavor", "v.tiny", ok=False)
    assert "--image or --boot-volume" in neither.stderr
    assert "not found" in kumo("volume", "create", "cli-data", "--snapshot", "no-such", ok=False).stderr
    attached = None
    for i in range(4):
        vol = json.loads(
            kumo("volume", "create", f"cli-data{i}", "--size", "1", "--wait", "-o", "json").stdout
        )
        if vol["node_id"] == vm["node_id"]:
            attached = vol
            break
    assert attached is not None
    used = json.loads(kumo("volume", "attach", attached["name"], "cli-bfv", "--wait", "-o", "json").stdout)
    assert used["state"] == "in_use" and used["instance_id"] == vm["id"]
    refused = kumo("volume", "detach", "cli-root", ok=False)
    assert "boot volume" in refused.stderr and "FAILED_PRECONDITION" in refused.stderr
    free = json.loads(kumo("volume", "detach", attached["name"], "--wait", "-o", "json").stdout)
    assert free["state"] == "available"
    kumo("server", "delete", "cli-bfv", "--wait")
    for vol in json.loads(kumo("volume", "list", "-o", "json").stdout):
        if vol["name"].startswith("cli-"):
            wait_for(
                lambda name=vol["name"]: (
                    json.loads(kumo("volume", "show", name, "-o", "json").stdout)["state"] == "available"
                ),
                what="volume available",
            )
            assert "deleted volume" in kumo("volume", "delete", vol["name"], "--wait").stdout


def test_racing_creates_never_overcommit_a_node(cloud: dict) -> None:
    """Volumes claim node disk like instances do: racing creates of big
    volumes from several projects fill the nodes but never past their disk."""
    tenants = [tenant(cloud, f"fill{i}")[0] for i in range(4)]
    made: list[tuple[Client, pb.Volume]] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        for j in range(2):
            try:
                vol = create(client, f"fill-{k}-{j}", size=40)
                with lock:
                    made.append((client, vol))
            except grpc.RpcError as exc:
                with lock:
                    refused.append(error_reason(exc))

    race(worker, enumerate(tenants))
    assert len(made) + len(refused) == 8
    assert set(refused) <= {"NO_VALID_HOST"}, refused
    per_node: dict[str, int] = {}
    for _, vol in made:
        per_node[vol.node_id] = per_node.get(vol.node_id, 0) + vol.size_gb
    assert all(total <= NODE_DISK_GB for total in per_node.values()), per_node
    assert 1 <= len(made) <= NODES * (NODE_DISK_GB // 40)
    for client, vol in made:
        volumes(client).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    for client, vol in made:
        wait_volume_gone(client, vol.id)
    # Freed: the same volumes fit again.
    again = [create(tenants[0], f"refill-{i}", size=40) for i in range(2)]
    for vol in again:
        volumes(tenants[0]).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    for vol in again:
        wait_volume_gone(tenants[0], vol.id)


def _boot_attach_race(cloud: dict, member: Client, vm: cpb.Instance, vol: pb.Volume, name: str) -> dict:
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}
    user = member.who.user_name

    def boot() -> None:
        client = cloud["ctl"].login(user, "password-123")
        barrier.wait()
        try:
            results["boot"] = compute(client).CreateInstance(
                cpb.CreateInstanceRequest(name=name, flavor="v.tiny", boot_volume=vol.id)
            )
        except grpc.RpcError as exc:
            results["boot"] = (exc.code(), error_reason(exc))

    def attach() -> None:
        client = cloud["ctl"].login(user, "password-123")
        barrier.wait()
        try:
            results["attach"] = volumes(client).AttachVolume(
                pb.AttachVolumeRequest(id=vol.id, instance_id=vm.id)
            )
        except grpc.RpcError as exc:
            results["attach"] = (exc.code(), error_reason(exc))

    threads = [threading.Thread(target=boot), threading.Thread(target=attach)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


def test_boot_and_attach_race_for_one_volume(cloud: dict) -> None:
    """CreateInstance(boot_volume=V) against AttachVolume(V): exactly one wins;
    a losing create leaves no instance behind."""
    member, _, _ = tenant(cloud, "bootrace")
    vm = server(member, "br-vm")
    lost = (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_WRONG_STATE")
    for round_ in range(3):
        vol = volume_on(cloud, member, vm.node_id, f"br-{round_}")
        name = f"br-boot{round_}"
        results = _boot_attach_race(cloud, member, vm, vol, name)
        wins = [k for k, r in results.items() if r != lost]
        assert len(wins) == 1, results
        names = [i.name for i in compute(member).ListInstances(cpb.ListInstancesRequest()).instances]
        now = get(member, vol.id)
        if wins == ["boot"]:
            assert now.boot and now.instance_id == results["boot"].id
            assert name in names
            delete_server(member, results["boot"].id)
        else:
            assert not now.boot and now.instance_id == vm.id
            assert name not in names
            wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
            volumes(member).DetachVolume(pb.DetachVolumeRequest(id=vol.id))
        wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
        volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
        wait_volume_gone(member, vol.id)
    delete_server(member, vm.id)
