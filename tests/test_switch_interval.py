"""A controller process shortens its GIL switch interval (switch_interval_ms,
docs/nodes.md "Scale: what a create costs"); 0 leaves Python's own."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from controller.config import apply_switch_interval, load_config


@pytest.fixture
def restore_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_default_and_environment_set_the_interval(restore_interval: None) -> None:
    apply_switch_interval(load_config(environ={}))
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    apply_switch_interval(load_config(environ={"KUMO_SWITCH_INTERVAL_MS": "2"}))
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_zero_leaves_the_interval_alone(restore_interval: None) -> None:
    sys.setswitchinterval(0.005)
    apply_switch_interval(load_config(environ={"KUMO_SWITCH_INTERVAL_MS": "0"}))
    assert sys.getswitchinterval() == pytest.approx(0.005)
