"""Instances on this node: the image cache, guest disks and config drives, and
the reconcile step that makes the hypervisor's guests match the desired state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc
from noded.compute.image_cache import ImageCache
from noded.compute.migration_tunnel import MigrationTunnel
from noded.compute.step import ComputeStep
from noded.hypervisor.base import HypervisorDriver
from noded.metrics import NodeMetrics
from noded.state import Credentials
from noded.storage.backend import StorageBackend

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class NodePortChannel:
    """A blocking channel to the node port with the node's current certificate."""

    def __init__(self, creds: Callable[[], Credentials], endpoint: Callable[[], str] | None = None) -> None:
        self._creds = creds
        # The controller the session uses (noded/endpoints.py); default: the node's endpoint.
        self._endpoint = endpoint or (lambda: self._creds().identity.node_endpoint)
        self._lock = threading.Lock()
        self._cert = b""
        self._target = ""
        self._channel: grpc.Channel | None = None
        # Not closed: downloads still running on them finish (renewals are rare).
        self._retired: list[grpc.Channel] = []

    def get(self) -> grpc.Channel:
        creds = self._creds()
        target = self._endpoint()
        with self._lock:
            if self._channel is None or creds.cert_pem != self._cert or target != self._target:
                old, self._cert, self._target = self._channel, creds.cert_pem, target
                self._channel = grpc.secure_channel(
                    target,
                    grpc.ssl_channel_credentials(creds.ca_pem, creds.key_pem, creds.cert_pem),
                    options=CHANNEL_OPTIONS,
                )
                if old is not None:
                    self._retired.append(old)
            return self._channel


def make_compute(
    creds: Callable[[], Credentials],
    driver: HypervisorDriver,
    instances_dir: Path,
    cache_dir: Path,
    storage: StorageBackend | None,
    metrics: NodeMetrics | None = None,
    endpoint: Callable[[], str] | None = None,
    migration_bandwidth_mib: int = 0,
    tunnel: MigrationTunnel | None = None,
) -> ComputeStep:
    """The instances step, talking to the controller's node port over mTLS
    (a blocking channel of its own: the step runs in a worker thread; remade
    with the new certificate after a renewal)."""
    channels = NodePortChannel(creds, endpoint)

    def stub() -> node_agent_pb2_grpc.NodeAgentServiceStub:
        return node_agent_pb2_grpc.NodeAgentServiceStub(channels.get())

    def fetch(sha256: str, offset: int) -> Iterator[bytes]:
        for msg in stub().DownloadBlob(pb.DownloadBlobRequest(sha256=sha256, offset=offset), timeout=3600):
            yield msg.data

    def send(first: pb.UploadSnapshotRequest, chunks: Iterator[bytes]) -> None:
        def messages() -> Iterator[pb.UploadSnapshotRequest]:
            yield first
            for data in chunks:
                yield pb.UploadSnapshotRequest(data=data)

        stub().UploadSnapshot(messages(), timeout=3600)

    def upload(instance_id: str, image_id: str, chunks: Iterator[bytes]) -> None:
        send(pb.UploadSnapshotRequest(instance_id=instance_id, image_id=image_id), chunks)

    def upload_disk(instance_id: str, move_id: str, chunks: Iterator[bytes]) -> None:
        send(pb.UploadSnapshotRequest(instance_id=instance_id, move_id=move_id), chunks)

    def report(instance_id: str, data: bytes) -> None:
        stub().ReportConsole(pb.ReportConsoleRequest(instance_id=instance_id, data=data), timeout=30)

    cache = ImageCache(cache_dir, fetch, metrics) if driver.needs_disks else None
    return ComputeStep(
        instances_dir, cache, upload, report, storage, upload_disk, migration_bandwidth_mib, tunnel
    )
