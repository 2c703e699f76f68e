"""Checks that uploaded bytes are the disk format their image declares, and
are safe to hand to qemu.

Disk images are untrusted input (CVE-2015-5162, CVE-2022-47951,
CVE-2024-32498). The rules:
- qemu-img always gets the declared format (`-f`), never probes, and runs
  under CPU and memory limits with a timeout.
- A qcow2 header is parsed here first: a backing file, an external data file,
  encryption, a corrupt flag or an unknown incompatible feature rejects the
  image before qemu-img ever opens it (qemu-img would open a data file).
- `-f raw` accepts any bytes, so an image declared raw is also sniffed for the
  headers of other image formats: a qcow2 (or VMDK, VHD, ...) uploaded as
  "raw" would let a guest see (and a later probe honour) a file it was not
  meant to; it is rejected.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

QEMU_IMG_TIMEOUT = 60.0
# Limits as OpenStack uses for `qemu-img info` on untrusted images.
QEMU_IMG_ADDRESS_SPACE = 1024 * 1024 * 1024
QEMU_IMG_CPU_SECONDS = 30

QCOW_MAGIC = b"QFI\xfb"
# qcow2 incompatible feature bits.
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2
)
EXT_DATA_FILE = 0x44415441
EXT_ENCRYPTION = 0x0537BE77
EXT_BACKING_FORMAT = 0xE2792ACA


class FormatRejected(Exception):
    """The bytes are not the declared format, or not safe; str() says why."""


@dataclass(frozen=True)
class Inspection:
    format: str
    virtual_size: int


def _read_ends(path: Path) -> tuple[bytes, bytes, int]:
    with open(path, "rb") as fh:
        head = fh.read(65536)
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 512))
        tail = fh.read(512)
    return head, tail, size


def sniff(head: bytes, tail: bytes) -> str | None:
    """Names the image format whose signature the bytes carry, or None."""
    checks: list[tuple[str, bool]] = [
        ("qcow2", head.startswith(QCOW_MAGIC)),
        ("qed", head.startswith(b"QED\x00")),
        ("vmdk", head.startswith(b"KDMV") or head.startswith(b"COWD")),
        ("vmdk (descriptor)", head.lstrip().startswith(b"# Disk DescriptorFile")),
        ("vdi", len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe"),
        ("vhdx", head.startswith(b"vhdxfile")),
        ("vpc", head.startswith(b"conectix") or tail.startswith(b"conectix")),
        ("luks", head.startswith(b"LUKS\xba\xbe")),
        ("parallels", head.startswith(b"WithoutFreeSpace") or head.startswith(b"WithouFreSpacExt")),
        ("bochs", head.startswith(b"Bochs Virtual HD Image")),
        ("cloop", head.startswith(b"#!/bin/sh\n#V2.0 Format")),
        ("dmg", tail.startswith(b"koly")),
    ]
    for name, hit in checks:
        if hit:
            return name
    return None


def check_qcow2_header(head: bytes, file_size: int) -> int:
    """Parses a qcow2 header; rejects unsafe features. Returns the virtual size."""
    if len(head) < 72 or not head.startswith(QCOW_MAGIC):
        raise FormatRejected("declared qcow2, but the data does not start with the qcow2 magic")
    (version,) = struct.unpack_from(">I", head, 4)
    if version not in (2, 3):
        raise FormatRejected(f"qcow version {version} is not supported (only qcow2 versions 2 and 3)")
    backing_offset, backing_size = struct.unpack_from(">QI", head, 8)
    (virtual_size,) = struct.unpack_from(">Q", head, 24)
    (crypt_method,) = struct.unpack_from(">I", head, 32)
    if backing_offset or backing_size:
        name = ""
        if backing_offset + backing_size <= len(head) and 0 < backing_size <= 1023:
            name = head[backing_offset : backing_offset + backing_size].decode("utf-8", "replace")
        raise FormatRejected(
            "qcow2 image has a backing file"
            + (f" ({name!r})" if name else "")
            + "; upload a standalone image"
        )
    if crypt_method:
        raise FormatRejected("qcow2 image is encrypted; upload an unencrypted image")
    header_length = 72
    if version == 3:
        if len(head) < 104:
            raise FormatRejected("qcow2 header is truncated")
        (incompat,) = struct.unpack_from(">Q", head, 72)
        (header_length,) = struct.unpack_from(">I", head, 100)
        if incompat & INCOMPAT_DATA_FILE:
            raise FormatRejected("qcow2 image uses an external data file; upload a standalone image")
        if incompat & INCOMPAT_CORRUPT:
            raise FormatRejected("qcow2 image is marked corrupt")
        if incompat & ~INCOMPAT_KNOWN:
            raise FormatRejected(f"qcow2 image uses unknown incompatible features ({incompat:#x})")
        if header_length < 104 or header_length > len(head):
            raise FormatRejected(f"qcow2 header length {header_length} is not valid")
    # Header extensions: type, length, data padded to 8 bytes; type 0 ends them.
    pos = header_length
    while pos + 8 <= len(head):
        ext_type, ext_len = struct.unpack_from(">II", head, pos)
        if ext_type == 0:
            break
        if ext_type == EXT_DATA_FILE:
            name = head[pos + 8 : pos + 8 + min(ext_len, 1023)].decode("utf-8", "replace")
            raise FormatRejected(
                f"qcow2 image names an external data file ({name!r}); upload a standalone image"
            )
        if ext_type == EXT_ENCRYPTION:
            raise FormatRejected("qcow2 image is encrypted; upload an unencrypted image")
        pos += 8 + ((ext_len + 7) & ~7)
    if file_size < header_length:
        raise FormatRejected("qcow2 image is truncated")
    return virtual_size


def _qemu_img_info(path: Path, fmt: str) -> dict:
    cmd = ["qemu-img", "info", "-f", fmt, "--output=json", str(path)]
    prlimit = shutil.which("prlimit")
    if prlimit:
        cmd = [prlimit, f"--as={QEMU_IMG_ADDRESS_SPACE}", f"--cpu={QEMU_IMG_CPU_SECONDS}", "--", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise FormatRejected(f"qemu-img info did not finish within {QEMU_IMG_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[:500] or f"exit status {proc.returncode}"
        raise FormatRejected(f"not a valid {fmt} image: {detail}")
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise FormatRejected("qemu-img info gave no readable answer") from None
    if not isinstance(info, dict):
        raise FormatRejected("qemu-img info gave no readable answer")
    return info


def inspect(path: Path, declared: str) -> Inspection:
    """Checks the file at `path` is a safe image of the `declared` format
    ("qcow2" or "raw"); raises FormatRejected with the reason otherwise."""
    head, tail, size = _read_ends(path)
    found = sniff(head, tail)
    if declared == "raw":
        if found:
            raise FormatRejected(
                f"declared raw, but the data is a {found} image; declare its real format "
                "(qcow2) or convert it with qemu-img convert"
            )
    elif declared == "qcow2":
        if found != "qcow2":
            what = f"a {found} image" if found else "not a qcow2 image (no qcow2 header)"
            raise FormatRejected(f"declared qcow2, but the data is {what}")
        check_qcow2_header(head, size)
    else:
        raise FormatRejected(f"unsupported disk format {declared!r}")

    info = _qemu_img_info(path, declared)
    if info.get("format") != declared:
        raise FormatRejected(f"qemu-img reads the data as {info.get('format')!r}, not {declared}")
    if declared == "qcow2":
        if info.get("backing-filename") or info.get("full-backing-filename"):
            raise FormatRejected("qcow2 image has a backing file; upload a standalone image")
        data = (info.get("format-specific") or {}).get("data") or {}
        if data.get("data-file") or data.get("data-file-raw"):
            raise FormatRejected("qcow2 image uses an external data file; upload a standalone image")
        if data.get("encrypt") or info.get("encrypted"):
            raise FormatRejected("qcow2 image is encrypted; upload an unencrypted image")
        if data.get("corrupt"):
            raise FormatRejected("qcow2 image is marked corrupt")
    virtual = info.get("virtual-size")
    if not isinstance(virtual, int) or virtual <= 0:
        raise FormatRejected("qemu-img reports no virtual size")
    return Inspection(declared, virtual)
