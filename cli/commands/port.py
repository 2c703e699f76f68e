"""kumo port create | list | show | set | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands import server as server_cmd
from cli.commands.network import find as find_network
from cli.commands.network import stub
from cli.commands.subnet import find as find_subnet
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, emit
from cli.updates import mask
from kumo.ids import is_uuid
from kumo.v1 import network_pb2 as pb

app = typer.Typer(no_args_is_help=True)


def _ips(value: list[dict]) -> str:  # type: ignore[type-arg]
    return ", ".join(f.get("ip_address", "") for f in value or [])


COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("network", "network_id"),
    ("mac", "mac_address"),
    ("ips", "fixed_ips", _ips),
    ("state", "state"),
    ("instance", "instance_id"),
]
DETAIL = [
    *COLUMNS,
    ("fixed ips", "fixed_ips"),
    ("security groups", "security_group_ids"),
    ("node", "node_id"),
    ("project", "project_id"),
    ("description", "description"),
    ("created", "create_time"),
]


def find(s, ref: str) -> pb.Port:  # type: ignore[no-untyped-def]
    return resolve(
        "port",
        ref,
        lambda i: s.GetPort(pb.GetPortRequest(id=i)),
        lambda n: list(s.ListPorts(pb.ListPortsRequest(name=n)).ports),
    )


def _fixed_ip(s, value: str) -> pb.PortFixedIp:  # type: ignore[no-untyped-def]
    """ADDRESS, SUBNET, or SUBNET=ADDRESS."""
    subnet, sep, ip = value.partition("=")
    if sep:
        return pb.PortFixedIp(subnet_id=find_subnet(s, subnet).id, ip_address=ip)
    if is_uuid(value) or not any(c in value for c in ".:"):
        return pb.PortFixedIp(subnet_id=find_subnet(s, value).id)
    return pb.PortFixedIp(ip_address=value)


@app.command()
def create(
    network: Annotated[str, typer.Option(help="Network name or id")],
    name: Annotated[str, typer.Option()] = "",
    fixed_ip: Annotated[
        list[str] | None, typer.Option(help="ADDRESS, SUBNET or SUBNET=ADDRESS (repeatable)")
    ] = None,
    security_group: Annotated[
        list[str] | None, typer.Option(help="Security group name or id (repeatable; default: default)")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a port (a MAC and fixed IPs) on a network."""
    s = stub()
    port = pb.Port(
        name=name,
        network_id=find_network(s, network).id,
        fixed_ips=[_fixed_ip(s, f) for f in fixed_ip or []],
        security_group_ids=security_group or [],
        description=description,
    )
    emit(s.CreatePort(pb.CreatePortRequest(port=port)), output, DETAIL, column)


@app.command("list")
def list_(
    name: NameFilter = None,
    network: Annotated[str | None, typer.Option(help="Only this network's")] = None,
    server: Annotated[
        str | None, typer.Option(help="Only the ports bound to this server (name or id)")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List your project's ports."""
    s = stub()
    req = pb.ListPortsRequest(
        page_size=PAGE_SIZE,
        name=name or "",
        network_id=find_network(s, network).id if network else "",
        instance_id=server_cmd.find(server_cmd.stub(), server).id if server else "",
    )
    emit(list_all(s.ListPorts, req, "ports"), output, COLUMNS, column)


@app.command()
def show(port: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a port by name or id."""
    emit(find(stub(), port), output, DETAIL, column)


@app.command("set")
def set_(
    port: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    security_group: Annotated[
        list[str] | None, typer.Option(help="Replace the security groups (repeatable)")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a port's name, description or security groups."""
    s = stub()
    changed = pb.Port(id=find(s, port).id)
    fields = mask(changed, name=name, description=description, security_group_ids=security_group)
    emit(s.UpdatePort(pb.UpdatePortRequest(port=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(port: str) -> None:
    """Delete a port that is not bound to an instance."""
    s = stub()
    p = find(s, port)
    s.DeletePort(pb.DeletePortRequest(id=p.id))
    typer.echo(f"deleted port {p.id}")
