"""Server-side login sessions: the browser holds only a random session id;
the kumo token, the CSRF token and who is logged in stay here, in a SQLite
file of the dashboard's own (0600), so a restart of the dashboard keeps
everyone logged in. A row is keyed by the id's SHA-256 (the file alone
gives no cookie), and ends with its token, after `idle_seconds` unused, or
at logout."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kumo.client import Client
from kumo.v1 import identity_pb2 as idpb

COOKIE = "kumo_session"
SCHEMA = """CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    identity BLOB NOT NULL,
    csrf TEXT NOT NULL,
    last_seen REAL NOT NULL,
    expire_at REAL NOT NULL
)"""
TOUCH_EVERY = 30.0  # last_seen is written at most this often per session


@dataclass
class Session:
    """One logged-in browser: its API client (carrying the user's token)."""

    id: str
    client: Client
    csrf: str
    last_seen: float  # wall clock (it outlives the process)
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def who(self) -> idpb.Identity:
        assert self.client.who is not None
        return self.client.who

    @property
    def role(self) -> int:
        return self.who.role

    @property
    def can_write(self) -> bool:
        return self.role >= idpb.ROLE_MEMBER

    @property
    def is_admin(self) -> bool:
        return self.role == idpb.ROLE_ADMIN

    @property
    def expire_at(self) -> float:
        ts = self.who.expire_time
        return ts.seconds + ts.nanos / 1e9 if ts.seconds else float("inf")

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_private(path: Path, schema: str = SCHEMA) -> sqlite3.Connection:
    """A state file of the dashboard's, made 0600 in a 0700 directory before anything is written to it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(schema)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.chmod(extra, 0o600)
    return db


class SessionStore:
    """Sessions by id: rows in the file, live Session objects (with their
    flashes) cached in memory. `base` lends its channel to the clients
    rebuilt from stored tokens."""

    def __init__(self, path: Path, idle_seconds: float, base: Client) -> None:
        self._idle = idle_seconds
        self._base = base
        self._lock = threading.Lock()
        self._db = open_private(path)
        self._cache: dict[str, Session] = {}
        self._touched: dict[str, float] = {}

    def create(self, client: Client) -> Session:
        session = Session(secrets.token_urlsafe(32), client, secrets.token_urlsafe(32), time.time())
        with self._lock:
            self._sweep(session.last_seen)
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    _key(session.id),
                    client.token,
                    session.who.SerializeToString(),
                    session.csrf,
                    session.last_seen,
                    min(session.expire_at, 2**53),
                ),
            )
            self._cache[session.id] = session
            self._touched[session.id] = session.last_seen
        return session

    def lookup(self, session_id: str) -> tuple[Session | None, bool]:
        """The session, or None and whether it existed but has expired (then it is deleted)."""
        now = time.time()
        with self._lock:
            session = self._cache.get(session_id) or self._load(session_id)
            if session is None:
                return None, False
            if now - session.last_seen > self._idle or now >= session.expire_at:
                self._delete(session_id)
                return None, True
            session.last_seen = now
            if now - self._touched.get(session_id, 0.0) > TOUCH_EVERY:
                self._db.execute("UPDATE sessions SET last_seen = ? WHERE key = ?", (now, _key(session_id)))
                self._touched[session_id] = now
            return session, False

    def get(self, session_id: str) -> Session | None:
        return self.lookup(session_id)[0]

    def drop(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._cache.get(session_id) or self._load(session_id)
            self._delete(session_id)
            return session

    def _load(self, session_id: str) -> Session | None:
        row = self._db.execute(
            "SELECT token, identity, csrf, last_seen FROM sessions WHERE key = ?", (_key(session_id),)
        ).fetchone()
        if row is None:
            return None
        token, identity, csrf, last_seen = row
        b = self._base
        client = Client(
            b.channel, token, idpb.Identity.FromString(identity), endpoint=b.endpoint, timeout=b.timeout
        )
        session = Session(session_id, client, csrf, last_seen)
        self._cache[session_id] = session
        self._touched[session_id] = last_seen
        return session

    def _delete(self, session_id: str) -> None:
        self._cache.pop(session_id, None)
        self._touched.pop(session_id, None)
        self._db.execute("DELETE FROM sessions WHERE key = ?", (_key(session_id),))

    def _sweep(self, now: float) -> None:
        """Rows of expired tokens and idle sessions go (the cache follows)."""
        self._db.execute(
            "DELETE FROM sessions WHERE expire_at <= ? OR last_seen < ?", (now, now - self._idle)
        )
        for sid in [
            s.id for s in self._cache.values() if now - s.last_seen > self._idle or now >= s.expire_at
        ]:
            self._cache.pop(sid, None)
            self._touched.pop(sid, None)
