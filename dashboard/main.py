"""`kumo-dashboard`: serves the web UI over HTTPS (loopback unless --listen
says otherwise), a client of the controller's public API."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

from dashboard.app import build_app
from dashboard.config import DashboardConfig
from dashboard.throttle import ThrottleLimits
from kumo.logs import setup_logging


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kumo-dashboard"


def parse(argv: list[str] | None) -> tuple[DashboardConfig, Path | None]:
    p = argparse.ArgumentParser(prog="kumo-dashboard", description=__doc__)
    p.add_argument("--endpoint", default=os.environ.get("KUMO_ENDPOINT", "127.0.0.1:7443"))
    p.add_argument("--ca-file", default=os.environ.get("KUMO_CA_FILE", ""), help="the cloud's CA certificate")
    p.add_argument("--listen", default=os.environ.get("KUMO_DASHBOARD_LISTEN", "127.0.0.1:8443"))
    p.add_argument(
        "--cert-file", required=True, help="HTTPS certificate (PEM), e.g. signed by the cloud's CA"
    )
    p.add_argument("--key-file", required=True, help="its private key (PEM)")
    p.add_argument("--info-file", default="", help="write {url} here once serving (tests, make up)")
    p.add_argument("--idle-minutes", type=float, default=480)
    p.add_argument(
        "--state-dir",
        default=os.environ.get("KUMO_DASHBOARD_STATE_DIR", str(default_state_dir())),
        help="where the dashboard keeps its session file (made 0700)",
    )
    d = ThrottleLimits()
    p.add_argument("--login-max-user-failures", type=int, default=d.per_user)
    p.add_argument("--login-max-address-failures", type=int, default=d.per_address)
    p.add_argument("--login-failure-window", type=float, default=d.window, help="seconds")
    p.add_argument("--login-lockout", type=float, default=d.lockout, help="seconds")
    a = p.parse_args(argv)
    cfg = DashboardConfig(
        endpoint=a.endpoint,
        ca_file=Path(a.ca_file) if a.ca_file else None,
        listen=a.listen,
        cert_file=Path(a.cert_file),
        key_file=Path(a.key_file),
        idle_seconds=a.idle_minutes * 60,
        state_dir=Path(a.state_dir),
        login_limits=ThrottleLimits(
            a.login_max_user_failures, a.login_max_address_failures, a.login_failure_window, a.login_lockout
        ),
    )
    return cfg, Path(a.info_file) if a.info_file else None


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    cfg, info_file = parse(argv)
    setup_logging("info", "text")
    sock = bind(cfg.listen)
    host, port = sock.getsockname()[:2]
    url = f"https://{'localhost' if ipaddress.ip_address(host).is_loopback else host}:{port}/"
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(cfg),
            ssl_certfile=str(cfg.cert_file),
            ssl_keyfile=str(cfg.key_file),
            log_level="warning",
            access_log=False,
            ws="websockets-sansio",
            proxy_headers=False,  # the client address is the TCP peer (login throttling counts it)
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    if info_file is not None:
        tmp = info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "port": port}))
        tmp.replace(info_file)
    logging.getLogger("kumo.dashboard").info("dashboard serving on %s (API %s)", url, cfg.endpoint)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
