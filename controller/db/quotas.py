"""Queries for quota limits and usage counters. A charge is one conditional
UPDATE (used + n <= limit in its WHERE), so racing charges for the last unit
cannot both succeed, on SQLite or PostgreSQL (where the row lock makes the
second re-check the committed count). `add_all_within` charges every
resource of a create in that one statement, the limits read inside it."""

from __future__ import annotations

from typing import Any

import peewee

from controller.db.database import cached_rows, is_sqlite
from controller.db.models import QuotaLimit, QuotaUsage


def overrides(project_id: str) -> dict[str, int]:
    """The project's own limits: resource -> limit."""
    query = QuotaLimit.select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
        QuotaLimit.project == project_id
    )
    return {r: int(n) for r, n in query.tuples()}


def set_limits(project_id: str, limits: dict[str, int | None], now: float) -> None:
    """Sets the project's own limits; None drops one (the default applies)."""
    for resource, limit in limits.items():
        if limit is None:
            QuotaLimit.delete().where(
                (QuotaLimit.project == project_id) & (QuotaLimit.resource == resource)
            ).execute()
            continue
        QuotaLimit.insert(
            project=project_id, resource=resource, hard_limit=limit, update_time=now
        ).on_conflict(
            conflict_target=[QuotaLimit.project, QuotaLimit.resource],
            update={QuotaLimit.hard_limit: limit, QuotaLimit.update_time: now},
        ).execute()


def usage(project_id: str) -> dict[str, int]:
    query = QuotaUsage.select(QuotaUsage.resource, QuotaUsage.used).where(QuotaUsage.project == project_id)
    return {r: int(n) for r, n in query.tuples()}


def used(project_id: str, resource: str) -> int:
    row = QuotaUsage.get_or_none((QuotaUsage.project == project_id) & (QuotaUsage.resource == resource))
    return int(row.used) if row is not None else 0


def _add(project_id: str, resource: str, n: int, limit: int) -> int:
    query = QuotaUsage.update(used=QuotaUsage.used + n).where(
        (QuotaUsage.project == project_id) & (QuotaUsage.resource == resource)
    )
    if limit >= 0:
        query = query.where(QuotaUsage.used + n <= limit)
    return query.execute()


def add_within(project_id: str, resource: str, n: int, limit: int) -> bool:
    """Adds n to the counter if it stays within `limit` (negative: no limit)."""
    if _add(project_id, resource, n, limit) == 1:
        return True
    # No counter yet (a project's first of this resource): make it, try again.
    QuotaUsage.insert(project=project_id, resource=resource, used=0).on_conflict_ignore().execute()
    return _add(project_id, resource, n, limit) == 1


def add_all_within(project_id: str, amounts: list[tuple[str, int]], defaults: dict[str, int]) -> set[str]:
    """Adds each amount to its counter if it stays within the project's limit
    (its own, else `defaults`; negative: no limit), in one statement that reads
    the limits itself. Returns the resources charged: a missing counter or
    one that would go over is left alone (the caller looks at those)."""
    names = [r for r, _ in amounts]
    amount_params = [x for pair in amounts for x in pair]
    default_params = [x for pair in defaults.items() for x in pair]
    lock_params: list[Any] = [*names]
    if not is_sqlite():
        lock_params = [project_id, *names, *(x for i, r in enumerate(names) for x in (r, i))]
    params = [*amount_params, project_id, *lock_params, *default_params, 0, *amount_params, *default_params]
    key = ("quota charge", tuple(names), tuple(defaults))
    return {r for (r,) in cached_rows(key, lambda: _charge_query(project_id, amounts, defaults), params)}


def _charge_query(project_id: str, amounts: list[tuple[str, int]], defaults: dict[str, int]) -> Any:
    amount = peewee.Case(QuotaUsage.resource, amounts)
    own = QuotaLimit.select(QuotaLimit.hard_limit).where(
        (QuotaLimit.project == QuotaUsage.project) & (QuotaLimit.resource == QuotaUsage.resource)
    )
    limit = peewee.fn.COALESCE(own, peewee.Case(QuotaUsage.resource, list(defaults.items())))
    names = [r for r, _ in amounts]
    which: Any = names
    if not is_sqlite():
        # PostgreSQL locks the rows an UPDATE changes in scan order, which
        # changes as rows get new versions: lock them in the callers' one order
        # first (the amounts' order), so two charges never wait in a cycle.
        which = (
            QuotaUsage.select(QuotaUsage.resource)
            .where((QuotaUsage.project == project_id) & QuotaUsage.resource.in_(names))
            .order_by(peewee.Case(QuotaUsage.resource, [(r, i) for i, r in enumerate(names)]))
            .for_update()
        )
    return (
        QuotaUsage.update(used=QuotaUsage.used + amount)
        .where(
            (QuotaUsage.project == project_id)
            & QuotaUsage.resource.in_(which)
            & ((limit < 0) | (QuotaUsage.used + amount <= limit))
        )
        .returning(QuotaUsage.resource)
        .tuples()
    )


def subtract(project_id: str, resource: str, n: int) -> None:
    QuotaUsage.update(used=QuotaUsage.used - n).where(
        (QuotaUsage.project == project_id) & (QuotaUsage.resource == resource)
    ).execute()
