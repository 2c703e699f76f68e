"""Flavors, keypairs and server groups: CRUD, visibility, roles, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc
from tests.harness import (
    Client,
    ControllerProc,
    cli_login,
    error_reason,
    rpc_error,
    run_cli,
    two_tenants,
)

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


@pytest.fixture(scope="module")
def world(controller: ControllerProc, admin: Client) -> dict[str, object]:
    return two_tenants(controller, admin, "cat")


def flavor(name: str, **kw) -> pb.CreateFlavorRequest:  # type: ignore[no-untyped-def]
    fields = {"vcpus": 1, "ram_mb": 256, "disk_gb": 1, "is_public": True, **kw}
    return pb.CreateFlavorRequest(flavor=pb.Flavor(name=name, **fields))


def test_flavor_lifecycle_and_visibility(admin: Client, world) -> None:  # type: ignore[no-untyped-def]
    c = compute(admin)
    public = c.CreateFlavor(flavor("f.small"))
    assert (public.vcpus, public.ram_mb, public.disk_gb, public.is_public) == (1, 256, 1, True)
    private = c.CreateFlavor(flavor("f.secret", is_public=False, project_ids=[world["a"].id]))
    alice, bob = compute(world["alice"]), compute(world["bob"])
    assert {f.name for f in alice.ListFlavors(pb.ListFlavorsRequest()).flavors} >= {"f.small", "f.secret"}
    assert "f.secret" not in {f.name for f in bob.ListFlavors(pb.ListFlavorsRequest()).flavors}
    assert rpc_error(bob.GetFlavor, pb.GetFlavorRequest(id=private.id)).code() == grpc.StatusCode.NOT_FOUND
    assert alice.GetFlavor(pb.GetFlavorRequest(id=private.id)).project_ids == [world["a"].id]
    # Share it with B as well.
    c.UpdateFlavor(
        pb.UpdateFlavorRequest(
            flavor=pb.Flavor(id=private.id, project_ids=[world["a"].id, world["b"].id]),
            update_mask=field_mask_pb2.FieldMask(paths=["project_ids"]),
        )
    )
    assert bob.GetFlavor(pb.GetFlavorRequest(id=private.id)).name == "f.secret"
    c.DeleteFlavor(pb.DeleteFlavorRequest(id=private.id))
    assert rpc_error(c.GetFlavor, pb.GetFlavorRequest(id=private.id)).code() == grpc.StatusCode.NOT_FOUND


def test_flavor_bad_input_and_roles(admin: Client, world) -> None:  # type: ignore[no-untyped-def]
    c = compute(admin)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for req in [
        flavor("f.zero", vcpus=0),
        flavor("f.neg", ram_mb=-5),
        flavor("f.big", vcpus=100_000),
        flavor("f.disk", disk_gb=-1),
        flavor("bad name"),
        flavor("x" * 10_000),
        flavor("f.pubproj", project_ids=[world["a"].id]),
        flavor("f.badproj", is_public=False, project_ids=["nope"]),
    ]:
        assert rpc_error(c.CreateFlavor, req).code() == invalid, req
    assert rpc_error(c.CreateFlavor, flavor("f.unk", is_public=False, project_ids=[UNKNOWN])).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    c.CreateFlavor(flavor("f.dup"))
    err = rpc_error(c.CreateFlavor, flavor("f.dup"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(err) == "FLAVOR_EXISTS"
    sizes = pb.UpdateFlavorRequest(
        flavor=pb.Flavor(id=UNKNOWN, vcpus=8), update_mask=field_mask_pb2.FieldMask(paths=["vcpus"])
    )
    assert rpc_error(c.UpdateFlavor, sizes).code() == invalid
    desc = pb.UpdateFlavorRequest(
        flavor=pb.Flavor(id=UNKNOWN), update_mask=field_mask_pb2.FieldMask(paths=["description"])
    )
    assert rpc_error(c.UpdateFlavor, desc).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(c.DeleteFlavor, pb.DeleteFlavorRequest(id=UNKNOWN)).code() == grpc.StatusCode.NOT_FOUND
    for who in ("alice", "reader"):
        err = rpc_error(compute(world[who]).CreateFlavor, flavor(f"f.{who}"))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        rpc_error(compute(world["alice"]).ListFlavors, pb.ListFlavorsRequest(page_size=-1)).code() == invalid
    )


def test_keypairs_generated_and_imported(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = compute(world["alice"])
    made = alice.CreateKeypair(pb.CreateKeypairRequest(keypair=pb.Keypair(name="gen")))
    assert made.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert made.public_key.startswith("ssh-ed25519 ")
    again = alice.GetKeypair(pb.GetKeypairRequest(id=made.id))
    assert again.private_key == "" and again.fingerprint == made.fingerprint
    # The fingerprint is what ssh-keygen says.
    pub = tmp_path / "k.pub"
    pub.write_text(made.public_key + "\n")
    keygen = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True)
    if keygen.returncode == 0:
        assert made.fingerprint in keygen.stdout
    imported = alice.CreateKeypair(
        pb.CreateKeypairRequest(keypair=pb.Keypair(name="imp", public_key=made.public_key))
    )
    assert imported.private_key == "" and imported.fingerprint == made.fingerprint
    # Keypairs are per user: Bob neither sees nor can delete Alice's.
    bob = compute(world["bob"])
    assert rpc_error(bob.GetKeypair, pb.GetKeypairRequest(id=made.id)).code() == grpc.StatusCode.NOT_FOUND
    assert (
        rpc_error(bob.DeleteKeypair, pb.DeleteKeypairRequest(id=made.id)).code() == grpc.StatusCode.NOT_FOUND
    )
    assert [k.name for k in bob.ListKeypairs(pb.ListKeypairsRequest()).keypairs] == []
    bob.CreateKeypair(pb.CreateKeypairRequest(keypair=pb.Keypair(name="gen")))  # same name, other user: fine
    assert rpc_error(alice.CreateKeypair, pb.CreateKeypairRequest(keypair=pb.Keypair(name="gen"))).code() == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    for bad in [
        "not a key",
        "ssh-ed25519 AAAA!!!",
        "ssh-rsa " + "A" * 20_000,
        "ssh-ed25519 AAAA\nssh-ed25519 BBBB",
    ]:
        err = rpc_error(
            alice.CreateKeypair, pb.CreateKeypairRequest(keypair=pb.Keypair(name="bad", public_key=bad))
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    reader = compute(world["reader"])
    assert rpc_error(reader.CreateKeypair, pb.CreateKeypairRequest(keypair=pb.Keypair(name="r"))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    alice.DeleteKeypair(pb.DeleteKeypairRequest(id=imported.id))
    assert (
        rpc_error(alice.DeleteKeypair, pb.DeleteKeypairRequest(id=imported.id)).code()
        == grpc.StatusCode.NOT_FOUND
    )


def test_server_groups(world) -> None:  # type: ignore[no-untyped-def]
    alice, bob = compute(world["alice"]), compute(world["bob"])
    group = alice.CreateServerGroup(
        pb.CreateServerGroupRequest(
            server_group=pb.ServerGroup(name="spread", policy=pb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
        )
    )
    assert group.project_id == world["a"].id and list(group.member_ids) == []
    assert [g.name for g in alice.ListServerGroups(pb.ListServerGroupsRequest()).server_groups] == ["spread"]
    assert bob.ListServerGroups(pb.ListServerGroupsRequest()).server_groups == []
    assert (
        rpc_error(bob.GetServerGroup, pb.GetServerGroupRequest(id=group.id)).code()
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        rpc_error(bob.DeleteServerGroup, pb.DeleteServerGroupRequest(id=group.id)).code()
        == grpc.StatusCode.NOT_FOUND
    )
    bad = pb.CreateServerGroupRequest(server_group=pb.ServerGroup(name="nopolicy"))
    assert rpc_error(alice.CreateServerGroup, bad).code() == grpc.StatusCode.INVALID_ARGUMENT
    dup = pb.CreateServerGroupRequest(
        server_group=pb.ServerGroup(name="spread", policy=pb.SERVER_GROUP_POLICY_AFFINITY)
    )
    assert rpc_error(alice.CreateServerGroup, dup).code() == grpc.StatusCode.ALREADY_EXISTS
    reader = compute(world["reader"])
    assert reader.GetServerGroup(pb.GetServerGroupRequest(id=group.id)).name == "spread"
    assert rpc_error(reader.DeleteServerGroup, pb.DeleteServerGroupRequest(id=group.id)).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    alice.DeleteServerGroup(pb.DeleteServerGroupRequest(id=group.id))
    assert (
        rpc_error(alice.GetServerGroup, pb.GetServerGroupRequest(id=group.id)).code()
        == grpc.StatusCode.NOT_FOUND
    )


def test_cli_flavor_keypair_group(controller: ControllerProc, tmp_path: Path) -> None:
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    login = cli_login(controller, tmp_path / "cfg")
    assert login.returncode == 0, login.stderr
    made = run_cli(
        ["flavor", "create", "cli.tiny", "--vcpus", "1", "--ram", "128", "--disk", "1", "-o", "json"], env
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["ram_mb"] == 128
    assert "cli.tiny" in run_cli(["flavor", "list"], env).stdout
    bad = run_cli(["flavor", "create", "cli.bad", "--vcpus", "0", "--ram", "128"], env)
    assert bad.returncode == 1 and "vcpus" in bad.stderr and "Traceback" not in bad.stderr
    key_file = tmp_path / "id_kumo"
    kp = run_cli(["keypair", "create", "cli-key", "--private-key-file", str(key_file), "-o", "json"], env)
    assert kp.returncode == 0, kp.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600 and "PRIVATE KEY" in key_file.read_text()
    assert json.loads(kp.stdout)["private_key"] == ""
    grp = run_cli(["server-group", "create", "cli-grp", "--policy", "anti-affinity", "-o", "json"], env)
    assert json.loads(grp.stdout)["policy"] == "anti_affinity"
    bad_policy = run_cli(["server-group", "create", "g2", "--policy", "sideways"], env)
    assert bad_policy.returncode == 1 and "affinity" in bad_policy.stderr
    for args in (
        ["server-group", "delete", "cli-grp"],
        ["keypair", "delete", "cli-key"],
        ["flavor", "delete", "cli.tiny"],
    ):
        result = run_cli(args, env)
        assert result.returncode == 0 and "deleted" in result.stdout, result.stderr
