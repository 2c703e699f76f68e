"""What a token's database check found (the caller's principal), kept in
memory for a bounded time so most RPCs verify their token with no query.

The signature and expiry are still checked on every call (in memory); what the
cache saves is the token row's revocation, the user's and project's enabled
flags and the role. Staleness is bounded: an entry is used for at most
`max_age` seconds after the database said so, so a change made on another
controller of the same control plane (they share the database, not memory)
takes effect everywhere within `max_age`. A change made through this
controller (revoke, disable, role removed, password set) clears the whole
cache at once, so it takes effect here immediately."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from controller.auth.principal import Principal

# An upper bound on entries (one per live token in use); past it the cache
# starts again empty rather than growing without limit.
MAX_ENTRIES = 50_000


class PrincipalCache:
    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._generation = 0

    def get(self, token: str) -> Principal | None:
        """The principal the database gave for `token` less than max_age ago."""
        if self.max_age <= 0:
            return None
        entry = self._entries.get(token)
        if entry is None or self._clock() - entry[0] >= self.max_age:
            return None
        return entry[1]

    def generation(self) -> int:
        """Taken before a database check; `put` drops the answer if a clear came in between."""
        return self._generation

    def put(self, token: str, principal: Principal, generation: int, checked_at: float) -> None:
        """Keeps what the database said at `checked_at` (taken before the query)."""
        if self.max_age <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return  # a change cleared the cache while this check ran: it may be stale
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[token] = (checked_at, principal)

    def now(self) -> float:
        return self._clock()

    def clear(self) -> None:
        """Forgets every entry: an identity change was made here."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
