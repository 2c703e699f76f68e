"""request_id: a retried create returns what the first one made.

A key is (request_id, kind, scope): the scope is the caller's project for
project resources, the user for keypairs and "" for cloud-wide kinds (projects,
users, flavors, role assignments, join tokens). With the key the controller
keeps a digest of the rest of the request, so a request_id reused for a
different request is refused instead of answered with the wrong resource."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import peewee

from controller import clock
from controller.db import identity as store
from controller.db.database import write_transaction
from controller.errors import InvalidArgument, KumoError

T = TypeVar("T")


@dataclass(frozen=True)
class RequestKey:
    """A create's request_id and the digest of the rest of its request (the
    servicer computes it; the domain only compares digests)."""

    request_id: str = ""
    digest: str = ""

    def __bool__(self) -> bool:
        return bool(self.request_id)


NO_REQUEST_ID = RequestKey()


def lookup(key: RequestKey, kind: str, scope: str) -> str | None:
    """The id of what the first request with this key made, or None. A key
    recorded for another payload answers INVALID_ARGUMENT REQUEST_ID_REUSED (keys
    recorded before digests were kept, with an empty digest, match any payload)."""
    if not key:
        return None
    found = store.idempotent_lookup(key.request_id, kind, scope)
    if found is None:
        return None
    resource_id, digest = found
    if digest and key.digest and digest != key.digest:
        raise InvalidArgument(
            f"request_id {key.request_id!r} was already used for a different {kind.replace('_', ' ')} "
            "request; use a new request_id for a new request",
            reason="REQUEST_ID_REUSED",
            request_id=key.request_id,
        )
    return resource_id


def record(key: RequestKey, kind: str, scope: str, resource_id: str) -> None:
    """Remembers what `key` made; inside the create's transaction, so a racing
    twin's record fails on the primary key and its transaction rolls back."""
    if key:
        store.idempotent_record(key.request_id, kind, scope, resource_id, key.digest, clock.now())


def idempotent_create(
    kind: str,
    scope: str,
    key: RequestKey,
    create: Callable[[], T],
    fetch: Callable[[str], T],
    id_of: Callable[[T], str],
) -> T:
    """Runs `create` once per key: a retry returns what the first call made,
    also when the two race (the loser's failure, whatever it is, gives way to
    the winner's result)."""
    existing = lookup(key, kind, scope)
    if existing:
        return fetch(existing)
    try:
        with write_transaction():
            made = create()
            record(key, kind, scope, id_of(made))
        return made
    except (peewee.IntegrityError, KumoError):
        existing = lookup(key, kind, scope)
        if existing:
            return fetch(existing)
        raise
