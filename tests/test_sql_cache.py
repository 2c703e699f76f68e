"""The SQL text cache (controller/db/database.py `cached`): hot queries run
with the SQL peewee made for them once, on SQLite and on a real PostgreSQL.
The parameters a caller passes must be peewee's own, in its order: a wrong
list is refused on the first run (so a test of any caller catches it), and
each backend's queries below are run in both of their shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import peewee
import pytest

from controller.db import compute, quotas
from controller.db.database import (
    cached,
    cached_count,
    cached_first,
    cached_insert,
    cached_insert_new,
    cached_rows,
    db,
    insert_rows,
    open_database,
)
from controller.db.migrations import migrate
from controller.db.models import Event, Flavor, FlavorAccess, Project, QuotaUsage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[peewee.Database]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database(f"kumo_sqlcache_{tmp_path.name[-12:]}")
    else:
        url = ""
    database = open_database(url, tmp_path / "cache.db")
    migrate()
    try:
        yield database
    finally:
        database.close()
        db.bind_thread(None)


def _cloud() -> None:
    """Two projects, a public flavor and one shared with p1 only."""
    for pid in ("p1", "p2"):
        Project.create(id=pid, name=pid, create_time=1.0, update_time=1.0)
    compute.insert_flavor("f-pub", "pub", 1.0, [], vcpus=1, ram_mb=64, disk_gb=1)
    compute.insert_flavor("f-own", "own", 1.0, ["p1"], vcpus=1, ram_mb=64, disk_gb=1, is_public=False)


def test_a_cached_query_answers_as_peewee_does_and_makes_its_sql_once(database: peewee.Database) -> None:
    _cloud()
    made = []
    real = database.get_sql_context

    def counting(**kw: Any) -> Any:
        made.append(1)
        return real(**kw)

    with mock.patch.object(database, "get_sql_context", counting):
        for _ in range(3):
            assert compute.get_flavor("f-pub").name == "pub"
        assert compute.get_flavor("missing") is None
    assert len(made) == 1, "the SQL of a cached query is made on its first run only"
    # Both shapes of the name lookup: an admin's (any flavor) and a member's
    # (public ones and those shared with the project), as list_flavors sees them.
    assert compute.flavor_by_name("own", None).id == "f-own"
    assert compute.flavor_by_name("own", "p1").id == "f-own"
    assert compute.flavor_by_name("own", "p2") is None
    assert compute.flavor_by_name("pub", "p2").id == "f-pub"
    for name, project in (("own", "p1"), ("own", "p2"), ("pub", "p2"), ("own", None)):
        listed, _ = compute.list_flavors(1, "", name, project)
        found = compute.flavor_by_name(name, project)
        assert [r.id for r in listed] == ([found.id] if found else [])


def test_the_quota_charge_counts_within_limits_on_either_backend(database: peewee.Database) -> None:
    _cloud()
    for resource in ("instances", "vcpus"):
        QuotaUsage.create(project="p1", resource=resource, used=0)
    defaults = {"instances": 2, "vcpus": 3}
    charged = [quotas.add_all_within("p1", [("instances", 1), ("vcpus", 2)], defaults) for _ in range(2)]
    assert charged == [{"instances", "vcpus"}, {"instances"}]  # the second would take vcpus to 4 > 3
    assert quotas.usage("p1") == {"instances": 2, "vcpus": 2}


def test_a_query_given_as_a_function_is_built_on_its_first_run_only(database: peewee.Database) -> None:
    """cached_rows and cached_count with a builder (the claim, the quota
    charge): once the SQL is known the query object is never built again, and
    every run still answers for its own parameters."""
    _cloud()
    built: list[str] = []

    def flavors(name: str) -> Any:
        built.append("select")
        return Flavor.select(Flavor.id, Flavor.ram_mb).where(Flavor.name == name).tuples()

    def grow(flavor_id: str, most: int) -> Any:
        built.append("update")
        return Flavor.update(ram_mb=Flavor.ram_mb + 64).where(
            (Flavor.id == flavor_id) & (Flavor.ram_mb < most)
        )

    assert cached_rows("flavor ram", lambda: flavors("pub"), ["pub"]) == [("f-pub", 64)]
    assert cached_rows("flavor ram", lambda: flavors("own"), ["own"]) == [("f-own", 64)]
    assert cached_rows("flavor ram", lambda: flavors("none"), ["none"]) == []
    assert [cached_count("grow", lambda: grow("f-pub", 192), [64, "f-pub", 192]) for _ in range(3)] == [
        1,
        1,
        0,
    ]
    assert cached_count("grow", lambda: grow("f-own", 100), [64, "f-own", 100]) == 1
    assert built == ["select", "update"]
    assert compute.get_flavor("f-pub").ram_mb == 192 and compute.get_flavor("f-own").ram_mb == 128


def test_a_cached_insert_writes_the_row_with_its_defaults(database: peewee.Database) -> None:
    fields = dict(id="e1", time=2.0, resource_type="instance", resource_id="i1", action="create", ok=True)
    row = cached_insert(Event, **fields)
    again = cached_insert(Event, **{**fields, "id": "e2"})
    assert (row.id, again.id, row.message) == ("e1", "e2", "")
    assert [e.id for e in Event.select().order_by(Event.id)] == ["e1", "e2"]


def test_rows_inserted_in_one_executemany_read_back_as_written(database: peewee.Database) -> None:
    """insert_rows (the event batches' writer): every column of every row,
    booleans and floats included, as peewee would have written them; a key
    that is not a column is refused before anything is written."""
    base = dict(resource_type="instance", resource_id="i1", action="create", message="", method="m")
    rows = [{**base, "id": f"e{k}", "time": k + 0.25, "ok": k % 2 == 0} for k in range(5)]
    with database.atomic():
        insert_rows(Event, rows)
        insert_rows(Event, [])
    got = [(e.id, e.time, e.ok, e.method, e.user_id) for e in Event.select().order_by(Event.id)]
    assert got == [(f"e{k}", k + 0.25, k % 2 == 0, "m", "") for k in range(5)]
    with pytest.raises(ValueError, match="colour"):
        insert_rows(Event, [{**rows[0], "id": "x", "colour": "red"}])
    assert Event.select().count() == 5


def test_an_insert_of_a_new_row_says_none_on_a_taken_key_and_the_transaction_goes_on(
    database: peewee.Database,
) -> None:
    """cached_insert_new (ON CONFLICT DO NOTHING: a port's MAC, an address):
    a clash writes nothing and leaves the transaction usable, on PostgreSQL too
    (where a failed INSERT would abort it)."""
    fields = dict(id="e1", time=2.0, resource_type="instance", resource_id="i1", action="create", ok=True)
    with database.atomic():
        row = cached_insert_new(Event, **fields)
        assert row is not None and (row.id, row.message) == ("e1", "")
        assert cached_insert_new(Event, **{**fields, "resource_id": "other"}) is None
        assert cached_insert_new(Event, **{**fields, "id": "e2"}).id == "e2"
    assert [(e.id, e.resource_id) for e in Event.select().order_by(Event.id)] == [("e1", "i1"), ("e2", "i1")]


def test_parameters_that_are_not_peewees_are_refused_on_the_first_run(database: peewee.Database) -> None:
    _cloud()
    query = Flavor.select().where(Flavor.name == "pub")
    with pytest.raises(RuntimeError, match="parameters"):
        cached("wrong", query, ["own"])
    assert cached("right", query, ["pub"])[0].id == "f-pub"
    shared = FlavorAccess.select(FlavorAccess.flavor).where(FlavorAccess.project == "p1")
    assert cached_first("first", Flavor.select().where(Flavor.id.in_(shared)), ["p1"]).id == "f-own"
