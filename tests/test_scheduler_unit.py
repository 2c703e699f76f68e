"""The scheduler's filters and weighers on plain candidates (no database)."""

from __future__ import annotations

import random

from controller.domain.scheduler import FILTERS, Candidate, Ratios, Request, no_valid_host, schedule

RATIOS = Ratios(cpu=2.0, ram=1.0, disk=1.0)


def node(name: str, **kw) -> Candidate:  # type: ignore[no-untyped-def]
    base = {"ready": True, "enabled": True, "vcpus": 4, "ram_mb": 4096, "disk_gb": 100}
    return Candidate(node_id=name, name=name, **{**base, **kw})


def test_filters_count_the_first_rejecting_filter() -> None:
    nodes = [
        node("down", ready=False),
        node("off", enabled=False),
        node("busy-cpu", vcpus_used=8),
        node("busy-ram", ram_mb_used=4000),
        node("busy-disk", disk_gb_used=100),
        node("ok"),
    ]
    out = schedule(nodes, Request(vcpus=1, ram_mb=512, disk_gb=1), RATIOS)
    assert [c.name for c in out.ranked] == ["ok"]
    assert out.rejected["NodeReadyFilter"] == 1
    assert out.rejected["NodeEnabledFilter"] == 1
    assert out.rejected["VcpuFilter"] == 1
    assert out.rejected["RamFilter"] == 1
    assert out.rejected["DiskFilter"] == 1


def test_allocation_ratio_allows_cpu_overcommit() -> None:
    out = schedule([node("n", vcpus_used=7)], Request(vcpus=1, ram_mb=16, disk_gb=0), RATIOS)
    assert out.ranked
    out = schedule([node("n", vcpus_used=8)], Request(vcpus=1, ram_mb=16, disk_gb=0), RATIOS)
    assert not out.ranked


def test_spread_and_pack() -> None:
    nodes = [node("full", ram_mb_used=3000), node("empty")]
    req = Request(vcpus=1, ram_mb=512, disk_gb=1)
    assert schedule(nodes, req, RATIOS, "spread").ranked[0].name == "empty"
    assert schedule(nodes, req, RATIOS, "pack").ranked[0].name == "full"


def test_server_group_policies() -> None:
    nodes = [node("a"), node("b"), node("c")]
    anti = Request(
        vcpus=1, ram_mb=16, disk_gb=0, group_policy="anti-affinity", group_nodes=frozenset({"a", "b"})
    )
    out = schedule(nodes, anti, RATIOS)
    assert [c.name for c in out.ranked] == ["c"]
    assert out.rejected["AntiAffinityFilter"] == 2
    aff = Request(vcpus=1, ram_mb=16, disk_gb=0, group_policy="affinity", group_nodes=frozenset({"b"}))
    assert [c.name for c in schedule(nodes, aff, RATIOS).ranked] == ["b"]
    first = Request(vcpus=1, ram_mb=16, disk_gb=0, group_policy="affinity")
    assert len(schedule(nodes, first, RATIOS).ranked) == 3


def test_no_valid_host_names_the_filters() -> None:
    req = Request(vcpus=64, ram_mb=512, disk_gb=1)
    out = schedule([node("a"), node("b", ready=False)], req, RATIOS)
    err = no_valid_host(out, req)
    assert err.reason == "NO_VALID_HOST"
    assert "VcpuFilter rejected 1" in err.message and "NodeReadyFilter rejected 1" in err.message
    assert "2 node(s) considered" in err.message
    assert "there are no nodes" in no_valid_host(schedule([], req, RATIOS), req).message


def _every_filter(nodes: list[Candidate], r: Request) -> tuple[list[str], dict[str, int]]:
    """The ranking's survivors and counts with every filter run on every node."""
    kept, rejected = [], {name: 0 for name, _ in FILTERS}
    for c in nodes:
        for name, check in FILTERS:
            if not check(c, r, RATIOS):
                rejected[name] += 1
                break
        else:
            kept.append(c.name)
    return kept, rejected


def test_leaving_out_idle_filters_changes_no_result() -> None:
    """schedule() skips the filters that cannot reject a node for the request
    (no group, no pinning, not a migration) and inlines a plain create's;
    survivors and counts must be what running all of them gives, for every
    kind of request (capacity limits met exactly included)."""
    rng = random.Random(7)
    nodes = [
        node(
            f"n{i}",
            ready=rng.random() > 0.1,
            enabled=rng.random() > 0.1,
            maintenance=rng.random() < 0.1,
            vcpus_used=rng.randint(0, 9),
            ram_mb_used=rng.randint(0, 4096),
            disk_gb_used=rng.randint(0, 100),
            storage_backends=("rbd",) if rng.random() < 0.5 else (),
            migration_address="10.0.0.1:1" if rng.random() < 0.5 else "",
        )
        for i in range(200)
    ]
    some = frozenset(f"n{i}" for i in range(0, 200, 3))
    requests = [
        Request(1, 512, 1),
        Request(8, 4096, 100),  # only the empty nodes: used + asked == capacity
        Request(3, 2048, 40),
        Request(2, 1024, 10, group_policy="affinity", group_nodes=some),
        Request(2, 1024, 10, group_policy="affinity"),
        Request(1, 512, 1, group_policy="anti-affinity", group_nodes=some),
        Request(1, 512, 0, required_node="n5"),
        Request(1, 512, 0, required_backend="rbd"),
        Request(1, 512, 1, migrating_from="n9"),
    ]
    for r in requests:
        out = schedule(nodes, r, RATIOS)
        kept, rejected = _every_filter(nodes, r)
        assert sorted(c.name for c in out.ranked) == sorted(kept), r
        assert out.rejected == rejected, r
        assert out.considered == len(nodes)
