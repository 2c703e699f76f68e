"""The database handle every model and query uses, and the transactions built on it.

peewee binds models to a database per class, so the handle cannot belong to one
controller; instead each thread is bound to one controller's database (the thread
that opens it, and every thread a controller starts, through `bind_thread` and
`carry`). Two controllers in one process then share no state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
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


# Enough for every hot query in each shape it takes; IN lists that grow with
# the data (a node's instances) would otherwise add a text per length forever.
MAX_SQL_TEXTS = 2048


class SqlTextCache:
    """The SQL text of hot queries, made by peewee once per database and
    reused (`cached`): peewee spends about ten times as long writing a
    statement's SQL as building the query, and a create runs a dozen of them.
    Mixed into the database classes, so each controller has its own."""

    def init_sql_cache(self) -> None:
        self.sql_texts: dict[Hashable, str] = {}
        self._next_sql = threading.local()

    def execute(self, query: Any, **context_options: Any) -> Any:
        pending = getattr(self._next_sql, "pending", None)
        if pending is None:
            return super().execute(query, **context_options)  # type: ignore[misc]
        self._next_sql.pending = None
        key, params = pending
        sql = self.sql_texts.get(key)
        if sql is None:
            sql, made = self.get_sql_context(**context_options).sql(query).query()  # type: ignore[attr-defined]
            if list(made) != list(params):  # the caller's parameters must be peewee's, in its order
                raise RuntimeError(f"cached query {key!r}: parameters {params!r}, peewee made {made!r}")
            if len(self.sql_texts) < MAX_SQL_TEXTS:
                self.sql_texts[key] = sql
        return self.execute_sql(sql, params)  # type: ignore[attr-defined]


class KumoSqlite(SqlTextCache, peewee.SqliteDatabase):
    """SQLite with its own in-process writer lock: SQLite's busy handler polls,
    and under many concurrent writers it can starve one past busy_timeout."""

    def __init__(self, *args: Any, on_write: WriteObserver | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock = threading.RLock()
        self.on_write = on_write
        self.init_sql_cache()


class KumoPostgres(SqlTextCache, peewee.PostgresqlDatabase):
    """PostgreSQL with the write-transaction observer (metrics)."""

    def __init__(self, *args: Any, on_write: WriteObserver | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_write = on_write
        self.init_sql_cache()


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


def cached(key: Hashable, query: Any, params: Sequence[Any]) -> Any:
    """Runs `query` as `query.execute()` would (a select: its rows, as a list),
    with the SQL text peewee made for `key` the first time. `params` are the
    query's parameters in peewee's order (checked against peewee's own on
    that first run); `key` names the query's shape: whatever changes its SQL
    (how many ids an IN lists, an optional clause) must be part of it."""
    database = db.obj
    if not isinstance(database, SqlTextCache):
        return _run(query)
    database._next_sql.pending = (key, params)
    try:
        return _run(query)
    finally:
        database._next_sql.pending = None


def padded(ids: Sequence[Any]) -> list[Any]:
    """A non-empty IN list made as long as the next power of two by repeating
    its last item (the same rows match): a list that grows with the data
    (a node's ports) then takes a handful of `cached` shapes, not one per length."""
    out = list(ids)
    return out + out[-1:] * ((1 << (len(out) - 1).bit_length()) - len(out))


def _cached_cursor(key: Hashable, query: Any, params: Sequence[Any]) -> Any:
    """The driver's cursor of `query` run with the SQL text made for `key`
    (as `cached`). `query` may be a function that builds it: it is then built
    only while the SQL is not known yet, since a cursor needs nothing of the
    query object and building one cost peewee 20-60 us."""
    database = db.obj
    if not isinstance(database, SqlTextCache):
        return database.execute(query() if callable(query) else query)
    sql = database.sql_texts.get(key)
    if sql is not None:
        return database.execute_sql(sql, params)
    database._next_sql.pending = (key, params)
    try:
        return database.execute(query() if callable(query) else query)
    finally:
        database._next_sql.pending = None


def cached_rows(key: Hashable, query: Any, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """A `cached` select's rows as the driver gives them (no per-column
    conversion by peewee: for hot reads of plain columns; an UPDATE ...
    RETURNING too). `query` may be a function that builds it (_cached_cursor)."""
    return list(_cached_cursor(key, query, params).fetchall())


def cached_count(key: Hashable, build: Callable[[], Any], params: Sequence[Any]) -> int:
    """How many rows a `cached` UPDATE or DELETE changed; `build` makes the
    query, only while its SQL is not known (_cached_cursor)."""
    return int(_cached_cursor(key, build, params).rowcount)


def cached_first(key: Hashable, query: Any, params: Sequence[Any]) -> Any:
    """The first row of a `cached` select (None: no row), as get_or_none."""
    rows = cached(key, query.limit(1), [*params, 1])
    return rows[0] if rows else None


def _insert_values(
    model: type[peewee.Model], fields: dict[str, Any]
) -> tuple[Any, tuple[str, ...], list[Any]]:
    """The new row (its defaults filled in), its column names in peewee's
    order and their parameters."""
    row = model(**fields)
    data = row.__data__
    columns = sorted((model._meta.fields[name] for name in data), key=lambda f: f._sort_key)
    return row, tuple(f.name for f in columns), [f.db_value(data[f.name]) for f in columns]


def cached_insert(model: type[peewee.Model], **fields: Any) -> Any:
    """`model.create(**fields)` with `cached` SQL: the row, its defaults filled in."""
    row, names, params = _insert_values(model, fields)
    _cached_cursor(("insert", model.__name__, names), lambda: model.insert(**row.__data__), params)
    row._dirty.clear()
    return row


def cached_insert_new(model: type[peewee.Model], **fields: Any) -> Any:
    """`cached_insert`, or None when a unique key already holds a row with
    those values (INSERT OR IGNORE / ON CONFLICT DO NOTHING): one statement
    where a savepoint around a plain INSERT takes three, and the transaction
    goes on either way. Only for rows whose other constraints the caller
    meets (SQLite's OR IGNORE also skips a NOT NULL or CHECK failure)."""
    row, names, params = _insert_values(model, fields)

    def query() -> Any:
        return model.insert(**row.__data__).on_conflict_ignore()

    if _cached_cursor(("insert new", model.__name__, names), query, params).rowcount != 1:
        return None
    row._dirty.clear()
    return row


def insert_rows(model: type[peewee.Model], rows: Sequence[dict[str, Any]]) -> None:
    """Many rows of `model` in one executemany of a one-row INSERT (every row
    with the same columns): the driver loops in C, where peewee's insert_many
    writes SQL for every value of every row, which cost an event batch's
    writer thread more than the write itself."""
    if not rows:
        return
    fields = [f for f in model._meta.sorted_fields if f.name in rows[0]]
    if len(fields) != len(rows[0]):
        raise ValueError(
            f"{sorted(set(rows[0]) - {f.name for f in fields})} are not columns of {model.__name__}"
        )
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    marks = ", ".join([db.param] * len(fields))
    sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks})'
    db.cursor().executemany(sql, [[f.db_value(row[f.name]) for f in fields] for row in rows])


def _run(query: Any) -> Any:
    if isinstance(query, peewee.SelectBase):
        return list(query)
    return query.execute()


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
