"""Failed logins counted per user name and per client address: past a
limit in a window, that user (or that address) is refused for a while, so a
password cannot be guessed at the speed of the network. A browser the user
logged in from before (a known device, dashboard/devices.py) is counted on
its own instead of under the user name, so a stranger's failures cannot lock
the user out of their own browser. In memory: a restart forgets the counts
(and the API's own password checks stay)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

MAX_KEYS = 100_000  # counters kept at most (the oldest go first): a flood cannot grow memory


@dataclass(frozen=True)
class ThrottleLimits:
    per_user: int = 5  # failures of one user name in `window` seconds
    per_address: int = 20  # failures from one client address in `window` seconds
    window: float = 900.0
    lockout: float = 300.0  # refused this long after the failure that reached a limit


class LoginThrottle:
    def __init__(self, limits: ThrottleLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    @staticmethod
    def _keys(user: str, address: str, device: str = "") -> tuple[str, str]:
        return (f"device:{device}" if device else f"user:{user.lower()}"), f"addr:{address}"

    def refusal(self, user: str, address: str, device: str = "") -> tuple[str, int]:
        """Why a login of `user` from `address` (from known `device`, if not "") is
        refused now, and for how many more seconds ("" and 0 when it may try)."""
        now = time.monotonic()
        user_key, addr_key = self._keys(user, address, device)
        with self._lock:
            for key, who in (
                (addr_key, "from this address"),
                (user_key, f"for user {user}" + (" from this browser" if device else "")),
            ):
                until = self._locked_until.get(key, 0.0)
                if until > now:
                    wait = math.ceil(until - now)
                    return f"too many failed logins {who}: try again in {wait} s [RESOURCE_EXHAUSTED]", wait
        return "", 0

    def failed(self, user: str, address: str, device: str = "") -> None:
        now = time.monotonic()
        lim = self.limits
        with self._lock:
            for key, limit in zip(
                self._keys(user, address, device), (lim.per_user, lim.per_address), strict=True
            ):
                times = self._failures.pop(key, None) or deque()
                self._failures[key] = times  # re-inserted: the dict's order is least recently failed first
                times.append(now)
                while times and times[0] < now - lim.window:
                    times.popleft()
                if len(times) >= limit:
                    self._locked_until[key] = now + lim.lockout
                    times.clear()
            while len(self._failures) > MAX_KEYS:
                self._failures.pop(next(iter(self._failures)))
            for key in [k for k, until in self._locked_until.items() if until <= now]:
                del self._locked_until[key]

    def succeeded(self, user: str, device: str = "") -> None:
        """A right password clears the user's (or the device's) count, not the address's:
        one good account must not reset the guessing of others."""
        with self._lock:
            self._failures.pop(self._keys(user, "", device)[0], None)
