"""Shell completion of resource names (servers, images, volumes, networks,
flavors): one List call through the API with the profile in use's token,
under a short deadline. Completion must never get in the way: without a
login, with an unreachable controller or an expired token it offers nothing
and prints nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated

import typer

DEADLINE = 2.0  # seconds: a shell waits for this while the user waits for it
PAGE = 1000


def names_from(service: str, stub_name: str, method: str, field: str) -> Callable[[str], list[str]]:
    """A typer completion callback listing the names a List RPC returns:
    `method` of `stub_name` in kumo.v1's `service`_pb2_grpc (its request type
    is `method` + "Request"). The modules are imported only when completing:
    a command line pays nothing for them."""

    def complete(incomplete: str) -> list[str]:
        from cli import config
        from cli.client import connect

        try:
            s = config.effective()
            if not s.token:
                return []
            messages = importlib.import_module(f"kumo.v1.{service}_pb2")
            services = importlib.import_module(f"kumo.v1.{service}_pb2_grpc")
            stub = connect(s.endpoint, s.ca_file, s.token).stub(getattr(services, stub_name))
            request = getattr(messages, f"{method}Request")(page_size=PAGE)
            resp = getattr(stub, method)(request, timeout=DEADLINE)
            found = {item.name for item in getattr(resp, field)}
        except Exception:  # completion stays silent, whatever went wrong
            return []
        return sorted(n for n in found if n.startswith(incomplete))

    return complete


servers = names_from("compute", "ComputeServiceStub", "ListInstances", "instances")
flavors = names_from("compute", "ComputeServiceStub", "ListFlavors", "flavors")
images = names_from("image", "ImageServiceStub", "ListImages", "images")
networks = names_from("network", "NetworkServiceStub", "ListNetworks", "networks")
volumes = names_from("volume", "VolumeServiceStub", "ListVolumes", "volumes")

ServerArg = Annotated[str, typer.Argument(help="Server name or id", autocompletion=servers)]
ImageArg = Annotated[str, typer.Argument(help="Image name or id", autocompletion=images)]
VolumeArg = Annotated[str, typer.Argument(help="Volume name or id", autocompletion=volumes)]
NetworkArg = Annotated[str, typer.Argument(help="Network name or id", autocompletion=networks)]
FlavorArg = Annotated[str, typer.Argument(help="Flavor name or id", autocompletion=flavors)]
