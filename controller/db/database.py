"""The database handle every model and query uses, and the transactions built on it.

peewee binds models to a database per class, so the handle cannot belong to one
controller; instead each thread is bound to one controller's database (the thread
that opens it, and every thread a controller starts, through `bind_thread` and
`carry`). Two controllers in one process then share no state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import peewee
from playhouse.db_url import connect as connect_url
from playhouse.db_url import parse as parse_url
from playhouse.db_url import schemes as url_schemes

from controller.errors import Aborted, AlreadyExists

T = TypeVar("T")

# Told of every write transaction: (seconds waiting for the write lock, seconds in all).
WriteObserver = Callable[[float, float], None]


class KumoSqlite(peewee.SqliteDatabase):
    """SQLite with its own in-process writer lock: SQLite's busy handler polls,
    and under many concurrent writers it can starve one past busy_timeout."""

    def __init__(self, *args: Any, on_write: WriteObserver | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock = threading.RLock()
        self.on_write = on_write


class KumoPostgres(peewee.PostgresqlDatabase):
    """PostgreSQL with the write-transaction observer (metrics)."""

    def __init__(self, *args: Any, on_write: WriteObserver | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_write = on_write


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


def open_database(url: str, sqlite_path: Path, on_write: WriteObserver | None = None) -> peewee.Database:
    """Opens the database and binds the calling thread to it; `on_write` is
    told how long each write transaction waited and took."""
    database: peewee.Database
    if url and url_schemes.get(url.split(":", 1)[0]) is peewee.PostgresqlDatabase:
        database = KumoPostgres(on_write=on_write, **parse_url(url))
    elif url and not url.startswith("sqlite"):
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
            on_write=on_write,
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
    cannot interleave; on PostgreSQL callers lock rows with SELECT ... FOR UPDATE
    (the lock wait measured there is BEGIN's only)."""
    database = db.obj
    observe = getattr(database, "on_write", None)
    start = time.perf_counter()
    locked = 0.0
    try:
        if isinstance(database, KumoSqlite):
            with database.writer_lock, database.atomic("IMMEDIATE"):
                locked = time.perf_counter()
                yield
        else:
            with db.atomic():
                locked = time.perf_counter()
                yield
    finally:
        if observe is not None:
            end = time.perf_counter()
            observe((locked or end) - start, end - start)


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
