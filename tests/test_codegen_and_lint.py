"""The committed stubs match the .proto files; ruff and buf lint are clean."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT

BIN = Path(sys.executable).parent


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    fresh = sorted(p.name for p in (tmp_path / "kumo" / "v1").iterdir() if p.suffix in (".py", ".pyi"))
    committed = sorted(
        p.name
        for p in (ROOT / "proto" / "kumo" / "v1").iterdir()
        if p.suffix in (".py", ".pyi") and "_pb2" in p.name
    )
    assert fresh == committed, "stub files differ from the .proto files: run `make proto`"
    stale = [
        n
        for n in fresh
        if not filecmp.cmp(tmp_path / "kumo" / "v1" / n, ROOT / "proto" / "kumo" / "v1" / n, shallow=False)
    ]
    assert not stale, f"stale generated stubs {stale}: run `make proto`"


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(BIN)) or "ruff"
    check = _run(ruff, "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _run(ruff, "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_buf_lint_clean() -> None:
    buf = shutil.which("buf", path=str(BIN)) or "buf"
    result = _run(buf, "lint")
    assert result.returncode == 0, result.stdout + result.stderr
