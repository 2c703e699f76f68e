"""Reading lists through the API's pages (whole, for lookups; one page with
next/previous links, for tables), and the labels pages show."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

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


PAGE_ROWS = 100  # rows a list page shows unless ?size= says otherwise
TRAIL_SEP = "."  # never in a page token (URL-safe base64)


@dataclass
class Page:
    """One page of a list, and the links to the pages either side ("" at an end).

    API page tokens only go forward, so the tokens of the pages before this one
    ride along in the link (`trail`), and "previous" is the last of them."""

    items: list[Any]
    next_url: str
    prev_url: str
    number: int  # 1 for the first page
    query: str  # this page's own query string (for the live-update poll)


PAGING = ("page", "trail", "size")


def _url(path: str, size: int, token: str, trail: list[str], keep: dict[str, str]) -> str:
    params = dict(keep)
    if size != PAGE_ROWS:
        params["size"] = str(size)
    if token:
        params["page"] = token
    if trail:
        params["trail"] = TRAIL_SEP.join(trail)
    return path + ("?" + urlencode(params) if params else "")


def one_page(
    call: Callable[[Any], Any], request: Any, field: str, path: str, query: Mapping[str, str]
) -> Page:
    """The page of a List* call that the URL's `page`, `trail` and `size` name."""
    token, trail_raw, size_raw = query.get("page", ""), query.get("trail", ""), query.get("size", "")
    if len(token) > 2048 or len(trail_raw) > 32768:
        raise ValueError("page: the link is too long")
    size = int(size_raw) if size_raw.isdigit() else PAGE_ROWS
    size = min(max(size, 1), 1000)
    trail = [t for t in trail_raw.split(TRAIL_SEP) if t] if trail_raw else []
    keep = {k: v for k, v in query.items() if k not in PAGING}  # filters ride along
    request.page_size = size
    request.page_token = token
    resp = call(request)
    nxt = ""
    if resp.next_page_token:
        nxt = _url(path, size, resp.next_page_token, [*trail, token] if token else trail, keep)
    prev = ""
    if token:
        prev = _url(path, size, trail[-1], trail[:-1], keep) if trail else _url(path, size, "", [], keep)
    here = _url("", size, token, trail, keep).lstrip("?")
    return Page(list(getattr(resp, field)), nxt, prev, len(trail) + (2 if token else 1), here)
