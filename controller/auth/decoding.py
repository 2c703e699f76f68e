"""Requests whose bytes do not parse. gRPC runs the request deserializer
before any servicer or interceptor code, answers INTERNAL (UNKNOWN on
grpc.aio) when it raises and logs a traceback at error level: any anonymous
client could flood the log. The interceptors wrap each deserializer so that it
never raises (it returns an `Undecodable` instead) and the handler answers
INVALID_ARGUMENT, logged at info through a `LogLimiter`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from controller.errors import InvalidArgument

Deserializer = Callable[[bytes], Any]


class Undecodable:
    """What a wrapped deserializer returns for bytes that do not parse."""

    __slots__ = ("bad_field", "message_type")

    def __init__(self, message_type: str, bad_field: str | None) -> None:
        self.message_type = message_type
        self.bad_field = bad_field

    def error(self) -> InvalidArgument:
        why = (
            f"{self.bad_field} is not valid UTF-8"
            if self.bad_field
            else "not protobuf wire format, or a string field that is not UTF-8"
        )
        return InvalidArgument(
            f"the request could not be parsed as {self.message_type} ({why})",
            reason="MALFORMED_REQUEST",
            **({"field": self.bad_field} if self.bad_field else {}),
        )


def message_type(deserializer: Deserializer) -> Descriptor | None:
    """The message a generated deserializer (`SomeRequest.FromString`) makes."""
    desc = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return desc if isinstance(desc, Descriptor) else None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]  # IndexError when truncated
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def bad_string_field(desc: Descriptor, data: bytes, depth: int = 0) -> str | None:
    """The path of the first string field in `data` that is not UTF-8, if the
    rest of the wire format reads (only run on bytes that failed to parse)."""
    if depth > 16:
        return None
    i = 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(data, i)
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            elif wire == 2:
                length, i = _varint(data, i)
                chunk, i = data[i : i + length], i + length
                field = desc.fields_by_number.get(number)
                if field is None:
                    continue
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode()
                    except UnicodeDecodeError:
                        return field.name
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    inner = bad_string_field(field.message_type, chunk, depth + 1)
                    if inner is not None:
                        return f"{field.name}.{inner}"
            else:
                return None
    except (IndexError, ValueError):
        return None
    return None


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, returning an `Undecodable` instead of raising."""
    if deserializer is None:  # raw bytes: the servicer decodes (UploadImageData)
        return None
    desc = message_type(deserializer)
    name = desc.full_name if desc is not None else "the request message"

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # DecodeError, or UnicodeDecodeError from some runtimes
            return Undecodable(name, bad_string_field(desc, raw) if desc is not None else None)

    return deserialize


def checked(request: Any) -> Any:
    """The request, or InvalidArgument if it did not parse."""
    if isinstance(request, Undecodable):
        raise request.error()
    return request


def checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield checked(request)


async def checked_async_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield checked(request)


class LogLimiter:
    """At most `burst` lines per `window` seconds (for client mistakes, which
    any caller can repeat at will); says how many it dropped when it next
    lets one through. Thread-safe; one per interceptor."""

    def __init__(
        self, burst: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._used = 0
        self._dropped = 0

    def allow(self) -> int | None:
        """None to drop this line; else how many were dropped before it."""
        with self._lock:
            now = self._clock()
            if now - self._start >= self._window:
                self._start, self._used = now, 0
            if self._used >= self._burst:
                self._dropped += 1
                return None
            self._used += 1
            dropped, self._dropped = self._dropped, 0
            return dropped

    def log(self, logger: logging.Logger, level: int, msg: str, **extra: Any) -> None:
        if not logger.isEnabledFor(level):
            return
        dropped = self.allow()
        if dropped is None:
            return
        if dropped:
            extra["dropped_since"] = dropped
        logger.log(level, msg, extra=extra)
