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

from controller.errors import InvalidArgument

Deserializer = Callable[[bytes], Any]


class Undecodable:
    """What a wrapped deserializer returns for bytes that do not parse."""

    __slots__ = ("message_type", "why")

    def __init__(self, message_type: str, why: str) -> None:
        self.message_type = message_type
        self.why = why

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            f"the request could not be parsed as {self.message_type} "
            "(not protobuf wire format, or a string field that is not UTF-8)",
            reason="MALFORMED_REQUEST",
        )


def message_type(deserializer: Deserializer) -> str:
    """The message a generated deserializer (`SomeRequest.FromString`) makes."""
    owner = getattr(deserializer, "__self__", None)
    desc = getattr(owner, "DESCRIPTOR", None)
    return getattr(desc, "full_name", "") or "the request message"


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, returning an `Undecodable` instead of raising."""
    if deserializer is None:  # raw bytes: the servicer decodes (UploadImageData)
        return None
    name = message_type(deserializer)

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # DecodeError, or UnicodeDecodeError from some runtimes
            return Undecodable(name, repr(exc))

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

    def __init__(self, burst: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
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
