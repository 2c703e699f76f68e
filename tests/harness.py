"""Test harness: a real controller process on ephemeral ports, with a real
SQLite file in a temporary data directory, and clients that talk to it
through the generated stubs and through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import identity_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


# Prefix for test daemons' command lines: SIGTERM them when the test process
# dies, so a killed pytest or benchmark leaves no controller or node behind.
# (setpriv sets it in the child itself: a preexec_fn would make Python fork
# without exec first, and gRPC's fork handlers can crash that child, grpc#43055.)
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> int:
    """Signals a test daemon and waits for it; kills it after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


ADMIN_PASSWORD = "admin-secret-pw"


@dataclass
class ControllerProc:
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    @property
    def node_endpoint(self) -> str:
        return self.info["node_endpoint"]

    @property
    def ca_file(self) -> str:
        return self.info["ca_file"]

    @property
    def ca_pem(self) -> bytes:
        return Path(self.ca_file).read_bytes()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KUMO_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}",
                **self.extra_env,
            }
        )
        return env

    def start(self, timeout: float = 30.0) -> ControllerProc:
        info_file = self.data_dir / "controller.json"
        if info_file.exists():
            info_file.unlink()
        log = open(self.data_dir.parent / f"{self.data_dir.name}-controller.log", "ab")
        self.proc = subprocess.Popen(
            [
                *DIE_WITH_PARENT,
                sys.executable,
                "-m",
                "controller.main",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                "127.0.0.1:0",
                "--node-listen",
                "127.0.0.1:0",
                "--log-format",
                "text",
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while not info_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited with {self.proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError("controller did not start")
            time.sleep(0.05)
        self.info = json.loads(info_file.read_text())
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        rc = stop_process(self.proc, sig)
        self.proc = None
        return rc

    def restart(self) -> ControllerProc:
        self.stop()
        return self.start()

    def channel(self) -> grpc.Channel:
        return grpc.secure_channel(self.endpoint, grpc.ssl_channel_credentials(self.ca_pem))

    def login(self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str = "") -> Client:
        channel = self.channel()
        resp = identity_pb2_grpc.IdentityServiceStub(channel).Authenticate(
            idpb.AuthenticateRequest(user=user, password=password, project=project)
        )
        return Client(channel, resp.token, resp.identity)


class Client:
    """Stubs that send a bearer token: `client.identity.ListProjects(req)`."""

    def __init__(self, channel: grpc.Channel, token: str, identity: idpb.Identity | None = None) -> None:
        self.channel = channel
        self.token = token
        self.who = identity
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def stub(self, stub_cls: type) -> Any:
        raw = stub_cls(self.channel)
        metadata = self.metadata

        class _Bound:
            def __getattr__(self, name: str) -> Any:
                method = getattr(raw, name)

                def call(request: Any, **kw: Any) -> Any:
                    kw.setdefault("metadata", metadata)
                    kw.setdefault("timeout", 60)
                    return method(request, **kw)

                return call

        return _Bound()

    @property
    def identity(self) -> Any:
        return self.stub(identity_pb2_grpc.IdentityServiceStub)

    @property
    def images(self) -> Any:
        from kumo.v1 import image_pb2_grpc

        return self.stub(image_pb2_grpc.ImageServiceStub)


def rpc_error(fn: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    """Calls fn expecting a gRPC error and returns it."""
    try:
        fn(*args, **kw)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("expected a gRPC error, the call succeeded")


def error_reason(exc: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason carried in the status details."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(exc)
    if status is None:
        return ""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def make_user(
    admin: Client, project_id: str, name: str, role: int, password: str = "password-123"
) -> idpb.User:
    user = admin.identity.CreateUser(
        idpb.CreateUserRequest(user=idpb.User(name=name, default_project_id=project_id), password=password)
    )
    admin.identity.CreateRoleAssignment(
        idpb.CreateRoleAssignmentRequest(user_id=user.id, project_id=project_id, role=role)
    )
    return user


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
