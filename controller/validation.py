"""Field checks shared by every servicer; each failure names the field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from controller.domain.idempotency import NO_REQUEST_ID, RequestKey
from controller.errors import InvalidArgument
from kumo.ids import is_uuid

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")
MAX_TEXT = 1024
MAX_REQUEST_ID = 128
MAX_REF = 255

# An Update RPC's rules: each field its update_mask may name -> how to read
# that field's new value from the request's resource message (checking it).
# One table per resource; `updates` applies it.
UpdateRules = Mapping[str, Callable[[Any], Any]]


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
    if not is_uuid(value):
        raise InvalidArgument(f"{field} {value[:80]!r} is not a valid id (a UUID)")
    return value


def optional_id(value: str, field: str) -> str:
    return resource_id(value, field) if value else ""


def reference(value: str, field: str, *, required: bool = True) -> str:
    """An id or a name of something the request points at (the domain resolves
    it, so only its shape is checked here); "" when optional and not given."""
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required (an id or a name)")
        return value
    if len(value) > MAX_REF:
        raise InvalidArgument(f"{field} must be at most {MAX_REF} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidArgument(f"{field} must not contain control characters")
    return value


def request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID:
        raise InvalidArgument(f"request_id must be at most {MAX_REQUEST_ID} characters")
    return value


def request_key(request: Message) -> RequestKey:
    """A create request's request_id (checked) and the sha256 of the rest of the
    request (deterministic serialization without request_id), so a replay can
    tell the same request from a different one that reuses the id."""
    rid = request_id(request.request_id)  # type: ignore[attr-defined]
    if not rid:
        return NO_REQUEST_ID
    rest = type(request)()
    rest.CopyFrom(request)
    rest.ClearField("request_id")
    return RequestKey(rid, hashlib.sha256(rest.SerializeToString(deterministic=True)).hexdigest())


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


def changes(paths: Iterable[str], message: Any, rules: UpdateRules) -> dict[str, Any]:
    """The checked new value of each field in `paths` (already checked against
    `rules`), in the table's order, so the first bad field is the one reported."""
    wanted = set(paths)
    return {name: rule(message) for name, rule in rules.items() if name in wanted}


def updates(paths: Iterable[str], message: Any, rules: UpdateRules) -> dict[str, Any]:
    """What an Update request changes: its update_mask checked against the
    table's fields, then each named field read through its rule."""
    return changes(update_mask(paths, set(rules)), message, rules)
