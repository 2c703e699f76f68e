"""kumo server-group create | list | show | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands.flavor import stub
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from kumo.v1 import compute_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("policy", "policy"),
    ("members", "member_ids"),
]
POLICIES = {
    "affinity": pb.SERVER_GROUP_POLICY_AFFINITY,
    "anti-affinity": pb.SERVER_GROUP_POLICY_ANTI_AFFINITY,
}


def find(s, ref: str) -> pb.ServerGroup:  # type: ignore[no-untyped-def]
    return resolve(
        "server group",
        ref,
        lambda i: s.GetServerGroup(pb.GetServerGroupRequest(id=i)),
        lambda n: list(s.ListServerGroups(pb.ListServerGroupsRequest(name=n)).server_groups),
    )


@app.command()
def create(
    name: str,
    policy: Annotated[str, typer.Option(help="affinity or anti-affinity")],
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a server group: its members go on one node (affinity) or all on different ones."""
    if policy.lower() not in POLICIES:
        raise CliError(f"unknown policy {policy!r}: use affinity or anti-affinity")
    group = pb.ServerGroup(name=name, policy=POLICIES[policy.lower()])
    emit(stub().CreateServerGroup(pb.CreateServerGroupRequest(server_group=group)), output, COLUMNS, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List your project's server groups."""
    req = pb.ListServerGroupsRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListServerGroups, req, "server_groups"), output, COLUMNS, column)


@app.command()
def show(group: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a server group by name or id."""
    emit(find(stub(), group), output, COLUMNS, column)


@app.command()
def delete(group: str) -> None:
    """Delete a server group that has no members."""
    s = stub()
    g = find(s, group)
    s.DeleteServerGroup(pb.DeleteServerGroupRequest(id=g.id))
    deleted("server group", g)
