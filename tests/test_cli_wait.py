"""The CLI's --wait and --timeout on a fake-driver cloud: the states it passes through on stderr (and
nothing more when stderr is not a terminal), a live line on a terminal, `server snapshot --wait`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloudutil import fake_cloud
from tests.harness import ROOT, cli_login, run_cli

ENV = {"KUMO_NODE_HEARTBEAT_SECONDS": "1", "KUMO_INSTANCE_SYNC_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def kumo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    base = tmp_path_factory.mktemp("cli-wait")
    with fake_cloud(base, 1, "wait", ENV) as cloud:
        cloud.public_image("tiny")
        cloud.flavor("w.tiny", vcpus=1, ram_mb=256)
        assert cli_login(cloud.ctl, base / "cfg").returncode == 0

        def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
            result = run_cli(list(args), {"KUMO_CONFIG_DIR": str(base / "cfg")})
            assert (result.returncode == 0) == ok, f"kumo {' '.join(args)}: {result.stderr}"
            assert "Traceback" not in result.stderr
            return result

        run.config_dir = base / "cfg"  # type: ignore[attr-defined]
        yield run


def on_a_terminal(config_dir: Path, *args: str) -> tuple[int, str, str]:
    """Runs the CLI with stderr on a pseudo-terminal; returns (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", "KUMO_CONFIG_DIR": str(config_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out.decode(), seen.decode(errors="replace")


def test_wait_prints_states_and_nothing_more_when_piped(kumo) -> None:  # type: ignore[no-untyped-def]
    made = kumo(
        "server", "create", "w1", "--image", "tiny", "--flavor", "w.tiny", "--wait", "--timeout", "120"
    )
    assert "w1: building" in made.stderr and "w1: active" in made.stderr
    assert "waiting for" not in made.stderr
    assert len(made.stderr.splitlines()) == len(set(made.stderr.splitlines()))  # each state once


def test_wait_shows_a_live_line_on_a_terminal(kumo) -> None:  # type: ignore[no-untyped-def]
    code, out, terminal = on_a_terminal(kumo.config_dir, "server", "stop", "w1", "--wait", "-f", "json")
    assert code == 0, terminal
    assert json.loads(out)["state"] == "stopped"
    assert "waiting for w1" in terminal and "w1: stopped" in terminal


def test_snapshot_waits_for_its_image(kumo) -> None:  # type: ignore[no-untyped-def]
    # The fake driver exports a small qcow2: the image goes queued -> ... -> active.
    done = kumo("server", "snapshot", "w1", "--name", "w1-snap", "--wait", "--timeout", "120")
    states = done.stderr.strip().splitlines()
    assert states[0] == "w1-snap: queued" and states[-1] == "w1-snap: active", states
    assert all(s.startswith("w1-snap: ") for s in states), states


def test_snapshot_wait_says_when_the_image_was_killed(tmp_path: Path) -> None:
    """A node whose snapshots fail: the controller kills the image and --wait says so, as one line."""
    with fake_cloud(tmp_path, 1, "waitfail", ENV, node_args=["--fake-fail-snapshots"]) as cloud:
        cloud.public_image("tiny")
        cloud.flavor("w.tiny", vcpus=1, ram_mb=256)
        assert cli_login(cloud.ctl, tmp_path / "cfg").returncode == 0
        env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
        made = run_cli(["server", "create", "f1", "--image", "tiny", "--flavor", "w.tiny", "--wait"], env)
        assert made.returncode == 0, made.stderr
        failed = run_cli(["server", "snapshot", "f1", "--name", "f1-snap", "--wait", "--timeout", "120"], env)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
        *states, err = failed.stderr.strip().splitlines()
        assert states[0] == "f1-snap: queued" and all(s.startswith("f1-snap: ") for s in states), states
        assert err.startswith("error: ") and "f1-snap" in err and "was killed" in err, failed.stderr
