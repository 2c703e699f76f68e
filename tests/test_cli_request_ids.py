"""Every CLI create sends a request_id (a fresh UUID per invocation): the
controller records one idempotency key per create, read here from its real
SQLite file."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tests.harness import ControllerProc, cli_login, run_cli


def keys(controller: ControllerProc) -> list[tuple[str, str]]:
    with sqlite3.connect(Path(controller.data_dir) / "kumo.db") as conn:
        return conn.execute("SELECT request_id, kind FROM idempotency_key").fetchall()


def test_every_create_command_sends_a_request_id(controller: ControllerProc, tmp_path: Path) -> None:
    assert cli_login(controller, tmp_path / "cfg").returncode == 0
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    creates = [
        ["project", "create", "rid-p"],
        ["user", "create", "rid-u", "--project", "rid-p", "--password-stdin"],
        ["role", "add", "rid-u", "rid-p", "member"],
        ["flavor", "create", "rid-f", "--vcpus", "1", "--ram", "256"],
        ["keypair", "create", "rid-k"],
        ["network", "create", "rid-n"],
        ["subnet", "create", "rid-s", "--network", "rid-n", "--cidr", "10.77.0.0/24"],
        ["security-group", "create", "rid-g"],
        ["security-group", "rule", "create", "rid-g", "--protocol", "tcp", "--port", "22"],
        ["server-group", "create", "rid-sg", "--policy", "affinity"],
        ["node", "token", "create"],
    ]
    before = len(keys(controller))
    for args in creates:
        result = run_cli([*args, "-o", "json"] if args[0] != "user" else args, env, input="pw-123456789\n")
        assert result.returncode == 0, f"kumo {' '.join(args)}: {result.stderr}"
        after = keys(controller)
        assert len(after) == before + 1, f"kumo {' '.join(args)} recorded no request_id"
        before = len(after)
        rid, _ = after[-1]
        assert uuid.UUID(rid).version == 4
    # Fresh per invocation: no two creates shared one.
    ids = [rid for rid, _ in keys(controller)]
    assert len(ids) == len(set(ids))
