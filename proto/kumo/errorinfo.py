"""Reading the google.rpc.ErrorInfo the controller attaches to every error.

Programs branch on its reason (UPPER_SNAKE_CASE, listed in docs/api.md), never
on message text; kumo-noded, the tests and the benchmarks all read it here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from google.rpc import error_details_pb2


def _info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    # Imported here, when an error is read: a command that succeeds never loads them.
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except Exception:
        return None
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def error_reason(exc: grpc.RpcError) -> str:
    """The ErrorInfo reason carried in the status details, or "" when there is none
    (or the details cannot be read, e.g. an error raised on this side of the channel)."""
    info = _info(exc)
    return info.reason if info is not None else ""


def error_metadata(exc: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo metadata (e.g. a quota refusal's resource, limit, used, requested)."""
    info = _info(exc)
    return dict(info.metadata) if info is not None else {}


def describe_rpc_error(exc: grpc.RpcError) -> str:
    """The one line a person is shown for a failed call (the CLI prints it after
    "error: ", the dashboard in its error box): the server's message and its code."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the controller: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the controller did not answer in time"
    name = code.name if code is not None else "ERROR"
    return f"{details} [{name}]"
