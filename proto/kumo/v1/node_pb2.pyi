import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_READY: _ClassVar[NodeState]
    NODE_STATE_DOWN: _ClassVar[NodeState]
    NODE_STATE_DISABLED: _ClassVar[NodeState]

class NodeDrainState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_DRAIN_STATE_UNSPECIFIED: _ClassVar[NodeDrainState]
    NODE_DRAIN_STATE_DRAINING: _ClassVar[NodeDrainState]
    NODE_DRAIN_STATE_DRAINED: _ClassVar[NodeDrainState]
    NODE_DRAIN_STATE_INCOMPLETE: _ClassVar[NodeDrainState]
    NODE_DRAIN_STATE_CANCELLED: _ClassVar[NodeDrainState]

class EvacuationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVACUATION_OUTCOME_UNSPECIFIED: _ClassVar[EvacuationOutcome]
    EVACUATION_OUTCOME_MOVED: _ClassVar[EvacuationOutcome]
    EVACUATION_OUTCOME_REBUILT: _ClassVar[EvacuationOutcome]
    EVACUATION_OUTCOME_FAILED: _ClassVar[EvacuationOutcome]

class JoinTokenState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOIN_TOKEN_STATE_UNSPECIFIED: _ClassVar[JoinTokenState]
    JOIN_TOKEN_STATE_VALID: _ClassVar[JoinTokenState]
    JOIN_TOKEN_STATE_EXPIRED: _ClassVar[JoinTokenState]
    JOIN_TOKEN_STATE_USED_UP: _ClassVar[JoinTokenState]
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_READY: NodeState
NODE_STATE_DOWN: NodeState
NODE_STATE_DISABLED: NodeState
NODE_DRAIN_STATE_UNSPECIFIED: NodeDrainState
NODE_DRAIN_STATE_DRAINING: NodeDrainState
NODE_DRAIN_STATE_DRAINED: NodeDrainState
NODE_DRAIN_STATE_INCOMPLETE: NodeDrainState
NODE_DRAIN_STATE_CANCELLED: NodeDrainState
EVACUATION_OUTCOME_UNSPECIFIED: EvacuationOutcome
EVACUATION_OUTCOME_MOVED: EvacuationOutcome
EVACUATION_OUTCOME_REBUILT: EvacuationOutcome
EVACUATION_OUTCOME_FAILED: EvacuationOutcome
JOIN_TOKEN_STATE_UNSPECIFIED: JoinTokenState
JOIN_TOKEN_STATE_VALID: JoinTokenState
JOIN_TOKEN_STATE_EXPIRED: JoinTokenState
JOIN_TOKEN_STATE_USED_UP: JoinTokenState

class NodeInventory(_message.Message):
    __slots__ = ("hostname", "vcpus", "memory_mb", "disk_gb", "virt_type", "driver", "arch", "cpu_model", "libvirt_version", "qemu_version", "agent_version", "kernel", "tunnel_ip", "storage_backends", "migration_address", "migration_uri", "migration_port")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    VIRT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    LIBVIRT_VERSION_FIELD_NUMBER: _ClassVar[int]
    QEMU_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_IP_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BACKENDS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_URI_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_PORT_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    virt_type: str
    driver: str
    arch: str
    cpu_model: str
    libvirt_version: str
    qemu_version: str
    agent_version: str
    kernel: str
    tunnel_ip: str
    storage_backends: _containers.RepeatedScalarFieldContainer[str]
    migration_address: str
    migration_uri: str
    migration_port: int
    def __init__(self, hostname: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., virt_type: _Optional[str] = ..., driver: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_model: _Optional[str] = ..., libvirt_version: _Optional[str] = ..., qemu_version: _Optional[str] = ..., agent_version: _Optional[str] = ..., kernel: _Optional[str] = ..., tunnel_ip: _Optional[str] = ..., storage_backends: _Optional[_Iterable[str]] = ..., migration_address: _Optional[str] = ..., migration_uri: _Optional[str] = ..., migration_port: _Optional[int] = ...) -> None: ...

class NodeUsage(_message.Message):
    __slots__ = ("memory_free_mb", "disk_free_gb", "load_1m", "guests_running", "guest_vcpus", "guest_memory_mb")
    MEMORY_FREE_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_GB_FIELD_NUMBER: _ClassVar[int]
    LOAD_1M_FIELD_NUMBER: _ClassVar[int]
    GUESTS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    GUEST_VCPUS_FIELD_NUMBER: _ClassVar[int]
    GUEST_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    memory_free_mb: int
    disk_free_gb: int
    load_1m: float
    guests_running: int
    guest_vcpus: int
    guest_memory_mb: int
    def __init__(self, memory_free_mb: _Optional[int] = ..., disk_free_gb: _Optional[int] = ..., load_1m: _Optional[float] = ..., guests_running: _Optional[int] = ..., guest_vcpus: _Optional[int] = ..., guest_memory_mb: _Optional[int] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "name", "state", "disabled_reason", "connected", "inventory", "usage", "last_heartbeat_time", "desired_revision", "applied_revision", "address", "certificate_serial", "certificate_expire_time", "join_token_id", "create_time", "update_time", "controller_id", "maintenance", "drain", "fenced", "fence_time", "allocation")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REVISION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOIN_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_ID_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    FENCE_TIME_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: NodeState
    disabled_reason: str
    connected: bool
    inventory: NodeInventory
    usage: NodeUsage
    last_heartbeat_time: _timestamp_pb2.Timestamp
    desired_revision: int
    applied_revision: int
    address: str
    certificate_serial: str
    certificate_expire_time: _timestamp_pb2.Timestamp
    join_token_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    controller_id: str
    maintenance: bool
    drain: NodeDrain
    fenced: bool
    fence_time: _timestamp_pb2.Timestamp
    allocation: NodeAllocation
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ..., disabled_reason: _Optional[str] = ..., connected: _Optional[bool] = ..., inventory: _Optional[_Union[NodeInventory, _Mapping]] = ..., usage: _Optional[_Union[NodeUsage, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., desired_revision: _Optional[int] = ..., applied_revision: _Optional[int] = ..., address: _Optional[str] = ..., certificate_serial: _Optional[str] = ..., certificate_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., join_token_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., controller_id: _Optional[str] = ..., maintenance: _Optional[bool] = ..., drain: _Optional[_Union[NodeDrain, _Mapping]] = ..., fenced: _Optional[bool] = ..., fence_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., allocation: _Optional[_Union[NodeAllocation, _Mapping]] = ...) -> None: ...

class NodeAllocation(_message.Message):
    __slots__ = ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio", "allocatable_vcpus", "allocatable_memory_mb", "allocatable_disk_gb", "allocated_vcpus", "allocated_memory_mb", "allocated_disk_gb")
    CPU_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    RAM_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    DISK_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_VCPUS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_DISK_GB_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_VCPUS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_DISK_GB_FIELD_NUMBER: _ClassVar[int]
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    allocatable_vcpus: int
    allocatable_memory_mb: int
    allocatable_disk_gb: int
    allocated_vcpus: int
    allocated_memory_mb: int
    allocated_disk_gb: int
    def __init__(self, cpu_allocation_ratio: _Optional[float] = ..., ram_allocation_ratio: _Optional[float] = ..., disk_allocation_ratio: _Optional[float] = ..., allocatable_vcpus: _Optional[int] = ..., allocatable_memory_mb: _Optional[int] = ..., allocatable_disk_gb: _Optional[int] = ..., allocated_vcpus: _Optional[int] = ..., allocated_memory_mb: _Optional[int] = ..., allocated_disk_gb: _Optional[int] = ...) -> None: ...

class NodeDrain(_message.Message):
    __slots__ = ("state", "instances_total", "migrated", "failed", "start_time", "end_time", "cold", "cold_started")
    STATE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MIGRATED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    COLD_STARTED_FIELD_NUMBER: _ClassVar[int]
    state: NodeDrainState
    instances_total: int
    migrated: int
    failed: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    cold: bool
    cold_started: int
    def __init__(self, state: _Optional[_Union[NodeDrainState, str]] = ..., instances_total: _Optional[int] = ..., migrated: _Optional[int] = ..., failed: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cold: _Optional[bool] = ..., cold_started: _Optional[int] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("id", "cold")
    ID_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    id: str
    cold: bool
    def __init__(self, id: _Optional[str] = ..., cold: _Optional[bool] = ...) -> None: ...

class UndrainNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DisableNodeRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EnableNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RotateNodeCertificateRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class FenceNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UnfenceNodeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EvacuateNodeRequest(_message.Message):
    __slots__ = ("id", "rebuild_local_disks", "target_node_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REBUILD_LOCAL_DISKS_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    rebuild_local_disks: bool
    target_node_id: str
    def __init__(self, id: _Optional[str] = ..., rebuild_local_disks: _Optional[bool] = ..., target_node_id: _Optional[str] = ...) -> None: ...

class InstanceEvacuation(_message.Message):
    __slots__ = ("instance_id", "instance_name", "outcome", "target_node_id", "message")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    instance_name: str
    outcome: EvacuationOutcome
    target_node_id: str
    message: str
    def __init__(self, instance_id: _Optional[str] = ..., instance_name: _Optional[str] = ..., outcome: _Optional[_Union[EvacuationOutcome, str]] = ..., target_node_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EvacuateNodeResponse(_message.Message):
    __slots__ = ("evacuations",)
    EVACUATIONS_FIELD_NUMBER: _ClassVar[int]
    evacuations: _containers.RepeatedCompositeFieldContainer[InstanceEvacuation]
    def __init__(self, evacuations: _Optional[_Iterable[_Union[InstanceEvacuation, _Mapping]]] = ...) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("id", "description", "max_uses", "uses", "state", "expire_time", "create_time", "last_use_time", "creator_user_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    max_uses: int
    uses: int
    state: JoinTokenState
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    creator_user_id: str
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., max_uses: _Optional[int] = ..., uses: _Optional[int] = ..., state: _Optional[_Union[JoinTokenState, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creator_user_id: _Optional[str] = ...) -> None: ...

class CreateJoinTokenRequest(_message.Message):
    __slots__ = ("join_token", "ttl", "request_id")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    join_token: JoinToken
    ttl: _duration_pb2.Duration
    request_id: str
    def __init__(self, join_token: _Optional[_Union[JoinToken, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateJoinTokenResponse(_message.Message):
    __slots__ = ("join_token", "token", "ca_fingerprint")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    join_token: JoinToken
    token: str
    ca_fingerprint: str
    def __init__(self, join_token: _Optional[_Union[JoinToken, _Mapping]] = ..., token: _Optional[str] = ..., ca_fingerprint: _Optional[str] = ...) -> None: ...

class ListJoinTokensRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJoinTokensResponse(_message.Message):
    __slots__ = ("join_tokens", "next_page_token")
    JOIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    join_tokens: _containers.RepeatedCompositeFieldContainer[JoinToken]
    next_page_token: str
    def __init__(self, join_tokens: _Optional[_Iterable[_Union[JoinToken, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteJoinTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
