"""kumo security-group create | list | show | set | delete, and
kumo security-group rule create | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands.network import stub
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.updates import mask
from kumo.v1 import network_pb2 as pb

app = typer.Typer(no_args_is_help=True)
rule_app = typer.Typer(no_args_is_help=True)
app.add_typer(rule_app, name="rule", help="Rules of a security group.")

COLUMNS = [("id", "id"), ("name", "name"), ("default", "is_default"), ("project", "project_id")]
DETAIL = [*COLUMNS, ("description", "description"), ("created", "create_time")]
RULE_COLUMNS = [
    ("id", "id"),
    ("direction", "direction"),
    ("ip version", "ip_version"),
    ("protocol", "protocol"),
    ("port min", "port_range_min"),
    ("port max", "port_range_max"),
    ("remote cidr", "remote_cidr"),
    ("remote group", "remote_group_id"),
]
DIRECTIONS = {
    "ingress": pb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
    "egress": pb.SECURITY_GROUP_RULE_DIRECTION_EGRESS,
}


def find(s, ref: str) -> pb.SecurityGroup:  # type: ignore[no-untyped-def]
    return resolve(
        "security group",
        ref,
        lambda i: s.GetSecurityGroup(pb.GetSecurityGroupRequest(id=i)),
        lambda n: list(s.ListSecurityGroups(pb.ListSecurityGroupsRequest(name=n)).security_groups),
    )


def _show(group: pb.SecurityGroup, output: Format, column: list[str] | None) -> None:
    emit(group, output, DETAIL, column)
    if output is Format.table and group.rules and not column:
        typer.echo("")
        emit(list(group.rules), output, RULE_COLUMNS)


@app.command()
def create(
    name: str,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a security group (no rules: it allows nothing until you add some)."""
    group = pb.SecurityGroup(name=name, description=description)
    _show(stub().CreateSecurityGroup(pb.CreateSecurityGroupRequest(security_group=group)), output, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List your project's security groups."""
    req = pb.ListSecurityGroupsRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListSecurityGroups, req, "security_groups"), output, COLUMNS, column)


@app.command()
def show(group: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a security group and its rules."""
    _show(find(stub(), group), output, column)


@app.command("set")
def set_(
    group: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Rename a security group or change its description."""
    s = stub()
    changed = pb.SecurityGroup(id=find(s, group).id)
    fields = mask(changed, name=name, description=description)
    _show(
        s.UpdateSecurityGroup(pb.UpdateSecurityGroupRequest(security_group=changed, update_mask=fields)),
        output,
        column,
    )


@app.command()
def delete(group: str) -> None:
    """Delete a security group no port uses (not the default one)."""
    s = stub()
    g = find(s, group)
    s.DeleteSecurityGroup(pb.DeleteSecurityGroupRequest(id=g.id))
    deleted("security group", g)


@rule_app.command("create")
def rule_create(
    group: str,
    direction: Annotated[str, typer.Option(help="ingress or egress")] = "ingress",
    protocol: Annotated[str, typer.Option(help="tcp, udp, icmp, icmpv6; empty for any")] = "",
    port: Annotated[str, typer.Option(help="Port or range MIN-MAX (tcp, udp)")] = "",
    remote_cidr: Annotated[str, typer.Option(help="From (or to) this CIDR only")] = "",
    remote_group: Annotated[str, typer.Option(help="From (or to) this group's members only")] = "",
    ip_version: Annotated[int, typer.Option(help="4 or 6 (default: remote CIDR's, or 4)")] = 0,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Add a rule that allows traffic."""
    if direction not in DIRECTIONS:
        raise CliError("--direction must be ingress or egress")
    lo = hi = 0
    if port:
        first, _, last = port.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise CliError(f"--port {port!r}: use a number or MIN-MAX") from None
    s = stub()
    g = find(s, group)
    rule = pb.SecurityGroupRule(
        security_group_id=g.id,
        direction=DIRECTIONS[direction],
        protocol=protocol,
        port_range_min=lo,
        port_range_max=hi,
        remote_cidr=remote_cidr,
        remote_group_id=find(s, remote_group).id if remote_group else "",
        ip_version=ip_version,
        description=description,
    )
    emit(
        s.CreateSecurityGroupRule(pb.CreateSecurityGroupRuleRequest(rule=rule)), output, RULE_COLUMNS, column
    )


@rule_app.command("delete")
def rule_delete(rule_id: str) -> None:
    """Delete a rule by id."""
    stub().DeleteSecurityGroupRule(pb.DeleteSecurityGroupRuleRequest(id=rule_id))
    typer.echo(f"deleted rule {rule_id}")
