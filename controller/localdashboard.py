"""The all-in-one cloud's dashboard (`make up`): `kumo-dashboard` as a child
process on loopback (KUMO_DASHBOARD_LISTEN, default 127.0.0.1:8443), serving
HTTPS with a certificate the cloud's CA signs for it (pki/dashboard.crt,
remade when missing or older than the CA)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller.localnode import stop_child
from kumo.keys import write_private

if TYPE_CHECKING:
    from controller.server import Controller

log = logging.getLogger("kumo.allinone")
ROOT = Path(__file__).resolve().parent.parent


class LocalDashboard:
    def __init__(self, ctl: Controller, listen: str | None = None) -> None:
        self.ctl = ctl
        self.listen = listen or os.environ.get("KUMO_DASHBOARD_LISTEN", "127.0.0.1:8443")
        self.pki = ctl.cfg.pki_dir
        self.info_file = ctl.cfg.data_dir / "dashboard.json"
        self.log_path = ctl.cfg.data_dir / "dashboard.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def ensure_cert(self) -> tuple[Path, Path]:
        crt, key = self.pki / "dashboard.crt", self.pki / "dashboard.key"
        ca = self.pki / "ca.crt"
        if not (crt.exists() and key.exists()) or crt.stat().st_mtime < ca.stat().st_mtime:
            cert_pem, key_pem = self.ctl.pki.ca.issue_server_cert([])
            write_private(key, key_pem)
            crt.write_bytes(cert_pem)
        return crt, key

    def start(self, timeout: float = 30.0) -> str:
        """Starts it and returns its URL ("" when it did not come up: see the log)."""
        crt, key = self.ensure_cert()
        self.info_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "proto"), env.get("PYTHONPATH", "")])
        args = [sys.executable, "-m", "dashboard.main", "--endpoint", f"127.0.0.1:{self.ctl.port}"]
        args += ["--ca-file", str(self.pki / "ca.crt"), "--listen", self.listen]
        args += ["--cert-file", str(crt), "--key-file", str(key), "--info-file", str(self.info_file)]
        args += ["--state-dir", str(self.info_file.parent / "dashboard-state")]
        log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log_file, stderr=log_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.info_file.exists():
                self.url = json.loads(self.info_file.read_text())["url"]
                return self.url
            time.sleep(0.1)
        log.error("the dashboard did not start: see %s", self.log_path)
        return ""

    def stop(self) -> None:
        stop_child(self.proc)
