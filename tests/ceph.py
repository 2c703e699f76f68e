"""The real single-node Ceph cluster of bench/ceph_cluster.py as a session
fixture for the rbd tests: started once (~15 s), torn down at the end, all
paths under one temp dir. Ceph's address and ports are fixed, so a lock file
lets one session per host run it at a time (and the holder kills a cluster
a killed session left behind). tests/conftest.py registers it once: a
test module importing it would get its own instance, whose lock waits for
the other's forever."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ceph_cluster import CephCluster, available, one_per_host, start, stop
from tests.waits import wait_until

__all__ = ["CephCluster", "ceph_cluster"]


@pytest.fixture(scope="session")
def ceph_cluster() -> Iterator[CephCluster]:
    why = available()
    if why:
        pytest.fail(f"cannot start the test Ceph cluster: {why}")
    with one_per_host():
        root = Path(tempfile.mkdtemp(prefix="kumo-ceph-"))
        os.chmod(root, 0o755)
        pids: list[int] = []
        try:
            cluster, pids = start(root, lambda pred, what, base: wait_until(pred, what, base=base))
            yield cluster
        finally:
            stop(pids)
            shutil.rmtree(root, ignore_errors=True)
