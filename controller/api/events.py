"""EventService: validate ListEvents, call controller.domain.events, build
the page. The API-call events themselves are written by the interceptor
(controller/auth/call_events.py)."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db.events import EventQuery
from controller.db.models import Event
from controller.domain.events import EventLog
from controller.errors import InvalidArgument
from kumo.v1 import event_pb2 as pb
from kumo.v1 import event_pb2_grpc

# Timestamps kumo accepts: 0001-01-01 .. 9999-12-31 (google.protobuf.Timestamp's range).
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799


def event_pb(row: Event) -> pb.Event:
    return pb.Event(
        id=row.id,
        event_time=ts(row.time),
        request_id=row.request_id,
        user_id=row.user_id,
        user_name=row.user_name,
        project_id=row.project_id,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        action=row.action,
        result=pb.EVENT_RESULT_OK if row.ok else pb.EVENT_RESULT_ERROR,
        error_code=row.error_code,
        error_reason=row.error_reason,
        message=row.message,
        method=row.method,
    )


def seconds(value: timestamp_pb2.Timestamp, field: str) -> float:
    """A timestamp as seconds since the epoch (0.0 when unset)."""
    if not (MIN_SECONDS <= value.seconds <= MAX_SECONDS) or not (0 <= value.nanos < 1_000_000_000):
        raise InvalidArgument(f"{field} is not a valid timestamp")
    return value.seconds + value.nanos / 1e9


class EventServicer(event_pb2_grpc.EventServiceServicer):
    def __init__(self, events: EventLog) -> None:
        self.events = events

    def ListEvents(self, request: pb.ListEventsRequest, context: CallContext) -> pb.ListEventsResponse:
        query = EventQuery(
            v.optional_id(request.project_id, "project_id") or None,
            v.text(request.resource_type, "resource_type", 64),
            v.text(request.resource_id, "resource_id", 64),
            v.text(request.action, "action", 64),
            seconds(request.start_time, "start_time") if request.HasField("start_time") else 0.0,
            seconds(request.end_time, "end_time") if request.HasField("end_time") else 0.0,
        )
        assert context.principal is not None
        rows, token = self.events.list(context.principal, query, request.page_size, request.page_token)
        return pb.ListEventsResponse(events=[event_pb(r) for r in rows], next_page_token=token)
