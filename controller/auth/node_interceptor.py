"""The node port's interceptor (asyncio): the same policy table as the public
port, but only NODE-rule RPCs pass, and the caller is the node named by the
client certificate (checked by the controller's node authenticator). Domain
errors become gRPC statuses exactly as on the public port."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from controller.auth.decoding import LogLimiter, checked, checked_async_stream, tolerant
from controller.auth.interceptor import (
    CallContext,
    RpcObserver,
    ignore_rpc,
    log_refusal,
    status_code_of,
    status_for,
)
from controller.auth.policy import OPEN_PREFIXES, POLICY, Rule
from controller.auth.principal import NodePrincipal
from controller.db.database import as_conflict
from controller.errors import KumoError, PermissionDenied, Unauthenticated

log = logging.getLogger("kumo.api")


class _AuthOnly:
    """What the node authenticator may read of a call, taken on the event loop
    so the (database) check can run in a worker thread."""

    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


class AsyncNodeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        limiter: LogLimiter,
        node_auth: Callable[[Any], NodePrincipal] | None,
        policy: dict[str, Rule] = POLICY,
        observe: RpcObserver = ignore_rpc,
    ) -> None:
        self._observe = observe
        self._node_auth = node_auth
        self._policy = policy
        # What client mistakes log (refusals, undecodable requests) is rate-limited.
        self._limiter = limiter

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        is_open = method.startswith(OPEN_PREFIXES)  # health and reflection: no certificate check
        rule = self._policy.get(method)

        def decoded(request: Any) -> Any:
            if handler.request_deserializer is None:  # raw bytes: the servicer decodes them
                return request
            return checked_async_stream(request) if handler.request_streaming else checked(request)

        async def authorize(ctx: grpc.aio.ServicerContext) -> Any:
            return ctx if is_open else await self._authorize(method, rule, ctx)

        kw = {
            "request_deserializer": tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.response_streaming:
            behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream

            async def streaming(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    request = decoded(request)
                    call_ctx = await authorize(ctx)
                    async for item in behavior(request, call_ctx):
                        yield item
                    self._observe(method, "OK", time.perf_counter() - start)
                except asyncio.CancelledError:
                    self._observe(method, "CANCELLED", time.perf_counter() - start)
                    raise
                except Exception as exc:
                    await self._fail(method, exc, ctx, start)

            async def writing(request: Any, ctx: grpc.aio.ServicerContext) -> None:
                """For a stream that answers with ctx.write (health's Watch), not by yielding."""
                start = time.perf_counter()
                try:
                    request = decoded(request)
                    await behavior(request, await authorize(ctx))
                    self._observe(method, "OK", time.perf_counter() - start)
                except asyncio.CancelledError:
                    self._observe(method, "CANCELLED", time.perf_counter() - start)
                    raise
                except Exception as exc:
                    await self._fail(method, exc, ctx, start)

            factory = (
                grpc.stream_stream_rpc_method_handler
                if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler
            )
            return factory(streaming if inspect.isasyncgenfunction(behavior) else writing, **kw)

        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary

        async def unary(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                request = decoded(request)
                call_ctx = await authorize(ctx)
                result = behavior(request, call_ctx)
                answer = await result if inspect.isawaitable(result) else result
                self._observe(method, "OK", time.perf_counter() - start)
                return answer
            except asyncio.CancelledError:  # the peer went away (a node session ending)
                self._observe(method, "CANCELLED", time.perf_counter() - start)
                raise
            except Exception as exc:
                await self._fail(method, exc, ctx, start)

        factory = (
            grpc.stream_unary_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return factory(unary, **kw)

    async def _authorize(self, method: str, rule: Rule | None, ctx: grpc.aio.ServicerContext) -> CallContext:
        if rule is None:
            log.error("rpc has no policy entry; refusing", extra={"method": method})
            raise PermissionDenied(f"{method} is not allowed by policy", reason="NO_POLICY")
        if rule is not Rule.NODE:
            raise PermissionDenied("the node port serves node RPCs only", reason="WRONG_PORT")
        if self._node_auth is None:
            raise Unauthenticated("node authentication is not configured")
        auth = _AuthOnly(ctx.auth_context())
        node = await asyncio.get_running_loop().run_in_executor(None, self._node_auth, auth)
        return CallContext(ctx, None, node)

    async def _fail(self, method: str, exc: Exception, ctx: grpc.aio.ServicerContext, start: float) -> None:
        self._observe(method, status_code_of(exc, ctx), time.perf_counter() - start)
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        exc = as_conflict(exc) or exc
        if isinstance(exc, KumoError):
            log_refusal(self._limiter, method, exc)
            status = status_for(exc)
            await ctx.abort(status.code, status.details, status.trailing_metadata)
        if type(exc) is NotImplementedError:
            # A generated base servicer's answer for an RPC not written (health's List on grpc.aio).
            await ctx.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this controller")
        log.exception("internal error", extra={"method": method})
        await ctx.abort(
            grpc.StatusCode.INTERNAL, f"internal error in {method} (the controller log has the details)"
        )
