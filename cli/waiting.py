"""Polling for the commands' --wait: until a resource settles, or until it is gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import typer

from cli.errors import CliError


def settle(
    kind: str,
    item: Any,
    refresh: Callable[[Any], Any],
    done: Callable[[Any], bool],
    error_state: int,
    *,
    label: Callable[[Any], str] | None = None,
    stalled: Callable[[Any], str] | None = None,
    timeout: float = 600,
    interval: float = 0.5,
) -> Any:
    """Refreshes `item` every `interval` s until done(item) and returns it; fails if it then is in
    `error_state`. With `label`, prints "<name>: <label>" to stderr whenever the label changes. After
    `timeout` s it fails with stalled(item), by default "<kind> <name> is still <label> after N s"."""
    last = ""
    deadline = time.monotonic() + timeout
    while True:
        shown = label(item) if label else ""
        if shown != last:
            typer.echo(f"{item.name}: {shown}", err=True)
            last = shown
        if done(item):
            if item.state == error_state:
                raise CliError(f"{kind} {item.name} failed: {item.fault or 'no reason given'}")
            return item
        if time.monotonic() > deadline:
            why = stalled(item) if stalled else f"{kind} {item.name} is still {shown} after {timeout:.0f} s"
            raise CliError(why)
        time.sleep(interval)
        item = refresh(item)


def gone(
    kind: str, name: str, absent: Callable[[], bool], *, timeout: float = 300, interval: float = 0.5
) -> None:
    """Polls absent() every `interval` s until it is true; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if absent():
            return
        time.sleep(interval)
    raise CliError(f"{kind} {name} is still being deleted")


def not_found(get: Callable[[], Any]) -> Callable[[], bool]:
    """An absent() for gone(): true once get() fails with NOT_FOUND (any other error is raised)."""

    def absent() -> bool:
        try:
            get()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return True
            raise
        return False

    return absent
