"""The CLI's connection to the controller (a kumo.client.Client from the
stored or environment settings, with errors a person can act on), and
name-or-id resolution and paging shared by every command."""

from __future__ import annotations

import collections
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import typer

from cli import config
from cli.errors import CliError
from kumo.client import Client
from kumo.errorinfo import error_reason
from kumo.ids import is_uuid

if TYPE_CHECKING:
    from kumo.v1 import identity_pb2 as idpb

# Longer than the library's default: a command may wait on a busy controller.
TIMEOUT = 120.0
# What every list asks for: the API's largest page (controller/db/paging.py MAX_PAGE_SIZE; a larger
# ask is served as the largest), so a thousand servers come in one round trip, not two.
PAGE_SIZE = 1000


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
    try:
        return Client.connect(endpoint, ca_pem, token, timeout=TIMEOUT)
    except ValueError as exc:  # a bad list of several controllers
        raise CliError(str(exc)) from None


def store_login(
    endpoint: str, ca_file: str, user: str, password: str, project: str
) -> idpb.AuthenticateResponse:
    """Authenticates and stores the token (and where it came from) as the profile in use."""
    from kumo.v1 import identity_pb2 as idpb  # here: only logins need it (CLI start-up time)
    from kumo.v1 import identity_pb2_grpc

    resp = (
        connect(endpoint, ca_file)
        .stub(identity_pb2_grpc.IdentityServiceStub)
        .Authenticate(idpb.AuthenticateRequest(user=user, password=password, project=project))
    )
    config.save(
        config.Stored(
            endpoint=endpoint,
            ca_file=ca_file,
            token=resp.token,
            token_expire=resp.expire_time.ToJsonString(),
            user=user,
            project=project,
        )
    )
    return resp


def relogin(why: str) -> str:
    """On a terminal, asks for the stored user's password again, stores a fresh token and returns
    it; "" (nothing asked) when the token came from KUMO_TOKEN, stdin is not a terminal or no login
    is stored."""
    stored = config.load()
    if os.environ.get("KUMO_TOKEN") or not sys.stdin.isatty() or not (stored.endpoint and stored.user):
        return ""
    endpoint = os.environ.get("KUMO_ENDPOINT") or stored.endpoint
    ca_file = os.environ.get("KUMO_CA_FILE") or stored.ca_file
    typer.echo(f"{why}: log in again as {stored.user} (profile {config.profile_name()})", err=True)
    import getpass  # only a relogin asks (CLI start-up time)

    password = getpass.getpass(f"password for {stored.user}: ")
    return store_login(endpoint, ca_file, stored.user, password, stored.project).token


_Details = collections.namedtuple(
    "_Details", ["method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"]
)


class _Relogin(grpc.UnaryUnaryClientInterceptor):
    """A call refused for an expired token: log in again (terminal only, once a command) and send
    the same call again with the new token. The refused call did nothing, so resending it is safe,
    where running the whole command again could repeat what it did before the token ran out."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tried = False

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        outcome = continuation(details, request)
        if (
            self.tried
            or outcome.code() != grpc.StatusCode.UNAUTHENTICATED
            or error_reason(outcome) != "TOKEN_EXPIRED"
        ):
            return outcome
        self.tried = True
        token = relogin("the token has expired")
        if not token:
            return outcome
        self.client.token = token
        self.client.metadata[:] = [("authorization", f"Bearer {token}")]
        metadata = [(k, v) for k, v in details.metadata or () if k != "authorization"]
        again = _Details(
            details.method,
            details.timeout,
            [*metadata, *self.client.metadata],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(again, request)


class _RequestIds(grpc.UnaryUnaryClientInterceptor):
    """Every create gets a fresh request_id (a UUID) unless the command set
    one: the message object is changed, so a resend of the same call (see
    _Relogin) carries the same id and the controller answers what it made."""

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        field = (
            request.DESCRIPTOR.fields_by_name.get("request_id") if hasattr(request, "DESCRIPTOR") else None
        )
        if field is not None and field.type == field.TYPE_STRING and not request.request_id:
            request.request_id = str(uuid.uuid4())
        return continuation(details, request)


def session(require_token: bool = True) -> Client:
    """A client from the effective settings (stored login < KUMO_* environment); an expired token
    is renewed on the way (see _Relogin)."""
    s = config.effective()
    if require_token and not s.token:
        raise CliError("not logged in: run 'kumo login' or set KUMO_TOKEN")
    client = connect(s.endpoint, s.ca_file, s.token)
    client.channel = grpc.intercept_channel(client.channel, _RequestIds(), _Relogin(client))
    return client


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
