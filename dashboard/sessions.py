"""Server-side login sessions: the browser holds only a random session id; the
kumo token, the CSRF token and who is logged in stay here, in memory."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from kumo.client import Client
from kumo.v1 import identity_pb2 as idpb

COOKIE = "kumo_session"


@dataclass
class Session:
    """One logged-in browser: its API client (carrying the user's token)."""

    id: str
    client: Client
    csrf: str
    last_seen: float
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

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    """Sessions by id; a session unused for `idle_seconds` is forgotten."""

    def __init__(self, idle_seconds: float) -> None:
        self._idle = idle_seconds
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, client: Client) -> Session:
        session = Session(secrets.token_urlsafe(32), client, secrets.token_urlsafe(32), time.monotonic())
        with self._lock:
            self._sweep()
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self._idle:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            return session

    def drop(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.pop(session_id, None)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self._idle
        for sid in [s.id for s in self._sessions.values() if s.last_seen < cutoff]:
            del self._sessions[sid]
