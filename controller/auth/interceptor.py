"""The one server interceptor: authenticates the caller, applies the policy
table, hands the principal to the servicer, and turns domain errors into gRPC
statuses (with google.rpc.ErrorInfo) in one place."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from controller.auth.decoding import LogLimiter, checked, checked_stream, tolerant
from controller.auth.policy import OPEN_PREFIXES, POLICY, Rule
from controller.auth.principal import NodePrincipal, Principal
from controller.db.database import as_conflict
from controller.errors import ERROR_DOMAIN, KumoError, PermissionDenied, Unauthenticated

log = logging.getLogger("kumo.api")

TokenAuthenticator = Callable[[str], Principal]
NodeAuthenticator = Callable[[grpc.ServicerContext], NodePrincipal]
# Told of every answered RPC: (full method name, status code name, seconds).
RpcObserver = Callable[[str, str, float], None]


def ignore_rpc(_method: str, _code: str, _seconds: float) -> None:
    return None


def status_code_of(exc: BaseException, ctx: Any) -> str:
    """The status code name an RPC that raised `exc` answers with."""
    exc = as_conflict(exc) or exc
    if isinstance(exc, KumoError):
        return exc.code.name
    code = ctx.code() if callable(getattr(ctx, "code", None)) else None
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name  # the servicer aborted by itself
    if type(exc) is NotImplementedError:
        return "UNIMPLEMENTED"
    return "INTERNAL"


class CallContext:
    """The servicer's context: the gRPC context plus who is calling."""

    __slots__ = ("_ctx", "node", "principal")

    def __init__(self, ctx: grpc.ServicerContext, principal: Principal | None, node: NodePrincipal | None):
        self._ctx = ctx
        self.principal = principal
        self.node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def status_for(error: KumoError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(
        status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    )


def log_refusal(limiter: LogLimiter, method: str, error: KumoError) -> None:
    """Client mistakes worth a line (refusals, undecodable requests), at info
    and rate-limited: any caller can repeat them at will."""
    if isinstance(error, Unauthenticated | PermissionDenied) or error.reason == "MALFORMED_REQUEST":
        limiter.log(
            log, logging.INFO, "rpc refused", method=method, code=error.code.name, reason=error.reason
        )


def _bearer(metadata: dict[str, str]) -> str:
    value = metadata.get("authorization", "")
    if not value:
        raise Unauthenticated(
            "no token: send 'authorization: Bearer <token>' (get one with Authenticate)",
            reason="TOKEN_MISSING",
        )
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <token>'", reason="TOKEN_INVALID")
    return token.strip()


class ApiInterceptor(grpc.ServerInterceptor):
    def __init__(
        self,
        limiter: LogLimiter,
        token_auth: TokenAuthenticator,
        node_auth: NodeAuthenticator | None = None,
        policy: dict[str, Rule] = POLICY,
        node_port: bool = False,
        observe: RpcObserver = ignore_rpc,
    ) -> None:
        self._observe = observe
        self._token_auth = token_auth
        self._node_auth = node_auth
        self._policy = policy
        self._node_port = node_port
        # What client mistakes log (refusals, undecodable requests) is rate-limited.
        self._limiter = limiter

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        is_open = method.startswith(OPEN_PREFIXES)  # health and reflection: no token
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)}
        rule = self._policy.get(method)

        if handler.request_streaming and handler.response_streaming:
            behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        else:
            behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler

        raw = handler.request_deserializer is None  # UploadImageData: the servicer decodes the bytes

        def wrapped(request: Any, ctx: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                if not raw:
                    request = checked_stream(request) if handler.request_streaming else checked(request)
                call_ctx = ctx if is_open else self._authorize(method, rule, metadata, ctx)
                result = behavior(request, call_ctx)
                if handler.response_streaming:  # observed when the stream ends
                    return self._guard_stream(method, result, ctx, start)
                self._observe(method, "OK", time.perf_counter() - start)
                return result
            except Exception as exc:
                self._observe(method, status_code_of(exc, ctx), time.perf_counter() - start)
                self._fail(method, exc, ctx)
            finally:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "rpc",
                        extra={
                            "method": method,
                            "ms": round((time.perf_counter() - start) * 1000, 2),
                        },
                    )

        return factory(
            wrapped,
            request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _authorize(self, method: str, rule: Rule | None, metadata: dict[str, str], ctx) -> CallContext:  # type: ignore[no-untyped-def]
        if rule is None:
            log.error("rpc has no policy entry; refusing", extra={"method": method})
            raise PermissionDenied(f"{method} is not allowed by policy", reason="NO_POLICY")
        if rule is Rule.NODE:
            if not self._node_port or self._node_auth is None:
                raise Unauthenticated("node RPCs are served on the node port with mutual TLS only")
            return CallContext(ctx, None, self._node_auth(ctx))
        if self._node_port:
            raise PermissionDenied("the node port serves node RPCs only", reason="WRONG_PORT")
        if rule is Rule.OPEN:
            return CallContext(ctx, None, None)
        principal = self._token_auth(_bearer(metadata))
        need = rule.min_role
        assert need is not None
        if principal.role < need:
            raise PermissionDenied(
                f"{method.rsplit('/', 1)[-1]} needs the {need.name.lower()} role; "
                f"you are {principal.role.name.lower()} on project {principal.project_name!r}",
                reason="ROLE_REQUIRED",
                required_role=need.name.lower(),
            )
        return CallContext(ctx, principal, None)

    def _guard_stream(self, method: str, responses: Iterator[Any], ctx, start: float) -> Iterator[Any]:  # type: ignore[no-untyped-def]
        try:
            yield from responses
        except Exception as exc:
            self._observe(method, status_code_of(exc, ctx), time.perf_counter() - start)
            self._fail(method, exc, ctx)
        else:
            self._observe(method, "OK", time.perf_counter() - start)

    def _fail(self, method: str, exc: Exception, ctx) -> None:  # type: ignore[no-untyped-def]
        exc = as_conflict(exc) or exc
        if isinstance(exc, KumoError):
            log_refusal(self._limiter, method, exc)
            ctx.abort_with_status(status_for(exc))
        if not ctx.is_active():
            log.info("rpc ended by the client", extra={"method": method, "error": repr(exc)})
            raise exc
        if type(exc) is NotImplementedError:
            # The generated base servicer's answer for an RPC in the .proto but not written yet.
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this controller")
        log.exception("internal error", extra={"method": method})
        ctx.abort(
            grpc.StatusCode.INTERNAL,
            f"internal error in {method} (the controller log has the details)",
        )
