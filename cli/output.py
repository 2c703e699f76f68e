"""Renders results as a table (default), JSON or YAML: `-o table|json|yaml`."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="table, json or yaml")]

Column = tuple[str, str] | tuple[str, str, Callable[[Any], str]]


def to_dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def enum_label(prefix: str) -> Callable[[Any], str]:
    """ROLE_ADMIN -> admin, for table cells."""
    return lambda v: str(v).removeprefix(prefix).lower()


def _cell(row: dict[str, Any], col: Column) -> str:
    value: Any = row
    for part in col[1].split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    if len(col) == 3:
        value = col[2](value)  # type: ignore[misc]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value) if value else ""
    return str(value)


def deleted(kind: str, item: Any) -> None:
    """What a delete command prints: "deleted <kind> <name> (<id>)"."""
    typer.echo(f"deleted {kind} {item.name} ({item.id})")


def emit(data: Message | Sequence[Message] | dict[str, Any], fmt: Format, columns: Sequence[Column]) -> None:
    many = isinstance(data, list | tuple)
    rows = [to_dict(m) if isinstance(m, Message) else m for m in (data if many else [data])]  # type: ignore[union-attr]
    if fmt is Format.json:
        typer.echo(json.dumps(rows if many else rows[0], indent=2))
        return
    if fmt is Format.yaml:
        typer.echo(yaml.safe_dump(rows if many else rows[0], sort_keys=False).rstrip())
        return
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)
    if many:
        table = Table(*[c[0] for c in columns], box=None, header_style="bold")
        for row in rows:
            table.add_row(*[_cell(row, c) for c in columns])
        console.print(table)
    else:
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for c in columns:
            table.add_row(c[0], _cell(rows[0], c))
        console.print(table)
