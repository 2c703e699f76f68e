"""kumo subnet create | list | show | set | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands.network import find as find_network
from cli.commands.network import stub
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.updates import mask
from kumo.v1 import network_pb2 as pb

app = typer.Typer(no_args_is_help=True)

IPV6_MODES = {"static": pb.IPV6_ADDRESS_MODE_STATIC, "slaac": pb.IPV6_ADDRESS_MODE_SLAAC}


COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("network", "network_id"),
    ("cidr", "cidr"),
    ("gateway", "gateway_ip"),
    ("ipv6 mode", "ipv6_address_mode"),
]
DETAIL = [
    *COLUMNS,
    ("ip version", "ip_version"),
    ("pools", "allocation_pools"),
    ("dns", "dns_servers"),
    ("project", "project_id"),
    ("description", "description"),
    ("created", "create_time"),
]


def find(s, ref: str) -> pb.Subnet:  # type: ignore[no-untyped-def]
    return resolve(
        "subnet",
        ref,
        lambda i: s.GetSubnet(pb.GetSubnetRequest(id=i)),
        lambda n: list(s.ListSubnets(pb.ListSubnetsRequest(name=n)).subnets),
    )


def _pool(value: str) -> pb.AllocationPool:
    start, sep, end = value.partition("-")
    if not sep:
        raise CliError(f"--pool {value!r}: use START-END, e.g. 10.0.0.10-10.0.0.99")
    return pb.AllocationPool(start=start.strip(), end=end.strip())


@app.command()
def create(
    name: str,
    network: Annotated[str, typer.Option(help="Network name or id")],
    cidr: Annotated[str, typer.Option(help="e.g. 10.0.0.0/24")],
    gateway: Annotated[str, typer.Option(help="Gateway address; 'none' for none; default the first")] = "",
    pool: Annotated[list[str] | None, typer.Option(help="Allocation pool START-END (repeatable)")] = None,
    dns: Annotated[list[str] | None, typer.Option(help="DNS server (repeatable)")] = None,
    ipv6_address_mode: Annotated[
        str | None,
        typer.Option(help="IPv6 only: static (default; addresses on the config drive) or slaac (a /64)"),
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a subnet on a network."""
    mode = pb.IPV6_ADDRESS_MODE_UNSPECIFIED
    if ipv6_address_mode is not None:
        if ipv6_address_mode.lower() not in IPV6_MODES:
            raise CliError(f"unknown --ipv6-address-mode {ipv6_address_mode!r}: use static or slaac")
        mode = IPV6_MODES[ipv6_address_mode.lower()]
    s = stub()
    subnet = pb.Subnet(
        name=name,
        network_id=find_network(s, network).id,
        cidr=cidr,
        gateway_ip=gateway,
        allocation_pools=[_pool(p) for p in pool or []],
        dns_servers=dns or [],
        ipv6_address_mode=mode,
        description=description,
    )
    emit(s.CreateSubnet(pb.CreateSubnetRequest(subnet=subnet)), output, DETAIL, column)


@app.command("list")
def list_(
    name: NameFilter = None,
    network: Annotated[str | None, typer.Option(help="Only this network's")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List the subnets you may see."""
    s = stub()
    req = pb.ListSubnetsRequest(
        page_size=PAGE_SIZE, name=name or "", network_id=find_network(s, network).id if network else ""
    )
    emit(list_all(s.ListSubnets, req, "subnets"), output, COLUMNS, column)


@app.command()
def show(subnet: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a subnet by name or id."""
    emit(find(stub(), subnet), output, DETAIL, column)


@app.command("set")
def set_(
    subnet: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    dns: Annotated[list[str] | None, typer.Option(help="Replace the DNS servers (repeatable)")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a subnet's name, description or DNS servers."""
    s = stub()
    changed = pb.Subnet(id=find(s, subnet).id)
    fields = mask(changed, name=name, description=description, dns_servers=dns)
    emit(s.UpdateSubnet(pb.UpdateSubnetRequest(subnet=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(subnet: str) -> None:
    """Delete a subnet (no port may hold an address on it)."""
    s = stub()
    sub = find(s, subnet)
    s.DeleteSubnet(pb.DeleteSubnetRequest(id=sub.id))
    deleted("subnet", sub)
