"""Renders results: `-f/--format table|json|yaml|value|csv` (`-o/--output` is the same option) and
`-c/--column NAME` to pick columns. Every format starts from `to_data`, the one conversion of a
message into plain data, so tables and scripts see the same values (docs/cli.md)."""

from __future__ import annotations

import base64
import enum
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from cli.errors import CliError


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    value = "value"
    csv = "csv"


_FORMAT_HELP = "table, json, yaml, value (space-separated) or csv"
OutputOpt = Annotated[
    Format, typer.Option("--format", "-f", "--output", "-o", metavar="FORMAT", help=_FORMAT_HELP)
]
# For commands whose --format means something else (image upload's disk format).
OutputOnlyOpt = Annotated[Format, typer.Option("--output", "-o", metavar="FORMAT", help=_FORMAT_HELP)]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        "-c",
        metavar="NAME",
        help="Only this column: a table heading or a field name such as id (repeatable)",
    ),
]

Column = tuple[str, str] | tuple[str, str, Callable[[Any], str]]


# -- the one conversion ---------------------------------------------------------------------------


def _upper_snake(camel: str) -> str:
    out = []
    for i, ch in enumerate(camel):
        if ch.isupper() and i and not camel[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


_PREFIXES: dict[str, str] = {}


def _enum_prefix(desc: EnumDescriptor) -> str:
    """ImageStatus -> IMAGE_STATUS_ (buf's ENUM_VALUE_PREFIX rule), else the values' common prefix."""
    if desc.full_name not in _PREFIXES:
        names = [v.name for v in desc.values]
        prefix = _upper_snake(desc.name) + "_"
        if not all(n.startswith(prefix) for n in names):
            common = names[0] if names else ""
            for n in names[1:]:
                while not n.startswith(common):
                    common = common[:-1]
            prefix = common[: common.rfind("_") + 1]
        _PREFIXES[desc.full_name] = prefix
    return _PREFIXES[desc.full_name]


def enum_value(desc: EnumDescriptor, number: int) -> str | int | None:
    """DISK_FORMAT_QCOW2 -> "qcow2"; the zero (UNSPECIFIED) value -> None; an unknown number as is."""
    if number == 0:
        return None
    value = desc.values_by_number.get(number)
    if value is None:
        return number
    return value.name.removeprefix(_enum_prefix(desc)).lower()


def enum_text(desc: EnumDescriptor, number: int) -> str:
    """enum_value for a sentence: "" for the zero value."""
    value = enum_value(desc, number)
    return "" if value is None else str(value)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_value(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_data(value)
    return value


# How each field of a message type converts, worked out once per type: a list of a thousand
# servers would otherwise ask the descriptors the same questions a thousand times.
_PLAIN, _SCALAR, _MAP, _REPEATED, _OPTIONAL, _ENUM = range(6)
Plan = list[tuple[str, int, Any]]  # (field name, kind, its descriptor, or an enum's names by number)
_PLANS: dict[tuple[str, frozenset[str] | None], Plan] = {}


def _plan(desc: Descriptor, only: frozenset[str] | None = None) -> Plan:
    key = (desc.full_name, only)
    plan = _PLANS.get(key)
    if plan is None and only is not None:
        plan = [step for step in _plan(desc) if step[0] in only]
        _PLANS[key] = plan
    if plan is None:
        plan = []
        for field in desc.fields:
            # has_options first (as json_format does): GetOptions imports descriptor_pb2, and
            # only a map's entry type (map_entry) has options here.
            entry = field.message_type
            if entry is not None and entry.has_options and entry.GetOptions().map_entry:
                plan.append((field.name, _MAP, field.message_type.fields_by_name["value"]))
            elif field.is_repeated:
                plan.append((field.name, _REPEATED, field))
            elif field.has_presence:
                plan.append((field.name, _OPTIONAL, field))
            elif field.type == FieldDescriptor.TYPE_ENUM:
                names = {v.number: enum_value(field.enum_type, v.number) for v in field.enum_type.values}
                plan.append((field.name, _ENUM, names))
            elif field.type in (
                FieldDescriptor.TYPE_ENUM,
                FieldDescriptor.TYPE_BYTES,
                FieldDescriptor.TYPE_MESSAGE,
            ):
                plan.append((field.name, _SCALAR, field))
            else:
                plan.append((field.name, _PLAIN, field))
        _PLANS[key] = plan
    return plan


def to_data(msg: Message, only: frozenset[str] | None = None) -> Any:
    """A message as plain data for every output format: every field by its proto name in field
    order; enums lower-case without their prefix (zero: null); all integers as numbers; Timestamps
    as RFC 3339 strings, Durations as seconds, unset messages as null; bytes as base64.
    `only`: just these top-level fields (what a table's columns show: a list of a thousand
    servers need not convert the fields no column shows), converted the same way."""
    desc: Descriptor = msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Timestamp":
        return msg.ToJsonString()  # type: ignore[attr-defined]
    if desc.full_name == "google.protobuf.Duration":
        return msg.seconds + msg.nanos / 1e9  # type: ignore[attr-defined]
    if desc.full_name == "google.protobuf.FieldMask":
        return list(msg.paths)  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for name, kind, field in _plan(desc, only):
        value = getattr(msg, name)
        if kind == _PLAIN:
            out[name] = value
        elif kind == _ENUM:
            out[name] = field.get(value, value)  # as enum_value: an unknown number as is
        elif kind == _SCALAR:
            out[name] = _scalar(field, value)
        elif kind == _MAP:
            out[name] = {k: _scalar(field, v) for k, v in sorted(value.items())}
        elif kind == _REPEATED:
            out[name] = [_scalar(field, v) for v in value]
        else:  # _OPTIONAL
            out[name] = _scalar(field, value) if msg.HasField(name) else None
    return out


# -- columns and formats --------------------------------------------------------------------------


def _lookup(row: Any, path: str) -> Any:
    value = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _has(row: Any, path: str) -> bool:
    value = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", " ").replace("-", " ")


def pick_columns(columns: Sequence[Column], wanted: Sequence[str] | None, sample: Any) -> list[Column]:
    """The columns -c names, in the order given: a table heading ("ram mb"), a column's field
    ("ram_mb", "inventory.vcpus"), or any other field the result has."""
    if not wanted:
        return list(columns)
    picked: list[Column] = []
    for name in wanted:
        match = next((c for c in columns if _norm(c[0]) == _norm(name) or c[1] == name), None)
        if match is None and sample is not None and _has(sample, name):
            match = (name, name)
        if match is None:
            known = ", ".join(c[1] for c in columns) or "the fields of -f json"
            raise CliError(f"unknown column {name!r}: use a field name ({known})")
        picked.append(match)
    return picked


def _cell(row: dict[str, Any], col: Column) -> str:
    """A table cell: the column's formatter if it has one; yes/no, lists joined."""
    path = col[1]
    value = row.get(path) if "." not in path else _lookup(row, path)
    if len(col) == 3:
        return col[2](value)  # type: ignore[misc]
    if value is None:
        return ""
    if type(value) is str:  # most cells: first, a table of a thousand rows asks 8,000 times
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value) if value else ""
    return str(value)


def _plain(value: Any) -> str:
    """A value/csv field: the data itself (no units, no yes/no): true/false, lists comma-joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def deleted(kind: str, item: Any) -> None:
    """What a delete command prints: "deleted <kind> <name> (<id>)"."""
    typer.echo(f"deleted {kind} {item.name} ({item.id})")


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _print_plain_table(headers: list[str], cells: list[list[str]]) -> bool:
    """Prints a list's table as rich lays one out with box=None (one space of
    padding each side of a cell), without rich: rich takes seconds for a
    thousand rows. False (nothing printed) when rich must do it: a cell with a
    line break, or a terminal too narrow for the table (rich wraps it)."""
    if any("\n" in cell for line in cells for cell in line):
        return False
    # All ASCII (the usual list): a cell's width is its length, and str.ljust pads it.
    plain = all(cell.isascii() for line in (headers, *cells) for cell in line)
    width = len if plain else _width
    widths = [max(map(width, column)) for column in zip(headers, *cells, strict=True)]
    tty = sys.stdout.isatty()
    if tty:
        import shutil

        if sum(w + 2 for w in widths) > shutil.get_terminal_size().columns:
            return False

    def render(line: list[str]) -> str:
        if plain:
            return f" {'  '.join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))} "
        return "".join(f" {cell}{' ' * (w - _width(cell))} " for cell, w in zip(line, widths, strict=True))

    head = render(headers)
    out = [f"\x1b[1m{head}\x1b[0m" if tty else head, *(render(line) for line in cells)]
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
    return True


def emit(
    data: Message | Sequence[Message] | dict[str, Any],
    fmt: Format,
    columns: Sequence[Column],
    wanted: Sequence[str] | None = None,
) -> None:
    """Prints a result (one message, or a list) in `fmt`. `columns` are the table's; `wanted` (the
    command's -c) narrows every format to those columns."""
    many = isinstance(data, list | tuple)
    items = list(data if many else [data])  # type: ignore[arg-type]
    sample = to_data(items[0]) if items and isinstance(items[0], Message) else (items or [None])[0]
    wanted = list(wanted or [])
    cols = pick_columns(columns, wanted, sample)
    if not cols and sample is not None and fmt in (Format.value, Format.csv):
        cols = [(k, k) for k in sample]
    # A table, value or csv shows only its columns' fields: convert just those.
    only = None if fmt in (Format.json, Format.yaml) else frozenset(c[1].split(".")[0] for c in cols)
    rows = [to_data(m, only) if isinstance(m, Message) else m for m in items]
    if fmt in (Format.json, Format.yaml):
        if wanted:
            rows = [{c[1]: _lookup(r, c[1]) for c in cols} for r in rows]
        out = rows if many else rows[0]
        if fmt is Format.json:
            typer.echo(json.dumps(out, indent=2))
        else:
            import yaml  # only -o yaml needs it (CLI start-up time)

            typer.echo(yaml.safe_dump(out, sort_keys=False).rstrip())
        return
    if fmt is Format.value:
        if many:
            for r in rows:
                typer.echo(" ".join(_plain(_lookup(r, c[1])) for c in cols))
        else:
            for c in cols:
                typer.echo(_plain(_lookup(rows[0], c[1])))
        return
    if fmt is Format.csv:
        import csv  # only -f csv needs it

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c[1] for c in cols])
        for r in rows:
            writer.writerow([_plain(_lookup(r, c[1])) for c in cols])
        typer.echo(buf.getvalue(), nl=False)
        return
    if many:
        cells = [[_cell(row, c) for c in cols] for row in rows]
        if _print_plain_table([c[0] for c in cols], cells):
            return
    from rich.console import Console  # only here: importing rich costs every command start-up
    from rich.table import Table

    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)
    if many:
        table = Table(*[c[0] for c in cols], box=None, header_style="bold")
        for line in cells:
            table.add_row(*line)
        console.print(table)
    else:
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for c in cols:
            table.add_row(c[0], _cell(rows[0], c))
        console.print(table)


def enum_choices(desc: EnumDescriptor) -> list[str]:
    """The labels a filter option accepts: every value but the zero one, as enum_value spells them."""
    return [str(enum_value(desc, v.number)) for v in desc.values if v.number != 0]


def parse_enum(desc: EnumDescriptor, text: str, option: str) -> int:
    """A filter option's label ("active", "in-use", "IN_USE") -> its enum number."""
    wanted = text.strip().lower().replace("-", "_")
    for v in desc.values:
        if v.number and enum_value(desc, v.number) == wanted:
            return v.number
    raise CliError(f"{option} {text!r}: use one of {', '.join(enum_choices(desc))}")


NameFilter = Annotated[
    str | None, typer.Option("--name", metavar="NAME", help="Only those with exactly this name")
]
