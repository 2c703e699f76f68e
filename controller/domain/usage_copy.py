"""The nodes' candidate rows (name, flags, database capacity and claimed
usage) that a create on a big fleet ranks its random sample from, kept in
memory: reading the sample's rows was a query per create (Placement.candidates
was 8.7% of the controller's GIL time at 1,000 nodes).

A ranking hint, never the answer: the claim is still the database's
conditional UPDATE (room, enabled, not in maintenance), and a sample in which
nothing fits is ranked again from the database before a create is refused.
So a stale row costs a lost claim or a worse spread, never an overcommit.

Invalidation:
- a claim this controller wins is added to the node's row at once (claimed;
  if its transaction rolls back, the row stays high until the next whole read);
- a claim that loses (the node filled up or was disabled meanwhile) drops the
  row at once (forget), and the next ranking that samples the node reads it;
- a release through this controller's deletes drops the row at once (forget);
- every other change (other controllers' claims on a shared PostgreSQL,
  resizes, moves, volume claims, node flags) shows within `max_age` seconds:
  the whole copy is read again when it is older than that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from controller.db import instances as store
from controller.db.database import padded

# A row as db/instances.py candidates() gives it: (id, name, enabled, vcpus,
# memory_mb, disk_gb, vcpus_used, ram_mb_used, disk_gb_used, maintenance).
Row = tuple[Any, ...]


class UsageCopy:
    def __init__(
        self,
        max_age: float,
        read: Callable[[list[str] | None], list[Row]] = store.candidates,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self._read = read
        self._now = now
        self._rows: dict[str, Row] = {}
        self._read_at = float("-inf")
        # Counts the whole reads: what is derived from the rows (Placement's
        # candidates) is dropped when it moves, so it lasts no longer than they do.
        self.generation = 0
        self._lock = threading.Lock()  # guards _rows' entries
        self._reading = threading.Lock()  # one whole read at a time

    def rows(self, node_ids: list[str]) -> list[Row]:
        """The rows of `node_ids` (those the database has), the copy read
        again first when it is older than max_age, rows it lacks read at once."""
        if self._now() - self._read_at > self.max_age:
            self._read_all()
        rows = self._rows
        out: list[Row] = []
        missing: list[str] = []
        for node_id in node_ids:
            row = rows.get(node_id)
            if row is None:
                missing.append(node_id)
            else:
                out.append(row)
        if missing:
            fetched = self._read(padded(missing))
            with self._lock:
                for row in fetched:
                    rows[row[0]] = row
            out += fetched
        return out

    def _read_all(self) -> None:
        with self._reading:
            if self._now() - self._read_at <= self.max_age:
                return  # another thread read it meanwhile
            started = self._now()
            fresh = {row[0]: row for row in self._read(None)}
            with self._lock:
                self._rows = fresh
                self.generation += 1
            self._read_at = started

    def claimed(self, node_id: str, vcpus: int, ram_mb: int, disk_gb: int) -> None:
        """This controller's claim on the node succeeded: the row shows it at once."""
        with self._lock:
            row = self._rows.get(node_id)
            if row is not None:
                self._rows[node_id] = (*row[:6], row[6] + vcpus, row[7] + ram_mb, row[8] + disk_gb, row[9])

    def forget(self, node_id: str) -> None:
        """The node's row may be wrong (a lost claim, a release): the next
        ranking that samples it reads it from the database."""
        with self._lock:
            self._rows.pop(node_id, None)
