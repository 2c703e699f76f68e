"""Hand-written fast path for the two image data streams (kumo.v1.ImageService
UploadImageData and DownloadImageData), shared by the controller, the CLI and
the node daemon.

Building and parsing protobuf objects copies each MiB of image data two or
three times (about 0.5 s per GiB to build and serialize a
DownloadImageDataResponse here). These functions write and read the same wire
format directly: a data chunk is concatenated once when encoding and is a
zero-copy memoryview when decoding. They are wire-compatible with the .proto
messages (tests/test_imagewire.py checks them against protobuf), so any other
gRPC client uses the ordinary generated code.

Use with raw (de)serializers, e.g.::

    call = channel.unary_stream(DOWNLOAD, DownloadImageDataRequest.SerializeToString, None)
    for raw in call(request):
        offset, data = decode_download(raw)
"""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD = "/kumo.v1.ImageService/UploadImageData"
DOWNLOAD = "/kumo.v1.ImageService/DownloadImageData"

# Field numbers, from image.proto.
_UP_IMAGE_ID, _UP_SHA256, _UP_SIZE, _UP_DATA = 1, 2, 3, 4
_DOWN_OFFSET, _DOWN_DATA = 1, 2
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a valid message of the expected type."""


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint too long")


def _fields(raw: bytes | memoryview) -> list[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of every field; LEN values are views."""
    buf = memoryview(raw)
    out: list[tuple[int, int, int | memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            out.append((number, wire, value))
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise WireError("truncated length-delimited field")
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire == _I64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            pos += 8
        elif wire == _I32:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")
    return out


def _int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: memoryview, field: str) -> str:
    try:
        return str(value, "utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{field} is not valid UTF-8") from None


def _expect(wire: int, want: int, field: str) -> None:
    if wire != want:
        raise WireError(f"{field} has the wrong wire type {wire}")


@dataclass
class UploadFrame:
    image_id: str = ""
    expected_sha256: str = ""
    expected_size_bytes: int = 0
    data: memoryview | bytes = b""


def encode_upload(
    data: bytes | memoryview = b"",
    image_id: str = "",
    expected_sha256: str = "",
    expected_size_bytes: int = 0,
) -> bytes:
    """An UploadImageDataRequest, serialized."""
    head = bytearray()
    if image_id:
        raw = image_id.encode()
        head += bytes([_UP_IMAGE_ID << 3 | _LEN]) + _varint(len(raw)) + raw
    if expected_sha256:
        raw = expected_sha256.encode()
        head += bytes([_UP_SHA256 << 3 | _LEN]) + _varint(len(raw)) + raw
    if expected_size_bytes:
        head += bytes([_UP_SIZE << 3 | _VARINT]) + _varint(expected_size_bytes)
    if len(data):
        head += bytes([_UP_DATA << 3 | _LEN]) + _varint(len(data))
        return b"".join((head, data))
    return bytes(head)


def decode_upload(raw: bytes) -> UploadFrame:
    frame = UploadFrame()
    for number, wire, value in _fields(raw):
        if number == _UP_IMAGE_ID:
            _expect(wire, _LEN, "image_id")
            frame.image_id = _text(value, "image_id")  # type: ignore[arg-type]
        elif number == _UP_SHA256:
            _expect(wire, _LEN, "expected_sha256")
            frame.expected_sha256 = _text(value, "expected_sha256")  # type: ignore[arg-type]
        elif number == _UP_SIZE:
            _expect(wire, _VARINT, "expected_size_bytes")
            frame.expected_size_bytes = _int64(value)  # type: ignore[arg-type]
        elif number == _UP_DATA:
            _expect(wire, _LEN, "data")
            frame.data = value  # type: ignore[assignment]
    return frame


def encode_download(offset: int, data: bytes | memoryview) -> bytes:
    """A DownloadImageDataResponse, serialized (one copy of `data`)."""
    head = b""
    if offset:
        head = bytes([_DOWN_OFFSET << 3 | _VARINT]) + _varint(offset)
    if not len(data):
        return head
    head += bytes([_DOWN_DATA << 3 | _LEN]) + _varint(len(data))
    return b"".join((head, data))


def decode_download(raw: bytes) -> tuple[int, memoryview]:
    """(offset, data) of a serialized DownloadImageDataResponse; data is a view."""
    offset, data = 0, memoryview(b"")
    for number, wire, value in _fields(raw):
        if number == _DOWN_OFFSET:
            _expect(wire, _VARINT, "offset")
            offset = _int64(value)  # type: ignore[arg-type]
        elif number == _DOWN_DATA:
            _expect(wire, _LEN, "data")
            data = value  # type: ignore[assignment]
    return offset, data
