"""Image upload relay: the browser sends the file as the raw request body; each
piece goes on to the API's upload stream as it arrives (kumo.imagewire, the
CLI's fast path), through a small bounded queue, so a large image is never
held whole in the dashboard's memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
from starlette.concurrency import run_in_threadpool

from kumo import imagewire
from kumo.client import Client
from kumo.v1 import image_pb2 as pb

CHUNK = 1024 * 1024
DEPTH = 8  # chunks in flight between the browser and the API


async def relay(api: Client, image_id: str, size: int, body: AsyncIterator[bytes]) -> pb.Image:
    """Streams `body` into the QUEUED image `image_id`; raises grpc.RpcError as the API answers."""
    pieces: queue.Queue[bytes | None] = queue.Queue(DEPTH)
    result: list[pb.Image] = []
    failure: list[grpc.RpcError] = []
    stop = threading.Event()

    def messages() -> Iterator[bytes]:
        yield imagewire.encode_upload(image_id=image_id, expected_size_bytes=size)
        while (piece := pieces.get()) is not None:
            yield imagewire.encode_upload(piece)

    def send() -> None:
        call = api.channel.stream_unary(imagewire.UPLOAD, None, pb.Image.FromString)
        try:
            result.append(call(messages(), metadata=api.metadata, timeout=None))
        except grpc.RpcError as exc:
            failure.append(exc)
        finally:
            stop.set()
            while True:  # unblock a producer waiting on a full queue
                try:
                    pieces.get_nowait()
                except queue.Empty:
                    break

    sender = threading.Thread(target=send, name="image-upload", daemon=True)
    sender.start()

    def put(piece: bytes | None) -> None:
        while not stop.is_set():
            try:
                pieces.put(piece, timeout=0.5)
                return
            except queue.Full:
                continue

    buf = bytearray()
    async for data in body:
        if stop.is_set():
            break
        buf += data
        if len(buf) >= CHUNK:
            await run_in_threadpool(put, bytes(buf))
            buf.clear()
    if buf:
        await run_in_threadpool(put, bytes(buf))
    await run_in_threadpool(put, None)
    await run_in_threadpool(sender.join)
    if failure:
        raise failure[0]
    return result[0]
