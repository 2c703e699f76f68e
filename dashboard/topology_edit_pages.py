"""The networks page's editing forms: subnets, routers (external gateway,
interfaces), ports (security groups) and floating IP association. Each one
is one API call; the API checks ownership and state, the forms only shape
the request (the networks page itself is network_pages.py)."""

from __future__ import annotations

from google.protobuf import field_mask_pb2
from starlette.responses import Response
from starlette.routing import Route

from dashboard.web import Ctx, Web
from kumo.v1 import network_pb2 as npb

BACK = "/networks"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def routes(web: Web) -> list[Route]:
    def create_subnet(ctx: Ctx) -> Response:
        f = ctx.form
        dns = [d.strip() for d in f.get("dns_servers").split(",") if d.strip()]
        sub = ctx.api.networks.CreateSubnet(
            npb.CreateSubnetRequest(
                subnet=npb.Subnet(
                    name=f.required("name", 63),
                    network_id=f.required("network"),
                    cidr=f.required("cidr", 64),
                    gateway_ip=f.get("gateway_ip"),
                    dns_servers=dns,
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect(BACK, f"subnet {sub.name} ({sub.cidr}) created")

    def delete_subnet(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteSubnet(npb.DeleteSubnetRequest(id=ctx.params["id"]))
        return ctx.redirect(BACK, "subnet deleted")

    def create_router(ctx: Ctx) -> Response:
        f = ctx.form
        router = ctx.api.networks.CreateRouter(
            npb.CreateRouterRequest(
                router=npb.Router(
                    name=f.required("name", 63),
                    external_gateway=npb.RouterGateway(network_id=f.get("gateway_network")),
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect(BACK, f"router {router.name} created")

    def delete_router(ctx: Ctx) -> Response:
        ctx.api.networks.DeleteRouter(npb.DeleteRouterRequest(id=ctx.params["id"]))
        return ctx.redirect(BACK, "router deleted")

    def set_gateway(ctx: Ctx) -> Response:
        """Sets or moves the router's external gateway; an empty network clears it."""
        network = ctx.form.get("network")
        ctx.api.networks.UpdateRouter(
            npb.UpdateRouterRequest(
                router=npb.Router(
                    id=ctx.params["id"], external_gateway=npb.RouterGateway(network_id=network)
                ),
                update_mask=mask("external_gateway"),
            )
        )
        return ctx.redirect(BACK, "gateway set" if network else "gateway cleared")

    def add_interface(ctx: Ctx) -> Response:
        ctx.api.networks.AddRouterInterface(
            npb.AddRouterInterfaceRequest(id=ctx.params["id"], subnet_id=ctx.form.required("subnet"))
        )
        return ctx.redirect(BACK, "interface added")

    def remove_interface(ctx: Ctx) -> Response:
        ctx.api.networks.RemoveRouterInterface(
            npb.RemoveRouterInterfaceRequest(id=ctx.params["id"], subnet_id=ctx.form.required("subnet"))
        )
        return ctx.redirect(BACK, "interface removed")

    def create_port(ctx: Ctx) -> Response:
        f = ctx.form
        port = ctx.api.networks.CreatePort(
            npb.CreatePortRequest(
                port=npb.Port(
                    name=f.get("name"),
                    network_id=f.required("network"),
                    security_group_ids=f.many("security_group"),
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect(BACK, f"port {port.name or port.id[:8]} created")

    def delete_port(ctx: Ctx) -> Response:
        ctx.api.networks.DeletePort(npb.DeletePortRequest(id=ctx.params["id"]))
        return ctx.redirect(BACK, "port deleted")

    def port_groups(ctx: Ctx) -> Response:
        ctx.api.networks.UpdatePort(
            npb.UpdatePortRequest(
                port=npb.Port(id=ctx.params["id"], security_group_ids=ctx.form.many("security_group")),
                update_mask=mask("security_group_ids"),
            )
        )
        return ctx.redirect(BACK, "port security groups updated")

    def fip_port(ctx: Ctx) -> Response:
        """Associates the floating IP with a port, or (no port) disassociates it."""
        port = ctx.form.get("port")
        ctx.api.networks.UpdateFloatingIp(
            npb.UpdateFloatingIpRequest(
                floating_ip=npb.FloatingIp(id=ctx.params["id"], port_id=port),
                update_mask=mask("port_id"),
            )
        )
        return ctx.redirect(BACK, "floating IP associated" if port else "floating IP disassociated")

    return [
        Route("/subnets", web.page(create_subnet), methods=["POST"]),
        Route("/subnets/{id}/delete", web.page(delete_subnet), methods=["POST"]),
        Route("/routers", web.page(create_router), methods=["POST"]),
        Route("/routers/{id}/delete", web.page(delete_router), methods=["POST"]),
        Route("/routers/{id}/gateway", web.page(set_gateway), methods=["POST"]),
        Route("/routers/{id}/interfaces", web.page(add_interface), methods=["POST"]),
        Route("/routers/{id}/interfaces/remove", web.page(remove_interface), methods=["POST"]),
        Route("/ports", web.page(create_port), methods=["POST"]),
        Route("/ports/{id}/delete", web.page(delete_port), methods=["POST"]),
        Route("/ports/{id}/security-groups", web.page(port_groups), methods=["POST"]),
        Route("/floating-ips/{id}/port", web.page(fip_port), methods=["POST"]),
    ]
