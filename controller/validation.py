"""Field checks shared by every servicer; each failure names the field."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from controller.errors import InvalidArgument

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")
MAX_TEXT = 1024
MAX_REQUEST_ID = 128


def name(value: str, field: str = "name", pattern: re.Pattern[str] = NAME_RE) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > 63:
        raise InvalidArgument(f"{field} must be at most 63 characters, got {len(value)}")
    if not pattern.match(value):
        extra = ", '@'" if pattern is USER_NAME_RE else ""
        raise InvalidArgument(
            f"{field} {value!r} is not valid: use letters, digits, '.', '_', '-'{extra}, "
            "starting with a letter or digit"
        )
    return value


def user_name(value: str, field: str = "name") -> str:
    return name(value, field, USER_NAME_RE)


def text(value: str, field: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{field} must be at most {limit} characters, got {len(value)}")
    if any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise InvalidArgument(f"{field} must not contain control characters")
    return value


def resource_id(value: str, field: str = "id") -> str:
    """Ids are UUIDs; anything else is malformed rather than missing."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"{field} {value[:80]!r} is not a valid id (a UUID)") from None
    return value


def optional_id(value: str, field: str) -> str:
    return resource_id(value, field) if value else ""


def request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID:
        raise InvalidArgument(f"request_id must be at most {MAX_REQUEST_ID} characters")
    return value


def update_mask(paths: Iterable[str], allowed: set[str]) -> set[str]:
    wanted = set(paths)
    if not wanted:
        raise InvalidArgument(f"update_mask is required; fields you may change: {', '.join(sorted(allowed))}")
    bad = wanted - allowed
    if bad:
        raise InvalidArgument(
            f"update_mask names fields that cannot be changed: {', '.join(sorted(bad))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return wanted
