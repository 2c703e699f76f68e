"""The project panel's overview (quota charts) and servers: the list with
live state badges (htmx polling), the launch form, the actions, and a
server's page (console output, events, volumes, floating IPs)."""

from __future__ import annotations

import uuid

from google.protobuf import field_mask_pb2
from starlette.responses import Response
from starlette.routing import Route

from dashboard.charts import Bar, bars
from dashboard.listing import Page, list_all
from dashboard.web import Ctx, FormError, Web
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import event_pb2 as epb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import network_pb2 as npb
from kumo.v1 import volume_pb2 as vpb

QUOTA_ROWS = [
    ("instances", "servers", ""),
    ("vcpus", "vCPUs", ""),
    ("ram_mb", "RAM", "MiB"),
    ("volumes", "volumes", ""),
    ("volume_gb", "volume space", "GiB"),
    ("snapshots", "snapshots", ""),
    ("images", "images", ""),
    ("networks", "networks", ""),
    ("ports", "ports", ""),
    ("security_groups", "security groups", ""),
    ("floating_ips", "floating IPs", ""),
]
# A state whose badge keeps changing by itself: the list keeps polling while one shows.
SETTLING = {
    cpb.INSTANCE_STATE_BUILDING,
    cpb.INSTANCE_STATE_REBOOTING,
    cpb.INSTANCE_STATE_DELETING,
}
ACTIONS = {"start", "stop", "reboot", "delete", "snapshot"}


def quota_chart(quota: idpb.Quota) -> str:
    return bars(
        [Bar(label, getattr(quota.usage, f), getattr(quota.limits, f), unit) for f, label, unit in QUOTA_ROWS]
    )


def server_rows(ctx: Ctx) -> Page:
    return ctx.page_of(ctx.api.compute.ListInstances, cpb.ListInstancesRequest(), "instances", "/servers")


def routes(web: Web) -> list[Route]:
    def overview(ctx: Ctx) -> Response:
        quota = ctx.api.identity.GetQuota(idpb.GetQuotaRequest(project_id=ctx.session.who.project_id))
        return ctx.render("overview.html", chart=quota_chart(quota), quota=quota)

    def servers(ctx: Ctx) -> Response:
        page = server_rows(ctx)
        return ctx.render("servers.html", servers=page.items, page=page, settling=SETTLING)

    def rows(ctx: Ctx) -> Response:
        page = server_rows(ctx)
        return ctx.render("_server_rows.html", servers=page.items, page=page, settling=SETTLING)

    def launch_form(ctx: Ctx) -> Response:
        api = ctx.api
        images = list_all(api.images.ListImages, ipb.ListImagesRequest(), "images")
        return ctx.render(
            "server_new.html",
            images=[i for i in images if i.status == ipb.IMAGE_STATUS_ACTIVE],
            flavors=list_all(api.compute.ListFlavors, cpb.ListFlavorsRequest(), "flavors"),
            networks=list_all(api.networks.ListNetworks, npb.ListNetworksRequest(), "networks"),
            keypairs=list_all(api.compute.ListKeypairs, cpb.ListKeypairsRequest(), "keypairs"),
            groups=list_all(api.compute.ListServerGroups, cpb.ListServerGroupsRequest(), "server_groups"),
        )

    def launch(ctx: Ctx) -> Response:
        f = ctx.form
        user_data = f.fields.get("user_data", "")
        if len(user_data.encode()) > 65536:
            raise FormError("user_data: at most 64 KiB")
        network = f.get("network")
        inst = ctx.api.compute.CreateInstance(
            cpb.CreateInstanceRequest(
                name=f.required("name", 63),
                image=f.required("image"),
                flavor=f.required("flavor"),
                keypair=f.get("keypair"),
                server_group_id=f.get("server_group"),
                user_data=user_data.encode(),
                networks=[cpb.NetworkRequest(network=network)] if network else [],
                request_id=f.request_id(),
            )
        )
        return ctx.redirect("/servers", f"server {inst.name} is being built")

    def action(ctx: Ctx) -> Response:
        sid, verb = ctx.params["id"], ctx.params["action"]
        c = ctx.api.compute
        if verb == "start":
            c.StartInstance(cpb.StartInstanceRequest(id=sid))
        elif verb == "stop":
            c.StopInstance(cpb.StopInstanceRequest(id=sid))
        elif verb == "reboot":
            c.RebootInstance(cpb.RebootInstanceRequest(id=sid, type=cpb.REBOOT_TYPE_SOFT))
        elif verb == "delete":
            c.DeleteInstance(cpb.DeleteInstanceRequest(id=sid))
            return ctx.redirect("/servers", "server is being deleted")
        elif verb == "snapshot":
            image = c.CreateInstanceSnapshot(
                cpb.CreateInstanceSnapshotRequest(
                    id=sid, name=ctx.form.required("name", 63), request_id=str(uuid.uuid4())
                )
            )
            return ctx.redirect("/images", f"snapshot image {image.name} is being saved")
        else:
            raise FormError(f"action: one of {', '.join(sorted(ACTIONS))}")
        return ctx.redirect(f"/servers/{sid}", f"{verb} requested")

    def detail(ctx: Ctx) -> Response:
        api = ctx.api
        inst = api.compute.GetInstance(cpb.GetInstanceRequest(id=ctx.params["id"]))
        volumes = list_all(api.volumes.ListVolumes, vpb.ListVolumesRequest(), "volumes")
        events = api.events.ListEvents(epb.ListEventsRequest(resource_id=inst.id, page_size=50)).events
        console = api.compute.GetConsoleOutput(cpb.GetConsoleOutputRequest(id=inst.id, tail_lines=200))
        fips = list_all(api.networks.ListFloatingIps, npb.ListFloatingIpsRequest(), "floating_ips")
        ports = {n.port_id for n in inst.nics}
        return ctx.render(
            "server.html",
            inst=inst,
            attached=[v for v in volumes if v.instance_id == inst.id],
            available=[v for v in volumes if v.state == vpb.VOLUME_STATE_AVAILABLE],
            events=events,
            console=console.output,
            free_fips=[f for f in fips if not f.port_id],
            settling=SETTLING,
            ports=ports,
        )

    def badge(ctx: Ctx) -> Response:
        inst = ctx.api.compute.GetInstance(cpb.GetInstanceRequest(id=ctx.params["id"]))
        return ctx.render("_server_badge.html", inst=inst, settling=SETTLING)

    def attach(ctx: Ctx) -> Response:
        sid = ctx.params["id"]
        ctx.api.volumes.AttachVolume(vpb.AttachVolumeRequest(id=ctx.form.required("volume"), instance_id=sid))
        return ctx.redirect(f"/servers/{sid}", "volume is being attached")

    def detach(ctx: Ctx) -> Response:
        sid = ctx.params["id"]
        ctx.api.volumes.DetachVolume(vpb.DetachVolumeRequest(id=ctx.form.required("volume")))
        return ctx.redirect(f"/servers/{sid}", "volume is being detached")

    def associate(ctx: Ctx) -> Response:
        sid = ctx.params["id"]
        ctx.api.networks.UpdateFloatingIp(
            npb.UpdateFloatingIpRequest(
                floating_ip=npb.FloatingIp(
                    id=ctx.form.required("floating_ip"), port_id=ctx.form.required("port")
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["port_id"]),
            )
        )
        return ctx.redirect(f"/servers/{sid}", "floating IP associated")

    def console_page(ctx: Ctx) -> Response:
        inst = ctx.api.compute.GetInstance(cpb.GetInstanceRequest(id=ctx.params["id"]))
        # What the guest wrote before: shown first, since a read-write attach starts from now.
        log = ctx.api.compute.GetConsoleOutput(cpb.GetConsoleOutputRequest(id=inst.id, tail_lines=100))
        return ctx.render("console.html", inst=inst, history=log.output)

    return [
        Route("/", web.page(overview)),
        Route("/servers", web.page(servers)),
        Route("/servers", web.page(launch), methods=["POST"]),
        Route("/servers/rows", web.page(rows)),
        Route("/servers/new", web.page(launch_form)),
        Route("/servers/{id}", web.page(detail)),
        Route("/servers/{id}/badge", web.page(badge)),
        Route("/servers/{id}/console", web.page(console_page)),
        Route("/servers/{id}/attach", web.page(attach), methods=["POST"]),
        Route("/servers/{id}/detach", web.page(detach), methods=["POST"]),
        Route("/servers/{id}/floating-ip", web.page(associate), methods=["POST"]),
        Route("/servers/{id}/{action}", web.page(action), methods=["POST"]),
    ]
