"""Domain errors. Code below the servicers raises these; the interceptor turns
them into a gRPC status with a google.rpc.ErrorInfo in one place."""

from __future__ import annotations

import grpc

ERROR_DOMAIN = "kumo.cloud"


class KumoError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(self, message: str, reason: str | None = None, **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = {k: str(v) for k, v in metadata.items()}


class InvalidArgument(KumoError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class Unauthenticated(KumoError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(KumoError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(KumoError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(KumoError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(KumoError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(KumoError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Aborted(KumoError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unavailable(KumoError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


def not_found(kind: str, ident: str) -> NotFound:
    """The one message for a missing resource, also used for other projects'."""
    reason = kind.upper().replace(" ", "_")  # "server group" -> SERVER_GROUP_NOT_FOUND
    return NotFound(f"{kind} {ident!r} not found", reason=f"{reason}_NOT_FOUND")
