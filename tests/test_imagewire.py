"""kumo.imagewire speaks exactly the protobuf wire format of the two data messages."""

from __future__ import annotations

import os
import random

import pytest

from kumo import imagewire as w
from kumo.v1 import image_pb2 as pb


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"data": b"x"},
        {"image_id": "7d1c7a43-7f3a-4b51-9d7b-0b7c8a1d2e3f"},
        {"image_id": "abc", "expected_sha256": "f" * 64, "expected_size_bytes": 1 << 40, "data": b"\0" * 300},
        {"expected_size_bytes": -5},
        {"data": os.urandom(1 << 20)},
    ],
)
def test_upload_roundtrip_against_protobuf(fields: dict) -> None:
    ours = w.encode_upload(**fields)
    theirs = pb.UploadImageDataRequest(**fields)
    assert pb.UploadImageDataRequest.FromString(ours) == theirs
    frame = w.decode_upload(theirs.SerializeToString())
    assert frame.image_id == theirs.image_id
    assert frame.expected_sha256 == theirs.expected_sha256
    assert frame.expected_size_bytes == theirs.expected_size_bytes
    assert bytes(frame.data) == theirs.data


@pytest.mark.parametrize("offset", [0, 1, 127, 128, 1 << 35])
def test_download_roundtrip_against_protobuf(offset: int) -> None:
    data = os.urandom(random.randint(0, 5000))
    ours = w.encode_download(offset, data)
    assert pb.DownloadImageDataResponse.FromString(ours) == pb.DownloadImageDataResponse(
        offset=offset, data=data
    )
    at, view = w.decode_download(pb.DownloadImageDataResponse(offset=offset, data=data).SerializeToString())
    assert (at, bytes(view)) == (offset, data)


def test_decode_skips_unknown_fields_and_last_value_wins() -> None:
    # An unknown varint (field 9), fixed64 (10), fixed32 (11) and LEN (12), then data twice.
    raw = (
        b"\x48\x05"
        + b"\x51"
        + b"\0" * 8
        + b"\x5d"
        + b"\0" * 4
        + b"\x62\x02hi"
        + w.encode_upload(b"first")
        + w.encode_upload(b"second")
    )
    assert bytes(w.decode_upload(raw).data) == b"second"
    assert bytes(pb.UploadImageDataRequest.FromString(raw).data) == b"second"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x22\x05abc",  # data says 5 bytes, has 3
        b"\x22",  # length missing
        b"\x18\xff\xff",  # varint never ends
        b"\x0a\x02\xff\xfe",  # image_id not UTF-8
        b"\x1a\x01x",  # expected_size_bytes with the LEN wire type
        b"\x23",  # group wire type
        b"\x00\x01",  # field number 0
    ],
)
def test_malformed_is_rejected(raw: bytes) -> None:
    with pytest.raises(w.WireError):
        w.decode_upload(raw)


def test_decode_download_data_is_a_view_not_a_copy() -> None:
    raw = w.encode_download(3, b"abcdef")
    _, view = w.decode_download(raw)
    assert isinstance(view, memoryview) and view.obj is raw
