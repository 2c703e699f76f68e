"""Test harness: the tests' one place to import a real controller process
(`ControllerProc`, shared with the benchmarks in bench/procs.py), the API
client (`kumo.client.Client`), error reasons, and helpers that drive a cloud
through the stubs and through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from bench.procs import ADMIN_PASSWORD, ROOT, ControllerProc, make_user, start_control_plane
from kumo.client import Client
from kumo.errorinfo import error_reason
from kumo.v1 import identity_pb2 as idpb

__all__ = [
    "ADMIN_PASSWORD",
    "ROOT",
    "Client",
    "ControllerProc",
    "cli_login",
    "error_reason",
    "make_user",
    "race",
    "rpc_error",
    "run_cli",
    "start_control_plane",
    "two_tenants",
]


def rpc_error(fn: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    """Calls fn expecting a gRPC error and returns it."""
    try:
        fn(*args, **kw)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("expected a gRPC error, the call succeeded")


def two_tenants(controller: ControllerProc, admin: Client, prefix: str) -> dict[str, Any]:
    """Projects `prefix`-a and `prefix`-b: in a, alice (member) and reader
    (reader); in b, bob (member); each user logged in."""
    a = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=f"{prefix}-a")))
    b = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name=f"{prefix}-b")))
    make_user(admin, a.id, f"{prefix}-alice", idpb.ROLE_MEMBER)
    make_user(admin, a.id, f"{prefix}-reader", idpb.ROLE_READER)
    make_user(admin, b.id, f"{prefix}-bob", idpb.ROLE_MEMBER)
    return {
        "a": a,
        "b": b,
        "alice": controller.login(f"{prefix}-alice", "password-123"),
        "reader": controller.login(f"{prefix}-reader", "password-123"),
        "bob": controller.login(f"{prefix}-bob", "password-123"),
    }


def race(worker: Callable[..., object], args: Iterable[tuple[Any, ...]]) -> None:
    """Calls `worker(*a)` for each `a` of `args`, each in its own thread, all
    released together by a barrier; returns when all are done."""
    todo = list(args)
    barrier = threading.Barrier(len(todo))

    def run(*a: Any) -> None:
        barrier.wait()
        worker(*a)

    threads = [threading.Thread(target=run, args=a) for a in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_cli(
    args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs the real `kumo` CLI in a subprocess."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'proto'}"
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_login(
    ctl: ControllerProc, config_dir: Path, user: str = "admin", password: str = ADMIN_PASSWORD
) -> subprocess.CompletedProcess:
    """`kumo login` through the real CLI into config_dir (password on stdin)."""
    return run_cli(
        ["login", "--endpoint", ctl.endpoint, "--ca-file", ctl.ca_file, "--user", user, "--password-stdin"],
        {"KUMO_CONFIG_DIR": str(config_dir)},
        input=password + "\n",
    )
