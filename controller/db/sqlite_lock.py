"""SQLite is the embedded single-controller database: a second controller on
the same file would keep its own node sessions and in-memory liveness and
mark the first one's nodes DOWN. The first controller holds an exclusive
lock on a file next to the database for as long as it runs; a second one is
refused with a message that says what to do instead. The lock is the kernel's
(flock), so a controller killed with -9 leaves nothing to clean up."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class SqliteInUse(RuntimeError):
    pass


class SqliteLock:
    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".controller-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SqliteInUse(
                f"another controller (pid {holder}) is running on the SQLite database "
                f"{self.path.with_name(self.path.name.removesuffix('.controller-lock'))}; "
                "SQLite serves one controller only: stop that one, or run several "
                "controllers on PostgreSQL (database_url)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
