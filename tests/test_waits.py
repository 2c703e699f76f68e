"""The load-scaled deadline behind every e2e wait: deterministic clock and
load, no guests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.waits import LoadScaledDeadline, load_factor, scaled_timeout, wait_until


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
