"""A background pass that runs every few seconds on its own thread (the
instance and volume syncs): one failing pass is logged and the next one runs;
each pass gives its database connection back, since the thread is long-lived."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.db.database import db


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
        while not self._stop.wait(self.period):
            try:
                self.fn()
            except Exception:
                self.log.exception("%s failed", self.name)
            finally:
                if not db.is_closed():
                    db.close()
