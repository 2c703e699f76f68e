"""Prometheus metrics: both endpoints scraped and parsed with prometheus_client's
own parser; the series move with what the cloud does (a fake fleet here; a real
TCG guest's counters in the e2e test); the listener is on loopback unless
configured otherwise, and serves HTTPS when given a certificate."""

from __future__ import annotations

import inspect
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from controller.config import load_config
from controller.pki import ensure_pki
from kumo.ids import is_uuid
from kumo.metrics import MetricsConfigError, serve_metrics, split_address
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import volume_pb2 as vpb
from tests.cloudutil import e2e_cloud, fake_cloud
from tests.harness import Client, ControllerProc, rpc_error
from tests.nodeutil import wait_for
from tests.waits import diagnose, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, context: ssl.SSLContext | None = None) -> Samples:
    """Every sample of one scrape, parsed by prometheus_client's parser."""
    with urllib.request.urlopen(url, timeout=10, context=context) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value (0 when absent: a counter with labels not seen yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples) -> set[tuple[str, str]]:
    return {kv for _, labels in samples for kv in labels}


def compute(client: Client):  # type: ignore[no-untyped-def]
    return client.stub(compute_pb2_grpc.ComputeServiceStub)


CREATE = "/kumo.v1.ComputeService/CreateInstance"


def test_both_endpoints_parse_and_series_move_on_a_fake_fleet(tmp_path: Path) -> None:
    env = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}
    with fake_cloud(tmp_path, 1, "metrics", env) as cloud:
        node = cloud.procs[0]
        assert cloud.ctl.metrics_url.startswith("http://127.0.0.1:")
        assert node.metrics_url().startswith("http://127.0.0.1:")
        image = cloud.public_image("tiny")
        cloud.flavor("m.one", vcpus=1, ram_mb=1024)
        cloud.flavor("m.huge", vcpus=16, ram_mb=1024)  # the node has 2 vCPUs (x4)
        c = compute(cloud.admin)
        inst = c.CreateInstance(pb.CreateInstanceRequest(name="counted", image=image.id, flavor="m.one"))
        refused = rpc_error(
            c.CreateInstance, pb.CreateInstanceRequest(name="too-big", image=image.id, flavor="m.huge")
        )
        assert "no valid host" in refused.details()
        wait_for(
            lambda: c.GetInstance(pb.GetInstanceRequest(id=inst.id)).state == pb.INSTANCE_STATE_ACTIVE,
            what="instance ACTIVE",
        )
        cloud.admin.volumes.CreateVolume(
            vpb.CreateVolumeRequest(volume=vpb.Volume(name="counted", size_gb=1))
        )
        refused = rpc_error(
            cloud.admin.volumes.CreateVolume,
            vpb.CreateVolumeRequest(volume=vpb.Volume(name="big", size_gb=900)),
        )
        assert "no valid host" in refused.details()

        ctl = scrape(cloud.ctl.metrics_url)
        assert value(ctl, "kumo_rpc_requests_total", method=CREATE, code="OK") == 1
        assert value(ctl, "kumo_rpc_requests_total", method=CREATE, code="RESOURCE_EXHAUSTED") == 1
        assert value(ctl, "kumo_rpc_duration_seconds_count", method=CREATE) == 2
        assert value(ctl, "kumo_placements_total", kind="instance") == 1
        assert value(ctl, "kumo_no_valid_host_total", kind="instance", filter="VcpuFilter") == 1
        assert value(ctl, "kumo_scheduling_duration_seconds_count", kind="instance") == 2
        assert value(ctl, "kumo_placements_total", kind="volume") == 1
        assert value(ctl, "kumo_no_valid_host_total", kind="volume", filter="DiskFilter") == 1
        assert sum(v for (name, _), v in ctl.items() if name == "kumo_volumes") == 1
        assert value(ctl, "kumo_nodes", state="ready") == 1
        assert value(ctl, "kumo_nodes", state="down") == 0
        assert value(ctl, "kumo_node_sessions") == 1
        assert 0 < value(ctl, "kumo_node_heartbeat_age_max_seconds") < 30
        assert value(ctl, "kumo_instances", state="active") == 1
        assert value(ctl, "kumo_ports", state="bound") == 0
        assert value(ctl, "kumo_db_write_transaction_duration_seconds_count") > 0
        assert value(ctl, "kumo_db_write_lock_wait_seconds_count") > 0
        # No label carries an id (unbounded) on the controller.
        assert not [kv for kv in label_values(ctl) if is_uuid(kv[1])]

        def node_has_guest() -> Samples | None:
            s = scrape(node.metrics_url())
            return s if value(s, "kumo_node_guests", state="running") == 1 else None

        nd = wait_for(node_has_guest, what="the node's guest in its metrics")
        assert value(nd, "kumo_guest_memory_max_bytes", instance_id=inst.id) == 1024 * 1024**2
        assert value(nd, "kumo_guest_cpu_seconds_total", instance_id=inst.id) == 0  # fake guests run nothing
        assert value(nd, "kumo_node_reconcile_passes_total", result="applied") >= 1
        assert value(nd, "kumo_node_reconcile_duration_seconds_count") >= 1
        assert value(nd, "kumo_node_sessions_opened_total") == 1
        assert value(nd, "kumo_node_session_connected") == 1
        assert value(nd, "kumo_node_heartbeat_rtt_seconds_count") >= 1
        # On the node, only the per-guest series carry an id: the instance's.
        ids = {kv for kv in label_values(nd) if is_uuid(kv[1])}
        assert ids == {("instance_id", inst.id)}

        # The fleet shrinks: a stopped node daemon is DOWN in the next scrapes.
        node.stop()
        wait_for(lambda: value(scrape(cloud.ctl.metrics_url), "kumo_node_sessions") == 0, what="session gone")
        # The node port's interceptor counted the session once it ended.
        session = "/kumo.v1.NodeAgentService/Session"
        ctl = wait_for(
            lambda: (
                (s := scrape(cloud.ctl.metrics_url))
                and value(s, "kumo_rpc_duration_seconds_count", method=session) == 1
                and s
            ),
            what="the ended session counted",
        )
        codes = [
            v
            for (name, labels), v in ctl.items()
            if name == "kumo_rpc_requests_total" and ("method", session) in labels
        ]
        assert codes == [1]


def _external_ipv4() -> str:
    """A non-loopback address of this host (the source of its default route)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    raise AssertionError(f"this test needs a non-loopback IPv4 address; ip addr says:\n{out}")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_listener_is_on_loopback_unless_configured() -> None:
    from noded.main import run

    controller_default = load_config(environ={}).metrics_listen
    noded_default = inspect.signature(run).parameters["metrics_listen"].default
    outside = _external_ipv4()
    for default in (controller_default, noded_default):
        host, _ = split_address(default)
        assert host == "127.0.0.1", default
        server = serve_metrics(CollectorRegistry(), f"{host}:0")
        assert server is not None
        try:
            port = server.httpd.server_address[1]
            assert server.httpd.server_address[0] == "127.0.0.1"
            assert _reachable("127.0.0.1", port)
            assert not _reachable(outside, port), "the default listener must not answer off loopback"
        finally:
            server.stop()
    assert split_address(":9464") == ("127.0.0.1", 9464)  # a bare port is loopback too
    # Configured otherwise, it answers there.
    server = serve_metrics(CollectorRegistry(), "0.0.0.0:0")
    assert server is not None
    try:
        assert _reachable(outside, server.httpd.server_address[1])
    finally:
        server.stop()
    assert serve_metrics(CollectorRegistry(), "") is None  # empty: off
    with pytest.raises(MetricsConfigError):
        serve_metrics(CollectorRegistry(), "127.0.0.1")
    with pytest.raises(MetricsConfigError):
        serve_metrics(CollectorRegistry(), "127.0.0.1:0", cert_file="only-a-cert.pem")


def test_metrics_over_tls(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "ca", tmp_path / "pki", ["localhost"])
    cert, key = tmp_path / "metrics.crt", tmp_path / "metrics.key"
    cert.write_bytes(pki.server_cert_pem)
    key.write_bytes(pki.server_key_pem)
    registry = CollectorRegistry()
    Counter("kumo_test_things", "Things.", registry=registry).inc(3)
    server = serve_metrics(registry, "127.0.0.1:0", str(cert), str(key))
    assert server is not None and server.url.startswith("https://")
    try:
        trusted = ssl.create_default_context(cadata=pki.ca.cert_pem.decode())
        trusted.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
        assert value(scrape(server.url, trusted), "kumo_test_things_total") == 3
        with pytest.raises(OSError):  # plain HTTP gets no answer (reset or refused)
            scrape(server.url.replace("https://", "http://"))
    finally:
        server.stop()


# End to end: a real TCG guest's counters move.


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    with e2e_cloud("kumo-metrics-e2e-", "metrics-host", "metrics.small", reconcile_seconds=5) as c:
        yield c


@pytest.mark.e2e
def test_a_real_guest_moves_the_series(cloud: dict) -> None:
    admin: Client = cloud["admin"]
    ctl_url, node_url = cloud["ctl"].metrics_url, cloud["node"].metrics_url()
    before = scrape(ctl_url)
    c = compute(admin)
    inst = c.CreateInstance(pb.CreateInstanceRequest(name="m1", image="kumo-test", flavor="metrics.small"))
    try:
        after = scrape(ctl_url)
        placed = value(after, "kumo_placements_total", kind="instance")
        assert placed == value(before, "kumo_placements_total", kind="instance") + 1

        def running() -> Samples | None:
            s = scrape(node_url)
            return s if value(s, "kumo_guest_cpu_seconds_total", instance_id=inst.id) > 0 else None

        first = wait_until(
            running, what="the guest's CPU counter", base=120, explain=lambda: diagnose(admin, inst.id)
        )
        cpu = value(first, "kumo_guest_cpu_seconds_total", instance_id=inst.id)
        wait_until(
            lambda: value(scrape(node_url), "kumo_guest_cpu_seconds_total", instance_id=inst.id) > cpu,
            what="the guest's CPU counter rising",
            base=60,
            explain=lambda: diagnose(admin, inst.id),
        )
        nd = wait_until(
            lambda: (
                (s := scrape(node_url))
                and value(s, "kumo_guest_disk_read_bytes_total", instance_id=inst.id)
                and s
            ),
            what="the guest reading its disk",
            base=60,
            explain=lambda: diagnose(admin, inst.id),
        )
        assert value(nd, "kumo_node_guests", state="running") == 1
        assert value(nd, "kumo_guest_memory_max_bytes", instance_id=inst.id) == 256 * 1024**2
        assert value(nd, "kumo_node_image_cache_requests_total", result="miss") == 1
        assert value(nd, "kumo_node_image_download_bytes_total") == cloud["image"].size_bytes
        assert value(nd, "kumo_node_image_cache_bytes") == cloud["image"].size_bytes
        assert value(nd, "kumo_node_reconcile_passes_total", result="applied") >= 1
        # Only this node's guests: other kumo- domains on the same libvirtd (other tests' nodes) are not its.
        assert {v for k, v in label_values(nd) if k == "instance_id"} == {inst.id}
    finally:
        c.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))


@pytest.mark.postgres
def test_a_postgresql_controller_serves_its_counts(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL too: write transactions are timed, and the scrape-time
    counts run on the scrape's own connection."""
    url = postgres.create_database("kumo_metrics")
    data = tmp_path / "ctl"
    data.mkdir()
    ctl = ControllerProc(data, extra_args=["--database-url", url]).start()
    try:
        admin = ctl.login()
        admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="counted")))
        s = scrape(ctl.metrics_url)
        assert value(s, "kumo_db_write_transaction_duration_seconds_count") > 0
        assert value(s, "kumo_db_write_lock_wait_seconds_count") > 0
        assert value(s, "kumo_instances", state="active") == 0  # absent: no rows, still a valid scrape
        assert ("kumo_nodes_disabled", frozenset()) in s
        assert (
            value(s, "kumo_rpc_requests_total", method="/kumo.v1.IdentityService/CreateProject", code="OK")
            == 1
        )
    finally:
        ctl.stop()
