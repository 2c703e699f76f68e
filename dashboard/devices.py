"""Known devices: a browser that once logged in as a user gets a long-lived
random cookie, and its later logins as that user are throttled on their own
count, not the user name's. So someone who knows only a user name can lock
out logins from unknown browsers, not the user's own (OWASP's "device
cookies"). Rows live in a 0600 SQLite file of the dashboard's, keyed by the
cookie's SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from pathlib import Path

from dashboard.sessions import open_private

DEVICE_COOKIE = "kumo_device"
SCHEMA = """CREATE TABLE IF NOT EXISTS devices (
    key TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    expire_at REAL NOT NULL
)"""
PER_USER = 20  # devices remembered per user name (the oldest go first)


class KnownDevices:
    def __init__(self, path: Path, lifetime_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self._lock = threading.Lock()
        self._db = open_private(path, SCHEMA)

    @staticmethod
    def _key(cookie: str) -> str:
        return hashlib.sha256(cookie.encode()).hexdigest()

    def known(self, cookie: str, user: str) -> str:
        """The device's key when `cookie` was given to a browser that logged in as
        `user` and has not expired, else ""."""
        if not cookie:
            return ""
        key = self._key(cookie)
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM devices WHERE key = ? AND user = ? AND expire_at > ?",
                (key, user.lower(), time.time()),
            ).fetchone()
        return key if row else ""

    def remember(self, user: str) -> str:
        """A new cookie for a browser that just logged in as `user`."""
        cookie = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM devices WHERE expire_at <= ?", (now,))
            self._db.execute(
                "INSERT INTO devices VALUES (?, ?, ?)", (self._key(cookie), user.lower(), now + self.lifetime)
            )
            self._db.execute(
                "DELETE FROM devices WHERE user = ? AND key NOT IN "
                "(SELECT key FROM devices WHERE user = ? ORDER BY expire_at DESC LIMIT ?)",
                (user.lower(), user.lower(), PER_USER),
            )
        return cookie
