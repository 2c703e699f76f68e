"""Queries for the event log. Callers pass ids and times (the store never
reads the clock or makes ids)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.db.database import cached_insert, insert_rows
from controller.db.models import Event
from controller.db.paging import paginate


@dataclass(frozen=True)
class EventQuery:
    """What ListEvents filters on; empty strings and 0 mean "any".
    `project_id` None: every project (admins)."""

    project_id: str | None
    resource_type: str = ""
    resource_id: str = ""
    action: str = ""
    start_time: float = 0.0
    end_time: float = 0.0


def insert_event(**fields: Any) -> None:
    cached_insert(Event, **fields)


def insert_events(rows: list[dict[str, Any]]) -> None:
    """Many events in one executemany (each row: the columns insert_event takes)."""
    insert_rows(Event, rows)


def list_events(q: EventQuery, page_size: int, page_token: str) -> tuple[list[Event], str]:
    query = Event.select()
    if q.project_id is not None:
        query = query.where(Event.project_id == q.project_id)
    if q.resource_type:
        query = query.where(Event.resource_type == q.resource_type)
    if q.resource_id:
        query = query.where(Event.resource_id == q.resource_id)
    if q.action:
        query = query.where(Event.action == q.action)
    if q.start_time:
        query = query.where(Event.time >= q.start_time)
    if q.end_time:
        query = query.where(Event.time < q.end_time)
    return paginate(query, (Event.time, Event.id), page_size, page_token)


def delete_before(cutoff: float, limit: int) -> int:
    """Deletes up to `limit` of the oldest events older than `cutoff`."""
    oldest = Event.select(Event.id).where(Event.time < cutoff).order_by(Event.time).limit(limit)
    return Event.delete().where(Event.id.in_(oldest)).execute()
