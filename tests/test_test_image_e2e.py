"""The guest test image boots for real: through libvirt (domain type qemu, i.e.
TCG) with a NoCloud config drive, and under qemu directly with user-mode
networking to check DHCP. It prints its markers on the serial console."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT
from tests.waits import BOOT_SECONDS, diagnose, wait_until

pytestmark = pytest.mark.e2e

IMAGE = ROOT / "images" / "kumo-test.qcow2"
MARKER = "KUMO-TEST-IMAGE-BOOTED"

DOMAIN_XML = """
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{config}'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='{log}'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"""


def wait_for(log: Path, pattern: str, timeout: float = BOOT_SECONDS, domain: str = "") -> re.Match[str]:
    """The first match of `pattern` on the serial console (`timeout`: quiet
    seconds, stretched under load; `domain`: the libvirt guest, if any)."""

    def text() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    return wait_until(
        lambda: re.search(pattern, text()),
        what=f"{pattern!r} on the serial console",
        base=timeout,
        step=0.25,
        explain=lambda: diagnose(console=text(), domain=domain),
    )


@pytest.fixture(scope="module")
def image() -> Path:
    subprocess.run(
        [str(ROOT / "scripts" / "build-test-image.sh"), str(IMAGE)], check=True, capture_output=True
    )
    return IMAGE


@pytest.fixture()
def workdir() -> Iterator[Path]:
    # Under /var/tmp with mode 0755: qemu may run as another user than root.
    d = Path(tempfile.mkdtemp(prefix="kumo-e2e-", dir="/var/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_config_drive(workdir: Path, instance_id: str, hostname: str) -> Path:
    src = workdir / "cidata"
    src.mkdir()
    (src / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
    (src / "user-data").write_text("#!/bin/sh\necho hello from user-data\n")
    iso = workdir / "cidata.iso"
    subprocess.run(
        ["genisoimage", "-quiet", "-V", "cidata", "-J", "-r", "-o", str(iso), str(src)], check=True
    )
    iso.chmod(0o644)
    return iso


def test_boots_under_libvirt_and_reads_its_config_drive(image: Path, workdir: Path) -> None:
    if shutil.which("virsh") is None:
        pytest.skip("libvirt is not installed")
    subprocess.run([str(ROOT / "scripts" / "start-libvirt.sh")], check=True, capture_output=True)
    disk = workdir / "disk.qcow2"
    shutil.copyfile(image, disk)
    disk.chmod(0o644)
    instance_id = str(uuid.uuid4())
    config = make_config_drive(workdir, instance_id, "e2e-guest")
    log = workdir / "serial.log"
    name = f"e2e-guest-{instance_id[:8]}"
    xml = workdir / "domain.xml"
    xml.write_text(DOMAIN_XML.format(name=name, disk=disk, config=config, log=log))
    virsh = ["virsh", "-c", "qemu:///system"]
    subprocess.run([*virsh, "create", str(xml)], check=True, capture_output=True, text=True)
    try:
        wait_for(log, MARKER, domain=name)
        assert wait_for(log, r"instance-id: (\S+)", domain=name).group(1) == instance_id
        assert wait_for(log, r"hostname: (\S+)", domain=name).group(1) == "e2e-guest"
        wait_for(log, "user-data: hello from user-data", domain=name)
        disks = wait_for(log, r"KUMO-DISKS: ([^\r\n]*)", domain=name).group(1).split()
        assert {"vda", "vdb"} <= set(disks)
        # The power button powers it off cleanly (what `virsh shutdown` sends).
        subprocess.run([*virsh, "shutdown", name], check=True, capture_output=True)
        wait_for(log, "KUMO-POWEROFF", timeout=60, domain=name)
    finally:
        subprocess.run([*virsh, "destroy", name], capture_output=True)


def test_boots_under_qemu_and_gets_an_address_by_dhcp(image: Path, workdir: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    log = workdir / "serial.log"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-machine",
            "pc,accel=tcg",
            "-m",
            "256",
            "-nographic",
            "-no-reboot",
            "-drive",
            f"file={image},format=qcow2,if=virtio,snapshot=on",
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-serial",
            f"file:{log}",
            "-monitor",
            "none",
            "-display",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(log, MARKER)
        assert wait_for(log, r"KUMO-IP: (\S+)").group(1) == "10.0.2.15"  # qemu's user-mode DHCP
        assert "KUMO-CONFIG-DRIVE: none" in wait_for(log, r"KUMO-CONFIG-DRIVE: \S+").group(0)
    finally:
        proc.kill()
        proc.wait()
        if proc.returncode not in (0, -9) and proc.stderr is not None:
            print(os.fsdecode(proc.stderr.read()))
