"""kumo flavor create | list | show | set | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.completion import FlavorArg
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.updates import mask
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("vcpus", "vcpus"),
    ("ram mb", "ram_mb"),
    ("disk gb", "disk_gb"),
    ("public", "is_public"),
]
DETAIL = [*COLUMNS, ("description", "description"), ("projects", "project_ids"), ("created", "create_time")]


def stub():  # type: ignore[no-untyped-def]
    return session().stub(compute_pb2_grpc.ComputeServiceStub)


def find(s, ref: str) -> pb.Flavor:  # type: ignore[no-untyped-def]
    return resolve(
        "flavor",
        ref,
        lambda i: s.GetFlavor(pb.GetFlavorRequest(id=i)),
        lambda n: list(s.ListFlavors(pb.ListFlavorsRequest(name=n)).flavors),
    )


def _project_ids(projects: list[str]) -> list[str]:
    from cli.commands import project as project_cmd  # here: `server list` imports this module

    ident = project_cmd.stub()
    return [project_cmd.find(ident, p).id for p in projects]


@app.command()
def create(
    name: str,
    vcpus: Annotated[int, typer.Option(help="Virtual CPUs")],
    ram: Annotated[int, typer.Option(help="RAM in MiB")],
    disk: Annotated[int, typer.Option(help="Root disk in GiB")] = 1,
    private: Annotated[
        bool, typer.Option("--private", help="Only for the projects given with --project")
    ] = False,
    project: Annotated[list[str] | None, typer.Option(help="Project that may use a private flavor")] = None,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a flavor (admin)."""
    flavor = pb.Flavor(
        name=name,
        vcpus=vcpus,
        ram_mb=ram,
        disk_gb=disk,
        is_public=not private,
        description=description,
        project_ids=_project_ids(project or []),
    )
    emit(stub().CreateFlavor(pb.CreateFlavorRequest(flavor=flavor)), output, DETAIL, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List the flavors you may use."""
    req = pb.ListFlavorsRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListFlavors, req, "flavors"), output, COLUMNS, column)


@app.command()
def show(flavor: FlavorArg, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a flavor by name or id."""
    emit(find(stub(), flavor), output, DETAIL, column)


@app.command("set")
def set_(
    flavor: FlavorArg,
    description: Annotated[str | None, typer.Option()] = None,
    public: Annotated[bool | None, typer.Option("--public/--private")] = None,
    project: Annotated[
        list[str] | None, typer.Option(help="Replace the projects of a private flavor")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a flavor's description, visibility or project access (admin)."""
    s = stub()
    changed = pb.Flavor(id=find(s, flavor).id)
    project_ids = _project_ids(project) if project is not None else None
    fields = mask(changed, description=description, is_public=public, project_ids=project_ids)
    emit(s.UpdateFlavor(pb.UpdateFlavorRequest(flavor=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(flavor: FlavorArg) -> None:
    """Delete a flavor (admin)."""
    s = stub()
    f = find(s, flavor)
    s.DeleteFlavor(pb.DeleteFlavorRequest(id=f.id))
    deleted("flavor", f)
