"""kumo profile list | delete: the logins stored in ~/.config/kumo/ (kumo login --profile NAME)."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from cli import config
from cli.errors import CliError
from cli.output import ColumnOpt, Format, OutputOpt, emit

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("name", "name"),
    ("in use", "in_use"),
    ("endpoint", "endpoint"),
    ("user", "user"),
    ("project", "project"),
    ("token expires", "token_expire"),
    ("logged in", "logged_in"),
]


def _logged_in(s: config.Stored) -> bool:
    if not s.token or not s.token_expire:
        return False
    try:
        expire = datetime.datetime.fromisoformat(s.token_expire.replace("Z", "+00:00"))
    except ValueError:
        return False
    return expire > datetime.datetime.now(datetime.UTC)


@app.command("list")
def list_(output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List the stored profiles (no tokens shown)."""
    current = config.profile_name()
    rows = [
        {
            "name": name,
            "in_use": name == current,
            "endpoint": s.endpoint,
            "user": s.user,
            "project": s.project,
            "token_expire": s.token_expire or None,
            "logged_in": _logged_in(s),
        }
        for name, s in config.profiles().items()
    ]
    emit(rows, output, COLUMNS, column)


@app.command()
def delete(name: Annotated[str, typer.Argument(help="The profile to forget")]) -> None:
    """Forget a named profile (its token is not revoked: run 'kumo --profile NAME logout' first)."""
    if not config.forget(name):
        raise CliError(f"no profile {name!r} (the default profile is only logged out of)")
    typer.echo(f"deleted profile {name}")
