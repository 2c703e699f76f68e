"""Settings: change one's password, and how to reach the API from a program
(endpoint, the CA certificate, a `kumo login` line, Python and Node.js)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from dashboard.web import Ctx, FormError, Web
from kumo.v1 import identity_pb2 as idpb


def routes(web: Web) -> list[Route]:
    def settings(ctx: Ctx) -> Response:
        return ctx.render("settings.html", endpoint=web.cfg.endpoint, has_ca=web.cfg.ca_file is not None)

    def change_password(ctx: Ctx) -> Response:
        f = ctx.form
        new = f.required("new_password", 1024)
        if new != f.get("confirm"):
            raise FormError("confirm: does not match the new password")
        ctx.api.identity.SetUserPassword(
            idpb.SetUserPasswordRequest(
                user_id=ctx.session.who.user_id,
                new_password=new,
                current_password=f.required("current_password"),
            )
        )
        return ctx.redirect("/settings", "password changed")

    def ca_cert(ctx: Ctx) -> Response:
        if web.cfg.ca_file is None:
            return ctx.web.error(
                ctx.request, ctx.session, "this dashboard trusts the system roots: no CA file", 404
            )
        return Response(
            web.cfg.ca_file.read_bytes(),
            media_type="application/x-pem-file",
            headers={"content-disposition": 'attachment; filename="kumo-ca.crt"'},
        )

    return [
        Route("/settings", web.page(settings)),
        Route("/settings/password", web.page(change_password), methods=["POST"]),
        Route("/settings/ca.crt", web.page(ca_cert)),
    ]
