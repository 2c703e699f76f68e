"""The load-scaled deadline behind every e2e wait: deterministic clock and
load, no guests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import node_pb2 as npb
from tests.waits import LoadScaledDeadline, diagnose, load_factor, scaled_timeout, wait_reconciled, wait_until


def test_load_factor_is_runnable_tasks_per_core_never_below_one() -> None:
    assert load_factor(0.3, 2) == 1.0  # quiet
    assert load_factor(2.0, 2) == 1.0  # one task per core: nothing waits
    assert load_factor(7.0, 2) == 3.5  # the failing CI run
    assert load_factor(7.0, 0) == 7.0  # an unknown CPU count counts as one


def test_scaled_timeout_stretches_with_load_up_to_the_cap() -> None:
    assert scaled_timeout(120, 0.5, 2) == 120
    assert scaled_timeout(120, 7.0, 2) == 420
    assert scaled_timeout(120, 40.0, 2, cap=540) == 540


class Machine:
    """A scripted clock and load average."""

    def __init__(self, load: float = 0.0, cpus: int = 2) -> None:
        self.now, self.load, self.cpus = 1000.0, load, cpus

    def clock(self) -> float:
        return self.now

    def loadavg(self) -> tuple[float, int]:
        return self.load, self.cpus

    def deadline(self, base: float, cap: float = 540) -> LoadScaledDeadline:
        return LoadScaledDeadline(base, cap, clock=self.clock, load=self.loadavg)


def run_until_expired(
    m: Machine, d: LoadScaledDeadline, step: float = 1.0, during: Callable[[], None] = lambda: None
) -> float:
    """Advances the clock by `step` until `d` expires; the elapsed seconds."""
    while True:
        m.now += step
        during()
        if d.expired():
            return d.elapsed


def test_quiet_machine_deadline_is_the_base() -> None:
    m = Machine(load=0.4)
    assert run_until_expired(m, m.deadline(120)) == 120


def test_steady_load_matches_scaled_timeout() -> None:
    m = Machine(load=7.0)
    assert run_until_expired(m, m.deadline(120)) == scaled_timeout(120, 7.0, 2) == 420


def test_deadline_extends_only_while_the_machine_is_busy() -> None:
    m = Machine(load=1.0)
    d = m.deadline(100)

    def busy_from_30_to_90() -> None:
        m.load = 8.0 if 1030 < m.now <= 1090 else 1.0

    # 30 quiet s, then 60 s at factor 4 (worth 15 quiet s), then the last 55 quiet s.
    assert run_until_expired(m, d, during=busy_from_30_to_90) == 145
    assert d.peak_factor == 4.0


def test_a_busy_machine_never_waits_past_the_cap() -> None:
    m = Machine(load=100.0)
    assert run_until_expired(m, m.deadline(120, cap=300)) == 300


def test_wait_until_returns_the_value_and_explains_a_timeout() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_until(lambda: next(calls), what="ready", base=5, step=0.01) == "ready"
    with pytest.raises(AssertionError) as exc:
        wait_until(
            lambda: False, what="the impossible", base=0.05, step=0.01, explain=lambda: "node was DOWN"
        )
    text = str(exc.value)
    assert "waiting for the impossible" in text and "load factor" in text and "node was DOWN" in text


def test_a_failing_diagnosis_does_not_hide_the_timeout() -> None:
    def broken() -> str:
        raise RuntimeError("controller gone")

    with pytest.raises(
        AssertionError, match=r"(?s)waiting for x.*diagnosis failed.*controller gone.*load average"
    ):
        wait_until(lambda: False, what="x", base=0.05, step=0.01, explain=broken)


class FakeStubs:
    """Stands in for a Client: GetInstance, GetConsoleOutput and GetNode answers."""

    def __init__(self) -> None:
        self.instance = cpb.Instance(
            id="i-1", state=cpb.INSTANCE_STATE_BUILDING, task="", fault="no room", node_id="n-1"
        )
        self.node = npb.Node(
            id="n-1",
            name="host1",
            state=npb.NODE_STATE_READY,
            connected=True,
            desired_revision=7,
            applied_revision=5,
        )
        self.node.last_heartbeat_time.GetCurrentTime()

    def stub(self, cls: Any) -> Any:
        return self

    def GetInstance(self, _req: Any) -> cpb.Instance:
        return self.instance

    def GetConsoleOutput(self, _req: Any) -> cpb.GetConsoleOutputResponse:
        return cpb.GetConsoleOutputResponse(
            output="\n".join(["SeaBIOS", "KUMO-DISKS: vda vdb", *["noise"] * 30])
        )

    def GetNode(self, _req: Any) -> npb.Node:
        return self.node


def test_diagnosis_says_what_the_guest_and_its_node_were_doing() -> None:
    text = diagnose(FakeStubs(), "i-1")
    assert "instance i-1: state INSTANCE_STATE_BUILDING, task '', fault 'no room', node n-1" in text
    assert "node host1 (n-1): state NODE_STATE_READY, connected True, desired revision 7, applied 5" in text
    assert re.search(r"last heartbeat [\d.]+ s ago \(\d\d:\d\d:\d\d\)", text)
    assert "virsh domstate kumo-i-1:" in text and "virsh list --all" in text
    assert "load average" in text
    assert "KUMO-DISKS: vda vdb" in text and "the console's last 25 lines" in text
    assert "SeaBIOS" not in text.split("last 25 lines")[1], "only the last lines"


def test_a_restarted_node_is_reconciled_only_after_a_whole_pass(tmp_path: Path) -> None:
    """A restarted node's hello already carries applied == desired: that alone
    must not end the wait; two passes starting (desired.json rewritten) do."""
    stubs = FakeStubs()
    stubs.node.applied_revision = stubs.node.desired_revision
    (tmp_path / "desired.json").write_text("{}")
    with pytest.raises(AssertionError, match="passes started since: 0"):
        wait_reconciled(stubs, "n-1", tmp_path, base=0.3)

    def passes() -> None:
        for _ in range(2):
            time.sleep(0.2)
            (tmp_path / "desired.json.tmp").write_text("{}")
            (tmp_path / "desired.json.tmp").replace(tmp_path / "desired.json")

    t = threading.Thread(target=passes)
    t.start()
    wait_reconciled(stubs, "n-1", tmp_path, base=30)
    t.join()
    stubs.node.applied_revision -= 1
    with pytest.raises(AssertionError, match="desired revision 7, applied 6"):
        wait_reconciled(stubs, "n-1", tmp_path, base=0.3)
