"""kumo image upload | list | show | download | set | delete."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer

from cli import transfer
from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.commands import project as project_cmd
from cli.completion import ImageArg
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOnlyOpt, OutputOpt, deleted, emit, enum_text
from cli.updates import mask
from kumo.client import Client
from kumo.ids import is_uuid
from kumo.v1 import image_pb2 as pb
from kumo.v1 import image_pb2_grpc

app = typer.Typer(no_args_is_help=True)

FORMATS = {"qcow2": pb.DISK_FORMAT_QCOW2, "raw": pb.DISK_FORMAT_RAW}
STATUSES = {
    "queued": pb.IMAGE_STATUS_QUEUED,
    "saving": pb.IMAGE_STATUS_SAVING,
    "active": pb.IMAGE_STATUS_ACTIVE,
    "killed": pb.IMAGE_STATUS_KILLED,
    "deleted": pb.IMAGE_STATUS_DELETED,
}


def human(value: Any) -> str:
    n = int(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(value)


COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("format", "disk_format"),
    ("visibility", "visibility"),
    ("size", "size_bytes", human),
]
DETAIL = [
    *COLUMNS,
    ("reason", "status_reason"),
    ("virtual size", "virtual_size_bytes", human),
    ("sha256", "checksum_sha256"),
    ("project", "project_id"),
    ("min disk gb", "min_disk_gb"),
    ("min ram mb", "min_ram_mb"),
    ("protected", "protected"),
    ("properties", "properties"),
    ("created", "create_time"),
    ("updated", "update_time"),
]


def _session_stub() -> tuple[Client, Any]:
    s = session()
    return s, s.stub(image_pb2_grpc.ImageServiceStub)


def stub():  # type: ignore[no-untyped-def]
    return _session_stub()[1]


def find(s, ref: str) -> pb.Image:  # type: ignore[no-untyped-def]
    return resolve(
        "image",
        ref,
        lambda i: s.GetImage(pb.GetImageRequest(id=i)),
        lambda n: list(s.ListImages(pb.ListImagesRequest(name=n)).images),
    )


def _properties(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--property wants KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@contextmanager
def _progress(label: str, total: int, start: int = 0) -> Iterator[Any]:
    """A progress bar (bytes, throughput, time left) on stderr; on a non-terminal
    a one-line summary at the end instead."""
    from rich.console import Console  # here, not at import: rich costs every command start-up
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    began = time.monotonic()
    moved = [0]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total, completed=start)

        def advance(n: int) -> None:
            moved[0] += n
            bar.update(task, advance=n)

        yield advance
    if not console.is_terminal:
        took = max(time.monotonic() - began, 1e-6)
        console.print(f"{label}: {human(moved[0])} in {took:.1f} s ({moved[0] / took / 1e6:.1f} MB/s)")


def _rpc_message(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{details} [{code.name if code else 'ERROR'}]"


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(help="The disk image file")],
    name: Annotated[str | None, typer.Option(help="Image name (default: the file name)")] = None,
    disk_format: Annotated[str | None, typer.Option("--format", help="qcow2 or raw")] = None,
    public: Annotated[bool, typer.Option("--public", help="Visible to every project")] = False,
    protected: Annotated[bool, typer.Option("--protected", help="Refuse deletion until unset")] = False,
    min_disk: Annotated[int, typer.Option(help="Smallest root disk, GiB")] = 0,
    min_ram: Annotated[int, typer.Option(help="Smallest RAM, MiB")] = 0,
    prop: Annotated[list[str] | None, typer.Option("--property", help="KEY=VALUE, repeatable")] = None,
    sha256: Annotated[
        str, typer.Option(help="Expected sha256 of the file; the controller refuses other bytes")
    ] = "",
    image: Annotated[
        str | None, typer.Option("--image", help="Fill this existing queued image instead of creating one")
    ] = None,
    output: OutputOnlyOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Upload a disk image (streamed, verified and format-checked by the controller)."""
    try:
        size = file.stat().st_size
        with open(file, "rb"):
            pass
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    if not file.is_file():
        raise CliError(f"{file} is not a regular file")
    s, images = _session_stub()
    if image:
        target = find(images, image)
    else:
        if disk_format not in FORMATS:
            raise CliError("--format is required: qcow2 or raw")
        target = images.CreateImage(
            pb.CreateImageRequest(
                image=pb.Image(
                    name=name or file.name,
                    disk_format=FORMATS[disk_format],
                    visibility=pb.IMAGE_VISIBILITY_PUBLIC if public else pb.IMAGE_VISIBILITY_PRIVATE,
                    protected=protected,
                    min_disk_gb=min_disk,
                    min_ram_mb=min_ram,
                    properties=_properties(prop),
                ),
                request_id=str(uuid.uuid4()),
            )
        )
    try:
        with _progress(f"uploading {target.name}", size) as advance:
            done, local_sha = transfer.upload(
                s.channel, s.metadata, target.id, file, sha256.strip().lower(), progress=advance
            )
    except (grpc.RpcError, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else _rpc_message(exc)
        try:
            now = images.GetImage(pb.GetImageRequest(id=target.id))
            state = enum_text(pb.ImageStatus.DESCRIPTOR, now.status)
        except grpc.RpcError:
            state = "unknown"
        hint = (
            f"retry with 'kumo image upload {file} --image {target.id}' or delete it"
            if state in ("queued", "saving")
            else f"delete it with 'kumo image delete {target.id}'"
        )
        raise CliError(f"upload failed: {why}; image {target.id} is {state}: {hint}") from None
    if done.checksum_sha256 != local_sha:
        raise CliError(
            f"the controller stored sha256 {done.checksum_sha256} but the file read as {local_sha}; "
            f"delete image {done.id} and upload again"
        )
    emit(done, output, DETAIL, column)


@app.command("list")
def list_(
    name: NameFilter = None,
    visibility: Annotated[str | None, typer.Option(help="public or private")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, saving, active, killed (deleted: admins)")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Only images this project owns (name or id)")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List your project's images and the public ones."""
    req = pb.ListImagesRequest(page_size=PAGE_SIZE, name=name or "")
    if visibility:
        vis = {"public": pb.IMAGE_VISIBILITY_PUBLIC, "private": pb.IMAGE_VISIBILITY_PRIVATE}.get(visibility)
        if vis is None:
            raise CliError("--visibility is public or private")
        req.visibility = vis
    if status:
        if status not in STATUSES:
            raise CliError(f"--status is one of {', '.join(STATUSES)}")
        req.status = STATUSES[status]
    if project:
        req.project_id = project if is_uuid(project) else project_cmd.find(project_cmd.stub(), project).id
    emit(list_all(stub().ListImages, req, "images"), output, COLUMNS, column)


@app.command()
def show(image: ImageArg, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show an image by name or id."""
    emit(find(stub(), image), output, DETAIL, column)


def _hash_file(path: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h


@app.command()
def download(
    image: ImageArg,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Where to write (default ./NAME.FORMAT; - for stdout)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue a broken download from FILE.part")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists")] = False,
) -> None:
    """Download an image's data, verified against its sha256. A broken download
    leaves FILE.part; running the command again resumes it."""
    s, images = _session_stub()
    found = find(images, image)
    if found.status != pb.IMAGE_STATUS_ACTIVE:
        state = enum_text(pb.ImageStatus.DESCRIPTOR, found.status)
        raise CliError(f"image {found.name} ({found.id}) is {state}; only active images have data")
    if str(file) == "-":
        got = transfer.download(s.channel, s.metadata, found.id, sys.stdout.buffer.write)
        sys.stdout.buffer.flush()
        if got != found.size_bytes:
            raise CliError(f"received {got} of {found.size_bytes} bytes")
        return
    fmt = "qcow2" if found.disk_format == pb.DISK_FORMAT_QCOW2 else "raw"
    target = file or Path(found.name if found.name.endswith(f".{fmt}") else f"{found.name}.{fmt}")
    if target.exists() and not force:
        raise CliError(f"{target} exists; use --force to overwrite it")
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if resume and part.exists() else 0
    if offset > found.size_bytes:
        offset = 0
    digest = _hash_file(part) if offset else hashlib.sha256()
    mode = "ab" if offset else "wb"
    try:
        with (
            open(part, mode) as out,
            _progress(f"downloading {found.name}", found.size_bytes, offset) as advance,
        ):

            def sink(data: memoryview) -> None:
                out.write(data)
                digest.update(data)

            if offset:
                typer.echo(f"resuming {part} at byte {offset}", err=True)
            transfer.download(s.channel, s.metadata, found.id, sink, offset=offset, progress=advance)
    except OSError as exc:
        raise CliError(f"cannot write {part}: {exc.strerror}") from None
    except (grpc.RpcError, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else _rpc_message(exc)
        have = part.stat().st_size if part.exists() else 0
        raise CliError(
            f"download broken at byte {have}: {why}; run the same command again to resume"
        ) from None
    if digest.hexdigest() != found.checksum_sha256:
        part.unlink(missing_ok=True)
        raise CliError(
            f"downloaded data has sha256 {digest.hexdigest()}, the image says {found.checksum_sha256}; "
            "the partial file was removed, download again"
        )
    os.replace(part, target)
    typer.echo(f"saved {found.name} ({human(found.size_bytes)}, sha256 {found.checksum_sha256}) to {target}")


@app.command()
def set(
    image: ImageArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    public: Annotated[bool | None, typer.Option("--public/--private", help="Visibility")] = None,
    protected: Annotated[
        bool | None, typer.Option("--protected/--unprotected", help="Refuse deletion or not")
    ] = None,
    min_disk: Annotated[int | None, typer.Option(help="Smallest root disk, GiB")] = None,
    min_ram: Annotated[int | None, typer.Option(help="Smallest RAM, MiB")] = None,
    prop: Annotated[list[str] | None, typer.Option("--property", help="KEY=VALUE to set, repeatable")] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset-property", help="KEY to remove, repeatable")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Change an image's name, visibility, protection, minimums or properties."""
    images = stub()
    changed = pb.Image(id=find(images, image).id)
    visibility = None
    if public is not None:
        visibility = pb.IMAGE_VISIBILITY_PUBLIC if public else pb.IMAGE_VISIBILITY_PRIVATE
    fields = mask(
        changed,
        name=name,
        visibility=visibility,
        protected=protected,
        min_disk_gb=min_disk,
        min_ram_mb=min_ram,
    )
    for key, value in _properties(prop).items():
        changed.properties[key] = value
        fields.paths.append(f"properties.{key}")
    for key in unset or []:
        if key in changed.properties:
            raise CliError(f"--property and --unset-property both name {key!r}")
        fields.paths.append(f"properties.{key}")
    if not fields.paths:
        raise CliError("nothing to change: give at least one option (see --help)")
    emit(images.UpdateImage(pb.UpdateImageRequest(image=changed, update_mask=fields)), output, DETAIL, column)


@app.command()
def delete(images_: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Names or ids")]) -> None:
    """Delete images (their data goes when no other image has the same content)."""
    images = stub()
    for ref in images_:
        found = find(images, ref)
        images.DeleteImage(pb.DeleteImageRequest(id=found.id))
        deleted("image", found)
