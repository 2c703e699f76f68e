"""Queries for flavors, keypairs and server groups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from controller.db.database import cached_first, cached_rows, db, insert_unique
from controller.db.models import Flavor, FlavorAccess, Keypair, ServerGroup
from controller.db.paging import paginate

# Flavors


def insert_flavor(flavor_id: str, name: str, now: float, project_ids: list[str], **fields: Any) -> Flavor:
    with db.atomic():
        row = insert_unique(Flavor, "flavor", name, id=flavor_id, create_time=now, update_time=now, **fields)
        set_flavor_access(flavor_id, project_ids)
    return row


def get_flavor(flavor_id: str) -> Flavor | None:
    return cached_first("flavor", Flavor.select().where(Flavor.id == flavor_id), [flavor_id])


def flavor_access(flavor_id: str) -> list[str]:
    return flavor_access_of([flavor_id]).get(flavor_id, [])


def flavor_access_of(flavor_ids: Iterable[str]) -> dict[str, list[str]]:
    """flavor id -> the projects it is shared with (sorted), for a page in one query."""
    ids = list(set(flavor_ids))
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    query = FlavorAccess.select(FlavorAccess.flavor, FlavorAccess.project).where(FlavorAccess.flavor.in_(ids))
    for flavor_id, project_id in query.tuples():
        out.setdefault(flavor_id, []).append(project_id)
    return {k: sorted(v) for k, v in out.items()}


def set_flavor_access(flavor_id: str, project_ids: list[str]) -> None:
    with db.atomic():
        FlavorAccess.delete().where(FlavorAccess.flavor == flavor_id).execute()
        if project_ids:
            FlavorAccess.insert_many(
                [{"flavor": flavor_id, "project": p} for p in sorted(set(project_ids))]
            ).execute()


def update_flavor(row: Flavor, fields: dict[str, Any], now: float) -> Flavor:
    for key, value in fields.items():
        setattr(row, key, value)
    row.update_time = now
    row.save()
    return row


def delete_flavor(flavor_id: str) -> int:
    return Flavor.delete().where(Flavor.id == flavor_id).execute()


def list_flavors(
    page_size: int, page_token: str, name: str, project_id: str | None
) -> tuple[list[Flavor], str]:
    """project_id None: every flavor (admins); else public ones and those shared with it."""
    query = Flavor.select()
    if name:
        query = query.where(Flavor.name == name)
    if project_id is not None:
        shared = FlavorAccess.select(FlavorAccess.flavor).where(FlavorAccess.project == project_id)
        query = query.where(Flavor.is_public | Flavor.id.in_(shared))
    return paginate(query, (Flavor.name, Flavor.id), page_size, page_token)


class LaunchFlavor(NamedTuple):
    """What a create or a resize reads of its flavor (and checks who may use
    it by), as a plain tuple: building the whole Flavor model (and the select)
    cost peewee more than the read itself, once per create."""

    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    is_public: bool


_LAUNCH_COLUMNS = [Flavor.id, Flavor.name, Flavor.vcpus, Flavor.ram_mb, Flavor.disk_gb, Flavor.is_public]


def _launch_flavor(rows: list[tuple[Any, ...]]) -> LaunchFlavor | None:
    if not rows:
        return None
    fid, name, vcpus, ram_mb, disk_gb, is_public = rows[0]
    return LaunchFlavor(fid, name, vcpus, ram_mb, disk_gb, bool(is_public))  # SQLite's 0/1 as a bool


def launch_flavor(flavor_id: str) -> LaunchFlavor | None:
    """The flavor's LaunchFlavor (None: no such row), read from the database every time."""
    rows = cached_rows(
        "launch flavor", lambda: Flavor.select(*_LAUNCH_COLUMNS).where(Flavor.id == flavor_id), [flavor_id]
    )
    return _launch_flavor(rows)


def flavor_by_name(name: str, project_id: str | None) -> LaunchFlavor | None:
    """The first flavor named `name` (in list order) that `project_id` may use (None: any)."""

    def query() -> Any:
        q = Flavor.select(*_LAUNCH_COLUMNS).where(Flavor.name == name)
        if project_id is not None:
            shared = FlavorAccess.select(FlavorAccess.flavor).where(FlavorAccess.project == project_id)
            q = q.where(Flavor.is_public | Flavor.id.in_(shared))
        return q.order_by(Flavor.name, Flavor.id).limit(1)

    params: list[Any] = [name] if project_id is None else [name, project_id]
    return _launch_flavor(cached_rows(("flavor by name", project_id is None), query, [*params, 1]))


# Keypairs


def insert_keypair(
    keypair_id: str, user_id: str, name: str, public_key: str, fingerprint: str, now: float
) -> Keypair:
    return insert_unique(
        Keypair,
        "keypair",
        name,
        id=keypair_id,
        user=user_id,
        public_key=public_key,
        fingerprint=fingerprint,
        create_time=now,
    )


def get_keypair(keypair_id: str) -> Keypair | None:
    return Keypair.get_or_none(Keypair.id == keypair_id)


def find_keypair(user_id: str, name: str) -> Keypair | None:
    return Keypair.get_or_none((Keypair.user == user_id) & (Keypair.name == name))


def delete_keypair(keypair_id: str) -> int:
    return Keypair.delete().where(Keypair.id == keypair_id).execute()


def list_keypairs(page_size: int, page_token: str, name: str, user_id: str) -> tuple[list[Keypair], str]:
    query = Keypair.select().where(Keypair.user == user_id)
    if name:
        query = query.where(Keypair.name == name)
    return paginate(query, (Keypair.name, Keypair.id), page_size, page_token)


# Server groups


def insert_server_group(group_id: str, project_id: str, name: str, policy: int, now: float) -> ServerGroup:
    return insert_unique(
        ServerGroup, "server group", name, id=group_id, project=project_id, policy=policy, create_time=now
    )


def get_server_group(group_id: str) -> ServerGroup | None:
    return ServerGroup.get_or_none(ServerGroup.id == group_id)


def delete_server_group(group_id: str) -> int:
    return ServerGroup.delete().where(ServerGroup.id == group_id).execute()


def list_server_groups(
    page_size: int, page_token: str, name: str, project_id: str | None
) -> tuple[list[ServerGroup], str]:
    query = ServerGroup.select()
    if project_id is not None:
        query = query.where(ServerGroup.project == project_id)
    if name:
        query = query.where(ServerGroup.name == name)
    return paginate(query, (ServerGroup.name, ServerGroup.id), page_size, page_token)


def count_server_groups(project_id: str) -> int:
    return ServerGroup.select().where(ServerGroup.project == project_id).count()
