"""The all-in-one cloud's own node (`make up`): this machine joins its
controller with a fresh join token through the real enrollment path (CA
pinned by fingerprint, key made here, CSR), then runs `kumo-noded run` with
the libvirt driver as a child process.

virt_type comes from $KUMO_VIRT_TYPE, default "qemu" (TCG): nested KVM hangs
on the machines this is developed on, and TCG works everywhere. Set
KUMO_VIRT_TYPE=kvm on real hardware. The node's state lives in
<data dir>/noded; a node whose record is gone (a fresh database) joins again."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from controller.db import nodes as store
from controller.domain.node_registry import READY

if TYPE_CHECKING:
    from controller.server import Controller

log = logging.getLogger("kumo.allinone")
ROOT = Path(__file__).resolve().parent.parent


def stop_child(proc: subprocess.Popen | None, grace: float = 15) -> None:
    """Terminates one of `make up`'s child processes, killing it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def local_node_name() -> str:
    name = socket.gethostname().split(".")[0]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:63].lstrip("._-") or "local"


class LocalNode:
    def __init__(self, ctl: Controller, virt_type: str | None = None) -> None:
        from noded.state import StateDir

        self.ctl = ctl
        self.state = StateDir(ctl.cfg.data_dir / "noded")
        self.virt_type = virt_type or os.environ.get("KUMO_VIRT_TYPE", "qemu")
        self.proc: subprocess.Popen | None = None
        self.log_path = ctl.cfg.data_dir / "noded.log"
        self.node_id = ""

    def _still_enrolled(self) -> bool:
        """The state dir holds a node this controller still knows, with this CA."""
        from noded.state import StateError

        try:
            creds = self.state.load()
        except StateError:
            return False
        found = store.node_auth_row(creds.identity.node_id)
        serial = format(x509.load_pem_x509_certificate(creds.cert_pem).serial_number, "x")
        if found is None or found[0] != serial or self.ctl.pki.ca.cert_pem not in creds.ca_pem:
            return False
        self.node_id = creds.identity.node_id
        return True

    def ensure_joined(self) -> None:
        from noded.enroll import join

        if self._still_enrolled():
            return
        name = local_node_name()
        stale = store.list_nodes(1, "", name)[0]
        if stale:  # this host's record from an earlier state dir: replace it
            self.ctl.parts.nodes.delete_node(stale[0].id)
        _, token = self.ctl.parts.nodes.create_join_token(None, "make up: the local node", 1, 600)
        creds = join(f"127.0.0.1:{self.ctl.port}", token, name)
        self.state.forget()
        self.state.save(creds)
        self.node_id = creds.identity.node_id
        log.info("local node joined", extra={"node": name, "node_id": self.node_id})

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "proto"), env.get("PYTHONPATH", "")])
        log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "noded.main",
                "run",
                "--state-dir",
                str(self.state.path),
                "--driver",
                "libvirt",
                "--virt-type",
                self.virt_type,
                "--log-format",
                "text",
                # make up's external network is a bridge on this host alone
                "--physical-network",
                "kumo-host=",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # Ctrl-C goes to us; we stop it in order
        )

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            live = self.ctl.parts.nodes.registry.snapshot(self.node_id)
            if live is not None and live.status == READY and live.connected:
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        stop_child(self.proc)
