"""kumo user create | list | show | delete | set-password."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands import project as project_cmd
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from kumo.v1 import identity_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [("id", "id"), ("name", "name"), ("email", "email"), ("enabled", "enabled")]
DETAIL = [
    *COLUMNS,
    ("description", "description"),
    ("default project", "default_project_id"),
    ("created", "create_time"),
]


def find(s, ref: str) -> pb.User:  # type: ignore[no-untyped-def]
    return resolve(
        "user",
        ref,
        lambda i: s.GetUser(pb.GetUserRequest(id=i)),
        lambda n: list(s.ListUsers(pb.ListUsersRequest(name=n)).users),
    )


def read_password(stdin: bool, prompt: str) -> str:
    if stdin:
        return typer.get_text_stream("stdin").readline().rstrip("\n")
    if os.environ.get("KUMO_NEW_PASSWORD"):
        return os.environ["KUMO_NEW_PASSWORD"]
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise CliError("the passwords do not match")
    return first


@app.command()
def create(
    name: str,
    email: Annotated[str, typer.Option()] = "",
    description: Annotated[str, typer.Option()] = "",
    project: Annotated[str | None, typer.Option(help="Default project (name or id)")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a user (admin). The password is prompted for, read from stdin, or KUMO_NEW_PASSWORD."""
    s = project_cmd.stub()
    default_project = project_cmd.find(s, project).id if project else ""
    password = read_password(password_stdin, f"password for {name}: ")
    user = s.CreateUser(
        pb.CreateUserRequest(
            user=pb.User(name=name, email=email, description=description, default_project_id=default_project),
            password=password,
        )
    )
    emit(user, output, DETAIL, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List users (admins see all; others the users of their project)."""
    req = pb.ListUsersRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(project_cmd.stub().ListUsers, req, "users"), output, COLUMNS, column)


@app.command()
def show(user: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a user by name or id."""
    emit(find(project_cmd.stub(), user), output, DETAIL, column)


@app.command()
def delete(user: str) -> None:
    """Delete a user (admin)."""
    s = project_cmd.stub()
    u = find(s, user)
    s.DeleteUser(pb.DeleteUserRequest(id=u.id))
    deleted("user", u)


@app.command("set-password")
def set_password(
    user: Annotated[str | None, typer.Argument(help="User name or id; default: yourself")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the new password from standard input")] = False,
) -> None:
    """Set a user's password. Non-admins change their own and are asked for the current one."""
    s = project_cmd.stub()
    ident = s.GetCurrentIdentity(pb.GetCurrentIdentityRequest())
    target = find(s, user) if user else None
    target_id = target.id if target else ident.user_id
    current = ""
    if target_id == ident.user_id and ident.role != pb.ROLE_ADMIN:
        current = os.environ.get("KUMO_PASSWORD") or getpass.getpass("current password: ")
    new = read_password(password_stdin, "new password: ")
    s.SetUserPassword(
        pb.SetUserPasswordRequest(user_id=target_id, new_password=new, current_password=current)
    )
    typer.echo("password changed; the user's existing tokens are revoked")
