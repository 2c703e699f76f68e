"""kumo network create | list | show | set | delete."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.completion import NetworkArg
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.updates import mask
from kumo.v1 import network_pb2 as pb
from kumo.v1 import network_pb2_grpc

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("project", "project_id"),
    ("shared", "shared"),
    ("nat", "external_routable"),
    ("mtu", "mtu"),
    ("vni", "vni"),
    ("subnets", "subnet_ids"),
]
DETAIL = [
    *COLUMNS,
    ("external", "external"),
    ("type", "network_type"),
    ("physical network", "physical_network"),
    ("vlan", "segmentation_id"),
    ("description", "description"),
    ("created", "create_time"),
    ("updated", "update_time"),
]
TYPES = {"vxlan": pb.NETWORK_TYPE_VXLAN, "flat": pb.NETWORK_TYPE_FLAT, "vlan": pb.NETWORK_TYPE_VLAN}


def stub():  # type: ignore[no-untyped-def]
    return session().stub(network_pb2_grpc.NetworkServiceStub)


def find(s, ref: str) -> pb.Network:  # type: ignore[no-untyped-def]
    return resolve(
        "network",
        ref,
        lambda i: s.GetNetwork(pb.GetNetworkRequest(id=i)),
        lambda n: list(s.ListNetworks(pb.ListNetworksRequest(name=n)).networks),
    )


@app.command()
def create(
    name: str,
    mtu: Annotated[int, typer.Option(help="MTU; 0 means 1450")] = 0,
    shared: Annotated[bool, typer.Option("--shared", help="Usable by every project (admin)")] = False,
    external: Annotated[
        bool, typer.Option("--external-routable", help="Outbound NAT through the host (admin)")
    ] = False,
    external_network: Annotated[
        bool,
        typer.Option(
            "--external", help="An external (provider) network for routers and floating IPs (admin)"
        ),
    ] = False,
    network_type: Annotated[str, typer.Option("--type", help="vxlan, flat or vlan (admin)")] = "",
    physical_network: Annotated[
        str, typer.Option(help="flat/vlan: the physical network name nodes map to an interface (admin)")
    ] = "",
    vlan: Annotated[int, typer.Option(help="vlan: the VLAN id (admin)")] = 0,
    description: Annotated[str, typer.Option()] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a network in your project."""
    if network_type and network_type not in TYPES:
        raise CliError(f"--type must be one of {', '.join(TYPES)}")
    network = pb.Network(
        name=name,
        mtu=mtu,
        shared=shared,
        external_routable=external,
        external=external_network,
        network_type=TYPES.get(network_type, 0),
        physical_network=physical_network,
        segmentation_id=vlan,
        description=description,
    )
    emit(stub().CreateNetwork(pb.CreateNetworkRequest(network=network)), output, DETAIL, column)


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List your project's networks and the shared ones."""
    req = pb.ListNetworksRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListNetworks, req, "networks"), output, COLUMNS, column)


@app.command()
def show(network: NetworkArg, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a network by name or id."""
    emit(find(stub(), network), output, DETAIL, column)


@app.command("set")
def set_(
    network: NetworkArg,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    mtu: Annotated[int | None, typer.Option()] = None,
    shared: Annotated[bool | None, typer.Option("--shared/--no-shared", help="(admin)")] = None,
    external: Annotated[
        bool | None, typer.Option("--external-routable/--no-external-routable", help="(admin)")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a network."""
    s = stub()
    changed = pb.Network(id=find(s, network).id)
    fields = mask(
        changed, name=name, description=description, mtu=mtu, shared=shared, external_routable=external
    )
    emit(
        s.UpdateNetwork(pb.UpdateNetworkRequest(network=changed, update_mask=fields)), output, DETAIL, column
    )


@app.command()
def delete(network: NetworkArg) -> None:
    """Delete a network with its subnets and unbound ports."""
    s = stub()
    n = find(s, network)
    s.DeleteNetwork(pb.DeleteNetworkRequest(id=n.id))
    deleted("network", n)
