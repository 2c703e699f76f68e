"""Which `kumo-` domains on a shared libvirtd a node daemon counts as its own,
against the real libvirtd (the domains are defined, never started)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloudutil import ROOT

libvirt = pytest.importorskip("libvirt")

from noded.hypervisor.libvirt_driver import LibvirtDriver  # noqa: E402

XML = """<domain type='qemu'><name>kumo-{id}</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os></domain>"""


@pytest.fixture
def conn() -> Iterator[object]:
    started = subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], capture_output=True, text=True)
    assert started.returncode == 0, f"libvirtd must run for this test: {started.stderr}"
    c = libvirt.open("qemu:///system")
    yield c
    c.close()


def test_an_ownerless_kumo_domain_is_ours_only_if_its_files_are_in_our_instances_dir(
    tmp_path: Path, conn: object
) -> None:
    ours, stray = str(uuid.uuid4()), str(uuid.uuid4())
    driver = LibvirtDriver("qemu:///system", "qemu", tmp_path / "instances")
    (tmp_path / "instances" / ours).mkdir()
    doms = [conn.defineXML(XML.format(id=i)) for i in (ours, stray)]
    try:
        seen = {g.instance_id for g in driver.list_guests()}
        assert ours in seen
        assert stray not in seen, "a kumo- domain another program defined was taken as this node's"
    finally:
        for d in doms:
            d.undefine()
        driver.close()
