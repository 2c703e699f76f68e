"""Helpers for node tests: enrollment through the real RPC, mTLS session
channels, a hand-driven session; join tokens, waiting and real kumo-noded
processes come from bench/procs.py (shared with the benchmarks)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from bench.procs import ControllerProc, NodedProc, make_token, noded_env, run_noded, wait_for
from kumo import keys
from kumo.client import Client
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc, node_pb2

__all__ = [
    "Enrolled",
    "NodedProc",
    "SessionClient",
    "collect",
    "enroll",
    "free_port",
    "hello",
    "make_token",
    "node_channel",
    "noded_env",
    "nodes",
    "run_noded",
    "wait_for",
]


def nodes(client: Client) -> Any:
    return client.nodes


@dataclass
class Enrolled:
    node_id: str
    key_pem: bytes
    cert_pem: bytes
    response: pb.EnrollResponse


def enroll(controller: ControllerProc, token: str, name: str) -> Enrolled:
    key = keys.new_key()
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    resp = stub.Enroll(
        pb.EnrollRequest(token=token, csr_pem=keys.make_csr(key, name).decode(), name=name), timeout=30
    )
    return Enrolled(resp.node_id, keys.key_pem(key), resp.certificate_pem.encode(), resp)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect(it: Iterator[Any], n: int) -> list[Any]:
    return [next(it) for _ in range(n)]
