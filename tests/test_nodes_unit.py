"""Node pieces without a controller: join-token format, desired-state deltas,
backoff, the drivers, CLI duration parsing."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from cli.commands.node import parse_ttl
from cli.errors import CliError
from controller.auth import jointoken
from controller.domain import desired_state as ds
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_pb2
from noded.agent import Backoff, guest_pb, inventory_pb, usage_pb
from noded.hypervisor import DriverError, make_driver
from noded.hypervisor.fake import FakeDriver

ROOT = Path(__file__).resolve().parent.parent
FP = "a" * 64


def test_join_token_round_trip() -> None:
    tid, secret = str(uuid.uuid4()), jointoken.new_secret()
    token = jointoken.format_token(tid, secret, FP)
    parsed = jointoken.parse_token(f"  {token}\n")
    assert (parsed.token_id, parsed.secret, parsed.ca_fingerprint) == (tid, secret, FP)
    assert jointoken.secret_matches(secret, jointoken.hash_secret(secret))
    assert not jointoken.secret_matches(jointoken.new_secret(), jointoken.hash_secret(secret))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "kumojoin1",
        f"kumojoin2.{uuid.uuid4()}.{'s' * 43}.{FP}",
        f"kumojoin1.not-a-uuid.{'s' * 43}.{FP}",
        f"kumojoin1.{uuid.uuid4()}.short.{FP}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{'A' * 64}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{'a' * 63}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{FP}.extra",
        f"kumojoin1.{str(uuid.uuid4()).upper()}.{'s' * 43}.{FP}",
    ],
)
def test_malformed_join_tokens(token: str) -> None:
    with pytest.raises(jointoken.JoinTokenFormatError):
        jointoken.parse_token(token)


def test_node_level_delta_and_apply() -> None:
    old = pb.NodeDesiredState(enabled=True)
    _, removed, changed = ds.diff(old, pb.NodeDesiredState(enabled=True))
    assert not changed and not removed
    new = pb.NodeDesiredState(enabled=False)
    delta, removed, changed = ds.diff(old, new)
    assert changed and delta == new
    update = pb.DesiredStateUpdate(revision=2, base_revision=1, state=delta, removed_ids=removed)
    assert ds.apply(old, update) == new
    full = pb.DesiredStateUpdate(revision=3, full=True, state=pb.NodeDesiredState(enabled=True))
    assert ds.apply(new, full) == pb.NodeDesiredState(enabled=True)


def test_resource_list_delta_and_apply() -> None:
    """The same helpers on a message with a repeated, id-bearing field (what
    instances, volumes ... will be): upserts and removals round-trip."""
    n = [node_pb2.Node(id=f"id-{i}", name=f"n{i}") for i in range(4)]
    old = node_pb2.ListNodesResponse(nodes=[n[0], n[1], n[2]], next_page_token="a")
    changed_1 = node_pb2.Node(id="id-1", name="renamed")
    new = node_pb2.ListNodesResponse(nodes=[n[0], changed_1, n[3]], next_page_token="b")
    delta, removed, changed = ds.diff(old, new)
    assert changed
    assert [m.id for m in delta.nodes] == ["id-1", "id-3"] and removed == ["id-2"]
    assert delta.next_page_token == "b"
    applied = ds.apply_delta(old, delta, removed)
    assert sorted(applied.nodes, key=lambda m: m.id) == sorted(new.nodes, key=lambda m: m.id)
    assert applied.next_page_token == "b"
    assert ds.diff(new, applied)[2] is False


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(initial=1, maximum=8)
    delays = [b.next() for _ in range(8)]
    for i, d in enumerate(delays):
        ceiling = min(8, 2**i)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 8
    b.reset()
    assert b.next() <= 1


def test_fake_driver_reports_its_guests() -> None:
    d = make_driver("fake", "qemu")
    assert isinstance(d, FakeDriver)
    d.add_guest("i-1", vcpus=2, memory_mb=1024)
    d.add_guest("i-2", vcpus=1, memory_mb=512, state="STOPPED")
    facts = d.host_facts()
    usage = d.usage()
    assert usage.memory_free_mb == facts.memory_mb - 1024
    u = usage_pb(usage, d.list_guests())
    assert (u.guests_running, u.guest_vcpus, u.guest_memory_mb) == (1, 2, 1024)
    g = guest_pb(d.list_guests()[0])
    assert g.domain_name == "kumo-i-1" and g.power_state == pb.GUEST_POWER_STATE_RUNNING
    assert inventory_pb(facts).driver == "fake"
    d.remove_guest("i-1")
    assert [x.instance_id for x in d.list_guests()] == ["i-2"]


def test_unknown_driver_and_virt_type() -> None:
    with pytest.raises(DriverError, match="unknown driver"):
        make_driver("xen")
    with pytest.raises(DriverError, match="virt_type"):
        make_driver("libvirt", "lxc")


def test_libvirt_driver_reports_this_host(tmp_path: Path) -> None:
    if subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True).returncode != 0:
        pytest.skip("libvirtd cannot run here")
    d = make_driver("libvirt", "qemu", instances_dir=tmp_path)
    try:
        f = d.host_facts()
        assert f.vcpus == os.cpu_count() and f.virt_type == "qemu" and f.driver == "libvirt"
        assert f.libvirt_version.count(".") == 2 and f.qemu_version.count(".") == 2
        assert f.memory_mb > 0 and f.disk_gb > 0
        assert all(g.domain_name.startswith("kumo-") for g in d.list_guests())
    finally:
        d.close()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("45", 45)],
)
def test_ttl_parsing(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "soon", "1h 30m", "-5"])
def test_bad_ttls(text: str) -> None:
    with pytest.raises(CliError):
        parse_ttl(text)


@pytest.mark.parametrize(
    ("listen", "advertise", "want"),
    [
        ("0.0.0.0:7444", "", ":7444"),
        ("[::]:7444", "", ":7444"),
        ("10.0.0.5:7444", "", "10.0.0.5:7444"),
        ("[fd00::5]:7444", "", "[fd00::5]:7444"),
        ("0.0.0.0:7444", "ctl.example:7444", "ctl.example:7444"),
    ],
)
def test_advertised_node_endpoint(listen: str, advertise: str, want: str) -> None:
    from controller.config import ControllerConfig
    from controller.domain.nodes import Nodes

    cfg = ControllerConfig(node_listen=listen, node_advertise=advertise)
    assert Nodes(cfg, None).node_endpoint(7444) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("advertised", "through", "want"),
    [
        (":7444", "10.1.2.3:7443", "10.1.2.3:7444"),
        (":7444", "[fd00::1]:7443", "[fd00::1]:7444"),
        (":7444", "ctl.example:7443", "ctl.example:7444"),
        ("10.9.9.9:7000", "10.1.2.3:7443", "10.9.9.9:7000"),
    ],
)
def test_node_resolves_an_endpoint_without_host(advertised: str, through: str, want: str) -> None:
    from noded.enroll import resolve_endpoint

    assert resolve_endpoint(advertised, through) == want
