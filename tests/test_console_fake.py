"""Serial consoles through the controller's relay, against a real controller
and a real kumo-noded process on the fake driver, whose guests' serial
devices echo what they are sent (and log it, as a guest's output is logged).
The real guest's console through the CLI is tests/test_console_e2e.py."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kumo.v1 import compute_pb2 as pb
from tests.cloudutil import fake_cloud
from tests.consoleutil import Attached, attach
from tests.harness import Client, cli_login, error_reason, rpc_error, two_tenants
from tests.nodeutil import wait_for
from tests.ptyutil import read_some, spawn_cli

UNKNOWN = "00000000-0000-4000-8000-000000000000"
RO, RW = pb.CONSOLE_MODE_READ_ONLY, pb.CONSOLE_MODE_READ_WRITE


def stored_report(data_dir: Path, iid: str) -> str:
    """The console report the controller keeps (its SQLite file, read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'kumo.db'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT data FROM console_log WHERE instance_id = ?", (iid,)).fetchone()
    return row[0] if row else ""


def state_of(client: Client, iid: str) -> int:
    return client.compute.GetInstance(pb.GetInstanceRequest(id=iid)).state


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    with fake_cloud(tmp_path_factory.mktemp("console"), 1, "cons", env) as c:
        c.public_image("tiny")
        c.flavor("m1.tiny", vcpus=1, ram_mb=512)
        t = two_tenants(c.ctl, c.admin, "cons")
        alice = t["alice"]

        def server(name: str) -> pb.Instance:
            inst = alice.compute.CreateInstance(
                pb.CreateInstanceRequest(name=name, image="tiny", flavor="m1.tiny")
            )
            wait_for(lambda: state_of(alice, inst.id) == pb.INSTANCE_STATE_ACTIVE, what=f"{name} ACTIVE")
            return inst

        inst = server("vm1")
        node_state = c.node_states[alice.compute.GetInstance(pb.GetInstanceRequest(id=inst.id)).node_id]
        yield {**t, "cloud": c, "inst": inst, "server": server, "node_state": node_state}


def test_echo_one_writer_many_readers_and_live_log(cloud: dict) -> None:
    alice, reader, iid = cloud["alice"], cloud["reader"], cloud["inst"].id
    writer = attach(alice, iid, RW, data=b"hello-")
    try:
        writer.send(b"console\r")
        writer.wait_output(b"hello-console\r")

        # One writer: a second one is refused, readers (reader role too) follow the log.
        second = attach(alice, iid, RW)
        err = second.failure()
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(err) == "CONSOLE_IN_USE"
        followers = [attach(reader, iid, RO), attach(alice, iid, RO, tail_bytes=5)]
        for f in followers:
            f.wait_output(b"sole\r")  # the log's tail first
        writer.send(b"more-input")
        for f in followers:
            f.wait_output(b"more-input")  # then what the guest writes, live
        assert not followers[1].output.startswith(b"hello"), "tail_bytes=5 sends only the last 5 bytes"

        # GetConsoleOutput reads the node's log now, not the last 2-second report.
        log = cloud["node_state"] / "instances" / iid / "console.log"
        with open(log, "ab") as fh:
            fh.write(b"\nwritten-on-the-node\n")
        out = alice.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid, tail_lines=1)).output
        assert out == "written-on-the-node"
        for f in followers:
            f.close()
    finally:
        writer.close()
    # The writer left: the next one gets the console.
    again = wait_for(
        lambda: ((a := attach(alice, iid, RW)).ended.wait(0.5) is False and a) or a.close(),
        what="the writer's slot freed",
    )
    again.send(b"back")
    again.wait_output(b"back")
    again.close()


def test_cli_refused_attach_restores_the_terminal_and_follow_tails(cloud: dict, tmp_path: Path) -> None:
    alice, iid = cloud["alice"], cloud["inst"].id
    assert cli_login(cloud["cloud"].ctl, tmp_path, "cons-alice", "password-123").returncode == 0
    env = {"KUMO_CONFIG_DIR": str(tmp_path)}
    writer = attach(alice, iid, RW)
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    follower = spawn_cli(["server", "console", "vm1", "--follow"], env, stdout=subprocess.PIPE)
    try:
        writer.send(b"seen-by-follow")
        assert follower.stdout is not None
        got = b""

        def followed() -> bool:
            nonlocal got
            got += read_some(follower.stdout.fileno(), 0.5)
            return b"seen-by-follow" in got

        wait_for(followed, what="--follow output")
        proc = spawn_cli(
            ["server", "console", "vm1", "--attach"], env, stdin=slave, stdout=slave, stderr=slave
        )
        assert proc.wait(60) == 1
        out = read_some(master, 1)
        assert b"CONSOLE_IN_USE" in out or b"open for writing" in out, out
        assert termios.tcgetattr(slave) == before, "the terminal's settings came back"
    finally:
        follower.terminate()
        follower.wait(10)
        writer.close()
        os.close(master)
        os.close(slave)


def test_bad_input_roles_tenancy_and_missing(cloud: dict) -> None:
    alice, reader, bob, iid = cloud["alice"], cloud["reader"], cloud["bob"], cloud["inst"].id

    def refused(client: Client, first: pb.AttachConsoleRequest) -> grpc.RpcError:
        return Attached(client, first).failure()

    cases = [
        (pb.AttachConsoleRequest(mode=RO), "INVALID_ARGUMENT"),
        (pb.AttachConsoleRequest(id="not-an-id", mode=RO), "INVALID_ARGUMENT"),
        (pb.AttachConsoleRequest(id=iid), "INVALID_ARGUMENT"),  # no mode
        (pb.AttachConsoleRequest(id=iid, mode=7), "INVALID_ARGUMENT"),
        (pb.AttachConsoleRequest(id=iid, mode=RO, data=b"x"), "INVALID_ARGUMENT"),
        (pb.AttachConsoleRequest(id=iid, mode=RO, tail_bytes=-1), "INVALID_ARGUMENT"),
        (pb.AttachConsoleRequest(id=iid, mode=RW, data=b"x" * 70_000), "INVALID_ARGUMENT"),
    ]
    for first, code in cases:
        assert refused(alice, first).code().name == code, first
    # Input on a read-only console, after the first message.
    follower = attach(alice, iid, RO)
    follower.send(b"typed")
    assert follower.failure().code() == grpc.StatusCode.INVALID_ARGUMENT

    err = refused(reader, pb.AttachConsoleRequest(id=iid, mode=RW))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(err) == "ROLE_REQUIRED"
    other = refused(bob, pb.AttachConsoleRequest(id=iid, mode=RO))
    missing = refused(bob, pb.AttachConsoleRequest(id=UNKNOWN, mode=RO))
    assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(other) == error_reason(missing) == "INSTANCE_NOT_FOUND"
    assert other.details().replace(iid, UNKNOWN) == missing.details()
    for client, target in ((bob, iid), (alice, UNKNOWN)):
        e = rpc_error(client.compute.GetConsoleOutput, pb.GetConsoleOutputRequest(id=target))
        assert e.code() == grpc.StatusCode.NOT_FOUND
    e = rpc_error(alice.compute.GetConsoleOutput, pb.GetConsoleOutputRequest(id=iid, tail_lines=-1))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stopped_server_then_node_gone(cloud: dict) -> None:
    alice, cloud_ = cloud["alice"], cloud["cloud"]
    inst = cloud["server"]("vm2")
    alice.compute.StopInstance(pb.StopInstanceRequest(id=inst.id))
    wait_for(lambda: state_of(alice, inst.id) == pb.INSTANCE_STATE_STOPPED, what="vm2 STOPPED")
    for mode in (RO, RW):
        err = attach(alice, inst.id, mode).failure()
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(err) == "INSTANCE_WRONG_STATE"

    # The node's daemon stops: consoles are refused; GetConsoleOutput falls back
    # to the last report the node sent.
    iid = cloud["inst"].id
    log = Path(cloud["node_state"]) / "instances" / iid / "console.log"
    with open(log, "ab") as fh:
        fh.write(b"\nreported-before-the-node-left\n")
    wait_for(lambda: "reported-before" in stored_report(cloud_.ctl.data_dir, iid), what="the node's report")
    live = attach(alice, iid, RO)
    live.wait_output(b"reported-before-the-node-left")
    for p in cloud_.procs:
        p.stop()
    assert live.ended.wait(30), "a console ends with its node's session"
    err = attach(alice, iid, RO).failure()
    assert err.code() == grpc.StatusCode.UNAVAILABLE and error_reason(err) == "NODE_NOT_CONNECTED"
    out = alice.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=iid)).output
    assert "reported-before-the-node-left" in out
