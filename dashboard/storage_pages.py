"""Images (upload streamed with a progress bar), volumes and their snapshots."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dashboard import upload
from dashboard.listing import list_all
from dashboard.web import CSRF_HEADER, Ctx, Web
from kumo.errorinfo import describe_rpc_error
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import volume_pb2 as vpb

DISK_FORMATS = {"qcow2": ipb.DISK_FORMAT_QCOW2, "raw": ipb.DISK_FORMAT_RAW}
VISIBILITIES = {"private": ipb.IMAGE_VISIBILITY_PRIVATE, "public": ipb.IMAGE_VISIBILITY_PUBLIC}


def volume_table(ctx: Ctx) -> dict[str, Any]:
    """What the volume table shows: one page of volumes, server names, volume types."""
    api = ctx.api
    page = ctx.page_of(api.volumes.ListVolumes, vpb.ListVolumesRequest(), "volumes", "/volumes")
    servers = list_all(api.compute.ListInstances, cpb.ListInstancesRequest(), "instances")
    types = list_all(api.volumes.ListVolumeTypes, vpb.ListVolumeTypesRequest(), "volume_types")
    return {
        "page": page,
        "volumes": page.items,
        "servers": {s.id: s.name for s in servers},
        "types": types,
        "type_names": {t.id: t.name for t in types},
    }


def routes(web: Web) -> list[Route]:
    def images(ctx: Ctx) -> Response:
        page = ctx.page_of(ctx.api.images.ListImages, ipb.ListImagesRequest(), "images")
        return ctx.render("images.html", images=page.items, page=page)

    def create_image(ctx: Ctx) -> Response:
        """The upload's first step (from app.js): a QUEUED image; its id comes back as JSON."""
        f = ctx.form
        image = ctx.api.images.CreateImage(
            ipb.CreateImageRequest(
                image=ipb.Image(
                    name=f.required("name", 63),
                    disk_format=f.choice("disk_format", DISK_FORMATS),
                    visibility=f.choice("visibility", VISIBILITIES)
                    if f.get("visibility")
                    else ipb.IMAGE_VISIBILITY_PRIVATE,
                ),
                request_id=f.request_id(),
            )
        )
        return JSONResponse({"id": image.id, "name": image.name})

    async def image_data(request: Request) -> Response:
        """The upload's second step: the file as the raw body, relayed as it arrives."""
        session = web.session_of(request)
        if session is None:
            return web.to_login(request)
        if not session.csrf_ok(request.headers.get(CSRF_HEADER, "")):
            return JSONResponse({"error": "missing or wrong CSRF token [PERMISSION_DENIED]"}, 403)
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return JSONResponse({"error": "Content-Length: required [INVALID_ARGUMENT]"}, 411)
        try:
            image = await upload.relay(
                session.client, request.path_params["id"], int(length), request.stream()
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                web.store.drop(session.id)
            return JSONResponse({"error": describe_rpc_error(exc)}, 400)
        session.flash("ok", f"image {image.name} uploaded")
        return JSONResponse({"id": image.id, "status": ipb.ImageStatus.Name(image.status)})

    def delete_image(ctx: Ctx) -> Response:
        ctx.api.images.DeleteImage(ipb.DeleteImageRequest(id=ctx.params["id"]))
        return ctx.redirect("/images", "image deleted")

    def volumes(ctx: Ctx) -> Response:
        api = ctx.api
        snaps = list_all(api.volumes.ListVolumeSnapshots, vpb.ListVolumeSnapshotsRequest(), "snapshots")
        return ctx.render("volumes.html", snapshots=snaps, **volume_table(ctx))

    def volume_rows(ctx: Ctx) -> Response:
        """The volume table's rows alone: htmx polls them, so states change without a reload."""
        return ctx.render("_volume_rows.html", **volume_table(ctx))

    def create_volume(ctx: Ctx) -> Response:
        f = ctx.form
        vol = ctx.api.volumes.CreateVolume(
            vpb.CreateVolumeRequest(
                volume=vpb.Volume(
                    name=f.required("name", 63),
                    size_gb=f.integer("size_gb", 1, 16384),
                    source_snapshot_id=f.get("snapshot"),
                    volume_type_id=f.get("volume_type"),
                ),
                request_id=f.request_id(),
            )
        )
        return ctx.redirect("/volumes", f"volume {vol.name} is being created")

    def delete_volume(ctx: Ctx) -> Response:
        ctx.api.volumes.DeleteVolume(vpb.DeleteVolumeRequest(id=ctx.params["id"]))
        return ctx.redirect("/volumes", "volume is being deleted")

    def snapshot_volume(ctx: Ctx) -> Response:
        ctx.api.volumes.CreateVolumeSnapshot(
            vpb.CreateVolumeSnapshotRequest(
                snapshot=vpb.VolumeSnapshot(name=ctx.form.required("name", 63), volume_id=ctx.params["id"]),
                request_id=str(uuid.uuid4()),
            )
        )
        return ctx.redirect("/volumes", "snapshot is being taken")

    def delete_snapshot(ctx: Ctx) -> Response:
        ctx.api.volumes.DeleteVolumeSnapshot(vpb.DeleteVolumeSnapshotRequest(id=ctx.params["id"]))
        return ctx.redirect("/volumes", "snapshot is being deleted")

    return [
        Route("/images", web.page(images)),
        Route("/images", web.page(create_image), methods=["POST"]),
        Route("/images/{id}/data", image_data, methods=["PUT"]),
        Route("/images/{id}/delete", web.page(delete_image), methods=["POST"]),
        Route("/volumes", web.page(volumes)),
        Route("/volumes/rows", web.page(volume_rows)),
        Route("/volumes", web.page(create_volume), methods=["POST"]),
        Route("/volumes/{id}/delete", web.page(delete_volume), methods=["POST"]),
        Route("/volumes/{id}/snapshot", web.page(snapshot_volume), methods=["POST"]),
        Route("/snapshots/{id}/delete", web.page(delete_snapshot), methods=["POST"]),
    ]
