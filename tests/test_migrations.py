"""Migrations make the schema the models expect, run once, and refuse a
database newer than the code."""

from __future__ import annotations

from pathlib import Path

import peewee
import pytest

from controller.db import migrations
from controller.db.database import db, open_database
from controller.db.models import BaseModel


def _models() -> list[type[peewee.Model]]:
    out, todo = [], list(BaseModel.__subclasses__())
    while todo:
        m = todo.pop()
        out.append(m)
        todo.extend(m.__subclasses__())
    return out


@pytest.fixture()
def fresh_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = open_database("", tmp_path / "m.db")
    yield database
    database.close()


def test_schema_matches_models(fresh_db: peewee.Database) -> None:
    version = migrations.migrate()
    assert version == max(v for v, _, _ in migrations.discover()) >= 1
    tables = set(db.get_tables())
    for model in _models():
        table = model._meta.table_name
        assert table in tables, f"no migration creates table {table!r} for {model.__name__}"
        have = {c.name for c in db.get_columns(table)}
        want = {f.column_name for f in model._meta.sorted_fields}
        assert want == have, (
            f"{table}: model has {sorted(want - have)} not in schema; schema has {sorted(have - want)}"
        )


def test_migrate_is_idempotent(fresh_db: peewee.Database) -> None:
    first = migrations.migrate()
    assert migrations.migrate() == first
    rows = db.execute_sql("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert rows == len(migrations.discover())


def test_refuses_newer_schema(fresh_db: peewee.Database) -> None:
    v = migrations.migrate()
    db.execute_sql(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)", (v + 1,)
    )
    with pytest.raises(RuntimeError, match="newer"):
        migrations.migrate()


def test_sqlite_is_in_wal_mode(fresh_db: peewee.Database) -> None:
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_controller_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    """SQLite is the single-controller database; PostgreSQL is for several."""
    from controller.config import load_config
    from controller.server import Controller

    cfg = load_config(overrides={"data_dir": tmp_path / "data"}, environ={})
    first = Controller(cfg)
    try:
        with pytest.raises(RuntimeError, match=r"another controller \(pid \d+\) is running on the SQLite"):
            Controller(cfg)
    finally:
        first.stop()
    Controller(cfg).stop()  # once the first is gone, the next one starts
