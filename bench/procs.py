"""Real kumo processes on ephemeral ports, for the tests and the benchmarks:
a controller (`ControllerProc`, a real SQLite file in a temporary data
directory), `kumo-noded` (`NodedProc`, `run_noded`), waiting on state, and the
few calls that set a fresh cloud up (a user, a join token, an image).

It lives here, not in tests/, because the benchmarks must not import the
tests, and not in the `kumo` package, which holds only what the real programs
use; tests/harness.py and tests/nodeutil.py build on it. Not a benchmark
itself (the runner only picks up *_bench modules)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kumo.client import Client, tls_channel
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_pb2 as npb

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
ADMIN_PASSWORD = "admin-secret-pw"

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


def wait_for(
    pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.1, what: str = "condition"
) -> Any:
    """Polls `pred` until it returns something true (and returns that), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


@dataclass
class ControllerProc:
    """A real `kumo-controller` process; `start` returns once it serves."""

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
    def metrics_url(self) -> str:
        return self.info["metrics_url"]

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
                "--metrics-listen",
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
        # A loaded machine starts a controller slower: stretch the wait by the
        # load per core (never shorter than `timeout`).
        load_per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
        deadline = time.monotonic() + timeout * min(6.0, max(1.0, load_per_core))
        while not info_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited with {self.proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller did not start; see {log.name}")
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
        return tls_channel(self.endpoint, self.ca_pem)

    def login(self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str = "") -> Client:
        """A client logged in on a channel (a connection) of its own."""
        return Client(self.channel(), endpoint=self.endpoint).authenticate(user, password, project)


def noded_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'proto'}"
    env.pop("KUMO_NODED_STATE_DIR", None)
    return env


def run_noded(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs one `kumo-noded` command (join, inventory, status) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "noded.main", *args],
        cwd=ROOT,
        env=noded_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class NodedProc:
    """A real `kumo-noded run` process."""

    state_dir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.state_dir.parent / f"{self.state_dir.name}-noded.log"

    def start(self) -> NodedProc:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                *DIE_WITH_PARENT,
                sys.executable,
                "-m",
                "noded.main",
                "run",
                "--state-dir",
                str(self.state_dir),
                "--log-format",
                "text",
                "--metrics-listen",
                "127.0.0.1:0",
                *self.args,
            ],
            cwd=ROOT,
            env=noded_env(),
            stdout=log,
            stderr=log,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        rc = stop_process(self.proc, sig)
        self.proc = None
        return rc

    def metrics_url(self) -> str:
        """Where it serves metrics (empty until it has started listening)."""
        path = self.state_dir / "metrics.json"
        return json.loads(path.read_text())["metrics_url"] if path.exists() else ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_user(
    admin: Client, project_id: str, name: str, role: int, password: str = "password-123"
) -> idpb.User:
    """A user with `role` on the project."""
    user = admin.identity.CreateUser(
        idpb.CreateUserRequest(user=idpb.User(name=name, default_project_id=project_id), password=password)
    )
    admin.identity.CreateRoleAssignment(
        idpb.CreateRoleAssignmentRequest(user_id=user.id, project_id=project_id, role=role)
    )
    return user


def make_token(admin: Client, uses: int = 1, ttl: int | None = None, description: str = "") -> str:
    """A join token for `uses` nodes."""
    req = npb.CreateJoinTokenRequest(join_token=npb.JoinToken(max_uses=uses, description=description))
    if ttl is not None:
        req.ttl.seconds = ttl
    return admin.nodes.CreateJoinToken(req).token


def upload_requests(
    image_id: str, data: bytes, chunk: int = MIB, sha: str = "", size: int = 0
) -> Iterator[ipb.UploadImageDataRequest]:
    """The UploadImageData stream for `data`: the header, then `chunk`-sized pieces."""
    yield ipb.UploadImageDataRequest(image_id=image_id, expected_sha256=sha, expected_size_bytes=size)
    for i in range(0, len(data), chunk):
        yield ipb.UploadImageDataRequest(data=data[i : i + chunk])


def create_image(client: Client, name: str, fmt: int = ipb.DISK_FORMAT_RAW, **kw: Any) -> ipb.Image:
    """A QUEUED image (no data yet)."""
    return client.images.CreateImage(
        ipb.CreateImageRequest(image=ipb.Image(name=name, disk_format=fmt, **kw))
    )


def make_image(
    client: Client, name: str, data: bytes, fmt: int = ipb.DISK_FORMAT_RAW, **kw: Any
) -> ipb.Image:
    """An ACTIVE image holding `data`."""
    image = create_image(client, name, fmt, **kw)
    done = client.images.UploadImageData(
        upload_requests(image.id, data, sha=hashlib.sha256(data).hexdigest())
    )
    assert done.status == ipb.IMAGE_STATUS_ACTIVE, done
    return done


@dataclass
class DashboardProc:
    """A real `kumo-dashboard` process for `ctl`, serving HTTPS with the
    controller's own server certificate (signed by the cloud's CA)."""

    ctl: ControllerProc
    work_dir: Path
    cert_file: Path | None = None  # default: the controller's own certificate and key
    key_file: Path | None = None
    proc: subprocess.Popen | None = None
    url: str = ""
    extra_args: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> DashboardProc:
        info = self.work_dir / "dashboard.json"
        info.unlink(missing_ok=True)
        log = open(self.work_dir / "dashboard.log", "ab")
        pki = self.ctl.data_dir / "pki"
        self.proc = subprocess.Popen(
            [
                *DIE_WITH_PARENT,
                sys.executable,
                "-m",
                "dashboard.main",
                "--endpoint",
                self.ctl.endpoint,
                "--ca-file",
                self.ctl.ca_file,
                "--listen",
                "127.0.0.1:0",
                "--cert-file",
                str(self.cert_file or pki / "server.crt"),
                "--key-file",
                str(self.key_file or pki / "server.key"),
                "--info-file",
                str(info),
                "--state-dir",
                str(self.work_dir / "dashboard-state"),
                *self.extra_args,
            ],
            cwd=ROOT,
            env=noded_env(),
            stdout=log,
            stderr=log,
        )
        wait_for(
            lambda: info.exists() or self.proc.poll() is not None,  # type: ignore[union-attr]
            timeout=timeout,
            step=0.05,
            what="the dashboard to serve",
        )
        if not info.exists():
            raise RuntimeError(f"dashboard exited with {self.proc.returncode}; see {log.name}")
        self.url = json.loads(info.read_text())["url"].rstrip("/")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def start_control_plane(
    url: str, base: Path, count: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[list[ControllerProc]]:
    """`count` controllers on the PostgreSQL database `url`, one control plane
    (a shared directory under `base`: the same CA and token keys; see
    docs/control-plane.md); stopped when the generator closes."""
    shared = base / "shared"
    procs: list[ControllerProc] = []
    try:
        for i in range(count):
            data = base / f"ctl{i}"
            data.mkdir(parents=True)
            env = {"KUMO_SHARED_DIR": str(shared), **(extra_env or {})}
            procs.append(ControllerProc(data, extra_env=env, extra_args=["--database-url", url]).start())
        yield procs
    finally:
        for p in procs:
            p.stop()
