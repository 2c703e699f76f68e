"""Assembles the controller: PKI, database, domain objects, the two gRPC
servers (public TLS API and mTLS node API), health and reflection."""

from __future__ import annotations

import json
import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.auth.interceptor import ApiInterceptor
from controller.auth.principal import NodePrincipal
from controller.auth.tokens import TokenSigner
from controller.config import ControllerConfig
from controller.db import migrations
from controller.db.database import db, open_database
from controller.domain.identity import Identity, admin_password_from_env
from controller.errors import Unauthenticated
from controller.pki import ensure_pki
from kumo.v1 import identity_pb2, identity_pb2_grpc

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


@dataclass
class Services:
    """What the servers expose; each feature adds its servicer here."""

    public: list[tuple[Any, Any, str]] = field(default_factory=list)  # (add_fn, servicer, full name)
    node: list[tuple[Any, Any, str]] = field(default_factory=list)


class Controller:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(cfg.pki_dir, cfg.server_names)
        self.database = open_database(cfg.database_url, cfg.db_path)
        version = migrations.migrate()
        log.info(
            "database ready",
            extra={"schema_version": version, "url": cfg.database_url or str(cfg.db_path)},
        )
        self.signer = TokenSigner.from_file(cfg.data_dir / "token.key")
        self.identity = Identity(self.signer, cfg.token_ttl_seconds)
        self.admin_password_file = self.identity.bootstrap(cfg.data_dir, admin_password_from_env())
        self.services = Services()
        self._stop = threading.Event()
        self._register()
        self.health = health.HealthServicer()
        self.public_server: grpc.Server | None = None
        self.node_server: grpc.Server | None = None
        self.port = 0
        self.node_port = 0

    def _register(self) -> None:
        from controller.api.identity import IdentityServicer

        s = self.services
        s.public.append(
            (
                identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                IdentityServicer(self.identity),
                identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
            )
        )
        from controller.api.node import register as register_nodes

        register_nodes(self)
        from controller.api.images import register as register_images

        register_images(self)
        from controller.api.instances import register as register_compute

        register_compute(self)
        from controller.api.networks import register as register_networks

        register_networks(self)
        from controller.api.volumes import register as register_volumes

        register_volumes(self)

    def _server(self, interceptor: ApiInterceptor, entries: list[tuple[Any, Any, str]]) -> grpc.Server:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="rpc"),
            interceptors=[interceptor],
            options=GRPC_OPTIONS,
            maximum_concurrent_rpcs=None,
        )
        for add, servicer, _ in entries:
            add(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [name for _, _, name in entries]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        return server

    def start(self) -> None:
        key_pair = [(self.pki.server_key_pem, self.pki.server_cert_pem)]
        # The public port sends the CA with its certificate: a joining node reads
        # it from the handshake and pins it by the fingerprint in its join token.
        public_pair = [(self.pki.server_key_pem, self.pki.server_cert_pem + self.pki.ca.cert_pem)]
        public = self._server(ApiInterceptor(self.identity.principal_for), self.services.public)
        self.port = public.add_secure_port(self.cfg.listen, grpc.ssl_server_credentials(public_pair))
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.cfg.listen}")
        public.start()
        self.public_server = public
        if self.services.node:
            from controller.nodeserver import AsyncNodeServer

            node = AsyncNodeServer(self.services.node, self.node_authenticator, self.nodes.registry)
            creds = grpc.ssl_server_credentials(
                key_pair, root_certificates=self.pki.ca.cert_pem, require_client_auth=True
            )
            self.node_port = node.add_secure_port(self.cfg.node_listen, creds)
            if self.node_port == 0:
                raise RuntimeError(f"cannot listen on {self.cfg.node_listen}")
            node.start()
            self.node_server = node
        self.instances.start_sync()
        self.volumes.start_sync()
        for _, _, name in self.services.public + self.services.node:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        info = {
            "endpoint": advertised(self.cfg.listen, self.port),
            "node_endpoint": advertised(self.cfg.node_listen, self.node_port) if self.node_port else "",
            "ca_file": str(self.cfg.pki_dir / "ca.crt"),
            "ca_fingerprint": self.pki.ca.fingerprint,
        }
        tmp = self.cfg.data_dir / "controller.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.cfg.data_dir / "controller.json")  # readers never see half a file
        log.info("controller serving", extra=info)

    def node_authenticator(self, ctx: Any) -> NodePrincipal:
        """The node port's caller: the node named by its client certificate (the
        TLS layer has checked it chains to our CA), if that node still exists
        and the certificate is the one it enrolled with."""
        auth = ctx.auth_context()
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise Unauthenticated("a node client certificate is required", reason="NO_CLIENT_CERT")
        try:
            cert = x509.load_pem_x509_certificate(pems[0])
        except ValueError:
            raise Unauthenticated("the client certificate cannot be read", reason="NO_CLIENT_CERT") from None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else ""
        return self.nodes.authenticate(common_name, format(cert.serial_number, "x"))

    def stop(self, grace: float = 10.0) -> None:
        """Graceful: stop taking new RPCs, let running ones finish within `grace`."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.instances.stop_sync()
        self.volumes.stop_sync()
        events = [s.stop(grace) for s in (self.public_server, self.node_server) if s is not None]
        for ev in events:
            ev.wait()
        if not db.is_closed():
            db.close()
        log.info("controller stopped")

    def wait(self) -> None:
        self._stop.wait()
