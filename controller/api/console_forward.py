"""Consoles through any controller: a console attach or log read for an
instance whose node has its session on another controller is relayed
through that controller's public API, with the caller's own token (which
that controller checks again). A relayed call is marked and is never relayed
again, so two controllers that each believe the other holds the node cannot
pass a call back and forth."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import grpc

from controller.auth.interceptor import CallContext
from controller.domain.node_registry.consoles import HeldElsewhere
from controller.errors import KumoError, Unavailable
from kumo.errorinfo import error_metadata, error_reason
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc

FORWARDED = "kumo-console-forwarded"
OUTPUT_TIMEOUT = 10.0  # the holder waits up to 3 s for its node's log, twice at most


class UpstreamError(KumoError):
    """The holding controller's answer, passed on as it was (code, message, reason)."""

    def __init__(self, exc: grpc.RpcError) -> None:
        super().__init__(exc.details() or "", reason=error_reason(exc) or None, **error_metadata(exc))
        self.code = exc.code()


class ConsoleForwarder:
    def __init__(self, ca_pem: bytes) -> None:
        self._credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        self._lock = threading.Lock()
        self._stubs: dict[str, compute_pb2_grpc.ComputeServiceStub] = {}

    @staticmethod
    def forwardable(context: CallContext) -> bool:
        """False for a call another controller relayed here."""
        return not any(key == FORWARDED for key, _ in context.invocation_metadata())

    def _stub(self, endpoint: str) -> compute_pb2_grpc.ComputeServiceStub:
        with self._lock:
            stub = self._stubs.get(endpoint)
            if stub is None:
                stub = compute_pb2_grpc.ComputeServiceStub(grpc.secure_channel(endpoint, self._credentials))
                self._stubs[endpoint] = stub
            return stub

    @staticmethod
    def _metadata(context: CallContext) -> list[tuple[str, str]]:
        token = [(k, v) for k, v in context.invocation_metadata() if k == "authorization"]
        return [*token, (FORWARDED, "1")]

    @staticmethod
    def _unreachable(away: HeldElsewhere, exc: grpc.RpcError) -> KumoError:
        if exc.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ) and not error_reason(exc):
            return Unavailable(
                f"the instance's node has its session on controller {away.controller_id} "
                f"({away.endpoint}), which this controller cannot reach: {exc.details()}",
                reason="NODE_ON_OTHER_CONTROLLER",
            )
        return UpstreamError(exc)

    def attach(
        self,
        away: HeldElsewhere,
        context: CallContext,
        first: pb.AttachConsoleRequest,
        rest: Iterator[pb.AttachConsoleRequest],
    ) -> Iterator[pb.AttachConsoleResponse]:
        call = self._stub(away.endpoint).AttachConsole(
            itertools.chain([first], rest), metadata=self._metadata(context)
        )
        context.add_callback(call.cancel)  # the user went away: so does the relayed call
        try:
            yield from call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and not context.is_active():
                return
            raise self._unreachable(away, exc) from None
        finally:
            call.cancel()

    def output(
        self, away: HeldElsewhere, context: CallContext, request: pb.GetConsoleOutputRequest
    ) -> pb.GetConsoleOutputResponse:
        try:
            return self._stub(away.endpoint).GetConsoleOutput(
                request, metadata=self._metadata(context), timeout=OUTPUT_TIMEOUT
            )
        except grpc.RpcError as exc:
            raise self._unreachable(away, exc) from None
