"""kumo volume type create | list | show | delete (types are admin-defined
and visible to every project)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, session
from cli.output import ColumnOpt, Format, OutputOpt, deleted, emit
from kumo.v1 import volume_pb2 as pb
from kumo.v1 import volume_pb2_grpc

app = typer.Typer(no_args_is_help=True)

COLUMNS = [("id", "id"), ("name", "name"), ("backend", "backend"), ("default", "is_default")]
DETAIL = [*COLUMNS, ("description", "description"), ("created", "create_time")]


def stub():  # type: ignore[no-untyped-def]
    return session().stub(volume_pb2_grpc.VolumeServiceStub)


@app.command()
def create(
    name: str,
    backend: Annotated[str, typer.Option(help="local, rbd or shared-fs")] = "local",
    description: Annotated[str, typer.Option()] = "",
    default: Annotated[bool, typer.Option("--default", help="Make it the default type")] = False,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a volume type (admin)."""
    t = pb.VolumeType(name=name, backend=backend, description=description, is_default=default)
    emit(stub().CreateVolumeType(pb.CreateVolumeTypeRequest(volume_type=t)), output, DETAIL, column)


@app.command("list")
def list_(output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List volume types."""
    emit(
        list_all(stub().ListVolumeTypes, pb.ListVolumeTypesRequest(page_size=PAGE_SIZE), "volume_types"),
        output,
        COLUMNS,
        column,
    )


@app.command()
def show(volume_type: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a volume type (name or id)."""
    emit(stub().GetVolumeType(pb.GetVolumeTypeRequest(id=volume_type)), output, DETAIL, column)


@app.command()
def delete(volume_type: str) -> None:
    """Delete a volume type no volume uses (admin)."""
    s = stub()
    t = s.GetVolumeType(pb.GetVolumeTypeRequest(id=volume_type))
    s.DeleteVolumeType(pb.DeleteVolumeTypeRequest(id=t.id))
    deleted("volume type", t)
