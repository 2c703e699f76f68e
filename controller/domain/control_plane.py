"""The control plane: the controllers that share one database. Each one, on
start, checks that it holds the CA and token keys the control plane already
uses (a controller made with its own CA or keys would refuse the others'
nodes and tokens: it must not join), records itself, and reports in every
few seconds so `kumo controller list` can tell which are up."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from controller import clock
from controller.auth.tokens import TokenKeyring
from controller.db import controllers as store
from controller.db.models import Controller
from controller.domain.periodic import Periodic

log = logging.getLogger(__name__)

CA_FACT = "ca_fingerprint"
KEY_FACT = "token_key_check:"


class NotThisControlPlane(RuntimeError):
    """This controller's CA or token keys are not the control plane's."""


def controller_id(data_dir: Path) -> str:
    """This controller's id, made once and kept in its data directory."""
    path = data_dir / "controller.id"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(uuid.uuid4()) + "\n")
        tmp.replace(path)
    return path.read_text().strip()


class ControlPlane:
    def __init__(
        self,
        data_dir: Path,
        shared_dir: Path,
        ca_fingerprint: str,
        keyring: TokenKeyring,
        token_ttl: float,
        node_sessions: Callable[[], int],
        heartbeat_seconds: float,
    ) -> None:
        self.id = controller_id(data_dir)
        self.shared_dir = shared_dir
        self.ca_fingerprint = ca_fingerprint
        self.keyring = keyring
        self.token_ttl = token_ttl
        self.node_sessions = node_sessions
        self.heartbeat_seconds = heartbeat_seconds
        self._beat = Periodic("controller-heartbeat", heartbeat_seconds, self.heartbeat, log)
        self._endpoints_lock = threading.Lock()
        self._endpoints: tuple[float, list[str]] = (0.0, [])  # (read at, monotonic), the list

    def join(self) -> None:
        """Refuses to run with another CA or other token keys than the ones the
        control plane recorded first (NotThisControlPlane says which and what to do)."""
        mine = {CA_FACT: self.ca_fingerprint, **{KEY_FACT + k: c for k, c in self.keyring.checks().items()}}
        known_keys = {n for n in store.facts() if n.startswith(KEY_FACT)}
        recorded = store.record_facts(mine, clock.now())
        hint = (
            f"start it with the shared directory of that control plane (shared_dir; "
            f"this one uses {self.shared_dir})"
        )
        if recorded[CA_FACT] != self.ca_fingerprint:
            raise NotThisControlPlane(
                f"this database belongs to a control plane whose CA has fingerprint "
                f"{recorded[CA_FACT]}, but this controller's CA is {self.ca_fingerprint}: {hint}"
            )
        for name, check in mine.items():
            if name.startswith(KEY_FACT) and recorded[name] != check:
                raise NotThisControlPlane(
                    f"token key {name[len(KEY_FACT) :]} differs from the control plane's key "
                    f"of that id: {hint}"
                )
        if known_keys and not known_keys & {n for n in mine if n.startswith(KEY_FACT)}:
            raise NotThisControlPlane(f"none of this controller's token keys is the control plane's: {hint}")

    def register(self, endpoint: str, node_endpoint: str) -> None:
        now = clock.now()
        store.upsert_controller(
            {
                "id": self.id,
                "hostname": socket.gethostname(),
                "endpoint": endpoint,
                "node_endpoint": node_endpoint,
                "version": metadata.version("kumo-cloud"),
                "start_time": now,
                "last_seen_time": now,
                "node_sessions": self.node_sessions(),
            }
        )
        self._beat.start()

    def heartbeat(self) -> None:
        store.seen(self.id, clock.now(), self.node_sessions())

    def stop(self) -> None:
        self._beat.stop()

    def up(self, row: Controller, now: float) -> bool:
        return self._seen_lately(row.last_seen_time, now)

    def _seen_lately(self, last_seen: float, now: float) -> bool:
        return now - last_seen <= 3 * self.heartbeat_seconds

    def node_endpoints(self) -> list[str]:
        """The node ports of the live controllers, this one first (told to each
        node at its welcome, so it can fail over to controllers it was not
        given); read from the database at most once a heartbeat interval."""
        with self._endpoints_lock:
            read_at, cached = self._endpoints
            if time.monotonic() - read_at < self.heartbeat_seconds:
                return cached
        now = clock.now()
        rows = store.node_endpoints()
        mine = [e for cid, e, _ in rows if cid == self.id and e]
        others = sorted(e for cid, e, seen in rows if cid != self.id and e and self._seen_lately(seen, now))
        found = list(dict.fromkeys(mine + others))
        with self._endpoints_lock:
            self._endpoints = (time.monotonic(), found)
        return found

    def rotate_token_key(self) -> tuple[str, list[str]]:
        """A new signing key, recorded so controllers that join later must hold it too."""
        kid, removed = self.keyring.rotate(self.token_ttl, clock.now())
        store.record_facts({KEY_FACT + kid: self.keyring.checks()[kid]}, clock.now())
        log.warning("token signing key rotated", extra={"key_id": kid, "removed": removed})
        return kid, removed

    def list(self, page_size: int, page_token: str) -> tuple[list[Controller], str]:
        return store.list_controllers(page_size, page_token)
