"""The metrics listener both programs share: the Prometheus text format over
HTTP(S) from one explicit CollectorRegistry (never prometheus_client's global
one), on loopback unless an operator configures another address."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_wsgi_server

log = logging.getLogger("kumo.metrics")


class MetricsConfigError(ValueError):
    """The metrics settings cannot work (an unparsable address, a key without a certificate)."""


def split_address(address: str) -> tuple[str, int]:
    """host:port (or [v6]:port, or a bare :port meaning loopback) -> (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise MetricsConfigError(f"metrics address must be host:port, got {address!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class MetricsServer:
    """A running listener; `endpoint` is where it answers (the bound port when asked for 0)."""

    httpd: WSGIServer
    thread: threading.Thread
    endpoint: str
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}/metrics"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    registry: CollectorRegistry, address: str, cert_file: str = "", key_file: str = ""
) -> MetricsServer | None:
    """Starts the listener on `address` (empty: none). TLS when both a
    certificate and a key file are given."""
    if not address:
        return None
    if bool(cert_file) != bool(key_file):
        raise MetricsConfigError("metrics TLS needs both a certificate file and a key file")
    host, port = split_address(address)
    try:
        httpd, thread = start_wsgi_server(
            port, host, registry, certfile=cert_file or None, keyfile=key_file or None
        )
    except OSError as exc:
        raise MetricsConfigError(f"cannot listen for metrics on {address}: {exc}") from None
    bound = httpd.server_address[1]
    endpoint = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
    server = MetricsServer(httpd, thread, endpoint, bool(cert_file))
    log.info("metrics serving", extra={"url": server.url, "loopback": is_loopback(host)})
    return server
