"""Node pieces without a controller: backoff, the drivers, CLI duration
parsing. (The join-token format and desired-state deltas, shared in the
`kumo` package, are tested in test_kumo.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cli.commands.node import parse_ttl
from cli.errors import CliError
from kumo.v1 import node_agent_pb2 as pb
from noded.agent import Backoff, guest_pb, inventory_pb, usage_pb
from noded.hypervisor import DriverError, make_driver
from noded.hypervisor.fake import FakeDriver

ROOT = Path(__file__).resolve().parent.parent


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
