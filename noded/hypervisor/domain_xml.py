"""Libvirt domain XML for a kumo guest: explicit disk formats, the serial
console on a pty (the interactive console) and logged to a file, the config drive as a second virtio disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr


@dataclass(frozen=True)
class NetworkDisk:
    """A disk served over the network (Ceph RBD, ...): libvirt's
    <disk type='network'>, for shared storage backends."""

    protocol: str  # rbd
    name: str  # pool/image
    hosts: tuple[tuple[str, int], ...] = ()
    auth_username: str = ""
    secret_uuid: str = ""  # a libvirt secret (usage type ceph) holding the key


@dataclass(frozen=True)
class DiskSpec:
    path: Path
    fmt: str  # qcow2 | raw: always explicit, never probed
    target: str  # vda, vdb, ...
    read_only: bool = False
    # Volumes carry their id (truncated to 20 chars): attachments are found
    # by it across noded restarts.
    serial: str = ""
    network: NetworkDisk | None = None  # set: `path` is unused


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


def _source(d: DiskSpec) -> tuple[str, str]:
    """The disk type and its <source> (and <auth>) elements."""
    n = d.network
    if n is None:
        return "file", f"<source file={quoteattr(str(d.path))}/>"
    hosts = "".join(f"<host name={quoteattr(h)} port='{int(p)}'/>" for h, p in n.hosts)
    src = f"<source protocol={quoteattr(n.protocol)} name={quoteattr(n.name)}>{hosts}</source>"
    if n.auth_username:
        src = (
            f"<auth username={quoteattr(n.auth_username)}>"
            f"<secret type='ceph' uuid={quoteattr(n.secret_uuid)}/></auth>\n      " + src
        )
    return "network", src


def disk_xml(d: DiskSpec) -> str:
    """One <disk> element (also what hot-plug attaches)."""
    ro = "\n      <readonly/>" if d.read_only else ""
    serial = f"\n      <serial>{escape(d.serial)}</serial>" if d.serial else ""
    kind, source = _source(d)
    return f"""
    <disk type='{kind}' device='disk'>
      <driver name='qemu' type={quoteattr(d.fmt)} cache='none' discard='unmap'/>
      {source}
      <target dev={quoteattr(d.target)} bus='virtio'/>{ro}{serial}
    </disk>"""


def domain_xml(spec: GuestSpec) -> str:
    cpu = "<cpu mode='host-passthrough'/>" if spec.virt_type == "kvm" else ""
    disks = "".join(disk_xml(d) for d in spec.disks)
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
    <serial type='pty'>
      <log file={log} append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""
