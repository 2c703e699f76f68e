"""Image data transfers over the fast path (kumo.imagewire): no protobuf
object per chunk. Used by `kumo image upload|download` and the benchmarks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import grpc

from kumo import imagewire
from kumo.v1 import image_pb2 as pb

UPLOAD_CHUNK = 2 * 1024 * 1024
Progress = Callable[[int], None]


def _upload_messages(
    image_id: str,
    source: BinaryIO,
    size: int,
    expected_sha256: str,
    hasher: hashlib._Hash | None,
    progress: Progress | None,
) -> Iterator[bytes]:
    yield imagewire.encode_upload(
        image_id=image_id, expected_sha256=expected_sha256, expected_size_bytes=size
    )
    while chunk := source.read(UPLOAD_CHUNK):
        if hasher is not None:
            hasher.update(chunk)
        yield imagewire.encode_upload(chunk)
        if progress is not None:
            progress(len(chunk))


def upload(
    channel: grpc.Channel,
    metadata: list[tuple[str, str]],
    image_id: str,
    path: Path,
    expected_sha256: str = "",
    progress: Progress | None = None,
    timeout: float | None = None,
) -> tuple[pb.Image, str]:
    """Streams the file at `path` into a QUEUED image. Returns the image and,
    when no expected_sha256 was given (the server then checks nothing), the
    sha256 of what was read so the caller can compare it with the image's."""
    call = channel.stream_unary(imagewire.UPLOAD, None, pb.Image.FromString)
    hasher = None if expected_sha256 else hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        image = call(
            _upload_messages(image_id, fh, size, expected_sha256, hasher, progress),
            metadata=metadata,
            timeout=timeout,
        )
    return image, hasher.hexdigest() if hasher is not None else expected_sha256


def download(
    channel: grpc.Channel,
    metadata: list[tuple[str, str]],
    image_id: str,
    sink: Callable[[memoryview], object],
    offset: int = 0,
    length: int = 0,
    progress: Progress | None = None,
    timeout: float | None = None,
) -> int:
    """Streams an image's bytes from `offset` into `sink`; returns how many
    bytes arrived. Raises grpc.RpcError if the stream breaks: call again with
    offset + the count so far to resume."""
    call = channel.unary_stream(imagewire.DOWNLOAD, pb.DownloadImageDataRequest.SerializeToString, None)
    got = 0
    for raw in call(
        pb.DownloadImageDataRequest(image_id=image_id, offset=offset, length=length),
        metadata=metadata,
        timeout=timeout,
    ):
        at, data = imagewire.decode_download(raw)
        if at != offset + got:
            raise ValueError(f"download out of order: chunk at {at}, expected {offset + got}")
        sink(data)
        got += len(data)
        if progress is not None:
            progress(len(data))
    return got
