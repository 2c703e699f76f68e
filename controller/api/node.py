"""NodeService (admins) and NodeAgentService (node daemons): validate requests,
call controller.domain.nodes, build responses.

NodeAgentService is on both ports: GetCaBundle and Enroll are served on the
public port by `NodeAgentServicer`; Session on the mTLS node port by the
asyncio `NodeSessionServicer` (the node server holds thousands of sessions,
one coroutine each). The interceptors refuse each RPC on the other port."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from google.protobuf import duration_pb2, empty_pb2

from controller import clock
from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db.models import JoinToken
from controller.domain.node_registry import RESYNC, Session
from controller.domain.nodes import DEFAULT_TTL, Nodes, NodeView, token_state
from controller.errors import InvalidArgument, KumoError, Unauthenticated
from kumo import desired
from kumo.v1 import node_pb2 as pb
from kumo.v1 import node_pb2_grpc

if TYPE_CHECKING:
    from controller.server import Controller

log = logging.getLogger("kumo.nodes")

STATE = {"READY": pb.NODE_STATE_READY, "DOWN": pb.NODE_STATE_DOWN, "DISABLED": pb.NODE_STATE_DISABLED}
MAX_CSR = 16 * 1024
MAX_GUESTS = 10_000
HELLO_TIMEOUT = 30.0
# Sessions being opened at once (hello, welcome, full desired state). When a
# whole fleet reconnects, finishing some opens beats starting all of them and
# finishing none before the nodes give up and retry.
MAX_OPENING = 128


def node_pb(view: NodeView) -> pb.Node:
    row = view.row
    out = pb.Node(
        id=row.id,
        name=row.name,
        state=STATE[view.state],
        disabled_reason=row.disabled_reason,
        connected=view.connected,
        inventory=view.inventory(),
        usage=view.usage(),
        desired_revision=row.desired_revision,
        applied_revision=view.applied_revision,
        address=view.address,
        certificate_serial=row.cert_serial,
        certificate_expire_time=ts(row.cert_expire_time),
        join_token_id=row.join_token_id,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )
    if view.last_heartbeat_time:
        out.last_heartbeat_time.CopyFrom(ts(view.last_heartbeat_time))
    return out


def join_token_pb(row: JoinToken) -> pb.JoinToken:
    out = pb.JoinToken(
        id=row.id,
        description=row.description,
        max_uses=row.max_uses,
        uses=row.uses,
        state=token_state(row, clock.now()),
        expire_time=ts(row.expire_time),
        create_time=ts(row.create_time),
        creator_user_id=row.creator_user_id,
    )
    if row.last_use_time:
        out.last_use_time.CopyFrom(ts(row.last_use_time))
    return out


def _ttl(request: pb.CreateJoinTokenRequest) -> float:
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    d: duration_pb2.Duration = request.ttl
    if d.seconds < 0 or d.nanos < 0 or d.nanos >= 1_000_000_000:
        raise InvalidArgument("ttl must be a positive duration")
    return d.seconds + d.nanos / 1e9


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    def ListNodes(self, request: pb.ListNodesRequest, context: CallContext) -> pb.ListNodesResponse:
        if request.name:
            v.name(request.name)
        views, token = self.nodes.list_nodes(request.page_size, request.page_token, request.name)
        return pb.ListNodesResponse(nodes=[node_pb(x) for x in views], next_page_token=token)

    def GetNode(self, request: pb.GetNodeRequest, context: CallContext) -> pb.Node:
        return node_pb(self.nodes.get_node(v.resource_id(request.id)))

    def DisableNode(self, request: pb.DisableNodeRequest, context: CallContext) -> pb.Node:
        reason = v.text(request.reason, "reason", 255)
        return node_pb(self.nodes.set_enabled(v.resource_id(request.id), False, reason))

    def EnableNode(self, request: pb.EnableNodeRequest, context: CallContext) -> pb.Node:
        return node_pb(self.nodes.set_enabled(v.resource_id(request.id), True, ""))

    def DeleteNode(self, request: pb.DeleteNodeRequest, context: CallContext) -> empty_pb2.Empty:
        self.nodes.delete_node(v.resource_id(request.id))
        return empty_pb2.Empty()

    def CreateJoinToken(
        self, request: pb.CreateJoinTokenRequest, context: CallContext
    ) -> pb.CreateJoinTokenResponse:
        jt = request.join_token
        row, token = self.nodes.create_join_token(
            context.principal,
            v.text(jt.description, "join_token.description", 255),
            jt.max_uses,
            _ttl(request),
        )
        return pb.CreateJoinTokenResponse(
            join_token=join_token_pb(row), token=token, ca_fingerprint=self.nodes.ca.fingerprint
        )

    def ListJoinTokens(
        self, request: pb.ListJoinTokensRequest, context: CallContext
    ) -> pb.ListJoinTokensResponse:
        rows, token = self.nodes.list_join_tokens(request.page_size, request.page_token)
        return pb.ListJoinTokensResponse(join_tokens=[join_token_pb(r) for r in rows], next_page_token=token)

    def DeleteJoinToken(self, request: pb.DeleteJoinTokenRequest, context: CallContext) -> empty_pb2.Empty:
        self.nodes.delete_join_token(v.resource_id(request.id))
        return empty_pb2.Empty()


class NodeAgentServicer(node_pb2_grpc.NodeAgentServiceServicer):
    """GetCaBundle and Enroll, on the public port (no bearer token)."""

    def __init__(self, nodes: Nodes, node_port: Callable[[], int]) -> None:
        self.nodes = nodes
        self.node_port = node_port

    def GetCaBundle(self, request: pb.GetCaBundleRequest, context: CallContext) -> pb.CaBundle:
        pem, fingerprint = self.nodes.ca_bundle()
        return pb.CaBundle(ca_pem=pem.decode(), fingerprint=fingerprint)

    def Enroll(self, request: pb.EnrollRequest, context: CallContext) -> pb.EnrollResponse:
        if not request.csr_pem:
            raise InvalidArgument("csr_pem is required")
        if len(request.csr_pem) > MAX_CSR:
            raise InvalidArgument(f"csr_pem must be at most {MAX_CSR} bytes")
        name = v.name(request.name, "name")
        enrolled = self.nodes.enroll(request.token, request.csr_pem, name)
        pem, _ = self.nodes.ca_bundle()
        return pb.EnrollResponse(
            node_id=enrolled.node.id,
            certificate_pem=enrolled.certificate_pem.decode(),
            ca_pem=pem.decode(),
            node_endpoint=self.nodes.node_endpoint(self.node_port()),
        )


def _check_inventory(inv: pb.NodeInventory) -> None:
    for name in ("vcpus", "memory_mb", "disk_gb"):
        if getattr(inv, name) < 0:
            raise InvalidArgument(f"inventory.{name} must not be negative")
    for f in pb.NodeInventory.DESCRIPTOR.fields:
        value = getattr(inv, f.name)
        if isinstance(value, str) and len(value) > 255:
            raise InvalidArgument(f"inventory.{f.name} must be at most 255 characters")
    if inv.virt_type not in ("", "kvm", "qemu"):
        raise InvalidArgument(f"inventory.virt_type must be kvm or qemu, got {inv.virt_type[:20]!r}")


def _check_heartbeat(hb: pb.Heartbeat) -> None:
    u = hb.usage
    if min(u.memory_free_mb, u.disk_free_gb, u.guests_running, u.guest_vcpus, u.guest_memory_mb) < 0:
        raise InvalidArgument("heartbeat usage figures must not be negative")
    if len(hb.guests) > MAX_GUESTS:
        raise InvalidArgument(f"a heartbeat may list at most {MAX_GUESTS} guests")
    if hb.HasField("inventory"):
        _check_inventory(hb.inventory)


class NodeSessionServicer(node_pb2_grpc.NodeAgentServiceServicer):
    """Session, on the node port (asyncio)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.registry = nodes.registry
        self.opening = asyncio.Semaphore(MAX_OPENING)

    async def Session(
        self, request_iterator: AsyncIterator[pb.SessionRequest], context: CallContext
    ) -> AsyncIterator[pb.SessionResponse]:
        node_id = context.node.node_id
        await self.opening.acquire()
        opening = True

        def opened() -> None:
            nonlocal opening
            if opening:
                opening = False
                self.opening.release()

        try:
            first = await asyncio.wait_for(anext(aiter(request_iterator)), HELLO_TIMEOUT)
        except StopAsyncIteration:
            opened()
            return
        except TimeoutError:
            opened()
            log.info("node sent no hello", extra={"node_id": node_id, "timeout": HELLO_TIMEOUT})
            raise InvalidArgument(f"no hello within {HELLO_TIMEOUT:g} s") from None
        except BaseException:
            opened()
            raise
        try:
            if first.WhichOneof("kind") != "hello":
                raise InvalidArgument(
                    "the first message of a session must be a hello", reason="HELLO_REQUIRED"
                )
            _check_inventory(first.hello.inventory)
            if first.hello.applied_revision < 0:
                raise InvalidArgument("hello.applied_revision must not be negative")
        except BaseException:
            opened()
            raise

        session = self.registry.open_session(node_id, first.hello, context.peer())
        reader = asyncio.create_task(self._read(session, request_iterator))
        try:
            welcome = pb.SessionWelcome(node_id=node_id)
            welcome.heartbeat_interval.FromTimedelta(
                datetime.timedelta(seconds=self.registry.heartbeat_interval)
            )
            welcome.grace_period.FromTimedelta(datetime.timedelta(seconds=self.registry.grace))
            yield pb.SessionResponse(welcome=welcome)
            while True:
                item = await session.outbox.get()
                if item is None:  # closed
                    if session.close_error is not None:
                        raise session.close_error
                    return
                if item is RESYNC:
                    session.resynced()
                    update = await self._desired_update(session)
                    if update is not None:
                        yield pb.SessionResponse(desired_state=update)
                    opened()  # the full state is out: the session is open
                else:
                    yield item
        finally:
            opened()
            reader.cancel()
            self.registry.close_session(session)

    async def _read(self, session: Session, requests: AsyncIterator[pb.SessionRequest]) -> None:
        try:
            async for msg in requests:
                kind = msg.WhichOneof("kind")
                if kind == "heartbeat":
                    _check_heartbeat(msg.heartbeat)
                    session.outbox.put_nowait(self.registry.heartbeat(session, msg.heartbeat))
                elif kind == "ack":
                    self.registry.acked(session, msg.ack)
                else:
                    raise InvalidArgument(
                        "a session takes one hello, then heartbeats and acks", reason="UNEXPECTED_MESSAGE"
                    )
            session.close()  # the node ended the stream
        except KumoError as exc:
            session.close(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke (node gone)
            log.debug("node stream ended", extra={"node_id": session.node_id, "error": repr(exc)})
            session.close()

    async def _desired_update(self, session: Session) -> pb.DesiredStateUpdate | None:
        loop = asyncio.get_running_loop()
        try:
            revision, state = await loop.run_in_executor(None, self.nodes.desired_state, session.node_id)
        except Unauthenticated:  # deleted meanwhile: forget it here too
            self.registry.forget_threadsafe(session.node_id)
            raise
        if session.sent_state is None:
            update = pb.DesiredStateUpdate(revision=revision, full=True, state=state)
        else:
            delta, removed, changed = desired.diff(session.sent_state, state)
            if not changed and revision == session.sent_revision:
                return None
            update = pb.DesiredStateUpdate(
                revision=revision,
                full=False,
                base_revision=session.sent_revision,
                state=delta,
                removed_ids=removed,
            )
        session.sent_state, session.sent_revision = state, revision
        return update


def register(ctl: Controller) -> None:
    """Plugs the node services into the controller (called from Controller._register)."""
    ctl.nodes = Nodes(ctl.cfg, ctl.pki.ca)
    name = pb.DESCRIPTOR.services_by_name["NodeService"].full_name
    agent = pb.DESCRIPTOR.services_by_name["NodeAgentService"].full_name
    ctl.services.public.append(
        (node_pb2_grpc.add_NodeServiceServicer_to_server, NodeServicer(ctl.nodes), name)
    )
    ctl.services.public.append(
        (
            node_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            NodeAgentServicer(ctl.nodes, lambda: ctl.node_port),
            agent,
        )
    )
    ctl.services.node.append(
        (node_pb2_grpc.add_NodeAgentServiceServicer_to_server, NodeSessionServicer(ctl.nodes), agent)
    )
