"""Change notifications between controllers on PostgreSQL: a node's desired
state changed on one controller, and the controller holding its session must
send the change. Each controller LISTENs on one channel (its own psycopg2
connection, on its own thread) and NOTIFYs the ids of nodes whose session it
does not hold; the payload is a comma list of node ids. A controller whose
listening connection broke reconnects and then resyncs every session it holds
(notifications sent meanwhile are lost). SQLite has one controller: no notifier."""

from __future__ import annotations

import logging
import queue
import select
import threading
from collections.abc import Callable
from typing import Any

import peewee
import psycopg2
import psycopg2.extensions

log = logging.getLogger("kumo.nodes")

CHANNEL = "kumo_node_changed"
# A NOTIFY payload must stay under 8000 bytes: 36-byte ids and commas.
IDS_PER_NOTIFY = 200
RECONNECT_SECONDS = 1.0


class PgNotifier:
    """`publish(node_id)` from any thread; `on_change(ids)` runs on the
    listener thread, `on_reconnect()` after a lost connection came back."""

    def __init__(self, connect_params: dict[str, Any]) -> None:
        self.params = connect_params
        self._out: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listen_conn: Any = None
        self.on_change: Callable[[list[str]], None] = lambda ids: None
        self.on_reconnect: Callable[[], None] = lambda: None
        self.listening = threading.Event()

    @classmethod
    def for_database(cls, database: peewee.Database | None) -> PgNotifier | None:
        if not isinstance(database, peewee.PostgresqlDatabase):
            return None
        return cls({"dbname": database.database, **database.connect_params})

    def start(self, on_change: Callable[[list[str]], None], on_reconnect: Callable[[], None]) -> None:
        self.on_change, self.on_reconnect = on_change, on_reconnect
        self._threads = [
            threading.Thread(target=self._listen, name="node-listen", daemon=True),
            threading.Thread(target=self._send, name="node-notify", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._out.put(None)
        conn = self._listen_conn
        if conn is not None:
            try:
                conn.cancel()
            except Exception:  # already closed
                pass
        for t in self._threads:
            t.join(5)

    def publish(self, node_id: str) -> None:
        self._out.put(node_id)

    def _connect(self) -> Any:
        conn = psycopg2.connect(**self.params)
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        return conn

    def _send(self) -> None:
        conn = None
        while not self._stop.is_set():
            first = self._out.get()
            if first is None:
                break
            ids = {first}
            while len(ids) < IDS_PER_NOTIFY:  # what queued meanwhile goes in the same NOTIFY
                try:
                    more = self._out.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._stop.set()
                    break
                ids.add(more)
            try:
                if conn is None:
                    conn = self._connect()
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, ",".join(sorted(ids))))
            except psycopg2.Error:
                log.warning("could not notify the other controllers; retrying", exc_info=True)
                conn = None
                for node_id in ids:
                    self._out.put(node_id)
                self._stop.wait(RECONNECT_SECONDS)
        if conn is not None:
            conn.close()

    def _listen(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                conn = self._listen_conn = self._connect()
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                if not first:
                    self.on_reconnect()
                first = False
                while not self._stop.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        ids: list[str] = []
                        while conn.notifies:
                            ids.extend(conn.notifies.pop(0).payload.split(","))
                        if ids:
                            self.on_change(ids)
            except (psycopg2.Error, OSError, ValueError):
                if self._stop.is_set():
                    break
                log.warning("lost the notification connection; reconnecting", exc_info=True)
                self.listening.clear()
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                if self._listen_conn is not None:
                    try:
                        self._listen_conn.close()
                    except Exception:
                        pass
                    self._listen_conn = None
