"""Helpers for the dashboard tests: a real kumo-dashboard process
(bench.procs.DashboardProc), an HTTPS client that logs in through the login
form like a browser, and headless Chromium (bench/browser.py) pinned to the dashboard's key."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bench.browser import browser_available, new_browser
from bench.procs import ADMIN_PASSWORD, ControllerProc, DashboardProc

__all__ = [
    "DashboardProc",
    "browser_available",
    "controller_and_dashboard",
    "csrf_of",
    "dashboard_cert",
    "https",
    "login",
    "new_browser",
    "one_line_error",
]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def one_line_error(html: str) -> str:
    m = re.search(r'id="error-message">([^<]*)<', html)
    return m.group(1) if m else ""


def https(ctl: ControllerProc, base_url: str, **kw: Any) -> httpx.Client:
    """An HTTPS client that trusts the cloud's CA (and nothing else)."""
    return httpx.Client(
        base_url=base_url, verify=ssl.create_default_context(cafile=ctl.ca_file), timeout=60, **kw
    )


def login(
    dash: DashboardProc, ctl: ControllerProc, user: str = "admin", password: str = ADMIN_PASSWORD
) -> tuple[httpx.Client, str]:
    """An HTTPS client (trusting the cloud's CA) logged in through the form; and the session's CSRF token."""
    client = https(ctl, dash.url)
    page = client.get("/login")
    resp = client.post("/login", data={"csrf_token": csrf_of(page.text), "user": user, "password": password})
    assert resp.status_code == 303, resp.text
    home = client.get("/")
    assert home.status_code == 200, home.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text)
    assert token
    return client, token.group(1)


def dashboard_cert(ctl: ControllerProc, key_pem: bytes, out_dir: Path) -> tuple[Path, Path]:
    """A certificate for `key_pem` (localhost, 127.0.0.1) signed by the cloud's
    CA, as an operator would give kumo-dashboard. One key for every test
    dashboard, so the one shared browser can pin it."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki = ctl.data_dir / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    key = serialization.load_pem_private_key(key_pem, password=None)
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumo-dashboard")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    crt, kf = out_dir / "dashboard.crt", out_dir / "dashboard.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kf.write_bytes(key_pem)
    kf.chmod(0o600)
    return crt, kf


@contextmanager
def controller_and_dashboard(base: Path, key_pem: bytes) -> Iterator[tuple[ControllerProc, DashboardProc]]:
    """A real controller (no nodes) under `base` and a dashboard for it; both stopped after."""
    (base / "ctl").mkdir()
    ctl = ControllerProc(base / "ctl").start()
    try:
        cert, key = dashboard_cert(ctl, key_pem, base / "tls")
        dash = DashboardProc(ctl, base, cert, key).start()
        try:
            yield ctl, dash
        finally:
            dash.stop()
    finally:
        ctl.stop()
