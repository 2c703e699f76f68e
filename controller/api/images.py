"""ImageService: validates requests, calls controller.domain.images, builds responses."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db import images as store
from controller.db.models import Image
from controller.domain.images import CUT_OFF, FORMATS, Images, UploadHeader
from controller.errors import Aborted, InvalidArgument, ResourceExhausted
from kumo import imagewire
from kumo.v1 import image_pb2 as pb
from kumo.v1 import image_pb2_grpc

if TYPE_CHECKING:
    pass

MAX_PROPERTIES = 64
MAX_PROPERTY_VALUE = 1024
PROPERTY_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
MAX_MIN_DISK_GB = 64 * 1024
MAX_MIN_RAM_MB = 4 * 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def image_pb(row: Image) -> pb.Image:
    return pb.Image(
        id=row.id,
        name=row.name,
        project_id=row.project_id,
        disk_format=row.disk_format,
        visibility=row.visibility,
        status=row.status,
        status_reason=row.status_reason,
        size_bytes=row.size_bytes,
        virtual_size_bytes=row.virtual_size_bytes,
        checksum_sha256=row.checksum_sha256,
        min_disk_gb=row.min_disk_gb,
        min_ram_mb=row.min_ram_mb,
        protected=row.protected,
        properties=store.properties(row),
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )


def _visibility(value: int, default: int | None = store.PRIVATE) -> int:
    if value == pb.IMAGE_VISIBILITY_UNSPECIFIED and default is not None:
        return default
    if value not in (pb.IMAGE_VISIBILITY_PRIVATE, pb.IMAGE_VISIBILITY_PUBLIC):
        raise InvalidArgument("image.visibility must be IMAGE_VISIBILITY_PRIVATE or IMAGE_VISIBILITY_PUBLIC")
    return value


def _min_disk(value: int) -> int:
    if not 0 <= value <= MAX_MIN_DISK_GB:
        raise InvalidArgument(f"image.min_disk_gb must be between 0 and {MAX_MIN_DISK_GB}, got {value}")
    return value


def _min_ram(value: int) -> int:
    if not 0 <= value <= MAX_MIN_RAM_MB:
        raise InvalidArgument(f"image.min_ram_mb must be between 0 and {MAX_MIN_RAM_MB}, got {value}")
    return value


def _property_key(key: str) -> str:
    if not PROPERTY_KEY_RE.match(key):
        raise InvalidArgument(
            f"image.properties key {key[:80]!r} is not valid: 1-255 letters, digits, '.', '_', '-', ':'"
        )
    return key


def _properties(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_PROPERTIES:
        raise InvalidArgument(f"an image has at most {MAX_PROPERTIES} properties, got {len(values)}")
    return {
        _property_key(k): v.text(val, f"image.properties[{k!r}]", MAX_PROPERTY_VALUE)
        for k, val in values.items()
    }


def _sha256(value: str) -> str:
    value = value.strip().lower()
    if value and not SHA256_RE.match(value):
        raise InvalidArgument("expected_sha256 must be 64 hexadecimal digits (a sha256)")
    return value


IMAGE_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda i: v.name(i.name, "image.name"),
        "visibility": lambda i: _visibility(i.visibility, default=None),
        "min_disk_gb": lambda i: _min_disk(i.min_disk_gb),
        "min_ram_mb": lambda i: _min_ram(i.min_ram_mb),
        "protected": lambda i: i.protected,
        # every property at once (replaces them all); properties.<key> paths are apart
        "properties": lambda i: _properties(dict(i.properties)),
    }
)


class StreamGuard:
    """Caps concurrent image data streams (each holds an RPC worker thread, so
    unbounded slow streams would starve every other RPC), and cancels uploads
    that send nothing for too long (a silent client would otherwise hold the
    image in SAVING and a worker forever)."""

    def __init__(self, max_streams: int, idle_seconds: float) -> None:
        self.max_streams = max_streams
        self.idle_seconds = idle_seconds
        self._slots = threading.BoundedSemaphore(max_streams)
        self._lock = threading.Lock()
        self._uploads: dict[int, _Watch] = {}
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"too many image transfers in progress ({self.max_streams}); retry in a moment",
                reason="IMAGE_STREAMS_BUSY",
            )

    def release(self) -> None:
        self._slots.release()

    @contextmanager
    def watch(self, context: CallContext) -> Iterator[_Watch]:
        watch = _Watch(context)
        with self._lock:
            self._uploads[id(watch)] = watch
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="upload-watchdog", daemon=True)
                self._thread.start()
        try:
            yield watch
        finally:
            with self._lock:
                self._uploads.pop(id(watch), None)

    def _run(self) -> None:
        tick = max(0.05, min(1.0, self.idle_seconds / 4))
        while True:
            time.sleep(tick)
            now = time.monotonic()
            with self._lock:
                idle = [
                    w for w in self._uploads.values() if now - w.last > self.idle_seconds and not w.timed_out
                ]
            for w in idle:
                w.timed_out = True
                w.context.cancel()


class _Watch:
    __slots__ = ("context", "last", "timed_out")

    def __init__(self, context: CallContext) -> None:
        self.context = context
        self.last = time.monotonic()
        self.timed_out = False


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    def __init__(self, images: Images, guard: StreamGuard) -> None:
        self.images = images
        self.guard = guard

    def CreateImage(self, request: pb.CreateImageRequest, context: CallContext) -> pb.Image:
        i = request.image
        if i.disk_format not in FORMATS:
            raise InvalidArgument("image.disk_format is required: DISK_FORMAT_QCOW2 or DISK_FORMAT_RAW")
        fields = {
            "name": v.name(i.name, "image.name"),
            "disk_format": i.disk_format,
            "visibility": _visibility(i.visibility),
            "min_disk_gb": _min_disk(i.min_disk_gb),
            "min_ram_mb": _min_ram(i.min_ram_mb),
            "protected": i.protected,
        }
        row = self.images.create(
            context.principal, fields, _properties(dict(i.properties)), v.request_key(request)
        )
        return image_pb(row)

    def GetImage(self, request: pb.GetImageRequest, context: CallContext) -> pb.Image:
        return image_pb(self.images.get(context.principal, v.resource_id(request.id)))

    def ListImages(self, request: pb.ListImagesRequest, context: CallContext) -> pb.ListImagesResponse:
        if request.name:
            v.name(request.name)
        visibility = _visibility(request.visibility, default=0) if request.visibility else 0
        if request.status and request.status not in pb.ImageStatus.values():
            raise InvalidArgument(f"status {request.status} is not an ImageStatus")
        rows, token = self.images.list(
            context.principal,
            request.page_size,
            request.page_token,
            request.name,
            visibility,
            request.status,
            v.optional_id(request.project_id, "project_id"),
        )
        return pb.ListImagesResponse(images=[image_pb(r) for r in rows], next_page_token=token)

    def UpdateImage(self, request: pb.UpdateImageRequest, context: CallContext) -> pb.Image:
        i = request.image
        paths = set(request.update_mask.paths)
        key_paths = {p for p in paths if p.startswith("properties.")}
        if paths - key_paths or not paths:  # properties.<key> paths are checked below
            v.update_mask(paths - key_paths, set(IMAGE_UPDATES))
        if "properties" in paths and key_paths:
            raise InvalidArgument("update_mask names both properties and properties.<key>; use one")
        fields = v.changes(paths - key_paths, i, IMAGE_UPDATES)
        replace = fields.pop("properties", None)
        set_props: dict[str, str] = {}
        remove: list[str] = []
        for path in key_paths:
            key = _property_key(path.removeprefix("properties."))
            if key in i.properties:
                set_props[key] = v.text(i.properties[key], f"image.properties[{key!r}]", MAX_PROPERTY_VALUE)
            else:
                remove.append(key)
        row = self.images.update(
            context.principal,
            v.resource_id(i.id, "image.id"),
            fields,
            replace,
            set_props,
            remove,
            MAX_PROPERTIES,
        )
        return image_pb(row)

    def DeleteImage(self, request: pb.DeleteImageRequest, context: CallContext) -> empty_pb2.Empty:
        self.images.delete(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    def UploadImageData(self, request_iterator: Iterator[bytes], context: CallContext) -> pb.Image:
        """Messages arrive serialized (see register): kumo.imagewire decodes
        them without copying the data."""
        self.guard.acquire()
        try:
            with self.guard.watch(context) as watch:
                return self._upload(request_iterator, context, watch)
        finally:
            self.guard.release()

    def _upload(self, request_iterator: Iterator[bytes], context: CallContext, watch: _Watch) -> pb.Image:
        raw = next(request_iterator, None)
        if raw is None:
            raise InvalidArgument("the upload stream is empty; its first message must carry image_id")
        first = _decode_upload(raw)
        header = UploadHeader(
            v.resource_id(first.image_id, "image_id"),
            _sha256(first.expected_sha256),
            first.expected_size_bytes,
        )
        if header.expected_size < 0:
            raise InvalidArgument(f"expected_size_bytes must not be negative, got {header.expected_size}")
        idle = self.guard.idle_seconds

        def cut_off() -> Aborted:
            """Why the stream ended early: the watchdog cancelled it for
            silence (the stream may then end either way), or it was cut."""
            if watch.timed_out:
                return Aborted(
                    f"no data arrived for {idle:g} s; the upload was cancelled", reason="UPLOAD_IDLE"
                )
            return Aborted(CUT_OFF, reason="UPLOAD_CANCELLED")

        def chunks() -> Iterator[bytes | memoryview]:
            yield first.data
            try:
                for raw in request_iterator:
                    watch.last = time.monotonic()
                    frame = _decode_upload(raw)
                    if frame.image_id and frame.image_id != header.image_id:
                        raise InvalidArgument(
                            "only the first message names the image; a later one names another"
                        )
                    yield frame.data
                if not context.is_active():  # the connection dropped: not a clean end
                    raise cut_off()
            except grpc.RpcError:
                if watch.timed_out:
                    raise cut_off() from None
                raise

        def connected() -> bool:
            if not context.is_active():
                raise cut_off()
            return True

        return image_pb(self.images.upload(context.principal, header, chunks(), connected))

    def DownloadImageData(
        self, request: pb.DownloadImageDataRequest, context: CallContext
    ) -> Iterator[bytes]:
        """Yields serialized DownloadImageDataResponse messages (see register)."""
        self.guard.acquire()
        try:
            _, data = self.images.open_data(
                context.principal, v.resource_id(request.image_id, "image_id"), request.offset, request.length
            )
        except BaseException:
            self.guard.release()
            raise
        return _Responses(data, request.offset, self.guard.release)


def _decode_upload(raw: bytes) -> imagewire.UploadFrame:
    try:
        return imagewire.decode_upload(raw)
    except imagewire.WireError as exc:
        raise InvalidArgument(f"malformed UploadImageDataRequest: {exc}") from None


class _Responses:
    """Serialized DownloadImageDataResponse messages. Calls `done` exactly once
    when finished, failed, closed or collected, even if never iterated."""

    def __init__(self, data: Iterator[bytes], offset: int, done: Callable[[], None]) -> None:
        self._data = data
        self._offset = offset
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> _Responses:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._data)
        except BaseException:
            self.close()
            raise
        out = imagewire.encode_download(self._offset, chunk)
        self._offset += len(chunk)
        return out

    def close(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            close = getattr(self._data, "close", None)
            if close is not None:
                close()
            done()

    def __del__(self) -> None:
        self.close()


def add_to_server(servicer: ImageServicer, server: grpc.Server) -> None:
    """The generated registration, except that the two data streams pass raw
    bytes to and from the servicer (no protobuf objects for each MiB)."""
    captured: dict[str, grpc.RpcMethodHandler] = {}

    class _Capture:
        def add_generic_rpc_handlers(self, handlers: object) -> None:
            pass

        def add_registered_method_handlers(self, name: str, handlers: dict) -> None:
            captured.update(handlers)

    image_pb2_grpc.add_ImageServiceServicer_to_server(servicer, _Capture())
    captured["UploadImageData"] = grpc.stream_unary_rpc_method_handler(
        servicer.UploadImageData,
        request_deserializer=None,
        response_serializer=pb.Image.SerializeToString,
    )
    captured["DownloadImageData"] = grpc.unary_stream_rpc_method_handler(
        servicer.DownloadImageData,
        request_deserializer=pb.DownloadImageDataRequest.FromString,
        response_serializer=None,
    )
    name = pb.DESCRIPTOR.services_by_name["ImageService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, captured),))
    server.add_registered_method_handlers(name, captured)
