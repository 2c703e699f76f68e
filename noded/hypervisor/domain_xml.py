"""Libvirt domain XML for a kumo guest: explicit disk formats, the serial
console logged to a file, the config drive as a second virtio disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr


@dataclass(frozen=True)
class DiskSpec:
    path: Path
    fmt: str  # qcow2 | raw: always explicit, never probed
    target: str  # vda, vdb, ...
    read_only: bool = False
    serial: str = ""


@dataclass(frozen=True)
class GuestSpec:
    instance_id: str
    name: str  # libvirt domain name (kumo-<id>)
    vcpus: int
    ram_mb: int
    disks: list[DiskSpec]
    console_log: Path
    virt_type: str = "kvm"
    nics: list[str] = field(default_factory=list)  # raw <interface> XML, added by networks
    title: str = ""
    # Which node daemon manages the guest (its instances directory): several
    # node daemons on one host (tests, make up) each see only their own guests.
    owner: str = ""


OWNER_NS = "https://kumo.cloud/xmlns/noded/1"


def _disk(d: DiskSpec) -> str:
    ro = "\n      <readonly/>" if d.read_only else ""
    serial = f"\n      <serial>{d.serial}</serial>" if d.serial else ""
    return f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type={quoteattr(d.fmt)} cache='none' discard='unmap'/>
      <source file={quoteattr(str(d.path))}/>
      <target dev={quoteattr(d.target)} bus='virtio'/>{ro}{serial}
    </disk>"""


def domain_xml(spec: GuestSpec) -> str:
    cpu = "<cpu mode='host-passthrough'/>" if spec.virt_type == "kvm" else ""
    disks = "".join(_disk(d) for d in spec.disks)
    nics = "".join("\n    " + n for n in spec.nics)
    log = quoteattr(str(spec.console_log))
    return f"""<domain type={quoteattr(spec.virt_type)}>
  <name>{spec.name}</name>
  <uuid>{spec.instance_id}</uuid>
  <title>{spec.title or spec.name}</title>
  <metadata>
    <kumo:owner xmlns:kumo={quoteattr(OWNER_NS)}>{escape(spec.owner)}</kumo:owner>
  </metadata>
  <memory unit='MiB'>{spec.ram_mb}</memory>
  <vcpu>{spec.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>{disks}{nics}
    <serial type='file'>
      <source path={log} append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""
