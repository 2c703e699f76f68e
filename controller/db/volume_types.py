"""Queries for volume types (the volume_type table of migration 0014)."""

from __future__ import annotations

from controller.db.database import insert_unique
from controller.db.models import Volume, VolumeType
from controller.db.paging import paginate


def insert_type(
    type_id: str, name: str, backend: str, description: str, is_default: bool, now: float
) -> VolumeType:
    """In a write transaction: a new default type takes the flag from the old one."""
    if is_default:
        VolumeType.update(is_default=False).where(VolumeType.is_default == True).execute()  # noqa: E712
    return insert_unique(
        VolumeType,
        "volume type",
        name,
        id=type_id,
        backend=backend,
        description=description,
        is_default=is_default,
        create_time=now,
    )


def get_type(type_id: str) -> VolumeType | None:
    return VolumeType.get_or_none(VolumeType.id == type_id)


def find_type(name: str) -> VolumeType | None:
    return VolumeType.get_or_none(VolumeType.name == name)


def default_type() -> VolumeType | None:
    return VolumeType.get_or_none(VolumeType.is_default == True)  # noqa: E712


def list_types(page_size: int, page_token: str) -> tuple[list[VolumeType], str]:
    return paginate(VolumeType.select(), (VolumeType.name, VolumeType.id), page_size, page_token)


def count_volumes_of(type_id: str) -> int:
    return Volume.select().where(Volume.type_id == type_id).count()


def delete_type(type_id: str) -> int:
    return VolumeType.delete().where(VolumeType.id == type_id).execute()
