"""The event log: who changed what, when, and how it ended.

Two kinds of writes, and what happens when one cannot be made (disk full):
- `record`: a change the domain makes (an instance scheduled, stopped,
  faulted, deleted; a node DOWN) is written in the transaction that makes the
  change, so the two commit together or not at all. If the event cannot be
  written, the change fails too, and the caller sees the error (an RPC
  answers it; a sync pass logs it and runs again).
- `record_call`: the event of an API call, written after the call (a
  refused call made no change to write it with), in batches by one writer
  thread (event_batches.py: concurrent calls share one write transaction).
  If it cannot be written, the call's answer stands; the failure is logged
  at error level and counted in `write_failures`, never dropped silently."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import events as store
from controller.db.database import write_transaction
from controller.db.events import EventQuery
from controller.db.models import Event
from controller.domain.event_batches import EventBatches
from controller.domain.periodic import Periodic
from controller.errors import InvalidArgument, KumoError

log = logging.getLogger("kumo.events")

PRUNE_BATCH = 5000
# resource types and actions: lower case words joined by "_".
WORD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Cause:
    """Who asked for a change: a caller and the request_id they sent, or
    nobody (CONTROLLER: the controller acted by itself)."""

    request_id: str = ""
    user_id: str = ""
    user_name: str = ""

    @staticmethod
    def of(caller: Principal | None, request_id: str = "") -> Cause:
        if caller is None:
            return Cause(request_id)
        return Cause(request_id, caller.user_id, caller.user_name)


CONTROLLER = Cause()


@dataclass(frozen=True)
class Outcome:
    """An event's result: ok, or the error code (a gRPC code name, empty for
    a failure the controller observed) and reason."""

    ok: bool = True
    error_code: str = ""
    error_reason: str = ""

    @staticmethod
    def of(error: KumoError) -> Outcome:
        return Outcome(False, error.code.name, error.reason)

    @staticmethod
    def failed(reason: str) -> Outcome:
        return Outcome(False, "", reason)


OK = Outcome()


def _clean(text: str, limit: int) -> str:
    """What a column holds: within its width, without NUL (which PostgreSQL
    text refuses; a refused call's fields are whatever the caller sent)."""
    return text.replace("\x00", "")[:limit]


def _row(
    resource_type: str,
    resource_id: str,
    action: str,
    project_id: str,
    cause: Cause,
    outcome: Outcome,
    message: str,
    method: str,
) -> dict[str, Any]:
    """An event row's columns (its time is now: a queued row keeps its place in order)."""
    return {
        "id": clock.new_id(),
        "time": clock.now(),
        "request_id": _clean(cause.request_id, 128),
        "user_id": _clean(cause.user_id, 36),
        "user_name": _clean(cause.user_name, 64),
        "project_id": _clean(project_id, 36),
        "resource_type": _clean(resource_type, 64),
        "resource_id": _clean(resource_id, 64),
        "action": _clean(action, 64),
        "ok": outcome.ok,
        "error_code": _clean(outcome.error_code, 32),
        "error_reason": _clean(outcome.error_reason, 64),
        "message": _clean(message, 4096),
        "method": _clean(method, 128),
    }


def _write_rows(rows: list[dict[str, Any]]) -> None:
    with write_transaction():
        store.insert_events(rows)


class EventLog:
    """Writes and lists events, and prunes those older than the retention
    (`retention_seconds`; 0 keeps them forever) every `prune_seconds`."""

    def __init__(self, retention_seconds: float, prune_seconds: float) -> None:
        self.retention_seconds = retention_seconds
        self._prune = Periodic("event-prune", prune_seconds, self.prune_once, log)
        self._lock = threading.Lock()
        self._write_failures = 0
        self._batches = EventBatches(_write_rows, self._not_written)

    @property
    def write_failures(self) -> int:
        """How many API-call events could not be written since start."""
        with self._lock:
            return self._write_failures

    def record(
        self,
        resource_type: str,
        resource_id: str,
        action: str,
        project_id: str = "",
        cause: Cause = CONTROLLER,
        outcome: Outcome = OK,
        message: str = "",
        method: str = "",
    ) -> None:
        """Writes one event in the caller's transaction (or its own, outside one)."""
        store.insert_event(
            **_row(resource_type, resource_id, action, project_id, cause, outcome, message, method)
        )

    def record_call(
        self,
        resource_type: str,
        resource_id: str,
        action: str,
        project_id: str,
        cause: Cause,
        outcome: Outcome,
        message: str,
        method: str,
    ) -> None:
        """The event of an API call, after it: never raises (see the module doc).
        Queued for the batch writer when it runs (`start_writer`), else written
        here. Also the way to record a refusal found inside a transaction that
        then rolls back (a quota refused): write it after, outside that transaction."""
        row = _row(resource_type, resource_id, action, project_id, cause, outcome, message, method)
        if self._batches.put(row):
            return
        try:
            _write_rows([row])
        except Exception as exc:
            self._not_written(row, exc)

    def _not_written(self, row: dict[str, Any], exc: Exception) -> None:
        with self._lock:
            self._write_failures += 1
            failures = self._write_failures
        log.error(
            "event not written",
            exc_info=exc,
            extra={
                "method": row["method"],
                "resource_id": row["resource_id"],
                "action": row["action"],
                "event_write_failures": failures,
            },
        )

    def start_writer(self) -> None:
        """API-call events from now on go to the batch writer (one thread)."""
        self._batches.start()

    def stop_writer(self) -> None:
        """Writes the queued API-call events, then stops the writer."""
        self._batches.stop()

    def flush(self) -> None:
        """Waits until the API-call events queued so far are written."""
        self._batches.flush()

    def list(
        self, caller: Principal, query: EventQuery, page_size: int, page_token: str
    ) -> tuple[list[Event], str]:
        """Admins see every event (or one project's); others their project's
        only: another project's events look like none at all."""
        if query.resource_type and not WORD.match(query.resource_type):
            raise InvalidArgument(
                f"resource_type {query.resource_type!r} is not a resource type (e.g. instance)"
            )
        if query.action and not WORD.match(query.action):
            raise InvalidArgument(f"action {query.action!r} is not an action (e.g. start)")
        if query.start_time and query.end_time and query.end_time <= query.start_time:
            raise InvalidArgument("end_time must be after start_time", reason="TIME_RANGE_INVALID")
        if not caller.is_admin:
            if query.project_id and query.project_id != caller.project_id:
                return [], ""
            query = EventQuery(
                caller.project_id,
                query.resource_type,
                query.resource_id,
                query.action,
                query.start_time,
                query.end_time,
            )
        self.flush()  # the caller's own finished calls are listed
        return store.list_events(query, page_size, page_token)

    # Retention

    def prune_once(self) -> int:
        """Deletes events older than the retention, in batches; returns how many."""
        if self.retention_seconds <= 0:
            return 0
        cutoff = clock.now() - self.retention_seconds
        total = 0
        while True:
            with write_transaction():
                n = store.delete_before(cutoff, PRUNE_BATCH)
            total += n
            if n < PRUNE_BATCH:
                break
        if total:
            log.info("events pruned", extra={"events": total, "retention_seconds": self.retention_seconds})
        return total

    def start_prune(self) -> None:
        self._prune.start()

    def stop_prune(self) -> None:
        self._prune.stop()
