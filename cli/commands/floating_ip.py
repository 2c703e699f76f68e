"""kumo floating-ip create | list | show | set --port | unset | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all
from cli.commands.network import find as find_network
from cli.commands.network import stub
from cli.commands.port import find as find_port
from cli.errors import CliError
from cli.output import ColumnOpt, Format, OutputOpt, emit
from cli.updates import mask
from kumo.ids import is_uuid
from kumo.v1 import network_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("address", "floating_ip_address"),
    ("fixed ip", "fixed_ip_address"),
    ("port", "port_id"),
    ("network", "floating_network_id"),
]
DETAIL = [
    *COLUMNS,
    ("router", "router_id"),
    ("project", "project_id"),
    ("description", "description"),
    ("created", "create_time"),
    ("updated", "update_time"),
]


def find(s, ref: str) -> pb.FloatingIp:  # type: ignore[no-untyped-def]
    """By id or by address."""
    if is_uuid(ref):
        return s.GetFloatingIp(pb.GetFloatingIpRequest(id=ref))
    for f in list_all(s.ListFloatingIps, pb.ListFloatingIpsRequest(page_size=PAGE_SIZE), "floating_ips"):
        if f.floating_ip_address == ref:
            return f
    raise CliError(f"no floating IP {ref!r} (give its id or address)")


@app.command()
def create(
    network: Annotated[str, typer.Option(help="External network (name or id) to take the address from")],
    port: Annotated[str, typer.Option(help="Give it to this port (name or id) at once")] = "",
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Allocate a floating IP from an external network."""
    s = stub()
    fip = pb.FloatingIp(
        floating_network_id=find_network(s, network).id,
        port_id=find_port(s, port).id if port else "",
        description=description,
    )
    emit(s.CreateFloatingIp(pb.CreateFloatingIpRequest(floating_ip=fip)), output, DETAIL, column)


@app.command("list")
def list_(
    network: Annotated[str | None, typer.Option(help="Only this external network's")] = None,
    port: Annotated[str | None, typer.Option(help="Only the one of this port")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List your project's floating IPs."""
    s = stub()
    req = pb.ListFloatingIpsRequest(
        page_size=PAGE_SIZE,
        floating_network_id=find_network(s, network).id if network else "",
        port_id=find_port(s, port).id if port else "",
    )
    emit(list_all(s.ListFloatingIps, req, "floating_ips"), output, COLUMNS, column)


@app.command()
def show(floating_ip: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a floating IP by id or address."""
    emit(find(stub(), floating_ip), output, DETAIL, column)


@app.command("set")
def set_(
    floating_ip: str,
    port: Annotated[str | None, typer.Option(help="Give it to this port (name or id)")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Give a floating IP to a port (one given to another port: unset it first), or change its description."""
    s = stub()
    changed = pb.FloatingIp(id=find(s, floating_ip).id)
    fields = mask(changed, port_id=find_port(s, port).id if port else None, description=description)
    emit(
        s.UpdateFloatingIp(pb.UpdateFloatingIpRequest(floating_ip=changed, update_mask=fields)),
        output,
        DETAIL,
        column,
    )


@app.command()
def unset(floating_ip: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Take a floating IP from its port (it stays allocated)."""
    s = stub()
    changed = pb.FloatingIp(id=find(s, floating_ip).id)
    req = pb.UpdateFloatingIpRequest(floating_ip=changed, update_mask=mask(changed, port_id=""))
    emit(s.UpdateFloatingIp(req), output, DETAIL, column)


@app.command()
def delete(floating_ip: str) -> None:
    """Release a floating IP."""
    s = stub()
    f = find(s, floating_ip)
    s.DeleteFloatingIp(pb.DeleteFloatingIpRequest(id=f.id))
    typer.echo(f"deleted floating IP {f.id} ({f.floating_ip_address})")
