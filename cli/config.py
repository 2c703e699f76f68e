"""Where the CLI keeps the endpoint, the CA and the token: ~/.config/kumo/
(or $KUMO_CONFIG_DIR, or $XDG_CONFIG_HOME/kumo), files mode 0600.
KUMO_ENDPOINT, KUMO_CA_FILE, KUMO_TOKEN override what is stored."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def config_dir() -> Path:
    if os.environ.get("KUMO_CONFIG_DIR"):
        return Path(os.environ["KUMO_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kumo"


@dataclass
class Stored:
    endpoint: str = ""
    ca_file: str = ""
    token: str = ""
    token_expire: str = ""
    user: str = ""
    project: str = ""


def _write_private(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


def load() -> Stored:
    path = config_dir() / "config.json"
    stored = Stored()
    if path.exists():
        try:
            data = json.loads(path.read_text())
            stored = Stored(**{k: str(v) for k, v in data.items() if k in Stored.__dataclass_fields__})
        except (ValueError, TypeError):
            pass
    return stored


def save(stored: Stored) -> Path:
    path = config_dir() / "config.json"
    _write_private(path, json.dumps(asdict(stored), indent=2) + "\n")
    return path


def save_ca(pem: bytes) -> Path:
    path = config_dir() / "ca.crt"
    _write_private(path, pem.decode())
    return path


def effective() -> Stored:
    """What is stored, with the environment on top."""
    s = load()
    s.endpoint = os.environ.get("KUMO_ENDPOINT") or s.endpoint
    s.ca_file = os.environ.get("KUMO_CA_FILE") or s.ca_file
    s.token = os.environ.get("KUMO_TOKEN") or s.token
    return s
