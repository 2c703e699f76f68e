"""The real node daemon (`kumo-noded join` / `run`, libvirt driver on
qemu:///system, virt_type qemu) against real controllers: enrollment, the CA
pin, liveness (DOWN within the grace period, READY again), reconnection after
a controller restart, and what happens when an admin deletes the node."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kumo import jointoken
from kumo.v1 import node_pb2 as pb
from tests.harness import Client, ControllerProc, rpc_error
from tests.nodeutil import NodedProc, free_port, make_token, nodes, run_noded, wait_for

ROOT = Path(__file__).resolve().parent.parent
GRACE = 3


@pytest.fixture(scope="module")
def libvirtd() -> None:
    """libvirtd must run for the libvirt driver; start it (no systemd here)."""
    result = subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"libvirtd cannot run here: {result.stderr.strip()}")


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProc]:
    """A controller on fixed ports (so it can be restarted in place) with a short grace period."""
    data = tmp_path_factory.mktemp("nodes-ctl") / "data"
    data.mkdir()
    proc = ControllerProc(
        data,
        extra_env={"KUMO_NODE_GRACE_SECONDS": str(GRACE), "KUMO_NODE_HEARTBEAT_SECONDS": "1"},
        extra_args=["--listen", f"127.0.0.1:{free_port()}", "--node-listen", f"127.0.0.1:{free_port()}"],
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ctl_admin(ctl: ControllerProc) -> Client:
    return ctl.login()


def node_by_name(admin: Client, name: str) -> pb.Node:
    found = nodes(admin).ListNodes(pb.ListNodesRequest(name=name)).nodes
    assert len(found) == 1, f"{len(found)} nodes named {name}"
    return found[0]


def state_of(admin: Client, node_id: str) -> int:
    return nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).state


def join(
    ctl: ControllerProc, token: str, state_dir: Path, name: str, *extra: str
) -> subprocess.CompletedProcess:
    return run_noded(["join", ctl.endpoint, token, "--state-dir", str(state_dir), "--name", name, *extra])


def libvirt_versions() -> tuple[str, str]:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, text=True).stdout
    lib = re.search(r"Using library: libvirt ([\d.]+)", out)
    qemu = re.search(r"Running hypervisor: QEMU ([\d.]+)", out)
    assert lib and qemu, out
    return lib.group(1), qemu.group(1)


def mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal")


@pytest.fixture()
def noded(
    libvirtd: None, ctl: ControllerProc, ctl_admin: Client, tmp_path: Path
) -> Iterator[tuple[NodedProc, str]]:
    """A joined node (libvirt driver, TCG) running as a real daemon."""
    name = f"host-{tmp_path.name[-12:].strip('_-').replace('_', '-')}"
    state = tmp_path / "noded"
    result = join(ctl, make_token(ctl_admin), state, name)
    assert result.returncode == 0, result.stderr
    proc = NodedProc(state, ["--virt-type", "qemu", "--heartbeat-seconds", "1"]).start()
    node_id = json.loads((state / "node.json").read_text())["node_id"]
    try:
        wait_for(lambda: state_of(ctl_admin, node_id) == pb.NODE_STATE_READY, 30, what=f"{name} READY")
        yield proc, node_id
    finally:
        proc.stop(signal.SIGKILL)


def test_join_and_run_reports_real_host_facts(
    libvirtd: None, ctl: ControllerProc, ctl_admin: Client, tmp_path: Path
) -> None:
    state = tmp_path / "noded"
    token = make_token(ctl_admin)
    result = join(ctl, token, state, "libvirt-host")
    assert result.returncode == 0, result.stderr
    assert "joined as node libvirt-host" in result.stdout
    ident = json.loads((state / "node.json").read_text())
    assert ident["node_endpoint"] == ctl.node_endpoint
    for f in ("node.key", "node.crt", "ca.crt", "node.json"):
        assert (state / f).stat().st_mode & 0o777 == 0o600, f
    assert (state / "ca.crt").read_bytes() == ctl.ca_pem
    assert oct(state.stat().st_mode & 0o777) == oct(0o711)  # traversable for qemu, not listable

    proc = NodedProc(state, ["--virt-type", "qemu", "--heartbeat-seconds", "1"]).start()
    try:
        node_id = ident["node_id"]
        wait_for(lambda: state_of(ctl_admin, node_id) == pb.NODE_STATE_READY, 30, what="READY")
        node = wait_for(
            lambda: (
                n
                if (n := nodes(ctl_admin).GetNode(pb.GetNodeRequest(id=node_id))).usage.memory_free_mb > 0
                and n.applied_revision == 1
                else None
            ),
            15,
            what="a heartbeat with usage and the applied revision",
        )
        inv = node.inventory
        lib, qemu = libvirt_versions()
        assert inv.driver == "libvirt" and inv.virt_type == "qemu"
        assert inv.vcpus == os.cpu_count()
        assert abs(inv.memory_mb - mem_total_mb()) <= 2
        assert inv.libvirt_version == lib and inv.qemu_version == qemu
        assert inv.arch == os.uname().machine and inv.kernel == os.uname().release
        st = os.statvfs(state / "instances")
        assert inv.disk_gb == st.f_blocks * st.f_frsize // 1024**3
        assert 0 < node.usage.memory_free_mb <= inv.memory_mb
        assert node.connected and node.address.startswith("ipv4:127.0.0.1:")
        desired = json.loads((state / "desired.json").read_text())
        assert desired == {"revision": 1, "state": {"enabled": True}}

        # Disabling reaches the daemon as a change it applies and acknowledges.
        nodes(ctl_admin).DisableNode(pb.DisableNodeRequest(id=node_id, reason="test"))
        wait_for(
            lambda: nodes(ctl_admin).GetNode(pb.GetNodeRequest(id=node_id)).applied_revision == 2,
            15,
            what="applied revision 2",
        )
        assert json.loads((state / "desired.json").read_text())["state"] == {}  # enabled: false
        status = run_noded(["status", "--state-dir", str(state)])
        assert status.returncode == 0 and json.loads(status.stdout)["applied_revision"] == 2
    finally:
        proc.stop()
    assert "Traceback" not in proc.log()


def test_join_refuses_a_ca_that_does_not_match_the_token(
    ctl: ControllerProc, ctl_admin: Client, tmp_path: Path
) -> None:
    before = len(nodes(ctl_admin).ListNodes(pb.ListNodesRequest(page_size=1000)).nodes)
    real = make_token(ctl_admin)
    parsed = jointoken.parse_token(real)
    forged = jointoken.format_token(parsed.token_id, parsed.secret, "0" * 64)
    state = tmp_path / "mitm"
    result = join(ctl, forged, state, "mitm-node")
    assert result.returncode == 1
    assert "refusing to join" in result.stderr and "Traceback" not in result.stderr
    # It says what did not match: the controller's CA against the token's fingerprint, both named.
    assert "the controller's CA does not match the join token's fingerprint" in result.stderr
    assert "0" * 64 in result.stderr and ctl.info["ca_fingerprint"] in result.stderr
    assert not state.exists() or not any(state.iterdir())

    # A real man in the middle: another controller answering at the address the
    # node was given, with the first controller's token.
    (tmp_path / "other").mkdir()
    other = ControllerProc(tmp_path / "other").start()
    try:
        result = run_noded(["join", other.endpoint, real, "--state-dir", str(state), "--name", "mitm-node"])
        assert result.returncode == 1 and "refusing to join" in result.stderr
        other_admin = other.login()
        assert not nodes(other_admin).ListNodes(pb.ListNodesRequest()).nodes
    finally:
        other.stop()
    assert len(nodes(ctl_admin).ListNodes(pb.ListNodesRequest(page_size=1000)).nodes) == before
    rows = nodes(ctl_admin).ListJoinTokens(pb.ListJoinTokensRequest(page_size=1000)).join_tokens
    assert next(r for r in rows if r.id == parsed.token_id).uses == 0


def test_join_errors_are_one_line(ctl: ControllerProc, ctl_admin: Client, tmp_path: Path) -> None:
    state = tmp_path / "s"
    bad = join(ctl, "not-a-token", state, "n1")
    assert bad.returncode == 1 and bad.stderr.startswith("error: the join token is not valid")
    made_up = jointoken.format_token(
        "00000000-0000-0000-0000-000000000000", jointoken.new_secret(), ctl.info["ca_fingerprint"]
    )
    refused = join(ctl, made_up, state, "n1")
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    unreachable = run_noded(["join", f"127.0.0.1:{free_port()}", made_up, "--state-dir", str(state)])
    assert unreachable.returncode == 1 and "cannot reach the controller" in unreachable.stderr
    bad_name = join(ctl, make_token(ctl_admin), state, "bad name")
    assert bad_name.returncode == 1 and "not valid" in bad_name.stderr
    for r in (bad, refused, unreachable, bad_name):
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    not_joined = run_noded(["run", "--state-dir", str(tmp_path / "empty"), "--driver", "fake"])
    assert not_joined.returncode == 1 and "has not joined" in not_joined.stderr


def test_joining_twice_needs_force(ctl: ControllerProc, ctl_admin: Client, tmp_path: Path) -> None:
    state = tmp_path / "twice"
    assert join(ctl, make_token(ctl_admin), state, "twice-a").returncode == 0
    again = join(ctl, make_token(ctl_admin), state, "twice-b")
    assert again.returncode == 1 and "--force" in again.stderr
    forced = join(ctl, make_token(ctl_admin), state, "twice-b", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((state / "node.json").read_text())["name"] == "twice-b"


def test_killed_daemon_goes_down_and_comes_back(
    ctl: ControllerProc, ctl_admin: Client, noded: tuple[NodedProc, str]
) -> None:
    proc, node_id = noded
    name = nodes(ctl_admin).GetNode(pb.GetNodeRequest(id=node_id)).name
    proc.stop(signal.SIGKILL)
    # DOWN within the grace period (plus the monitor's tick and a little slack).
    wait_for(lambda: state_of(ctl_admin, node_id) == pb.NODE_STATE_DOWN, GRACE + 3, what="DOWN")
    proc.start()
    wait_for(lambda: state_of(ctl_admin, node_id) == pb.NODE_STATE_READY, 30, what="READY again")
    node = node_by_name(ctl_admin, name)  # one record, the same one
    assert node.id == node_id and node.connected


def test_nodes_reconnect_after_a_controller_restart(
    ctl: ControllerProc, ctl_admin: Client, noded: tuple[NodedProc, str]
) -> None:
    proc, node_id = noded
    ctl.restart()
    admin = ctl.login()
    wait_for(
        lambda: (
            (n := nodes(admin).GetNode(pb.GetNodeRequest(id=node_id))).connected
            and n.state == pb.NODE_STATE_READY
        ),
        45,
        what="the node to reconnect",
    )
    assert proc.proc is not None and proc.proc.poll() is None
    name = nodes(admin).GetNode(pb.GetNodeRequest(id=node_id)).name
    assert node_by_name(admin, name).id == node_id  # no second record
    log = proc.log()
    assert log.count("session open") >= 2 and "Traceback" not in log


def test_deleted_node_daemon_stops_and_its_certificate_is_refused(
    ctl: ControllerProc, noded: tuple[NodedProc, str], tmp_path: Path
) -> None:
    admin = ctl.login()
    proc, node_id = noded
    busy = rpc_error(nodes(admin).DeleteNode, pb.DeleteNodeRequest(id=node_id))
    assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION
    nodes(admin).DisableNode(pb.DisableNodeRequest(id=node_id))
    nodes(admin).DeleteNode(pb.DeleteNodeRequest(id=node_id))
    assert proc.proc is not None
    rc = proc.proc.wait(30)
    assert rc == 3
    assert "join this host again" in proc.log()
    # Started again with the same certificate: refused at once, same exit.
    proc.start()
    assert proc.proc is not None and proc.proc.wait(30) == 3
