"""Serial consoles: who may attach to which instance's console and how, and
the console log read live from the node (the stored report as a fallback).

Readers (any role on the project) follow the console log, any number at
once; the serial device itself (input) needs the member role and takes one
writer per instance: a second one is refused (FAILED_PRECONDITION
CONSOLE_IN_USE), it does not take over."""

from __future__ import annotations

import logging

from controller.auth.principal import Principal, Role
from controller.db import instances as store
from controller.domain.instances import ACTIVE, CONSOLE_LIMIT, REBOOTING, STATE_NAMES, Instances, tail_lines
from controller.domain.node_registry.consoles import Console, ConsoleRelay, HeldElsewhere
from controller.errors import FailedPrecondition, InvalidArgument, KumoError, PermissionDenied
from kumo.v1 import node_agent_pb2 as npb

log = logging.getLogger("kumo.compute")

DEFAULT_TAIL = 4096
# How long GetConsoleOutput waits for the node's log before it answers with the last report.
LIVE_LOG_TIMEOUT = 3.0
# GetConsoleOutput with tail_lines asks the node for about this much a line
# (at least MIN_TAIL), more only when that held fewer lines than asked.
LINE_BYTES = 256
MIN_TAIL = 8192


class Consoles:
    def __init__(self, instances: Instances, relay: ConsoleRelay) -> None:
        self.instances = instances
        self.relay = relay

    def attach(self, caller: Principal, instance_id: str, write: bool, tail_bytes: int) -> Console:
        if not 0 <= tail_bytes <= CONSOLE_LIMIT:
            raise InvalidArgument(f"tail_bytes must be 0-{CONSOLE_LIMIT}, got {tail_bytes}")
        row = self.instances.get(caller, instance_id)
        if write and caller.role < Role.MEMBER:
            raise PermissionDenied(
                "a read-write console needs the member role; attach read-only",
                reason="ROLE_REQUIRED",
                required_role="member",
            )
        if row.state not in (ACTIVE, REBOOTING) or not row.node_id:
            raise FailedPrecondition(
                f"instance {row.name!r} is {STATE_NAMES.get(row.state)}: its console is not running "
                "(GetConsoleOutput has its log)",
                reason="INSTANCE_WRONG_STATE",
            )
        if write:
            return self.relay.open(row.node_id, row.id, npb.CONSOLE_KIND_INTERACTIVE, 0)
        return self.relay.open(row.node_id, row.id, npb.CONSOLE_KIND_FOLLOW, tail_bytes or DEFAULT_TAIL)

    def _live_tail(self, node_id: str, instance_id: str, lines: int) -> bytes:
        """Enough of the node's log for its last `lines` lines (0: all it keeps):
        a guess of LINE_BYTES a line, grown while it held fewer lines than asked,
        so a poll for a few lines does not move a megabyte."""
        want = CONSOLE_LIMIT if not lines else min(CONSOLE_LIMIT, max(MIN_TAIL, lines * LINE_BYTES))
        while True:
            data = self.relay.log(node_id, instance_id, want, LIVE_LOG_TIMEOUT)
            if want >= CONSOLE_LIMIT or len(data) < want or data.count(b"\n") > lines:
                return data
            want = min(CONSOLE_LIMIT, want * 4)

    def output(self, caller: Principal, instance_id: str, lines: int, forwardable: bool = False) -> str:
        """The node's log now when it answers; else the last report it sent.
        With `forwardable`, a node whose session another controller holds raises
        HeldElsewhere (the caller asks that controller) instead."""
        if lines < 0:
            raise InvalidArgument(f"tail_lines must not be negative, got {lines}")
        row = self.instances.get(caller, instance_id)
        data = None
        if row.node_id:
            try:
                data = self._live_tail(row.node_id, row.id, lines)
            except HeldElsewhere:
                if forwardable:
                    raise
            except KumoError as exc:
                log.debug("console log from the last report", extra={"instance": row.id, "why": exc.message})
        text = store.get_console(row.id) if data is None else data.decode("utf-8", "replace")
        return tail_lines(text, lines)
