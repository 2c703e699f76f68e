"""Helpers for node tests: join tokens, enrollment through the real RPC, mTLS
session channels, and real kumo-noded processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from controller import pki
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc, node_pb2, node_pb2_grpc
from tests.harness import DIE_WITH_PARENT, ROOT, Client, ControllerProc, stop_process


def nodes(client: Client) -> Any:
    return client.stub(node_pb2_grpc.NodeServiceStub)


def make_token(admin: Client, uses: int = 1, ttl: int | None = None, description: str = "") -> str:
    req = node_pb2.CreateJoinTokenRequest(
        join_token=node_pb2.JoinToken(max_uses=uses, description=description)
    )
    if ttl is not None:
        req.ttl.seconds = ttl
    return nodes(admin).CreateJoinToken(req).token


@dataclass
class Enrolled:
    node_id: str
    key_pem: bytes
    cert_pem: bytes
    response: pb.EnrollResponse


def enroll(controller: ControllerProc, token: str, name: str) -> Enrolled:
    key = pki.new_key()
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    resp = stub.Enroll(
        pb.EnrollRequest(token=token, csr_pem=pki.make_csr(key, name).decode(), name=name), timeout=30
    )
    return Enrolled(resp.node_id, pki.key_pem(key), resp.certificate_pem.encode(), resp)


def node_channel(controller: ControllerProc, key_pem: bytes | None, cert_pem: bytes | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(controller.ca_pem, key_pem, cert_pem)
    return grpc.secure_channel(controller.node_endpoint, creds)


def hello(vcpus: int = 4, applied: int = 0) -> pb.SessionRequest:
    inv = node_pb2.NodeInventory(
        hostname="sim", vcpus=vcpus, memory_mb=8192, disk_gb=100, virt_type="qemu", driver="fake"
    )
    return pb.SessionRequest(hello=pb.NodeHello(inventory=inv, applied_revision=applied))


class SessionClient:
    """A hand-driven node session: send messages, read answers."""

    def __init__(self, channel: grpc.Channel, first: pb.SessionRequest | None = None) -> None:
        import queue

        self._q: queue.Queue[pb.SessionRequest | None] = queue.Queue()
        if first is not None:
            self._q.put(first)
        self.call = node_agent_pb2_grpc.NodeAgentServiceStub(channel).Session(
            iter(self._q.get, None), timeout=60
        )

    def send(self, msg: pb.SessionRequest) -> None:
        self._q.put(msg)

    def read(self) -> pb.SessionResponse:
        return next(self.call)

    def read_kind(self, kind: str) -> pb.SessionResponse:
        """The next message of `kind`, skipping heartbeat acks."""
        while True:
            msg = self.read()
            if msg.WhichOneof("kind") == kind:
                return msg

    def close(self) -> None:
        self._q.put(None)
        self.call.cancel()


def wait_for(
    pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noded_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'proto'}"
    env.pop("KUMO_NODED_STATE_DIR", None)
    return env


def run_noded(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def collect(it: Iterator[Any], n: int) -> list[Any]:
    return [next(it) for _ in range(n)]
