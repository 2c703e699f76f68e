"""kumo role add | remove | list."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all
from cli.commands import project as project_cmd
from cli.commands import user as user_cmd
from cli.errors import CliError
from cli.output import ColumnOpt, Format, OutputOpt, emit
from kumo.v1 import identity_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("user", "user_name"),
    ("project", "project_name"),
    ("role", "role"),
    ("user id", "user_id"),
    ("project id", "project_id"),
]
ROLES = {"reader": pb.ROLE_READER, "member": pb.ROLE_MEMBER, "admin": pb.ROLE_ADMIN}


def parse_role(role: str) -> int:
    try:
        return ROLES[role.lower()]
    except KeyError:
        raise CliError(f"unknown role {role!r}: use reader, member or admin") from None


@app.command()
def add(
    user: Annotated[str, typer.Argument(help="User name or id")],
    project: Annotated[str, typer.Argument(help="Project name or id")],
    role: Annotated[str, typer.Argument(help="reader, member or admin")],
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Grant a role on a project to a user (admin)."""
    value = parse_role(role)
    s = project_cmd.stub()
    u, p = user_cmd.find(s, user), project_cmd.find(s, project)
    emit(
        s.CreateRoleAssignment(pb.CreateRoleAssignmentRequest(user_id=u.id, project_id=p.id, role=value)),
        output,
        COLUMNS,
        column,
    )


@app.command()
def remove(
    user: Annotated[str, typer.Argument(help="User name or id")],
    project: Annotated[str, typer.Argument(help="Project name or id")],
    role: Annotated[str, typer.Argument(help="reader, member or admin")],
) -> None:
    """Take a role on a project away from a user (admin)."""
    value = parse_role(role)
    s = project_cmd.stub()
    u, p = user_cmd.find(s, user), project_cmd.find(s, project)
    s.DeleteRoleAssignment(pb.DeleteRoleAssignmentRequest(user_id=u.id, project_id=p.id, role=value))
    typer.echo(f"removed {role.lower()} on {p.name} from {u.name}")


@app.command("list")
def list_(
    user: Annotated[str | None, typer.Option(help="Only this user")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List role assignments you can see."""
    s = project_cmd.stub()
    req = pb.ListRoleAssignmentsRequest(
        page_size=PAGE_SIZE,
        user_id=user_cmd.find(s, user).id if user else "",
        project_id=project_cmd.find(s, project).id if project else "",
    )
    emit(list_all(s.ListRoleAssignments, req, "role_assignments"), output, COLUMNS, column)
