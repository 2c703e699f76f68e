"""Quotas as resources, against a real controller and two kumo-noded processes
on the fake driver: GetQuota/UpdateQuota (roles, tenancy, bad values),
per-project limits over the cloud defaults, lowering a limit below usage,
QUOTA_EXCEEDED's ErrorInfo, the CLI, and the usage counters equal to the rows
after racing creates and deletes (tests/test_quotas_postgres.py runs the racing
ones again on PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kumo.errorinfo import error_metadata
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import network_pb2_grpc, volume_pb2_grpc
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud
from tests.harness import Client, cli_login, error_reason, make_user, race, rpc_error, run_cli
from tests.nodeutil import wait_for
from tests.test_compute_fake import compute, wait_gone

UNKNOWN = "00000000-0000-4000-8000-000000000000"
DEFAULT_VOLUMES = 4
DEFAULT_NETWORKS = 6


@contextlib.contextmanager
def start_cloud(base: Path, extra_args: list[str] | None = None) -> Iterator[dict]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "0.5",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.2",
        "KUMO_QUOTA_VOLUMES": str(DEFAULT_VOLUMES),
        "KUMO_QUOTA_NETWORKS": str(DEFAULT_NETWORKS),
    }
    with fake_cloud(base, 2, "qfake", env, disk_gb=200, extra_args=extra_args) as c:
        c.public_image("qtiny")
        c.flavor("q.tiny", vcpus=1, ram_mb=128)
        yield {"ctl": c.ctl, "admin": c.admin}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with start_cloud(tmp_path_factory.mktemp("quota")) as c:
        yield c


def tenant(cloud: dict, tag: str) -> tuple[Client, Client, idpb.Project]:
    """A fresh project with a member and a reader."""
    admin, ctl = cloud["admin"], cloud["ctl"]
    name = f"{tag}-{uuid.uuid4().hex[:6]}"
    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=name)))
    make_user(admin, project.id, f"{name}-m", idpb.ROLE_MEMBER)
    make_user(admin, project.id, f"{name}-r", idpb.ROLE_READER)
    return ctl.login(f"{name}-m", "password-123"), ctl.login(f"{name}-r", "password-123"), project


def get_quota(client: Client, project_id: str) -> idpb.Quota:
    return client.identity.GetQuota(idpb.GetQuotaRequest(project_id=project_id))


def set_quota(client: Client, project_id: str, **limits: int) -> idpb.Quota:
    return client.identity.UpdateQuota(
        idpb.UpdateQuotaRequest(
            quota=idpb.Quota(project_id=project_id, limits=idpb.QuotaValues(**limits)),
            update_mask=field_mask_pb2.FieldMask(paths=[f"limits.{k}" for k in limits]),
        )
    )


def net(client: Client) -> Any:
    return client.stub(network_pb2_grpc.NetworkServiceStub)


def vol(client: Client) -> Any:
    return client.stub(volume_pb2_grpc.VolumeServiceStub)


def make_network(client: Client, name: str) -> npb.Network:
    return net(client).CreateNetwork(npb.CreateNetworkRequest(network=npb.Network(name=name)))


def code_reason(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return exc.code(), error_reason(exc)


EXCEEDED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
# A usage of nothing at all (responses set every optional field, zeros too).
NOTHING = idpb.QuotaValues(**{f.name: 0 for f in idpb.QuotaValues.DESCRIPTOR.fields})


def test_get_quota_shows_defaults_and_usage_and_who_may_read(cloud: dict) -> None:
    member, reader, project = tenant(cloud, "show")
    q = get_quota(member, project.id)
    assert q.project_id == project.id
    assert q.limits.volumes == q.defaults.volumes == DEFAULT_VOLUMES
    assert q.limits.networks == DEFAULT_NETWORKS
    assert q.limits.floating_ips == q.defaults.floating_ips > 0  # the key exists before the feature
    assert q.usage == NOTHING
    make_network(member, "one")
    assert get_quota(reader, project.id).usage.networks == 1  # readers read their own

    # Another project's quota is as good as missing for a member; admins see any.
    _, _, other_project = tenant(cloud, "other")
    err = rpc_error(get_quota, member, other_project.id)
    assert code_reason(err) == (grpc.StatusCode.NOT_FOUND, "PROJECT_NOT_FOUND")
    assert get_quota(cloud["admin"], project.id).usage.networks == 1
    err = rpc_error(get_quota, cloud["admin"], UNKNOWN)
    assert code_reason(err) == (grpc.StatusCode.NOT_FOUND, "PROJECT_NOT_FOUND")
    for bad in ("", "not-a-uuid"):
        err = rpc_error(get_quota, member, bad)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "project_id" in err.details()


def test_update_quota_refuses_bad_values_and_non_admins(cloud: dict) -> None:
    admin = cloud["admin"]
    member, reader, project = tenant(cloud, "upd")
    for who in (member, reader):
        err = rpc_error(set_quota, who, project.id, instances=20)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = rpc_error(set_quota, admin, project.id, vcpus=-2)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "quota.limits.vcpus" in err.details()
    err = rpc_error(set_quota, admin, UNKNOWN, instances=1)
    assert code_reason(err) == (grpc.StatusCode.NOT_FOUND, "PROJECT_NOT_FOUND")
    err = rpc_error(set_quota, admin, "", instances=1)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "quota.project_id" in err.details()

    def update(paths: list[str]) -> idpb.Quota:
        return admin.identity.UpdateQuota(
            idpb.UpdateQuotaRequest(
                quota=idpb.Quota(project_id=project.id, limits=idpb.QuotaValues(instances=1)),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            )
        )

    for paths in ([], ["limits.bogus"], ["limits"], ["usage.instances"], ["project_id"]):
        assert rpc_error(update, paths).code() == grpc.StatusCode.INVALID_ARGUMENT, paths
    # Nothing was changed by the refused calls.
    assert get_quota(admin, project.id).limits.instances == get_quota(admin, project.id).defaults.instances

    # Only the masked limits change; -1 is unlimited; 0 is allowed.
    q = set_quota(admin, project.id, instances=20, networks=-1, ports=0)
    assert (q.limits.instances, q.limits.networks, q.limits.ports) == (20, -1, 0)
    assert q.limits.vcpus == q.defaults.vcpus
    for i in range(DEFAULT_NETWORKS + 1):  # past the default: unlimited now
        make_network(member, f"n{i}")
    network = make_network(member, "for-port")
    err = rpc_error(net(member).CreatePort, npb.CreatePortRequest(port=npb.Port(network_id=network.id)))
    assert code_reason(err) == EXCEEDED
    assert get_quota(member, project.id).usage.networks == DEFAULT_NETWORKS + 2

    # A limit named in the mask but absent from the message goes back to the default.
    reset = admin.identity.UpdateQuota(
        idpb.UpdateQuotaRequest(
            quota=idpb.Quota(project_id=project.id, limits=idpb.QuotaValues(ports=3)),
            update_mask=field_mask_pb2.FieldMask(paths=["limits.networks", "limits.ports"]),
        )
    )
    assert (reset.limits.networks, reset.limits.ports) == (DEFAULT_NETWORKS, 3)
    assert reset.limits.instances == 20
    err = rpc_error(make_network, member, "over-the-default-again")
    assert code_reason(err) == EXCEEDED  # the default (6) is below the usage (8) again


def test_project_limit_overrides_the_default(cloud: dict) -> None:
    small, _, small_project = tenant(cloud, "small")
    plain, _, plain_project = tenant(cloud, "plain")
    set_quota(cloud["admin"], small_project.id, volumes=2)

    def create(client: Client, name: str, size: int = 1) -> vpb.Volume:
        return vol(client).CreateVolume(vpb.CreateVolumeRequest(volume=vpb.Volume(name=name, size_gb=size)))

    create(small, "a")
    create(small, "b")
    err = rpc_error(create, small, "c")
    assert code_reason(err) == EXCEEDED
    assert error_metadata(err) == {"resource": "volumes", "limit": "2", "used": "2", "requested": "1"}
    assert "quota exceeded for volumes" in err.details()
    for i in range(DEFAULT_VOLUMES):  # the other project has the cloud default
        create(plain, f"p{i}", size=2)
    err = rpc_error(create, plain, "over")
    assert error_metadata(err)["limit"] == str(DEFAULT_VOLUMES)
    q = get_quota(plain, plain_project.id)
    assert (q.usage.volumes, q.usage.volume_gb) == (DEFAULT_VOLUMES, 2 * DEFAULT_VOLUMES)


def test_lowering_below_usage_blocks_new_creates_only(cloud: dict) -> None:
    admin = cloud["admin"]
    member, _, project = tenant(cloud, "lower")
    made = [make_network(member, f"l{i}") for i in range(3)]
    q = set_quota(admin, project.id, networks=1)
    assert (q.limits.networks, q.usage.networks) == (1, 3)  # allowed, nothing removed
    assert len(net(member).ListNetworks(npb.ListNetworksRequest()).networks) == 3
    err = rpc_error(make_network, member, "more")
    assert code_reason(err) == EXCEEDED
    assert error_metadata(err) == {"resource": "networks", "limit": "1", "used": "3", "requested": "1"}
    net(member).DeleteNetwork(npb.DeleteNetworkRequest(id=made[0].id))  # deletes are never refused
    assert code_reason(rpc_error(make_network, member, "more")) == EXCEEDED  # 2 used of 1
    for n in made[1:]:
        net(member).DeleteNetwork(npb.DeleteNetworkRequest(id=n.id))
    make_network(member, "fits-again")
    assert get_quota(member, project.id).usage.networks == 1


def test_instance_quota_error_info(cloud: dict) -> None:
    member, _, project = tenant(cloud, "inst")
    set_quota(cloud["admin"], project.id, vcpus=0)
    err = rpc_error(
        compute(member).CreateInstance, cpb.CreateInstanceRequest(name="x", image="qtiny", flavor="q.tiny")
    )
    assert code_reason(err) == EXCEEDED
    assert error_metadata(err) == {"resource": "vcpus", "limit": "0", "used": "0", "requested": "1"}
    assert get_quota(member, project.id).usage == NOTHING  # the instance charge rolled back


def usage_from_rows(client: Client) -> dict[str, int]:
    """What the project holds, counted from its rows through the List RPCs."""
    instances = compute(client).ListInstances(cpb.ListInstancesRequest(page_size=1000)).instances
    flavors = {f.id: f for f in compute(client).ListFlavors(cpb.ListFlavorsRequest(page_size=1000)).flavors}
    volumes = vol(client).ListVolumes(vpb.ListVolumesRequest(page_size=1000)).volumes
    snaps = vol(client).ListVolumeSnapshots(vpb.ListVolumeSnapshotsRequest(page_size=1000)).snapshots
    groups = net(client).ListSecurityGroups(npb.ListSecurityGroupsRequest(page_size=1000)).security_groups
    return {
        "instances": len(instances),
        "vcpus": sum(flavors[i.flavor_id].vcpus for i in instances),
        "ram_mb": sum(flavors[i.flavor_id].ram_mb for i in instances),
        "volumes": len(volumes),
        "volume_gb": sum(v.size_gb for v in volumes),
        "snapshots": len(snaps),
        "networks": len(net(client).ListNetworks(npb.ListNetworksRequest(page_size=1000)).networks),
        "ports": len(net(client).ListPorts(npb.ListPortsRequest(page_size=1000)).ports),
        "security_groups": sum(1 for g in groups if g.name != "default"),
    }


def counted(client: Client, project_id: str) -> dict[str, int]:
    usage = get_quota(client, project_id).usage
    return {k: getattr(usage, k) for k in usage_from_rows(client)}


def ignore_quota(fn: Callable[[], Any]) -> Any:
    """Runs one racing call; a quota refusal is an expected outcome."""
    try:
        return fn()
    except grpc.RpcError as exc:
        assert code_reason(exc) == EXCEEDED, exc.details()
        return None


def test_counters_equal_rows_after_racing_creates_and_deletes(cloud: dict) -> None:
    admin = cloud["admin"]
    member, _, project = tenant(cloud, "race")
    # Limits that some racers hit, so refusals race with successes too.
    set_quota(admin, project.id, instances=6, networks=5, ports=8, security_groups=5, volumes=6, snapshots=3)
    shared = make_network(member, "shared-net")
    made: dict[str, list[str]] = {"instance": [], "volume": [], "network": [], "port": [], "group": []}
    lock = threading.Lock()

    def keep(kind: str, ident: str | None) -> None:
        if ident:
            with lock:
                made[kind].append(ident)

    def create_worker(i: int) -> None:
        inst = ignore_quota(
            lambda: compute(member).CreateInstance(
                cpb.CreateInstanceRequest(name=f"r{i}", image="qtiny", flavor="q.tiny")
            )
        )
        keep("instance", inst and inst.id)
        v = ignore_quota(
            lambda: vol(member).CreateVolume(
                vpb.CreateVolumeRequest(volume=vpb.Volume(name=f"r{i}", size_gb=1 + i))
            )
        )
        keep("volume", v and v.id)
        n = ignore_quota(lambda: make_network(member, f"r{i}"))
        keep("network", n and n.id)
        p = ignore_quota(
            lambda: net(member).CreatePort(npb.CreatePortRequest(port=npb.Port(network_id=shared.id)))
        )
        keep("port", p and p.id)
        g = ignore_quota(
            lambda: net(member).CreateSecurityGroup(
                npb.CreateSecurityGroupRequest(security_group=npb.SecurityGroup(name=f"r{i}"))
            )
        )
        keep("group", g and g.id)

    race(create_worker, [(i,) for i in range(10)])
    assert len(made["instance"]) == 6 and len(made["volume"]) == 6 and len(made["network"]) == 4
    assert len(made["port"]) == 8 and len(made["group"]) == 5
    assert counted(member, project.id) == usage_from_rows(member)

    # Racing deletes of half of everything (each twice, so deletes race each
    # other too) with racing creates of more.
    doomed = {k: v[: len(v) // 2] for k, v in made.items()}

    def delete_worker(kind: str, ident: str) -> None:
        calls = {
            "instance": lambda: compute(member).DeleteInstance(cpb.DeleteInstanceRequest(id=ident)),
            "volume": lambda: vol(member).DeleteVolume(vpb.DeleteVolumeRequest(id=ident)),
            "network": lambda: net(member).DeleteNetwork(npb.DeleteNetworkRequest(id=ident)),
            "port": lambda: net(member).DeletePort(npb.DeletePortRequest(id=ident)),
            "group": lambda: net(member).DeleteSecurityGroup(npb.DeleteSecurityGroupRequest(id=ident)),
        }
        try:
            calls[kind]()
        except grpc.RpcError as exc:  # the twin won
            assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED), exc.details()

    work = [(delete_worker, (k, i)) for k, ids in doomed.items() for i in ids for _ in range(2)]
    work += [(create_worker, (100 + i,)) for i in range(4)]
    race(lambda fn, args: fn(*args), work)
    for ident in doomed["instance"]:
        wait_gone(member, ident)
    for ident in doomed["volume"]:
        wait_for(
            lambda ident=ident: (
                ident not in {v.id for v in vol(member).ListVolumes(vpb.ListVolumesRequest()).volumes}
            ),
            what="volume gone",
        )
    assert counted(member, project.id) == usage_from_rows(member)

    # And after everything is gone, every counter is back to zero.
    for i in compute(member).ListInstances(cpb.ListInstancesRequest(page_size=1000)).instances:
        compute(member).DeleteInstance(cpb.DeleteInstanceRequest(id=i.id))
        wait_gone(member, i.id)
    for v in vol(member).ListVolumes(vpb.ListVolumesRequest(page_size=1000)).volumes:
        vol(member).DeleteVolume(vpb.DeleteVolumeRequest(id=v.id))
    wait_for(lambda: not vol(member).ListVolumes(vpb.ListVolumesRequest()).volumes, what="volumes gone")
    for p in net(member).ListPorts(npb.ListPortsRequest(page_size=1000)).ports:
        net(member).DeletePort(npb.DeletePortRequest(id=p.id))
    for n in net(member).ListNetworks(npb.ListNetworksRequest(page_size=1000)).networks:
        net(member).DeleteNetwork(npb.DeleteNetworkRequest(id=n.id))
    for g in net(member).ListSecurityGroups(npb.ListSecurityGroupsRequest(page_size=1000)).security_groups:
        if g.name != "default":
            net(member).DeleteSecurityGroup(npb.DeleteSecurityGroupRequest(id=g.id))
    assert get_quota(member, project.id).usage == NOTHING


def test_racing_for_the_last_instance(cloud: dict) -> None:
    member, _, project = tenant(cloud, "last")
    set_quota(cloud["admin"], project.id, instances=3)
    won: list[str] = []

    def worker(i: int) -> None:
        inst = ignore_quota(
            lambda: compute(member).CreateInstance(
                cpb.CreateInstanceRequest(name=f"l{i}", image="qtiny", flavor="q.tiny")
            )
        )
        if inst is not None:
            won.append(inst.id)

    race(worker, [(i,) for i in range(8)])
    assert len(won) == 3
    q = get_quota(member, project.id)
    assert (q.usage.instances, q.usage.vcpus, q.usage.ram_mb) == (3, 3, 3 * 128)


def test_cli_quota_show_and_set(cloud: dict, tmp_path: Path) -> None:
    _, _, project = tenant(cloud, "cli")
    admin_env = {"KUMO_CONFIG_DIR": str(tmp_path / "admin")}
    assert cli_login(cloud["ctl"], tmp_path / "admin").returncode == 0
    out = run_cli(["quota", "set", project.name, "--instances", "20", "--ram-mb", "-1"], admin_env)
    assert out.returncode == 0, out.stderr
    out = run_cli(["quota", "show", project.name, "-f", "json"], admin_env)
    assert out.returncode == 0, out.stderr
    rows = {r["resource"]: r for r in json.loads(out.stdout)}
    assert rows["instances"]["limit"] == 20 and rows["ram_mb"]["limit"] == -1
    assert rows["floating_ips"]["used"] == 0
    out = run_cli(["quota", "show", project.name], admin_env)
    assert "unlimited" in out.stdout
    out = run_cli(["quota", "set", project.name, "--reset", "ram-mb", "-f", "json"], admin_env)
    assert out.returncode == 0, out.stderr
    rows = {r["resource"]: r for r in json.loads(out.stdout)}
    assert rows["ram_mb"]["limit"] == rows["ram_mb"]["default"] and rows["instances"]["limit"] == 20
    out = run_cli(["quota", "set", project.name, "--reset", "bogus"], admin_env)
    assert out.returncode != 0 and "bogus" in out.stderr
    # A member: their own project by default; setting is refused.
    member_dir = tmp_path / "member"
    assert cli_login(cloud["ctl"], member_dir, f"{project.name}-m", "password-123").returncode == 0
    member_env = {"KUMO_CONFIG_DIR": str(member_dir)}
    out = run_cli(["quota", "show", "-c", "limit", "-f", "value"], member_env)
    assert out.returncode == 0, out.stderr
    assert "20" in out.stdout.split()
    out = run_cli(["quota", "set", project.name, "--instances", "1"], member_env)
    assert out.returncode != 0 and "PERMISSION_DENIED" in (out.stderr + out.stdout).upper().replace(" ", "_")
    out = run_cli(["quota", "set", project.name, "--vcpus", "-5"], admin_env)
    assert out.returncode != 0 and "quota.limits.vcpus" in out.stderr


def test_a_project_with_its_own_limits_can_be_deleted(cloud: dict) -> None:
    admin = cloud["admin"]
    name = f"gone-{uuid.uuid4().hex[:6]}"
    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=name)))
    set_quota(admin, project.id, instances=5)
    admin.identity.DeleteProject(idpb.DeleteProjectRequest(id=project.id))  # its quota rows go with it
    err = rpc_error(get_quota, admin, project.id)
    assert code_reason(err) == (grpc.StatusCode.NOT_FOUND, "PROJECT_NOT_FOUND")
