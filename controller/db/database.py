"""The one database handle, bound at start to SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peewee
from playhouse.db_url import connect as connect_url

from controller.errors import Aborted, AlreadyExists

db = peewee.DatabaseProxy()
_sqlite_writer = threading.RLock()


def open_database(url: str, sqlite_path: Path) -> peewee.Database:
    if url:
        database = connect_url(url)
    else:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        database = peewee.SqliteDatabase(
            str(sqlite_path),
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 10000,
                "synchronous": "normal",
            },
            check_same_thread=False,
        )
    db.initialize(database)
    database.connect(reuse_if_open=True)
    return database


def is_sqlite() -> bool:
    return isinstance(db.obj, peewee.SqliteDatabase)


@contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction that takes the write lock up front. On SQLite that means
    BEGIN IMMEDIATE, so check-then-write sequences (quota, capacity, names)
    cannot interleave; on PostgreSQL callers lock rows with SELECT ... FOR UPDATE."""
    if is_sqlite():
        # One writer at a time within the process: SQLite's busy handler polls,
        # and under many concurrent writers it can starve one past busy_timeout.
        with _sqlite_writer, db.obj.atomic("IMMEDIATE"):
            yield
    else:
        with db.obj.atomic():
            yield


# What SQLite and PostgreSQL say when a concurrent transaction kept this one
# from going on; the request did nothing, and a retry can succeed.
_CONFLICTS = ("database is locked", "database table is locked", "deadlock detected", "could not serialize")


def as_conflict(exc: BaseException) -> Aborted | None:
    """A database lock timeout or deadlock as ABORTED instead of INTERNAL."""
    if isinstance(exc, peewee.OperationalError) and any(c in str(exc) for c in _CONFLICTS):
        return Aborted(
            "a concurrent change held the database; nothing was changed, retry the request",
            reason="CONCURRENT_CHANGE",
        )
    return None


def insert_unique(model: type[peewee.Model], kind: str, name: str, **fields: Any) -> Any:
    """Inserts a row whose name is unique; the database decides who wins a
    race, and the loser gets ALREADY_EXISTS naming the kind."""
    try:
        with db.atomic():
            return model.create(name=name, **fields)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a {kind} named {name!r} already exists", reason=f"{kind.upper().replace(' ', '_')}_EXISTS"
        ) from None
