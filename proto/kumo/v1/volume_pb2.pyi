import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VolumeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOLUME_STATE_UNSPECIFIED: _ClassVar[VolumeState]
    VOLUME_STATE_CREATING: _ClassVar[VolumeState]
    VOLUME_STATE_AVAILABLE: _ClassVar[VolumeState]
    VOLUME_STATE_ATTACHING: _ClassVar[VolumeState]
    VOLUME_STATE_IN_USE: _ClassVar[VolumeState]
    VOLUME_STATE_DETACHING: _ClassVar[VolumeState]
    VOLUME_STATE_EXTENDING: _ClassVar[VolumeState]
    VOLUME_STATE_DELETING: _ClassVar[VolumeState]
    VOLUME_STATE_ERROR: _ClassVar[VolumeState]

class VolumeSnapshotState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOLUME_SNAPSHOT_STATE_UNSPECIFIED: _ClassVar[VolumeSnapshotState]
    VOLUME_SNAPSHOT_STATE_CREATING: _ClassVar[VolumeSnapshotState]
    VOLUME_SNAPSHOT_STATE_AVAILABLE: _ClassVar[VolumeSnapshotState]
    VOLUME_SNAPSHOT_STATE_DELETING: _ClassVar[VolumeSnapshotState]
    VOLUME_SNAPSHOT_STATE_ERROR: _ClassVar[VolumeSnapshotState]
VOLUME_STATE_UNSPECIFIED: VolumeState
VOLUME_STATE_CREATING: VolumeState
VOLUME_STATE_AVAILABLE: VolumeState
VOLUME_STATE_ATTACHING: VolumeState
VOLUME_STATE_IN_USE: VolumeState
VOLUME_STATE_DETACHING: VolumeState
VOLUME_STATE_EXTENDING: VolumeState
VOLUME_STATE_DELETING: VolumeState
VOLUME_STATE_ERROR: VolumeState
VOLUME_SNAPSHOT_STATE_UNSPECIFIED: VolumeSnapshotState
VOLUME_SNAPSHOT_STATE_CREATING: VolumeSnapshotState
VOLUME_SNAPSHOT_STATE_AVAILABLE: VolumeSnapshotState
VOLUME_SNAPSHOT_STATE_DELETING: VolumeSnapshotState
VOLUME_SNAPSHOT_STATE_ERROR: VolumeSnapshotState

class Volume(_message.Message):
    __slots__ = ("id", "name", "project_id", "size_gb", "state", "source_image_id", "source_snapshot_id", "node_id", "instance_id", "device", "bootable", "boot", "fault", "create_time", "update_time", "description", "volume_type_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BOOTABLE_FIELD_NUMBER: _ClassVar[int]
    BOOT_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VOLUME_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    size_gb: int
    state: VolumeState
    source_image_id: str
    source_snapshot_id: str
    node_id: str
    instance_id: str
    device: str
    bootable: bool
    boot: bool
    fault: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    description: str
    volume_type_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., state: _Optional[_Union[VolumeState, str]] = ..., source_image_id: _Optional[str] = ..., source_snapshot_id: _Optional[str] = ..., node_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., device: _Optional[str] = ..., bootable: _Optional[bool] = ..., boot: _Optional[bool] = ..., fault: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., volume_type_id: _Optional[str] = ...) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("volume", "request_id")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    request_id: str
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    state: VolumeState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[VolumeState, str]] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes", "next_page_token")
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    next_page_token: str
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateVolumeRequest(_message.Message):
    __slots__ = ("volume", "update_mask")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExtendVolumeRequest(_message.Message):
    __slots__ = ("id", "new_size_gb")
    ID_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    id: str
    new_size_gb: int
    def __init__(self, id: _Optional[str] = ..., new_size_gb: _Optional[int] = ...) -> None: ...

class AttachVolumeRequest(_message.Message):
    __slots__ = ("id", "instance_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    instance_id: str
    def __init__(self, id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class DetachVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class VolumeSnapshot(_message.Message):
    __slots__ = ("id", "name", "project_id", "volume_id", "size_gb", "state", "fault", "description", "create_time", "update_time", "node_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    volume_id: str
    size_gb: int
    state: VolumeSnapshotState
    fault: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    node_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., volume_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., state: _Optional[_Union[VolumeSnapshotState, str]] = ..., fault: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node_id: _Optional[str] = ...) -> None: ...

class CreateVolumeSnapshotRequest(_message.Message):
    __slots__ = ("snapshot", "request_id")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot: VolumeSnapshot
    request_id: str
    def __init__(self, snapshot: _Optional[_Union[VolumeSnapshot, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetVolumeSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListVolumeSnapshotsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "volume_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    volume_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., volume_id: _Optional[str] = ...) -> None: ...

class ListVolumeSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots", "next_page_token")
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[VolumeSnapshot]
    next_page_token: str
    def __init__(self, snapshots: _Optional[_Iterable[_Union[VolumeSnapshot, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteVolumeSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class VolumeType(_message.Message):
    __slots__ = ("id", "name", "backend", "description", "is_default", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    backend: str
    description: str
    is_default: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., backend: _Optional[str] = ..., description: _Optional[str] = ..., is_default: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateVolumeTypeRequest(_message.Message):
    __slots__ = ("volume_type", "request_id")
    VOLUME_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    volume_type: VolumeType
    request_id: str
    def __init__(self, volume_type: _Optional[_Union[VolumeType, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetVolumeTypeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListVolumeTypesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVolumeTypesResponse(_message.Message):
    __slots__ = ("volume_types", "next_page_token")
    VOLUME_TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volume_types: _containers.RepeatedCompositeFieldContainer[VolumeType]
    next_page_token: str
    def __init__(self, volume_types: _Optional[_Iterable[_Union[VolumeType, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteVolumeTypeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
