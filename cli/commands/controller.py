"""kumo controller list | rotate-token-key: the control plane (admin)."""

from __future__ import annotations

import typer

from cli.client import PAGE_SIZE, list_all, session
from cli.output import ColumnOpt, Format, OutputOpt, emit
from kumo.v1 import control_plane_pb2 as pb
from kumo.v1 import control_plane_pb2_grpc

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("hostname", "hostname"),
    ("state", "state"),
    ("endpoint", "endpoint"),
    ("node endpoint", "node_endpoint"),
    ("version", "version"),
    ("node sessions", "node_sessions"),
    ("started", "start_time"),
    ("last seen", "last_seen_time"),
]


@app.command("list")
def list_(output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List the controllers, their node sessions and when each was last seen (admin)."""
    s = session().stub(control_plane_pb2_grpc.ControlPlaneServiceStub)
    emit(
        list_all(s.ListControllers, pb.ListControllersRequest(page_size=PAGE_SIZE), "controllers"),
        output,
        COLUMNS,
        column,
    )


@app.command("rotate-token-key")
def rotate_token_key() -> None:
    """Make a new token signing key; tokens signed before keep working until they expire (admin)."""
    s = session().stub(control_plane_pb2_grpc.ControlPlaneServiceStub)
    resp = s.RotateTokenKey(pb.RotateTokenKeyRequest())
    typer.echo(f"new token signing key {resp.key_id}")
    for kid in resp.removed_key_ids:
        typer.echo(f"removed key {kid} (no unexpired token can use it)")
