"""Which processes the test Ceph cluster's lock holder takes for a killed
session's cluster (bench/ceph_cluster.py, reap_stale): Ceph daemons whose
config is a ceph.conf under a `kumo-*` directory, nothing else. The
"daemons" are sleeping processes this test starts under a daemon's name
(argv[0]) and kills itself; the real kill needs the lock, which a live
session's cluster holds (tests/test_hostnet_e2e.py and the rbd tests run
the real cluster)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ceph_cluster import _stale_daemons


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def as_daemon(procs: list[subprocess.Popen], name: str, conf: Path) -> int:
    """A process with argv `name -c CODE -c CONF`: a Python under that argv[0]
    blocked reading its stdin, alive until the test kills it (no timer)."""
    p = subprocess.Popen(
        [name, "-c", "import sys; sys.stdin.read()", "-c", str(conf)],
        executable=sys.executable,
        stdin=subprocess.PIPE,
    )
    procs.append(p)
    return p.pid


def test_only_daemons_of_a_kumo_test_cluster_are_stale(procs: list[subprocess.Popen], tmp_path: Path) -> None:
    ours = tmp_path / "kumo-ceph-left" / "ceph.conf"
    stale = {as_daemon(procs, n, ours) for n in ("ceph-mon", "ceph-mgr", "ceph-osd")}
    other_cluster = as_daemon(procs, "ceph-mon", tmp_path / "prod" / "ceph.conf")
    not_ceph = as_daemon(procs, "ceph-monitor-tool", ours)
    found = set(_stale_daemons())
    assert stale <= found
    assert not {other_cluster, not_ceph} & found
