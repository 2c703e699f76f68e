"""The controllers a node may open its session with: `node_endpoint` may be a
comma list (HOST:PORT,HOST:PORT: several controllers on one database), and
each welcome names the control plane's live controllers, which the node
keeps (in its state directory, so a restart remembers them) after the ones
it was given. The session uses one at a time and moves to the next when a
session with it fails or never opens; the node port's other calls (image
downloads, snapshots) follow the session's choice."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("kumo.noded")


def split_endpoints(spec: str) -> list[str]:
    return [e.strip() for e in spec.split(",") if e.strip()]


class ControllerEndpoints:
    def __init__(self, spec: str, learned_file: Path | None = None) -> None:
        self.given = split_endpoints(spec) or [spec]
        self._file = learned_file
        self._learned = self._load()
        self.all = self._merged(self._learned)
        self._index = 0
        self._lock = threading.Lock()

    def _load(self) -> list[str]:
        if self._file is None:
            return []
        try:
            data = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return []
        return [e for e in data if isinstance(e, str) and e] if isinstance(data, list) else []

    def _merged(self, learned: list[str]) -> list[str]:
        return list(dict.fromkeys(self.given + learned))

    def current(self) -> str:
        with self._lock:
            return self.all[self._index]

    def failed(self, endpoint: str) -> str:
        """A session with `endpoint` failed: the next one (the same when there is one)."""
        with self._lock:
            if self.all[self._index] == endpoint:
                self._index = (self._index + 1) % len(self.all)
            return self.all[self._index]

    def learn(self, endpoints: list[str]) -> None:
        """The live controllers a welcome named: they replace the ones learned
        before (a controller gone from the control plane drops off), after the
        given ones, and the session stays on the controller it is on."""
        learned = [e for e in dict.fromkeys(endpoints) if e and e not in self.given]
        with self._lock:
            if learned == self._learned:
                return
            on = self.all[self._index]
            self._learned = learned
            self.all = self._merged(learned)
            self._index = self.all.index(on) if on in self.all else 0
        log.info("controllers learned", extra={"controllers": ",".join(self.all)})
        if self._file is not None:
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(learned) + "\n")
            os.replace(tmp, self._file)
