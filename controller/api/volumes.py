"""VolumeService (volumes and volume snapshots), and volumes in CreateInstance
(boot_volume) and Instance messages."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db.models import Instance, Volume, VolumeSnapshot, VolumeType
from controller.domain.volumes import Volumes
from controller.domain.volumes.states import ATTACHED_STATES
from controller.errors import InvalidArgument
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import volume_pb2 as pb
from kumo.v1 import volume_pb2_grpc


def volume_pb(row: Volume) -> pb.Volume:
    return pb.Volume(
        id=row.id,
        name=row.name,
        project_id=row.project_id,
        size_gb=row.size_gb,
        state=row.state,
        source_image_id=row.source_image_id,
        source_snapshot_id=row.source_snapshot_id,
        node_id=row.node_id,
        instance_id=row.instance_id,
        device=row.device,
        bootable=bool(row.source_image_id),
        boot=row.boot,
        fault=row.fault,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
        description=row.description,
        volume_type_id=row.type_id,
    )


def volume_type_pb(row: VolumeType) -> pb.VolumeType:
    return pb.VolumeType(
        id=row.id,
        name=row.name,
        backend=row.backend,
        description=row.description,
        is_default=row.is_default,
        create_time=ts(row.create_time),
    )


def snapshot_pb(row: VolumeSnapshot) -> pb.VolumeSnapshot:
    return pb.VolumeSnapshot(
        id=row.id,
        name=row.name,
        project_id=row.project_id,
        volume_id=row.volume_id,
        size_gb=row.size_gb,
        state=row.state,
        fault=row.fault,
        description=row.description,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
        node_id=row.node_id,
    )


VOLUME_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda vol: v.name(vol.name, "volume.name"),
        "description": lambda vol: v.text(vol.description, "volume.description"),
    }
)


class VolumeServicer(volume_pb2_grpc.VolumeServiceServicer):
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes

    def CreateVolume(self, request: pb.CreateVolumeRequest, context: CallContext) -> pb.Volume:
        vol = request.volume
        row = self.volumes.create(
            context.principal,
            v.name(vol.name, "volume.name"),
            v.text(vol.description, "volume.description"),
            vol.size_gb,
            v.reference(vol.source_image_id, "volume.source_image_id", required=False),
            v.reference(vol.source_snapshot_id, "volume.source_snapshot_id", required=False),
            v.request_key(request),
            v.reference(vol.volume_type_id, "volume.volume_type_id", required=False),
        )
        return volume_pb(row)

    def GetVolume(self, request: pb.GetVolumeRequest, context: CallContext) -> pb.Volume:
        return volume_pb(self.volumes.get(context.principal, v.resource_id(request.id)))

    def ListVolumes(self, request: pb.ListVolumesRequest, context: CallContext) -> pb.ListVolumesResponse:
        if request.name:
            v.name(request.name)
        if request.state and request.state not in pb.VolumeState.values():
            raise InvalidArgument(f"state {request.state} is not a VolumeState")
        rows, token = self.volumes.list(
            context.principal, request.page_size, request.page_token, request.name, request.state
        )
        return pb.ListVolumesResponse(volumes=[volume_pb(r) for r in rows], next_page_token=token)

    def UpdateVolume(self, request: pb.UpdateVolumeRequest, context: CallContext) -> pb.Volume:
        vol = request.volume
        fields = v.updates(request.update_mask.paths, vol, VOLUME_UPDATES)
        return volume_pb(self.volumes.update(context.principal, v.resource_id(vol.id, "volume.id"), fields))

    def DeleteVolume(self, request: pb.DeleteVolumeRequest, context: CallContext) -> empty_pb2.Empty:
        self.volumes.delete(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    def ExtendVolume(self, request: pb.ExtendVolumeRequest, context: CallContext) -> pb.Volume:
        return volume_pb(
            self.volumes.extend(context.principal, v.resource_id(request.id), request.new_size_gb)
        )

    def AttachVolume(self, request: pb.AttachVolumeRequest, context: CallContext) -> pb.Volume:
        return volume_pb(
            self.volumes.attach(
                context.principal,
                v.resource_id(request.id),
                v.resource_id(request.instance_id, "instance_id"),
            )
        )

    def DetachVolume(self, request: pb.DetachVolumeRequest, context: CallContext) -> pb.Volume:
        return volume_pb(self.volumes.detach(context.principal, v.resource_id(request.id)))

    def CreateVolumeSnapshot(
        self, request: pb.CreateVolumeSnapshotRequest, context: CallContext
    ) -> pb.VolumeSnapshot:
        snap = request.snapshot
        if not snap.volume_id:
            raise InvalidArgument("snapshot.volume_id is required (a volume id or name)")
        row = self.volumes.create_snapshot(
            context.principal,
            v.name(snap.name, "snapshot.name"),
            v.text(snap.description, "snapshot.description"),
            v.reference(snap.volume_id, "snapshot.volume_id"),
            v.request_key(request),
        )
        return snapshot_pb(row)

    def GetVolumeSnapshot(
        self, request: pb.GetVolumeSnapshotRequest, context: CallContext
    ) -> pb.VolumeSnapshot:
        return snapshot_pb(self.volumes.get_snapshot(context.principal, v.resource_id(request.id)))

    def ListVolumeSnapshots(
        self, request: pb.ListVolumeSnapshotsRequest, context: CallContext
    ) -> pb.ListVolumeSnapshotsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.volumes.list_snapshots(
            context.principal,
            request.page_size,
            request.page_token,
            request.name,
            v.optional_id(request.volume_id, "volume_id"),
        )
        return pb.ListVolumeSnapshotsResponse(snapshots=[snapshot_pb(r) for r in rows], next_page_token=token)

    def DeleteVolumeSnapshot(
        self, request: pb.DeleteVolumeSnapshotRequest, context: CallContext
    ) -> empty_pb2.Empty:
        self.volumes.delete_snapshot(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Volume types (policy: admins create and delete, every role reads)

    def CreateVolumeType(self, request: pb.CreateVolumeTypeRequest, context: CallContext) -> pb.VolumeType:
        t = request.volume_type
        if not t.backend:
            raise InvalidArgument("volume_type.backend is required")
        row = self.volumes.create_type(
            v.name(t.name, "volume_type.name"),
            t.backend,
            v.text(t.description, "volume_type.description"),
            t.is_default,
            v.request_key(request),
        )
        return volume_type_pb(row)

    def GetVolumeType(self, request: pb.GetVolumeTypeRequest, context: CallContext) -> pb.VolumeType:
        return volume_type_pb(self.volumes.find_type(v.reference(request.id, "id")))

    def ListVolumeTypes(
        self, request: pb.ListVolumeTypesRequest, context: CallContext
    ) -> pb.ListVolumeTypesResponse:
        rows, token = self.volumes.list_types(request.page_size, request.page_token)
        return pb.ListVolumeTypesResponse(
            volume_types=[volume_type_pb(r) for r in rows], next_page_token=token
        )

    def DeleteVolumeType(self, request: pb.DeleteVolumeTypeRequest, context: CallContext) -> empty_pb2.Empty:
        self.volumes.delete_type(v.resource_id(request.id))
        return empty_pb2.Empty()


# CreateInstance and Instance messages


class VolumeInstanceApi:
    """Volumes as an InstanceApiExtension: CreateInstance's boot_volume, and
    the volumes in Instance messages."""

    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes

    def create_options(self, request: cpb.CreateInstanceRequest) -> dict[str, Any]:
        if not request.boot_volume:
            return {}
        if request.image:
            raise InvalidArgument("set image or boot_volume, not both")
        return {"boot_volume": v.reference(request.boot_volume, "boot_volume")}

    def decorate(self, rows: list[Instance], msgs: list[cpb.Instance]) -> None:
        """Instance.volume_ids (attach order) and boot_volume_id, one query per page."""
        by_instance: dict[str, list[Volume]] = {}
        for vol in self.volumes.of_instances([r.id for r in rows]):
            by_instance.setdefault(vol.instance_id, []).append(vol)
        for row, msg in zip(rows, msgs, strict=True):
            for vol in by_instance.get(row.id, []):
                if vol.boot:
                    msg.boot_volume_id = vol.id
                elif vol.state in ATTACHED_STATES:
                    msg.volume_ids.append(vol.id)

    def decorate_created(self, row: Instance, msg: cpb.Instance, options: Mapping[str, Any]) -> None:
        """A create without boot_volume attached no volume (attaching comes after)."""
        if options.get("boot_volume"):
            self.decorate([row], [msg])
