"""`make up` (controller.allinone) enrolls this machine as a READY node with
the libvirt driver; a second start reuses it; Ctrl-C stops both."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest

from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import identity_pb2_grpc, node_pb2_grpc
from kumo.v1 import node_pb2 as pb
from tests.harness import ROOT
from tests.nodeutil import free_port, noded_env, wait_for

PASSWORD = "allinone-pw-1"


def start(data: Path, port: int, node_port: int) -> subprocess.Popen:
    env = noded_env()
    env.update(
        {
            "KUMO_DATA_DIR": str(data),
            "KUMO_LISTEN": f"127.0.0.1:{port}",
            "KUMO_NODE_LISTEN": f"127.0.0.1:{node_port}",
            "KUMO_ADMIN_PASSWORD": PASSWORD,
            "KUMO_VIRT_TYPE": "qemu",
            "KUMO_DASHBOARD_LISTEN": "127.0.0.1:0",
            "KUMO_METRICS_LISTEN": "127.0.0.1:0",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "controller.allinone"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def banner(proc: subprocess.Popen) -> str:
    lines = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops the cloud." in line:
            return "".join(lines)
    raise AssertionError("no banner:\n" + "".join(lines))


def list_nodes(data: Path, port: int) -> list[pb.Node]:
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}", grpc.ssl_channel_credentials((data / "pki" / "ca.crt").read_bytes())
    )
    token = identity_pb2_grpc.IdentityServiceStub(channel).Authenticate(
        idpb.AuthenticateRequest(user="admin", password=PASSWORD)
    )
    md = [("authorization", f"Bearer {token.token}")]
    return list(node_pb2_grpc.NodeServiceStub(channel).ListNodes(pb.ListNodesRequest(), metadata=md).nodes)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_make_up_has_one_ready_local_node(tmp_path: Path) -> None:
    if subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True).returncode != 0:
        pytest.skip("libvirtd cannot run here")
    data = tmp_path / "kumo"
    port, node_port = free_port(), free_port()
    proc = start(data, port, node_port)
    try:
        text = banner(proc)
        assert "READY (qemu" in text, text
        # How to let SSH in, and that guests get a resolver by default.
        assert "kumo security-group rule create default --protocol tcp --port 22" in text, text
        assert "get a resolver by default" in text and "<server name>.kumo-net.kumo" in text, text
        # The dashboard: its URL printed, HTTPS with a certificate the cloud's CA signed.
        url = re.search(r"dashboard +(https://\S+)", text)
        assert url, text
        login = httpx.get(
            url.group(1) + "login", verify=ssl.create_default_context(cafile=data / "pki" / "ca.crt")
        )
        assert login.status_code == 200 and 'id="login-form"' in login.text
        (node,) = list_nodes(data, port)
        assert node.state == pb.NODE_STATE_READY and node.inventory.driver == "libvirt"
        assert node.inventory.virt_type == "qemu"
    finally:
        stop(proc)
    assert "noded" in {p.name for p in data.iterdir()}
    noded_pids = subprocess.run(["pgrep", "-f", f"--state-dir {data}/noded"], capture_output=True, text=True)
    assert noded_pids.stdout.strip() == "", "the node daemon outlived make up"
    dash_pids = subprocess.run(
        ["pgrep", "-f", f"--info-file {data}/dashboard.json"], capture_output=True, text=True
    )
    assert dash_pids.stdout.strip() == "", "the dashboard outlived make up"

    proc = start(data, port, node_port)  # again: the same node, not a second one
    try:
        assert "READY" in banner(proc)
        again = wait_for(lambda: list_nodes(data, port), 10, what="nodes")
        assert [n.id for n in again] == [node.id]
    finally:
        stop(proc)


def test_banner_says_what_resolver_guests_get() -> None:
    from controller.allinone import dns_lines

    assert dns_lines(None) == []
    assert "192.0.2.53" in " ".join(dns_lines(["192.0.2.53"]))
    how = "\n".join(dns_lines([], "example"))
    assert "resolver by default" in how and "<server name>.kumo-net.example" in how
    assert "--dns" not in how and "KUMO_UP_DNS" not in how
