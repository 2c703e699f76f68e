"""Log in (kumo user and password: IdentityService.Authenticate), log out
(the token revoked), and the login form's own CSRF check: before a session
exists, a double-submit cookie."""

from __future__ import annotations

import hmac
import secrets

import grpc
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dashboard.devices import DEVICE_COOKIE
from dashboard.sessions import COOKIE
from dashboard.web import CSRF_FIELD, Ctx, Web
from kumo.errorinfo import describe_rpc_error
from kumo.v1 import identity_pb2 as idpb

LOGIN_CSRF_COOKIE = "kumo_login_csrf"
EXPIRED_MESSAGE = "Your session has expired or was ended: log in again."


def cookie_args() -> dict:
    return {"httponly": True, "secure": True, "samesite": "strict", "path": "/"}


def routes(web: Web) -> list[Route]:
    def login_form(request: Request, message: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        if not message and request.query_params.get("expired"):
            message = EXPIRED_MESSAGE
        resp = web.render("login.html", status, request=request, csrf=token, message=message)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **cookie_args())
        return resp

    async def login_page(request: Request) -> Response:
        if web.session_of(request) is not None:
            return RedirectResponse("/", status_code=303)
        return login_form(request)

    async def login(request: Request) -> Response:
        form = await request.form()
        given, cookie = str(form.get(CSRF_FIELD, "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not (given and cookie and hmac.compare_digest(given, cookie)):
            return login_form(request, "missing or wrong CSRF token: reload the page and try again", 403)
        user, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
        project = str(form.get("project", "")).strip()
        if not user or not password:
            return login_form(request, "user and password are required", 400)
        address = request.client.host if request.client else ""
        device = await run_in_threadpool(web.devices.known, request.cookies.get(DEVICE_COOKIE, ""), user)
        refused, wait = web.throttle.refusal(user, address, device)
        if refused:
            resp = login_form(request, refused, 429)
            resp.headers["retry-after"] = str(wait)
            return resp
        try:
            client = await run_in_threadpool(web.login_client.authenticate, user, password, project)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                web.throttle.failed(user, address, device)
            return login_form(request, describe_rpc_error(exc), 401)
        web.throttle.succeeded(user, device)
        session = web.store.create(client)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, session.id, **cookie_args())
        if not device:
            cookie = await run_in_threadpool(web.devices.remember, user)
            resp.set_cookie(DEVICE_COOKIE, cookie, max_age=int(web.devices.lifetime), **cookie_args())
        resp.delete_cookie(LOGIN_CSRF_COOKIE, **cookie_args())
        return resp

    def logout(ctx: Ctx) -> Response:
        web.store.drop(ctx.session.id)
        try:
            ctx.api.identity.RevokeToken(idpb.RevokeTokenRequest(token_id=ctx.session.who.token_id))
        except grpc.RpcError:
            pass  # already expired or revoked: the session is gone either way
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, **cookie_args())
        return resp

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", web.page(logout), methods=["POST"]),
    ]
