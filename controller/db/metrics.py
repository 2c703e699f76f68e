"""The cheap GROUP BY counts a metrics scrape reads (one query per kind)."""

from __future__ import annotations

import peewee

from controller.db.models import Instance, Node, Port, Volume


def instances_by_state() -> dict[int, int]:
    q = Instance.select(Instance.state, peewee.fn.COUNT(Instance.id)).group_by(Instance.state)
    return {int(state): int(n) for state, n in q.tuples()}


def volumes_by_state() -> dict[int, int]:
    q = Volume.select(Volume.state, peewee.fn.COUNT(Volume.id)).group_by(Volume.state)
    return {int(state): int(n) for state, n in q.tuples()}


def ports_by_binding() -> dict[bool, int]:
    """bound (on an instance) -> how many ports."""
    bound = peewee.Case(None, [(Port.instance_id != "", 1)], 0)
    q = Port.select(bound, peewee.fn.COUNT(Port.id)).group_by(bound)
    return {bool(b): int(n) for b, n in q.tuples()}


def disabled_nodes() -> int:
    return Node.select().where(Node.enabled == False).count()  # noqa: E712 - peewee expression
