"""Where the CLI keeps the endpoint, the CA and the token of each profile: ~/.config/kumo/ (or
$KUMO_CONFIG_DIR, or $XDG_CONFIG_HOME/kumo), files mode 0600. config.json holds the default profile
at its top level (the layout from before profiles, so old files keep working) and named ones under
"profiles"; `--profile NAME` or KUMO_PROFILE picks one. KUMO_ENDPOINT, KUMO_CA_FILE, KUMO_TOKEN
override what is stored."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cli.errors import CliError

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Set by `kumo --profile NAME`; wins over KUMO_PROFILE.
chosen: str | None = None


def config_dir() -> Path:
    if os.environ.get("KUMO_CONFIG_DIR"):
        return Path(os.environ["KUMO_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kumo"


def profile_name(name: str | None = None) -> str:
    """The profile in use: `name`, else --profile, else KUMO_PROFILE, else "default"."""
    picked = name or chosen or os.environ.get("KUMO_PROFILE") or DEFAULT
    if not _NAME.match(picked):
        raise CliError(f"profile name {picked!r}: use letters, digits, '.', '_' or '-'")
    return picked


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


def _read_file() -> dict[str, Any]:
    path = config_dir() / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _stored(data: Any) -> Stored:
    if not isinstance(data, dict):
        return Stored()
    return Stored(**{k: str(v) for k, v in data.items() if k in Stored.__dataclass_fields__})


def profiles() -> dict[str, Stored]:
    """Every stored profile by name, the default one first (when it has an endpoint)."""
    data = _read_file()
    out = {DEFAULT: _stored(data)} if data.get("endpoint") else {}
    named = data.get("profiles")
    for name, value in (named if isinstance(named, dict) else {}).items():
        out[name] = _stored(value)
    return out


def load(name: str | None = None) -> Stored:
    """The stored settings of profile `name` (by default the one in use); empty when none."""
    picked = profile_name(name)
    data = _read_file()
    if picked == DEFAULT:
        return _stored(data)
    named = data.get("profiles")
    return _stored(named.get(picked) if isinstance(named, dict) else None)


def save(stored: Stored, name: str | None = None) -> Path:
    """Writes profile `name` (by default the one in use), keeping the others."""
    picked = profile_name(name)
    data = _read_file()
    if picked == DEFAULT:
        data.update(asdict(stored))
    else:
        named = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
        named[picked] = asdict(stored)  # type: ignore[index]
        data["profiles"] = named
    path = config_dir() / "config.json"
    _write_private(path, json.dumps(data, indent=2) + "\n")
    return path


def forget(name: str) -> bool:
    """Deletes a named profile (and its CA copy); the default one is only logged out of."""
    picked = profile_name(name)
    data = _read_file()
    named = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
    if picked == DEFAULT or picked not in named:  # type: ignore[operator]
        return False
    del named[picked]  # type: ignore[union-attr]
    data["profiles"] = named
    _write_private(config_dir() / "config.json", json.dumps(data, indent=2) + "\n")
    (config_dir() / f"ca-{picked}.crt").unlink(missing_ok=True)
    return True


def save_ca(pem: bytes, name: str | None = None) -> Path:
    picked = profile_name(name)
    path = config_dir() / ("ca.crt" if picked == DEFAULT else f"ca-{picked}.crt")
    _write_private(path, pem.decode())
    return path


def effective() -> Stored:
    """What the profile in use stores, with the environment on top."""
    s = load()
    s.endpoint = os.environ.get("KUMO_ENDPOINT") or s.endpoint
    s.ca_file = os.environ.get("KUMO_CA_FILE") or s.ca_file
    s.token = os.environ.get("KUMO_TOKEN") or s.token
    return s
