"""The node port: a grpc.aio server on an event loop thread of its own.

Node sessions are long-lived streams, thousands at once; a thread per stream
(the public port's model) cannot hold them, a coroutine per stream can. The
node registry's monitor and batch writer run on the same loop. The object
quacks like the grpc.Server the controller expects (add_secure_port, start,
stop returning an event)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.auth.decoding import LogLimiter
from controller.auth.interceptor import RpcObserver, ignore_rpc
from controller.auth.node_interceptor import AsyncNodeInterceptor
from controller.auth.principal import NodePrincipal
from controller.db.database import db
from controller.domain.node_registry import NodeRegistry

if TYPE_CHECKING:
    from controller.assembly import Service

log = logging.getLogger("kumo.controller")

UNREQUESTED_CALL_SECONDS = 120
MAX_PENDING_CALLS = 50_000

NODE_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
    # A grpc.aio server takes one new call from grpc-core per turn of its event loop; the calls
    # it has not taken yet wait in core, which cancels those waiting longer than 30 s by default
    # (the node sees CANCELLED) and refuses more than 3,000 waiting. When a whole fleet connects
    # at once on a busy loop (measured: 5,000 nodes, loop turns of 0.1-1 s, about 2,000 sessions
    # CANCELLED between 30 and 60 s after they started), cancelling only makes each node redo its
    # TLS handshake and queue again: calls wait here longer than a node waits for its welcome
    # (noded.agent.WELCOME_TIMEOUT), so the node's own timeout and backoff decide.
    ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_CALL_SECONDS),
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS * 4 // 5),  # above it core sheds at random
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
    # grpc-core's bandwidth-delay probe pings the peer after data arrives, to size the flow-control
    # windows of big transfers: on a session that meant two pings (and their acks, each a TLS record)
    # per heartbeat, more frames than the heartbeat and its ack themselves (measured with
    # GRPC_TRACE=http2_ping, grpcio 1.85). The node port's windows are fixed instead, large enough
    # for its big streams (UploadSnapshot's 1 MiB chunks; no more than the probe grew them to).
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 4 * 1024 * 1024),
]


class AsyncNodeServer:
    def __init__(
        self,
        entries: tuple[Service, ...],
        node_auth: Callable[[Any], NodePrincipal] | None,
        registry: NodeRegistry,
        observe: RpcObserver = ignore_rpc,
    ) -> None:
        self._entries = entries
        self._observe = observe
        self._registry = registry
        self._loop = asyncio.new_event_loop()
        # The loop and its executor threads use the database of the controller that makes the server.
        self._loop.set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="node-rpc", initializer=db.bind_thread, initargs=(db.obj,))
        )
        self._thread = threading.Thread(target=db.carry(self._run_loop), name="node-server", daemon=True)
        self._thread.start()
        self._server: grpc.aio.Server = self._call(self._make(node_auth))

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _make(self, node_auth: Callable[[Any], NodePrincipal] | None) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[AsyncNodeInterceptor(LogLimiter(), node_auth, observe=self._observe)],
            options=NODE_GRPC_OPTIONS,
            maximum_concurrent_rpcs=None,
        )
        for entry in self._entries:
            entry.add(entry.servicer, server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [entry.name for entry in self._entries]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        return server

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        async def add() -> int:
            return self._server.add_secure_port(address, credentials)

        return self._call(add())

    def start(self) -> None:
        async def start() -> None:
            await self._registry.start()
            await self._server.start()
            for entry in self._entries:
                await self._health.set(entry.name, health_pb2.HealthCheckResponse.SERVING)
            await self._health.set("", health_pb2.HealthCheckResponse.SERVING)

        self._call(start())

    def stop(self, grace: float | None) -> threading.Event:
        """Ends every session (nodes reconnect to the next controller), writes
        what is pending, then stops the loop. Returns an event set when done."""
        done = threading.Event()

        async def stop() -> None:
            try:
                await self._registry.shutdown()
                await self._server.stop(min(grace or 0, 2.0))
            finally:
                done.set()

        def finish(_: Any) -> None:
            self._loop.call_soon_threadsafe(self._loop.stop)

        future = asyncio.run_coroutine_threadsafe(stop(), self._loop)
        future.add_done_callback(finish)
        return done
