import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from kumo.v1 import image_pb2 as _image_pb2
from kumo.v1 import node_pb2 as _node_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GuestPowerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUEST_POWER_STATE_UNSPECIFIED: _ClassVar[GuestPowerState]
    GUEST_POWER_STATE_RUNNING: _ClassVar[GuestPowerState]
    GUEST_POWER_STATE_PAUSED: _ClassVar[GuestPowerState]
    GUEST_POWER_STATE_SHUTDOWN: _ClassVar[GuestPowerState]
    GUEST_POWER_STATE_CRASHED: _ClassVar[GuestPowerState]
    GUEST_POWER_STATE_STOPPED: _ClassVar[GuestPowerState]

class MigrationJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MIGRATION_JOB_STATE_UNSPECIFIED: _ClassVar[MigrationJobState]
    MIGRATION_JOB_STATE_RUNNING: _ClassVar[MigrationJobState]
    MIGRATION_JOB_STATE_COMPLETED: _ClassVar[MigrationJobState]
    MIGRATION_JOB_STATE_FAILED: _ClassVar[MigrationJobState]
    MIGRATION_JOB_STATE_PREPARED: _ClassVar[MigrationJobState]

class ConsoleKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSOLE_KIND_UNSPECIFIED: _ClassVar[ConsoleKind]
    CONSOLE_KIND_LOG: _ClassVar[ConsoleKind]
    CONSOLE_KIND_FOLLOW: _ClassVar[ConsoleKind]
    CONSOLE_KIND_INTERACTIVE: _ClassVar[ConsoleKind]

class DesiredPower(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DESIRED_POWER_UNSPECIFIED: _ClassVar[DesiredPower]
    DESIRED_POWER_RUNNING: _ClassVar[DesiredPower]
    DESIRED_POWER_STOPPED: _ClassVar[DesiredPower]
GUEST_POWER_STATE_UNSPECIFIED: GuestPowerState
GUEST_POWER_STATE_RUNNING: GuestPowerState
GUEST_POWER_STATE_PAUSED: GuestPowerState
GUEST_POWER_STATE_SHUTDOWN: GuestPowerState
GUEST_POWER_STATE_CRASHED: GuestPowerState
GUEST_POWER_STATE_STOPPED: GuestPowerState
MIGRATION_JOB_STATE_UNSPECIFIED: MigrationJobState
MIGRATION_JOB_STATE_RUNNING: MigrationJobState
MIGRATION_JOB_STATE_COMPLETED: MigrationJobState
MIGRATION_JOB_STATE_FAILED: MigrationJobState
MIGRATION_JOB_STATE_PREPARED: MigrationJobState
CONSOLE_KIND_UNSPECIFIED: ConsoleKind
CONSOLE_KIND_LOG: ConsoleKind
CONSOLE_KIND_FOLLOW: ConsoleKind
CONSOLE_KIND_INTERACTIVE: ConsoleKind
DESIRED_POWER_UNSPECIFIED: DesiredPower
DESIRED_POWER_RUNNING: DesiredPower
DESIRED_POWER_STOPPED: DesiredPower

class GetCaBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CaBundle(_message.Message):
    __slots__ = ("ca_pem", "fingerprint")
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ca_pem: str
    fingerprint: str
    def __init__(self, ca_pem: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("token", "csr_pem", "name")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: str
    name: str
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CheckCertificateRequest(_message.Message):
    __slots__ = ("certificate_pem",)
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    def __init__(self, certificate_pem: _Optional[str] = ...) -> None: ...

class CheckCertificateResponse(_message.Message):
    __slots__ = ("accepted", "reason", "message")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    message: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("node_id", "certificate_pem", "ca_pem", "node_endpoint")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    NODE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    certificate_pem: str
    ca_pem: str
    node_endpoint: str
    def __init__(self, node_id: _Optional[str] = ..., certificate_pem: _Optional[str] = ..., ca_pem: _Optional[str] = ..., node_endpoint: _Optional[str] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("hello", "heartbeat", "ack", "renew_certificate")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    RENEW_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    hello: NodeHello
    heartbeat: Heartbeat
    ack: DesiredStateAck
    renew_certificate: RenewCertificateRequest
    def __init__(self, hello: _Optional[_Union[NodeHello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ack: _Optional[_Union[DesiredStateAck, _Mapping]] = ..., renew_certificate: _Optional[_Union[RenewCertificateRequest, _Mapping]] = ...) -> None: ...

class RenewCertificateRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: str
    def __init__(self, csr_pem: _Optional[str] = ...) -> None: ...

class RenewedCertificate(_message.Message):
    __slots__ = ("certificate_pem",)
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    def __init__(self, certificate_pem: _Optional[str] = ...) -> None: ...

class NodeHello(_message.Message):
    __slots__ = ("inventory", "applied_revision")
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    inventory: _node_pb2.NodeInventory
    applied_revision: int
    def __init__(self, inventory: _Optional[_Union[_node_pb2.NodeInventory, _Mapping]] = ..., applied_revision: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq", "usage", "inventory", "guests", "volumes")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    GUESTS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    usage: _node_pb2.NodeUsage
    inventory: _node_pb2.NodeInventory
    guests: _containers.RepeatedCompositeFieldContainer[GuestStatus]
    volumes: _containers.RepeatedCompositeFieldContainer[VolumeStatus]
    def __init__(self, seq: _Optional[int] = ..., usage: _Optional[_Union[_node_pb2.NodeUsage, _Mapping]] = ..., inventory: _Optional[_Union[_node_pb2.NodeInventory, _Mapping]] = ..., guests: _Optional[_Iterable[_Union[GuestStatus, _Mapping]]] = ..., volumes: _Optional[_Iterable[_Union[VolumeStatus, _Mapping]]] = ...) -> None: ...

class VolumeStatus(_message.Message):
    __slots__ = ("volume_id", "size_gb", "snapshot_ids", "fault")
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_IDS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    size_gb: int
    snapshot_ids: _containers.RepeatedScalarFieldContainer[str]
    fault: str
    def __init__(self, volume_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., snapshot_ids: _Optional[_Iterable[str]] = ..., fault: _Optional[str] = ...) -> None: ...

class GuestStatus(_message.Message):
    __slots__ = ("instance_id", "domain_name", "power_state", "vcpus", "memory_mb", "reboot_generation", "fault", "snapshot_done_image_id", "attached_volume_ids", "snapshot_fault", "move_step", "migration")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_NAME_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    REBOOT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_DONE_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_VOLUME_IDS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FAULT_FIELD_NUMBER: _ClassVar[int]
    MOVE_STEP_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    domain_name: str
    power_state: GuestPowerState
    vcpus: int
    memory_mb: int
    reboot_generation: int
    fault: str
    snapshot_done_image_id: str
    attached_volume_ids: _containers.RepeatedScalarFieldContainer[str]
    snapshot_fault: str
    move_step: str
    migration: MigrationProgress
    def __init__(self, instance_id: _Optional[str] = ..., domain_name: _Optional[str] = ..., power_state: _Optional[_Union[GuestPowerState, str]] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., reboot_generation: _Optional[int] = ..., fault: _Optional[str] = ..., snapshot_done_image_id: _Optional[str] = ..., attached_volume_ids: _Optional[_Iterable[str]] = ..., snapshot_fault: _Optional[str] = ..., move_step: _Optional[str] = ..., migration: _Optional[_Union[MigrationProgress, _Mapping]] = ...) -> None: ...

class MigrationProgress(_message.Message):
    __slots__ = ("migration_id", "state", "bytes_total", "bytes_processed", "downtime_ms", "error")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    DOWNTIME_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    state: MigrationJobState
    bytes_total: int
    bytes_processed: int
    downtime_ms: int
    error: str
    def __init__(self, migration_id: _Optional[str] = ..., state: _Optional[_Union[MigrationJobState, str]] = ..., bytes_total: _Optional[int] = ..., bytes_processed: _Optional[int] = ..., downtime_ms: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class DesiredStateAck(_message.Message):
    __slots__ = ("revision", "error")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    revision: int
    error: str
    def __init__(self, revision: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("welcome", "desired_state", "heartbeat_ack", "certificate", "console_open")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_OPEN_FIELD_NUMBER: _ClassVar[int]
    welcome: SessionWelcome
    desired_state: DesiredStateUpdate
    heartbeat_ack: HeartbeatAck
    certificate: RenewedCertificate
    console_open: ConsoleOpen
    def __init__(self, welcome: _Optional[_Union[SessionWelcome, _Mapping]] = ..., desired_state: _Optional[_Union[DesiredStateUpdate, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ..., certificate: _Optional[_Union[RenewedCertificate, _Mapping]] = ..., console_open: _Optional[_Union[ConsoleOpen, _Mapping]] = ...) -> None: ...

class ConsoleOpen(_message.Message):
    __slots__ = ("console_id", "instance_id", "kind", "tail_bytes")
    CONSOLE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    console_id: str
    instance_id: str
    kind: ConsoleKind
    tail_bytes: int
    def __init__(self, console_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., kind: _Optional[_Union[ConsoleKind, str]] = ..., tail_bytes: _Optional[int] = ...) -> None: ...

class SessionWelcome(_message.Message):
    __slots__ = ("node_id", "heartbeat_interval", "grace_period", "controller_node_endpoints")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_NODE_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    heartbeat_interval: _duration_pb2.Duration
    grace_period: _duration_pb2.Duration
    controller_node_endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., controller_node_endpoints: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class NodeDesiredState(_message.Message):
    __slots__ = ("enabled", "rotate_certificate", "instances", "networks", "ports", "security_groups", "volumes", "routers", "floating_ips")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ROTATE_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IPS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    rotate_certificate: bool
    instances: _containers.RepeatedCompositeFieldContainer[DesiredInstance]
    networks: _containers.RepeatedCompositeFieldContainer[DesiredNetwork]
    ports: _containers.RepeatedCompositeFieldContainer[DesiredPort]
    security_groups: _containers.RepeatedCompositeFieldContainer[DesiredSecurityGroup]
    volumes: _containers.RepeatedCompositeFieldContainer[DesiredVolume]
    routers: _containers.RepeatedCompositeFieldContainer[DesiredRouter]
    floating_ips: _containers.RepeatedCompositeFieldContainer[DesiredFloatingIp]
    def __init__(self, enabled: _Optional[bool] = ..., rotate_certificate: _Optional[bool] = ..., instances: _Optional[_Iterable[_Union[DesiredInstance, _Mapping]]] = ..., networks: _Optional[_Iterable[_Union[DesiredNetwork, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[DesiredPort, _Mapping]]] = ..., security_groups: _Optional[_Iterable[_Union[DesiredSecurityGroup, _Mapping]]] = ..., volumes: _Optional[_Iterable[_Union[DesiredVolume, _Mapping]]] = ..., routers: _Optional[_Iterable[_Union[DesiredRouter, _Mapping]]] = ..., floating_ips: _Optional[_Iterable[_Union[DesiredFloatingIp, _Mapping]]] = ...) -> None: ...

class DesiredRouter(_message.Message):
    __slots__ = ("id", "external_network_id", "gateway_address", "external_gateway_ip", "interface_cidrs", "interface_network_ids", "gateway_address6", "external_gateway_ip6")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_GATEWAY_IP_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_CIDRS_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_NETWORK_IDS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ADDRESS6_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_GATEWAY_IP6_FIELD_NUMBER: _ClassVar[int]
    id: str
    external_network_id: str
    gateway_address: str
    external_gateway_ip: str
    interface_cidrs: _containers.RepeatedScalarFieldContainer[str]
    interface_network_ids: _containers.RepeatedScalarFieldContainer[str]
    gateway_address6: str
    external_gateway_ip6: str
    def __init__(self, id: _Optional[str] = ..., external_network_id: _Optional[str] = ..., gateway_address: _Optional[str] = ..., external_gateway_ip: _Optional[str] = ..., interface_cidrs: _Optional[_Iterable[str]] = ..., interface_network_ids: _Optional[_Iterable[str]] = ..., gateway_address6: _Optional[str] = ..., external_gateway_ip6: _Optional[str] = ...) -> None: ...

class DesiredFloatingIp(_message.Message):
    __slots__ = ("id", "external_network_id", "floating_address", "fixed_ip_address", "port_id", "network_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    FLOATING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    external_network_id: str
    floating_address: str
    fixed_ip_address: str
    port_id: str
    network_id: str
    def __init__(self, id: _Optional[str] = ..., external_network_id: _Optional[str] = ..., floating_address: _Optional[str] = ..., fixed_ip_address: _Optional[str] = ..., port_id: _Optional[str] = ..., network_id: _Optional[str] = ...) -> None: ...

class DesiredNetwork(_message.Message):
    __slots__ = ("id", "vni", "mtu", "external_routable", "subnets", "peers", "external", "network_type", "physical_network", "segmentation_id", "dns_domain", "dns_records")
    ID_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    DNS_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DNS_RECORDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    vni: int
    mtu: int
    external_routable: bool
    subnets: _containers.RepeatedCompositeFieldContainer[DesiredSubnet]
    peers: _containers.RepeatedCompositeFieldContainer[OverlayPeer]
    external: bool
    network_type: int
    physical_network: str
    segmentation_id: int
    dns_domain: str
    dns_records: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, id: _Optional[str] = ..., vni: _Optional[int] = ..., mtu: _Optional[int] = ..., external_routable: _Optional[bool] = ..., subnets: _Optional[_Iterable[_Union[DesiredSubnet, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[OverlayPeer, _Mapping]]] = ..., external: _Optional[bool] = ..., network_type: _Optional[int] = ..., physical_network: _Optional[str] = ..., segmentation_id: _Optional[int] = ..., dns_domain: _Optional[str] = ..., dns_records: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class DnsRecord(_message.Message):
    __slots__ = ("hostname", "ip_addresses")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hostname: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class DesiredSubnet(_message.Message):
    __slots__ = ("id", "cidr", "ip_version", "gateway_ip", "dns_servers", "ipv6_slaac")
    ID_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_IP_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    IPV6_SLAAC_FIELD_NUMBER: _ClassVar[int]
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    ipv6_slaac: bool
    def __init__(self, id: _Optional[str] = ..., cidr: _Optional[str] = ..., ip_version: _Optional[int] = ..., gateway_ip: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., ipv6_slaac: _Optional[bool] = ...) -> None: ...

class OverlayPeer(_message.Message):
    __slots__ = ("node_id", "tunnel_ip", "mac_addresses")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_IP_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    tunnel_ip: str
    mac_addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., tunnel_ip: _Optional[str] = ..., mac_addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class DesiredPort(_message.Message):
    __slots__ = ("id", "network_id", "mac_address", "fixed_ips", "instance_id", "security_group_ids", "dns_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FIXED_IPS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    DNS_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    network_id: str
    mac_address: str
    fixed_ips: _containers.RepeatedCompositeFieldContainer[FixedIp]
    instance_id: str
    security_group_ids: _containers.RepeatedScalarFieldContainer[str]
    dns_name: str
    def __init__(self, id: _Optional[str] = ..., network_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., fixed_ips: _Optional[_Iterable[_Union[FixedIp, _Mapping]]] = ..., instance_id: _Optional[str] = ..., security_group_ids: _Optional[_Iterable[str]] = ..., dns_name: _Optional[str] = ...) -> None: ...

class FixedIp(_message.Message):
    __slots__ = ("subnet_id", "ip_address")
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    subnet_id: str
    ip_address: str
    def __init__(self, subnet_id: _Optional[str] = ..., ip_address: _Optional[str] = ...) -> None: ...

class DesiredSecurityGroup(_message.Message):
    __slots__ = ("id", "rules", "member_ips")
    ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IPS_FIELD_NUMBER: _ClassVar[int]
    id: str
    rules: _containers.RepeatedCompositeFieldContainer[DesiredSecurityGroupRule]
    member_ips: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[DesiredSecurityGroupRule, _Mapping]]] = ..., member_ips: _Optional[_Iterable[str]] = ...) -> None: ...

class DesiredSecurityGroupRule(_message.Message):
    __slots__ = ("id", "direction", "ip_version", "protocol", "port_range_min", "port_range_max", "remote_cidr", "remote_group_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_CIDR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    direction: str
    ip_version: int
    protocol: str
    port_range_min: int
    port_range_max: int
    remote_cidr: str
    remote_group_id: str
    def __init__(self, id: _Optional[str] = ..., direction: _Optional[str] = ..., ip_version: _Optional[int] = ..., protocol: _Optional[str] = ..., port_range_min: _Optional[int] = ..., port_range_max: _Optional[int] = ..., remote_cidr: _Optional[str] = ..., remote_group_id: _Optional[str] = ...) -> None: ...

class DesiredVolume(_message.Message):
    __slots__ = ("id", "size_gb", "image_sha256", "image_format", "image_size_bytes", "source_snapshot_id", "snapshot_ids", "backend", "delete")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_IDS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    id: str
    size_gb: int
    image_sha256: str
    image_format: _image_pb2.DiskFormat
    image_size_bytes: int
    source_snapshot_id: str
    snapshot_ids: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    delete: bool
    def __init__(self, id: _Optional[str] = ..., size_gb: _Optional[int] = ..., image_sha256: _Optional[str] = ..., image_format: _Optional[_Union[_image_pb2.DiskFormat, str]] = ..., image_size_bytes: _Optional[int] = ..., source_snapshot_id: _Optional[str] = ..., snapshot_ids: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., delete: _Optional[bool] = ...) -> None: ...

class DesiredInstance(_message.Message):
    __slots__ = ("id", "hostname", "image_sha256", "image_format", "image_size_bytes", "vcpus", "ram_mb", "disk_gb", "power", "reboot_generation", "reboot_hard", "user_data", "public_keys", "snapshot_image_id", "image_id", "port_ids", "volume_ids", "boot_volume_id", "move_step", "export_disk_move_id", "import_disk_sha256", "import_disk_size_bytes", "incoming_migration_id", "outgoing_migration")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    REBOOT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    REBOOT_HARD_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_IDS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_IDS_FIELD_NUMBER: _ClassVar[int]
    BOOT_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    MOVE_STEP_FIELD_NUMBER: _ClassVar[int]
    EXPORT_DISK_MOVE_ID_FIELD_NUMBER: _ClassVar[int]
    IMPORT_DISK_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMPORT_DISK_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    INCOMING_MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTGOING_MIGRATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostname: str
    image_sha256: str
    image_format: _image_pb2.DiskFormat
    image_size_bytes: int
    vcpus: int
    ram_mb: int
    disk_gb: int
    power: DesiredPower
    reboot_generation: int
    reboot_hard: bool
    user_data: bytes
    public_keys: _containers.RepeatedScalarFieldContainer[str]
    snapshot_image_id: str
    image_id: str
    port_ids: _containers.RepeatedScalarFieldContainer[str]
    volume_ids: _containers.RepeatedScalarFieldContainer[str]
    boot_volume_id: str
    move_step: str
    export_disk_move_id: str
    import_disk_sha256: str
    import_disk_size_bytes: int
    incoming_migration_id: str
    outgoing_migration: OutgoingMigration
    def __init__(self, id: _Optional[str] = ..., hostname: _Optional[str] = ..., image_sha256: _Optional[str] = ..., image_format: _Optional[_Union[_image_pb2.DiskFormat, str]] = ..., image_size_bytes: _Optional[int] = ..., vcpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., power: _Optional[_Union[DesiredPower, str]] = ..., reboot_generation: _Optional[int] = ..., reboot_hard: _Optional[bool] = ..., user_data: _Optional[bytes] = ..., public_keys: _Optional[_Iterable[str]] = ..., snapshot_image_id: _Optional[str] = ..., image_id: _Optional[str] = ..., port_ids: _Optional[_Iterable[str]] = ..., volume_ids: _Optional[_Iterable[str]] = ..., boot_volume_id: _Optional[str] = ..., move_step: _Optional[str] = ..., export_disk_move_id: _Optional[str] = ..., import_disk_sha256: _Optional[str] = ..., import_disk_size_bytes: _Optional[int] = ..., incoming_migration_id: _Optional[str] = ..., outgoing_migration: _Optional[_Union[OutgoingMigration, _Mapping]] = ...) -> None: ...

class OutgoingMigration(_message.Message):
    __slots__ = ("migration_id", "target_node_id", "target_address", "target_uri", "copy_storage", "timeout_seconds", "target_port")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_URI_FIELD_NUMBER: _ClassVar[int]
    COPY_STORAGE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    target_node_id: str
    target_address: str
    target_uri: str
    copy_storage: bool
    timeout_seconds: int
    target_port: int
    def __init__(self, migration_id: _Optional[str] = ..., target_node_id: _Optional[str] = ..., target_address: _Optional[str] = ..., target_uri: _Optional[str] = ..., copy_storage: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ..., target_port: _Optional[int] = ...) -> None: ...

class DownloadBlobRequest(_message.Message):
    __slots__ = ("sha256", "offset")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    offset: int
    def __init__(self, sha256: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadBlobResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class UploadSnapshotRequest(_message.Message):
    __slots__ = ("instance_id", "image_id", "data", "move_id")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MOVE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    image_id: str
    data: bytes
    move_id: str
    def __init__(self, instance_id: _Optional[str] = ..., image_id: _Optional[str] = ..., data: _Optional[bytes] = ..., move_id: _Optional[str] = ...) -> None: ...

class UploadSnapshotResponse(_message.Message):
    __slots__ = ("image_id", "sha256")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    sha256: str
    def __init__(self, image_id: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ReportConsoleRequest(_message.Message):
    __slots__ = ("instance_id", "data")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    data: bytes
    def __init__(self, instance_id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ConsoleStreamRequest(_message.Message):
    __slots__ = ("console_id", "error", "data")
    CONSOLE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    console_id: str
    error: str
    data: bytes
    def __init__(self, console_id: _Optional[str] = ..., error: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ConsoleStreamResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class DesiredStateUpdate(_message.Message):
    __slots__ = ("revision", "full", "base_revision", "state", "removed_ids")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    BASE_REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_IDS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    full: bool
    base_revision: int
    state: NodeDesiredState
    removed_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revision: _Optional[int] = ..., full: _Optional[bool] = ..., base_revision: _Optional[int] = ..., state: _Optional[_Union[NodeDesiredState, _Mapping]] = ..., removed_ids: _Optional[_Iterable[str]] = ...) -> None: ...
