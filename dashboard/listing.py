"""Reading whole lists through the API's pages, and the labels pages show."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

PAGE = 500
MAX_ITEMS = 5000  # a page never shows more than this many rows


def list_all(call: Callable[[Any], Any], request: Any, field: str) -> list[Any]:
    """Every item of a List* call (up to MAX_ITEMS), following next_page_token."""
    items: list[Any] = []
    request.page_size = PAGE
    while True:
        resp = call(request)
        items.extend(getattr(resp, field))
        if not resp.next_page_token or len(items) >= MAX_ITEMS:
            return items[:MAX_ITEMS]
        request.page_token = resp.next_page_token


def enum_label(enum: Any, value: int, prefix: str) -> str:
    """INSTANCE_STATE_ACTIVE -> ACTIVE."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def when(ts: Timestamp) -> str:
    if not ts.seconds:
        return ""
    return datetime.datetime.fromtimestamp(ts.seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:g} {unit}"
        n = round(n / 1024, 1)  # type: ignore[assignment]
    return f"{n:g} TiB"
