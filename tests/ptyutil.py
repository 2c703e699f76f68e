"""Driving the real `kumo` CLI through a pty (interactive consoles)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from typing import Any

from tests.harness import ROOT


def spawn_cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen:
    """The real CLI in a subprocess (`kw`: Popen's, e.g. the pty's slave as stdin/stdout)."""
    full = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", **env}
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full, **kw)


def read_some(fd: int, timeout: float) -> bytes:
    """What `fd` has within `timeout` s (b"" if nothing, or the other side is gone)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the pty's other side is closed
        return b""
