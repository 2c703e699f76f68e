"""The node's state directory: who it is and how it proves it.

    node.json   node id, name, controller and node endpoints
    node.key    the node's private key (0600; made here, never sent anywhere)
    node.crt    its client certificate, signed by the controller's CA
    ca.crt      the controller's CA bundle, pinned at join time
    desired.json  the last desired state the node applied (for `status`)

Default: /var/lib/kumo-noded, or $KUMO_NODED_STATE_DIR."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kumo.keys import write_private

DEFAULT_STATE_DIR = Path("/var/lib/kumo-noded")


def default_state_dir() -> Path:
    return Path(os.environ.get("KUMO_NODED_STATE_DIR") or DEFAULT_STATE_DIR)


class StateError(Exception):
    pass


@dataclass
class NodeIdentity:
    node_id: str
    name: str
    controller: str  # the public address the node joined through
    node_endpoint: str  # where it opens its session (mTLS)
    enrolled_at: float


@dataclass
class Credentials:
    identity: NodeIdentity
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def identity_file(self) -> Path:
        return self.path / "node.json"

    @property
    def controllers_file(self) -> Path:
        """The live controllers the last welcome named (noded/endpoints.py)."""
        return self.path / "controllers.json"

    def joined(self) -> bool:
        return self.identity_file.exists()

    def save(self, creds: Credentials) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        # 0711: others may pass through (qemu reads instance disks below) but not list.
        os.chmod(self.path, 0o711)
        write_private(self.path / "node.key", creds.key_pem)
        write_private(self.path / "node.crt", creds.cert_pem)
        write_private(self.path / "ca.crt", creds.ca_pem)
        # node.json last: its presence means the rest is complete.
        write_private(self.identity_file, (json.dumps(asdict(creds.identity), indent=2) + "\n").encode())

    def load(self) -> Credentials:
        if not self.joined():
            raise StateError(
                f"this node has not joined a controller ({self.path} has no node.json): run join"
            )
        try:
            data = json.loads(self.identity_file.read_text())
            ident = NodeIdentity(**data)
            return Credentials(
                ident,
                (self.path / "node.key").read_bytes(),
                (self.path / "node.crt").read_bytes(),
                (self.path / "ca.crt").read_bytes(),
            )
        except (OSError, ValueError, TypeError) as exc:
            raise StateError(f"node state in {self.path} is damaged: {exc}") from None

    def forget(self) -> None:
        for name in ("node.json", "node.crt", "node.key", "ca.crt", "desired.json"):
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass

    def save_desired(self, revision: int, state: dict[str, object]) -> None:
        write_private(
            self.path / "desired.json",
            (json.dumps({"revision": revision, "state": state}, indent=2) + "\n").encode(),
        )

    def save_metrics_url(self, url: str) -> None:
        """Where this daemon serves metrics now (the bound port when asked for port 0)."""
        tmp = self.path / "metrics.json.tmp"
        tmp.write_text(json.dumps({"metrics_url": url}) + "\n")
        tmp.replace(self.path / "metrics.json")

    def metrics_url(self) -> str:
        try:
            return str(json.loads((self.path / "metrics.json").read_text())["metrics_url"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def load_desired_revision(self) -> int:
        try:
            return int(json.loads((self.path / "desired.json").read_text())["revision"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


class CurrentCredentials:
    """The node's credentials as they are now. A certificate renewal replaces
    them while the daemon runs; everything that opens a channel to the node
    port asks here, so it uses the new certificate from then on."""

    def __init__(self, creds: Credentials, state_dir: StateDir | None = None) -> None:
        self._creds = creds
        self._state_dir = state_dir

    def get(self) -> Credentials:
        return self._creds

    def replace(self, key_pem: bytes, cert_pem: bytes) -> Credentials:
        """Keeps a renewed key and certificate (written beside the old ones,
        then renamed over them: a crash leaves one pair or the other whole,
        but for the instant between the two renames)."""
        creds = Credentials(self._creds.identity, key_pem, cert_pem, self._creds.ca_pem)
        if self._state_dir is not None:
            path = self._state_dir.path
            write_private(path / "node.key.new", key_pem)
            write_private(path / "node.crt.new", cert_pem)
            os.replace(path / "node.key.new", path / "node.key")
            os.replace(path / "node.crt.new", path / "node.crt")
        self._creds = creds
        return creds
