"""Queries for images and image blobs."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import peewee

from controller.db.database import cached_first, cached_rows, is_sqlite
from controller.db.models import Image, ImageBlob, InstanceMove, Project
from controller.db.paging import paginate

# kumo.v1.ImageStatus / ImageVisibility numbers, as stored.
QUEUED, SAVING, ACTIVE, KILLED, DELETED = 1, 2, 3, 4, 5
PRIVATE, PUBLIC = 1, 2


def lock_project(project_id: str) -> None:
    """Serialises quota checks of one project. On SQLite the write transaction
    already holds the database lock; on PostgreSQL lock the project row."""
    if not is_sqlite():
        list(Project.select(Project.id).where(Project.id == project_id).for_update())


def lock_image(image_id: str) -> None:
    """Locks an image row before its blob (the order every path uses: project,
    image, blob), so PostgreSQL transactions cannot deadlock."""
    if not is_sqlite():
        list(Image.select(Image.id).where(Image.id == image_id).for_update())


def lock_blob(sha256: str) -> None:
    """Serialises placing and removing one blob (see lock_project)."""
    if not is_sqlite():
        list(ImageBlob.select(ImageBlob.sha256).where(ImageBlob.sha256 == sha256).for_update())


def get_image(image_id: str) -> Image | None:
    return cached_first("image", Image.select().where(Image.id == image_id), [image_id])


class LaunchImage(NamedTuple):
    """What a create (an instance's, a volume's) reads of its image and checks
    who may use it by, as a plain tuple: building the whole Image model (and
    the select) cost peewee more than the read itself, once per create."""

    id: str
    name: str
    project_id: str
    visibility: int
    status: int
    disk_format: int
    size_bytes: int
    virtual_size_bytes: int
    checksum_sha256: str
    min_disk_gb: int
    min_ram_mb: int


_LAUNCH_COLUMNS = [
    Image.id,
    Image.name,
    Image.project,
    Image.visibility,
    Image.status,
    Image.disk_format,
    Image.size_bytes,
    Image.virtual_size_bytes,
    Image.checksum_sha256,
    Image.min_disk_gb,
    Image.min_ram_mb,
]


def launch_image(image_id: str) -> LaunchImage | None:
    """The image's LaunchImage (None: no such row), read from the database every time."""
    rows = cached_rows(
        "launch image", lambda: Image.select(*_LAUNCH_COLUMNS).where(Image.id == image_id), [image_id]
    )
    return LaunchImage._make(rows[0]) if rows else None


def launch_of(row: Image) -> LaunchImage:
    """An Image model already read, as a LaunchImage."""
    return LaunchImage._make(getattr(row, name) for name in LaunchImage._fields)


def insert_image(
    image_id: str, project_id: str, now: float, properties: dict[str, str], **fields: Any
) -> Image:
    return Image.create(
        id=image_id,
        project=project_id,
        status=QUEUED,
        properties=json.dumps(properties, sort_keys=True),
        create_time=now,
        update_time=now,
        **fields,
    )


def update_image(row: Image, fields: dict[str, Any], now: float) -> Image:
    for key, value in fields.items():
        if key == "properties":
            value = json.dumps(value, sort_keys=True)
        setattr(row, key, value)
    row.update_time = now
    row.save()
    return row


def properties(row: Image) -> dict[str, str]:
    return json.loads(row.properties or "{}")


def set_status(image_id: str, status: int, reason: str, now: float, only_from: int | None = None) -> int:
    """Moves an image to `status`; with only_from, only if it is in that state
    (returns 0 if it was not, e.g. deleted meanwhile)."""
    query = Image.update(status=status, status_reason=reason, update_time=now).where(Image.id == image_id)
    if only_from is not None:
        query = query.where(Image.status == only_from)
    return query.execute()


def activate(image_id: str, size: int, virtual_size: int, sha256: str, now: float) -> int:
    return (
        Image.update(
            status=ACTIVE,
            status_reason="",
            size_bytes=size,
            virtual_size_bytes=virtual_size,
            checksum_sha256=sha256,
            update_time=now,
        )
        .where((Image.id == image_id) & (Image.status == SAVING))
        .execute()
    )


def mark_deleted(image_id: str, now: float) -> int:
    return (
        Image.update(status=DELETED, delete_time=now, update_time=now)
        .where((Image.id == image_id) & (Image.status != DELETED))
        .execute()
    )


def count_project_images(project_id: str) -> int:
    """Images that count against the project's quota (all but deleted ones)."""
    return Image.select().where((Image.project == project_id) & (Image.status != DELETED)).count()


def project_bytes(project_id: str) -> int:
    """Bytes of the project's ACTIVE images (each image counts in full, even
    when its content is stored once for several)."""
    row = (
        Image.select(peewee.fn.COALESCE(peewee.fn.SUM(Image.size_bytes), 0).alias("total"))
        .where((Image.project == project_id) & (Image.status == ACTIVE))
        .dicts()
        .get()
    )
    return int(row["total"])


def list_images(
    page_size: int,
    page_token: str,
    viewer_project: str | None,
    name: str = "",
    visibility: int = 0,
    status: int = 0,
    project_id: str = "",
) -> tuple[list[Image], str]:
    """viewer_project None: every image (admins); else that project's images
    and public ones. Deleted images only when status asks for them."""
    query = Image.select()
    if viewer_project is not None:
        query = query.where((Image.project == viewer_project) | (Image.visibility == PUBLIC))
    query = query.where(Image.status == status) if status else query.where(Image.status != DELETED)
    if name:
        query = query.where(Image.name == name)
    if visibility:
        query = query.where(Image.visibility == visibility)
    if project_id:
        query = query.where(Image.project == project_id)
    return paginate(query, (Image.name, Image.id), page_size, page_token)


def saving_images() -> list[Image]:
    return list(Image.select().where(Image.status == SAVING))


# Blobs


def get_blob(sha256: str) -> ImageBlob | None:
    return ImageBlob.get_or_none(ImageBlob.sha256 == sha256)


def ensure_blob(sha256: str, size: int, now: float) -> None:
    ImageBlob.insert(sha256=sha256, size_bytes=size, create_time=now).on_conflict_ignore().execute()


def blob_users(sha256: str) -> int:
    """How many live images (and instance moves: their root disk) use this blob."""
    images = Image.select().where((Image.checksum_sha256 == sha256) & (Image.status == ACTIVE)).count()
    return images + InstanceMove.select().where(InstanceMove.disk_sha256 == sha256).count()


def delete_blob(sha256: str) -> int:
    return ImageBlob.delete().where(ImageBlob.sha256 == sha256).execute()


def all_blobs() -> list[str]:
    return [r.sha256 for r in ImageBlob.select(ImageBlob.sha256)]


def unused_blobs() -> list[str]:
    used = Image.select(Image.checksum_sha256).where(Image.status == ACTIVE)
    moving = InstanceMove.select(InstanceMove.disk_sha256).where(InstanceMove.disk_sha256 != "")
    return [
        r.sha256
        for r in ImageBlob.select(ImageBlob.sha256).where(
            ImageBlob.sha256.not_in(used) & ImageBlob.sha256.not_in(moving)
        )
    ]
