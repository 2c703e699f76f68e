"""The request plumbing every page shares: the session from its cookie, the
CSRF check on state-changing requests, the form read and validated, the API
call run off the event loop, and API errors shown as the CLI's one line."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dashboard import listing
from dashboard.config import DashboardConfig
from dashboard.devices import KnownDevices
from dashboard.sessions import COOKIE, Session, SessionStore
from dashboard.throttle import LoginThrottle
from kumo.client import Client
from kumo.errorinfo import describe_rpc_error
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import event_pb2 as epb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from kumo.v1 import node_pb2 as npb
from kumo.v1 import volume_pb2 as vpb

log = logging.getLogger("kumo.dashboard")
TEMPLATES = Path(__file__).parent / "templates"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
EXPIRED_URL = "/login?expired=1"
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 502,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class FormError(Exception):
    """A form field the dashboard refuses before calling the API (shown as one line, HTTP 400)."""


class Form:
    """A submitted form's fields, with the checks every handler needs."""

    def __init__(self, fields: dict[str, str], lists: dict[str, list[str]] | None = None) -> None:
        self.fields = fields
        self.lists = lists or {}

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default).strip()

    def request_id(self) -> str:
        """The form's request id (a resubmitted form repeats it, so the create
        is not made twice), or a fresh one."""
        return self.get("request_id") or str(uuid.uuid4())

    def required(self, name: str, max_len: int = 255) -> str:
        value = self.get(name)
        if not value:
            raise FormError(f"{name}: required")
        if len(value) > max_len:
            raise FormError(f"{name}: at most {max_len} characters")
        return value

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int:
        raw = self.get(name)
        if not raw and default is not None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise FormError(f"{name}: a whole number is needed") from None
        if not low <= value <= high:
            raise FormError(f"{name}: between {low} and {high}")
        return value

    def many(self, name: str, max_items: int = 32) -> list[str]:
        """Every value of a repeated field (checkboxes, a multiple select), blanks dropped."""
        values = [v.strip() for v in self.lists.get(name, []) if v.strip()]
        if len(values) > max_items:
            raise FormError(f"{name}: at most {max_items} values")
        return values

    def choice(self, name: str, choices: dict[str, Any]) -> Any:
        value = self.get(name)
        if value not in choices:
            raise FormError(f"{name}: one of {', '.join(choices)}")
        return choices[value]


@dataclass
class Ctx:
    """What a page handler gets: the request, its session, the form, the path parameters."""

    web: Web
    request: Request
    session: Session
    form: Form
    params: dict[str, str]

    @property
    def api(self) -> Client:
        return self.session.client

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return self.web.render(template, status, session=self.session, request=self.request, **values)

    def page_of(self, call: Callable[[Any], Any], request: Any, field: str, path: str = "") -> listing.Page:
        """The page of a list the URL names (`?page=&trail=&size=`), linked to its neighbours at `path`."""
        try:
            return listing.one_page(
                call, request, field, path or self.request.url.path, self.request.query_params
            )
        except ValueError as exc:
            raise FormError(str(exc)) from None

    def redirect(self, url: str, flash: str = "") -> Response:
        if flash:
            self.session.flash("ok", flash)
        return RedirectResponse(url, status_code=303)


Handler = Callable[[Ctx], Response]


class Web:
    """Templates and the page wrapper, shared by every page module."""

    def __init__(
        self,
        cfg: DashboardConfig,
        store: SessionStore,
        login_client: Client,
        throttle: LoginThrottle,
        devices: KnownDevices,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.throttle = throttle
        self.devices = devices
        self.login_client = login_client  # no token: Authenticate only
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.filters.update(when=listing.when, size=listing.size)
        self.env.globals.update(
            label=listing.enum_label,
            Role=idpb.Role,
            InstanceState=cpb.InstanceState,
            VolumeState=vpb.VolumeState,
            ImageStatus=ipb.ImageStatus,
            NodeState=npb.NodeState,
            Visibility=ipb.ImageVisibility,
            EventResult=epb.EventResult,
        )

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        session = values.get("session")
        if session is not None:
            values.setdefault("flashes", session.take_flashes())
        return HTMLResponse(self.env.get_template(template).render(**values), status_code=status)

    def session_of(self, request: Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        return self.store.get(sid) if sid else None

    def to_login(self, request: Request, url: str = "/login") -> Response:
        if request.headers.get("hx-request") == "true":  # htmx: navigate the whole page
            return Response(status_code=401, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    def error(self, request: Request, session: Session | None, message: str, status: int) -> HTMLResponse:
        if request.headers.get("hx-request") == "true":
            return HTMLResponse(
                self.env.get_template("_error.html").render(message=message),
                status_code=status,
                headers={"HX-Retarget": "#errors", "HX-Reswap": "innerHTML"},
            )
        return self.render("error.html", status, session=session, request=request, message=message)

    def api_error(self, request: Request, session: Session, exc: grpc.RpcError) -> Response:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:  # expired or revoked: log in again
            self.store.drop(session.id)
            return self.to_login(request, EXPIRED_URL)
        return self.error(request, session, describe_rpc_error(exc), HTTP_STATUS.get(exc.code(), 500))

    def page(self, fn: Handler, *, read_form: bool = True) -> Callable[[Request], Any]:
        """An endpoint running `fn` for a logged-in session; a POST must carry the CSRF token."""

        async def endpoint(request: Request) -> Response:
            sid = request.cookies.get(COOKIE, "")
            session, expired = self.store.lookup(sid) if sid else (None, False)
            if session is None:
                return self.to_login(request, EXPIRED_URL if expired else "/login")
            fields: dict[str, str] = {}
            lists: dict[str, list[str]] = {}
            if request.method != "GET":
                if read_form:
                    form = await request.form()
                    fields = {k: v for k, v in form.items() if isinstance(v, str)}
                    for k, v in form.multi_items():
                        if isinstance(v, str):
                            lists.setdefault(k, []).append(v)
                given = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD, "")
                if not session.csrf_ok(given):
                    return self.error(
                        request, session, "missing or wrong CSRF token [PERMISSION_DENIED]", 403
                    )
            ctx = Ctx(self, request, session, Form(fields, lists), dict(request.path_params))
            try:
                return await run_in_threadpool(fn, ctx)
            except grpc.RpcError as exc:
                return self.api_error(request, session, exc)
            except FormError as exc:
                return self.error(request, session, f"{exc} [INVALID_ARGUMENT]", 400)
            except Exception:  # a bug here: logged with its traceback, shown as one line
                log.exception("page %s %s failed", request.method, request.url.path)
                return self.error(
                    request, session, "the dashboard failed on this page (logged) [INTERNAL]", 500
                )

        return endpoint
