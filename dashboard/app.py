"""The dashboard's composition root: one API channel, the session store, the
page modules' routes and the security headers, built in an order you can read."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from dashboard import (
    admin_pages,
    auth_pages,
    console,
    network_pages,
    server_group_pages,
    server_pages,
    settings_pages,
    storage_pages,
    topology_edit_pages,
)
from dashboard.config import DashboardConfig
from dashboard.devices import KnownDevices
from dashboard.security import SecurityHeaders
from dashboard.sessions import SessionStore
from dashboard.throttle import LoginThrottle
from dashboard.web import Web
from kumo.client import Client

STATIC = Path(__file__).parent / "static"


def build_app(cfg: DashboardConfig) -> Starlette:
    """The ASGI app for `cfg`; every API call goes through one TLS channel to cfg.endpoint."""
    login_client = Client.connect(cfg.endpoint, cfg.ca_pem, timeout=cfg.api_timeout)
    store = SessionStore(cfg.sessions_file, cfg.idle_seconds, login_client)
    devices = KnownDevices(cfg.devices_file, cfg.device_seconds)
    web = Web(cfg, store, login_client, LoginThrottle(cfg.login_limits), devices)
    routes = [
        *auth_pages.routes(web),
        *server_pages.routes(web),
        *storage_pages.routes(web),
        *network_pages.routes(web),
        *topology_edit_pages.routes(web),
        *server_group_pages.routes(web),
        *admin_pages.routes(web),
        *settings_pages.routes(web),
        *console.routes(web),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
