"""Keyset pagination shared by every List method: stable under inserts and
deletes between pages, and O(page) however deep the page."""

from __future__ import annotations

import base64
import json
import math
from typing import Any, TypeVar

import peewee

from controller.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

M = TypeVar("M", bound=peewee.Model)


def check_page_size(page_size: int) -> int:
    """0 is the default; more than the maximum is served as the maximum
    (AIP-158: a page may always hold fewer items than asked for)."""
    if page_size < 0:
        raise InvalidArgument(f"page_size must not be negative, got {page_size}")
    return min(page_size, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


BAD_TOKEN = "page_token is not one this server gave out"
INT64 = 2**63


def _decode(token: str, keys: tuple[peewee.Field, ...]) -> list[Any]:
    """The last row's keys, each checked against its column's type: a token
    of the right width holding other types must not reach SQL."""
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        values = None
    if not isinstance(values, list) or len(values) != len(keys):
        raise InvalidArgument(BAD_TOKEN, reason="PAGE_TOKEN_INVALID")
    if not all(_fits(key, value) for key, value in zip(keys, values, strict=True)):
        raise InvalidArgument(BAD_TOKEN, reason="PAGE_TOKEN_INVALID")
    return values


def _fits(key: peewee.Field, value: Any) -> bool:
    """Whether `value` can be compared with column `key` on SQLite and PostgreSQL alike."""
    while isinstance(key, peewee.ForeignKeyField):
        key = key.rel_field
    if isinstance(value, bool):
        return False
    if isinstance(key, peewee.IntegerField):  # BigIntegerField and AutoField too
        return isinstance(value, int) and -INT64 <= value < INT64
    if isinstance(key, peewee.FloatField):  # DoubleField too
        return isinstance(value, int | float) and math.isfinite(value) and abs(value) < 2**1023
    if isinstance(key, peewee.CharField | peewee.TextField | peewee.UUIDField):
        if not isinstance(value, str) or "\x00" in value:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            return False
        return True
    return False


def paginate(
    query: peewee.ModelSelect,
    keys: tuple[peewee.Field, ...],
    page_size: int,
    page_token: str,
) -> tuple[list[Any], str]:
    """Orders by `keys` (the last must be unique) and returns one page and the
    token for the next ("" when this is the last)."""
    size = check_page_size(page_size)
    if page_token:
        last = _decode(page_token, keys)
        # (k1, k2, ...) > (v1, v2, ...) spelled out so SQLite and PostgreSQL agree.
        cond = None
        for i in reversed(range(len(keys))):
            term = keys[i] > last[i]
            for j in range(i):
                term = (keys[j] == last[j]) & term
            cond = term if cond is None else (term | cond)
        query = query.where(cond)
    rows = list(query.order_by(*keys).limit(size + 1))
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    tail = rows[-1]
    return rows, _encode([_value(tail, k) for k in keys])


def _value(row: peewee.Model, key: peewee.Field) -> Any:
    """A key's column value: a foreign key's id, not the row it points at
    (which would be one more query, and cannot go into a token)."""
    if isinstance(key, peewee.ForeignKeyField):
        return getattr(row, key.object_id_name)
    return getattr(row, key.name)
