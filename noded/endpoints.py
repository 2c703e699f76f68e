"""The controllers a node may open its session with: `node_endpoint` may be a
comma list (HOST:PORT,HOST:PORT: several controllers on one database). The
session uses one at a time and moves to the next when a session with it fails
or never opens; the node port's other calls (image downloads, snapshots)
follow the session's choice."""

from __future__ import annotations

import threading


def split_endpoints(spec: str) -> list[str]:
    return [e.strip() for e in spec.split(",") if e.strip()]


class ControllerEndpoints:
    def __init__(self, spec: str) -> None:
        self.all = split_endpoints(spec) or [spec]
        self._index = 0
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            return self.all[self._index]

    def failed(self, endpoint: str) -> str:
        """A session with `endpoint` failed: the next one (the same when there is one)."""
        with self._lock:
            if self.all[self._index] == endpoint:
                self._index = (self._index + 1) % len(self.all)
            return self.all[self._index]
