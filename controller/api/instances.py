"""Instance RPCs of ComputeService, the node-port RPCs that serve instances
(image blobs, snapshot uploads, console logs), and the wiring of compute into
the controller."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.compute import ComputeCatalogServicer
from controller.api.convert import ts
from controller.api.node import NodeSessionServicer
from controller.auth.interceptor import CallContext
from controller.auth.principal import Principal, Role
from controller.db.models import Instance
from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.images import Images, UploadHeader
from controller.domain.instances import Instances, register_hooks
from controller.domain.nodes import Nodes
from controller.errors import InvalidArgument, PermissionDenied
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc
from kumo.v1 import node_pb2 as npb

if TYPE_CHECKING:
    from controller.server import Controller

BLOB_CHUNK = 1024 * 1024

# Features that add to an instance's message (NICs, volumes) append
# fn(rows, messages): it fills all the messages of a page at once (one query
# per feature per page, not per instance).
INSTANCE_PB_HOOKS: list[Callable[[list[Instance], list[pb.Instance]], None]] = []
# Features that take extra CreateInstance fields append fn(request) -> dict of
# checked options, handed to the domain's CREATE_HOOKS (domain/instances.py).
CREATE_OPTIONS: list[Callable[[pb.CreateInstanceRequest], dict[str, Any]]] = []


def instance_pbs(rows: list[Instance]) -> list[pb.Instance]:
    msgs = [_instance_pb(r) for r in rows]
    for hook in INSTANCE_PB_HOOKS:
        hook(rows, msgs)
    return msgs


def instance_pb(row: Instance) -> pb.Instance:
    return instance_pbs([row])[0]


def _instance_pb(row: Instance) -> pb.Instance:
    return pb.Instance(
        id=row.id,
        name=row.name,
        project_id=row.project_id,
        user_id=row.user_id,
        image_id=row.image_id,
        flavor_id=row.flavor_id,
        keypair_id=row.keypair_id,
        server_group_id=row.server_group_id,
        node_id=row.node_id,
        state=row.state,
        fault=row.fault,
        vcpus=row.vcpus,
        ram_mb=row.ram_mb,
        disk_gb=row.disk_gb,
        task=row.task,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
        launch_time=ts(row.launch_time) if row.launch_time else None,
    )


class ComputeServicer(ComputeCatalogServicer, compute_pb2_grpc.ComputeServiceServicer):
    """The whole ComputeService: catalog (inherited) and instances."""

    def __init__(self, catalog: ComputeCatalog, instances: Instances) -> None:
        super().__init__(catalog)
        self.instances = instances

    def CreateInstance(self, request: pb.CreateInstanceRequest, context: CallContext) -> pb.Instance:
        row = self.instances.create(
            context.principal,
            v.name(request.name),
            "" if request.boot_volume and not request.image else v.reference(request.image, "image"),
            v.reference(request.flavor, "flavor"),
            v.reference(request.keypair, "keypair", required=False),
            request.user_data,
            v.optional_id(request.server_group_id, "server_group_id"),
            v.request_id(request.request_id),
            options={k: val for fn in CREATE_OPTIONS for k, val in fn(request).items()},
        )
        return instance_pb(row)

    def GetInstance(self, request: pb.GetInstanceRequest, context: CallContext) -> pb.Instance:
        return instance_pb(self.instances.get(context.principal, v.resource_id(request.id)))

    def ListInstances(
        self, request: pb.ListInstancesRequest, context: CallContext
    ) -> pb.ListInstancesResponse:
        if request.name:
            v.name(request.name)
        if request.state and request.state not in pb.InstanceState.values():
            raise InvalidArgument(f"state {request.state} is not an InstanceState")
        rows, token = self.instances.list(
            context.principal, request.page_size, request.page_token, request.name, request.state
        )
        return pb.ListInstancesResponse(instances=instance_pbs(rows), next_page_token=token)

    def DeleteInstance(self, request: pb.DeleteInstanceRequest, context: CallContext) -> pb.Instance:
        return instance_pb(self.instances.delete(context.principal, v.resource_id(request.id)))

    def StartInstance(self, request: pb.StartInstanceRequest, context: CallContext) -> pb.Instance:
        return instance_pb(self.instances.start(context.principal, v.resource_id(request.id)))

    def StopInstance(self, request: pb.StopInstanceRequest, context: CallContext) -> pb.Instance:
        return instance_pb(self.instances.stop(context.principal, v.resource_id(request.id)))

    def RebootInstance(self, request: pb.RebootInstanceRequest, context: CallContext) -> pb.Instance:
        if request.type not in (pb.REBOOT_TYPE_UNSPECIFIED, pb.REBOOT_TYPE_SOFT, pb.REBOOT_TYPE_HARD):
            raise InvalidArgument("type must be REBOOT_TYPE_SOFT or REBOOT_TYPE_HARD")
        hard = request.type == pb.REBOOT_TYPE_HARD
        return instance_pb(self.instances.reboot(context.principal, v.resource_id(request.id), hard))

    def GetConsoleOutput(
        self, request: pb.GetConsoleOutputRequest, context: CallContext
    ) -> pb.GetConsoleOutputResponse:
        text = self.instances.console(context.principal, v.resource_id(request.id), request.tail_lines)
        return pb.GetConsoleOutputResponse(output=text)

    def CreateInstanceSnapshot(
        self, request: pb.CreateInstanceSnapshotRequest, context: CallContext
    ) -> pb.CreateInstanceSnapshotResponse:
        image_id = self.instances.snapshot(
            context.principal, v.resource_id(request.id), v.name(request.name, "name")
        )
        return pb.CreateInstanceSnapshotResponse(image_id=image_id)


class NodeAgentComputeServicer(NodeSessionServicer):
    """The node port's NodeAgentService: the session (inherited) plus what
    nodes need for instances. Each call acts only on the calling node's own
    instances."""

    def __init__(self, nodes: Nodes, instances: Instances, images: Images) -> None:
        super().__init__(nodes)
        self.instances = instances
        self.images = images

    @staticmethod
    async def _blocking(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def DownloadBlob(
        self, request: npb.DownloadBlobRequest, context: CallContext
    ) -> AsyncIterator[npb.DownloadBlobResponse]:
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
                yield npb.DownloadBlobResponse(data=data)
        finally:
            reader.close()

    async def UploadSnapshot(
        self, request_iterator: AsyncIterator[npb.UploadSnapshotRequest], context: CallContext
    ) -> npb.UploadSnapshotResponse:
        node_id = context.node.node_id
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise InvalidArgument("the first message must name instance_id and image_id")
        row = await self._blocking(self.instances.snapshot_target, node_id, first.instance_id, first.image_id)
        owner = Principal(row.user_id, "node", row.project_id, "", Role.MEMBER, "", 0.0)
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def feed() -> Iterator[bytes]:
            if first.data:
                yield first.data
            while (item := chunks.get()) is not None:
                yield item

        upload = loop.run_in_executor(None, self.images.upload, owner, UploadHeader(first.image_id), feed())
        try:
            async for msg in request_iterator:
                if msg.data:
                    await loop.run_in_executor(None, chunks.put, msg.data)
        finally:
            await loop.run_in_executor(None, chunks.put, None)
        image = await upload
        return npb.UploadSnapshotResponse(image_id=image.id, sha256=image.checksum_sha256)

    async def ReportConsole(self, request: npb.ReportConsoleRequest, context: CallContext) -> empty_pb2.Empty:
        v.resource_id(request.instance_id, "instance_id")
        await self._blocking(
            self.instances.report_console, context.node.node_id, request.instance_id, request.data
        )
        return empty_pb2.Empty()


def register(ctl: Controller) -> None:
    """Plugs compute into the controller (after nodes and images)."""
    from kumo.v1 import node_pb2_grpc

    register_hooks()
    ctl.compute_catalog = ComputeCatalog()
    ctl.instances = Instances(ctl.cfg, ctl.compute_catalog, ctl.images, ctl.nodes)
    ctl.services.public.append(
        (
            compute_pb2_grpc.add_ComputeServiceServicer_to_server,
            ComputeServicer(ctl.compute_catalog, ctl.instances),
            pb.DESCRIPTOR.services_by_name["ComputeService"].full_name,
        )
    )
    # One servicer per service per server: the node port's NodeAgentService
    # becomes the session servicer extended with the instance RPCs.
    agent = NodeAgentComputeServicer(ctl.nodes, ctl.instances, ctl.images)
    ctl.services.node[:] = [
        (node_pb2_grpc.add_NodeAgentServiceServicer_to_server, agent, name)
        if isinstance(servicer, NodeSessionServicer)
        else (add, servicer, name)
        for add, servicer, name in ctl.services.node
    ]
