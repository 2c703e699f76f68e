"""Instance RPCs of ComputeService. Features that add to instances (NICs,
volumes) take part through InstanceApiExtension: they read their own
CreateInstance fields and fill their part of every Instance message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from controller import validation as v
from controller.api.compute import ComputeCatalogServicer
from controller.api.consoles import ConsoleApi
from controller.api.convert import ts
from controller.api.migrations import list_args, live_migration_pb, migrate_args
from controller.auth.interceptor import CallContext
from controller.db.models import Instance
from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.instances import Instances
from controller.domain.migrations.live import LiveMigrations
from controller.domain.moves.cancel import MoveCancels
from controller.domain.moves.facade import Moves
from controller.errors import InvalidArgument
from kumo.v1 import compute_pb2 as pb
from kumo.v1 import compute_pb2_grpc


class InstanceApiExtension(Protocol):
    """The servicer side of an InstanceExtension (domain/extensions.py)."""

    def create_options(self, request: pb.CreateInstanceRequest) -> Mapping[str, Any]:
        """The feature's CreateInstance fields, checked, as options for the domain."""
        ...

    def decorate(self, rows: list[Instance], msgs: list[pb.Instance]) -> None:
        """Fills the feature's part of a page of Instance messages (one query per page)."""
        ...

    def decorate_created(self, row: Instance, msg: pb.Instance, options: Mapping[str, Any]) -> None:
        """`decorate` for the instance a CreateInstance has just made with these
        `options` (every feature's create_options): when they asked nothing of
        this feature, the new instance has none of its resources and there is
        nothing to read."""
        ...


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
        ha=row.ha,
    )


INSTANCE_UPDATES: v.UpdateRules = MappingProxyType({"ha": lambda inst: bool(inst.ha)})


class ComputeServicer(ComputeCatalogServicer, compute_pb2_grpc.ComputeServiceServicer):
    """The whole ComputeService: catalog (inherited) and instances."""

    def __init__(
        self,
        catalog: ComputeCatalog,
        instances: Instances,
        console_api: ConsoleApi,
        extensions: Sequence[InstanceApiExtension],
        moves: Moves,
        migrations: LiveMigrations,
        cancels: MoveCancels,
    ) -> None:
        super().__init__(catalog)
        self.cancels = cancels
        self.moves = moves
        self.instances = instances
        self.migrations = migrations
        self.console_api = console_api
        self.extensions = tuple(extensions)

    def _own_pbs(self, rows: list[Instance]) -> list[pb.Instance]:
        """The rows' messages without the extensions' parts."""
        msgs = [_instance_pb(r) for r in rows]
        for msg, power in zip(msgs, self.instances.power_states(rows), strict=True):
            msg.power_state = power
        return msgs

    def instance_pbs(self, rows: list[Instance]) -> list[pb.Instance]:
        msgs = self._own_pbs(rows)
        for ext in self.extensions:
            ext.decorate(rows, msgs)
        return msgs

    def instance_pb(self, row: Instance) -> pb.Instance:
        return self.instance_pbs([row])[0]

    def CreateInstance(self, request: pb.CreateInstanceRequest, context: CallContext) -> pb.Instance:
        options = {k: val for ext in self.extensions for k, val in ext.create_options(request).items()}
        row, new = self.instances.create(
            context.principal,
            v.name(request.name),
            "" if request.boot_volume and not request.image else v.reference(request.image, "image"),
            v.reference(request.flavor, "flavor"),
            v.reference(request.keypair, "keypair", required=False),
            request.user_data,
            v.optional_id(request.server_group_id, "server_group_id"),
            v.request_key(request),
            options=options,
            ha=request.ha,
        )
        if not new:  # an earlier create of this request_id: the instance as it is now
            return self.instance_pb(row)
        msg = self._own_pbs([row])[0]
        for ext in self.extensions:
            ext.decorate_created(row, msg, options)
        return msg

    def UpdateInstance(self, request: pb.UpdateInstanceRequest, context: CallContext) -> pb.Instance:
        inst = request.instance
        fields = v.updates(request.update_mask.paths, inst, INSTANCE_UPDATES)
        iid = v.resource_id(inst.id, "instance.id")
        return self.instance_pb(self.instances.update(context.principal, iid, fields))

    def GetInstance(self, request: pb.GetInstanceRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.instances.get(context.principal, v.resource_id(request.id)))

    def ListInstances(
        self, request: pb.ListInstancesRequest, context: CallContext
    ) -> pb.ListInstancesResponse:
        if request.name:
            v.name(request.name)
        if request.state and request.state not in pb.InstanceState.values():
            raise InvalidArgument(f"state {request.state} is not an InstanceState")
        rows, token = self.instances.list(
            context.principal,
            request.page_size,
            request.page_token,
            request.name,
            request.state,
            v.optional_id(request.project_id, "project_id"),
            v.optional_id(request.node_id, "node_id"),
        )
        return pb.ListInstancesResponse(instances=self.instance_pbs(rows), next_page_token=token)

    def DeleteInstance(self, request: pb.DeleteInstanceRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.instances.delete(context.principal, v.resource_id(request.id)))

    def StartInstance(self, request: pb.StartInstanceRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.instances.start(context.principal, v.resource_id(request.id)))

    def StopInstance(self, request: pb.StopInstanceRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.instances.stop(context.principal, v.resource_id(request.id)))

    def RebootInstance(self, request: pb.RebootInstanceRequest, context: CallContext) -> pb.Instance:
        if request.type not in (pb.REBOOT_TYPE_UNSPECIFIED, pb.REBOOT_TYPE_SOFT, pb.REBOOT_TYPE_HARD):
            raise InvalidArgument("type must be REBOOT_TYPE_SOFT or REBOOT_TYPE_HARD")
        hard = request.type == pb.REBOOT_TYPE_HARD
        return self.instance_pb(self.instances.reboot(context.principal, v.resource_id(request.id), hard))

    def MigrateInstance(self, request: pb.MigrateInstanceRequest, context: CallContext) -> pb.Instance:
        ref, node, live = migrate_args(request)
        mover = self.migrations if live else self.moves
        return self.instance_pb(mover.migrate(context.principal, ref, node))

    def ListLiveMigrations(
        self, request: pb.ListLiveMigrationsRequest, context: CallContext
    ) -> pb.ListLiveMigrationsResponse:
        instance_id, node_id, state = list_args(request)
        rows, token = self.migrations.list(request.page_size, request.page_token, instance_id, node_id, state)
        return pb.ListLiveMigrationsResponse(
            live_migrations=[live_migration_pb(r) for r in rows], next_page_token=token
        )

    def CancelMigration(self, request: pb.CancelMigrationRequest, context: CallContext) -> pb.Instance:
        ref = v.reference(request.name, "name")
        return self.instance_pb(self.cancels.cancel(context.principal, ref))

    def GetConsoleOutput(
        self, request: pb.GetConsoleOutputRequest, context: CallContext
    ) -> pb.GetConsoleOutputResponse:
        return self.console_api.output(request, context)

    def AttachConsole(
        self, request_iterator: Iterator[pb.AttachConsoleRequest], context: CallContext
    ) -> Iterator[pb.AttachConsoleResponse]:
        return self.console_api.attach(request_iterator, context)

    def CreateInstanceSnapshot(
        self, request: pb.CreateInstanceSnapshotRequest, context: CallContext
    ) -> pb.CreateInstanceSnapshotResponse:
        image_id = self.instances.snapshot(
            context.principal, v.resource_id(request.id), v.name(request.name, "name"), v.request_key(request)
        )
        return pb.CreateInstanceSnapshotResponse(image_id=image_id)

    # Moves (controller/domain/moves/)

    def ResizeInstance(self, request: pb.ResizeInstanceRequest, context: CallContext) -> pb.Instance:
        ref = v.reference(request.name, "name")
        flavor = v.reference(request.flavor, "flavor")
        return self.instance_pb(self.moves.resize(context.principal, ref, flavor))

    def ConfirmResize(self, request: pb.ConfirmResizeRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.moves.confirm(context.principal, v.reference(request.name, "name")))

    def RevertResize(self, request: pb.RevertResizeRequest, context: CallContext) -> pb.Instance:
        return self.instance_pb(self.moves.revert(context.principal, v.reference(request.name, "name")))
