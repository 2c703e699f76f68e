"""One controller's lifecycle: PKI, database and migrations, the parts the
composition root (assembly.py) builds, the two gRPC servers (public TLS API
and mTLS node API), health and reflection, and the background syncs."""

from __future__ import annotations

import json
import logging
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import peewee
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.assembly import Service, assemble, make_metrics
from controller.auth.call_events import CallEvents
from controller.auth.decoding import LogLimiter
from controller.auth.interceptor import ApiInterceptor
from controller.auth.principal import NodePrincipal
from controller.config import ControllerConfig
from controller.db import migrations
from controller.db.database import db, open_database
from controller.db.sqlite_lock import SqliteLock
from controller.domain.identity import admin_password_from_env
from controller.nodeserver import AsyncNodeServer
from controller.pki import ensure_pki
from kumo.metrics import MetricsServer, serve_metrics

log = logging.getLogger("kumo.controller")

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
]


def advertised(listen: str, port: int) -> str:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Controller:
    """One controller. Everything it makes uses its own database: the thread
    that makes it and every thread it starts are bound to it, so two
    controllers in one process share no state."""

    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(cfg.ca_dir, cfg.pki_dir, cfg.server_names)
        self.sqlite_lock: SqliteLock | None = None
        metrics = make_metrics()
        self.database = open_database(cfg.database_url, cfg.db_path, metrics.observe_write)
        if isinstance(self.database, peewee.SqliteDatabase):
            self.sqlite_lock = SqliteLock(Path(self.database.database))
            try:
                self.sqlite_lock.acquire()
            except RuntimeError:
                self.sqlite_lock = None
                self._close_database()
                raise
        version = migrations.migrate()
        log.info(
            "database ready",
            extra={"schema_version": version, "url": cfg.database_url or str(cfg.db_path)},
        )
        self.port = 0
        self.node_port = 0
        self.parts = assemble(cfg, self.pki, lambda: self.node_port, metrics)
        try:
            self.parts.control_plane.join()
        except RuntimeError:
            self._close_database()
            raise
        self.admin_password_file = self.parts.identity.bootstrap(cfg.data_dir, admin_password_from_env())
        self._stop = threading.Event()
        self.health = health.HealthServicer()
        self.public_server: grpc.Server | None = None
        self.node_server: AsyncNodeServer | None = None
        self.metrics_server: MetricsServer | None = None

    def _server(self, interceptor: ApiInterceptor, entries: tuple[Service, ...]) -> grpc.Server:
        workers = futures.ThreadPoolExecutor(
            max_workers=self.cfg.workers,
            thread_name_prefix="rpc",
            initializer=db.bind_thread,
            initargs=(self.database,),
        )
        server = grpc.server(
            workers,
            interceptors=[interceptor],
            options=GRPC_OPTIONS,
            maximum_concurrent_rpcs=None,
        )
        for entry in entries:
            entry.add(entry.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [entry.name for entry in entries]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        return server

    def start(self) -> None:
        key_pair = [(self.pki.server_key_pem, self.pki.server_cert_pem)]
        # The public port sends the CA with its certificate: a joining node reads
        # it from the handshake and pins it by the fingerprint in its join token.
        public_pair = [(self.pki.server_key_pem, self.pki.server_cert_pem + self.pki.ca.cert_pem)]
        parts, cfg = self.parts, self.cfg
        # First: a metrics address that cannot work stops the start before anything listens.
        self.metrics_server = serve_metrics(
            parts.metrics.registry, cfg.metrics_listen, cfg.metrics_cert_file, cfg.metrics_key_file
        )
        observe = parts.metrics.observe_rpc
        interceptor = ApiInterceptor(
            LogLimiter(), parts.identity.principal_for, observe=observe, events=CallEvents(parts.events)
        )
        public = self._server(interceptor, parts.public)
        self.port = public.add_secure_port(self.cfg.listen, grpc.ssl_server_credentials(public_pair))
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.cfg.listen}")
        public.start()
        self.public_server = public
        if parts.node:
            node = AsyncNodeServer(parts.node, self.node_authenticator, parts.nodes.registry, observe)
            creds = grpc.ssl_server_credentials(
                key_pair, root_certificates=self.pki.ca.cert_pem, require_client_auth=True
            )
            self.node_port = node.add_secure_port(self.cfg.node_listen, creds)
            if self.node_port == 0:
                raise RuntimeError(f"cannot listen on {self.cfg.node_listen}")
            node.start()
            self.node_server = node
        parts.instances.start_sync()
        parts.volumes.start_sync()
        parts.moves.start_sync()
        parts.migrations.start_sync()
        parts.drains.start_sync()
        parts.evacuations.start()
        parts.events.start_writer()
        parts.events.start_prune()
        parts.control_plane.register(
            advertised(self.cfg.listen, self.port),
            (self.cfg.node_advertise or advertised(self.cfg.node_listen, self.node_port))
            if self.node_port
            else "",
        )
        for entry in parts.public + parts.node:
            self.health.set(entry.name, health_pb2.HealthCheckResponse.SERVING)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        info = {
            "endpoint": advertised(self.cfg.listen, self.port),
            "node_endpoint": advertised(self.cfg.node_listen, self.node_port) if self.node_port else "",
            "ca_file": str(self.cfg.pki_dir / "ca.crt"),
            "ca_fingerprint": self.pki.ca.fingerprint,
            "metrics_url": self.metrics_server.url if self.metrics_server else "",
        }
        tmp = self.cfg.data_dir / "controller.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.cfg.data_dir / "controller.json")  # readers never see half a file
        log.info("controller serving", extra=info)

    def node_authenticator(self, ctx: Any) -> NodePrincipal:
        """The node port's caller: the node named by its client certificate, if
        that node still exists and the certificate is the one it holds. The TLS
        layer has checked the chain already; `check_pem` checks it again so a
        refusal is logged with its reason."""
        pems = ctx.auth_context().get("x509_pem_cert") or [b""]
        return self.parts.nodes.certificates.check_pem(pems[0], "session", session=True)

    def stop(self, grace: float = 10.0) -> None:
        """Graceful: stop taking new RPCs, let running ones finish within `grace`."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.parts.control_plane.stop()
        self.parts.instances.stop_sync()
        self.parts.volumes.stop_sync()
        self.parts.moves.stop_sync()
        self.parts.migrations.stop_sync()
        self.parts.drains.stop_sync()
        self.parts.evacuations.stop()
        self.parts.events.stop_prune()
        events = [s.stop(grace) for s in (self.public_server, self.node_server) if s is not None]
        for ev in events:
            ev.wait()
        self.parts.events.stop_writer()  # after the last call: its event is written too
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self._close_database()
        log.info("controller stopped")

    def _close_database(self) -> None:
        if not self.database.is_closed():
            self.database.close()
        if self.sqlite_lock is not None:
            self.sqlite_lock.release()

    def wait(self) -> None:
        self._stop.wait()
