"""A guest's files on the node: the qcow2 overlay on its cached image and the
NoCloud config drive. Formats are always given to qemu-img explicitly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FORMATS = {1: "qcow2", 2: "raw"}  # kumo.v1.DiskFormat values


class GuestFileError(Exception):
    pass


def run_tool(cmd: list[str], error: type[Exception] = GuestFileError) -> str:
    """Runs qemu-img (or another disk tool); its stderr becomes `error`'s message."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise error(f"{' '.join(cmd[:2])} failed: {(result.stderr or result.stdout).strip()[:500]}")
    return result.stdout


def virtual_size(path: Path, fmt: str) -> int:
    info = json.loads(run_tool(["qemu-img", "info", "-f", fmt, "--output=json", str(path)]))
    return int(info["virtual-size"])


def make_overlay(base: Path, base_format: str, out: Path, size_gb: int) -> None:
    """A qcow2 overlay backed by `base` (with its format named), grown to the
    flavor's disk size when that is larger than the image."""
    size = max(size_gb * 1024**3, virtual_size(base, base_format))
    tmp = out.with_suffix(".tmp")
    run_tool(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base), str(tmp), str(size)]
    )
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)


def make_config_drive(
    out: Path,
    instance_id: str,
    hostname: str,
    public_keys: list[str],
    user_data: bytes,
    network_config: str = "",
) -> None:
    """An ISO9660 volume labelled `cidata` (NoCloud): meta-data, user-data and,
    when given, network-config."""
    meta = [f"instance-id: {instance_id}", f"local-hostname: {hostname}"]
    if public_keys:
        meta.append("public-keys:")
        meta += [f"  - {json.dumps(k)}" for k in public_keys]
    with tempfile.TemporaryDirectory(prefix="cidata-") as tmp:
        src = Path(tmp)
        (src / "meta-data").write_text("\n".join(meta) + "\n")
        (src / "user-data").write_bytes(user_data)
        if network_config:
            (src / "network-config").write_text(network_config)
        iso = out.with_suffix(".tmp")
        tool = shutil.which("genisoimage") or shutil.which("mkisofs") or "genisoimage"
        run_tool([tool, "-quiet", "-V", "cidata", "-J", "-r", "-o", str(iso), str(src)])
    os.chmod(iso, 0o644)
    os.replace(iso, out)


def flatten(disk: Path, out: Path) -> None:
    """A standalone qcow2 of a guest's disk (its backing chain merged), for
    snapshots. -U: the guest may be running (crash-consistent copy)."""
    tmp = out.with_suffix(".tmp")
    run_tool(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", str(disk), str(tmp)])
    os.replace(tmp, out)
