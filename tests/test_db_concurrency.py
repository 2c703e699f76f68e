"""SQLite write paths under a concurrent writer: a transaction that reads before it
writes must take the write lock up front, or SQLite refuses its upgrade at once
("database is locked", whatever busy_timeout says) and the RPC fails. A real file
in WAL mode, as the controller runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from controller.db import identity as store
from controller.db import migrations
from controller.db.database import as_conflict, db, open_database
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.errors import Aborted

ROUNDS = 60


@pytest.fixture()
def busy_db(tmp_path: Path) -> Iterator[None]:
    """A migrated database with a project whose row another thread rewrites
    in autocommit, as heartbeats and the sync loops do in the controller."""
    database = open_database("", tmp_path / "busy.db")
    migrations.migrate()
    store.insert_project("p-busy", "busy", "", True, 0.0)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            row = store.get_project("p-busy")
            assert row is not None
            store.update_project(row, {"description": str(time.time())}, time.time())

    writer = threading.Thread(target=db.carry(churn), daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        database.close()


def test_grants_survive_a_concurrent_writer(busy_db: None) -> None:
    for i in range(ROUNDS):
        store.insert_user(f"u{i}", f"user{i}", "hash", 0.0)
        row = store.grant_role(f"u{i}", "p-busy", 1, 0.0)
        assert (row.user_id, row.project_id, row.role) == (f"u{i}", "p-busy", 1)
    assert len(store.projects_of_user("u0")) == 1


def test_idempotent_creates_survive_a_concurrent_writer(busy_db: None) -> None:
    def create(i: int) -> str:
        store.count_users()  # a read first, as quota checks do
        return store.insert_project(f"p{i}", f"project{i}", "", True, 0.0).id

    for i in range(ROUNDS):
        made = idempotent_create(
            "project", "", RequestKey(f"req-{i}", "digest"), lambda i=i: create(i), str, str
        )
        assert made == f"p{i}"
        again = idempotent_create(
            "project", "", RequestKey(f"req-{i}", "digest"), lambda: pytest.fail("ran twice"), str, str
        )
        assert again == made


def test_lock_timeouts_and_deadlocks_answer_aborted() -> None:
    for message in ("database is locked", "deadlock detected\nDETAIL: ...", "could not serialize access"):
        err = as_conflict(peewee.OperationalError(message))
        assert isinstance(err, Aborted) and err.reason == "CONCURRENT_CHANGE"
    assert as_conflict(peewee.OperationalError("no such table: x")) is None
    assert as_conflict(ValueError("database is locked")) is None
