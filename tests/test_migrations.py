"""Migrations make the schema the models expect, run once, and refuse a
database newer than the code."""

from __future__ import annotations

import uuid
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


def _insert(model: type[peewee.Model], **given: object) -> None:
    """A row with `given` and a placeholder for every other required column."""
    fields = dict(given)
    for f in model._meta.sorted_fields:
        if f.name in fields or f.null or f.default is not None:
            continue
        if isinstance(f, peewee.ForeignKeyField):
            continue
        fields[f.name] = (
            uuid.uuid4().hex[:30]
            if isinstance(f, peewee.CharField | peewee.TextField)
            else False
            if isinstance(f, peewee.BooleanField)
            else 1
        )
    model.insert(**fields).execute()


def test_quota_usage_is_backfilled_from_existing_rows(fresh_db: peewee.Database) -> None:
    """Migration 0012 on a database with resources: each project's counters
    start equal to what the old SUM checks counted."""
    from controller.db import models as m
    from controller.db import quotas

    migrations.migrate()  # then back to before 0012, as a database made by older code
    db.execute_sql("DROP TABLE quota_usage")
    db.execute_sql("DROP TABLE quota_limit")
    db.execute_sql("DELETE FROM schema_migrations WHERE version = 12")
    assert "quota_usage" not in db.get_tables()
    db.execute_sql("PRAGMA foreign_keys = OFF")  # placeholder rows point nowhere else
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for pid in (a, b):
        _insert(m.Project, id=pid)
    for i, (vcpus, ram) in enumerate([(1, 512), (2, 1024)]):
        _insert(m.Instance, id=str(uuid.uuid4()), project=a, name=f"i{i}", vcpus=vcpus, ram_mb=ram, node="n")
    for i, size in enumerate([5, 7]):
        _insert(m.Volume, id=str(uuid.uuid4()), project=a, name=f"v{i}", size_gb=size, node="n")
    _insert(m.VolumeSnapshot, id=str(uuid.uuid4()), project=a, name="s", volume="v", node_id="n")
    _insert(m.Image, id=str(uuid.uuid4()), project=b, name="kept", status=3)
    _insert(m.Image, id=str(uuid.uuid4()), project=b, name="gone", status=5)  # DELETED: not counted
    _insert(m.Network, id=str(uuid.uuid4()), project=b, name="n", vni=7)
    _insert(m.Port, id=str(uuid.uuid4()), project=b, network="x", mac_address="02:00:00:00:00:01")
    _insert(m.SecurityGroup, id=str(uuid.uuid4()), project=b, name="default", is_default=True)
    _insert(m.SecurityGroup, id=str(uuid.uuid4()), project=b, name="web", is_default=False)
    db.execute_sql("PRAGMA foreign_keys = ON")
    migrations.migrate()
    assert quotas.usage(a) == {
        "instances": 2,
        "vcpus": 3,
        "ram_mb": 1536,
        "volumes": 2,
        "volume_gb": 12,
        "snapshots": 1,
    }
    assert quotas.usage(b) == {"images": 1, "networks": 1, "ports": 1, "security_groups": 1}


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
