"""kumo login | logout | whoami."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from cli import config
from cli.client import connect, session, store_login
from cli.errors import CliError
from cli.output import ColumnOpt, Format, OutputOpt, emit
from kumo.v1 import identity_pb2 as pb
from kumo.v1 import identity_pb2_grpc

IDENTITY_COLUMNS = [
    ("user", "user_name"),
    ("user id", "user_id"),
    ("project", "project_name"),
    ("project id", "project_id"),
    ("role", "role"),
    ("token id", "token_id"),
    ("expires", "expire_time"),
]


ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="Store the login as this profile (env KUMO_PROFILE)")
]


def login(
    endpoint: Annotated[
        str | None, typer.Option(help="Controller address HOST:PORT (env KUMO_ENDPOINT)")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="The controller's CA certificate (env KUMO_CA_FILE)")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="User name (env KUMO_USER)")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project name or id (env KUMO_PROJECT)")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    profile: ProfileOpt = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Log in and store a token (and the CA) in ~/.config/kumo/, as the profile in use."""
    if profile:
        config.chosen = config.profile_name(profile)
    stored = config.load()
    endpoint = endpoint or os.environ.get("KUMO_ENDPOINT") or stored.endpoint
    user = user or os.environ.get("KUMO_USER") or stored.user
    project = project if project is not None else os.environ.get("KUMO_PROJECT", stored.project)
    if not endpoint:
        raise CliError("--endpoint is required the first time (or set KUMO_ENDPOINT)")
    if not user:
        raise CliError("--user is required (or set KUMO_USER)")
    ca_path = ca_file or (Path(os.environ["KUMO_CA_FILE"]) if os.environ.get("KUMO_CA_FILE") else None)
    if ca_path is not None:
        try:
            ca_saved = str(config.save_ca(ca_path.read_bytes()))
        except OSError as exc:
            raise CliError(f"cannot read CA file {ca_path}: {exc.strerror}") from None
    elif stored.ca_file:
        ca_saved = stored.ca_file
    else:
        raise CliError("--ca-file is required the first time: the controller's CA (data dir pki/ca.crt)")
    if password_stdin:
        password = typer.get_text_stream("stdin").readline().rstrip("\n")
    else:
        password = os.environ.get("KUMO_PASSWORD") or getpass.getpass(f"password for {user}: ")
    resp = store_login(endpoint, ca_saved, user, password, project or "")
    emit(resp.identity, output, IDENTITY_COLUMNS, column)


def logout() -> None:
    """Revoke the stored token and forget it."""
    stored = config.load()
    if not stored.token:
        typer.echo("not logged in")
        return
    try:
        s = connect(stored.endpoint, stored.ca_file, stored.token)
        s.stub(identity_pb2_grpc.IdentityServiceStub).RevokeToken(pb.RevokeTokenRequest())
    finally:
        stored.token = ""
        stored.token_expire = ""
        config.save(stored)
    typer.echo("logged out")


def whoami(output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show who the current token belongs to."""
    ident = (
        session()
        .stub(identity_pb2_grpc.IdentityServiceStub)
        .GetCurrentIdentity(pb.GetCurrentIdentityRequest())
    )
    emit(ident, output, IDENTITY_COLUMNS, column)


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
