"""Volume types and the placement rules of shared backends, against real
kumo-noded processes with the fake driver: two nodes that both mount one
shared-fs directory (real qcow2 files there), so a volume of a shared-fs
type is made on one node and attaches to a server on the other.

Covers every type RPC's bad input, roles (members and readers cannot create
or delete types; every role lists them), unknown types, a type in use, the
default type (migration 0014 makes `local`), and a backend no node has."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kumo.v1 import node_pb2
from kumo.v1 import volume_pb2 as pb
from tests.cloudutil import fake_cloud
from tests.harness import Client, cli_login, race, run_cli
from tests.nodeutil import nodes, wait_for
from tests.test_volumes import (
    code_reason,
    create,
    delete_server,
    get,
    gone,
    server,
    tenant,
    volumes,
    wait_volume,
)

LOCAL_TYPE_ID = "00000000-0000-4000-8000-00000000000a"


@contextlib.contextmanager
def start_cloud(base: Path, extra_args: list[str] | None = None) -> Iterator[dict]:
    """A controller (SQLite, or what `extra_args` say) and two fake nodes
    that mount one shared-fs directory."""
    shared = base / "shared-fs"
    shared.mkdir()
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "0.5", "KUMO_INSTANCE_SYNC_SECONDS": "0.2"}
    node_args = ["--shared-fs-dir", str(shared)]
    with fake_cloud(base, 2, "vtnode", env, extra_args=extra_args, node_args=node_args) as c:
        c.public_image("vtiny")
        c.flavor("v.tiny", vcpus=1, ram_mb=512)
        yield {"ctl": c.ctl, "admin": c.admin, "shared": shared}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with start_cloud(tmp_path_factory.mktemp("vtypes")) as c:
        yield c


def make_type(client: Client, name: str, backend: str, **kw: Any) -> pb.VolumeType:
    request_id = kw.pop("request_id", "")
    return volumes(client).CreateVolumeType(
        pb.CreateVolumeTypeRequest(
            volume_type=pb.VolumeType(name=name, backend=backend, **kw), request_id=request_id
        )
    )


def test_the_default_local_type_and_listing(cloud: dict) -> None:
    member, reader, _ = tenant(cloud, "vt-list")
    for who in (cloud["admin"], member, reader):
        listed = volumes(who).ListVolumeTypes(pb.ListVolumeTypesRequest()).volume_types
        local = [t for t in listed if t.name == "local"]
        assert local and local[0].id == LOCAL_TYPE_ID and local[0].backend == "local" and local[0].is_default
    got = volumes(reader).GetVolumeType(pb.GetVolumeTypeRequest(id="local"))
    assert got.id == LOCAL_TYPE_ID
    vol = wait_volume(member, create(member, "vt-plain").id, pb.VOLUME_STATE_AVAILABLE)
    assert vol.volume_type_id == LOCAL_TYPE_ID, "no type named: the default one"
    volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))


def test_type_rpcs_refuse_bad_input_and_roles(cloud: dict) -> None:
    admin = cloud["admin"]
    member, reader, _ = tenant(cloud, "vt-neg")
    v = volumes(admin)
    bad = [
        (pb.VolumeType(name="", backend="local"), "volume_type.name"),
        (pb.VolumeType(name="-bad", backend="local"), "volume_type.name"),
        (pb.VolumeType(name="x" * 70, backend="local"), "volume_type.name"),
        (pb.VolumeType(name="nobackend"), "volume_type.backend"),
        (pb.VolumeType(name="weird", backend="nfs3"), "volume_type.backend"),
        (pb.VolumeType(name="longdesc", backend="local", description="d" * 2000), "volume_type.description"),
    ]
    for vt, field in bad:
        err_code, _ = code_reason(v.CreateVolumeType, pb.CreateVolumeTypeRequest(volume_type=vt))
        assert err_code == grpc.StatusCode.INVALID_ARGUMENT, vt
        try:
            v.CreateVolumeType(pb.CreateVolumeTypeRequest(volume_type=vt))
        except grpc.RpcError as exc:
            assert field in (exc.details() or ""), (field, exc.details())
    for who in (member, reader):
        assert code_reason(
            volumes(who).CreateVolumeType,
            pb.CreateVolumeTypeRequest(volume_type=pb.VolumeType(name="m", backend="rbd")),
        ) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
        assert code_reason(volumes(who).DeleteVolumeType, pb.DeleteVolumeTypeRequest(id=LOCAL_TYPE_ID)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
    missing = str(uuid.uuid4())
    assert code_reason(v.GetVolumeType, pb.GetVolumeTypeRequest(id=missing)) == (
        grpc.StatusCode.NOT_FOUND,
        "VOLUME_TYPE_NOT_FOUND",
    )
    assert code_reason(v.GetVolumeType, pb.GetVolumeTypeRequest(id=""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_reason(v.DeleteVolumeType, pb.DeleteVolumeTypeRequest(id=missing)) == (
        grpc.StatusCode.NOT_FOUND,
        "VOLUME_TYPE_NOT_FOUND",
    )
    assert code_reason(v.DeleteVolumeType, pb.DeleteVolumeTypeRequest(id="not-a-uuid"))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    # An unknown type on CreateVolume; the default type cannot go.
    assert code_reason(
        volumes(member).CreateVolume,
        pb.CreateVolumeRequest(volume=pb.Volume(name="vt-x", size_gb=1, volume_type_id="no-such-type")),
    ) == (grpc.StatusCode.NOT_FOUND, "VOLUME_TYPE_NOT_FOUND")
    assert code_reason(v.DeleteVolumeType, pb.DeleteVolumeTypeRequest(id=LOCAL_TYPE_ID)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_TYPE_IN_USE",
    )
    # Names are unique; a retried create with its request_id returns the first.
    rid = str(uuid.uuid4())
    first = make_type(admin, "vt-dup", "local", request_id=rid)
    assert make_type(admin, "vt-dup", "local", request_id=rid).id == first.id
    assert code_reason(
        v.CreateVolumeType,
        pb.CreateVolumeTypeRequest(volume_type=pb.VolumeType(name="vt-dup", backend="local")),
    ) == (grpc.StatusCode.ALREADY_EXISTS, "VOLUME_TYPE_EXISTS")
    v.DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=first.id))
    assert code_reason(v.GetVolumeType, pb.GetVolumeTypeRequest(id=first.id))[0] == grpc.StatusCode.NOT_FOUND


def test_a_backend_no_node_has_places_nothing(cloud: dict) -> None:
    admin = cloud["admin"]
    member, _, _ = tenant(cloud, "vt-rbd")
    t = make_type(admin, "vt-ceph", "rbd")
    code, reason = code_reason(
        volumes(member).CreateVolume,
        pb.CreateVolumeRequest(volume=pb.Volume(name="vt-r", size_gb=1, volume_type_id="vt-ceph")),
    )
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_VALID_HOST")
    try:
        volumes(member).CreateVolume(
            pb.CreateVolumeRequest(volume=pb.Volume(name="vt-r", size_gb=1, volume_type_id=t.id))
        )
    except grpc.RpcError as exc:
        assert "StorageBackendFilter rejected 2" in (exc.details() or ""), exc.details()
    volumes(admin).DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))


def _node_ids(admin: Client) -> list[str]:
    return sorted(n.id for n in nodes(admin).ListNodes(node_pb2.ListNodesRequest()).nodes)


def _on(admin: Client, node_id: str, fn: Any) -> Any:
    """Runs fn with every other node disabled (placement there)."""
    others = [n for n in _node_ids(admin) if n != node_id]
    for nid in others:
        nodes(admin).DisableNode(node_pb2.DisableNodeRequest(id=nid, reason="test placement"))
    try:
        return fn()
    finally:
        for nid in others:
            nodes(admin).EnableNode(node_pb2.EnableNodeRequest(id=nid))


def test_shared_volumes_attach_on_any_node_and_types_in_use(cloud: dict) -> None:
    admin = cloud["admin"]
    member, _, _ = tenant(cloud, "vt-shared")
    listed = nodes(admin).ListNodes(node_pb2.ListNodesRequest()).nodes
    assert all(set(n.inventory.storage_backends) == {"local", "shared-fs"} for n in listed)
    t = make_type(admin, "vt-nfs", "shared-fs", description="qcow2 on a shared directory")
    n0, n1 = _node_ids(admin)
    vol = _on(admin, n0, lambda: create(member, "vt-shared-vol", 2, volume_type_id="vt-nfs"))
    assert vol.volume_type_id == t.id and vol.node_id == n0
    vol = wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    path = cloud["shared"] / f"{vol.id}.qcow2"
    assert path.exists(), "the volume is a qcow2 file in the shared directory"
    local = wait_volume(
        member, _on(admin, n0, lambda: create(member, "vt-local-vol")).id, pb.VOLUME_STATE_AVAILABLE
    )

    srv = _on(admin, n1, lambda: server(member, "vt-srv-b"))
    assert srv.node_id == n1
    # A local volume still refuses another node's server; a shared one attaches.
    assert code_reason(
        volumes(member).AttachVolume, pb.AttachVolumeRequest(id=local.id, instance_id=srv.id)
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_ON_OTHER_NODE")
    volumes(member).AttachVolume(pb.AttachVolumeRequest(id=vol.id, instance_id=srv.id))
    got = wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
    assert got.node_id == n1, "its instance's node does its work now"
    assert get(member, vol.id).instance_id == srv.id

    # Grown while attached, on the shared file; claims no node disk.
    volumes(member).ExtendVolume(pb.ExtendVolumeRequest(id=vol.id, new_size_gb=3))
    wait_volume(member, vol.id, pb.VOLUME_STATE_IN_USE)
    volumes(member).DetachVolume(pb.DetachVolumeRequest(id=vol.id))
    wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    assert path.exists(), "node n0, no longer its node, did not delete it"

    # The type is in use while the volume exists.
    assert code_reason(volumes(admin).DeleteVolumeType, pb.DeleteVolumeTypeRequest(id=t.id)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VOLUME_TYPE_IN_USE",
    )
    delete_server(member, srv.id)
    for vid in (vol.id, local.id):
        volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vid))
    wait_for(lambda: not path.exists(), what="the shared volume file removed")
    wait_for(
        lambda: gone(volumes(member).GetVolume, pb.GetVolumeRequest(id=vol.id)),
        what="the shared volume row gone",
    )
    volumes(admin).DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))


def test_boot_from_a_shared_volume_on_another_node(cloud: dict) -> None:
    """The server goes to any node of the backend (here the other one), and
    the volume follows it there."""
    admin = cloud["admin"]
    member, _, _ = tenant(cloud, "vt-boot")
    t = make_type(admin, "vt-boot-nfs", "shared-fs")
    n0, n1 = _node_ids(admin)
    vol = _on(admin, n0, lambda: create(member, "vt-boot-vol", 1, volume_type_id=t.id))
    wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    srv = _on(admin, n1, lambda: server(member, "vt-boot-srv", boot_volume=vol.id))
    assert srv.node_id == n1 and srv.boot_volume_id == vol.id
    got = get(member, vol.id)
    assert got.boot and got.node_id == n1 and got.state == pb.VOLUME_STATE_IN_USE
    delete_server(member, srv.id)
    wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    wait_for(lambda: gone(volumes(member).GetVolume, pb.GetVolumeRequest(id=vol.id)), what="volume gone")
    assert not (cloud["shared"] / f"{vol.id}.qcow2").exists()
    volumes(admin).DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))


def test_deleting_a_type_races_creates_of_its_volumes(cloud: dict) -> None:
    """A DeleteVolumeType racing CreateVolumes of that type: either the type
    stays (and the volumes exist) or it goes and no volume has it."""
    admin = cloud["admin"]
    member, _, _ = tenant(cloud, "vt-race")
    for round_ in range(4):
        t = make_type(admin, f"vt-race-{round_}", "shared-fs")
        outcomes: dict[str, Any] = {}

        def worker(kind: str, i: int, t: pb.VolumeType = t, outcomes: dict[str, Any] = outcomes) -> None:
            try:
                if kind == "delete":
                    volumes(admin).DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))
                    outcomes[kind] = "deleted"
                else:
                    req = pb.Volume(name=f"{t.name}-{i}", size_gb=1, volume_type_id=t.id)
                    outcomes[f"v{i}"] = volumes(member).CreateVolume(pb.CreateVolumeRequest(volume=req)).id
            except grpc.RpcError as exc:
                outcomes[kind if kind == "delete" else f"v{i}"] = exc.code()

        race(worker, [("delete", 0), ("create", 1), ("create", 2)])
        made = [v for k, v in outcomes.items() if k.startswith("v") and isinstance(v, str)]
        if outcomes["delete"] == "deleted":
            assert not made, outcomes
            assert all(outcomes[f"v{i}"] == grpc.StatusCode.NOT_FOUND for i in (1, 2)), outcomes
        else:
            assert outcomes["delete"] == grpc.StatusCode.FAILED_PRECONDITION and made, outcomes
            assert all(get(member, vid).volume_type_id == t.id for vid in made)
            for vid in made:
                wait_volume(member, vid, pb.VOLUME_STATE_AVAILABLE)
                volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vid))
            for vid in made:
                wait_for(
                    lambda vid=vid: gone(volumes(member).GetVolume, pb.GetVolumeRequest(id=vid)), what="gone"
                )
            volumes(admin).DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))


def test_volume_type_cli(cloud: dict, tmp_path: Path) -> None:
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    login = cli_login(cloud["ctl"], tmp_path / "cfg")
    assert login.returncode == 0, login.stderr

    def kumo(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = run_cli(list(args), env)
        assert (result.returncode == 0) == ok, f"kumo {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    made = json.loads(
        kumo(
            "volume",
            "type",
            "create",
            "cli-nfs",
            "--backend",
            "shared-fs",
            "--description",
            "d",
            "-o",
            "json",
        ).stdout
    )
    assert made["backend"] == "shared-fs" and not made["is_default"]
    listed = kumo("volume", "type", "list").stdout
    assert "cli-nfs" in listed and "local" in listed
    assert json.loads(kumo("volume", "type", "show", "cli-nfs", "-o", "json").stdout)["id"] == made["id"]
    vol = json.loads(
        kumo(
            "volume", "create", "cli-typed", "--size", "1", "--type", "cli-nfs", "--wait", "-o", "json"
        ).stdout
    )
    assert vol["volume_type_id"] == made["id"] and vol["state"] == "available"
    busy = kumo("volume", "type", "delete", "cli-nfs", ok=False)
    assert "VOLUME_TYPE_IN_USE" in busy.stderr or "FAILED_PRECONDITION" in busy.stderr, busy.stderr
    assert (
        "INVALID_ARGUMENT"
        in kumo("volume", "type", "create", "cli-bad", "--backend", "tape", ok=False).stderr
    )
    kumo("volume", "delete", "cli-typed", "--wait")
    assert "deleted volume type cli-nfs" in kumo("volume", "type", "delete", "cli-nfs").stdout


def test_a_new_default_type_takes_the_flag(cloud: dict) -> None:
    """Last in the module: `local` stops being the default."""
    admin = cloud["admin"]
    member, _, _ = tenant(cloud, "vt-default")
    t = make_type(admin, "vt-new-default", "shared-fs", is_default=True)
    listed = volumes(member).ListVolumeTypes(pb.ListVolumeTypesRequest(page_size=1))
    assert len(listed.volume_types) == 1 and listed.next_page_token, "types are paged"
    everything = volumes(member).ListVolumeTypes(pb.ListVolumeTypesRequest(page_size=100)).volume_types
    assert [x.name for x in everything if x.is_default] == ["vt-new-default"]
    vol = create(member, "vt-default-vol")
    assert vol.volume_type_id == t.id
    wait_volume(member, vol.id, pb.VOLUME_STATE_AVAILABLE)
    volumes(member).DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    # Now `local`, no longer the default and unused, can go.
    wait_for(
        lambda: gone(volumes(member).GetVolume, pb.GetVolumeRequest(id=vol.id)),
        what="volume gone",
    )
