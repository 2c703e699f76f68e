"""The controller on a real PostgreSQL server: migrations apply, identity
works, and racing creates of one name still have exactly one winner."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from kumo.v1 import identity_pb2 as pb
from tests.harness import Client, ControllerProc, make_user

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_controller(postgres, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_identity")
    data = tmp_path_factory.mktemp("pgctl") / "data"
    data.mkdir()
    proc = ControllerProc(data, extra_args=["--database-url", url]).start()
    yield proc
    proc.stop()


def test_identity_on_postgres(pg_controller: ControllerProc) -> None:
    admin = pg_controller.login()
    p = admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="pg-proj")))
    make_user(admin, p.id, "pg-user", pb.ROLE_MEMBER)
    member = pg_controller.login("pg-user", "password-123")
    assert member.identity.GetCurrentIdentity(pb.GetCurrentIdentityRequest()).project_name == "pg-proj"
    for i in range(5):
        admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name=f"pg-page-{i}")))
    first = admin.identity.ListProjects(pb.ListProjectsRequest(page_size=2))
    second = admin.identity.ListProjects(
        pb.ListProjectsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert {x.id for x in first.projects}.isdisjoint({x.id for x in second.projects})


def test_restart_on_postgres_keeps_state(pg_controller: ControllerProc) -> None:
    admin = pg_controller.login()
    admin.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="pg-durable")))
    pg_controller.restart()
    again = Client(pg_controller.channel(), admin.token)
    names = {p.name for p in again.identity.ListProjects(pb.ListProjectsRequest(name="pg-durable")).projects}
    assert names == {"pg-durable"}


def test_racing_creates_on_postgres(pg_controller: ControllerProc) -> None:
    clients = [pg_controller.login() for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    codes: list[grpc.StatusCode] = []

    def create(c: Client) -> None:
        barrier.wait()
        try:
            c.identity.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="pg-race")))
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    threads = [threading.Thread(target=create, args=(c,)) for c in clients]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert codes.count(grpc.StatusCode.OK) == 1
    assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == 7


def test_migrations_on_postgres(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from controller.db import migrations
    from controller.db.database import db, open_database
    from tests.test_migrations import _models

    database = open_database(postgres.create_database("kumo_schema"), tmp_path / "unused.db")
    try:
        migrations.migrate()
        tables = set(db.get_tables())
        for model in _models():
            table = model._meta.table_name
            assert table in tables
            have = {c.name for c in db.get_columns(table)}
            assert {f.column_name for f in model._meta.sorted_fields} == have, table
    finally:
        database.close()


def test_controllers_starting_together_apply_each_migration_once(postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Four controllers' worth of migrate() at the same moment on an empty database."""
    from controller.db import migrations
    from controller.db.database import db, open_database

    url = postgres.create_database("kumo_racing_schema")
    start = threading.Barrier(4)
    results: list[object] = []

    def one(i: int) -> None:
        database = open_database(url, tmp_path / f"unused{i}.db")
        try:
            start.wait()
            results.append(migrations.migrate())
        except Exception as exc:
            results.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    newest = max(v for v, _, _ in migrations.discover())
    assert results == [newest] * 4, results
    database = open_database(url, tmp_path / "check.db")
    try:
        rows = db.execute_sql("SELECT version, COUNT(*) FROM schema_migrations GROUP BY version").fetchall()
    finally:
        database.close()
    assert len(rows) == len(migrations.discover()) and all(n == 1 for _, n in rows)
