"""`make up`: an all-in-one cloud on this machine, in the foreground.

Starts the controller with its data in ./.kumo (or $KUMO_DATA_DIR) and prints
how to log in. Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from controller.config import load_config
from controller.logs import setup_logging
from controller.server import Controller


def banner(ctl: Controller, password_hint: str) -> str:
    info = ctl.cfg
    endpoint = f"127.0.0.1:{ctl.port}"
    return "\n".join(
        [
            "",
            "kumo is up.",
            f"  endpoint      {endpoint}",
            f"  CA            {info.pki_dir / 'ca.crt'}",
            f"  admin         user 'admin', project 'admin', {password_hint}",
            "",
            "Log in:",
            f"  .venv/bin/kumo login --endpoint {endpoint} --ca-file {info.pki_dir / 'ca.crt'} --user admin",
            "",
            "Ctrl-C stops the cloud.",
            "",
        ]
    )


def main() -> int:
    cfg = load_config(
        overrides={
            "listen": os.environ.get("KUMO_LISTEN", "127.0.0.1:7443"),
            "node_listen": os.environ.get("KUMO_NODE_LISTEN", "127.0.0.1:7444"),
        }
    )
    setup_logging(cfg.log_level, "text")
    ctl = Controller(cfg)
    ctl.start()
    pw_file = cfg.data_dir / "admin-password"
    if os.environ.get("KUMO_ADMIN_PASSWORD"):
        hint = "password from KUMO_ADMIN_PASSWORD"
    elif pw_file.exists():
        hint = f"password in {pw_file} (mode 0600)"
    else:
        hint = "password as set when the cloud was first made"
    print(banner(ctl, hint), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: ctl._stop.set())
    signal.signal(signal.SIGINT, lambda *_: ctl._stop.set())
    ctl.wait()
    ctl.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
