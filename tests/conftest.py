from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Client, ControllerProc


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProc]:
    """One real controller per test module (fresh SQLite file, fresh CA)."""
    data_dir: Path = tmp_path_factory.mktemp("ctl") / "data"
    data_dir.mkdir()
    proc = ControllerProc(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(controller: ControllerProc) -> Client:
    return controller.login()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real PostgreSQL server, started once for the tests that need one."""
    import shutil
    import tempfile

    from bench.pg import PostgresServer

    # Not under pytest's tmp dir: its parents are 0700 root and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="kumo-pg-"))
    base.chmod(0o755)
    server = PostgresServer(base / "pg").start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
