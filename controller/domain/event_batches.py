"""API-call events written in batches by one thread, off the RPC's path.

Every state-changing call used to write its event in a write transaction of
its own before its answer went out: on SQLite one more turn at the single
write lock per call (about 2 ms under load). Here the call only queues the
row; a writer thread takes whatever has queued meanwhile and inserts it in
one transaction, so N concurrent calls cost one write transaction, not N.
`flush` waits until everything queued before it is written (ListEvents calls
it, so a caller sees the events of its own finished calls). What a crash can
lose: the events of calls answered in the last few milliseconds (the ones
still queued); domain events, written in their change's transaction, never."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.db.database import db

log = logging.getLogger("kumo.events")

# Rows per INSERT (14 columns each: well within SQLite's and PostgreSQL's bind limits).
BATCH = 500
Row = dict[str, Any]


class EventBatches:
    """`write(rows)` writes rows in one transaction (raising on failure);
    `failed(rows, exc)` is told of the rows that could not be written even
    one at a time."""

    def __init__(self, write: Callable[[list[Row]], None], failed: Callable[[Row, Exception], None]) -> None:
        self._write = write
        self._failed = failed
        self._cond = threading.Condition()
        self._pending: list[Row] = []
        self._queued = 0  # rows ever queued
        self._done = 0  # rows written or given up on
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Starts the writer on the calling thread's database."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=db.carry(self._loop), name="event-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Writes what is queued, then ends the writer."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout)
        self._thread = None

    def put(self, row: Row) -> bool:
        """Queues a row; False when no writer runs (the caller writes it itself)."""
        with self._cond:
            if self._thread is None or self._stopping:
                return False
            self._pending.append(row)
            self._queued += 1
            self._cond.notify_all()
            return True

    def flush(self, timeout: float = 10.0) -> None:
        """Waits until every row queued before this call is written (or given up on)."""
        with self._cond:
            target = self._queued
            self._cond.wait_for(lambda: self._done >= target or self._thread is None, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._stopping)
                if not self._pending and self._stopping:
                    self._cond.notify_all()
                    return
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            self._write_batch(batch)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def _write_batch(self, batch: list[Row]) -> None:
        try:
            self._write(batch)
            return
        except Exception:
            log.debug("event batch not written; trying its rows one at a time", exc_info=True)
        for row in batch:  # one bad row must not take the others with it
            try:
                self._write([row])
            except Exception as exc:
                self._failed(row, exc)
