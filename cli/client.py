"""The CLI's connection to the controller: TLS channel, bearer token, stubs,
and name-or-id resolution shared by every command."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from cli import config
from cli.errors import CliError


class Session:
    def __init__(self, endpoint: str, ca_file: str, token: str = "") -> None:
        if not endpoint:
            raise CliError(
                "no endpoint: run 'kumo login --endpoint HOST:PORT --ca-file CA' or set KUMO_ENDPOINT"
            )
        self.endpoint = endpoint
        self.token = token
        ca_pem = None
        if ca_file:
            try:
                ca_pem = Path(ca_file).read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read CA file {ca_file}: {exc.strerror}") from None
        self.channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(ca_pem))

    def stub(self, stub_cls: type) -> Any:
        """A stub whose calls carry the token and a timeout."""
        raw = stub_cls(self.channel)
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else []

        class Bound:
            def __getattr__(self, name: str) -> Callable[..., Any]:
                method = getattr(raw, name)

                def call(request: Any, **kw: Any) -> Any:
                    kw.setdefault("metadata", metadata)
                    kw.setdefault("timeout", 120)
                    return method(request, **kw)

                return call

        return Bound()


def session(require_token: bool = True) -> Session:
    s = config.effective()
    if require_token and not s.token:
        raise CliError("not logged in: run 'kumo login' or set KUMO_TOKEN")
    return Session(s.endpoint, s.ca_file, s.token)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def resolve(kind: str, value: str, get: Callable[[str], Any], find: Callable[[str], list[Any]]) -> Any:
    """Finds a resource by id or by name; a name must match exactly one."""
    if is_uuid(value):
        return get(value)
    found = find(value)
    if not found:
        raise CliError(f"{kind} {value!r} not found")
    if len(found) > 1:
        raise CliError(f"{len(found)} {kind}s are named {value!r}; use the id")
    return found[0]


def list_all(call: Callable[..., Any], request: Any, field: str, limit: int = 0) -> list[Any]:
    """Follows next_page_token until the end (or `limit` items)."""
    items: list[Any] = []
    while True:
        resp = call(request)
        items.extend(getattr(resp, field))
        if not resp.next_page_token or (limit and len(items) >= limit):
            return items[:limit] if limit else items
        request.page_token = resp.next_page_token
