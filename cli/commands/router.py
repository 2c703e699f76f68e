"""kumo router create | list | show | set | delete | add-interface | remove-interface."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands.network import find as find_network
from cli.commands.network import stub
from cli.commands.subnet import find as find_subnet
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, emit
from cli.updates import mask
from kumo.v1 import network_pb2 as pb

app = typer.Typer(no_args_is_help=True)


def _gateway(g: dict) -> str:  # type: ignore[type-arg]
    return f"{g.get('ip_address', '')} (network {g['network_id']})" if g and g.get("network_id") else ""


def _interfaces(value: list[dict]) -> str:  # type: ignore[type-arg]
    return ", ".join(f"{i.get('ip_address', '')} (subnet {i.get('subnet_id', '')})" for i in value or [])


COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("gateway", "external_gateway", _gateway),
    ("interfaces", "interfaces", _interfaces),
]
DETAIL = [
    *COLUMNS,
    ("project", "project_id"),
    ("description", "description"),
    ("created", "create_time"),
    ("updated", "update_time"),
]


def find(s, ref: str) -> pb.Router:  # type: ignore[no-untyped-def]
    return resolve(
        "router",
        ref,
        lambda i: s.GetRouter(pb.GetRouterRequest(id=i)),
        lambda n: list(s.ListRouters(pb.ListRoutersRequest(name=n)).routers),
    )


@app.command()
def create(
    name: str,
    external_network: Annotated[
        str, typer.Option(help="External network (name or id) for the gateway: SNAT for its subnets")
    ] = "",
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a router in your project."""
    s = stub()
    gateway = pb.RouterGateway(network_id=find_network(s, external_network).id if external_network else "")
    router = pb.Router(name=name, description=description, external_gateway=gateway)
    emit(s.CreateRouter(pb.CreateRouterRequest(router=router)), output, DETAIL, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List your project's routers."""
    emit(
        list_all(stub().ListRouters, pb.ListRoutersRequest(page_size=PAGE_SIZE, name=name or ""), "routers"),
        output,
        COLUMNS,
        column,
    )


@app.command()
def show(router: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a router by name or id."""
    emit(find(stub(), router), output, DETAIL, column)


@app.command("set")
def set_(
    router: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    external_network: Annotated[
        str | None, typer.Option(help="Move the gateway to this external network")
    ] = None,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Remove the gateway")] = False,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a router's name, description or gateway."""
    s = stub()
    changed = pb.Router(id=find(s, router).id)
    fields = mask(changed, name=name, description=description)
    if external_network is not None or no_gateway:
        if external_network and no_gateway:
            raise CliError("give --external-network or --no-gateway, not both")
        if external_network:
            changed.external_gateway.network_id = find_network(s, external_network).id
        fields.paths.append("external_gateway")
    emit(s.UpdateRouter(pb.UpdateRouterRequest(router=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(router: str) -> None:
    """Delete a router that has no interfaces left."""
    s = stub()
    r = find(s, router)
    s.DeleteRouter(pb.DeleteRouterRequest(id=r.id))
    typer.echo(f"deleted router {r.id}")


@app.command("add-interface")
def add_interface(
    router: str, subnet: str, output: OutputOpt = Format.table, column: ColumnOpt = None
) -> None:
    """Route a subnet (name or id) through the router."""
    s = stub()
    req = pb.AddRouterInterfaceRequest(id=find(s, router).id, subnet_id=find_subnet(s, subnet).id)
    emit(s.AddRouterInterface(req), output, DETAIL, column)


@app.command("remove-interface")
def remove_interface(
    router: str, subnet: str, output: OutputOpt = Format.table, column: ColumnOpt = None
) -> None:
    """Stop routing a subnet through the router."""
    s = stub()
    req = pb.RemoveRouterInterfaceRequest(id=find(s, router).id, subnet_id=find_subnet(s, subnet).id)
    emit(s.RemoveRouterInterface(req), output, DETAIL, column)
