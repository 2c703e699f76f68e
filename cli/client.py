"""The CLI's connection to the controller (a kumo.client.Client from the
stored or environment settings, with errors a person can act on), and
name-or-id resolution and paging shared by every command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import config
from cli.errors import CliError
from kumo.client import Client
from kumo.ids import is_uuid

# Longer than the library's default: a command may wait on a busy controller.
TIMEOUT = 120.0


def connect(endpoint: str, ca_file: str, token: str = "") -> Client:
    """A client for `endpoint` trusting the CA in `ca_file` (the system roots when empty)."""
    if not endpoint:
        raise CliError("no endpoint: run 'kumo login --endpoint HOST:PORT --ca-file CA' or set KUMO_ENDPOINT")
    ca_pem = None
    if ca_file:
        try:
            ca_pem = Path(ca_file).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read CA file {ca_file}: {exc.strerror}") from None
    return Client.connect(endpoint, ca_pem, token, timeout=TIMEOUT)


def session(require_token: bool = True) -> Client:
    """A client from the effective settings (stored login < KUMO_* environment)."""
    s = config.effective()
    if require_token and not s.token:
        raise CliError("not logged in: run 'kumo login' or set KUMO_TOKEN")
    return connect(s.endpoint, s.ca_file, s.token)


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
