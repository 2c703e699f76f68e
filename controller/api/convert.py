"""Small helpers shared by servicers to build protobuf messages."""

from __future__ import annotations

from google.protobuf import timestamp_pb2


def ts(seconds: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    whole = int(seconds)
    out.seconds = whole
    out.nanos = round((seconds - whole) * 1e9) % 1_000_000_000
    return out
