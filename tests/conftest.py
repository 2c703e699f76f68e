from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ceph import ceph_cluster  # noqa: F401 - one session-wide cluster for every rbd test module
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


@pytest.fixture(scope="session")
def dashboard_key() -> bytes:
    """The one key every test dashboard's certificate is made for (see tests/dashboardutil.py)."""
    from kumo import keys

    return keys.key_pem(keys.new_key())


@pytest.fixture(scope="session")
def browser(dashboard_key: bytes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless Chromium for the whole test session, shared by the dashboard tests."""
    from tests.dashboardutil import browser_available, new_browser

    assert browser_available(), "chromium and chromium-driver must be installed (scripts/setup-host.sh)"
    driver = new_browser(dashboard_key, tmp_path_factory.mktemp("browser"))
    yield driver
    driver.quit()
