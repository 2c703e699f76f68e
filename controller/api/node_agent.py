"""NodeAgentService, what node daemons call. It is on both ports: GetCaBundle
and Enroll on the public port (`NodeEnrollmentServicer`: a joining node has
no certificate yet); the session and the rest on the mTLS node port
(`NodeAgentServicer`, asyncio: the node server holds thousands of sessions,
one coroutine each). The interceptors refuse each RPC on the other port."""

from __future__ import annotations

import asyncio
import datetime
import logging
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from google.protobuf import empty_pb2

from controller import validation as v
from controller.auth.interceptor import CallContext
from controller.auth.principal import Principal, Role
from controller.domain.control_plane import ControlPlane
from controller.domain.desired_batches import DesiredBatches
from controller.domain.images import Images, UploadHeader
from controller.domain.instances import Instances
from controller.domain.moves.facade import Moves
from controller.domain.node_certs import MAX_CERT_PEM
from controller.domain.node_registry import RESYNC, Session
from controller.domain.node_registry.consoles import ConsoleRelay
from controller.domain.node_state import DesiredStates
from controller.domain.nodes import Nodes
from controller.errors import InvalidArgument, KumoError, PermissionDenied, Unauthenticated
from kumo.desired import diff
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc, node_pb2

T = TypeVar("T")
log = logging.getLogger("kumo.nodes")

MAX_CSR = 16 * 1024
MAX_GUESTS = 10_000
HELLO_TIMEOUT = 30.0
# Sessions being opened at once (hello, welcome, full desired state). When a
# whole fleet reconnects, finishing some opens beats starting all of them and
# finishing none before the nodes give up and retry.
MAX_OPENING = 128
BLOB_CHUNK = 1024 * 1024


class NodeEnrollmentServicer(node_agent_pb2_grpc.NodeAgentServiceServicer):
    """GetCaBundle and Enroll, on the public port (no bearer token)."""

    def __init__(self, nodes: Nodes, node_port: Callable[[], int]) -> None:
        self.nodes = nodes
        self.node_port = node_port

    def GetCaBundle(self, request: pb.GetCaBundleRequest, context: CallContext) -> pb.CaBundle:
        pem, fingerprint = self.nodes.ca_bundle()
        return pb.CaBundle(ca_pem=pem.decode(), fingerprint=fingerprint)

    def CheckCertificate(
        self, request: pb.CheckCertificateRequest, context: CallContext
    ) -> pb.CheckCertificateResponse:
        if not request.certificate_pem:
            raise InvalidArgument("certificate_pem is required", field="certificate_pem")
        if len(request.certificate_pem) > MAX_CERT_PEM:
            raise InvalidArgument(
                f"certificate_pem must be at most {MAX_CERT_PEM} bytes", field="certificate_pem"
            )
        try:
            self.nodes.certificates.check_pem(request.certificate_pem.encode(), "check")
        except Unauthenticated as refused:
            return pb.CheckCertificateResponse(accepted=False, reason=refused.reason, message=refused.message)
        return pb.CheckCertificateResponse(accepted=True)

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


def _check_inventory(inv: node_pb2.NodeInventory) -> None:
    for name in ("vcpus", "memory_mb", "disk_gb"):
        if getattr(inv, name) < 0:
            raise InvalidArgument(f"inventory.{name} must not be negative")
    for f in node_pb2.NodeInventory.DESCRIPTOR.fields:
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


class NodeAgentServicer(node_agent_pb2_grpc.NodeAgentServiceServicer):
    """The node port's NodeAgentService (asyncio): the session, and what nodes
    need for their instances (image blobs, snapshot uploads, console logs).
    Each call acts only on the calling node's own resources."""

    def __init__(
        self,
        nodes: Nodes,
        desired: DesiredStates,
        instances: Instances,
        images: Images,
        consoles: ConsoleRelay,
        control_plane: ControlPlane,
        moves: Moves | None = None,
    ) -> None:
        self.nodes = nodes
        self.control_plane = control_plane
        self.moves = moves
        self.consoles = consoles
        self.registry = nodes.registry
        self.desired = desired
        # Sessions read their nodes' states in batches (what peers share, once).
        self.batches = DesiredBatches(desired.for_nodes)
        self.instances = instances
        self.images = images
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
            await asyncio.get_running_loop().run_in_executor(None, self.nodes.refuse_if_fenced, node_id)
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
            welcome.controller_node_endpoints.extend(
                await asyncio.get_running_loop().run_in_executor(None, self.control_plane.node_endpoints)
            )
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
                elif kind == "renew_certificate":
                    session.outbox.put_nowait(await self._renew(session, msg.renew_certificate))
                else:
                    raise InvalidArgument(
                        "a session takes one hello, then heartbeats, acks and certificate renewals",
                        reason="UNEXPECTED_MESSAGE",
                    )
            session.close()  # the node ended the stream
        except KumoError as exc:
            session.close(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke (node gone)
            log.debug("node stream ended", extra={"node_id": session.node_id, "error": repr(exc)})
            session.close()

    async def _renew(self, session: Session, request: pb.RenewCertificateRequest) -> pb.SessionResponse:
        if not request.csr_pem:
            raise InvalidArgument("renew_certificate.csr_pem is required", field="renew_certificate.csr_pem")
        if len(request.csr_pem) > MAX_CSR:
            raise InvalidArgument(
                f"renew_certificate.csr_pem must be at most {MAX_CSR} bytes",
                field="renew_certificate.csr_pem",
            )
        loop = asyncio.get_running_loop()
        pem = await loop.run_in_executor(None, self.nodes.renew_certificate, session.node_id, request.csr_pem)
        return pb.SessionResponse(certificate=pb.RenewedCertificate(certificate_pem=pem.decode()))

    async def _desired_update(self, session: Session) -> pb.DesiredStateUpdate | None:
        try:
            revision, state = await self.batches.state_of(session.node_id)
        except Unauthenticated:  # deleted meanwhile: forget it here too
            self.registry.forget_threadsafe(session.node_id)
            raise
        if session.sent_state is None:
            update = pb.DesiredStateUpdate(revision=revision, full=True, state=state)
        else:
            delta, removed, changed = diff(session.sent_state, state)
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

    @staticmethod
    async def _blocking(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def DownloadBlob(
        self, request: pb.DownloadBlobRequest, context: CallContext
    ) -> AsyncIterator[pb.DownloadBlobResponse]:
        sha = request.sha256
        if len(sha) != 64 or request.offset < 0:
            raise InvalidArgument("sha256 must be 64 hex digits and offset not negative")
        if not await self._blocking(self.instances.node_may_read_blob, context.node.node_id, sha):
            raise PermissionDenied(
                f"blob {sha[:12]} is not for an instance on this node", reason="BLOB_NOT_FOR_NODE"
            )
        reader = await self._blocking(self.images.open_blob, sha)
        try:
            chunks: Iterator[bytes] = reader.chunks(request.offset, 0, BLOB_CHUNK)
            while True:
                data = await self._blocking(next, chunks, None)
                if data is None:
                    return
                yield pb.DownloadBlobResponse(data=data)
        finally:
            reader.close()

    async def UploadSnapshot(
        self, request_iterator: AsyncIterator[pb.UploadSnapshotRequest], context: CallContext
    ) -> pb.UploadSnapshotResponse:
        node_id = context.node.node_id
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise InvalidArgument("the first message must name instance_id and image_id")
        if first.move_id:
            return await self._move_disk(node_id, first, request_iterator)
        row = await self._blocking(self.instances.snapshot_target, node_id, first.instance_id, first.image_id)
        owner = Principal(row.user_id, "node", row.project_id, "", Role.MEMBER, "", 0.0)
        image = await self._pump(
            first,
            request_iterator,
            lambda chunks: self.images.upload(owner, UploadHeader(first.image_id), chunks),
        )
        return pb.UploadSnapshotResponse(image_id=image.id, sha256=image.checksum_sha256)

    async def _move_disk(
        self, node_id: str, first: pb.UploadSnapshotRequest, rest: AsyncIterator[pb.UploadSnapshotRequest]
    ) -> pb.UploadSnapshotResponse:
        """A move's root disk (UploadSnapshot with move_id) into the blob store."""
        if self.moves is None:
            raise InvalidArgument("this controller moves no instances")
        v.resource_id(first.instance_id, "instance_id")
        v.resource_id(first.move_id, "move_id")
        moves = self.moves
        sha = await self._pump(
            first, rest, lambda chunks: moves.receive_disk(node_id, first.instance_id, first.move_id, chunks)
        )
        return pb.UploadSnapshotResponse(sha256=sha)

    @staticmethod
    async def _pump(
        first: pb.UploadSnapshotRequest,
        rest: AsyncIterator[pb.UploadSnapshotRequest],
        consume: Callable[[Iterator[bytes]], T],
    ) -> T:
        """Runs `consume` on a worker thread over the upload's data (the first
        message's, then the rest's) and returns what it returns."""
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def feed() -> Iterator[bytes]:
            if first.data:
                yield first.data
            while (item := chunks.get()) is not None:
                yield item

        work = loop.run_in_executor(None, consume, feed())
        try:
            async for msg in rest:
                if msg.data:
                    await loop.run_in_executor(None, chunks.put, msg.data)
        finally:
            await loop.run_in_executor(None, chunks.put, None)
        return await work

    async def ReportConsole(self, request: pb.ReportConsoleRequest, context: CallContext) -> empty_pb2.Empty:
        v.resource_id(request.instance_id, "instance_id")
        await self._blocking(
            self.instances.report_console, context.node.node_id, request.instance_id, request.data
        )
        return empty_pb2.Empty()

    async def ConsoleStream(
        self, request_iterator: AsyncIterator[pb.ConsoleStreamRequest], context: CallContext
    ) -> AsyncIterator[pb.ConsoleStreamResponse]:
        """The node's end of a console it was asked for (ConsoleOpen): its
        output goes to the user, the user's input comes back down."""
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.console_id:
            raise InvalidArgument("the first message must name the console_id")
        console = self.consoles.bind(context.node.node_id, first.console_id, first.error)
        if first.error:
            self.consoles.release(console)
            return

        async def read() -> None:
            try:
                async for msg in request_iterator:
                    console.from_node(msg.data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node's stream broke
                log.debug("console stream ended", extra={"node_id": console.node_id, "error": repr(exc)})
            finally:
                console.node_ended()

        reader = asyncio.create_task(read())
        try:
            console.from_node(first.data)
            while (data := await console.to_node.get()) is not None:
                yield pb.ConsoleStreamResponse(data=data)
        finally:
            reader.cancel()
            self.consoles.release(console)
