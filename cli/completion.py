"""Shell completion of resource names (servers, images, volumes, networks,
flavors): one List call through the API with the profile in use's token,
under a short deadline. Completion must never get in the way: without a
login, with an unreachable controller or an expired token it offers nothing
and prints nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from kumo.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    image_pb2,
    image_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    volume_pb2,
    volume_pb2_grpc,
)

DEADLINE = 2.0  # seconds: a shell waits for this while the user waits for it
PAGE = 1000


def names_from(
    stub_cls: type, method: str, request: Callable[[], Any], field: str
) -> Callable[[str], list[str]]:
    """A typer completion callback listing the names a List RPC returns."""

    def complete(incomplete: str) -> list[str]:
        from cli import config
        from cli.client import connect

        try:
            s = config.effective()
            if not s.token:
                return []
            stub = connect(s.endpoint, s.ca_file, s.token).stub(stub_cls)
            resp = getattr(stub, method)(request(), timeout=DEADLINE)
            found = {item.name for item in getattr(resp, field)}
        except Exception:  # completion stays silent, whatever went wrong
            return []
        return sorted(n for n in found if n.startswith(incomplete))

    return complete


servers = names_from(
    compute_pb2_grpc.ComputeServiceStub,
    "ListInstances",
    lambda: compute_pb2.ListInstancesRequest(page_size=PAGE),
    "instances",
)
flavors = names_from(
    compute_pb2_grpc.ComputeServiceStub,
    "ListFlavors",
    lambda: compute_pb2.ListFlavorsRequest(page_size=PAGE),
    "flavors",
)
images = names_from(
    image_pb2_grpc.ImageServiceStub,
    "ListImages",
    lambda: image_pb2.ListImagesRequest(page_size=PAGE),
    "images",
)
networks = names_from(
    network_pb2_grpc.NetworkServiceStub,
    "ListNetworks",
    lambda: network_pb2.ListNetworksRequest(page_size=PAGE),
    "networks",
)
volumes = names_from(
    volume_pb2_grpc.VolumeServiceStub,
    "ListVolumes",
    lambda: volume_pb2.ListVolumesRequest(page_size=PAGE),
    "volumes",
)

ServerArg = Annotated[str, typer.Argument(help="Server name or id", autocompletion=servers)]
ImageArg = Annotated[str, typer.Argument(help="Image name or id", autocompletion=images)]
VolumeArg = Annotated[str, typer.Argument(help="Volume name or id", autocompletion=volumes)]
NetworkArg = Annotated[str, typer.Argument(help="Network name or id", autocompletion=networks)]
FlavorArg = Annotated[str, typer.Argument(help="Flavor name or id", autocompletion=flavors)]
