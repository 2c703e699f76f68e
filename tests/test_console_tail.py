"""GetConsoleOutput's tail: a poll for a few lines asks the node for a few
KiB, not the megabyte it keeps, and still answers the right lines when lines
are long. The relay here stands in for the node's ConsoleStream (its log is a
bytes string) so the sizes asked for can be seen; tests/test_console_fake.py
reads a real fake node's log through the whole path."""

from __future__ import annotations

from controller.auth.principal import Principal, Role
from controller.domain import consoles
from controller.domain.consoles import Consoles
from controller.domain.instances import CONSOLE_LIMIT, tail_lines

ALICE = Principal("u", "alice", "p", "demo", Role.MEMBER, "t", 0.0)


class Row:
    id = "i"
    node_id = "n"


class Instances:
    def get(self, caller: Principal, instance_id: str) -> Row:
        return Row()


class Relay:
    def __init__(self, log: bytes) -> None:
        self.data = log
        self.asked: list[int] = []

    def log(self, node_id: str, instance_id: str, limit: int, timeout: float) -> bytes:
        self.asked.append(limit)
        return self.data[-limit:]


def output(log: bytes, lines: int) -> tuple[str, list[int]]:
    relay = Relay(log)
    c = Consoles(Instances(), relay)  # type: ignore[arg-type]
    return c.output(ALICE, "i", lines), relay.asked


def test_a_few_lines_ask_for_a_few_kib() -> None:
    log = b"".join(b"line %d\n" % i for i in range(100_000))
    out, asked = output(log, 5)
    assert out == tail_lines(log.decode(), 5)
    assert asked == [consoles.MIN_TAIL]


def test_long_lines_grow_the_request_until_they_fit() -> None:
    log = b"".join(b"%d:" % i + b"x" * 20_000 + b"\n" for i in range(60))
    out, asked = output(log, 3)
    assert out == tail_lines(log.decode(), 3)
    assert asked[0] == consoles.MIN_TAIL and len(asked) > 1 and asked[-1] <= CONSOLE_LIMIT


def test_no_tail_reads_all_the_node_keeps() -> None:
    log = b"a\nb\n"
    out, asked = output(log, 0)
    assert out == "a\nb\n" and asked == [CONSOLE_LIMIT]


def test_a_short_log_is_read_once() -> None:
    out, asked = output(b"one\ntwo\n", 100)
    assert out == "one\ntwo" and asked == [100 * consoles.LINE_BYTES]
