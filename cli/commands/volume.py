"""kumo volume create | list | show | set | delete | extend | attach | detach,
kumo volume snapshot create | list | show | delete, and kumo volume type
(cli/commands/volume_type.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.commands import server as server_cmd
from cli.commands import volume_type as type_cmd
from cli.completion import VolumeArg
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
from cli.waiting import DEFAULT_TIMEOUT, TimeoutOpt, WaitOpt, gone, not_found, settle
from kumo.v1 import volume_pb2 as pb
from kumo.v1 import volume_pb2_grpc

app = typer.Typer(no_args_is_help=True)
snapshot_app = typer.Typer(no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot", help="Volume snapshots: copies kept on the volume's node.")
app.add_typer(
    type_cmd.app, name="type", help="Volume types: which storage backend holds a volume (admin-defined)."
)

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("size gb", "size_gb"),
    ("state", "state"),
    ("server", "instance_id"),
    ("device", "device"),
    ("node", "node_id"),
]
DETAIL = [
    *COLUMNS,
    ("type", "volume_type_id"),
    ("bootable", "bootable"),
    ("boot", "boot"),
    ("image", "source_image_id"),
    ("snapshot", "source_snapshot_id"),
    ("description", "description"),
    ("fault", "fault"),
    ("created", "create_time"),
    ("updated", "update_time"),
]
SNAP_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("volume", "volume_id"),
    ("size gb", "size_gb"),
    ("state", "state"),
]
SNAP_DETAIL = [*SNAP_COLUMNS, ("node", "node_id"), ("description", "description"), ("fault", "fault")]
STATES = ", ".join(enum_choices(pb.VolumeState.DESCRIPTOR))
STABLE = {pb.VOLUME_STATE_AVAILABLE, pb.VOLUME_STATE_IN_USE, pb.VOLUME_STATE_ERROR}


def stub():  # type: ignore[no-untyped-def]
    return session().stub(volume_pb2_grpc.VolumeServiceStub)


def find(s, ref: str) -> pb.Volume:  # type: ignore[no-untyped-def]
    return resolve(
        "volume",
        ref,
        lambda i: s.GetVolume(pb.GetVolumeRequest(id=i)),
        lambda n: list(s.ListVolumes(pb.ListVolumesRequest(name=n)).volumes),
    )


def find_snapshot(s, ref: str) -> pb.VolumeSnapshot:  # type: ignore[no-untyped-def]
    return resolve(
        "volume snapshot",
        ref,
        lambda i: s.GetVolumeSnapshot(pb.GetVolumeSnapshotRequest(id=i)),
        lambda n: list(s.ListVolumeSnapshots(pb.ListVolumeSnapshotsRequest(name=n)).snapshots),
    )


def _show_result(
    s, vol: pb.Volume, wait_: bool, timeout: float, output: Format, column: list[str] | None
) -> None:  # type: ignore[no-untyped-def]
    """Shows the volume a change returned; with --wait, once it is no longer changing (printing each
    state it passes through)."""
    if wait_:
        vol = settle(
            "volume",
            vol,
            lambda v: s.GetVolume(pb.GetVolumeRequest(id=v.id)),
            lambda v: v.state in STABLE,
            pb.VOLUME_STATE_ERROR,
            label=lambda v: enum_text(pb.VolumeState.DESCRIPTOR, v.state),
            timeout=timeout,
        )
    emit(vol, output, DETAIL, column)


@app.command()
def create(
    name: str,
    size: Annotated[
        int, typer.Option(help="Size in GiB (0 with --image or --snapshot: just big enough)")
    ] = 0,
    image: Annotated[str | None, typer.Option(help="Start with this image's content (name or id)")] = None,
    snapshot: Annotated[
        str | None, typer.Option(help="Start with this snapshot's content (name or id)")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    type_: Annotated[str, typer.Option("--type", help="Volume type (name or id) [the default type]")] = "",
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Create a volume (on a node with room; from a snapshot: on the snapshot's node)."""
    s = stub()
    vol = pb.Volume(
        name=name, size_gb=size, description=description, source_image_id=image or "", volume_type_id=type_
    )
    if snapshot:
        vol.source_snapshot_id = find_snapshot(s, snapshot).id
    _show_result(s, s.CreateVolume(pb.CreateVolumeRequest(volume=vol)), wait_, timeout, output, column)


@app.command("list")
def list_(
    name: NameFilter = None,
    state: Annotated[str | None, typer.Option(help=f"Only volumes in this state: {STATES}")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List volumes (admins see every project's)."""
    req = pb.ListVolumesRequest(page_size=PAGE_SIZE, name=name or "")
    if state:
        req.state = parse_enum(pb.VolumeState.DESCRIPTOR, state, "--state")
    emit(list_all(stub().ListVolumes, req, "volumes"), output, COLUMNS, column)


@app.command()
def show(volume: VolumeArg, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a volume by name or id."""
    emit(find(stub(), volume), output, DETAIL, column)


@app.command("set")
def set_(
    volume: VolumeArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Rename a volume or change its description."""
    s = stub()
    changed = pb.Volume(id=find(s, volume).id)
    fields = mask(changed, name=name, description=description)
    emit(s.UpdateVolume(pb.UpdateVolumeRequest(volume=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(volume: VolumeArg, wait_: WaitOpt = False, timeout: TimeoutOpt = DEFAULT_TIMEOUT) -> None:
    """Delete a volume (not while attached or while it has snapshots)."""
    s = stub()
    vol = find(s, volume)
    s.DeleteVolume(pb.DeleteVolumeRequest(id=vol.id))
    if wait_:
        gone(
            "volume",
            vol.name,
            not_found(lambda: s.GetVolume(pb.GetVolumeRequest(id=vol.id))),
            timeout=timeout,
        )
    deleted("volume", vol)


@app.command()
def extend(
    volume: VolumeArg,
    size: Annotated[int, typer.Option(help="New size in GiB (larger than now)")],
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Grow a volume (available or in use)."""
    s = stub()
    _show_result(
        s,
        s.ExtendVolume(pb.ExtendVolumeRequest(id=find(s, volume).id, new_size_gb=size)),
        wait_,
        timeout,
        output,
        column,
    )


@app.command()
def attach(
    volume: VolumeArg,
    server: Annotated[str, typer.Argument(help="Server name or id (on the volume's node)")],
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Attach a volume to a running or stopped server."""
    s = stub()
    vol = find(s, volume)
    inst = server_cmd.find(server_cmd.stub(), server)
    _show_result(
        s,
        s.AttachVolume(pb.AttachVolumeRequest(id=vol.id, instance_id=inst.id)),
        wait_,
        timeout,
        output,
        column,
    )


@app.command()
def detach(
    volume: VolumeArg,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Detach a volume from its server (not a boot volume)."""
    s = stub()
    _show_result(
        s, s.DetachVolume(pb.DetachVolumeRequest(id=find(s, volume).id)), wait_, timeout, output, column
    )


@snapshot_app.command("create")
def snapshot_create(
    name: str,
    volume: Annotated[str, typer.Option(help="Volume name or id")],
    description: Annotated[str, typer.Option()] = "",
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Snapshot a volume (available or in use)."""
    s = stub()
    vol = find(s, volume)
    snap = s.CreateVolumeSnapshot(
        pb.CreateVolumeSnapshotRequest(
            snapshot=pb.VolumeSnapshot(name=name, volume_id=vol.id, description=description)
        )
    )
    if wait_:
        snap = settle(
            "volume snapshot",
            snap,
            lambda x: s.GetVolumeSnapshot(pb.GetVolumeSnapshotRequest(id=x.id)),
            lambda x: x.state != pb.VOLUME_SNAPSHOT_STATE_CREATING,
            pb.VOLUME_SNAPSHOT_STATE_ERROR,
            stalled=lambda _: f"volume snapshot {name} is still being made after {timeout:.0f} s",
            timeout=timeout,
        )
    emit(snap, output, SNAP_DETAIL, column)


@snapshot_app.command("list")
def snapshot_list(
    name: NameFilter = None,
    volume: Annotated[str | None, typer.Option(help="Only this volume's snapshots")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List volume snapshots."""
    s = stub()
    req = pb.ListVolumeSnapshotsRequest(
        page_size=PAGE_SIZE, name=name or "", volume_id=find(s, volume).id if volume else ""
    )
    emit(list_all(s.ListVolumeSnapshots, req, "snapshots"), output, SNAP_COLUMNS, column)


@snapshot_app.command("show")
def snapshot_show(snapshot: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a volume snapshot by name or id."""
    emit(find_snapshot(stub(), snapshot), output, SNAP_DETAIL, column)


@snapshot_app.command("delete")
def snapshot_delete(snapshot: str, wait_: WaitOpt = False, timeout: TimeoutOpt = DEFAULT_TIMEOUT) -> None:
    """Delete a volume snapshot."""
    s = stub()
    snap = find_snapshot(s, snapshot)
    s.DeleteVolumeSnapshot(pb.DeleteVolumeSnapshotRequest(id=snap.id))
    if wait_:
        absent = not_found(lambda: s.GetVolumeSnapshot(pb.GetVolumeSnapshotRequest(id=snap.id)))
        gone("volume snapshot", snap.name, absent, timeout=timeout)
    deleted("volume snapshot", snap)
