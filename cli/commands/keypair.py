"""kumo keypair create | import | list | show | delete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.client import PAGE_SIZE, list_all, resolve
from cli.commands.flavor import stub
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from kumo.v1 import compute_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [("id", "id"), ("name", "name"), ("fingerprint", "fingerprint")]
DETAIL = [*COLUMNS, ("public key", "public_key"), ("created", "create_time")]


def find(s, ref: str) -> pb.Keypair:  # type: ignore[no-untyped-def]
    return resolve(
        "keypair",
        ref,
        lambda i: s.GetKeypair(pb.GetKeypairRequest(id=i)),
        lambda n: list(s.ListKeypairs(pb.ListKeypairsRequest(name=n)).keypairs),
    )


@app.command()
def create(
    name: str,
    private_key_file: Annotated[
        Path | None, typer.Option("--private-key-file", help="Write the new private key here (mode 0600)")
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Have the server make an ed25519 keypair; the private key is shown (or saved) once."""
    if private_key_file is not None and private_key_file.exists():
        raise CliError(f"{private_key_file} exists; not overwriting a private key")
    kp = stub().CreateKeypair(pb.CreateKeypairRequest(keypair=pb.Keypair(name=name)))
    if private_key_file is not None:
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(kp.private_key)
        kp.private_key = ""
        typer.echo(f"private key written to {private_key_file}", err=True)
    emit(kp, output, [*DETAIL, ("private key", "private_key")] if kp.private_key else DETAIL, column)


@app.command("import")
def import_(
    name: str,
    public_key_file: Annotated[
        Path, typer.Option("--public-key", help="An OpenSSH public key file, e.g. ~/.ssh/id_ed25519.pub")
    ],
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Import an existing public key."""
    try:
        line = public_key_file.read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read {public_key_file}: {exc.strerror}") from None
    emit(
        stub().CreateKeypair(pb.CreateKeypairRequest(keypair=pb.Keypair(name=name, public_key=line))),
        output,
        DETAIL,
        column,
    )


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List your keypairs."""
    req = pb.ListKeypairsRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListKeypairs, req, "keypairs"), output, COLUMNS, column)


@app.command()
def show(keypair: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a keypair by name or id."""
    emit(find(stub(), keypair), output, DETAIL, column)


@app.command()
def delete(keypair: str) -> None:
    """Delete one of your keypairs."""
    s = stub()
    k = find(s, keypair)
    s.DeleteKeypair(pb.DeleteKeypairRequest(id=k.id))
    deleted("keypair", k)
