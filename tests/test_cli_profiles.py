"""Named profiles (`kumo login --profile NAME`, `kumo --profile NAME ...`, KUMO_PROFILE) against two
real controllers, and the re-login prompt when a token has expired and stdin is a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import wait_for
from kumo.v1 import identity_pb2 as idpb
from tests.harness import ADMIN_PASSWORD, ROOT, ControllerProc, run_cli


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProc]:
    """A second controller; its tokens last 4 s."""
    ctl = ControllerProc(tmp_path_factory.mktemp("short"), extra_env={"KUMO_TOKEN_TTL_SECONDS": "4"}).start()
    yield ctl
    ctl.stop()


def _login(ctl: ControllerProc, cfg: Path, *extra: str, env: dict[str, str] | None = None) -> None:
    args = ["login", "--endpoint", ctl.endpoint, "--ca-file", ctl.ca_file, "--user", "admin"]
    result = run_cli(
        [*args, "--password-stdin", *extra],
        {"KUMO_CONFIG_DIR": str(cfg), **(env or {})},
        input=ADMIN_PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr


def test_profiles_point_at_different_clouds(
    controller: ControllerProc, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    other = ControllerProc(tmp_path_factory.mktemp("other")).start()
    try:
        _profiles(controller, other, tmp_path)
    finally:
        other.stop()


def _profiles(controller: ControllerProc, short: ControllerProc, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = {"KUMO_CONFIG_DIR": str(cfg)}
    _login(controller, cfg)
    _login(short, cfg, "--profile", "short")
    _login(short, cfg, env={"KUMO_PROFILE": "other"})

    def projects(*args: str, extra: dict[str, str] | None = None) -> set[str]:
        result = run_cli([*args, "project", "list", "-f", "value", "-c", "name"], {**env, **(extra or {})})
        assert result.returncode == 0, result.stderr
        return set(result.stdout.split())

    made = run_cli(["--profile", "short", "project", "create", "only-on-short"], env)
    assert made.returncode == 0, made.stderr
    assert "only-on-short" in projects("--profile", "short")
    assert "only-on-short" in projects(extra={"KUMO_PROFILE": "other"})
    assert "only-on-short" not in projects()  # the default profile: the first controller
    assert "only-on-short" not in projects("--profile", "default", extra={"KUMO_PROFILE": "short"})

    assert (cfg / "config.json").stat().st_mode & 0o777 == 0o600
    assert (cfg / "ca-short.crt").stat().st_mode & 0o777 == 0o600
    stored = json.loads((cfg / "config.json").read_text())
    assert stored["endpoint"] == controller.endpoint and stored["token"].startswith("kumo1.")
    assert stored["profiles"]["short"]["endpoint"] == short.endpoint
    listed = json.loads(run_cli(["profile", "list", "-f", "json"], env).stdout)
    assert [(p["name"], p["in_use"]) for p in listed] == [
        ("default", True),
        ("short", False),
        ("other", False),
    ]
    assert "token" not in json.dumps([list(p) for p in listed]).replace("token_expire", "")
    assert run_cli(["profile", "delete", "other"], env).stdout == "deleted profile other\n"
    assert "other" not in json.loads((cfg / "config.json").read_text())["profiles"]
    bad = run_cli(["--profile", "no/such", "whoami"], env)
    assert bad.returncode != 0 and bad.stderr.startswith("error: profile name 'no/such'"), bad.stderr
    none = run_cli(["--profile", "never", "whoami"], env)
    assert none.returncode != 0 and "not logged in" in none.stderr


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_expired_token_asks_for_the_password_on_a_terminal(short: ControllerProc, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = {"KUMO_CONFIG_DIR": str(cfg)}
    _login(short, cfg, "--profile", "s")
    old = json.loads((cfg / "config.json").read_text())["profiles"]["s"]["token"]
    expired = wait_for(
        lambda: (r := run_cli(["--profile", "s", "whoami"], env)).returncode != 0 and r,
        timeout=60,
        what="the 4 s token to expire",
    )
    # Not a terminal: one line, no prompt.
    assert expired.stderr.strip().splitlines() == [expired.stderr.strip()], expired.stderr
    assert "expired" in expired.stderr and "kumo login" in expired.stderr

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--profile", "s", "project", "create", "relogged", "-f", "json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", **env},
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_controlling_tty,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"password for admin" not in seen and time.monotonic() < deadline:
        seen += os.read(master, 4096)
    assert b"the token has expired: log in again as admin (profile s)" in seen, seen
    os.write(master, ADMIN_PASSWORD.encode() + b"\n")
    out = proc.communicate(timeout=60)[0]
    os.close(master)
    assert proc.returncode == 0, seen
    assert json.loads(out)["name"] == "relogged"
    # The refused call was sent again, not the whole command: one project.
    listed = short.login().identity.ListProjects(idpb.ListProjectsRequest(name="relogged")).projects
    assert len(listed) == 1
    assert json.loads((cfg / "config.json").read_text())["profiles"]["s"]["token"] != old
