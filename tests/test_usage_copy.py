"""The in-memory copy of the nodes' claims that a sampled create ranks from
(domain/usage_copy.py): its invalidation rules, and that a stale copy costs a
lost claim, never an overcommit or a placement on a disabled node."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.db import instances as store
from controller.db import live_migrations as lm_store
from controller.db import migrations
from controller.db import nodes as node_store
from controller.db.database import db, open_database, write_transaction
from controller.domain import placement as placement_mod
from controller.domain.placement import Placement
from controller.domain.scheduler import Ratios, Request, schedule
from controller.domain.usage_copy import Row, UsageCopy
from controller.errors import ResourceExhausted
from controller.metrics import ControllerMetrics
from kumo.v1 import node_pb2

# Unit: a fake database read and a fake clock


class FakeRead:
    def __init__(self, rows: dict[str, Row]) -> None:
        self.rows = rows
        self.calls: list[list[str] | None] = []

    def __call__(self, only: list[str] | None) -> list[Row]:
        self.calls.append(only)
        return [r for nid, r in self.rows.items() if only is None or nid in only]


def row(node_id: str, vcpus_used: int = 0) -> Row:
    return (node_id, node_id, True, 8, 8192, 100, vcpus_used, 0, 0, False)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rows_come_from_one_read_until_older_than_max_age() -> None:
    read, now = FakeRead({"a": row("a"), "b": row("b")}), Clock()
    copy = UsageCopy(1.0, read, now)
    assert [r[0] for r in copy.rows(["a", "b"])] == ["a", "b"]
    read.rows["a"] = row("a", vcpus_used=5)  # another controller claimed
    now.t += 0.5
    assert copy.rows(["a"])[0][6] == 0  # within max_age: the copy's value
    assert read.calls == [None]
    now.t += 0.6
    assert copy.rows(["a"])[0][6] == 5  # older than max_age: read again whole
    assert read.calls == [None, None]


def test_own_claim_shows_at_once_and_forget_reads_the_node_again() -> None:
    read, now = FakeRead({"a": row("a"), "b": row("b")}), Clock()
    copy = UsageCopy(1.0, read, now)
    copy.rows(["a", "b"])
    copy.claimed("a", 2, 512, 10)
    assert copy.rows(["a"])[0][6:9] == (2, 512, 10)
    read.rows["b"] = row("b", vcpus_used=3)
    copy.forget("b")
    assert copy.rows(["b"])[0][6] == 3
    assert read.calls == [None, ["b"]]


def test_a_node_the_copy_lacks_is_read_at_once_and_an_unknown_one_left_out() -> None:
    read, now = FakeRead({"a": row("a")}), Clock()
    copy = UsageCopy(1.0, read, now)
    copy.rows(["a"])
    read.rows["new"] = row("new")
    assert sorted(r[0] for r in copy.rows(["a", "new", "gone"])) == ["a", "new"]
    assert read.calls[1] is not None and set(read.calls[1]) == {"new", "gone"}


# With the database: Placement over a fake registry


class Registry:
    """The two calls Placement makes of the node registry: every node READY."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.inv = node_pb2.NodeInventory(vcpus=2, memory_mb=4096, disk_gb=100)

    def ready_ids(self) -> list[str]:
        return list(self.ids)

    def capacities(self, only: Any = None) -> dict[str, tuple[bool, node_pb2.NodeInventory | None]]:
        return {nid: (True, self.inv) for nid in (self.ids if only is None else only) if nid in self.ids}


N = 2 * placement_mod.SAMPLE + 2  # big enough to be sampled


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[list[str]]:
    database = open_database("", tmp_path / "usage.db")
    migrations.migrate()
    ids = [f"n{i:03d}" for i in range(N)]
    for nid in ids:
        node_store.insert_node(nid, nid, "serial", 0.0, "", 0.0)
    try:
        yield ids
    finally:
        database.close()


def make_placement(ids: list[str], max_age: float = 3600.0) -> Placement:
    metrics = ControllerMetrics(CollectorRegistry())
    return Placement(Registry(ids), Ratios(cpu=1.0), "spread", metrics, UsageCopy(max_age))  # type: ignore[arg-type]


def claimed_vcpus() -> dict[str, int]:
    return {r[0]: r[6] for r in store.candidates()}


def test_a_stale_copy_never_overcommits(fleet: list[str]) -> None:
    """Another controller fills every node behind this one's copy: each claim
    loses, the sample is refused, and nothing goes over capacity."""
    p = make_placement(fleet)
    req = Request(vcpus=1, ram_mb=512, disk_gb=1)
    p.rank(req)  # the copy is read: every node empty
    for nid in fleet:  # the other controller: 2 vCPU each, the whole node
        assert store.claim(nid, 2, 0, 0, (2.0, 4096.0, 100.0))
    outcome, sampled = p.rank(req)
    assert sampled and len(outcome.ranked) == placement_mod.SAMPLE  # the copy still says room
    with pytest.raises(ResourceExhausted):
        p.claim(outcome, req, final=False)
    assert max(claimed_vcpus().values()) == 2
    lost = [c.node_id for c in outcome.ranked]  # forgotten: read again, full
    assert {r[6] for r in p.usage.rows(lost)} == {2}


def test_a_node_disabled_or_drained_behind_the_copy_is_not_claimed(fleet: list[str]) -> None:
    p = make_placement(fleet)
    req = Request(vcpus=1, ram_mb=512, disk_gb=1)
    outcome, _ = p.rank(req)
    best, second = outcome.ranked[0].node_id, outcome.ranked[1].node_id
    node_store.set_enabled(best, False, "test", 1.0)
    lm_store.set_maintenance(second, True, 1.0)
    chosen = p.claim(outcome, req, final=False)
    assert chosen not in (best, second)
    assert claimed_vcpus()[best] == claimed_vcpus()[second] == 0


def test_concurrent_creates_through_the_copy_fill_the_fleet_exactly(fleet: list[str]) -> None:
    """Threads rank from the copy and claim until refused (as create does:
    the sample, then every node from the database): every vCPU is claimed
    once, none twice."""
    p = make_placement(fleet, max_age=0.05)
    req = Request(vcpus=1, ram_mb=16, disk_gb=0)
    placed: list[str] = []
    lock = threading.Lock()

    def creator() -> None:
        while True:
            outcome, sampled = p.rank(req)
            try:
                with write_transaction():
                    try:
                        chosen = p.claim(outcome, req, final=not sampled)
                    except ResourceExhausted:
                        if not sampled:
                            raise
                        chosen = p.claim(schedule(p.candidates(), req, p.ratios, p.weigher), req)
            except ResourceExhausted:
                return
            with lock:
                placed.append(chosen)

    threads = [threading.Thread(target=db.carry(creator)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(placed) == 2 * N
    assert set(claimed_vcpus().values()) == {2}


def test_a_sampled_ranking_sees_its_own_claims_and_new_inventories_at_once(fleet: list[str]) -> None:
    """The Candidates reused from earlier rankings follow the copy's row (a
    claim) and the session's inventory (a heartbeat that brought a new one)."""
    p = make_placement(fleet)
    req = Request(vcpus=1, ram_mb=512, disk_gb=1)
    outcome, _ = p.rank(req)
    with write_transaction():
        chosen = p.claim(outcome, req, final=False)
    registry = p.registry
    assert isinstance(registry, Registry)
    registry.inv = node_pb2.NodeInventory(vcpus=3, memory_mb=4096, disk_gb=100)

    def seen(node_id: str) -> list[Any]:
        for _ in range(500):  # sampled 64 of N at random: it shows up soon
            for c in p.rank(req)[0].ranked:
                if c.node_id == node_id:
                    return [c.vcpus, c.vcpus_used]
        raise AssertionError(f"{node_id} never sampled")

    assert seen(chosen) == [3, 1]
    assert seen(next(n for n in fleet if n != chosen)) == [3, 0]
