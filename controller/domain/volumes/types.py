"""Volume types: admin-defined kinds of volume, each naming the storage
backend that holds its volumes, visible to every project. Exactly one is the
default (CreateVolume without a type gets it). A type in use, or the default
one, cannot be deleted."""

from __future__ import annotations

from controller import clock
from controller.db import volume_types as store
from controller.db.database import is_sqlite, write_transaction
from controller.db.models import VolumeType
from controller.domain import idempotency
from controller.domain.idempotency import RequestKey
from controller.errors import FailedPrecondition, InvalidArgument, not_found
from kumo.ids import is_uuid

LOCAL = "local"
# Every node sees the same volumes on these: a volume attaches (and boots) on
# any node that advertises the backend.
SHARED_BACKENDS = ("rbd", "shared-fs")
BACKENDS = (LOCAL, *SHARED_BACKENDS)


def is_shared(backend: str) -> bool:
    return backend in SHARED_BACKENDS


class VolumeTypes:
    def create(
        self, name: str, backend: str, description: str, is_default: bool, request_key: RequestKey
    ) -> VolumeType:
        if backend not in BACKENDS:
            raise InvalidArgument(
                f"volume_type.backend must be one of {', '.join(BACKENDS)}, got {backend[:40]!r}"
            )
        return idempotency.idempotent_create(
            "volume_type",
            "",
            request_key,
            lambda: store.insert_type(clock.new_id(), name, backend, description, is_default, clock.now()),
            self._get_row,
            lambda t: t.id,
        )

    @staticmethod
    def _get_row(type_id: str) -> VolumeType:
        row = store.get_type(type_id)
        if row is None:
            raise not_found("volume type", type_id)
        return row

    def find(self, ref: str) -> VolumeType:
        """By id or name (types are global: every project sees every one)."""
        row = store.get_type(ref) if is_uuid(ref) else store.find_type(ref)
        if row is None:
            raise not_found("volume type", ref)
        return row

    def resolve(self, ref: str) -> VolumeType:
        """The type a new volume gets: `ref`, or the default one."""
        if ref:
            return self.find(ref)
        row = store.default_type()
        if row is None:
            raise FailedPrecondition(
                "there is no default volume type; name one (volume.volume_type_id)",
                reason="VOLUME_TYPE_NOT_FOUND",
            )
        return row

    def list(self, page_size: int, page_token: str) -> tuple[list[VolumeType], str]:
        return store.list_types(page_size, page_token)

    def delete(self, type_id: str) -> None:
        with write_transaction():
            row = self._get_row(type_id)
            if not is_sqlite():  # a racing CreateVolume holds it FOR SHARE: one waits
                list(VolumeType.select().where(VolumeType.id == row.id).for_update())
            if row.is_default:
                raise FailedPrecondition(
                    f"volume type {row.name!r} is the default; make another type the default first",
                    reason="VOLUME_TYPE_IN_USE",
                )
            n = store.count_volumes_of(row.id)
            if n:
                raise FailedPrecondition(
                    f"volume type {row.name!r} is used by {n} volume(s)",
                    reason="VOLUME_TYPE_IN_USE",
                    volumes=n,
                )
            store.delete_type(row.id)

    @staticmethod
    def hold(type_id: str) -> None:
        """Inside CreateVolume's write transaction: the type is still there
        (and, on PostgreSQL, stays until the commit)."""
        query = VolumeType.select().where(VolumeType.id == type_id)
        if not is_sqlite():
            query = query.for_update("FOR SHARE")
        if query.first() is None:
            raise not_found("volume type", type_id)
