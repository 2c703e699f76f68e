"""Polling for the commands' --wait (with --timeout): until a resource settles, or until it is gone.
Each state a resource passes through is printed to stderr as "<name>: <state>"; on a terminal a live
line below it shows what is awaited and for how long (nothing more when stderr is not a terminal)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import grpc
import typer

from cli.errors import CliError

WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until the change is done, showing the state")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", min=0, help="With --wait: give up after this long (0: never)"
    ),
]
DEFAULT_TIMEOUT = 600.0


@contextmanager
def _progress(what: str, timeout: float, lines: bool = True) -> Iterator[Callable[[str], None]]:
    """Yields note(text), called on every poll: prints "<what>: <text>" to stderr when the text
    changes (with `lines`); on a terminal also keeps a live line "waiting for <what>: <text> (N s of
    T s)" under it."""
    from rich.console import Console  # here, not at import: rich costs every command start-up

    console = Console(stderr=True)
    began = time.monotonic()
    state = [""]
    if not console.is_terminal:

        def plain(text: str) -> None:
            if lines and text != state[0]:
                typer.echo(f"{what}: {text}", err=True)
            state[0] = text

        yield plain
        return

    def line() -> str:
        limit = f" of {timeout:.0f}" if timeout else ""
        return f"waiting for {what}: {state[0]} ({time.monotonic() - began:.0f} s{limit})"

    with console.status(line()) as status:

        def note(text: str) -> None:
            if lines and text != state[0]:
                console.print(f"{what}: {text}", highlight=False, markup=False)
            state[0] = text
            status.update(line())

        yield note


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def settle(
    kind: str,
    item: Any,
    refresh: Callable[[Any], Any],
    done: Callable[[Any], bool],
    error_state: int,
    *,
    label: Callable[[Any], str] | None = None,
    stalled: Callable[[Any], str] | None = None,
    failed: Callable[[Any], str] | None = None,
    state: Callable[[Any], int] = lambda x: x.state,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.5,
) -> Any:
    """Refreshes `item` every `interval` s until done(item) and returns it; fails with failed(item)
    (by default its fault) if state(item) then is `error_state`. With `label`, shows "<name>:
    <label>" whenever the label changes. After `timeout` s (0: never) it fails with stalled(item),
    by default "<kind> <name> is still <label> after N s"."""
    deadline = time.monotonic() + timeout if timeout else None
    with _progress(item.name, timeout, lines=label is not None) as note:
        while True:
            shown = label(item) if label else ""
            note(shown or "in progress")
            if done(item):
                if state(item) == error_state:
                    why = (
                        failed(item)
                        if failed
                        else f"{kind} {item.name} failed: {item.fault or 'no reason given'}"
                    )
                    raise CliError(why)
                return item
            if _expired(deadline):
                why = (
                    stalled(item) if stalled else f"{kind} {item.name} is still {shown} after {timeout:.0f} s"
                )
                raise CliError(why)
            time.sleep(interval)
            item = refresh(item)


def gone(
    kind: str,
    name: str,
    absent: Callable[[], bool],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.5,
) -> None:
    """Polls absent() every `interval` s until it is true; fails after `timeout` s (0: never)."""
    deadline = time.monotonic() + timeout if timeout else None
    with _progress(name, timeout, lines=False) as note:
        note("deleting")
        while not absent():
            if _expired(deadline):
                raise CliError(f"{kind} {name} is still being deleted after {timeout:.0f} s")
            time.sleep(interval)
            note("deleting")


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
