"""The HA pass without a cloud: what it reads on a healthy fleet (it runs
every ha_check_seconds; the fleet's free capacity is a pass over every node, read only
when a lost node's instances may move). The moves themselves are covered by
test_evacuation.py on a real controller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from controller import clock
from controller.config import ControllerConfig
from controller.domain import evacuation
from controller.domain.evacuation import Evacuations


@dataclass
class CountingPlacement:
    """Stands in for Placement: counts the capacity reads."""

    ratios: Any = None
    reads: int = 0

    def candidates(self) -> list[Any]:
        self.reads += 1
        return []


@dataclass
class View:
    last_heartbeat_time: float


@dataclass
class LostNodes:
    """Stands in for Nodes: every node is DOWN (no live state), last heard `down_since`."""

    down_since: float
    registry: Any = field(default=None)

    def __post_init__(self) -> None:
        self.registry = self

    def snapshot(self, node_id: str) -> None:
        return None

    def get_node(self, node_id: str) -> View:
        return View(self.down_since)


def ha_pass(monkeypatch: pytest.MonkeyPatch, ha_nodes: list[str], down_since: float) -> CountingPlacement:
    monkeypatch.setattr(evacuation.node_store, "fenced_nodes", lambda: dict.fromkeys(ha_nodes, 0.0))
    monkeypatch.setattr(evacuation.store, "nodes_with_ha_instances", lambda deleting: list(ha_nodes))
    monkeypatch.setattr(evacuation.store, "instances_to_evacuate", lambda *a, **kw: [])
    placement = CountingPlacement()
    cfg = ControllerConfig(node_grace_seconds=3.0, ha_grace_seconds=1.0)
    evacuations = Evacuations(cfg, LostNodes(down_since), placement, None, None)  # type: ignore[arg-type]
    assert evacuations.ha_pass() == 0
    return placement


def test_a_healthy_fleet_costs_the_ha_pass_no_capacity_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ha_pass(monkeypatch, [], clock.now()).reads == 0


def test_a_fenced_node_down_only_briefly_costs_no_capacity_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Heard from 3.5 s ago: DOWN for 0.5 s past its 3 s grace, under the 1 s HA grace.
    assert ha_pass(monkeypatch, ["n1"], clock.now() - 3.5).reads == 0


def test_a_lost_node_past_the_ha_grace_reads_the_capacity_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ha_pass(monkeypatch, ["n1", "n2"], clock.now() - 60).reads == 1
