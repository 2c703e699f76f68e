"""kumo project create | list | show | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.updates import mask
from kumo.v1 import identity_pb2 as pb
from kumo.v1 import identity_pb2_grpc

app = typer.Typer(no_args_is_help=True)

COLUMNS = [("id", "id"), ("name", "name"), ("enabled", "enabled"), ("description", "description")]
DETAIL = [*COLUMNS, ("created", "create_time"), ("updated", "update_time")]


def stub():  # type: ignore[no-untyped-def]
    return session().stub(identity_pb2_grpc.IdentityServiceStub)


def find(s, ref: str) -> pb.Project:  # type: ignore[no-untyped-def]
    return resolve(
        "project",
        ref,
        lambda i: s.GetProject(pb.GetProjectRequest(id=i)),
        lambda n: list(s.ListProjects(pb.ListProjectsRequest(name=n)).projects),
    )


@app.command()
def create(
    name: str,
    description: Annotated[str, typer.Option(help="Free text")] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a project (admin)."""
    emit(
        stub().CreateProject(pb.CreateProjectRequest(project=pb.Project(name=name, description=description))),
        output,
        DETAIL,
        column,
    )


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List the projects you can see."""
    req = pb.ListProjectsRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListProjects, req, "projects"), output, COLUMNS, column)


@app.command()
def show(project: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a project by name or id."""
    emit(find(stub(), project), output, DETAIL, column)


@app.command()
def set(
    project: str,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Enable or disable")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a project's name, description or enabled flag (admin)."""
    s = stub()
    changed = pb.Project(id=find(s, project).id)
    fields = mask(changed, name=name, description=description, enabled=enabled)
    emit(
        s.UpdateProject(pb.UpdateProjectRequest(project=changed, update_mask=fields)), output, DETAIL, column
    )


@app.command()
def delete(project: str) -> None:
    """Delete a project (admin)."""
    s = stub()
    p = find(s, project)
    s.DeleteProject(pb.DeleteProjectRequest(id=p.id))
    deleted("project", p)
