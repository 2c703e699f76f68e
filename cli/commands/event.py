"""kumo event list, and `kumo server event list SERVER` (server.py) on top of it."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Annotated

import typer

from cli.client import PAGE_SIZE, list_all, session
from cli.errors import CliError
from cli.output import ColumnOpt, Format, OutputOpt, emit

if TYPE_CHECKING:
    from google.protobuf import timestamp_pb2

    from kumo.v1 import event_pb2 as pb

app = typer.Typer(no_args_is_help=True)

COLUMNS = [
    ("time", "event_time"),
    ("resource type", "resource_type"),
    ("resource id", "resource_id"),
    ("action", "action"),
    ("result", "result"),
    ("reason", "error_reason"),
    ("user", "user_name"),
    ("request id", "request_id"),
    ("message", "message"),
]
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}

SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Only events at or after: RFC 3339 time, or an age (30m, 2h, 7d)."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only events before: RFC 3339 time, or an age.")
]
ActionOpt = Annotated[
    str | None, typer.Option("--action", help="Only this action (create, start, active, ...).")
]


def parse_time(text: str, option: str) -> timestamp_pb2.Timestamp:
    """An RFC 3339 time (no zone: UTC) or an age before now."""
    now = datetime.datetime.now(datetime.UTC)
    if m := _AGO.match(text.strip()):
        when = now - datetime.timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
    else:
        try:
            when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f"{option}: {text!r} is neither an RFC 3339 time nor an age like 30m") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
    from google.protobuf import timestamp_pb2  # here: `server list` imports this module

    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def show_events(
    req: pb.ListEventsRequest,
    since: str | None,
    until: str | None,
    output: Format,
    column: list[str] | None,
) -> None:
    if since:
        req.start_time.CopyFrom(parse_time(since, "--since"))
    if until:
        req.end_time.CopyFrom(parse_time(until, "--until"))
    from kumo.v1 import event_pb2_grpc

    events = session().stub(event_pb2_grpc.EventServiceStub)
    emit(list_all(events.ListEvents, req, "events"), output, COLUMNS, column)


@app.command("list")
def list_(
    resource: Annotated[
        str | None, typer.Option(help="Only events about TYPE or TYPE/ID (e.g. instance, node/ID).")
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Only this project's events (a project id; admins).")
    ] = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """List events, oldest first (members see their project's; admins every project's)."""
    from kumo.v1 import event_pb2 as pb  # here: `kumo server list` imports this module (start-up time)

    req = pb.ListEventsRequest(page_size=PAGE_SIZE, action=action or "", project_id=project or "")
    if resource:
        kind, _, ident = resource.partition("/")
        req.resource_type, req.resource_id = kind, ident
    show_events(req, since, until, output, column)
