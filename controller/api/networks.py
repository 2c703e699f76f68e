"""NetworkService: networks, subnets, ports, security groups, routers,
floating IPs; and the
CreateInstance fields that ask for NICs (networks, security_groups)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db.models import (
    FloatingIp,
    Instance,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from controller.domain.networks import Networks
from controller.domain.networks.addresses import check_subnet as check_subnet_fields
from controller.domain.networks.addresses import subnet_pools
from controller.domain.networks.ports import NicRequest
from controller.domain.networks.security_groups import EGRESS, INGRESS
from controller.errors import InvalidArgument
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import network_pb2 as pb
from kumo.v1 import network_pb2_grpc

MAX_NICS = 16
MAX_GROUPS = 16
DIRECTIONS = {
    pb.SECURITY_GROUP_RULE_DIRECTION_INGRESS: INGRESS,
    pb.SECURITY_GROUP_RULE_DIRECTION_EGRESS: EGRESS,
}
DIRECTION_ENUM = {name: value for value, name in DIRECTIONS.items()}


def _group_refs(values: list[str], field: str) -> list[str]:
    if len(values) > MAX_GROUPS:
        raise InvalidArgument(f"at most {MAX_GROUPS} {field}, got {len(values)}")
    return [v.reference(g, f"{field}[{i}]") for i, g in enumerate(values)]


def _optional_name(value: str, field: str) -> str:
    return v.name(value, field) if value else ""


NETWORK_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda n: v.name(n.name, "network.name"),
        "description": lambda n: v.text(n.description, "network.description"),
        "mtu": lambda n: n.mtu,
        "shared": lambda n: n.shared,
        "external_routable": lambda n: n.external_routable,
    }
)
SUBNET_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda s: v.name(s.name, "subnet.name"),
        "description": lambda s: v.text(s.description, "subnet.description"),
        "dns_servers": lambda s: list(s.dns_servers),
    }
)
PORT_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda p: _optional_name(p.name, "port.name"),
        "description": lambda p: v.text(p.description, "port.description"),
        # the port's groups, not a column
        "security_group_ids": lambda p: _group_refs(list(p.security_group_ids), "port.security_group_ids"),
    }
)
ROUTER_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda r: v.name(r.name, "router.name"),
        "description": lambda r: v.text(r.description, "router.description"),
        # the gateway port, not a column
        "external_gateway": lambda r: v.optional_id(
            r.external_gateway.network_id, "router.external_gateway.network_id"
        ),
    }
)
FLOATING_IP_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "description": lambda f: v.text(f.description, "floating_ip.description"),
        # the association, not a column
        "port_id": lambda f: v.optional_id(f.port_id, "floating_ip.port_id"),
    }
)
SECURITY_GROUP_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda g: v.name(g.name, "security_group.name"),
        "description": lambda g: v.text(g.description, "security_group.description"),
    }
)


def nic_options(request: cpb.CreateInstanceRequest) -> dict[str, Any]:
    """CreateInstance's `networks` and `security_groups`, checked."""
    if len(request.networks) > MAX_NICS:
        raise InvalidArgument(f"at most {MAX_NICS} networks, got {len(request.networks)}")
    nics = []
    for i, n in enumerate(request.networks):
        where = f"networks[{i}]"
        if n.port_id:
            if n.network or n.fixed_ip:
                raise InvalidArgument(f"{where}: give either port_id or network (with fixed_ip), not both")
            nics.append(NicRequest(port_id=v.resource_id(n.port_id, f"{where}.port_id")))
            continue
        if not n.network:
            raise InvalidArgument(f"{where}: network or port_id is required")
        fixed = ""
        if n.fixed_ip:
            try:
                fixed = str(ipaddress.ip_address(n.fixed_ip))
            except ValueError:
                raise InvalidArgument(f"{where}.fixed_ip {n.fixed_ip[:64]!r} is not an IP address") from None
        nics.append(NicRequest(network=v.reference(n.network, f"{where}.network"), fixed_ip=fixed))
    return {
        "networks": nics,
        "security_groups": _group_refs(list(request.security_groups), "security_groups"),
    }


class NetworkServicer(network_pb2_grpc.NetworkServiceServicer):
    def __init__(self, networks: Networks) -> None:
        self.networks = networks

    # Conversions

    def network_pb(self, row: Network) -> pb.Network:
        return self.network_pbs([row])[0]

    def network_pbs(self, rows: list[Network]) -> list[pb.Network]:
        subnets = self.networks.subnet_ids([r.id for r in rows])
        return [self._network_pb(r, subnets.get(r.id, [])) for r in rows]

    @staticmethod
    def _network_pb(row: Network, subnet_ids: list[str]) -> pb.Network:
        return pb.Network(
            id=row.id,
            name=row.name,
            project_id=row.project_id,
            description=row.description,
            shared=row.shared,
            external_routable=row.external_routable,
            external=row.external,
            network_type=row.network_type,
            physical_network=row.physical_network,
            segmentation_id=row.segmentation_id,
            mtu=row.mtu,
            vni=row.vni,
            subnet_ids=subnet_ids,
            create_time=ts(row.create_time),
            update_time=ts(row.update_time),
        )

    def subnet_pb(self, row: Subnet) -> pb.Subnet:
        import json

        return pb.Subnet(
            id=row.id,
            name=row.name,
            project_id=self.networks.subnet_project(row),
            network_id=row.network_id,
            description=row.description,
            ip_version=row.ip_version,
            cidr=row.cidr,
            gateway_ip=row.gateway_ip,
            allocation_pools=[pb.AllocationPool(start=str(a), end=str(b)) for a, b in subnet_pools(row)],
            dns_servers=json.loads(row.dns_servers),
            ipv6_address_mode=row.ipv6_address_mode,
            create_time=ts(row.create_time),
            update_time=ts(row.update_time),
        )

    def port_pbs(self, rows: list[Port]) -> list[pb.Port]:
        ips, groups, nodes = self.networks.port_details(rows)
        return [
            pb.Port(
                id=r.id,
                name=r.name,
                project_id=r.project_id,
                network_id=r.network_id,
                description=r.description,
                mac_address=r.mac_address,
                fixed_ips=[pb.PortFixedIp(subnet_id=s, ip_address=ip) for s, ip in ips.get(r.id, [])],
                security_group_ids=groups.get(r.id, []),
                instance_id=r.instance_id,
                node_id=nodes.get(r.instance_id, "") if r.instance_id else "",
                state=pb.PORT_STATE_ACTIVE if r.instance_id else pb.PORT_STATE_DOWN,
                create_time=ts(r.create_time),
                update_time=ts(r.update_time),
            )
            for r in rows
        ]

    @staticmethod
    def rule_pb(r: SecurityGroupRule) -> pb.SecurityGroupRule:
        return pb.SecurityGroupRule(
            id=r.id,
            security_group_id=r.security_group_id,
            direction=DIRECTION_ENUM[r.direction],
            ip_version=r.ip_version,
            protocol=r.protocol,
            port_range_min=r.port_range_min,
            port_range_max=r.port_range_max,
            remote_cidr=r.remote_cidr,
            remote_group_id=r.remote_group_id or "",
            description=r.description,
            create_time=ts(r.create_time),
        )

    def group_pbs(self, rows: list[SecurityGroup]) -> list[pb.SecurityGroup]:
        rules = self.networks.rules(r.id for r in rows)
        return [
            pb.SecurityGroup(
                id=r.id,
                name=r.name,
                project_id=r.project_id,
                description=r.description,
                rules=[self.rule_pb(x) for x in rules.get(r.id, [])],
                is_default=r.is_default,
                create_time=ts(r.create_time),
                update_time=ts(r.update_time),
            )
            for r in rows
        ]

    def router_pbs(self, rows: list[Router]) -> list[pb.Router]:
        interfaces, gateways = self.networks.router_details(rows)
        out = []
        for r in rows:
            net_id, ip = gateways.get(r.id, ("", ""))
            out.append(
                pb.Router(
                    id=r.id,
                    name=r.name,
                    project_id=r.project_id,
                    description=r.description,
                    external_gateway=pb.RouterGateway(
                        network_id=net_id, ip_address=ip, port_id=r.gateway_port_id or ""
                    ),
                    interfaces=[
                        pb.RouterInterface(subnet_id=s.id, network_id=s.network_id, ip_address=s.gateway_ip)
                        for s in interfaces.get(r.id, [])
                    ],
                    create_time=ts(r.create_time),
                    update_time=ts(r.update_time),
                )
            )
        return out

    @staticmethod
    def floating_ip_pb(f: FloatingIp) -> pb.FloatingIp:
        return pb.FloatingIp(
            id=f.id,
            project_id=f.project_id,
            floating_network_id=f.network_id,
            floating_ip_address=f.floating_ip_address,
            port_id=f.port_id or "",
            fixed_ip_address=f.fixed_ip_address,
            router_id=f.router_id or "",
            description=f.description,
            create_time=ts(f.create_time),
            update_time=ts(f.update_time),
        )

    # Networks

    def CreateNetwork(self, request: pb.CreateNetworkRequest, context: CallContext) -> pb.Network:
        n = request.network
        fields = {
            "name": v.name(n.name, "network.name"),
            "description": v.text(n.description, "network.description"),
            "shared": n.shared,
            "external_routable": n.external_routable,
            "mtu": n.mtu,
            "external": n.external,
            "network_type": n.network_type,
            "physical_network": n.physical_network,
            "segmentation_id": n.segmentation_id,
        }
        row = self.networks.create_network(context.principal, fields, v.request_key(request))
        return self.network_pb(row)

    def GetNetwork(self, request: pb.GetNetworkRequest, context: CallContext) -> pb.Network:
        return self.network_pb(self.networks.get_network(context.principal, v.resource_id(request.id)))

    def ListNetworks(self, request: pb.ListNetworksRequest, context: CallContext) -> pb.ListNetworksResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.networks.list_networks(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListNetworksResponse(networks=self.network_pbs(rows), next_page_token=token)

    def UpdateNetwork(self, request: pb.UpdateNetworkRequest, context: CallContext) -> pb.Network:
        n = request.network
        fields = v.updates(request.update_mask.paths, n, NETWORK_UPDATES)
        row = self.networks.update_network(context.principal, v.resource_id(n.id, "network.id"), fields)
        return self.network_pb(row)

    def DeleteNetwork(self, request: pb.DeleteNetworkRequest, context: CallContext) -> empty_pb2.Empty:
        self.networks.delete_network(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Subnets

    def CreateSubnet(self, request: pb.CreateSubnetRequest, context: CallContext) -> pb.Subnet:
        s = request.subnet
        name = v.name(s.name, "subnet.name")
        network_id = v.resource_id(s.network_id, "subnet.network_id")
        if not s.cidr:
            raise InvalidArgument("subnet.cidr is required, e.g. 10.0.0.0/24")
        fields = check_subnet_fields(
            s.cidr,
            s.ip_version,
            s.gateway_ip,
            [(p.start, p.end) for p in s.allocation_pools],
            list(s.dns_servers),
            s.ipv6_address_mode,
        )
        row = self.networks.create_subnet(
            context.principal,
            network_id,
            name,
            v.text(s.description, "subnet.description"),
            fields,
            v.request_key(request),
        )
        return self.subnet_pb(row)

    def GetSubnet(self, request: pb.GetSubnetRequest, context: CallContext) -> pb.Subnet:
        return self.subnet_pb(self.networks.get_subnet(context.principal, v.resource_id(request.id)))

    def ListSubnets(self, request: pb.ListSubnetsRequest, context: CallContext) -> pb.ListSubnetsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.networks.list_subnets(
            context.principal,
            request.page_size,
            request.page_token,
            request.name,
            v.optional_id(request.network_id, "network_id"),
        )
        return pb.ListSubnetsResponse(subnets=[self.subnet_pb(r) for r in rows], next_page_token=token)

    def UpdateSubnet(self, request: pb.UpdateSubnetRequest, context: CallContext) -> pb.Subnet:
        s = request.subnet
        fields = v.updates(request.update_mask.paths, s, SUBNET_UPDATES)
        row = self.networks.update_subnet(context.principal, v.resource_id(s.id, "subnet.id"), fields)
        return self.subnet_pb(row)

    def DeleteSubnet(self, request: pb.DeleteSubnetRequest, context: CallContext) -> empty_pb2.Empty:
        self.networks.delete_subnet(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Ports

    def CreatePort(self, request: pb.CreatePortRequest, context: CallContext) -> pb.Port:
        p = request.port
        if p.mac_address or p.instance_id or p.node_id:
            raise InvalidArgument("port.mac_address, instance_id and node_id are output only")
        if len(p.fixed_ips) > 8:
            raise InvalidArgument(f"at most 8 fixed_ips, got {len(p.fixed_ips)}")
        fixed = [
            (v.optional_id(f.subnet_id, f"port.fixed_ips[{i}].subnet_id"), f.ip_address)
            for i, f in enumerate(p.fixed_ips)
        ]
        row = self.networks.create_port(
            context.principal,
            v.resource_id(p.network_id, "port.network_id"),
            _optional_name(p.name, "port.name"),
            v.text(p.description, "port.description"),
            fixed,
            _group_refs(list(p.security_group_ids), "port.security_group_ids"),
            v.request_key(request),
        )
        return self.port_pbs([row])[0]

    def GetPort(self, request: pb.GetPortRequest, context: CallContext) -> pb.Port:
        return self.port_pbs([self.networks.get_port(context.principal, v.resource_id(request.id))])[0]

    def ListPorts(self, request: pb.ListPortsRequest, context: CallContext) -> pb.ListPortsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.networks.list_ports(
            context.principal,
            request.page_size,
            request.page_token,
            request.name,
            v.optional_id(request.network_id, "network_id"),
            v.optional_id(request.instance_id, "instance_id"),
        )
        return pb.ListPortsResponse(ports=self.port_pbs(rows), next_page_token=token)

    def UpdatePort(self, request: pb.UpdatePortRequest, context: CallContext) -> pb.Port:
        p = request.port
        fields = v.updates(request.update_mask.paths, p, PORT_UPDATES)
        groups = fields.pop("security_group_ids", None)
        row = self.networks.update_port(context.principal, v.resource_id(p.id, "port.id"), fields, groups)
        return self.port_pbs([row])[0]

    def DeletePort(self, request: pb.DeletePortRequest, context: CallContext) -> empty_pb2.Empty:
        self.networks.delete_port(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Security groups

    def CreateSecurityGroup(
        self, request: pb.CreateSecurityGroupRequest, context: CallContext
    ) -> pb.SecurityGroup:
        g = request.security_group
        row = self.networks.create_group(
            context.principal,
            v.name(g.name, "security_group.name"),
            v.text(g.description, "security_group.description"),
            v.request_key(request),
        )
        return self.group_pbs([row])[0]

    def GetSecurityGroup(self, request: pb.GetSecurityGroupRequest, context: CallContext) -> pb.SecurityGroup:
        return self.group_pbs([self.networks.get_group(context.principal, v.resource_id(request.id))])[0]

    def ListSecurityGroups(
        self, request: pb.ListSecurityGroupsRequest, context: CallContext
    ) -> pb.ListSecurityGroupsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.networks.list_groups(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListSecurityGroupsResponse(security_groups=self.group_pbs(rows), next_page_token=token)

    def UpdateSecurityGroup(
        self, request: pb.UpdateSecurityGroupRequest, context: CallContext
    ) -> pb.SecurityGroup:
        g = request.security_group
        fields = v.updates(request.update_mask.paths, g, SECURITY_GROUP_UPDATES)
        row = self.networks.update_group(context.principal, v.resource_id(g.id, "security_group.id"), fields)
        return self.group_pbs([row])[0]

    def DeleteSecurityGroup(
        self, request: pb.DeleteSecurityGroupRequest, context: CallContext
    ) -> empty_pb2.Empty:
        self.networks.delete_group(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    def CreateSecurityGroupRule(
        self, request: pb.CreateSecurityGroupRuleRequest, context: CallContext
    ) -> pb.SecurityGroupRule:
        r = request.rule
        fields = {
            "security_group": v.resource_id(r.security_group_id, "rule.security_group_id"),
            "direction": DIRECTIONS.get(r.direction, ""),
            "ip_version": r.ip_version,
            "protocol": r.protocol,
            "port_range_min": r.port_range_min,
            "port_range_max": r.port_range_max,
            "remote_cidr": r.remote_cidr,
            "remote_group": v.optional_id(r.remote_group_id, "rule.remote_group_id") or None,
            "description": v.text(r.description, "rule.description"),
        }
        return self.rule_pb(self.networks.create_rule(context.principal, fields, v.request_key(request)))

    def DeleteSecurityGroupRule(
        self, request: pb.DeleteSecurityGroupRuleRequest, context: CallContext
    ) -> empty_pb2.Empty:
        self.networks.delete_rule(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Routers

    def CreateRouter(self, request: pb.CreateRouterRequest, context: CallContext) -> pb.Router:
        r = request.router
        if r.interfaces:
            raise InvalidArgument("router.interfaces is output only; use AddRouterInterface")
        fields = {
            "name": v.name(r.name, "router.name"),
            "description": v.text(r.description, "router.description"),
        }
        gateway = v.optional_id(r.external_gateway.network_id, "router.external_gateway.network_id")
        row = self.networks.create_router(context.principal, fields, gateway, v.request_key(request))
        return self.router_pbs([row])[0]

    def GetRouter(self, request: pb.GetRouterRequest, context: CallContext) -> pb.Router:
        return self.router_pbs([self.networks.get_router(context.principal, v.resource_id(request.id))])[0]

    def ListRouters(self, request: pb.ListRoutersRequest, context: CallContext) -> pb.ListRoutersResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.networks.list_routers(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListRoutersResponse(routers=self.router_pbs(rows), next_page_token=token)

    def UpdateRouter(self, request: pb.UpdateRouterRequest, context: CallContext) -> pb.Router:
        r = request.router
        fields = v.updates(request.update_mask.paths, r, ROUTER_UPDATES)
        gateway = fields.pop("external_gateway", None)
        row = self.networks.update_router(
            context.principal, v.resource_id(r.id, "router.id"), fields, gateway
        )
        return self.router_pbs([row])[0]

    def DeleteRouter(self, request: pb.DeleteRouterRequest, context: CallContext) -> empty_pb2.Empty:
        self.networks.delete_router(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    def AddRouterInterface(self, request: pb.AddRouterInterfaceRequest, context: CallContext) -> pb.Router:
        row = self.networks.add_router_interface(
            context.principal, v.resource_id(request.id), v.resource_id(request.subnet_id, "subnet_id")
        )
        return self.router_pbs([row])[0]

    def RemoveRouterInterface(
        self, request: pb.RemoveRouterInterfaceRequest, context: CallContext
    ) -> pb.Router:
        row = self.networks.remove_router_interface(
            context.principal, v.resource_id(request.id), v.resource_id(request.subnet_id, "subnet_id")
        )
        return self.router_pbs([row])[0]

    # Floating IPs

    def CreateFloatingIp(self, request: pb.CreateFloatingIpRequest, context: CallContext) -> pb.FloatingIp:
        f = request.floating_ip
        if f.floating_ip_address or f.fixed_ip_address or f.router_id:
            raise InvalidArgument(
                "floating_ip.floating_ip_address, fixed_ip_address and router_id are output only"
            )
        row = self.networks.create_floating_ip(
            context.principal,
            v.resource_id(f.floating_network_id, "floating_ip.floating_network_id"),
            v.optional_id(f.port_id, "floating_ip.port_id"),
            v.text(f.description, "floating_ip.description"),
            v.request_key(request),
        )
        return self.floating_ip_pb(row)

    def GetFloatingIp(self, request: pb.GetFloatingIpRequest, context: CallContext) -> pb.FloatingIp:
        return self.floating_ip_pb(
            self.networks.get_floating_ip(context.principal, v.resource_id(request.id))
        )

    def ListFloatingIps(
        self, request: pb.ListFloatingIpsRequest, context: CallContext
    ) -> pb.ListFloatingIpsResponse:
        rows, token = self.networks.list_floating_ips(
            context.principal,
            request.page_size,
            request.page_token,
            v.optional_id(request.floating_network_id, "floating_network_id"),
            v.optional_id(request.port_id, "port_id"),
        )
        return pb.ListFloatingIpsResponse(
            floating_ips=[self.floating_ip_pb(r) for r in rows], next_page_token=token
        )

    def UpdateFloatingIp(self, request: pb.UpdateFloatingIpRequest, context: CallContext) -> pb.FloatingIp:
        f = request.floating_ip
        fields = v.updates(request.update_mask.paths, f, FLOATING_IP_UPDATES)
        port_id = fields.pop("port_id", None)
        row = self.networks.update_floating_ip(
            context.principal, v.resource_id(f.id, "floating_ip.id"), fields, port_id
        )
        return self.floating_ip_pb(row)

    def DeleteFloatingIp(self, request: pb.DeleteFloatingIpRequest, context: CallContext) -> empty_pb2.Empty:
        self.networks.delete_floating_ip(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()


class NetworkInstanceApi:
    """Networks as an InstanceApiExtension: CreateInstance's networks and
    security_groups, and the NICs in Instance messages."""

    def __init__(self, networks: Networks) -> None:
        self.networks = networks

    def create_options(self, request: cpb.CreateInstanceRequest) -> dict[str, Any]:
        return nic_options(request)

    def decorate(self, rows: list[Instance], msgs: list[cpb.Instance]) -> None:
        """The instances' NICs, for a page in one go."""
        ids = [r.id for r in rows]
        nics = self.networks.nics(ids)
        floating = self.networks.port_floating_ips([n.port_id for ns in nics.values() for n in ns])
        for row, msg in zip(rows, msgs, strict=True):
            for n in nics.get(row.id, []):
                msg.nics.append(
                    cpb.InstanceNic(
                        port_id=n.port_id,
                        network_id=n.network_id,
                        mac_address=n.mac_address,
                        ip_addresses=n.ip_addresses,
                        floating_ip_address=floating.get(n.port_id, ""),
                    )
                )

    def decorate_created(self, row: Instance, msg: cpb.Instance, options: Mapping[str, Any]) -> None:
        """A create without networks bound no port to the instance."""
        if options.get("networks"):
            self.decorate([row], [msg])
