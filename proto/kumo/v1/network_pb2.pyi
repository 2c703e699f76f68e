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

class NetworkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_TYPE_UNSPECIFIED: _ClassVar[NetworkType]
    NETWORK_TYPE_VXLAN: _ClassVar[NetworkType]
    NETWORK_TYPE_FLAT: _ClassVar[NetworkType]
    NETWORK_TYPE_VLAN: _ClassVar[NetworkType]

class Ipv6AddressMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IPV6_ADDRESS_MODE_UNSPECIFIED: _ClassVar[Ipv6AddressMode]
    IPV6_ADDRESS_MODE_STATIC: _ClassVar[Ipv6AddressMode]
    IPV6_ADDRESS_MODE_SLAAC: _ClassVar[Ipv6AddressMode]

class PortState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORT_STATE_UNSPECIFIED: _ClassVar[PortState]
    PORT_STATE_DOWN: _ClassVar[PortState]
    PORT_STATE_ACTIVE: _ClassVar[PortState]

class SecurityGroupRuleDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECURITY_GROUP_RULE_DIRECTION_UNSPECIFIED: _ClassVar[SecurityGroupRuleDirection]
    SECURITY_GROUP_RULE_DIRECTION_INGRESS: _ClassVar[SecurityGroupRuleDirection]
    SECURITY_GROUP_RULE_DIRECTION_EGRESS: _ClassVar[SecurityGroupRuleDirection]
NETWORK_TYPE_UNSPECIFIED: NetworkType
NETWORK_TYPE_VXLAN: NetworkType
NETWORK_TYPE_FLAT: NetworkType
NETWORK_TYPE_VLAN: NetworkType
IPV6_ADDRESS_MODE_UNSPECIFIED: Ipv6AddressMode
IPV6_ADDRESS_MODE_STATIC: Ipv6AddressMode
IPV6_ADDRESS_MODE_SLAAC: Ipv6AddressMode
PORT_STATE_UNSPECIFIED: PortState
PORT_STATE_DOWN: PortState
PORT_STATE_ACTIVE: PortState
SECURITY_GROUP_RULE_DIRECTION_UNSPECIFIED: SecurityGroupRuleDirection
SECURITY_GROUP_RULE_DIRECTION_INGRESS: SecurityGroupRuleDirection
SECURITY_GROUP_RULE_DIRECTION_EGRESS: SecurityGroupRuleDirection

class Network(_message.Message):
    __slots__ = ("id", "name", "project_id", "description", "shared", "external_routable", "mtu", "vni", "subnet_ids", "create_time", "update_time", "external", "network_type", "physical_network", "segmentation_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    SUBNET_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    description: str
    shared: bool
    external_routable: bool
    mtu: int
    vni: int
    subnet_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    external: bool
    network_type: NetworkType
    physical_network: str
    segmentation_id: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., description: _Optional[str] = ..., shared: _Optional[bool] = ..., external_routable: _Optional[bool] = ..., mtu: _Optional[int] = ..., vni: _Optional[int] = ..., subnet_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., external: _Optional[bool] = ..., network_type: _Optional[_Union[NetworkType, str]] = ..., physical_network: _Optional[str] = ..., segmentation_id: _Optional[int] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("network", "request_id")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    network: Network
    request_id: str
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks", "next_page_token")
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    next_page_token: str
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateNetworkRequest(_message.Message):
    __slots__ = ("network", "update_mask")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    network: Network
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteNetworkRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AllocationPool(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class Subnet(_message.Message):
    __slots__ = ("id", "name", "project_id", "network_id", "description", "ip_version", "cidr", "gateway_ip", "allocation_pools", "dns_servers", "create_time", "update_time", "ipv6_address_mode")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_IP_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_POOLS_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    network_id: str
    description: str
    ip_version: int
    cidr: str
    gateway_ip: str
    allocation_pools: _containers.RepeatedCompositeFieldContainer[AllocationPool]
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    ipv6_address_mode: Ipv6AddressMode
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., network_id: _Optional[str] = ..., description: _Optional[str] = ..., ip_version: _Optional[int] = ..., cidr: _Optional[str] = ..., gateway_ip: _Optional[str] = ..., allocation_pools: _Optional[_Iterable[_Union[AllocationPool, _Mapping]]] = ..., dns_servers: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ipv6_address_mode: _Optional[_Union[Ipv6AddressMode, str]] = ...) -> None: ...

class CreateSubnetRequest(_message.Message):
    __slots__ = ("subnet", "request_id")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    subnet: Subnet
    request_id: str
    def __init__(self, subnet: _Optional[_Union[Subnet, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetSubnetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListSubnetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "network_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    network_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., network_id: _Optional[str] = ...) -> None: ...

class ListSubnetsResponse(_message.Message):
    __slots__ = ("subnets", "next_page_token")
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subnets: _containers.RepeatedCompositeFieldContainer[Subnet]
    next_page_token: str
    def __init__(self, subnets: _Optional[_Iterable[_Union[Subnet, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSubnetRequest(_message.Message):
    __slots__ = ("subnet", "update_mask")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subnet: Subnet
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subnet: _Optional[_Union[Subnet, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteSubnetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PortFixedIp(_message.Message):
    __slots__ = ("subnet_id", "ip_address")
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    subnet_id: str
    ip_address: str
    def __init__(self, subnet_id: _Optional[str] = ..., ip_address: _Optional[str] = ...) -> None: ...

class Port(_message.Message):
    __slots__ = ("id", "name", "project_id", "network_id", "description", "mac_address", "fixed_ips", "security_group_ids", "instance_id", "node_id", "state", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FIXED_IPS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    network_id: str
    description: str
    mac_address: str
    fixed_ips: _containers.RepeatedCompositeFieldContainer[PortFixedIp]
    security_group_ids: _containers.RepeatedScalarFieldContainer[str]
    instance_id: str
    node_id: str
    state: PortState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., network_id: _Optional[str] = ..., description: _Optional[str] = ..., mac_address: _Optional[str] = ..., fixed_ips: _Optional[_Iterable[_Union[PortFixedIp, _Mapping]]] = ..., security_group_ids: _Optional[_Iterable[str]] = ..., instance_id: _Optional[str] = ..., node_id: _Optional[str] = ..., state: _Optional[_Union[PortState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePortRequest(_message.Message):
    __slots__ = ("port", "request_id")
    PORT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    port: Port
    request_id: str
    def __init__(self, port: _Optional[_Union[Port, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetPortRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListPortsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "network_id", "instance_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    network_id: str
    instance_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., network_id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class ListPortsResponse(_message.Message):
    __slots__ = ("ports", "next_page_token")
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[Port]
    next_page_token: str
    def __init__(self, ports: _Optional[_Iterable[_Union[Port, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdatePortRequest(_message.Message):
    __slots__ = ("port", "update_mask")
    PORT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    port: Port
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, port: _Optional[_Union[Port, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeletePortRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SecurityGroup(_message.Message):
    __slots__ = ("id", "name", "project_id", "description", "rules", "is_default", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    description: str
    rules: _containers.RepeatedCompositeFieldContainer[SecurityGroupRule]
    is_default: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., description: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[SecurityGroupRule, _Mapping]]] = ..., is_default: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SecurityGroupRule(_message.Message):
    __slots__ = ("id", "security_group_id", "direction", "ip_version", "protocol", "port_range_min", "port_range_max", "remote_cidr", "remote_group_id", "description", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_CIDR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    security_group_id: str
    direction: SecurityGroupRuleDirection
    ip_version: int
    protocol: str
    port_range_min: int
    port_range_max: int
    remote_cidr: str
    remote_group_id: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., security_group_id: _Optional[str] = ..., direction: _Optional[_Union[SecurityGroupRuleDirection, str]] = ..., ip_version: _Optional[int] = ..., protocol: _Optional[str] = ..., port_range_min: _Optional[int] = ..., port_range_max: _Optional[int] = ..., remote_cidr: _Optional[str] = ..., remote_group_id: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSecurityGroupRequest(_message.Message):
    __slots__ = ("security_group", "request_id")
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    security_group: SecurityGroup
    request_id: str
    def __init__(self, security_group: _Optional[_Union[SecurityGroup, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetSecurityGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsResponse(_message.Message):
    __slots__ = ("security_groups", "next_page_token")
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    security_groups: _containers.RepeatedCompositeFieldContainer[SecurityGroup]
    next_page_token: str
    def __init__(self, security_groups: _Optional[_Iterable[_Union[SecurityGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSecurityGroupRequest(_message.Message):
    __slots__ = ("security_group", "update_mask")
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    security_group: SecurityGroup
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, security_group: _Optional[_Union[SecurityGroup, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteSecurityGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateSecurityGroupRuleRequest(_message.Message):
    __slots__ = ("rule", "request_id")
    RULE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rule: SecurityGroupRule
    request_id: str
    def __init__(self, rule: _Optional[_Union[SecurityGroupRule, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteSecurityGroupRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RouterGateway(_message.Message):
    __slots__ = ("network_id", "ip_address", "port_id")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    ip_address: str
    port_id: str
    def __init__(self, network_id: _Optional[str] = ..., ip_address: _Optional[str] = ..., port_id: _Optional[str] = ...) -> None: ...

class RouterInterface(_message.Message):
    __slots__ = ("subnet_id", "network_id", "ip_address")
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    subnet_id: str
    network_id: str
    ip_address: str
    def __init__(self, subnet_id: _Optional[str] = ..., network_id: _Optional[str] = ..., ip_address: _Optional[str] = ...) -> None: ...

class Router(_message.Message):
    __slots__ = ("id", "name", "project_id", "description", "external_gateway", "interfaces", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    description: str
    external_gateway: RouterGateway
    interfaces: _containers.RepeatedCompositeFieldContainer[RouterInterface]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., description: _Optional[str] = ..., external_gateway: _Optional[_Union[RouterGateway, _Mapping]] = ..., interfaces: _Optional[_Iterable[_Union[RouterInterface, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateRouterRequest(_message.Message):
    __slots__ = ("router", "request_id")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    router: Router
    request_id: str
    def __init__(self, router: _Optional[_Union[Router, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetRouterRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListRoutersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListRoutersResponse(_message.Message):
    __slots__ = ("routers", "next_page_token")
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    routers: _containers.RepeatedCompositeFieldContainer[Router]
    next_page_token: str
    def __init__(self, routers: _Optional[_Iterable[_Union[Router, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateRouterRequest(_message.Message):
    __slots__ = ("router", "update_mask")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    router: Router
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, router: _Optional[_Union[Router, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteRouterRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AddRouterInterfaceRequest(_message.Message):
    __slots__ = ("id", "subnet_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    subnet_id: str
    def __init__(self, id: _Optional[str] = ..., subnet_id: _Optional[str] = ...) -> None: ...

class RemoveRouterInterfaceRequest(_message.Message):
    __slots__ = ("id", "subnet_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    subnet_id: str
    def __init__(self, id: _Optional[str] = ..., subnet_id: _Optional[str] = ...) -> None: ...

class FloatingIp(_message.Message):
    __slots__ = ("id", "project_id", "floating_network_id", "floating_ip_address", "port_id", "fixed_ip_address", "router_id", "description", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FLOATING_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    floating_network_id: str
    floating_ip_address: str
    port_id: str
    fixed_ip_address: str
    router_id: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., floating_network_id: _Optional[str] = ..., floating_ip_address: _Optional[str] = ..., port_id: _Optional[str] = ..., fixed_ip_address: _Optional[str] = ..., router_id: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateFloatingIpRequest(_message.Message):
    __slots__ = ("floating_ip", "request_id")
    FLOATING_IP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    floating_ip: FloatingIp
    request_id: str
    def __init__(self, floating_ip: _Optional[_Union[FloatingIp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetFloatingIpRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListFloatingIpsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "floating_network_id", "port_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FLOATING_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    floating_network_id: str
    port_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., floating_network_id: _Optional[str] = ..., port_id: _Optional[str] = ...) -> None: ...

class ListFloatingIpsResponse(_message.Message):
    __slots__ = ("floating_ips", "next_page_token")
    FLOATING_IPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    floating_ips: _containers.RepeatedCompositeFieldContainer[FloatingIp]
    next_page_token: str
    def __init__(self, floating_ips: _Optional[_Iterable[_Union[FloatingIp, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateFloatingIpRequest(_message.Message):
    __slots__ = ("floating_ip", "update_mask")
    FLOATING_IP_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    floating_ip: FloatingIp
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, floating_ip: _Optional[_Union[FloatingIp, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteFloatingIpRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
