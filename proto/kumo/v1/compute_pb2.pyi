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

class ServerGroupPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_GROUP_POLICY_UNSPECIFIED: _ClassVar[ServerGroupPolicy]
    SERVER_GROUP_POLICY_AFFINITY: _ClassVar[ServerGroupPolicy]
    SERVER_GROUP_POLICY_ANTI_AFFINITY: _ClassVar[ServerGroupPolicy]

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_BUILDING: _ClassVar[InstanceState]
    INSTANCE_STATE_ACTIVE: _ClassVar[InstanceState]
    INSTANCE_STATE_STOPPED: _ClassVar[InstanceState]
    INSTANCE_STATE_REBOOTING: _ClassVar[InstanceState]
    INSTANCE_STATE_DELETING: _ClassVar[InstanceState]
    INSTANCE_STATE_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_DELETED: _ClassVar[InstanceState]
    INSTANCE_STATE_MIGRATING: _ClassVar[InstanceState]
    INSTANCE_STATE_RESIZING: _ClassVar[InstanceState]
    INSTANCE_STATE_VERIFY_RESIZE: _ClassVar[InstanceState]

class PowerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_STATE_UNSPECIFIED: _ClassVar[PowerState]
    POWER_STATE_RUNNING: _ClassVar[PowerState]
    POWER_STATE_PAUSED: _ClassVar[PowerState]
    POWER_STATE_SHUTDOWN: _ClassVar[PowerState]
    POWER_STATE_CRASHED: _ClassVar[PowerState]
    POWER_STATE_STOPPED: _ClassVar[PowerState]
    POWER_STATE_NO_GUEST: _ClassVar[PowerState]
    POWER_STATE_UNKNOWN: _ClassVar[PowerState]

class RebootType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REBOOT_TYPE_UNSPECIFIED: _ClassVar[RebootType]
    REBOOT_TYPE_SOFT: _ClassVar[RebootType]
    REBOOT_TYPE_HARD: _ClassVar[RebootType]

class ConsoleMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSOLE_MODE_UNSPECIFIED: _ClassVar[ConsoleMode]
    CONSOLE_MODE_READ_ONLY: _ClassVar[ConsoleMode]
    CONSOLE_MODE_READ_WRITE: _ClassVar[ConsoleMode]

class LiveMigrationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVE_MIGRATION_STATE_UNSPECIFIED: _ClassVar[LiveMigrationState]
    LIVE_MIGRATION_STATE_PREPARING: _ClassVar[LiveMigrationState]
    LIVE_MIGRATION_STATE_RUNNING: _ClassVar[LiveMigrationState]
    LIVE_MIGRATION_STATE_COMPLETED: _ClassVar[LiveMigrationState]
    LIVE_MIGRATION_STATE_FAILED: _ClassVar[LiveMigrationState]
SERVER_GROUP_POLICY_UNSPECIFIED: ServerGroupPolicy
SERVER_GROUP_POLICY_AFFINITY: ServerGroupPolicy
SERVER_GROUP_POLICY_ANTI_AFFINITY: ServerGroupPolicy
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_BUILDING: InstanceState
INSTANCE_STATE_ACTIVE: InstanceState
INSTANCE_STATE_STOPPED: InstanceState
INSTANCE_STATE_REBOOTING: InstanceState
INSTANCE_STATE_DELETING: InstanceState
INSTANCE_STATE_ERROR: InstanceState
INSTANCE_STATE_DELETED: InstanceState
INSTANCE_STATE_MIGRATING: InstanceState
INSTANCE_STATE_RESIZING: InstanceState
INSTANCE_STATE_VERIFY_RESIZE: InstanceState
POWER_STATE_UNSPECIFIED: PowerState
POWER_STATE_RUNNING: PowerState
POWER_STATE_PAUSED: PowerState
POWER_STATE_SHUTDOWN: PowerState
POWER_STATE_CRASHED: PowerState
POWER_STATE_STOPPED: PowerState
POWER_STATE_NO_GUEST: PowerState
POWER_STATE_UNKNOWN: PowerState
REBOOT_TYPE_UNSPECIFIED: RebootType
REBOOT_TYPE_SOFT: RebootType
REBOOT_TYPE_HARD: RebootType
CONSOLE_MODE_UNSPECIFIED: ConsoleMode
CONSOLE_MODE_READ_ONLY: ConsoleMode
CONSOLE_MODE_READ_WRITE: ConsoleMode
LIVE_MIGRATION_STATE_UNSPECIFIED: LiveMigrationState
LIVE_MIGRATION_STATE_PREPARING: LiveMigrationState
LIVE_MIGRATION_STATE_RUNNING: LiveMigrationState
LIVE_MIGRATION_STATE_COMPLETED: LiveMigrationState
LIVE_MIGRATION_STATE_FAILED: LiveMigrationState

class Flavor(_message.Message):
    __slots__ = ("id", "name", "description", "vcpus", "ram_mb", "disk_gb", "is_public", "project_ids", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    is_public: bool
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., vcpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., is_public: _Optional[bool] = ..., project_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateFlavorRequest(_message.Message):
    __slots__ = ("flavor", "request_id")
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    flavor: Flavor
    request_id: str
    def __init__(self, flavor: _Optional[_Union[Flavor, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetFlavorRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListFlavorsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListFlavorsResponse(_message.Message):
    __slots__ = ("flavors", "next_page_token")
    FLAVORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flavors: _containers.RepeatedCompositeFieldContainer[Flavor]
    next_page_token: str
    def __init__(self, flavors: _Optional[_Iterable[_Union[Flavor, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateFlavorRequest(_message.Message):
    __slots__ = ("flavor", "update_mask")
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    flavor: Flavor
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, flavor: _Optional[_Union[Flavor, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteFlavorRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Keypair(_message.Message):
    __slots__ = ("id", "name", "user_id", "public_key", "fingerprint", "private_key", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    user_id: str
    public_key: str
    fingerprint: str
    private_key: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., user_id: _Optional[str] = ..., public_key: _Optional[str] = ..., fingerprint: _Optional[str] = ..., private_key: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateKeypairRequest(_message.Message):
    __slots__ = ("keypair", "request_id")
    KEYPAIR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    keypair: Keypair
    request_id: str
    def __init__(self, keypair: _Optional[_Union[Keypair, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetKeypairRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListKeypairsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListKeypairsResponse(_message.Message):
    __slots__ = ("keypairs", "next_page_token")
    KEYPAIRS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keypairs: _containers.RepeatedCompositeFieldContainer[Keypair]
    next_page_token: str
    def __init__(self, keypairs: _Optional[_Iterable[_Union[Keypair, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteKeypairRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ServerGroup(_message.Message):
    __slots__ = ("id", "name", "project_id", "policy", "member_ids", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    policy: ServerGroupPolicy
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., policy: _Optional[_Union[ServerGroupPolicy, str]] = ..., member_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateServerGroupRequest(_message.Message):
    __slots__ = ("server_group", "request_id")
    SERVER_GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    server_group: ServerGroup
    request_id: str
    def __init__(self, server_group: _Optional[_Union[ServerGroup, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetServerGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListServerGroupsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListServerGroupsResponse(_message.Message):
    __slots__ = ("server_groups", "next_page_token")
    SERVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    server_groups: _containers.RepeatedCompositeFieldContainer[ServerGroup]
    next_page_token: str
    def __init__(self, server_groups: _Optional[_Iterable[_Union[ServerGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteServerGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "name", "project_id", "user_id", "image_id", "flavor_id", "keypair_id", "server_group_id", "node_id", "state", "fault", "vcpus", "ram_mb", "disk_gb", "task", "create_time", "update_time", "launch_time", "nics", "volume_ids", "boot_volume_id", "power_state", "ha")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_ID_FIELD_NUMBER: _ClassVar[int]
    KEYPAIR_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_TIME_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_IDS_FIELD_NUMBER: _ClassVar[int]
    BOOT_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    HA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str
    flavor_id: str
    keypair_id: str
    server_group_id: str
    node_id: str
    state: InstanceState
    fault: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    task: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    launch_time: _timestamp_pb2.Timestamp
    nics: _containers.RepeatedCompositeFieldContainer[InstanceNic]
    volume_ids: _containers.RepeatedScalarFieldContainer[str]
    boot_volume_id: str
    power_state: PowerState
    ha: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., image_id: _Optional[str] = ..., flavor_id: _Optional[str] = ..., keypair_id: _Optional[str] = ..., server_group_id: _Optional[str] = ..., node_id: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., fault: _Optional[str] = ..., vcpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., task: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., launch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nics: _Optional[_Iterable[_Union[InstanceNic, _Mapping]]] = ..., volume_ids: _Optional[_Iterable[str]] = ..., boot_volume_id: _Optional[str] = ..., power_state: _Optional[_Union[PowerState, str]] = ..., ha: _Optional[bool] = ...) -> None: ...

class InstanceNic(_message.Message):
    __slots__ = ("port_id", "network_id", "mac_address", "ip_addresses", "floating_ip_address")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    network_id: str
    mac_address: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    floating_ip_address: str
    def __init__(self, port_id: _Optional[str] = ..., network_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., floating_ip_address: _Optional[str] = ...) -> None: ...

class NetworkRequest(_message.Message):
    __slots__ = ("network", "port_id", "fixed_ip")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_FIELD_NUMBER: _ClassVar[int]
    network: str
    port_id: str
    fixed_ip: str
    def __init__(self, network: _Optional[str] = ..., port_id: _Optional[str] = ..., fixed_ip: _Optional[str] = ...) -> None: ...

class CreateInstanceRequest(_message.Message):
    __slots__ = ("name", "image", "flavor", "keypair", "user_data", "server_group_id", "request_id", "networks", "security_groups", "boot_volume", "ha")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    KEYPAIR_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    BOOT_VOLUME_FIELD_NUMBER: _ClassVar[int]
    HA_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    flavor: str
    keypair: str
    user_data: bytes
    server_group_id: str
    request_id: str
    networks: _containers.RepeatedCompositeFieldContainer[NetworkRequest]
    security_groups: _containers.RepeatedScalarFieldContainer[str]
    boot_volume: str
    ha: bool
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., flavor: _Optional[str] = ..., keypair: _Optional[str] = ..., user_data: _Optional[bytes] = ..., server_group_id: _Optional[str] = ..., request_id: _Optional[str] = ..., networks: _Optional[_Iterable[_Union[NetworkRequest, _Mapping]]] = ..., security_groups: _Optional[_Iterable[str]] = ..., boot_volume: _Optional[str] = ..., ha: _Optional[bool] = ...) -> None: ...

class UpdateInstanceRequest(_message.Message):
    __slots__ = ("instance", "update_mask")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "state", "project_id", "node_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    state: InstanceState
    project_id: str
    node_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., project_id: _Optional[str] = ..., node_id: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StartInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RebootInstanceRequest(_message.Message):
    __slots__ = ("id", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: RebootType
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[RebootType, str]] = ...) -> None: ...

class GetConsoleOutputRequest(_message.Message):
    __slots__ = ("id", "tail_lines")
    ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    id: str
    tail_lines: int
    def __init__(self, id: _Optional[str] = ..., tail_lines: _Optional[int] = ...) -> None: ...

class GetConsoleOutputResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class AttachConsoleRequest(_message.Message):
    __slots__ = ("id", "mode", "tail_bytes", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    mode: ConsoleMode
    tail_bytes: int
    data: bytes
    def __init__(self, id: _Optional[str] = ..., mode: _Optional[_Union[ConsoleMode, str]] = ..., tail_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class AttachConsoleResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class CreateInstanceSnapshotRequest(_message.Message):
    __slots__ = ("id", "name", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateInstanceSnapshotResponse(_message.Message):
    __slots__ = ("image_id",)
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    def __init__(self, image_id: _Optional[str] = ...) -> None: ...

class MigrateInstanceRequest(_message.Message):
    __slots__ = ("name", "live", "node")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    live: bool
    node: str
    def __init__(self, name: _Optional[str] = ..., live: _Optional[bool] = ..., node: _Optional[str] = ...) -> None: ...

class ResizeInstanceRequest(_message.Message):
    __slots__ = ("name", "flavor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    flavor: str
    def __init__(self, name: _Optional[str] = ..., flavor: _Optional[str] = ...) -> None: ...

class ConfirmResizeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevertResizeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LiveMigration(_message.Message):
    __slots__ = ("id", "instance_id", "project_id", "source_node_id", "target_node_id", "state", "bytes_total", "bytes_processed", "downtime_ms", "fault", "drain_node_id", "create_time", "update_time", "end_time", "cancelled_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    DOWNTIME_MS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    instance_id: str
    project_id: str
    source_node_id: str
    target_node_id: str
    state: LiveMigrationState
    bytes_total: int
    bytes_processed: int
    downtime_ms: int
    fault: str
    drain_node_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    cancelled_by: str
    def __init__(self, id: _Optional[str] = ..., instance_id: _Optional[str] = ..., project_id: _Optional[str] = ..., source_node_id: _Optional[str] = ..., target_node_id: _Optional[str] = ..., state: _Optional[_Union[LiveMigrationState, str]] = ..., bytes_total: _Optional[int] = ..., bytes_processed: _Optional[int] = ..., downtime_ms: _Optional[int] = ..., fault: _Optional[str] = ..., drain_node_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancelled_by: _Optional[str] = ...) -> None: ...

class ListLiveMigrationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "instance_id", "node_id", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    instance_id: str
    node_id: str
    state: LiveMigrationState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., instance_id: _Optional[str] = ..., node_id: _Optional[str] = ..., state: _Optional[_Union[LiveMigrationState, str]] = ...) -> None: ...

class CancelMigrationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListLiveMigrationsResponse(_message.Message):
    __slots__ = ("live_migrations", "next_page_token")
    LIVE_MIGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    live_migrations: _containers.RepeatedCompositeFieldContainer[LiveMigration]
    next_page_token: str
    def __init__(self, live_migrations: _Optional[_Iterable[_Union[LiveMigration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
