"""The database handle every model and query uses, and the transactions built on it.

peewee binds models to a database per class, so the handle cannot belong to one
controller; instead each thread is bound to one controller's database (the thread
that opens it, and every thread a controller starts, through `bind_thread` and
`carry`). Two controllers in one process then share no state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import peewee
from playhouse.db_url import connect as connect_url
from playhouse.db_url import parse as parse_url

from controller.errors import Aborted, AlreadyExists

T = TypeVar("T")


class KumoSqlite(peewee.SqliteDatabase):
    """SQLite with its own in-process writer lock: SQLite's busy handler polls,
    and under many concurrent writers it can starve one past busy_timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock = threading.RLock()


class ThreadBoundDatabase(peewee.DatabaseProxy):
    """A proxy whose target is per thread: each thread uses the database it is bound to."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        super().__init__()

    @property
    def obj(self) -> peewee.Database | None:  # type: ignore[override]
        return getattr(self._local, "database", None)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "obj":
            self._local.database = value
        else:
            object.__setattr__(self, attr, value)

    def bind_thread(self, database: peewee.Database | None) -> None:
        """Makes the calling thread use `database` (a ThreadPoolExecutor initializer, too)."""
        self._local.database = database

    def carry(self, fn: Callable[..., T]) -> Callable[..., T]:
        """fn, run on whatever thread with the database of the thread that wraps it."""
        database = self.obj

        def bound(*args: Any, **kwargs: Any) -> T:
            self._local.database = database
            return fn(*args, **kwargs)

        return bound


db = ThreadBoundDatabase()


def open_database(url: str, sqlite_path: Path) -> peewee.Database:
    """Opens the database and binds the calling thread to it."""
    database: peewee.Database
    if url and not url.startswith("sqlite"):
        database = connect_url(url)
    else:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        database = KumoSqlite(
            parse_url(url)["database"] if url else str(sqlite_path),
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 10000,
                "synchronous": "normal",
            },
            check_same_thread=False,
        )
    db.bind_thread(database)
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
        sqlite = db.obj
        assert isinstance(sqlite, KumoSqlite)
        with sqlite.writer_lock, sqlite.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
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
