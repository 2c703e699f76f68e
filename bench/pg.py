"""A real, throwaway PostgreSQL server for the tests that are about PostgreSQL
(and for the benchmarks that print a PostgreSQL figure; bench never imports
tests/):
initdb into a temp dir, listen on a free loopback port, trust auth. Runs the
server as the `postgres` user when we are root (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; `make setup` does it)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.as_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresServer:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.base, "postgres", "postgres")
        subprocess.run(
            [
                *self.as_user,
                _bin("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        log = open(self.base / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [
                *self.as_user,
                _bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.base),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while True:
            ok = (
                subprocess.run(
                    [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
                ).returncode
                == 0
            )
            if ok:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.base / 'postgres.log'}")
            time.sleep(0.2)
        return self

    def create_database(self, name: str) -> str:
        subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name], check=True
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
