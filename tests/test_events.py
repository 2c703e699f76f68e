"""The event log against a real controller and real kumo-noded processes with
the fake hypervisor driver (the guests simulated; the control plane, its
SQLite file and every event real): a server's whole lifecycle in order, the
API calls and the changes the controller made by itself, failures with their
reasons (a refused call, a quota refusal, a snapshot the node failed, a node
lost), per-project visibility, ListEvents' bad input, the CLI; and, on a real
SQLite file in this process, the retention prune and an event that cannot be
written."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from controller import clock
from controller.auth.principal import Principal, Role
from controller.db import events as event_store
from controller.db import migrations
from controller.db.database import db, open_database
from controller.db.events import EventQuery
from controller.domain.events import OK, Cause, EventLog, Outcome
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import event_pb2 as pb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import fake_cloud
from tests.harness import Client, error_reason, rpc_error, run_cli, two_tenants
from tests.nodeutil import wait_for

QUOTA = 3  # instances per project


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    env = {
        "KUMO_NODE_HEARTBEAT_SECONDS": "1",
        "KUMO_NODE_GRACE_SECONDS": "6",
        "KUMO_INSTANCE_SYNC_SECONDS": "0.3",
        "KUMO_QUOTA_INSTANCES": str(QUOTA),
    }
    # Snapshots fail on these nodes: a failure the controller records with the node's reason.
    with fake_cloud(
        tmp_path_factory.mktemp("events"), 2, "ev", env, node_args=["--fake-fail-snapshots"]
    ) as c:
        c.public_image("ev-tiny")
        c.flavor("ev.tiny", vcpus=1, ram_mb=256)
        tenants = two_tenants(c.ctl, c.admin, "ev")
        yield {"c": c, **tenants}


def events(client: Client, **filters) -> list[pb.Event]:  # type: ignore[no-untyped-def]
    out: list[pb.Event] = []
    req = pb.ListEventsRequest(page_size=3, **filters)  # small pages: paging is exercised
    while True:
        resp = client.events.ListEvents(req)
        out.extend(resp.events)
        if not resp.next_page_token:
            return out
        req.page_token = resp.next_page_token


def server_events(client: Client, instance_id: str) -> list[pb.Event]:
    return events(client, resource_type="instance", resource_id=instance_id)


def wait_state(client: Client, instance_id: str, state: int) -> cpb.Instance:
    return wait_for(
        lambda: (
            (i := client.compute.GetInstance(cpb.GetInstanceRequest(id=instance_id))).state == state and i
        ),
        timeout=60,
        what=f"instance in {cpb.InstanceState.Name(state)}",
    )


def wait_action(client: Client, instance_id: str, action: str) -> list[pb.Event]:
    return wait_for(
        lambda: (got := server_events(client, instance_id)) and any(e.action == action for e in got) and got,
        timeout=60,
        what=f"a {action!r} event",
    )


def create(client: Client, name: str, **kw) -> cpb.Instance:  # type: ignore[no-untyped-def]
    return client.compute.CreateInstance(
        cpb.CreateInstanceRequest(name=name, image="ev-tiny", flavor="ev.tiny", **kw)
    )


def test_a_server_lifecycle_in_order(cloud: dict) -> None:
    alice: Client = cloud["alice"]
    c = alice.compute
    inst = create(alice, "life", request_id="ev-life-1")
    wait_state(alice, inst.id, cpb.INSTANCE_STATE_ACTIVE)
    c.StopInstance(cpb.StopInstanceRequest(id=inst.id))
    wait_state(alice, inst.id, cpb.INSTANCE_STATE_STOPPED)
    refused = rpc_error(c.StopInstance, cpb.StopInstanceRequest(id=inst.id))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    c.StartInstance(cpb.StartInstanceRequest(id=inst.id))
    wait_state(alice, inst.id, cpb.INSTANCE_STATE_ACTIVE)
    c.RebootInstance(cpb.RebootInstanceRequest(id=inst.id))
    wait_state(alice, inst.id, cpb.INSTANCE_STATE_ACTIVE)
    c.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    got = wait_action(alice, inst.id, "deleted")

    steps = [(e.action, e.method.rsplit("/", 1)[-1]) for e in got]
    assert steps == [
        ("schedule", ""),  # in the create's transaction
        ("create", "CreateInstance"),  # the call, once it answered
        ("active", ""),
        ("stop", "StopInstance"),
        ("stopped", ""),
        ("stop", "StopInstance"),  # refused: it was stopped
        ("start", "StartInstance"),
        ("active", ""),
        ("reboot", "RebootInstance"),
        ("rebooted", ""),
        ("delete", "DeleteInstance"),
        ("deleted", ""),
    ], steps
    times = [e.event_time.ToNanoseconds() for e in got]
    assert times == sorted(times)
    project = cloud["a"].id
    assert all(e.project_id == project and e.resource_type == "instance" for e in got)
    by_call = [e for e in got if e.method]
    assert all(e.user_name == "ev-alice" and e.user_id for e in by_call)
    observed = [e for e in got[2:] if not e.method]
    assert observed and all(not e.user_id for e in observed), "what the controller saw names no caller"
    schedule, create_call = got[0], got[1]
    assert schedule.request_id == create_call.request_id == "ev-life-1"
    assert schedule.user_name == "ev-alice"
    assert inst.node_id in schedule.message
    stop_refused = got[5]
    assert stop_refused.result == pb.EVENT_RESULT_ERROR
    assert (stop_refused.error_code, stop_refused.error_reason) == (
        "FAILED_PRECONDITION",
        "INSTANCE_WRONG_STATE",
    )
    assert "stopped" in stop_refused.message
    assert all(e.result == pb.EVENT_RESULT_OK for i, e in enumerate(got) if i != 5)
    # Filters: one action; a time range that ends before the instance existed.
    starts = events(alice, resource_id=inst.id, action="start")
    assert [e.method.rsplit("/", 1)[-1] for e in starts] == ["StartInstance"]
    before = timestamp_pb2.Timestamp(seconds=schedule.event_time.seconds - 1)
    assert events(alice, resource_id=inst.id, end_time=before) == []
    assert len(events(alice, resource_id=inst.id, start_time=got[4].event_time)) == len(got) - 4


def test_quota_refusal_is_recorded_with_its_reason(cloud: dict) -> None:
    bob: Client = cloud["bob"]
    made = [create(bob, f"q{i}") for i in range(QUOTA)]
    err = rpc_error(create, bob, "q-over", request_id="ev-over")
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    refused = [e for e in events(bob, action="create") if e.request_id == "ev-over"]
    assert len(refused) == 1
    e = refused[0]
    assert (e.result, e.error_code, e.error_reason) == (
        pb.EVENT_RESULT_ERROR,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
    )
    assert e.resource_type == "instance" and e.project_id == cloud["b"].id and "quota" in e.message
    for inst in made:
        bob.compute.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    for inst in made:
        wait_action(bob, inst.id, "deleted")


def test_a_failed_snapshot_is_recorded_with_the_nodes_reason(cloud: dict) -> None:
    alice: Client = cloud["alice"]
    inst = create(alice, "snap")
    wait_state(alice, inst.id, cpb.INSTANCE_STATE_ACTIVE)
    alice.compute.CreateInstanceSnapshot(cpb.CreateInstanceSnapshotRequest(id=inst.id, name="snap-img"))
    got = wait_action(alice, inst.id, "snapshot")
    failed = next(e for e in got if e.action == "snapshot")
    assert (failed.result, failed.error_reason) == (pb.EVENT_RESULT_ERROR, "SNAPSHOT_FAILED")
    assert "fails snapshots" in failed.message
    assert [e.action for e in got].index("create") < [e.action for e in got].index("snapshot")
    alice.compute.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    wait_action(alice, inst.id, "deleted")


def test_a_volume_lifecycle_from_the_volume_sync(cloud: dict) -> None:
    alice: Client = cloud["alice"]
    vol = alice.volumes.CreateVolume(vpb.CreateVolumeRequest(volume=vpb.Volume(name="ev-vol", size_gb=1)))

    def volume_actions() -> list[str]:
        return [e.action for e in events(alice, resource_type="volume", resource_id=vol.id)]

    wait_for(lambda: "available" in volume_actions(), timeout=60, what="a volume available event")
    alice.volumes.DeleteVolume(vpb.DeleteVolumeRequest(id=vol.id))
    wait_for(lambda: "deleted" in volume_actions(), timeout=60, what="a volume deleted event")
    assert volume_actions() == ["create", "available", "delete", "deleted"]


def test_visibility_members_see_their_project_admins_all(cloud: dict) -> None:
    alice, bob, reader, admin = cloud["alice"], cloud["bob"], cloud["reader"], cloud["c"].admin
    inst = create(alice, "seen")
    wait_action(alice, inst.id, "schedule")
    # Bob (another project) sees nothing of it: the same as an id nobody has.
    assert server_events(bob, inst.id) == []
    assert server_events(bob, "00000000-0000-4000-8000-000000000000") == []
    assert events(bob, project_id=cloud["a"].id) == []
    assert all(e.project_id == cloud["b"].id for e in events(bob))
    # A reader of the project lists its events; the admin sees them too, and every project's.
    assert [e.id for e in server_events(reader, inst.id)] == [e.id for e in server_events(alice, inst.id)]
    assert server_events(admin, inst.id)
    projects = {e.project_id for e in events(admin)}
    assert {cloud["a"].id, cloud["b"].id} <= projects
    assert len(events(admin, project_id=cloud["b"].id)) == len(events(bob))
    # The node events are the cloud's: admins only.
    assert events(alice, resource_type="node") == []
    alice.compute.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    wait_action(alice, inst.id, "deleted")


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"resource_type": "Not A Type"}, "resource_type"),
        ({"action": "x" * 65}, "action"),
        ({"action": "bad\x01"}, "action"),
        ({"project_id": "not-a-uuid"}, "project_id"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "garbage"}, "page_token"),
        ({"start_time": timestamp_pb2.Timestamp(seconds=10**12)}, "start_time"),
        ({"end_time": timestamp_pb2.Timestamp(seconds=1, nanos=-1)}, "end_time"),
    ],
)
def test_list_events_bad_input(cloud: dict, filters: dict, field: str) -> None:
    err = rpc_error(cloud["reader"].events.ListEvents, pb.ListEventsRequest(**filters))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.details(), err.details()


def test_list_events_bad_time_range(cloud: dict) -> None:
    req = pb.ListEventsRequest(
        start_time=timestamp_pb2.Timestamp(seconds=2000), end_time=timestamp_pb2.Timestamp(seconds=1000)
    )
    err = rpc_error(cloud["alice"].events.ListEvents, req)
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "TIME_RANGE_INVALID")
    assert "end_time" in err.details()


def test_list_events_needs_a_token(cloud: dict) -> None:
    anonymous = Client(cloud["c"].ctl.channel(), endpoint=cloud["c"].ctl.endpoint)
    err = rpc_error(anonymous.events.ListEvents, pb.ListEventsRequest())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_reads_are_not_events(cloud: dict) -> None:
    reader: Client = cloud["reader"]
    before = len(events(cloud["c"].admin))
    reader.compute.ListInstances(cpb.ListInstancesRequest())
    reader.events.ListEvents(pb.ListEventsRequest())
    assert len(events(cloud["c"].admin)) == before


def test_cli_event_list_and_server_event_list(cloud: dict) -> None:
    c = cloud["c"]
    alice: Client = cloud["alice"]
    inst = create(alice, "cli-ev")
    wait_action(alice, inst.id, "active")
    env = {"KUMO_ENDPOINT": c.ctl.endpoint, "KUMO_CA_FILE": c.ctl.ca_file, "KUMO_TOKEN": alice.token}
    out = run_cli(["server", "event", "list", "cli-ev", "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["action"] for r in rows][:3] == ["schedule", "create", "active"]
    assert all(r["resource_id"] == inst.id for r in rows)
    out = run_cli(
        ["event", "list", "--resource", f"instance/{inst.id}", "--action", "create", "-o", "json"], env
    )
    assert out.returncode == 0, out.stderr
    assert [r["action"] for r in json.loads(out.stdout)] == ["create"]
    out = run_cli(
        ["event", "list", "--resource", "instance", "--since", "1d", "--until", "2999-01-01T00:00:00Z"], env
    )
    assert out.returncode == 0 and inst.id in out.stdout, out.stderr
    assert run_cli(["event", "list", "--since", "yesterday"], env).returncode != 0
    # Another project's server is as missing as one that does not exist.
    bob_env = {**env, "KUMO_TOKEN": cloud["bob"].token}
    missing = run_cli(["server", "event", "list", inst.id], bob_env)
    nobody = run_cli(["server", "event", "list", "00000000-0000-4000-8000-000000000000"], bob_env)
    assert missing.returncode == nobody.returncode != 0
    assert "not found" in missing.stderr.lower()
    alice.compute.DeleteInstance(cpb.DeleteInstanceRequest(id=inst.id))
    wait_action(alice, inst.id, "deleted")


def test_a_lost_node_is_recorded(cloud: dict) -> None:
    """Last: it stops a node for good."""
    c = cloud["c"]
    node_id = next(iter(c.node_states))
    proc = next(p for p in c.procs if p.state_dir == c.node_states[node_id])
    proc.stop(signal.SIGKILL)
    lost = wait_for(
        lambda: (got := events(c.admin, resource_type="node", resource_id=node_id, action="down")) and got,
        timeout=90,
        what="a node down event",
    )
    assert (lost[0].result, lost[0].error_reason) == (pb.EVENT_RESULT_ERROR, "NODE_DOWN")
    assert not lost[0].user_id and not lost[0].project_id


# In this process, on a real SQLite file


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[None]:
    database = open_database("", tmp_path / "events.db")
    migrations.migrate()
    yield
    database.close()


ADMIN = Principal("u", "admin", "p", "admin", Role.ADMIN, "t", 0.0)


def _insert(time: float, action: str) -> None:
    event_store.insert_event(
        id=clock.new_id(), time=time, resource_type="instance", resource_id="r", action=action, ok=True
    )


def test_retention_prunes_old_events_only(fresh_db: None) -> None:
    now = clock.now()
    for i in range(7):
        _insert(now - 3600 - i, "old")
    _insert(now - 10, "recent")
    log = EventLog(retention_seconds=600, prune_seconds=60)
    assert log.prune_once() == 7
    rows, _ = log.list(ADMIN, EventQuery(None), 100, "")
    assert [r.action for r in rows] == ["recent"]
    assert log.prune_once() == 0
    assert EventLog(retention_seconds=0, prune_seconds=60).prune_once() == 0, "0 keeps events forever"


def test_an_event_that_cannot_be_written_is_logged_and_counted(
    fresh_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The call's answer stands, the failure is not silent. (A dropped table
    stands in for a full disk: both make the INSERT fail.)"""
    log = EventLog(retention_seconds=0, prune_seconds=60)
    db.execute_sql("DROP TABLE event")
    with caplog.at_level(logging.ERROR, logger="kumo.events"):
        log.record_call(
            "instance", "i", "start", "p", Cause("r"), OK, "", "/kumo.v1.ComputeService/StartInstance"
        )
        log.record_call("instance", "i", "stop", "p", Cause("r"), Outcome.failed("X"), "", "m")
    assert log.write_failures == 2
    assert sum(r.message == "event not written" for r in caplog.records) == 2


def test_batched_call_events_are_all_written_in_order(fresh_db: None) -> None:
    """With the writer running, calls queue their events; a flush (ListEvents
    does one) sees every one of them, in call order."""
    log = EventLog(retention_seconds=0, prune_seconds=60)
    log.start_writer()
    try:
        for i in range(900):  # more than one batch
            log.record_call("instance", f"i{i}", "start", "p", Cause("r"), OK, "", "m")
        rows, _ = log.list(ADMIN, EventQuery(None), 2000, "")
    finally:
        log.stop_writer()
    assert [r.resource_id for r in rows] == [f"i{i}" for i in range(900)]
    assert log.write_failures == 0


def test_batched_call_events_that_cannot_be_written_are_counted(
    fresh_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(retention_seconds=0, prune_seconds=60)
    db.execute_sql("DROP TABLE event")
    log.start_writer()
    try:
        with caplog.at_level(logging.ERROR, logger="kumo.events"):
            for i in range(3):
                log.record_call("instance", f"i{i}", "start", "p", Cause("r"), OK, "", "m")
            log.flush()
    finally:
        log.stop_writer()
    assert log.write_failures == 3
    assert sum(r.message == "event not written" for r in caplog.records) == 3


@pytest.mark.postgres
def test_events_on_postgres(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same log on PostgreSQL: calls and refusals recorded, pages in order,
    and no event failed to write (the controller's log says so if one did)."""
    from tests.harness import ControllerProc

    data = tmp_path / "data"
    data.mkdir()
    ctl = ControllerProc(data, extra_args=["--database-url", postgres.create_database("kumo_events")]).start()
    try:
        admin = ctl.login()
        for i in range(5):
            admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=f"pg-ev-{i}")))
        dup = rpc_error(
            admin.identity.CreateProject, idpb.CreateProjectRequest(project=idpb.Project(name="pg-ev-0"))
        )
        assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
        got = events(admin, resource_type="project")
        assert [e.result for e in got] == [pb.EVENT_RESULT_OK] * 5 + [pb.EVENT_RESULT_ERROR]
        assert got[-1].error_reason == "PROJECT_EXISTS"
        assert len({e.id for e in got}) == 6
        times = [e.event_time.ToNanoseconds() for e in got]
        assert times == sorted(times)
    finally:
        ctl.stop()
    log = (data.parent / "data-controller.log").read_text()
    assert "event not written" not in log
