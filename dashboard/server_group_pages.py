"""Server groups (affinity and anti-affinity; chosen at launch) and the
admin's volume types (picked when a volume is made)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from dashboard.listing import list_all
from dashboard.web import Ctx, Web
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import volume_pb2 as vpb

POLICIES = {
    "anti-affinity": cpb.SERVER_GROUP_POLICY_ANTI_AFFINITY,
    "affinity": cpb.SERVER_GROUP_POLICY_AFFINITY,
}
BACKENDS = {"local": "local", "rbd": "rbd", "shared-fs": "shared-fs"}


def routes(web: Web) -> list[Route]:
    def server_groups(ctx: Ctx) -> Response:
        api = ctx.api
        groups = list_all(api.compute.ListServerGroups, cpb.ListServerGroupsRequest(), "server_groups")
        servers = list_all(api.compute.ListInstances, cpb.ListInstancesRequest(), "instances")
        return ctx.render(
            "server_groups.html",
            groups=groups,
            servers={s.id: s.name for s in servers},
            Policy=cpb.ServerGroupPolicy,
        )

    def create_group(ctx: Ctx) -> Response:
        f = ctx.form
        group = ctx.api.compute.CreateServerGroup(
            cpb.CreateServerGroupRequest(
                server_group=cpb.ServerGroup(
                    name=f.required("name", 63), policy=f.choice("policy", POLICIES)
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect("/server-groups", f"server group {group.name} created")

    def delete_group(ctx: Ctx) -> Response:
        ctx.api.compute.DeleteServerGroup(cpb.DeleteServerGroupRequest(id=ctx.params["id"]))
        return ctx.redirect("/server-groups", "server group deleted")

    def volume_types(ctx: Ctx) -> Response:
        rows = list_all(ctx.api.volumes.ListVolumeTypes, vpb.ListVolumeTypesRequest(), "volume_types")
        return ctx.render("admin_volume_types.html", types=rows, backends=BACKENDS)

    def create_type(ctx: Ctx) -> Response:
        f = ctx.form
        vt = ctx.api.volumes.CreateVolumeType(
            vpb.CreateVolumeTypeRequest(
                volume_type=vpb.VolumeType(
                    name=f.required("name", 63),
                    backend=f.choice("backend", BACKENDS),
                    description=f.get("description"),
                    is_default=f.get("is_default") == "on",
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect("/admin/volume-types", f"volume type {vt.name} created")

    def delete_type(ctx: Ctx) -> Response:
        ctx.api.volumes.DeleteVolumeType(vpb.DeleteVolumeTypeRequest(id=ctx.params["id"]))
        return ctx.redirect("/admin/volume-types", "volume type deleted")

    return [
        Route("/server-groups", web.page(server_groups)),
        Route("/server-groups", web.page(create_group), methods=["POST"]),
        Route("/server-groups/{id}/delete", web.page(delete_group), methods=["POST"]),
        Route("/admin/volume-types", web.page(volume_types)),
        Route("/admin/volume-types", web.page(create_type), methods=["POST"]),
        Route("/admin/volume-types/{id}/delete", web.page(delete_type), methods=["POST"]),
    ]
