"""The CLI in a shell, no controller needed: help laid out at a sane width when piped (never cut with
an ellipsis), and shell completion (`kumo --show-completion`, the completion protocol itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from cli.main import PIPED_HELP_WIDTH, app, help_width
from tests.harness import ROOT, run_cli


def _command_paths(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if hasattr(cmd, "commands"):  # a group (typer vendors click)
        for name, sub in cmd.commands.items():
            yield from _command_paths(sub, (*path, name))


def test_piped_help_is_100_columns_or_COLUMNS() -> None:
    def width(columns: str) -> int:
        result = run_cli(["server", "create", "--help"], {"COLUMNS": columns})
        assert result.returncode == 0 and "--security-group" in result.stdout and "…" not in result.stdout
        return max(len(line) for line in result.stdout.splitlines())

    assert width("") == PIPED_HELP_WIDTH
    assert width("60") == PIPED_HELP_WIDTH  # narrower would cut option names
    assert width("140") == 140


def test_no_help_text_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", help_width())
    root = typer.main.get_command(app)
    runner = CliRunner()
    paths = list(_command_paths(root))
    assert len(paths) > 60  # every sub-app and command
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], prog_name="kumo")
        assert result.exit_code == 0, (path, result.output)
        assert "…" not in result.output, path
        assert max(len(line) for line in result.output.splitlines()) <= PIPED_HELP_WIDTH, path


def test_help_keeps_bracketed_text() -> None:
    """rich reads "[...]" in help as markup and drops it: help says (env KUMO_...) instead."""
    login = run_cli(["login", "--help"], {"COLUMNS": "200"}).stdout
    assert all(f"(env {var})" in login for var in ("KUMO_ENDPOINT", "KUMO_CA_FILE", "KUMO_PROFILE"))
    assert "(env KUMO_PROFILE)" in run_cli(["--help"], {}).stdout


def test_shell_completion_is_on() -> None:
    # --show-completion asks which shell runs kumo (the process tree): run it from
    # bash, as two commands so that bash does not exec python in its place.
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}"}
    shown = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m cli.main --show-completion; exit $?"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "_KUMO_COMPLETE=complete_bash" in shown.stdout, shown.stderr
    assert "--install-completion" in run_cli(["--help"], {}).stdout
    env = {"_KUMO_COMPLETE": "complete_bash", "COMP_WORDS": "kumo ser", "COMP_CWORD": "1"}
    assert set(run_cli([], env).stdout.split()) == {"server", "server-group"}
    env = {"_KUMO_COMPLETE": "complete_bash", "COMP_WORDS": "kumo server list -f ", "COMP_CWORD": "4"}
    assert set(run_cli([], env).stdout.split()) == {"table", "json", "yaml", "value", "csv"}
