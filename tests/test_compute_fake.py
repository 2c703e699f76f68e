"""Instances against a small fleet of real kumo-noded processes with the fake
hypervisor driver (the control plane for real; the guests simulated, since
this machine cannot run dozens of qemu guests): lifecycle, capacity claims
under racing creates, anti-affinity, quotas, and every RPC's bad input."""

from __future__ import annotations

import collections
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.procs import make_image
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc, image_pb2_grpc, node_pb2_grpc
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_pb2 as npb
from tests.cloudutil import fake_cloud
from tests.harness import Client, ControllerProc, error_reason, make_user, race, rpc_error
from tests.nodeutil import wait_for
from tests.test_images import qcow2_bytes
from tests.waits import instance_gone

UNKNOWN = "00000000-0000-4000-8000-000000000000"
NODES = 3  # each: 2 vCPUs (x4 ratio = 8), 4096 MiB (x1), 50 GiB


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
        "KUMO_QUOTA_INSTANCES": "1000",
        "KUMO_QUOTA_VCPUS": "1000",
        "KUMO_QUOTA_RAM_MB": "10000000",
    }
    with fake_cloud(tmp_path_factory.mktemp("fleet"), NODES, "fake", env) as c:
        image = c.public_image("tiny")
        flavor = c.flavor("m1.tiny", vcpus=1, ram_mb=1024)
        yield {"ctl": c.ctl, "admin": c.admin, "image": image, "flavor": flavor, "procs": c.procs}


def create_req(fleet: dict, name: str, **kw) -> pb.CreateInstanceRequest:  # type: ignore[no-untyped-def]
    return pb.CreateInstanceRequest(name=name, image=fleet["image"].id, flavor="m1.tiny", **kw)


def wait_state(client: Client, instance_id: str, state: int, timeout: float = 30) -> pb.Instance:
    return wait_for(
        lambda: (
            (i := compute(client).GetInstance(pb.GetInstanceRequest(id=instance_id))).state == state and i
        ),
        timeout=timeout,
        what=f"instance in {pb.InstanceState.Name(state)}",
    )


def wait_gone(client: Client, instance_id: str, timeout: float = 30) -> None:
    """Fake nodes: a fixed budget (no guest to boot or stop)."""
    wait_for(lambda: instance_gone(client, instance_id), timeout=timeout, what="instance deleted")


def delete_all(client: Client) -> None:
    c = compute(client)
    for inst in c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances:
        c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    for inst in c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances:
        wait_gone(client, inst.id)


def test_lifecycle_on_a_fake_node(fleet: dict) -> None:
    admin = fleet["admin"]
    c = compute(admin)
    inst = c.CreateInstance(create_req(fleet, "life", user_data=b"#!/bin/sh\necho hi\n"))
    assert inst.state == pb.INSTANCE_STATE_BUILDING and inst.node_id
    assert (inst.vcpus, inst.ram_mb, inst.disk_gb) == (1, 1024, 1)
    active = wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    assert active.launch_time.seconds > 0
    assert (
        rpc_error(c.StartInstance, pb.StartInstanceRequest(id=inst.id)).code()
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    c.StopInstance(pb.StopInstanceRequest(id=inst.id))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_STOPPED)
    err = rpc_error(c.StopInstance, pb.StopInstanceRequest(id=inst.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "stopped" in err.details()
    assert (
        rpc_error(c.RebootInstance, pb.RebootInstanceRequest(id=inst.id)).code()
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    c.StartInstance(pb.StartInstanceRequest(id=inst.id))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    rebooting = c.RebootInstance(pb.RebootInstanceRequest(id=inst.id, type=pb.REBOOT_TYPE_HARD))
    assert rebooting.state == pb.INSTANCE_STATE_REBOOTING
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    # A retried create with the same request_id makes nothing new.
    first = c.CreateInstance(create_req(fleet, "idem", request_id="r-1"))
    again = c.CreateInstance(create_req(fleet, "idem", request_id="r-1"))
    assert first.id == again.id
    dup = rpc_error(c.CreateInstance, create_req(fleet, "idem"))
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    deleting = c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    assert deleting.state == pb.INSTANCE_STATE_DELETING
    wait_gone(admin, inst.id)
    delete_all(admin)


def test_request_id_on_instance_creates_and_snapshots(fleet: dict) -> None:
    """A request_id reused with another payload is refused; identical racing
    creates make one instance (one image); a retried snapshot returns the first
    image, and a snapshot that loses the race leaves no image behind."""
    admin = fleet["admin"]
    c = compute(admin)
    own = c.CreateInstance(create_req(fleet, "rid-a", request_id="rid-inst"))
    err = rpc_error(c.CreateInstance, create_req(fleet, "rid-b", request_id="rid-inst"))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")

    def raced(call: Callable[[], str]) -> list[str]:
        made: list[str] = []
        lock = threading.Lock()

        def one() -> None:
            out = call()
            with lock:
                made.append(out)

        race(one, [()] * 4)
        assert len(made) == 4, "a racing create failed"
        return made

    ids = raced(lambda: c.CreateInstance(create_req(fleet, "rid-race", request_id="rid-race")).id)
    assert len(set(ids)) == 1
    names = [i.name for i in c.ListInstances(pb.ListInstancesRequest(page_size=1000)).instances]
    assert names.count("rid-race") == 1

    def snapshot(instance_id: str, name: str, rid: str) -> str:
        req = pb.CreateInstanceSnapshotRequest(id=instance_id, name=name, request_id=rid)
        return c.CreateInstanceSnapshot(req).image_id

    def images_named(name: str) -> int:
        return len(admin.images.ListImages(ipb.ListImagesRequest(name=name, page_size=1000)).images)

    wait_state(admin, own.id, pb.INSTANCE_STATE_ACTIVE)
    first = snapshot(own.id, "rid-snap", "rid-snap")
    assert snapshot(own.id, "rid-snap", "rid-snap") == first  # the instance is busy now: still the answer
    reused = rpc_error(snapshot, own.id, "rid-snap-2", "rid-snap")
    assert (reused.code(), error_reason(reused)) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert images_named("rid-snap") == 1 and images_named("rid-snap-2") == 0
    wait_state(admin, ids[0], pb.INSTANCE_STATE_ACTIVE)
    images = raced(lambda: snapshot(ids[0], "rid-snap-race", "rid-snap-race"))
    assert len(set(images)) == 1 and images_named("rid-snap-race") == 1
    delete_all(admin)


def test_a_snapshot_on_a_fake_node_becomes_an_active_image(fleet: dict) -> None:
    """The fake driver exports a small qcow2, so snapshots go the whole way
    (their failures: tests/test_instance_sync.py)."""
    admin = fleet["admin"]
    c = compute(admin)
    inst = c.CreateInstance(create_req(fleet, "snapper"))
    wait_state(admin, inst.id, pb.INSTANCE_STATE_ACTIVE)
    image_id = c.CreateInstanceSnapshot(pb.CreateInstanceSnapshotRequest(id=inst.id, name="snapped")).image_id
    images = admin.stub(image_pb2_grpc.ImageServiceStub)
    image = wait_for(
        lambda: (
            (i := images.GetImage(ipb.GetImageRequest(id=image_id))).status == ipb.IMAGE_STATUS_ACTIVE and i
        ),
        timeout=60,
        what="snapshot image ACTIVE",
    )
    assert image.properties["source_instance_id"] == inst.id and image.size_bytes > 0
    done = wait_for(
        lambda: not (i := c.GetInstance(pb.GetInstanceRequest(id=inst.id))).task and i,
        what="snapshot task cleared",
    )
    assert done.fault == "" and done.state == pb.INSTANCE_STATE_ACTIVE
    c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    wait_gone(admin, inst.id)
    images.DeleteImage(ipb.DeleteImageRequest(id=image_id))


def test_racing_creates_never_overcommit(fleet: dict) -> None:
    admin = fleet["admin"]
    capacity = NODES * 4  # RAM bound: 4096 MiB / 1024 MiB per node
    clients = [fleet["ctl"].login() for _ in range(6)]
    results: list[grpc.StatusCode] = []
    messages: list[str] = []
    lock = threading.Lock()

    def worker(k: int, client: Client) -> None:
        for j in range(capacity * 3 // len(clients)):
            try:
                compute(client).CreateInstance(create_req(fleet, f"race-{k}-{j}"))
                outcome = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                outcome = exc.code()
                with lock:
                    messages.append(exc.details())
            with lock:
                results.append(outcome)

    race(worker, enumerate(clients))
    assert len(results) == capacity * 3
    assert results.count(grpc.StatusCode.OK) == capacity, collections.Counter(results)
    assert results.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == capacity * 2
    assert any("RamFilter rejected 3" in m for m in messages), messages[:3]
    per_node = collections.Counter(
        i.node_id for i in compute(admin).ListInstances(pb.ListInstancesRequest(page_size=1000)).instances
    )
    assert sorted(per_node.values()) == [4, 4, 4], per_node
    delete_all(admin)


def test_anti_affinity_spreads_and_fails_cleanly(fleet: dict) -> None:
    admin = fleet["admin"]
    c = compute(admin)
    group = c.CreateServerGroup(
        pb.CreateServerGroupRequest(
            server_group=pb.ServerGroup(name="apart", policy=pb.SERVER_GROUP_POLICY_ANTI_AFFINITY)
        )
    )
    made = [c.CreateInstance(create_req(fleet, f"apart-{i}", server_group_id=group.id)) for i in range(NODES)]
    assert len({m.node_id for m in made}) == NODES
    err = rpc_error(c.CreateInstance, create_req(fleet, "apart-x", server_group_id=group.id))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"AntiAffinityFilter rejected {NODES}" in err.details()
    assert sorted(c.GetServerGroup(pb.GetServerGroupRequest(id=group.id)).member_ids) == sorted(
        m.id for m in made
    )
    busy = rpc_error(c.DeleteServerGroup, pb.DeleteServerGroupRequest(id=group.id))
    assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION
    affinity = c.CreateServerGroup(
        pb.CreateServerGroupRequest(
            server_group=pb.ServerGroup(name="together", policy=pb.SERVER_GROUP_POLICY_AFFINITY)
        )
    )
    a = [c.CreateInstance(create_req(fleet, f"tog-{i}", server_group_id=affinity.id)) for i in range(2)]
    assert a[0].node_id == a[1].node_id
    delete_all(admin)
    c.DeleteServerGroup(pb.DeleteServerGroupRequest(id=group.id))


def test_quota_and_tenancy(fleet: dict, tmp_path: Path) -> None:
    admin, ctl = fleet["admin"], fleet["ctl"]
    pa = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="cq-a")))
    pb_ = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="cq-b")))
    make_user(admin, pa.id, "cq-alice", idpb.ROLE_MEMBER)
    make_user(admin, pa.id, "cq-reader", idpb.ROLE_READER)
    make_user(admin, pb_.id, "cq-bob", idpb.ROLE_MEMBER)
    alice, reader, bob = (ctl.login(u, "password-123") for u in ("cq-alice", "cq-reader", "cq-bob"))
    mine = compute(alice).CreateInstance(create_req(fleet, "mine"))
    for fn, req in [
        (compute(bob).GetInstance, pb.GetInstanceRequest(id=mine.id)),
        (compute(bob).DeleteInstance, pb.DeleteInstanceRequest(id=mine.id)),
        (compute(bob).StopInstance, pb.StopInstanceRequest(id=mine.id)),
        (compute(bob).GetConsoleOutput, pb.GetConsoleOutputRequest(id=mine.id)),
        (compute(bob).CreateInstanceSnapshot, pb.CreateInstanceSnapshotRequest(id=mine.id, name="steal")),
    ]:
        assert rpc_error(fn, req).code() == grpc.StatusCode.NOT_FOUND, type(req).__name__
    assert compute(bob).ListInstances(pb.ListInstancesRequest()).instances == []
    assert [i.id for i in compute(reader).ListInstances(pb.ListInstancesRequest()).instances] == [mine.id]
    for fn, req in [
        (compute(reader).CreateInstance, create_req(fleet, "r")),
        (compute(reader).DeleteInstance, pb.DeleteInstanceRequest(id=mine.id)),
        (compute(reader).RebootInstance, pb.RebootInstanceRequest(id=mine.id)),
    ]:
        assert rpc_error(fn, req).code() == grpc.StatusCode.PERMISSION_DENIED
    # Project B's keypair and server group are not A's to use.
    kp = compute(bob).CreateKeypair(pb.CreateKeypairRequest(keypair=pb.Keypair(name="bk")))
    grp = compute(bob).CreateServerGroup(
        pb.CreateServerGroupRequest(
            server_group=pb.ServerGroup(name="bg", policy=pb.SERVER_GROUP_POLICY_AFFINITY)
        )
    )
    assert (
        rpc_error(compute(alice).CreateInstance, create_req(fleet, "x1", keypair=kp.id)).code()
        == grpc.StatusCode.NOT_FOUND
    )
    assert rpc_error(
        compute(alice).CreateInstance, create_req(fleet, "x2", server_group_id=grp.id)
    ).code() == (grpc.StatusCode.NOT_FOUND)
    compute(alice).DeleteInstance(pb.DeleteInstanceRequest(id=mine.id))
    wait_gone(alice, mine.id)


def test_a_create_uses_only_images_and_flavors_its_project_may(fleet: dict, tmp_path: Path) -> None:
    """Another project's private image and a private flavor not shared with
    the caller's project are NOT_FOUND by id and by name, as missing ones are,
    and so is a deleted image; an image not ACTIVE yet is refused; the owning
    (sharing) project creates from them, and the answer has no NICs or
    volumes, since the create asked for none."""
    admin, ctl = fleet["admin"], fleet["ctl"]
    pa = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="cl-a")))
    pb_ = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="cl-b")))
    make_user(admin, pa.id, "cl-alice", idpb.ROLE_MEMBER)
    make_user(admin, pb_.id, "cl-bob", idpb.ROLE_MEMBER)
    alice, bob = (ctl.login(u, "password-123") for u in ("cl-alice", "cl-bob"))
    data = qcow2_bytes(tmp_path, "cl.qcow2", size="64M")
    image = make_image(bob, "cl-bobs", data, ipb.DISK_FORMAT_QCOW2)
    assert image.visibility == ipb.IMAGE_VISIBILITY_PRIVATE
    flavor = compute(admin).CreateFlavor(
        pb.CreateFlavorRequest(
            flavor=pb.Flavor(
                name="cl.bobs", vcpus=1, ram_mb=512, disk_gb=1, is_public=False, project_ids=[pb_.id]
            )
        )
    )
    missing = grpc.StatusCode.NOT_FOUND
    for image_ref, flavor_ref in [
        (image.id, "m1.tiny"),
        ("cl-bobs", "m1.tiny"),
        (fleet["image"].id, flavor.id),
        (fleet["image"].id, "cl.bobs"),
    ]:
        req = pb.CreateInstanceRequest(name="cl-x", image=image_ref, flavor=flavor_ref)
        assert rpc_error(compute(alice).CreateInstance, req).code() == missing, (image_ref, flavor_ref)
    made = [
        compute(bob).CreateInstance(pb.CreateInstanceRequest(name=f"cl-{i}", image=i_ref, flavor=f_ref))
        for i, (i_ref, f_ref) in enumerate([(image.id, flavor.id), ("cl-bobs", "cl.bobs")])
    ]
    for inst in made:
        assert (inst.image_id, inst.flavor_id, inst.vcpus, inst.ram_mb, inst.disk_gb) == (
            image.id,
            flavor.id,
            1,
            512,
            1,
        )
        assert (list(inst.nics), list(inst.volume_ids), inst.boot_volume_id) == ([], [], "")
        assert inst.state == pb.INSTANCE_STATE_BUILDING and inst.node_id
    queued = bob.images.CreateImage(
        ipb.CreateImageRequest(image=ipb.Image(name="cl-queued", disk_format=ipb.DISK_FORMAT_QCOW2))
    )
    err = rpc_error(
        compute(bob).CreateInstance, pb.CreateInstanceRequest(name="cl-q", image=queued.id, flavor=flavor.id)
    )
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_NOT_ACTIVE")
    gone = make_image(bob, "cl-gone", data, ipb.DISK_FORMAT_QCOW2)
    bob.images.DeleteImage(ipb.DeleteImageRequest(id=gone.id))
    err = rpc_error(
        compute(bob).CreateInstance, pb.CreateInstanceRequest(name="cl-g", image=gone.id, flavor=flavor.id)
    )
    assert err.code() == missing
    for inst in made:
        compute(bob).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    for inst in made:
        wait_gone(bob, inst.id)


def test_bad_input_and_missing_things(fleet: dict) -> None:
    admin = fleet["admin"]
    c = compute(admin)
    invalid, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    cases = [
        (create_req(fleet, ""), invalid),
        (create_req(fleet, "bad name!"), invalid),
        (create_req(fleet, "x" * 10_000), invalid),
        (pb.CreateInstanceRequest(name="noimg", flavor="m1.tiny"), invalid),
        (pb.CreateInstanceRequest(name="noflv", image=fleet["image"].id), invalid),
        (create_req(fleet, "big-ud", user_data=b"x" * 100_000), invalid),
        (create_req(fleet, "badgrp", server_group_id="nope"), invalid),
        (pb.CreateInstanceRequest(name="i1", image=UNKNOWN, flavor="m1.tiny"), missing),
        (pb.CreateInstanceRequest(name="i2", image="no-such-image", flavor="m1.tiny"), missing),
        (pb.CreateInstanceRequest(name="i3", image=fleet["image"].id, flavor="no-such-flavor"), missing),
        (create_req(fleet, "i4", keypair="no-such-key"), missing),
        (create_req(fleet, "i5", server_group_id=UNKNOWN), missing),
    ]
    for req, code in cases:
        assert rpc_error(c.CreateInstance, req).code() == code, req
    for fn, req in [
        (c.GetInstance, pb.GetInstanceRequest(id="nope")),
        (c.ListInstances, pb.ListInstancesRequest(page_size=-1)),
        (c.ListInstances, pb.ListInstancesRequest(state=99)),
        (c.RebootInstance, pb.RebootInstanceRequest(id=UNKNOWN, type=7)),
        (c.GetConsoleOutput, pb.GetConsoleOutputRequest(id=UNKNOWN, tail_lines=-1)),
        (c.CreateInstanceSnapshot, pb.CreateInstanceSnapshotRequest(id=UNKNOWN, name="bad name!")),
    ]:
        assert rpc_error(fn, req).code() == invalid, req
    for fn, req in [
        (c.GetInstance, pb.GetInstanceRequest(id=UNKNOWN)),
        (c.DeleteInstance, pb.DeleteInstanceRequest(id=UNKNOWN)),
        (c.StartInstance, pb.StartInstanceRequest(id=UNKNOWN)),
        (c.StopInstance, pb.StopInstanceRequest(id=UNKNOWN)),
        (c.RebootInstance, pb.RebootInstanceRequest(id=UNKNOWN)),
        (c.GetConsoleOutput, pb.GetConsoleOutputRequest(id=UNKNOWN)),
        (c.CreateInstanceSnapshot, pb.CreateInstanceSnapshotRequest(id=UNKNOWN, name="snap")),
    ]:
        assert rpc_error(fn, req).code() == missing, req
    # A flavor smaller than the image needs.
    big = compute(admin).CreateFlavor(
        pb.CreateFlavorRequest(
            flavor=pb.Flavor(name="m1.huge", vcpus=64, ram_mb=1024, disk_gb=1, is_public=True)
        )
    )
    err = rpc_error(
        c.CreateInstance, pb.CreateInstanceRequest(name="huge", image=fleet["image"].id, flavor=big.id)
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "VcpuFilter rejected" in err.details()


def test_quota_exceeded_says_which(tmp_path: Path) -> None:
    """Quotas are checked before scheduling, so a controller with no nodes shows them."""
    data = tmp_path / "q"
    data.mkdir()
    ctl = ControllerProc(data, extra_env={"KUMO_QUOTA_VCPUS": "0"}).start()
    try:
        admin = ctl.login()
        image_file = tmp_path / "q.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-f", "qcow2", str(image_file), "16M"], check=True, capture_output=True
        )
        image = make_image(admin, "q", image_file.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        compute(admin).CreateFlavor(
            pb.CreateFlavorRequest(
                flavor=pb.Flavor(name="m1.q", vcpus=1, ram_mb=128, disk_gb=1, is_public=True)
            )
        )
        err = rpc_error(
            compute(admin).CreateInstance, pb.CreateInstanceRequest(name="q", image=image.id, flavor="m1.q")
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "quota exceeded for vCPUs" in err.details()
    finally:
        ctl.stop()
    # With quota but no nodes: no valid host, and it says there are none.
    data2 = tmp_path / "q2"
    data2.mkdir()
    ctl = ControllerProc(data2).start()
    try:
        admin = ctl.login()
        image = make_image(admin, "q", image_file.read_bytes(), ipb.DISK_FORMAT_QCOW2)
        compute(admin).CreateFlavor(
            pb.CreateFlavorRequest(
                flavor=pb.Flavor(name="m1.q", vcpus=1, ram_mb=128, disk_gb=1, is_public=True)
            )
        )
        err = rpc_error(
            compute(admin).CreateInstance, pb.CreateInstanceRequest(name="q", image=image.id, flavor="m1.q")
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "there are no nodes" in err.details()
    finally:
        ctl.stop()


def test_server_cli(fleet: dict, tmp_path: Path) -> None:
    import json

    from tests.harness import cli_login, run_cli

    ctl = fleet["ctl"]
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    login = cli_login(ctl, tmp_path / "cfg")
    assert login.returncode == 0, login.stderr

    def kumo(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = run_cli(list(args), env)
        assert (result.returncode == 0) == ok, f"kumo {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    made = kumo(
        "server", "create", "cli-vm", "--image", "tiny", "--flavor", "m1.tiny", "--wait", "-o", "json"
    )
    assert json.loads(made.stdout)["state"] == "active"
    assert "cli-vm: building" in made.stderr and "cli-vm: active" in made.stderr
    assert "cli-vm" in kumo("server", "list").stdout
    assert json.loads(kumo("server", "show", "cli-vm", "-o", "json").stdout)["name"] == "cli-vm"
    stopped = kumo("server", "stop", "cli-vm", "--wait", "-o", "json")
    assert json.loads(stopped.stdout)["state"] == "stopped"
    again = kumo("server", "stop", "cli-vm", ok=False)
    assert "stopped" in again.stderr and "FAILED_PRECONDITION" in again.stderr
    assert json.loads(kumo("server", "start", "cli-vm", "--wait", "-o", "json").stdout)["state"] == "active"
    kumo("server", "reboot", "cli-vm", "--hard", "--wait")
    kumo("server", "console", "cli-vm")
    missing = kumo("server", "create", "x", "--image", "no-such", "--flavor", "m1.tiny", ok=False)
    assert "image 'no-such' not found" in missing.stderr
    assert "deleted server cli-vm" in kumo("server", "delete", "cli-vm", "--wait").stdout
    assert "not found" in kumo("server", "show", "cli-vm", ok=False).stderr


def test_list_by_node_and_project(fleet: dict, tmp_path: Path) -> None:
    """ListInstances' node_id and project_id filters: admins across projects;
    a member asking for another project sees nothing of it (lists show what
    the caller may see); bad ids are INVALID_ARGUMENT naming the field."""
    import json

    from tests.harness import cli_login, run_cli

    admin, ctl = fleet["admin"], fleet["ctl"]
    pa = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="lf-a")))
    pb_ = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="lf-b")))
    make_user(admin, pa.id, "lf-alice", idpb.ROLE_MEMBER)
    make_user(admin, pb_.id, "lf-bob", idpb.ROLE_MEMBER)
    alice, bob = ctl.login("lf-alice", "password-123"), ctl.login("lf-bob", "password-123")
    a1 = wait_state(
        alice, compute(alice).CreateInstance(create_req(fleet, "lf-a1")).id, pb.INSTANCE_STATE_ACTIVE
    )
    b1 = wait_state(bob, compute(bob).CreateInstance(create_req(fleet, "lf-b1")).id, pb.INSTANCE_STATE_ACTIVE)

    def ids(client: Client, **kw: str) -> set[str]:
        return {
            i.id
            for i in compute(client).ListInstances(pb.ListInstancesRequest(page_size=1000, **kw)).instances
        }

    assert ids(admin, project_id=pa.id) == {a1.id}
    assert ids(admin, project_id=pb_.id) == {b1.id}
    assert a1.id in ids(admin, node_id=a1.node_id)
    assert all(
        i.node_id == a1.node_id
        for i in compute(admin)
        .ListInstances(pb.ListInstancesRequest(page_size=1000, node_id=a1.node_id))
        .instances
    )
    assert ids(admin, project_id=pb_.id, node_id=b1.node_id) == {b1.id}
    others = {n for n in fleet_node_ids(fleet) if n != b1.node_id}
    assert all(ids(admin, project_id=pb_.id, node_id=n) == set() for n in others)
    # A member: their own project filters as usual; another project's lists nothing.
    assert ids(alice, project_id=pa.id) == {a1.id}
    assert ids(alice, project_id=pb_.id) == set()
    assert ids(alice, node_id=b1.node_id) <= {a1.id}  # never Bob's, whatever the node
    assert ids(bob, node_id=b1.node_id) == {b1.id}
    for field in ("project_id", "node_id"):
        err = rpc_error(compute(alice).ListInstances, pb.ListInstancesRequest(**{field: "not-a-uuid"}))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.details()

    # The CLI: --node by name (admin), --project by name.
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    assert cli_login(ctl, tmp_path / "cfg").returncode == 0
    node_name = admin.stub(node_pb2_grpc.NodeServiceStub).GetNode(npb.GetNodeRequest(id=b1.node_id)).name
    out = run_cli(["server", "list", "--node", node_name, "--project", "lf-b", "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    assert [s["id"] for s in json.loads(out.stdout)] == [b1.id]
    out = run_cli(["server", "list", "--project", "lf-a", "-f", "value", "-c", "name"], env)
    assert out.returncode == 0 and out.stdout.split() == ["lf-a1"], out.stderr
    for client, inst in ((alice, a1), (bob, b1)):
        compute(client).DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
        wait_gone(client, inst.id)


def fleet_node_ids(fleet: dict) -> list[str]:
    return [
        n.id
        for n in fleet["admin"].stub(node_pb2_grpc.NodeServiceStub).ListNodes(npb.ListNodesRequest()).nodes
    ]
