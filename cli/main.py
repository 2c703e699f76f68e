"""`kumo`: the command-line client. One sub-app per resource in cli/commands/."""

from __future__ import annotations

import sys

import grpc
import typer

from cli.commands import auth, flavor, image, keypair, node, project, role, server, server_group, user
from cli.commands import network as network_cmd
from cli.commands import port as port_cmd
from cli.commands import security_group as security_group_cmd
from cli.commands import subnet as subnet_cmd
from cli.commands import volume as volume_cmd
from cli.errors import CliError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="kumo: a small, fast IaaS cloud.",
)
auth.register(app)
app.add_typer(project.app, name="project", help="Projects (tenants).")
app.add_typer(user.app, name="user", help="Users.")
app.add_typer(role.app, name="role", help="Role assignments: who may do what in which project.")
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
app.add_typer(node.app, name="node", help="Nodes (hypervisor hosts) and their join tokens (admin).")


def describe_rpc_error(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the controller: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the controller did not answer in time"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"{details} (run 'kumo login')"
    name = code.name if code is not None else "ERROR"
    return f"{details} [{name}]"


def main() -> None:
    try:
        app()
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
