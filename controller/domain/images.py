"""The image catalog: who may see and change which image, uploads into the
blob store (verified, format-checked, quota-checked), downloads, deletion.

States (kumo.v1.ImageStatus):

    QUEUED --upload starts--> SAVING --stored, verified, checked--> ACTIVE
      ^                         |  \\--bytes not the declared format--> KILLED
      +--stream cut, client gone, wrong checksum, limit or quota hit--+
    QUEUED or SAVING --an instance snapshot's node gave up (or its instance went)--> KILLED
    any of them --DeleteImage--> DELETED (a record only admins can list)

A failed transfer sends the image back to QUEUED (status_reason says why) so
the upload can be retried; bytes that fail the format check KILL it, since
sending them again cannot help. Nothing but a finished, checked upload ever
makes an image ACTIVE, and its temporary file is always removed.

Concurrency: state changes that depend on a check (quota, "still SAVING",
"last user of this blob") run in a write transaction, which holds the SQLite
write lock (or locks the project row on PostgreSQL); the blob file is renamed
into place or aside inside that transaction, so a delete and an upload of the
same content cannot interleave.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from controller import clock
from controller.auth.principal import Principal, Role
from controller.config import ControllerConfig
from controller.db import identity as identity_store
from controller.db import images as store
from controller.db.database import write_transaction
from controller.db.models import Image
from controller.domain import idempotency, imageformat
from controller.domain.blobstore import READ_CHUNK, BlobReader, BlobStore, BlobWriter
from controller.domain.idempotency import RequestKey
from controller.domain.quotas import Quotas
from controller.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    KumoError,
    PermissionDenied,
    ResourceExhausted,
    not_found,
)
from kumo.ids import is_uuid

log = logging.getLogger(__name__)

QUEUED, SAVING, ACTIVE, KILLED, DELETED = (
    store.QUEUED,
    store.SAVING,
    store.ACTIVE,
    store.KILLED,
    store.DELETED,
)
PRIVATE, PUBLIC = store.PRIVATE, store.PUBLIC
FORMATS = {1: "qcow2", 2: "raw"}  # kumo.v1.DiskFormat
STATUS_NAMES = {QUEUED: "queued", SAVING: "saving", ACTIVE: "active", KILLED: "killed", DELETED: "deleted"}
CUT_OFF = "the stream was cut off before it finished (client gone or cancelled)"
# During an upload, the quota and the image's state are checked this often.
RECHECK_BYTES = 256 * 1024 * 1024


_Row = TypeVar("_Row", Image, store.LaunchImage)


def _seen(caller: Principal, image_id: str, row: _Row | None) -> _Row:
    """`row` (the image `image_id` as read) if the caller may see it; NOT_FOUND
    otherwise, exactly as for a missing or deleted one: its project's members
    and admins see it, everyone a public one."""
    if row is None or row.status == DELETED:
        raise not_found("image", image_id)
    if not (caller.can_see(row.project_id) or row.visibility == PUBLIC):
        raise not_found("image", image_id)
    return row


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


@dataclass
class UploadHeader:
    image_id: str
    expected_sha256: str = ""
    expected_size: int = 0


class Images:
    def __init__(self, cfg: ControllerConfig, quotas: Quotas) -> None:
        self.quotas = quotas
        self.blobs = BlobStore(cfg.image_dir)
        self.max_upload = cfg.image_max_upload_bytes
        self.quota_bytes = cfg.image_quota_bytes

    # Start-up

    def recover(self) -> None:
        """Puts the catalog and the store back in agreement after a crash or a
        stop: unfinished uploads go, interrupted deletes finish or undo,
        uploads that were running are QUEUED again, unused blobs go."""
        parts, trashed = self.blobs.leftovers()
        for part in parts:
            part.unlink(missing_ok=True)
        known = set(store.all_blobs())
        for sha, path in trashed:
            if sha in known and not self.blobs.exists(sha):
                self.blobs.untrash(path, sha)  # the delete never committed
            else:
                self.blobs.purge(path)
        now = clock.now()
        for row in store.saving_images():
            store.set_status(row.id, QUEUED, "upload interrupted: the controller stopped", now, SAVING)
        for sha in store.unused_blobs():
            self._drop_blob(sha)
        known = set(store.all_blobs())
        stored = self.blobs.stored()
        for sha, path in stored.items():
            if sha not in known:
                path.unlink(missing_ok=True)
        missing = known - set(stored)
        if missing:
            log.error("image blobs missing from the store", extra={"sha256": ",".join(sorted(missing))})
        if parts or trashed:
            log.info("image store cleaned", extra={"partial_uploads": len(parts), "trash": len(trashed)})

    def store_blob(self, chunks: Iterable[bytes], commit: Callable[[str, int], None]) -> str:
        """Streams `chunks` into the blob store as a blob no image names (an
        instance move's disk); `commit(sha256, size)` records its user in the
        transaction that places it, so a crash or a refusal leaves no orphan."""
        writer = self.blobs.writer()
        placed = False
        try:
            for data in chunks:
                writer.write(data)
            sha = writer.finish()
            with write_transaction():
                store.ensure_blob(sha, writer.size, clock.now())
                store.lock_blob(sha)
                placed = self.blobs.place(writer)
                commit(sha, writer.size)
            return sha
        except BaseException:
            if placed:
                self._drop_blob(writer.sha256)
            else:
                writer.discard()
            raise

    def drop_blob(self, sha: str) -> None:
        """Removes a blob once nothing uses it (no image, no move)."""
        self._drop_blob(sha)

    def _drop_blob(self, sha: str) -> None:
        trash = None
        try:
            with write_transaction():
                store.lock_blob(sha)
                if store.blob_users(sha):
                    return
                store.delete_blob(sha)
                trash = self.blobs.trash(sha)
        except BaseException:
            if trash is not None:
                self.blobs.untrash(trash, sha)
            raise
        if trash is not None:
            self.blobs.purge(trash)

    # Visibility

    def _visible(self, caller: Principal, image_id: str) -> Image:
        """The image if the caller may see it; NOT_FOUND otherwise, exactly as
        for a missing one."""
        return _seen(caller, image_id, store.get_image(image_id))

    def _owned(self, caller: Principal, image_id: str) -> Image:
        """The image if the caller may change it: its project's members, admins."""
        row = self._visible(caller, image_id)
        if not caller.can_see(row.project_id):
            raise PermissionDenied(
                f"image {image_id!r} is public but belongs to another project; "
                "only that project or an admin can change or delete it",
                reason="IMAGE_NOT_OWNER",
            )
        return row

    # Catalog

    def get(self, caller: Principal, image_id: str) -> Image:
        return self._visible(caller, image_id)

    def find_active(self, caller: Principal, ref: str) -> store.LaunchImage:
        """The active image an instance or a volume is made from, by id or by
        name (a name must be unambiguous among the images the caller sees);
        by id, only the columns a create needs are read (store.LaunchImage)."""
        if is_uuid(ref):
            row = _seen(caller, ref, store.launch_image(ref))
        else:
            rows, _ = store.list_images(
                2, "", None if caller.is_admin else caller.project_id, name=ref, status=ACTIVE
            )
            if not rows:
                raise not_found("image", ref)
            if len(rows) > 1:
                raise InvalidArgument(f"more than one image is named {ref!r}; use its id")
            row = store.launch_of(rows[0])
        if row.status != ACTIVE:
            raise FailedPrecondition(f"image {row.name!r} is not active", reason="IMAGE_NOT_ACTIVE")
        return row

    def list(
        self,
        caller: Principal,
        page_size: int,
        page_token: str,
        name: str = "",
        visibility: int = 0,
        status: int = 0,
        project_id: str = "",
    ) -> tuple[list[Image], str]:
        if status == DELETED and not caller.is_admin:
            raise PermissionDenied("only admins can list deleted images", reason="ROLE_REQUIRED")
        viewer = None if caller.is_admin else caller.project_id
        return store.list_images(page_size, page_token, viewer, name, visibility, status, project_id)

    def create(
        self, caller: Principal, fields: dict[str, Any], properties: dict[str, str], request_key: RequestKey
    ) -> Image:
        project_id = caller.project_id
        with write_transaction():
            store.lock_project(project_id)  # then a racing twin's key is committed or not begun
            existing = idempotency.lookup(request_key, "image", project_id)
            if existing:
                return self._visible(caller, existing)
            self.quotas.charge(project_id, {"images": 1}, caller.project_name)
            row = store.insert_image(clock.new_id(), project_id, clock.now(), properties, **fields)
            if request_key:
                idempotency.record(request_key, "image", project_id, row.id)
            return row

    def update(
        self,
        caller: Principal,
        image_id: str,
        fields: dict[str, Any],
        replace_properties: dict[str, str] | None,
        set_properties: dict[str, str],
        remove_properties: Iterable[str],
        max_properties: int,
    ) -> Image:
        with write_transaction():
            row = self._owned(caller, image_id)
            changes = dict(fields)
            if replace_properties is not None or set_properties or remove_properties:
                props = store.properties(row) if replace_properties is None else dict(replace_properties)
                props.update(set_properties)
                for key in remove_properties:
                    props.pop(key, None)
                if len(props) > max_properties:
                    raise InvalidArgument(
                        f"an image has at most {max_properties} properties; this would make {len(props)}"
                    )
                changes["properties"] = props
            return store.update_image(row, changes, clock.now())

    def delete(self, caller: Principal, image_id: str) -> None:
        trash: Path | None = None
        sha = ""
        try:
            with write_transaction():
                row = self._owned(caller, image_id)
                if row.protected:
                    raise FailedPrecondition(
                        f"image {row.name!r} is protected; unset protected first",
                        reason="IMAGE_PROTECTED",
                    )
                if store.mark_deleted(row.id, clock.now()):
                    self.quotas.release(row.project_id, {"images": 1})
                sha = row.checksum_sha256
                if row.status == ACTIVE and sha:
                    store.lock_blob(sha)
                if row.status == ACTIVE and sha and store.blob_users(sha) == 0:
                    store.delete_blob(sha)
                    trash = self.blobs.trash(sha)
        except BaseException:
            if trash is not None:
                self.blobs.untrash(trash, sha)
            raise
        if trash is not None:
            self.blobs.purge(trash)
            log.info("image blob freed", extra={"sha256": sha})

    # Upload

    def upload(
        self,
        caller: Principal,
        header: UploadHeader,
        chunks: Iterable[bytes],
        connected: Callable[[], bool] | None = None,
    ) -> Image:
        """Streams `chunks` into the store for a QUEUED image; see the module doc.
        `connected` says whether the client is still there: a connection that
        drops can look like a clean end of the stream for a moment, so it is
        asked again just before the image becomes ACTIVE."""
        row = self._claim(caller, header)
        writer: BlobWriter | None = None
        committed = False
        try:
            started = time.monotonic()
            try:
                writer = self.blobs.writer()
                self._receive(row, header, writer, chunks)
                received = time.monotonic()
                sha = writer.finish()
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ResourceExhausted(
                        "the image store is out of disk space; tell the cloud operator",
                        reason="IMAGE_STORE_FULL",
                    ) from exc
                raise
            synced = time.monotonic()
            if header.expected_size and writer.size != header.expected_size:
                raise InvalidArgument(
                    f"received {writer.size} bytes, expected_size_bytes said {header.expected_size}: "
                    "the stream ended early",
                    reason="UPLOAD_INCOMPLETE",
                )
            if header.expected_sha256 and sha != header.expected_sha256:
                raise InvalidArgument(
                    f"checksum mismatch: the received bytes have sha256 {sha}, "
                    f"expected_sha256 was {header.expected_sha256}",
                    reason="CHECKSUM_MISMATCH",
                )
            if writer.size == 0:
                raise InvalidArgument("the upload carried no data", reason="UPLOAD_EMPTY")
            try:
                found = imageformat.inspect(writer.path, FORMATS[row.disk_format])
            except imageformat.FormatRejected as exc:
                reason = f"rejected: {exc}"
                store.set_status(row.id, KILLED, reason, clock.now(), SAVING)
                log.info("image rejected", extra={"image": row.id, "reason": str(exc)})
                raise InvalidArgument(f"image {row.id} {reason}", reason="IMAGE_REJECTED") from None
            checked = time.monotonic()
            if connected is not None and not connected():
                raise Aborted(CUT_OFF, reason="UPLOAD_CANCELLED")
            result = self._commit(row, writer, found.virtual_size)
            committed = True
            log.info(
                "image uploaded",
                extra={
                    "image": row.id,
                    "bytes": writer.size,
                    "sha256": sha,
                    "project": row.project_id,
                    "receive_s": round(received - started, 3),
                    "fsync_s": round(synced - received, 3),
                    "check_s": round(checked - synced, 3),
                    "commit_s": round(time.monotonic() - checked, 3),
                },
            )
            return result
        except BaseException as exc:
            if not committed:
                store.set_status(row.id, QUEUED, _failure(exc), clock.now(), SAVING)
            raise
        finally:
            if writer is not None and not committed:
                writer.discard()

    def _claim(self, caller: Principal, header: UploadHeader) -> Image:
        with write_transaction():
            row = self._owned(caller, header.image_id)
            if row.status != QUEUED:
                hint = {
                    SAVING: "an upload is already in progress",
                    ACTIVE: "it already has its data; images are immutable, create a new one",
                    KILLED: f"its data was {row.status_reason or 'rejected'}; delete it",
                }.get(row.status, "")
                raise FailedPrecondition(
                    f"image {row.id} is {STATUS_NAMES.get(row.status, row.status)}: {hint}",
                    reason="IMAGE_NOT_QUEUED",
                    status=STATUS_NAMES.get(row.status, row.status),
                )
            if header.expected_size:
                self._check_limits(row, header.expected_size)
            if store.set_status(row.id, SAVING, "", clock.now(), QUEUED) != 1:
                raise FailedPrecondition(
                    f"image {row.id} is saving: an upload is already in progress",
                    reason="IMAGE_NOT_QUEUED",
                    status="saving",
                )
            row.status = SAVING
            return row

    def _check_limits(self, row: Image, size: int) -> None:
        if size > self.max_upload:
            raise ResourceExhausted(
                f"the image is {size} bytes or more; the upload limit is {self.max_upload} bytes "
                f"({_gib(self.max_upload)})",
                reason="IMAGE_TOO_LARGE",
                limit=self.max_upload,
            )
        used = store.project_bytes(row.project_id)
        if used + size > self.quota_bytes:
            raise ResourceExhausted(
                f"the project's images would take {_gib(used + size)}, its quota is "
                f"{_gib(self.quota_bytes)} ({used} bytes in use + {size} > {self.quota_bytes})",
                reason="IMAGE_QUOTA_BYTES",
                limit=self.quota_bytes,
            )

    def _receive(self, row: Image, header: UploadHeader, writer: BlobWriter, chunks: Iterable[bytes]) -> None:
        limit = min(self.max_upload, header.expected_size or self.max_upload)
        recheck = RECHECK_BYTES
        for data in chunks:
            if not data:
                continue
            writer.write(data)
            if writer.size > limit:
                if header.expected_size and writer.size > header.expected_size:
                    raise InvalidArgument(
                        f"the stream carries more than expected_size_bytes ({header.expected_size})",
                        reason="UPLOAD_TOO_LONG",
                    )
                self._check_limits(row, writer.size)
            if writer.size >= recheck:
                recheck = writer.size + RECHECK_BYTES
                current = store.get_image(row.id)
                if current is None or current.status != SAVING:
                    raise Aborted(f"image {row.id} was deleted during the upload", reason="IMAGE_DELETED")
                self._check_limits(row, writer.size)

    def _commit(self, row: Image, writer: BlobWriter, virtual_size: int) -> Image:
        placed = False
        try:
            with write_transaction():
                store.lock_project(row.project_id)
                store.lock_image(row.id)
                current = store.get_image(row.id)
                if current is None or current.status != SAVING:
                    raise Aborted(f"image {row.id} was deleted during the upload", reason="IMAGE_DELETED")
                self._check_limits(row, writer.size)
                now = clock.now()
                store.ensure_blob(writer.sha256, writer.size, now)
                store.lock_blob(writer.sha256)
                placed = self.blobs.place(writer)
                if store.activate(row.id, writer.size, virtual_size, writer.sha256, now) != 1:
                    raise Aborted(f"image {row.id} was deleted during the upload", reason="IMAGE_DELETED")
                return store.get_image(row.id)
        except BaseException:
            if placed:  # the transaction did not make it: the new blob has no user
                self._drop_blob(writer.sha256)
            raise

    # Snapshots a node gave up on

    def fail_snapshot(self, image_id: str, instance_id: str, fault: str) -> bool:
        """KILLs the image of an instance snapshot the node could not make or
        send, `fault` (the node's words) as its reason, so it never waits in
        QUEUED for data that will not come. The caller's transaction holds
        it; an image already ACTIVE (the upload made it, only the node's
        answer was lost), KILLED or DELETED stays as it is. True if killed."""
        reason = f"instance {instance_id}: {fault}"[:1000]
        now = clock.now()
        killed = any(
            store.set_status(image_id, KILLED, reason, now, state) == 1 for state in (QUEUED, SAVING)
        )
        if killed:
            log.info("snapshot image killed", extra={"image": image_id, "instance": instance_id})
        return killed

    # Seeding (make up)

    def seed(self, path: Path, name: str, disk_format: int, project_name: str = "admin") -> Image | None:
        """Imports a local image file as a public image of `project_name`,
        unless that project already has an active image of that name. Goes
        through the same checks as an upload. Returns the new image, or None."""
        project = identity_store.find_project(project_name)
        if project is None or not path.is_file():
            return None
        caller = Principal("", "system", project.id, project.name, Role.ADMIN, "", 0.0)
        rows, _ = store.list_images(1000, "", project.id, name=name, status=ACTIVE, project_id=project.id)
        if rows:
            return None
        fields = {"name": name, "disk_format": disk_format, "visibility": PUBLIC}
        row = self.create(caller, fields, {"source": str(path)}, "")
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with open(path, "rb", buffering=0) as fh:
                while data := fh.read(4 * 1024 * 1024):
                    yield data

        image = self.upload(caller, UploadHeader(row.id, expected_size=size), chunks())
        log.info("image seeded", extra={"image": image.id, "image_name": name, "path": str(path)})
        return image

    # Download

    def open_data(
        self, caller: Principal, image_id: str, offset: int, length: int
    ) -> tuple[Image, Iterator[bytes]]:
        """Checks access and range, opens the blob, and returns the image and
        an iterator of its bytes from `offset`."""
        row = self._visible(caller, image_id)
        if row.status != ACTIVE:
            raise FailedPrecondition(
                f"image {row.id} is {STATUS_NAMES.get(row.status)}; only active images have data",
                reason="IMAGE_NOT_ACTIVE",
            )
        if offset < 0 or offset > row.size_bytes:
            raise InvalidArgument(
                f"offset must be between 0 and the image size {row.size_bytes}, got {offset}"
            )
        if length < 0:
            raise InvalidArgument(f"length must not be negative, got {length}")
        reader = self.open_blob(row.checksum_sha256)
        return row, reader.chunks(offset, length, READ_CHUNK)

    def open_blob(self, sha256: str) -> BlobReader:
        """The node-facing path: a blob by its sha256 (authorization is the caller's job)."""
        return self.blobs.open(sha256)


def _failure(exc: BaseException) -> str:
    """The status_reason of an image whose upload failed."""
    if isinstance(exc, KumoError):
        return f"last upload failed: {exc.message}"
    if isinstance(exc, grpc.RpcError):
        return f"last upload failed: {CUT_OFF}"
    return "last upload failed: internal error (see the controller log)"
