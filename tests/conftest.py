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
