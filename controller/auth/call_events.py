"""The event of every state-changing API call, recorded in one place: the
interceptor calls `CallEvents.after` once the call has answered. What the
event says comes from the RPC itself: the verb and resource from the method
name (StartInstance: start, instance), the resource id from the answer or the
request, the project from the answer or the caller."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.message import Message

from controller.auth.principal import Principal
from controller.domain.events import OK, Cause, EventLog, Outcome
from controller.errors import KumoError

# Methods that only read: never an event.
READ_VERBS = ("Get", "List", "Download")
_WORDS = re.compile(r"[A-Z][a-z0-9]*")
MAX_MESSAGE = 1000


def is_change(method: str) -> bool:
    return not method.rsplit("/", 1)[-1].startswith(READ_VERBS)


def verb_and_type(method: str) -> tuple[str, str]:
    """ "/kumo.v1.ComputeService/CreateInstanceSnapshot" -> ("create", "instance_snapshot")."""
    words = [w.lower() for w in _WORDS.findall(method.rsplit("/", 1)[-1])]
    return (words[0] if words else "call"), "_".join(words[1:]) or "resource"


def _field(msg: Any, name: str) -> str:
    if isinstance(msg, Message) and name in msg.DESCRIPTOR.fields_by_name:
        value = getattr(msg, name)
        return value if isinstance(value, str) else ""
    return ""


class CallEvents:
    """Turns a finished call into `EventLog.record_call` (which never raises)."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    def after(
        self,
        method: str,
        caller: Principal,
        request: Any,
        response: Any,
        error: KumoError | None,
        metadata: dict[str, str],
    ) -> None:
        if not is_change(method):
            return
        action, resource_type = verb_and_type(method)
        resource_id = (
            _field(response, "id")
            or _field(request, "id")
            or _field(request, f"{resource_type}_id")
            or _field(response, f"{resource_type}_id")
        )
        project_id = _field(response, "project_id") or caller.project_id
        request_id = _field(request, "request_id") or metadata.get("x-request-id", "")
        outcome = OK if error is None else Outcome.of(error)
        message = "" if error is None else error.message[:MAX_MESSAGE]
        self.events.record_call(
            resource_type,
            resource_id,
            action,
            project_id,
            Cause.of(caller, request_id),
            outcome,
            message,
            method,
        )
