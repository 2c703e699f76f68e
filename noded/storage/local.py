"""The local storage backend: volumes as qcow2 files on the node's disk.

    <root>/<volume id>.qcow2                     the volume
    <root>/snapshots/<volume id>/<snap id>.qcow2 its snapshots (full copies)

Every file is made under a `.part` name and renamed into place, so a crash
never leaves a half-made volume or snapshot that looks done. qemu-img always
gets the formats explicitly (-f/-O); nothing is probed. The same class over a
directory every node mounts (NFS) is a shared backend (`shared=True`)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from noded.compute.guest_files import run_tool
from noded.storage.backend import DiskSource, StorageBackend, StorageError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FORMATS = ("qcow2", "raw")


def _run(cmd: list[str]) -> str:
    return run_tool(cmd, StorageError)


def _info(path: Path, fmt: str) -> dict:
    # -U: a running guest may hold the file's lock; reading metadata is safe.
    return json.loads(_run(["qemu-img", "info", "-U", "-f", fmt, "--output=json", str(path)]))


def check_id(kind: str, value: str) -> str:
    """A volume or snapshot id that is safe in a file or image name."""
    if not _ID.match(value):
        raise StorageError(f"bad {kind} id {value!r}")
    return value


def check_image(image: Path, image_format: str) -> None:
    """Images are untrusted: one that names a backing file or an external
    data file would let it read files of this host; refused."""
    if image_format not in FORMATS:
        raise StorageError(f"unsupported image format {image_format!r}")
    info = _info(image, image_format)
    spec = info.get("format-specific", {}).get("data", {})
    if info.get("backing-filename") or info.get("full-backing-filename") or spec.get("data-file"):
        raise StorageError("the image refers to another file (backing or data file); refused")


class LocalBackend(StorageBackend):
    name = "local"

    def __init__(self, root: Path, shared: bool = False) -> None:
        self.root = Path(root)
        self.shared = shared
        (self.root / "snapshots").mkdir(parents=True, exist_ok=True)
        # qemu (libvirt-qemu) must reach the files; libvirt chowns a disk to
        # the qemu user while a guest uses it.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "snapshots", 0o755)

    # Paths

    def path(self, volume_id: str) -> Path:
        return self.root / f"{check_id('volume', volume_id)}.qcow2"

    def _snap_dir(self, volume_id: str) -> Path:
        return self.root / "snapshots" / check_id("volume", volume_id)

    def _snapshot_path(self, snapshot_id: str) -> Path | None:
        check_id("snapshot", snapshot_id)
        for found in (self.root / "snapshots").glob(f"*/{snapshot_id}.qcow2"):
            return found
        return None

    def _made(self, final: Path, make: Callable[[Path], object]) -> None:
        """Runs make(part) and renames part to final: all or nothing."""
        part = final.with_name(final.name + ".part")
        part.unlink(missing_ok=True)
        try:
            make(part)
            os.chmod(part, 0o644)
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)

    def _grow(self, path: Path, size_bytes: int) -> None:
        if int(_info(path, "qcow2")["virtual-size"]) < size_bytes:
            _run(["qemu-img", "resize", "-q", "-f", "qcow2", str(path), str(size_bytes)])

    # Volumes

    def volumes(self) -> list[str]:
        return sorted(p.name[: -len(".qcow2")] for p in self.root.glob("*.qcow2") if p.is_file())

    def exists(self, volume_id: str) -> bool:
        return self.path(volume_id).is_file()

    def create_empty(self, volume_id: str, size_bytes: int) -> None:
        self._made(
            self.path(volume_id),
            lambda part: _run(["qemu-img", "create", "-q", "-f", "qcow2", str(part), str(size_bytes)]),
        )

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size_bytes: int) -> None:
        check_image(image, image_format)

        def make(part: Path) -> None:
            _run(["qemu-img", "convert", "-q", "-f", image_format, "-O", "qcow2", str(image), str(part)])
            self._grow(part, size_bytes)

        self._made(self.path(volume_id), make)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_bytes: int) -> None:
        snap = self._snapshot_path(snapshot_id)
        if snap is None:
            raise StorageError(f"snapshot {snapshot_id} is not on this node")

        def make(part: Path) -> None:
            _run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", str(snap), str(part)])
            self._grow(part, size_bytes)

        self._made(self.path(volume_id), make)

    def delete(self, volume_id: str) -> None:
        self.path(volume_id).unlink(missing_ok=True)
        shutil.rmtree(self._snap_dir(volume_id), ignore_errors=True)

    def size(self, volume_id: str) -> int:
        path = self.path(volume_id)
        if not path.is_file():
            raise StorageError(f"volume {volume_id} does not exist")
        return int(_info(path, "qcow2")["virtual-size"])

    def extend(self, volume_id: str, size_bytes: int) -> None:
        # Without -U: qemu-img refuses while a guest holds the file, as it must.
        self._grow(self.path(volume_id), size_bytes)

    # Snapshots

    def _copy(self, volume_id: str, out: Path, live: bool) -> None:
        src = self.path(volume_id)
        if not src.is_file():
            raise StorageError(f"volume {volume_id} does not exist")
        share = ["-U"] if live else []
        self._made(
            out,
            lambda part: _run(
                ["qemu-img", "convert", "-q", *share, "-f", "qcow2", "-O", "qcow2", str(src), str(part)]
            ),
        )

    def snapshot_create(self, volume_id: str, snapshot_id: str, live: bool) -> None:
        d = self._snap_dir(volume_id)
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        self._copy(volume_id, d / f"{check_id('snapshot', snapshot_id)}.qcow2", live)

    def snapshot_delete(self, snapshot_id: str) -> None:
        path = self._snapshot_path(snapshot_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def snapshots(self, volume_id: str) -> list[str]:
        return sorted(p.name[: -len(".qcow2")] for p in self._snap_dir(volume_id).glob("*.qcow2"))

    def disk_source(self, volume_id: str) -> DiskSource:
        return DiskSource("qcow2", path=self.path(volume_id))

    def export_qcow2(self, volume_id: str, out: Path, live: bool) -> None:
        self._copy(volume_id, out, live)
