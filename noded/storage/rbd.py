"""The Ceph RBD backend: volumes as RBD images in one pool, which guests
reach through librbd (libvirt network disks with a cephx secret).

    <pool>/volume-<volume id>          a volume (raw)
    <pool>/volume-<volume id>@snap-<snapshot id>   its snapshots (RBD snapshots)

An image is made under `volume-<id>.part` and renamed into place, so a crash
never leaves a half-made volume that looks complete. Images come in through
`qemu-img convert -O raw` into the pool (qemu's rbd driver, qemu-block-extra);
a volume from a snapshot is a full copy (`rbd cp image@snap`), so deleting a
snapshot or its volume touches nothing else. Everything runs through the
`rbd` and `qemu-img` tools with the node's client key (no ceph.conf needed:
monitors, user and keyring are the node's settings).

Every node of the pool sees every volume (`shared`): the volumes step never
deletes one for being absent from its desired state, only when told to."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from noded.compute.guest_files import run_tool
from noded.hypervisor.domain_xml import NetworkDisk
from noded.storage.backend import DiskSource, StorageBackend, StorageError
from noded.storage.local import check_id, check_image

_PREFIX = "volume-"
_SNAP = "snap-"
MiB = 1024**2


@dataclass(frozen=True)
class RbdSettings:
    """A node's settings for the rbd backend."""

    monitors: tuple[tuple[str, int], ...]  # (host, port) of the monitors (v1 protocol)
    pool: str
    user: str  # the cephx client name without "client."
    keyring: Path

    @classmethod
    def parse_monitors(cls, text: str) -> tuple[tuple[str, int], ...]:
        """ "host[:port],host[:port]" (port 6789 when left out)."""
        out = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            host, _, port = part.rpartition(":") if ":" in part else (part, "", "6789")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise StorageError(f"bad rbd monitor address {part!r} (host:port)")
            out.append((host, int(port)))
        if not out:
            raise StorageError("the rbd backend needs at least one monitor address")
        return tuple(out)

    def key(self) -> str:
        """The client's secret from its keyring ("key = ..." under [client.<user>])."""
        try:
            text = self.keyring.read_text()
        except OSError as exc:
            raise StorageError(f"cannot read the rbd keyring {self.keyring}: {exc}") from None
        m = re.search(r"^\s*key\s*=\s*(\S+)\s*$", text, re.M)
        if m is None:
            raise StorageError(f"no key in the rbd keyring {self.keyring}")
        return m.group(1)

    def secret_uuid(self) -> str:
        """The libvirt secret that holds the key: one per cluster and user."""
        mons = ",".join(f"{h}:{p}" for h, p in self.monitors)
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kumo-ceph:client.{self.user}@{mons}"))


class RbdBackend(StorageBackend):
    name = "rbd"
    shared = True

    def __init__(self, settings: RbdSettings) -> None:
        self.s = settings
        self._mon_host = ",".join(f"{h}:{p}" for h, p in settings.monitors)
        self._owner: dict[str, str] = {}  # snapshot id -> volume id, as seen

    # Tools

    def _rbd(self, *args: str) -> str:
        s = self.s
        cmd = [
            "rbd",
            "--conf",
            "/dev/null",
            "-m",
            self._mon_host,
            "--id",
            s.user,
            "--keyring",
            str(s.keyring),
        ]
        return run_tool([*cmd, "-p", s.pool, *args], StorageError)

    def _qemu_uri(self, image: str) -> str:
        mons = self._mon_host.replace(":", "\\:")
        return f"rbd:{self.s.pool}/{image}:conf=/dev/null:mon_host={mons}:id={self.s.user}:keyring={self.s.keyring}"

    @staticmethod
    def image(volume_id: str) -> str:
        return _PREFIX + check_id("volume", volume_id)

    def _images(self) -> list[str]:
        return json.loads(self._rbd("ls", "--format", "json") or "[]")

    def _info(self, image: str) -> dict | None:
        try:
            return json.loads(self._rbd("info", "--format", "json", image))
        except StorageError as exc:
            if "No such file" in str(exc) or "error opening image" in str(exc):
                return None
            raise

    def _made(self, volume_id: str, make: object, size_bytes: int) -> None:
        """Makes the image under a .part name, grows it, renames it into place."""
        final = self.image(volume_id)
        part = final + ".part"
        if self._info(part) is not None:  # a stale half-made one: from scratch
            self._rbd("rm", "--no-progress", part)
        make(part)  # type: ignore[operator]
        info = self._info(part)
        if info is None:
            raise StorageError(f"{part} was not made")
        if info["size"] < size_bytes:
            self._rbd("resize", "--no-progress", "--size", f"{size_bytes // MiB}M", part)
        self._rbd("rename", part, final)

    # StorageBackend

    def volumes(self) -> list[str]:
        return sorted(
            n.removeprefix(_PREFIX)
            for n in self._images()
            if n.startswith(_PREFIX) and not n.endswith(".part")
        )

    def exists(self, volume_id: str) -> bool:
        return self._info(self.image(volume_id)) is not None

    def create_empty(self, volume_id: str, size_bytes: int) -> None:
        self._made(
            volume_id, lambda part: self._rbd("create", "--size", f"{size_bytes // MiB}M", part), size_bytes
        )

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size_bytes: int) -> None:
        check_image(image, image_format)

        def make(part: str) -> None:
            uri = self._qemu_uri(part)
            run_tool(
                ["qemu-img", "convert", "-q", "-f", image_format, "-O", "raw", str(image), uri], StorageError
            )

        self._made(volume_id, make, size_bytes)

    def _snapshot_owner(self, snapshot_id: str) -> str | None:
        sid = check_id("snapshot", snapshot_id)
        vid = self._owner.get(sid)
        if vid is not None and sid in self.snapshots(vid):
            return vid
        for vid in self.volumes():  # not seen yet (a restart): look through the pool
            if sid in self.snapshots(vid):
                return vid
        return None

    def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_bytes: int) -> None:
        vid = self._snapshot_owner(snapshot_id)
        if vid is None:
            raise StorageError(f"snapshot {snapshot_id} is not in pool {self.s.pool}")
        src = f"{self.image(vid)}@{_SNAP}{snapshot_id}"
        self._made(volume_id, lambda part: self._rbd("cp", "--no-progress", src, part), size_bytes)

    def delete(self, volume_id: str) -> None:
        name = self.image(volume_id)
        for img in (name, name + ".part"):
            if self._info(img) is None:
                continue
            self._rbd("snap", "purge", "--no-progress", img)
            self._rbd("rm", "--no-progress", img)

    def size(self, volume_id: str) -> int:
        info = self._info(self.image(volume_id))
        if info is None:
            raise StorageError(f"volume {volume_id} does not exist")
        return int(info["size"])

    def extend(self, volume_id: str, size_bytes: int) -> None:
        self._rbd("resize", "--no-progress", "--size", f"{size_bytes // MiB}M", self.image(volume_id))

    def snapshot_create(self, volume_id: str, snapshot_id: str, live: bool) -> None:
        # An RBD snapshot is atomic; with a running guest, crash-consistent.
        self._rbd("snap", "create", f"{self.image(volume_id)}@{_SNAP}{check_id('snapshot', snapshot_id)}")
        self._owner[snapshot_id] = volume_id

    def snapshot_delete(self, snapshot_id: str) -> None:
        vid = self._snapshot_owner(snapshot_id)
        if vid is None:
            return
        self._rbd("snap", "rm", "--no-progress", f"{self.image(vid)}@{_SNAP}{snapshot_id}")
        self._owner.pop(snapshot_id, None)

    def snapshots(self, volume_id: str) -> list[str]:
        snaps = json.loads(self._rbd("snap", "ls", "--format", "json", self.image(volume_id)) or "[]")
        out = sorted(s["name"].removeprefix(_SNAP) for s in snaps if s["name"].startswith(_SNAP))
        for sid in out:
            self._owner[sid] = volume_id
        return out

    def disk_source(self, volume_id: str) -> DiskSource:
        return DiskSource(
            "raw",
            network=NetworkDisk(
                "rbd",
                f"{self.s.pool}/{self.image(volume_id)}",
                self.s.monitors,
                auth_username=self.s.user,
                secret_uuid=self.s.secret_uuid(),
            ),
        )

    def export_qcow2(self, volume_id: str, out: Path, live: bool) -> None:
        uri = self._qemu_uri(self.image(volume_id))
        run_tool(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", uri, str(out)], StorageError)
