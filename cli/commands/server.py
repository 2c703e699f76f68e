"""kumo server create | list | show | delete | start | stop | reboot | console | snapshot | migrate | resize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import completion
from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands import event as event_cmd
from cli.commands.flavor import stub
from cli.commands.server_group import find as find_group
from cli.completion import ServerArg
from cli.errors import CliError
from cli.output import (
    ColumnOpt,
    Format,
    NameFilter,
    OutputOpt,
    deleted,
    emit,
    enum_choices,
    enum_text,
    parse_enum,
)
from cli.updates import mask
from cli.waiting import DEFAULT_TIMEOUT, TimeoutOpt, WaitOpt, gone, settle
from kumo.ids import is_uuid
from kumo.v1 import compute_pb2 as pb

app = typer.Typer(no_args_is_help=True)
event_app = typer.Typer(no_args_is_help=True)
app.add_typer(event_app, name="event", help="A server's events: what was done to it and what it did.")
migration_app = typer.Typer(no_args_is_help=True)
app.add_typer(migration_app, name="migration", help="Live migrations: phase, bytes copied, downtime.")

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("state", "state"),
    ("power", "power_state"),
    ("task", "task"),
    ("node", "node_id"),
    ("vcpus", "vcpus"),
    ("ram mb", "ram_mb"),
]
DETAIL = [
    *COLUMNS,
    ("disk gb", "disk_gb"),
    ("image", "image_id"),
    ("flavor", "flavor_id"),
    ("keypair", "keypair_id"),
    ("server group", "server_group_id"),
    ("fault", "fault"),
    ("ha", "ha"),
    ("nics", "nics", lambda nics: "; ".join(_nic(n) for n in nics or [])),
    ("boot volume", "boot_volume_id"),
    ("volumes", "volume_ids", lambda ids: ", ".join(ids or [])),
    ("created", "create_time"),
    ("launched", "launch_time"),
]


def _nic(n: dict) -> str:  # type: ignore[type-arg]
    floating = f" floating {n['floating_ip_address']}" if n.get("floating_ip_address") else ""
    return f"{n.get('mac_address', '')} {','.join(n.get('ip_addresses', []))}{floating} (port {n.get('port_id', '')})"


STATES = ", ".join(enum_choices(pb.InstanceState.DESCRIPTOR))
STABLE = {pb.INSTANCE_STATE_ACTIVE, pb.INSTANCE_STATE_STOPPED, pb.INSTANCE_STATE_ERROR}


def find(s, ref: str) -> pb.Instance:  # type: ignore[no-untyped-def]
    return resolve(
        "server",
        ref,
        lambda i: s.GetInstance(pb.GetInstanceRequest(id=i)),
        lambda n: list(s.ListInstances(pb.ListInstancesRequest(name=n)).instances),
    )


def _state(inst: pb.Instance) -> str:
    return enum_text(pb.InstanceState.DESCRIPTOR, inst.state) + (f" ({inst.task})" if inst.task else "")


def wait(s, inst: pb.Instance, done, timeout: float = DEFAULT_TIMEOUT) -> pb.Instance:  # type: ignore[no-untyped-def]
    """Polls until done(instance); prints each state it passes through."""
    return settle(
        "server",
        inst,
        lambda i: s.GetInstance(pb.GetInstanceRequest(id=i.id)),
        done,
        pb.INSTANCE_STATE_ERROR,
        label=_state,
        timeout=timeout,
        interval=1,
    )


@app.command()
def create(
    name: str,
    flavor: Annotated[str, typer.Option(help="Flavor name or id", autocompletion=completion.flavors)],
    image: Annotated[
        str | None, typer.Option(help="Image name or id (or --boot-volume)", autocompletion=completion.images)
    ] = None,
    key: Annotated[str | None, typer.Option(help="Keypair name or id")] = None,
    user_data: Annotated[Path | None, typer.Option(help="A file given to the guest as user-data")] = None,
    group: Annotated[str | None, typer.Option(help="Server group name or id")] = None,
    boot_volume: Annotated[
        str | None, typer.Option(help="Boot from this volume (name or id) instead of an image")
    ] = None,
    network: Annotated[
        list[str] | None, typer.Option(help="A NIC on this network, name or id (repeatable, in NIC order)")
    ] = None,
    port: Annotated[
        list[str] | None, typer.Option(help="A NIC on this existing port id (repeatable)")
    ] = None,
    security_group: Annotated[
        list[str] | None, typer.Option(help="Security group for the new ports (repeatable; default: default)")
    ] = None,
    ha: Annotated[
        bool,
        typer.Option("--ha", help="Restart it on another node by itself when its node is lost and fenced"),
    ] = False,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a server (boots on a node the scheduler picks)."""
    if bool(image) == bool(boot_volume):
        raise CliError("give --image or --boot-volume (one of the two)")
    s = stub()
    data = b""
    if user_data is not None:
        try:
            data = user_data.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {user_data}: {exc.strerror}") from None
    req = pb.CreateInstanceRequest(
        name=name,
        image=image or "",
        boot_volume=boot_volume or "",
        flavor=flavor,
        keypair=key or "",
        user_data=data,
        server_group_id=find_group(s, group).id if group else "",
        networks=[pb.NetworkRequest(network=n) for n in network or []]
        + [pb.NetworkRequest(port_id=p) for p in port or []],
        security_groups=security_group or [],
        ha=ha,
    )
    inst = s.CreateInstance(req)
    if wait_:
        inst = wait(s, inst, lambda i: i.state in STABLE, timeout)
    emit(inst, output, DETAIL, column)


@app.command("list")
def list_(
    name: NameFilter = None,
    state: Annotated[str | None, typer.Option(help=f"Only servers in this state: {STATES}")] = None,
    node: Annotated[str | None, typer.Option(help="Only servers on this node (id, or name: admins)")] = None,
    project: Annotated[
        str | None, typer.Option(help="Only this project's servers (name or id; others: admins)")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List servers (admins see every project's)."""
    # The other commands' modules (and their services' messages) are imported only for a name to
    # look up: a plain `server list` would otherwise load node, migration and identity's too.
    req = pb.ListInstancesRequest(page_size=PAGE_SIZE, name=name or "")
    if state:
        req.state = parse_enum(pb.InstanceState.DESCRIPTOR, state, "--state")
    if node and not is_uuid(node):
        from cli.commands import node as node_cmd

        node = node_cmd.find(node_cmd.stub(), node).id
    if node:
        req.node_id = node
    if project and not is_uuid(project):
        from cli.commands import project as project_cmd

        project = project_cmd.find(project_cmd.stub(), project).id
    if project:
        req.project_id = project
    emit(list_all(stub().ListInstances, req, "instances"), output, COLUMNS, column)


@app.command()
def show(server: ServerArg, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a server by name or id."""
    emit(find(stub(), server), output, DETAIL, column)


@app.command("set")
def set_(
    server: ServerArg,
    ha: Annotated[
        bool | None,
        typer.Option("--ha/--no-ha", help="Restart it elsewhere by itself when its node is lost and fenced"),
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a server."""
    s = stub()
    changed = pb.Instance(id=find(s, server).id)
    fields = mask(changed, ha=ha)
    if not fields.paths:
        raise CliError("nothing to change: give --ha or --no-ha")
    emit(
        s.UpdateInstance(pb.UpdateInstanceRequest(instance=changed, update_mask=fields)),
        output,
        DETAIL,
        column,
    )


def _verb(  # type: ignore[no-untyped-def]
    server: ServerArg,
    call: str,
    request,
    target,
    wait_: bool,
    timeout: float,
    output: Format,
    column: list[str] | None,
) -> None:
    s = stub()
    inst = find(s, server)
    inst = getattr(s, call)(request(inst.id))
    if wait_:
        inst = wait(s, inst, target, timeout)
    emit(inst, output, DETAIL, column)


@app.command()
def migrate(
    server: ServerArg,
    live: Annotated[bool, typer.Option("--live", help="Keep the guest running while it moves")] = False,
    node: Annotated[str, typer.Option("--node", help="Target node (name or id) [the scheduler picks]")] = "",
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Move a server to another node (admin). Cold (the default) stops it, moves it and
    starts it again if it ran; --live keeps it running (--wait shows the phase and bytes
    copied)."""
    from cli.commands import migration as migration_cmd
    from cli.commands import node as node_cmd

    s = stub()
    inst = find(s, server)
    target = node_cmd.find(node_cmd.stub(), node).id if node else ""
    inst = s.MigrateInstance(pb.MigrateInstanceRequest(name=inst.id, live=live, node=target))
    if wait_ and live:
        migration_cmd.follow(s, inst, timeout)
        inst = s.GetInstance(pb.GetInstanceRequest(id=inst.id))
    elif wait_:
        inst = wait(s, inst, lambda x: x.state in STABLE, timeout)
    emit(inst, output, DETAIL, column)


@migration_app.command("list")
def migration_list(
    server: Annotated[str, typer.Option("--server", help="Only this server's (name or id)")] = "",
    node: Annotated[str, typer.Option("--node", help="Only from or to this node (name or id)")] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List live migrations, oldest first (admin)."""
    from cli.commands import migration as migration_cmd
    from cli.commands import node as node_cmd

    s = stub()
    instance_id = find(s, server).id if server else ""
    node_id = node_cmd.find(node_cmd.stub(), node).id if node else ""
    emit(migration_cmd.migrations(s, instance_id, node_id), output, migration_cmd.COLUMNS, column)


@app.command()
def start(
    server: ServerArg,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Power a stopped server on."""
    _verb(
        server,
        "StartInstance",
        lambda i: pb.StartInstanceRequest(id=i),
        lambda x: x.state in STABLE and not x.task,
        wait_,
        timeout,
        output,
        column,
    )


@app.command()
def stop(
    server: ServerArg,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Shut a server down (ACPI, then power off)."""
    _verb(
        server,
        "StopInstance",
        lambda i: pb.StopInstanceRequest(id=i),
        lambda x: x.state in STABLE and not x.task,
        wait_,
        timeout,
        output,
        column,
    )


@app.command()
def reboot(
    server: ServerArg,
    hard: Annotated[bool, typer.Option("--hard", help="Reset instead of asking the guest")] = False,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Reboot a server (soft by default)."""
    kind = pb.REBOOT_TYPE_HARD if hard else pb.REBOOT_TYPE_SOFT
    _verb(
        server,
        "RebootInstance",
        lambda i: pb.RebootInstanceRequest(id=i, type=kind),
        lambda x: x.state in STABLE,
        wait_,
        timeout,
        output,
        column,
    )


RESIZE_VERBS = {
    "confirm": ("ConfirmResize", pb.ConfirmResizeRequest),
    "revert": ("RevertResize", pb.RevertResizeRequest),
}


@app.command(
    epilog="kumo server resize confirm SERVER keeps the new flavor; kumo server resize revert SERVER "
    "goes back to the old flavor, node and disk. (A server named confirm or revert: give its id.)"
)
def resize(
    server: ServerArg,
    flavor: Annotated[str, typer.Argument(help="The new flavor (name or id); or confirm|revert SERVER")],
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change a server's flavor; it waits in VERIFY_RESIZE for confirm or revert."""
    if server in RESIZE_VERBS:
        call, request = RESIZE_VERBS[server]
        _verb(
            flavor,
            call,
            lambda i: request(name=i),
            lambda x: x.state in STABLE,
            wait_,
            timeout,
            output,
            column,
        )
        return
    _verb(
        server,
        "ResizeInstance",
        lambda i: pb.ResizeInstanceRequest(name=i, flavor=flavor),
        lambda x: x.state in (*STABLE, pb.INSTANCE_STATE_VERIFY_RESIZE),
        wait_,
        timeout,
        output,
        column,
    )


@app.command()
def delete(server: ServerArg, wait_: WaitOpt = False, timeout: TimeoutOpt = DEFAULT_TIMEOUT) -> None:
    """Delete a server: its guest, disks and config drive go."""
    s = stub()
    inst = find(s, server)
    s.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id))
    if wait_:
        gone(
            "server",
            inst.name,
            lambda: not s.ListInstances(pb.ListInstancesRequest(name=inst.name)).instances,
            timeout=timeout,
            interval=1,
        )
    deleted("server", inst)


@app.command()
def console(
    server: ServerArg,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Only the last N lines (0: all)")] = 0,
    attach_: Annotated[
        bool, typer.Option("--attach", help="Interactive: type into the serial console (Ctrl-] leaves)")
    ] = False,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Print the log, then follow it live")
    ] = False,
) -> None:
    """Print the server's serial console log, follow it, or attach to the console."""
    from cli import console as term

    if attach_ and follow_:
        raise CliError("--attach and --follow do not go together")
    s = stub()
    inst = find(s, server)
    if attach_:
        term.attach(s, inst.id, inst.name)
    elif follow_:
        term.follow(s, inst.id, 0)
    else:
        typer.echo(s.GetConsoleOutput(pb.GetConsoleOutputRequest(id=inst.id, tail_lines=lines)).output)


@app.command()
def snapshot(
    server: ServerArg,
    name: Annotated[str, typer.Option(help="Name of the new image")],
    wait_: Annotated[
        bool, typer.Option("--wait", help="Wait until the image is active (uploaded) or killed")
    ] = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Save the server's disk as a new image (uploaded by its node)."""
    from cli.commands import image as image_cmd
    from kumo.v1 import image_pb2 as ipb

    s = stub()
    inst = find(s, server)
    resp = s.CreateInstanceSnapshot(pb.CreateInstanceSnapshotRequest(id=inst.id, name=name))
    if not wait_:
        typer.echo(
            f"snapshot of {inst.name} is image {name} ({resp.image_id}); it turns active when uploaded"
        )
        return
    images = image_cmd.stub()
    image = settle(
        "image",
        images.GetImage(ipb.GetImageRequest(id=resp.image_id)),
        lambda i: images.GetImage(ipb.GetImageRequest(id=i.id)),
        lambda i: i.status in (ipb.IMAGE_STATUS_ACTIVE, ipb.IMAGE_STATUS_KILLED),
        ipb.IMAGE_STATUS_KILLED,
        label=lambda i: enum_text(ipb.ImageStatus.DESCRIPTOR, i.status),
        failed=lambda i: (
            f"snapshot image {i.name} ({i.id}) was killed: {i.status_reason or 'no reason given'}"
        ),
        state=lambda i: i.status,
        timeout=timeout,
        interval=1,
    )
    emit(image, output, image_cmd.DETAIL, column)


@event_app.command("list")
def event_list(
    server: str,
    action: event_cmd.ActionOpt = None,
    since: event_cmd.SinceOpt = None,
    until: event_cmd.UntilOpt = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List a server's events, oldest first (as OpenStack's server event list)."""
    from kumo.v1 import event_pb2

    inst = find(stub(), server)
    req = event_pb2.ListEventsRequest(
        page_size=PAGE_SIZE, resource_type="instance", resource_id=inst.id, action=action or ""
    )
    event_cmd.show_events(req, since, until, output, column)


@migration_app.command("cancel")
def migration_cancel(
    server: ServerArg,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Cancel a server's migration or resize under way: a live migration's copy is aborted
    (admin), a cold migration (admin) or resize still stopping on its node is reverted; the
    guest stays where it was. --wait: until the move has ended."""
    s = stub()
    inst = s.CancelMigration(pb.CancelMigrationRequest(name=find(s, server).id))
    moving = (pb.INSTANCE_STATE_MIGRATING, pb.INSTANCE_STATE_RESIZING)
    if wait_:
        inst = wait(s, inst, lambda x: x.state not in moving, timeout)
    emit(inst, output, DETAIL, column)
