"""`kumo`: the command-line client. One sub-app per resource in cli/commands/."""

from __future__ import annotations

import copy
import importlib
import os
import sys
from typing import Annotated

import grpc
import typer

from cli import config
from cli.errors import CliError
from kumo import errorinfo

# The sub-apps: (command, module under cli.commands, help). A command line
# naming one imports only that module (most of the CLI's start-up time is
# imports); help, completion and anything else build the whole tree.
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("profile", "profile", "Stored logins: kumo login --profile NAME."),
    ("project", "project", "Projects (tenants)."),
    ("user", "user", "Users."),
    ("role", "role", "Role assignments: who may do what in which project."),
    ("quota", "quota", "Quotas: a project's limits and usage per resource."),
    ("image", "image", "Disk images: upload, download, share."),
    ("flavor", "flavor", "Flavors: instance sizes."),
    ("keypair", "keypair", "SSH keypairs for instances."),
    ("server-group", "server_group", "Server groups: affinity and anti-affinity."),
    ("server", "server", "Servers (instances): real guests on the nodes."),
    ("volume", "volume", "Volumes: disks to attach to servers, snapshots."),
    ("network", "network", "Networks: virtual L2 segments across nodes."),
    ("subnet", "subnet", "Subnets: address ranges of a network."),
    ("port", "port", "Ports: a NIC's MAC and fixed IPs on a network."),
    ("security-group", "security_group", "Security groups and their rules."),
    ("router", "router", "Routers: a project's way out (SNAT) to an external network."),
    ("floating-ip", "floating_ip", "Floating IPs: external addresses for ports."),
    ("controller", "controller", "The controllers of the control plane (admin)."),
    ("node", "node", "Nodes (hypervisor hosts) and their join tokens (admin)."),
    ("event", "event", "The event log: who changed what, when, and how it ended."),
)


def root(
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="NAME", help="Use this stored login (env KUMO_PROFILE)"),
    ] = None,
) -> None:
    """kumo: a small, fast IaaS cloud."""
    if profile:
        config.chosen = profile


def _narrowed(sub: typer.Typer, command: str) -> typer.Typer:
    """`sub` with only its command (or nested group) named `command`, when it has one: typer
    builds every command of a group it is given, reading each one's options from its signature,
    and a command line runs one. A name `sub` does not have leaves it whole (click then says so)."""
    from typer.main import get_command_name

    commands = [
        c
        for c in sub.registered_commands
        if c.name == command
        or (c.name is None and c.callback is not None and get_command_name(c.callback.__name__) == command)
    ]
    groups = [g for g in sub.registered_groups if g.name == command]
    if not commands and not groups:
        return sub
    narrowed = copy.copy(sub)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def build_app(only: str = "", command: str = "") -> typer.Typer:
    """The CLI's command tree: every sub-app, or just the one named `only`
    (with the top-level commands left out: that command line cannot reach them),
    and of it just `command` when one is named."""
    app = typer.Typer(
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="kumo: a small, fast IaaS cloud.",
    )
    app.callback()(root)
    if not only:
        from cli.commands import auth

        auth.register(app)
    for name, module, help_text in GROUPS:
        if not only or name == only:
            sub = importlib.import_module(f"cli.commands.{module}").app
            app.add_typer(_narrowed(sub, command) if command else sub, name=name, help=help_text)
    return app


def group_of(argv: list[str]) -> str:
    """The sub-app a command line names ("" when it names none, asks for
    completion, or is not one kumo knows: then the whole tree answers)."""
    if any(k.startswith("_KUMO_COMPLETE") for k in os.environ) or "--show-completion" in argv:
        return ""
    args = iter(argv)
    for arg in args:
        if arg == "--profile":
            next(args, None)
        elif not arg.startswith("-"):
            return arg if any(arg == name for name, _, _ in GROUPS) else ""
        else:
            return ""
    return ""


def command_of(argv: list[str], group: str) -> str:
    """The command a command line names in `group` ("" when it names none: `kumo server --help`)."""
    if not group:
        return ""
    args = argv[argv.index(group) + 1 :]
    return args[0] if args and not args[0].startswith("-") else ""


def __getattr__(name: str) -> typer.Typer:
    """`cli.main.app`: the whole tree (for tests and tools that walk it)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


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
    width = help_width()
    if width is not None:  # typer reads it when it first lays out help (it imports rich_utils late)
        os.environ["TERMINAL_WIDTH"] = str(width)
    try:
        argv = sys.argv[1:]
        group = group_of(argv)
        build_app(group, command_of(argv, group))(prog_name="kumo")
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
