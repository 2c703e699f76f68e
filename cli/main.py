"""`kumo`: the command-line client. One sub-app per resource in cli/commands/."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import grpc
import typer
import typer.rich_utils

from cli import config
from cli.commands import (
    auth,
    controller,
    flavor,
    image,
    keypair,
    node,
    project,
    role,
    server,
    server_group,
    user,
)
from cli.commands import event as event_cmd
from cli.commands import floating_ip as floating_ip_cmd
from cli.commands import network as network_cmd
from cli.commands import port as port_cmd
from cli.commands import profile as profile_cmd
from cli.commands import quota as quota_cmd
from cli.commands import router as router_cmd
from cli.commands import security_group as security_group_cmd
from cli.commands import subnet as subnet_cmd
from cli.commands import volume as volume_cmd
from cli.errors import CliError
from kumo import errorinfo

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="kumo: a small, fast IaaS cloud.",
)


@app.callback()
def root(
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="NAME", help="Use this stored login (env KUMO_PROFILE)"),
    ] = None,
) -> None:
    """kumo: a small, fast IaaS cloud."""
    if profile:
        config.chosen = profile


auth.register(app)
app.add_typer(profile_cmd.app, name="profile", help="Stored logins: kumo login --profile NAME.")
app.add_typer(project.app, name="project", help="Projects (tenants).")
app.add_typer(user.app, name="user", help="Users.")
app.add_typer(role.app, name="role", help="Role assignments: who may do what in which project.")
app.add_typer(quota_cmd.app, name="quota", help="Quotas: a project's limits and usage per resource.")
app.add_typer(image.app, name="image", help="Disk images: upload, download, share.")
app.add_typer(flavor.app, name="flavor", help="Flavors: instance sizes.")
app.add_typer(keypair.app, name="keypair", help="SSH keypairs for instances.")
app.add_typer(server_group.app, name="server-group", help="Server groups: affinity and anti-affinity.")
app.add_typer(server.app, name="server", help="Servers (instances): real guests on the nodes.")
app.add_typer(volume_cmd.app, name="volume", help="Volumes: disks to attach to servers, snapshots.")
app.add_typer(network_cmd.app, name="network", help="Networks: virtual L2 segments across nodes.")
app.add_typer(subnet_cmd.app, name="subnet", help="Subnets: address ranges of a network.")
app.add_typer(port_cmd.app, name="port", help="Ports: a NIC's MAC and fixed IPs on a network.")
app.add_typer(security_group_cmd.app, name="security-group", help="Security groups and their rules.")
app.add_typer(
    router_cmd.app, name="router", help="Routers: a project's way out (SNAT) to an external network."
)
app.add_typer(floating_ip_cmd.app, name="floating-ip", help="Floating IPs: external addresses for ports.")
app.add_typer(controller.app, name="controller", help="The controllers of the control plane (admin).")
app.add_typer(node.app, name="node", help="Nodes (hypervisor hosts) and their join tokens (admin).")
app.add_typer(event_cmd.app, name="event", help="The event log: who changed what, when, and how it ended.")


def describe_rpc_error(exc: grpc.RpcError) -> str:
    if hasattr(exc, "code") and exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        return f"{exc.details()} (run 'kumo login')"
    return errorinfo.describe_rpc_error(exc)


# Help piped to a file or a pager: at least this wide (narrower, rich cuts option names with "…").
PIPED_HELP_WIDTH = 100


def help_width() -> int | None:
    """The width help is laid out in: the terminal's on a tty (None: rich asks it), else $COLUMNS
    but no less than PIPED_HELP_WIDTH, so `kumo ... --help | less` is never cut at rich's 80."""
    if os.environ.get("TERMINAL_WIDTH", "").isdigit():
        return int(os.environ["TERMINAL_WIDTH"])
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return max(int(columns), PIPED_HELP_WIDTH) if columns.isdigit() else PIPED_HELP_WIDTH


def main() -> None:
    typer.rich_utils.MAX_WIDTH = help_width()
    try:
        app(prog_name="kumo")
    except CliError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except grpc.RpcError as exc:
        typer.echo(f"error: {describe_rpc_error(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
