"""Running the host's networking tools (ip, bridge, nft, dnsmasq)."""

from __future__ import annotations

import json
import subprocess
from typing import Any


class NetworkError(RuntimeError):
    """A networking command failed; the message says which and why."""


def run(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NetworkError(f"{args[0]} is not installed (see scripts/apt-packages.txt)") from None
    except subprocess.TimeoutExpired:
        raise NetworkError(f"{' '.join(args)} did not finish in 60 s") from None
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {(proc.stderr or proc.stdout).strip()[:500]}")
    return proc


def run_json(args: list[str]) -> Any:
    """A command's JSON output (`ip -j ...`); None when it failed (no such device)."""
    proc = run(args, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout or "null")
