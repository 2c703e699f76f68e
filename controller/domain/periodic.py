"""A background pass that runs every few seconds on its own thread (the
instance and volume syncs): one failing pass is logged and the next one runs;
each pass gives a PostgreSQL connection back, since the thread is long-lived."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.db.database import db, is_sqlite


class Periodic:
    def __init__(self, name: str, period: float, fn: Callable[[], Any], log: logging.Logger) -> None:
        self.name = name
        self.period = period
        self.fn = fn
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # The pass uses the database of the controller that starts it.
        self._thread = threading.Thread(target=db.carry(self._loop), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        # A SQLite connection is kept from pass to pass: opening one re-reads the
        # schema and sets the pragmas (about 1.1-1.5 ms of CPU, against 0.01 ms for
        # a pass's query on an open one: measured on a 10,000-node database), and
        # holding it costs SQLite nothing. A PostgreSQL one (a server process) is
        # given back after each pass.
        keep = is_sqlite()
        try:
            while not self._stop.wait(self.period):
                try:
                    self.fn()
                except Exception:
                    self.log.exception("%s failed", self.name)
                finally:
                    if not keep and not db.is_closed():
                        db.close()
        finally:
            if not db.is_closed():
                db.close()
