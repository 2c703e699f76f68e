"""Networks with their subnets, ports, routers and floating IPs (and a
topology picture), security groups and rules, and keypairs (a made private
key is shown once, as a download, and never kept)."""

from __future__ import annotations

import uuid

from starlette.responses import Response
from starlette.routing import Route

from dashboard.charts import TopoNet, topology
from dashboard.listing import list_all
from dashboard.web import Ctx, Web
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import network_pb2 as npb

DIRECTIONS = {
    "ingress": npb.SECURITY_GROUP_RULE_DIRECTION_INGRESS,
    "egress": npb.SECURITY_GROUP_RULE_DIRECTION_EGRESS,
}
PROTOCOLS = {"any": "", "tcp": "tcp", "udp": "udp", "icmp": "icmp"}


def routes(web: Web) -> list[Route]:
    def networks(ctx: Ctx) -> Response:
        n = ctx.api.networks
        nets = list_all(n.ListNetworks, npb.ListNetworksRequest(), "networks")
        subnets = list_all(n.ListSubnets, npb.ListSubnetsRequest(), "subnets")
        ports = list_all(n.ListPorts, npb.ListPortsRequest(), "ports")
        routers = list_all(n.ListRouters, npb.ListRoutersRequest(), "routers")
        fips = list_all(n.ListFloatingIps, npb.ListFloatingIpsRequest(), "floating_ips")
        groups = list_all(n.ListSecurityGroups, npb.ListSecurityGroupsRequest(), "security_groups")
        servers = {
            s.id: s.name
            for s in list_all(ctx.api.compute.ListInstances, cpb.ListInstancesRequest(), "instances")
        }
        pictures = [
            TopoNet(
                net.name,
                [s.cidr for s in subnets if s.network_id == net.id],
                net.external,
                sorted(
                    {
                        servers.get(p.instance_id, p.instance_id[:8])
                        for p in ports
                        if p.network_id == net.id and p.instance_id
                    }
                ),
                sorted(
                    r.name
                    for r in routers
                    if r.external_gateway.network_id == net.id
                    or any(i.network_id == net.id for i in r.interfaces)
                ),
            )
            for net in nets
        ]
        return ctx.render(
            "networks.html",
            networks=nets,
            subnets=subnets,
            ports=ports,
            routers=routers,
            fips=fips,
            servers=servers,
            groups=groups,
            group_names={g.id: g.name for g in groups},
            subnet_names={x.id: f"{x.name} {x.cidr}" for x in subnets},
            net_names={x.id: x.name for x in nets},
            picture=topology(pictures) if nets else "",
        )

    def create_network(ctx: Ctx) -> Response:
        f = ctx.form
        name, cidr = f.required("name", 63), f.get("cidr")
        net = ctx.api.networks.CreateNetwork(
            npb.CreateNetworkRequest(network=npb.Network(name=name), request_id=str(uuid.uuid4()))
        )
        if cidr:
            ctx.api.networks.CreateSubnet(
                npb.CreateSubnetRequest(
                    subnet=npb.Subnet(name=f"{name}-v4", network_id=net.id, ip_version=4, cidr=cidr),
                    request_id=str(uuid.uuid4()),
                )
            )
        return ctx.redirect("/networks", f"network {net.name} created")

    def delete_network(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteNetwork(npb.DeleteNetworkRequest(id=ctx.params["id"]))
        return ctx.redirect("/networks", "network deleted")

    def create_fip(ctx: Ctx) -> Response:
        fip = ctx.api.networks.CreateFloatingIp(
            npb.CreateFloatingIpRequest(
                floating_ip=npb.FloatingIp(floating_network_id=ctx.form.required("network")),
                request_id=str(uuid.uuid4()),
            )
        )
        return ctx.redirect("/networks", f"floating IP {fip.floating_ip_address} allocated")

    def delete_fip(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteFloatingIp(npb.DeleteFloatingIpRequest(id=ctx.params["id"]))
        return ctx.redirect("/networks", "floating IP released")

    def security_groups(ctx: Ctx) -> Response:
        groups = list_all(
            ctx.api.networks.ListSecurityGroups, npb.ListSecurityGroupsRequest(), "security_groups"
        )
        return ctx.render("security_groups.html", groups=groups, Direction=npb.SecurityGroupRuleDirection)

    def create_group(ctx: Ctx) -> Response:
        g = ctx.api.networks.CreateSecurityGroup(
            npb.CreateSecurityGroupRequest(
                security_group=npb.SecurityGroup(name=ctx.form.required("name", 63)),
                request_id=str(uuid.uuid4()),
            )
        )
        return ctx.redirect("/security-groups", f"security group {g.name} created")

    def delete_group(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteSecurityGroup(npb.DeleteSecurityGroupRequest(id=ctx.params["id"]))
        return ctx.redirect("/security-groups", "security group deleted")

    def create_rule(ctx: Ctx) -> Response:
        f = ctx.form
        protocol = f.choice("protocol", PROTOCOLS)
        low = f.integer("port_min", 0, 65535, 0) if protocol in ("tcp", "udp") else 0
        high = f.integer("port_max", 0, 65535, low) if protocol in ("tcp", "udp") else 0
        ctx.api.networks.CreateSecurityGroupRule(
            npb.CreateSecurityGroupRuleRequest(
                rule=npb.SecurityGroupRule(
                    security_group_id=ctx.params["id"],
                    direction=f.choice("direction", DIRECTIONS),
                    ip_version=4,
                    protocol=protocol,
                    port_range_min=low,
                    port_range_max=high,
                    remote_cidr=f.get("remote_cidr"),
                ),
                request_id=str(uuid.uuid4()),
            )
        )
        return ctx.redirect("/security-groups", "rule added")

    def delete_rule(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteSecurityGroupRule(npb.DeleteSecurityGroupRuleRequest(id=ctx.params["rule"]))
        return ctx.redirect("/security-groups", "rule deleted")

    def keypairs(ctx: Ctx) -> Response:
        page = ctx.page_of(ctx.api.compute.ListKeypairs, cpb.ListKeypairsRequest(), "keypairs")
        return ctx.render("keypairs.html", keypairs=page.items, page=page)

    def create_keypair(ctx: Ctx) -> Response:
        f = ctx.form
        kp = ctx.api.compute.CreateKeypair(
            cpb.CreateKeypairRequest(
                keypair=cpb.Keypair(name=f.required("name", 63), public_key=f.get("public_key")),
                request_id=str(uuid.uuid4()),
            )
        )
        if not kp.private_key:
            return ctx.redirect("/keypairs", f"keypair {kp.name} imported")
        # Made here: the private key goes to the browser once, as a file, and is kept nowhere.
        return Response(
            kp.private_key,
            media_type="application/x-pem-file",
            headers={"content-disposition": f'attachment; filename="{kp.name}.pem"'},
        )

    def delete_keypair(ctx: Ctx) -> Response:
        ctx.api.compute.DeleteKeypair(cpb.DeleteKeypairRequest(id=ctx.params["id"]))
        return ctx.redirect("/keypairs", "keypair deleted")

    return [
        Route("/networks", web.page(networks)),
        Route("/networks", web.page(create_network), methods=["POST"]),
        Route("/networks/{id}/delete", web.page(delete_network), methods=["POST"]),
        Route("/floating-ips", web.page(create_fip), methods=["POST"]),
        Route("/floating-ips/{id}/delete", web.page(delete_fip), methods=["POST"]),
        Route("/security-groups", web.page(security_groups)),
        Route("/security-groups", web.page(create_group), methods=["POST"]),
        Route("/security-groups/{id}/delete", web.page(delete_group), methods=["POST"]),
        Route("/security-groups/{id}/rules", web.page(create_rule), methods=["POST"]),
        Route("/security-groups/{id}/rules/{rule}/delete", web.page(delete_rule), methods=["POST"]),
        Route("/keypairs", web.page(keypairs)),
        Route("/keypairs", web.page(create_keypair), methods=["POST"]),
        Route("/keypairs/{id}/delete", web.page(delete_keypair), methods=["POST"]),
    ]
