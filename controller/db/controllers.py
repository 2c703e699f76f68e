"""Queries for the control plane: its shared facts and its controllers."""

from __future__ import annotations

from typing import Any

import peewee

from controller.db.database import write_transaction
from controller.db.models import Controller, ControlPlaneFact
from controller.db.paging import paginate


def facts() -> dict[str, str]:
    return {f.name: f.value for f in ControlPlaneFact.select()}


def record_facts(values: dict[str, str], now: float) -> dict[str, str]:
    """Records the facts not recorded yet (the first writer wins a race) and
    returns what is recorded for every name asked."""
    with write_transaction():
        for name, value in values.items():
            ControlPlaneFact.insert(name=name, value=value, create_time=now).on_conflict_ignore().execute()
        rows = ControlPlaneFact.select().where(ControlPlaneFact.name.in_(list(values)))
        return {f.name: f.value for f in rows}


def upsert_controller(fields: dict[str, Any]) -> None:
    with write_transaction():
        updated = Controller.update(**fields).where(Controller.id == fields["id"]).execute()
        if not updated:
            Controller.insert(**fields).on_conflict_ignore().execute()


def seen(controller_id: str, now: float, node_sessions: int) -> None:
    with write_transaction():
        Controller.update(last_seen_time=now, node_sessions=node_sessions).where(
            Controller.id == controller_id
        ).execute()


def list_controllers(page_size: int, page_token: str) -> tuple[list[Controller], str]:
    query: peewee.ModelSelect = Controller.select()
    return paginate(query, (Controller.id,), page_size, page_token)


def node_endpoints() -> list[tuple[str, str, float]]:
    """(id, node endpoint, last seen) of every controller that ever joined."""
    return list(
        Controller.select(Controller.id, Controller.node_endpoint, Controller.last_seen_time).tuples()
    )
